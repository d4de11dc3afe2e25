//! A vision tower's tensors as a safetensors stream hands them on, in file order: float tensors
//! converted to f32 at once, quantised linear weights (int8, or 4-bit converted to int8 rows)
//! paired with their `<name>_scale` tensor whichever of the two comes first. Both OpenAI CLIP
//! loaders use it: this crate's kernels ([`super::ModelLoader`]) and candle's
//! ([`super::candle_loader`]).

use std::collections::HashMap;

use crate::error::ModelError;
use crate::models::clip::vision::{is_linear_weight, TensorValues};
use crate::models::int4::Int4Weight;
use crate::models::safetensors_stream::{f32_values, TensorDtype, TensorInfo};

/// A tensor complete and ready for the tower.
pub enum Arrived {
    F32(Vec<f32>),
    /// A linear weight's int8 rows and one scale per row.
    Int8 {
        values: Vec<i8>,
        scales: Vec<f32>,
    },
}

impl Arrived {
    /// The values as the encoders take them.
    pub fn values(&self) -> TensorValues<'_> {
        match self {
            Arrived::F32(v) => TensorValues::F32(v),
            Arrived::Int8 { values, scales } => TensorValues::Int8 { values, scales },
        }
    }
}

/// Quantised weights (type, stored shape, bytes) waiting for their scales, and scales (stored
/// shape, values) waiting for their weights.
#[derive(Default)]
pub struct TowerTensors {
    pending_weights: HashMap<String, (TensorDtype, Vec<usize>, Vec<u8>)>,
    pending_scales: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl TowerTensors {
    /// `info` (its bytes `data`; its type and shape checked with the header) as the tower takes
    /// it, with the name it goes under: a float tensor the tower `wants` at once, a quantised
    /// weight once its scales are in too. `None` while one of a pair waits for the other, and
    /// for tensors the tower does not take.
    pub fn arrive(
        &mut self,
        info: &TensorInfo,
        data: &[u8],
        wants: impl Fn(&str) -> bool,
    ) -> Result<Option<(String, Arrived)>, ModelError> {
        if wants(&info.name) {
            let dtype = info.dtype.expect("checked with the header");
            if !matches!(dtype, TensorDtype::I8 | TensorDtype::U8) {
                return Ok(Some((
                    info.name.clone(),
                    Arrived::F32(f32_values(dtype, data)?),
                )));
            }
            return match self.pending_scales.remove(&format!("{}_scale", info.name)) {
                Some((scale_shape, scales)) => {
                    let rows = int8_rows(
                        &info.name,
                        dtype,
                        &info.shape,
                        data.to_vec(),
                        scales,
                        &scale_shape,
                    )?;
                    Ok(Some((info.name.clone(), rows)))
                }
                None => {
                    self.pending_weights.insert(
                        info.name.clone(),
                        (dtype, info.shape.clone(), data.to_vec()),
                    );
                    Ok(None)
                }
            };
        }
        if let Some(weight) = info
            .name
            .strip_suffix("_scale")
            .filter(|w| is_linear_weight(w))
        {
            let Some(dtype @ (TensorDtype::F32 | TensorDtype::F16)) = info.dtype else {
                return Ok(None);
            };
            let scales = f32_values(dtype, data)?;
            return match self.pending_weights.remove(weight) {
                Some((weight_dtype, shape, bytes)) => {
                    let rows = int8_rows(weight, weight_dtype, &shape, bytes, scales, &info.shape)?;
                    Ok(Some((weight.to_string(), rows)))
                }
                None => {
                    self.pending_scales
                        .insert(info.name.clone(), (info.shape.clone(), scales));
                    Ok(None)
                }
            };
        }
        Ok(None)
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
) -> Result<Arrived, ModelError> {
    let (values, scales) = match dtype {
        TensorDtype::U8 => {
            let w = Int4Weight::from_stored(name, bytes, shape, scales, scale_shape)
                .map_err(ModelError::WeightsMismatch)?;
            w.to_int8_rows()
        }
        _ => (bytes.into_iter().map(|b| b as i8).collect(), scales),
    };
    Ok(Arrived::Int8 { values, scales })
}
