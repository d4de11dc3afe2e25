//! A safetensors file as candle tensors in f32, for the families candle runs: float tensors
//! (F32, F16, BF16) converted, and int8 and 4-bit weights in this crate's export layouts
//! dequantised ([`crate::models::export`]: `<name>` as I8 with `<name>_scale` one F32 scale per
//! output channel; [`crate::models::int4`]: `<name>` as U8, two 4-bit values a byte, with
//! `<name>_scale` one F16 scale per block of 32), so an int8 or 4-bit bundle downloads a quarter
//! or an eighth of f32's bytes and runs in f32, or keeps its linear weights int8 ([`int8_weights`],
//! for [`crate::models::candle_linear`]).

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use safetensors::tensor::TensorView;

use crate::error::ModelError;
use crate::models::int4::{self, Int4Weight};
use crate::models::safetensors_header;
use crate::models::safetensors_stream::{f32_values, TensorDtype};

/// Suffix of the tensor holding an int8 weight's scales (as the export writes it).
pub const SCALE_SUFFIX: &str = "_scale";

/// A tensor's type (if this crate reads it) and shape, as the checks below take them.
pub fn stored<'a>(view: &'a TensorView<'_>) -> Option<(TensorDtype, &'a [usize])> {
    Some((TensorDtype::of(view.dtype())?, view.shape()))
}

/// Checks an int8 weight's scales: `<name>_scale`, F32 or F16, one per row of `shape`.
pub fn check_scales(name: &str, shape: &[usize], scales: Option<(TensorDtype, &[usize])>) -> Result<(), String> {
    match scales {
        Some((TensorDtype::F32 | TensorDtype::F16, s)) if !shape.is_empty() && s == [shape[0]] => Ok(()),
        _ => Err(format!(
            "{name} is int8 but {name}{SCALE_SUFFIX} (F32, [{}]) is missing or malformed",
            shape.first().copied().unwrap_or(0)
        )),
    }
}

/// The shape of the weight a stored tensor holds: a 4-bit weight's own (from its packed and
/// scale tensors' shapes, [`int4`]), any other tensor's as stored; the error names the tensor.
pub fn weight_shape(name: &str, view: &TensorView<'_>, scales: Option<&TensorView<'_>>) -> Result<Vec<usize>, String> {
    if TensorDtype::of(view.dtype()) != Some(TensorDtype::U8) {
        return Ok(view.shape().to_vec());
    }
    int4::check_stored(name, view.shape(), scales.and_then(stored))
}

/// A 4-bit weight read back from its two tensors (`<name>`, `<name>_scale`).
fn int4_weight(name: &str, view: &TensorView<'_>, scale_view: Option<&TensorView<'_>>) -> Result<Int4Weight, String> {
    weight_shape(name, view, scale_view)?;
    let scale_view = scale_view.expect("checked by weight_shape");
    let scales = f32_values(TensorDtype::F16, scale_view.data()).map_err(|e| e.to_string())?;
    Int4Weight::from_stored(name, view.data().to_vec(), view.shape(), scales, scale_view.shape())
}

/// An int8 weight's scales from `<name>_scale` (`scale_view`), checked by [`check_scales`].
fn int8_scales(name: &str, shape: &[usize], scale_view: Option<&TensorView<'_>>) -> Result<Vec<f32>, String> {
    let found = scale_view.and_then(stored);
    check_scales(name, shape, found)?;
    let (dtype, view) = (found.expect("checked").0, scale_view.expect("checked"));
    f32_values(dtype, view.data()).map_err(|e| e.to_string())
}

/// `q[row][..] * scales[row]`.
fn dequantised(q: &[u8], scales: &[f32]) -> Vec<f32> {
    let per_row = if scales.is_empty() { 0 } else { q.len() / scales.len() };
    q.chunks(per_row.max(1)).zip(scales).flat_map(|(row, s)| row.iter().map(move |&b| b as i8 as f32 * s)).collect()
}

