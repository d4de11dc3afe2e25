//! The tensors of a tower streamed from a safetensors file into this crate's kernels (OpenAI
//! CLIP's and SigLIP's image towers): the header checked against the names and shapes the config
//! implies, and quantised linear weights (int8, or 4-bit read back as int8) paired with their
//! `<name>_scale` tensors, which may arrive before or after them.

use std::collections::HashMap;

use crate::error::ModelError;
use crate::models::candle_weights::check_scales;
use crate::models::clip::encoder::TensorValues;
use crate::models::int4::{self, Int4Weight};
use crate::models::safetensors_stream::{f32_values, TensorDtype, TensorInfo};

/// Checks that every `expected` tensor (name, shape) is in the file's header with that shape and
/// a type this crate reads: F32, F16 or BF16, or for the weights `is_linear` accepts, I8 with
/// per-row scales or 4-bit U8 ([`int4`]). Names some of the missing ones.
pub fn check_expected(
    tensors: &[TensorInfo],
    expected: &[(String, Vec<usize>)],
    is_linear: impl Fn(&str) -> bool,
) -> Result<(), ModelError> {
    let by_name: HashMap<&str, &TensorInfo> = tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut missing = Vec::new();
    for (name, shape) in expected {
        let Some(t) = by_name.get(name.as_str()) else {
            missing.push(name.clone());
            continue;
        };
        let scale = by_name.get(format!("{name}_scale").as_str()).and_then(|sc| Some((sc.dtype?, sc.shape.as_slice())));
        let int4 = t.dtype == Some(TensorDtype::U8) && is_linear(name);
        let found = if int4 {
            int4::check_stored(name, &t.shape, scale).map_err(ModelError::WeightsMismatch)?
        } else {
            t.shape.clone()
        };
        if found != *shape {
            return Err(ModelError::WeightsMismatch(format!(
                "{name} has shape {found:?}, config.json implies {shape:?}"
            )));
        }
        if t.dtype == Some(TensorDtype::I8) && is_linear(name) {
            check_scales(name, shape, scale).map_err(ModelError::WeightsMismatch)?;
        } else if !int4 && !matches!(t.dtype, Some(TensorDtype::F32 | TensorDtype::F16 | TensorDtype::BF16)) {
            return Err(ModelError::Weights(format!(
                "{name} is {}; only F32, F16 and BF16 weights (and I8 or 4-bit U8 for linear layers) are supported",
                t.dtype_name
            )));
        }
    }
    if !missing.is_empty() {
        let shown: Vec<_> = missing.iter().take(3).cloned().collect();
        return Err(ModelError::WeightsMismatch(format!(
            "{} tensors are missing, e.g. {}",
            missing.len(),
            shown.join(", ")
        )));
    }
    Ok(())
}

/// Whether the header stores any weight `is_linear` accepts quantised (I8, or 4-bit U8).
pub fn stores_quantised(tensors: &[TensorInfo], is_linear: impl Fn(&str) -> bool) -> bool {
    tensors.iter().any(|t| matches!(t.dtype, Some(TensorDtype::I8 | TensorDtype::U8)) && is_linear(&t.name))
}

/// Quantised weights waiting for their scales, and scales waiting for their weights.
#[derive(Default)]
pub struct ScalePairs {
    /// Type, stored shape and bytes.
    weights: HashMap<String, (TensorDtype, Vec<usize>, Vec<u8>)>,
    /// Stored shape and values.
    scales: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl ScalePairs {
    /// One of the tower's tensors (`info`, its bytes `data`, checked with the header) has arrived:
    /// a float one goes to `put` as f32 at once, a quantised one as int8 rows with their scales
    /// once both have arrived.
    pub fn tower_tensor(
        &mut self,
        info: &TensorInfo,
        data: &[u8],
        put: impl FnOnce(&str, TensorValues) -> Result<(), ModelError>,
    ) -> Result<(), ModelError> {
        let dtype = info.dtype.expect("checked with the header");
        if !matches!(dtype, TensorDtype::I8 | TensorDtype::U8) {
            return put(&info.name, TensorValues::F32(&f32_values(dtype, data)?));
        }
        match self.scales.remove(&format!("{}_scale", info.name)) {
            Some((scale_shape, scales)) => {
                let (values, scales) = int8_rows(&info.name, dtype, &info.shape, data.to_vec(), scales, &scale_shape)?;
                put(&info.name, TensorValues::Int8 { values: &values, scales: &scales })
            }
            None => {
                self.weights.insert(info.name.clone(), (dtype, info.shape.clone(), data.to_vec()));
                Ok(())
            }
        }
    }

    /// Whether `info` is the scales of a weight `is_linear` accepts; if so, they are kept, or
    /// handed to `put` with their weight if it came first. (Scales in another type than F32 or F16
    /// are taken for nothing: the header check refused them for any weight the tower reads.)
    pub fn scales(
        &mut self,
        info: &TensorInfo,
        data: &[u8],
        is_linear: impl Fn(&str) -> bool,
        put: impl FnOnce(&str, TensorValues) -> Result<(), ModelError>,
    ) -> Result<bool, ModelError> {
        let Some(weight) = info.name.strip_suffix("_scale").filter(|w| is_linear(w)) else {
            return Ok(false);
        };
        let Some(dtype @ (TensorDtype::F32 | TensorDtype::F16)) = info.dtype else {
            return Ok(true);
        };
        let scales = f32_values(dtype, data)?;
        match self.weights.remove(weight) {
            Some((weight_dtype, shape, bytes)) => {
                let (values, scales) = int8_rows(weight, weight_dtype, &shape, bytes, scales, &info.shape)?;
                put(weight, TensorValues::Int8 { values: &values, scales: &scales })?;
            }
            None => {
                self.scales.insert(info.name.clone(), (info.shape.clone(), scales));
            }
        }
        Ok(true)
    }
}

/// A quantised linear weight as int8 rows and their scales: int8 as stored, 4-bit converted
/// ([`Int4Weight::to_int8_rows`]). Both tensors' shapes were checked with the header.
fn int8_rows(
    name: &str,
    dtype: TensorDtype,
    shape: &[usize],
    bytes: Vec<u8>,
    scales: Vec<f32>,
    scale_shape: &[usize],
) -> Result<(Vec<i8>, Vec<f32>), ModelError> {
    match dtype {
        TensorDtype::U8 => {
            let w = Int4Weight::from_stored(name, bytes, shape, scales, scale_shape)
                .map_err(ModelError::WeightsMismatch)?;
            Ok(w.to_int8_rows())
        }
        _ => Ok((bytes.into_iter().map(|b| b as i8).collect(), scales)),
    }
}
