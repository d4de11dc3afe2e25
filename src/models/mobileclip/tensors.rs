//! The checkpoint's tensors, checked before candle sees them: candle-transformers' FastViT
//! builds every optional branch with `if let Ok(..)`, so a missing or misshapen tensor would
//! silently drop a branch. Here the file's names must be exactly the ones the architecture has
//! (less `*.num_batches_tracked`), and candle reads them through a backend that records any
//! request whose shape differs from the file's, even one candle then ignores.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use crate::error::ModelError;
use crate::models::candle_weights::f32_tensors;

pub(crate) fn bad(message: String) -> ModelError {
    ModelError::OpenClipWeights(message)
}

pub(crate) fn engine(e: candle_core::Error) -> ModelError {
    ModelError::Engine(e.to_string())
}

/// The file's float tensors by name, as f32 (BatchNorm's int64 step counters dropped).
pub struct Tensors {
    map: HashMap<String, Tensor>,
}

impl Tensors {
    /// Reads a safetensors buffer (float weights, or int8 ones with their scales).
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self, ModelError> {
        let map = f32_tensors(bytes, |name| name.ends_with(".num_batches_tracked"), bad)?;
        Ok(Self { map })
    }

    /// Tensor `name`, as candle will be given it.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.map.get(name)
    }

    /// Keeps only the tensors `keep` names.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.map.retain(|name, _| keep(name));
    }

    /// The dims of tensor `name`, or an error naming it.
    pub fn dims(&self, name: &str) -> Result<&[usize], ModelError> {
        self.map.get(name).map(|t| t.dims()).ok_or_else(|| bad(format!("tensor {name} is missing")))
    }

    /// One dimension of tensor `name`, which must have `rank` of them.
    pub fn dim(&self, name: &str, rank: usize, index: usize) -> Result<usize, ModelError> {
        let dims = self.dims(name)?;
        if dims.len() != rank {
            return Err(bad(format!("tensor {name} has shape {dims:?}; expected {rank} dimensions")));
        }
        Ok(dims[index])
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    /// Refuses a file whose tensor names are not exactly `expected`, naming the first missing
    /// or unexpected tensor.
    pub fn check_names(&self, expected: &BTreeSet<String>, what: &str) -> Result<(), ModelError> {
        if let Some(missing) = expected.iter().find(|n| !self.map.contains_key(*n)) {
            return Err(bad(format!("tensor {missing} is missing (the file is damaged or not a {what})")));
        }
        let mut extra: Vec<&str> = self.names().filter(|n| !expected.contains(*n)).collect();
        extra.sort_unstable();
        if let Some(first) = extra.first() {
            return Err(bad(format!("tensor {first} is not part of a {what}")));
        }
        Ok(())
    }

    /// A candle `VarBuilder` over these tensors and the log of what candle asked for.
    pub fn var_builder(self) -> (VarBuilder<'static>, Requests) {
        let requests = Requests::default();
        let backend = Recording { map: self.map, requests: requests.clone() };
        (VarBuilder::from_backend(Box::new(backend), DType::F32, Device::Cpu), requests)
    }
}

/// What candle asked the backend for.
#[derive(Clone, Default)]
pub struct Requests(Arc<Mutex<RequestLog>>);

#[derive(Default)]
struct RequestLog {
    served: BTreeSet<String>,
    /// Requests whose shape differed from the file's: (name, asked, found).
    misshapen: Vec<(String, Vec<usize>, Vec<usize>)>,
}

impl Requests {
    /// Refuses the file if candle asked for a tensor in another shape than the file's (even a
    /// request whose failure it swallowed).
    pub fn check_shapes(&self) -> Result<(), ModelError> {
        let log = self.0.lock().expect("request log");
        match log.misshapen.first() {
            Some((name, asked, found)) => Err(bad(format!("tensor {name} has shape {found:?}; the model needs {asked:?}"))),
            None => Ok(()),
        }
    }

    /// Refuses the file if candle never read one of `names`.
    pub fn check_all_read<'a>(&self, names: impl Iterator<Item = &'a str>) -> Result<(), ModelError> {
        let log = self.0.lock().expect("request log");
        let mut unread: Vec<&str> = names.filter(|n| !log.served.contains(*n)).collect();
        unread.sort_unstable();
        match unread.first() {
            Some(name) => Err(bad(format!("tensor {name} was not used by the model"))),
            None => Ok(()),
        }
    }
}

struct Recording {
    map: HashMap<String, Tensor>,
    requests: Requests,
}

impl SimpleBackend for Recording {
    fn get(&self, s: Shape, name: &str, _: candle_nn::Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let tensor = self.get_unchecked(name, dtype, dev)?;
        let mut log = self.requests.0.lock().expect("request log");
        if tensor.shape() != &s {
            log.misshapen.push((name.to_string(), s.dims().to_vec(), tensor.dims().to_vec()));
            return Err(candle_core::Error::UnexpectedShape {
                msg: format!("shape mismatch for {name}"),
                expected: s,
                got: tensor.shape().clone(),
            }
            .bt());
        }
        log.served.insert(name.to_string());
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let tensor = self
            .map
            .get(name)
            .ok_or_else(|| candle_core::Error::CannotFindTensor { path: name.to_string() }.bt())?;
        tensor.to_dtype(dtype)?.to_device(dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }
}