/// Every tensor of the file but those `skip` names, in f32 on the CPU; `bad` words the errors
/// (each family names its weights file).
pub fn f32_tensors(
    bytes: &[u8],
    skip: impl Fn(&str) -> bool,
    bad: fn(String) -> ModelError,
) -> Result<HashMap<String, Tensor>, ModelError> {
    let file = safetensors_header::deserialize(bytes).map_err(bad)?;
    let views: HashMap<String, TensorView<'_>> = file.tensors().into_iter().filter(|(n, _)| !skip(n)).collect();
    let dtype_of = |view: &TensorView<'_>| TensorDtype::of(view.dtype());
    let is_quantised = |name: &str| matches!(views.get(name).and_then(dtype_of), Some(TensorDtype::I8 | TensorDtype::U8));
    let mut out = HashMap::with_capacity(views.len());
    for (name, view) in &views {
        if name.strip_suffix(SCALE_SUFFIX).is_some_and(is_quantised) {
            continue; // read with its weight
        }
        let scale_view = views.get(&format!("{name}{SCALE_SUFFIX}"));
        let (values, shape) = match dtype_of(view) {
            Some(TensorDtype::I8) => {
                let scales = int8_scales(name, view.shape(), scale_view).map_err(bad)?;
                (dequantised(view.data(), &scales), view.shape().to_vec())
            }
            Some(TensorDtype::U8) => {
                let w = int4_weight(name, view, scale_view).map_err(bad)?;
                (w.dequantize(), w.shape)
            }
            Some(dtype) => (f32_values(dtype, view.data())?, view.shape().to_vec()),
            None => {
                return Err(bad(format!(
                    "{name} is {:?}; weights must be F32, F16, BF16, I8 with per-channel scales or 4-bit (U8) with block scales",
                    view.dtype()
                )))
            }
        };
        let tensor = Tensor::from_vec(values, shape, &Device::Cpu).map_err(|e| bad(format!("{name}: {e}")))?;
        out.insert(name.clone(), tensor);
    }
    Ok(out)
}

/// An int8 weight: its values and one scale per output channel (a 4-bit weight converted).
pub struct Int8Weight {
    pub name: String,
    pub values: Vec<i8>,
    pub scales: Vec<f32>,
}

