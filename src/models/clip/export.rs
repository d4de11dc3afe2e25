//! Writing the vision tower alone as a safetensors file, f16 or f32: what the page downloads
//! (about 176 MB for ViT-B/32 in f16, against 605 MB for the whole f32 checkpoint).

use std::collections::HashMap;

use half::f16;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};

use crate::models::config::ModelConfig;
use crate::error::ModelError;
use crate::kernels::qgemm::quantize_rows;
use crate::models::clip::{expected_tensors, Towers};
use crate::models::clip::vision::is_linear_weight;

/// Storage type of an exported vision tower (`bundle --dtype`, `model.dtype` in bundle.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(target_family = "wasm"), derive(clap::ValueEnum))]
pub enum ExportDtype {
    F16,
    F32,
    /// Linear layers' weights as int8 with one f32 scale per output channel (`<name>_scale`),
    /// everything else as f16: a quarter of f32's size.
    #[cfg_attr(
        not(target_family = "wasm"),
        value(help = "int8 linear layers (per-channel scales), the rest f16: a quarter of f32's size")
    )]
    Int8,
}

impl ExportDtype {
    pub const ALL: [ExportDtype; 3] = [ExportDtype::F16, ExportDtype::F32, ExportDtype::Int8];

    pub fn name(self) -> &'static str {
        match self {
            ExportDtype::F16 => "f16",
            ExportDtype::F32 => "f32",
            ExportDtype::Int8 => "int8",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == s)
    }
}

fn to_f32(view: &TensorView<'_>) -> Result<Vec<f32>, ModelError> {
    let d = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => d.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F16 => d.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::BF16 => d
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => return Err(ModelError::Weights(format!("cannot convert {other:?} weights"))),
    })
}

/// The `vision_model.*` and `visual_projection.*` tensors of a checkpoint, checked against the
/// config, stored as `dtype`, with transformers' names.
pub fn vision_tower(weights: &[u8], config: &ModelConfig, dtype: ExportDtype) -> Result<Vec<u8>, ModelError> {
    let st = SafeTensors::deserialize(weights).map_err(|e| ModelError::Weights(e.to_string()))?;
    let mut data: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, shape) in expected_tensors(config, Towers::VisionOnly) {
        let view = st
            .tensor(&name)
            .map_err(|_| ModelError::WeightsMismatch(format!("{name} is missing")))?;
        if view.shape() != shape.as_slice() {
            return Err(ModelError::WeightsMismatch(format!(
                "{name} has shape {:?}, config.json implies {shape:?}",
                view.shape()
            )));
        }
        let values = to_f32(&view)?;
        let f16_bytes = |values: &[f32]| values.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes()).collect();
        match dtype {
            ExportDtype::F32 => {
                data.push((name, Dtype::F32, shape, values.iter().flat_map(|v| v.to_le_bytes()).collect()))
            }
            ExportDtype::Int8 if is_linear_weight(&name) => {
                let rows = shape[0];
                let (q, scales) = quantize_rows(&values, values.len() / rows);
                data.push((format!("{name}_scale"), Dtype::F32, vec![rows], scales.iter().flat_map(|v| v.to_le_bytes()).collect()));
                data.push((name, Dtype::I8, shape, q.iter().map(|&v| v as u8).collect()));
            }
            ExportDtype::F16 | ExportDtype::Int8 => data.push((name, Dtype::F16, shape, f16_bytes(&values))),
        }
    }
    let views: Vec<(String, TensorView<'_>)> = data
        .iter()
        .map(|(n, d, s, b)| Ok((n.clone(), TensorView::new(*d, s.clone(), b).map_err(|e| ModelError::Weights(e.to_string()))?)))
        .collect::<Result<_, ModelError>>()?;
    let mut metadata = HashMap::new();
    metadata.insert("format".to_string(), "pt".to_string());
    safetensors::serialize(views, Some(metadata)).map_err(|e| ModelError::Weights(e.to_string()))
}
