//! A safetensors file as candle tensors in f32, for the families candle runs: float tensors
//! (F32, F16, BF16) converted, and int8 weights in this crate's export layout
//! ([`crate::models::export`]: `<name>` as I8, `<name>_scale` as one F32 scale per output
//! channel) dequantised, so an int8 bundle downloads a quarter of f32's bytes and runs in f32.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use safetensors::tensor::TensorView;
use safetensors::SafeTensors;

use crate::error::ModelError;
use crate::models::safetensors_stream::{f32_values, TensorDtype};

/// Suffix of the tensor holding an int8 weight's scales (as the export writes it).
pub const SCALE_SUFFIX: &str = "_scale";

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

/// An int8 weight's scales from `<name>_scale` (`scale_view`), checked by [`check_scales`].
fn int8_scales(name: &str, shape: &[usize], scale_view: Option<&TensorView<'_>>) -> Result<Vec<f32>, String> {
    let dtype = scale_view.and_then(|v| TensorDtype::of(v.dtype()));
    check_scales(name, shape, dtype.zip(scale_view.map(|v| v.shape())))?;
    let view = scale_view.expect("checked");
    f32_values(dtype.expect("checked"), view.data()).map_err(|e| e.to_string())
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
    let file = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
    let views: HashMap<String, TensorView<'_>> = file.tensors().into_iter().filter(|(n, _)| !skip(n)).collect();
    let dtype_of = |view: &TensorView<'_>| TensorDtype::of(view.dtype());
    let is_int8 = |name: &str| views.get(name).and_then(dtype_of) == Some(TensorDtype::I8);
    let mut out = HashMap::with_capacity(views.len());
    for (name, view) in &views {
        if name.strip_suffix(SCALE_SUFFIX).is_some_and(is_int8) {
            continue; // read with its weight
        }
        let values = match dtype_of(view) {
            Some(TensorDtype::I8) => {
                let scales = int8_scales(name, view.shape(), views.get(&format!("{name}{SCALE_SUFFIX}"))).map_err(bad)?;
                dequantised(view.data(), &scales)
            }
            Some(dtype) => f32_values(dtype, view.data())?,
            None => {
                return Err(bad(format!(
                    "{name} is {:?}; weights must be F32, F16, BF16, or I8 with per-channel scales",
                    view.dtype()
                )))
            }
        };
        let tensor = Tensor::from_vec(values, view.shape(), &Device::Cpu).map_err(|e| bad(format!("{name}: {e}")))?;
        out.insert(name.clone(), tensor);
    }
    Ok(out)
}

/// An int8 weight as the file stores it: its values and one scale per output channel.
pub struct Int8Weight {
    pub name: String,
    pub values: Vec<i8>,
    pub scales: Vec<f32>,
}

/// The int8 weights of the file that `keep` accepts (by name and shape), for kernels that
/// compute on them directly. Their scales were checked when [`f32_tensors`] read the file.
pub fn int8_weights(bytes: &[u8], keep: impl Fn(&str, &[usize]) -> bool) -> Result<Vec<Int8Weight>, String> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (name, view) in file.tensors() {
        if TensorDtype::of(view.dtype()) != Some(TensorDtype::I8) || !keep(&name, view.shape()) {
            continue;
        }
        let scales = int8_scales(&name, view.shape(), file.tensor(&format!("{name}{SCALE_SUFFIX}")).ok().as_ref())?;
        let values = view.data().iter().map(|&b| b as i8).collect();
        out.push(Int8Weight { name, values, scales });
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