/// The int8 and 4-bit weights of the file that `keep` accepts (by name and the weight's
/// shape), as int8 with per-row scales, for kernels that compute on them directly (a 4-bit
/// weight is converted, [`Int4Weight::to_int8_rows`]).
pub fn int8_weights(bytes: &[u8], keep: impl Fn(&str, &[usize]) -> bool) -> Result<Vec<Int8Weight>, String> {
    let file = safetensors_header::deserialize(bytes)?;
    let mut out = Vec::new();
    for (name, view) in file.tensors() {
        let scale_view = file.tensor(&format!("{name}{SCALE_SUFFIX}")).ok();
        match TensorDtype::of(view.dtype()) {
            Some(TensorDtype::I8) if keep(&name, view.shape()) => {
                let scales = int8_scales(&name, view.shape(), scale_view.as_ref())?;
                let values = view.data().iter().map(|&b| b as i8).collect();
                out.push(Int8Weight { name, values, scales });
            }
            Some(TensorDtype::U8) if keep(&name, &weight_shape(&name, &view, scale_view.as_ref())?) => {
                let (values, scales) = int4_weight(&name, &view, scale_view.as_ref())?.to_int8_rows();
                out.push(Int8Weight { name, values, scales });
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::Dtype;

    fn file(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
        let views: Vec<_> = tensors
            .iter()
            .map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        safetensors::serialize(views, None).unwrap()
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn int8_weights_are_dequantised_row_by_row_and_floats_converted() {
        let bytes = file(&[
            ("w", Dtype::I8, vec![2, 3], [1i8, -2, 127, 0, 5, -127].iter().map(|&v| v as u8).collect()),
            ("w_scale", Dtype::F32, vec![2], f32_bytes(&[0.5, 2.0])),
            ("b", Dtype::F16, vec![2], [half::f16::from_f32(1.5), half::f16::from_f32(-3.0)].iter().flat_map(|h| h.to_le_bytes()).collect()),
            ("steps", Dtype::I64, vec![], vec![0; 8]),
        ]);
        let t = f32_tensors(&bytes, |n| n == "steps", ModelError::Weights).unwrap();
        let mut names: Vec<&String> = t.keys().collect();
        names.sort();
        assert_eq!(names, ["b", "w"]);
        assert_eq!(t["w"].to_vec2::<f32>().unwrap(), [[0.5, -1.0, 63.5], [0.0, 10.0, -254.0]]);
        assert_eq!(t["b"].to_vec1::<f32>().unwrap(), [1.5, -3.0]);
    }

    #[test]
    fn int4_weights_are_dequantised_with_their_own_shape_and_converted_to_int8() {
        // A convolution weight [3, 2, 2, 2]: 8 values a row, rows paired in the file.
        let shape = [3, 2, 2, 2];
        let values: Vec<f32> = (0..24).map(|i| (i as f32 - 11.0) * 0.25).collect();
        let w = Int4Weight::quantize(&values, &shape);
        let scales: Vec<u8> = w.scales_f16().iter().flat_map(|h| h.to_le_bytes()).collect();
        let bytes = file(&[
            ("conv", Dtype::U8, int4::packed_shape(&shape), w.packed.clone()),
            ("conv_scale", Dtype::F16, int4::scales_shape(&shape), scales),
        ]);
        let t = f32_tensors(&bytes, |_| false, ModelError::Weights).unwrap();
        assert_eq!(t.len(), 1, "the scales are read with their weight");
        assert_eq!(t["conv"].dims(), shape);
        assert_eq!(t["conv"].flatten_all().unwrap().to_vec1::<f32>().unwrap(), w.dequantize());
        let int8 = int8_weights(&bytes, |name, s| name == "conv" && s == shape).unwrap();
        assert_eq!(int8.len(), 1, "kept by its own shape, not the packed one");
        assert_eq!((int8[0].values.clone(), int8[0].scales.clone()), w.to_int8_rows());
        // Scales that do not fit the packed shape are refused in one line naming the weight.
        let wrong = file(&[
            ("conv", Dtype::U8, int4::packed_shape(&shape), w.packed.clone()),
            ("conv_scale", Dtype::F16, vec![5, 1], vec![0; 10]),
        ]);
        let e = f32_tensors(&wrong, |_| false, ModelError::Weights).unwrap_err().to_string();
        assert!(e.contains("conv is 4-bit (U8) but conv_scale") && !e.contains('\n'), "{e}");
        let alone = file(&[("conv", Dtype::U8, int4::packed_shape(&shape), w.packed)]);
        assert!(f32_tensors(&alone, |_| false, ModelError::Weights).is_err());
    }

    #[test]
    fn int8_without_its_scales_and_other_types_are_refused() {
        let q = vec![1u8; 6];
        let missing = file(&[("w", Dtype::I8, vec![2, 3], q.clone())]);
        let e = f32_tensors(&missing, |_| false, ModelError::Weights).unwrap_err().to_string();
        assert!(e.contains("w is int8 but w_scale (F32, [2]) is missing or malformed"), "{e}");
        let short = file(&[("w", Dtype::I8, vec![2, 3], q), ("w_scale", Dtype::F32, vec![3], f32_bytes(&[1.0; 3]))]);
        assert!(f32_tensors(&short, |_| false, ModelError::Weights).is_err());
        let int64 = file(&[("steps", Dtype::I64, vec![], vec![0; 8])]);
        let e = f32_tensors(&int64, |_| false, ModelError::Weights).unwrap_err().to_string();
        assert!(e.contains("steps is I64"), "{e}");
    }
}
