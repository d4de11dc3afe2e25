//! The image tower's tensors as the file stores them, without candle: float tensors (F32, F16,
//! BF16) as f32, int8 weights with their per-output-channel scales as they are, 4-bit weights
//! converted to int8 rows ([`crate::models::int4`]). Each tensor is taken once, with the shape
//! the model needs; [`StoredTensors::finish`] refuses a file with tensors the model never took.

use std::collections::BTreeMap;

use crate::error::ModelError;
use crate::models::candle_weights::{check_scales, stored, weight_shape, SCALE_SUFFIX};
use crate::models::int4::Int4Weight;
use crate::models::safetensors_header;
use crate::models::safetensors_stream::{f32_values, TensorDtype};

pub(crate) fn bad(message: String) -> ModelError {
    ModelError::OpenClipWeights(message)
}

/// One tensor's values.
pub enum Values {
    F32(Vec<f32>),
    /// int8 rows (the first dimension) with one scale each.
    Int8 {
        values: Vec<i8>,
        scales: Vec<f32>,
    },
}

impl Values {
    /// The values as f32 (int8 ones dequantised: only for the fusion of an older file's branches).
    pub fn into_f32(self) -> Vec<f32> {
        match self {
            Values::F32(v) => v,
            Values::Int8 { values, scales } => {
                let per_row = values.len() / scales.len().max(1);
                values
                    .chunks(per_row.max(1))
                    .zip(&scales)
                    .flat_map(|(row, s)| row.iter().map(move |&q| q as f32 * s))
                    .collect()
            }
        }
    }

    pub fn is_int8(&self) -> bool {
        matches!(self, Values::Int8 { .. })
    }
}

/// A tensor: its (logical) shape and values.
pub struct Stored {
    pub shape: Vec<usize>,
    pub values: Values,
}

/// The tensors of a file, by name, taken one by one.
pub struct StoredTensors {
    map: BTreeMap<String, Stored>,
    /// The file's `__metadata__`.
    metadata: BTreeMap<String, String>,
}

impl StoredTensors {
    /// Every tensor under `prefix` of a safetensors file (BatchNorm's step counters left out);
    /// a tensor elsewhere must be one `other` accepts (it is then ignored), else the file is refused.
    pub fn read(
        bytes: &[u8],
        prefix: &str,
        other: impl Fn(&str) -> bool,
    ) -> Result<Self, ModelError> {
        let file = safetensors_header::deserialize(bytes).map_err(bad)?;
        let metadata = safetensors::SafeTensors::read_metadata(bytes)
            .map(|(_, m)| {
                m.metadata()
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .collect()
            })
            .map_err(|e| bad(e.to_string()))?;
        let mut map = BTreeMap::new();
        let views: BTreeMap<String, _> = file.tensors().into_iter().collect();
        let is_int = |name: &str| {
            views
                .get(name)
                .and_then(|v| TensorDtype::of(v.dtype()))
                .is_some_and(|d| matches!(d, TensorDtype::I8 | TensorDtype::U8))
        };
        for (name, view) in &views {
            if name.ends_with(".num_batches_tracked")
                || name.strip_suffix(SCALE_SUFFIX).is_some_and(is_int)
            {
                continue;
            }
            if !name.starts_with(prefix) {
                if other(name) {
                    continue;
                }
                return Err(bad(format!(
                    "tensor {name} is not part of a MobileCLIP image tower"
                )));
            }
            let scale_view = views.get(&format!("{name}{SCALE_SUFFIX}"));
            let tensor = match TensorDtype::of(view.dtype()) {
                Some(TensorDtype::I8) => {
                    let found = scale_view.and_then(stored);
                    check_scales(name, view.shape(), found).map_err(bad)?;
                    let (dtype, scale_view) = (found.expect("checked").0, scale_view.expect("checked"));
                    let scales = f32_values(dtype, scale_view.data())?;
                    check_finite(name, &scales)?;
                    let values = view.data().iter().map(|&b| b as i8).collect();
                    Stored { shape: view.shape().to_vec(), values: Values::Int8 { values, scales } }
                }
                Some(TensorDtype::U8) => {
                    let shape = weight_shape(name, view, scale_view).map_err(bad)?;
                    let scale_view = scale_view.expect("checked by weight_shape");
                    let scales = f32_values(TensorDtype::F16, scale_view.data())?;
                    let w = Int4Weight::from_stored(name, view.data().to_vec(), view.shape(), scales, scale_view.shape()).map_err(bad)?;
                    let (values, scales) = w.to_int8_rows();
                    Stored { shape, values: Values::Int8 { values, scales } }
                }
                Some(dtype) => Stored { shape: view.shape().to_vec(), values: Values::F32(f32_values(dtype, view.data())?) },
                None => {
                    return Err(bad(format!(
                        "{name} is {:?}; weights must be F32, F16, BF16, I8 with per-channel scales or 4-bit (U8) with block scales",
                        view.dtype()
                    )))
                }
            };
            map.insert(name.clone(), tensor);
        }
        Ok(Self { map, metadata })
    }

    /// The file's `__metadata__` value for `key`.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// The shape of tensor `name`, if the file has it.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.map.get(name).map(|t| t.shape.as_slice())
    }

    /// Names still untaken.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    /// Takes tensor `name`, which must have `shape`.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Values, ModelError> {
        let t = self.map.remove(name).ok_or_else(|| {
            bad(format!(
                "tensor {name} is missing (the file is damaged or not a MobileCLIP FastViT tower)"
            ))
        })?;
        if t.shape != shape {
            return Err(bad(format!(
                "tensor {name} has shape {:?}; the model needs {shape:?}",
                t.shape
            )));
        }
        Ok(t.values)
    }

    /// [`Self::take`] as f32, and whether the file stored it as int8.
    pub fn take_f32(
        &mut self,
        name: &str,
        shape: &[usize],
    ) -> Result<(Vec<f32>, bool), ModelError> {
        let values = self.take(name, shape)?;
        let int8 = values.is_int8();
        Ok((values.into_f32(), int8))
    }

    /// Refuses a file with tensors left untaken, naming the first.
    pub fn finish(self) -> Result<(), ModelError> {
        match self.map.keys().next() {
            Some(name) => Err(bad(format!(
                "tensor {name} is not part of a MobileCLIP FastViT tower of this shape"
            ))),
            None => Ok(()),
        }
    }

    /// Every tensor, by name.
    pub fn into_tensors(self) -> impl Iterator<Item = (String, Stored)> {
        self.map.into_iter()
    }

    /// Tensors made here (the fused form), with no metadata.
    pub fn from_tensors(tensors: impl IntoIterator<Item = (String, Stored)>) -> Self {
        Self {
            map: tensors.into_iter().collect(),
            metadata: BTreeMap::new(),
        }
    }
}

fn check_finite(name: &str, scales: &[f32]) -> Result<(), ModelError> {
    match scales.iter().find(|s| !s.is_finite()) {
        Some(s) => Err(bad(format!(
            "{name} has a scale that is not a finite number ({s})"
        ))),
        None => Ok(()),
    }
}
