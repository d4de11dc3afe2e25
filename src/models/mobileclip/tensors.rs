//! The checkpoint's tensors, checked before candle sees them: candle-transformers' FastViT
//! builds every optional branch with `if let Ok(..)`, so a missing or misshapen tensor would
//! silently drop a branch. Here the file's names must be exactly the ones the architecture has
//! (less `*.num_batches_tracked`), and candle reads them through a backend that records any
//! request whose shape differs from the file's, even one candle then ignores. The linear weights
//! an int8 or 4-bit file stores quantised can be kept so ([`Tensors::from_safetensors_keeping`]),
//! for the layers that hold them as int8 ([`Linears`]) rather than as a dequantised copy.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use crate::error::ModelError;
use crate::models::candle_linear::{CandleLinear, Weight};
use crate::models::candle_weights::{f32_tensors, int8_weights, SCALE_SUFFIX};

pub(crate) fn bad(message: String) -> ModelError {
    ModelError::OpenClipWeights(message)
}

pub(crate) fn engine(e: candle_core::Error) -> ModelError {
    ModelError::Engine(e.to_string())
}

/// The file's tensors by name: as f32 (BatchNorm's int64 step counters dropped), but for the
/// quantised weights kept as int8 ([`Self::from_safetensors_keeping`]).
pub struct Tensors {
    map: HashMap<String, Tensor>,
    /// Stored shape and the weight as int8 rows.
    int8: HashMap<String, (Vec<usize>, Weight)>,
}

impl Tensors {
    /// Reads a safetensors buffer (float weights, or int8 ones with their scales), all as f32.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self, ModelError> {
        Self::from_safetensors_keeping(bytes, |_, _| false)
    }

    /// Reads a safetensors buffer, keeping as int8 rows the int8 or 4-bit weights that `keep`
    /// accepts (by name and shape; [`Weight::from_int8`]): they are never held in f32.
    pub fn from_safetensors_keeping(bytes: &[u8], keep: impl Fn(&str, &[usize]) -> bool) -> Result<Self, ModelError> {
        let mut int8 = HashMap::new();
        for w in int8_weights(bytes, keep).map_err(bad)? {
            let rows = w.scales.len();
            let shape = vec![rows, w.values.len() / rows.max(1)];
            let weight = Weight::from_int8(&w.values, &w.scales, &shape).map_err(engine)?;
            int8.insert(w.name, (shape, weight));
        }
        let skip = |name: &str| {
            let weight = name.strip_suffix(SCALE_SUFFIX).unwrap_or(name);
            name.ends_with(".num_batches_tracked") || int8.contains_key(weight)
        };
        let map = f32_tensors(bytes, skip, bad)?;
        Ok(Self { map, int8 })
    }

    /// Keeps only the tensors `keep` names.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.map.retain(|name, _| keep(name));
        self.int8.retain(|name, _| keep(name));
    }

    /// The dims of tensor `name`, or an error naming it.
    pub fn dims(&self, name: &str) -> Result<&[usize], ModelError> {
        let int8 = || self.int8.get(name).map(|(dims, _)| dims.as_slice());
        self.map.get(name).map(|t| t.dims()).or_else(int8).ok_or_else(|| bad(format!("tensor {name} is missing")))
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
        self.map.keys().chain(self.int8.keys()).map(String::as_str)
    }

    /// Refuses a file whose tensor names are not exactly `expected`, naming the first missing
    /// or unexpected tensor.
    pub fn check_names(&self, expected: &BTreeSet<String>, what: &str) -> Result<(), ModelError> {
        if let Some(missing) = expected.iter().find(|n| !self.map.contains_key(*n) && !self.int8.contains_key(*n)) {
            return Err(bad(format!("tensor {missing} is missing (the file is damaged or not a {what})")));
        }
        let mut extra: Vec<&str> = self.names().filter(|n| !expected.contains(*n)).collect();
        extra.sort_unstable();
        if let Some(first) = extra.first() {
            return Err(bad(format!("tensor {first} is not part of a {what}")));
        }
        Ok(())
    }

    /// A candle `VarBuilder` over the f32 tensors, the linear layers' weights kept as int8, and
    /// the log of what was asked of both.
    pub fn var_builder(self) -> (VarBuilder<'static>, Linears, Requests) {
        let requests = Requests::default();
        let backend = Recording { map: self.map, requests: requests.clone() };
        let linears = Linears { int8: self.int8, requests: requests.clone() };
        (VarBuilder::from_backend(Box::new(backend), DType::F32, Device::Cpu), linears, requests)
    }
}

/// The linear layers of a tower being built: each weight the file stores quantised is taken as
/// the int8 rows [`Tensors`] kept, any other from the `VarBuilder` in f32 (all of them for
/// `Linears::default()`).
#[derive(Default)]
pub struct Linears {
    int8: HashMap<String, (Vec<usize>, Weight)>,
    requests: Requests,
}

impl Linears {
    /// The layer of `vb`'s `weight` (`outputs x inputs`) and, if named, `bias` (`outputs`).
    pub fn linear(&mut self, vb: &VarBuilder, weight: &str, bias: Option<&str>, (outputs, inputs): (usize, usize)) -> candle_core::Result<CandleLinear> {
        let prefix = vb.prefix();
        let path = if prefix.is_empty() { weight.to_string() } else { format!("{prefix}.{weight}") };
        let weight = match self.int8.remove(&path) {
            Some((dims, weight)) => {
                let mut log = self.requests.0.lock().expect("request log");
                if dims != [outputs, inputs] {
                    log.misshapen.push((path.clone(), vec![outputs, inputs], dims.clone()));
                    candle_core::bail!("shape mismatch for {path}: {dims:?}, expected [{outputs}, {inputs}]")
                }
                log.served.insert(path);
                weight
            }
            None => Weight::Float(vb.get((outputs, inputs), weight)?),
        };
        let bias = bias.map(|b| vb.get(outputs, b)).transpose()?;
        CandleLinear::new(weight, bias)
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
