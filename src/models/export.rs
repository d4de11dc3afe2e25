//! Writing an image tower alone as a safetensors file, what `clipmatch bundle` puts in the page's
//! bundle. Shared by every family's export (`clip::export`, `mobileclip::export`,
//! `siglip::export`): the storage types, any float tensor read as f32, and the int8 layout:
//! a weight as int8 with one f32 scale per output channel (its first dimension) in
//! `<name>_scale`, which this crate's CLIP kernels read as is and the candle families
//! dequantise at load ([`crate::models::candle_weights`]).

use std::collections::HashMap;

use half::f16;
use safetensors::{tensor::TensorView, Dtype};

use crate::error::ModelError;
use crate::kernels::qgemm::quantize_rows;
use crate::models::candle_weights::SCALE_SUFFIX;
use crate::models::config::ModelConfig;
use crate::models::model::Family;
use crate::models::{clip, mobileclip, siglip};
use crate::models::safetensors_stream::{f32_values, TensorDtype};

/// Storage type of an exported image tower (`bundle --dtype`, `model.dtype` in bundle.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(target_family = "wasm"), derive(clap::ValueEnum))]
pub enum ExportDtype {
    F16,
    F32,
    /// Weights of linear and convolution layers as int8 with one f32 scale per output channel
    /// (`<name>_scale`), everything else as f16: about a quarter of f32's size.
    #[cfg_attr(
        not(target_family = "wasm"),
        value(help = "int8 weights (per-channel scales), the rest f16: about a quarter of f32's size")
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

/// A float tensor's values as f32 (F32, F16 or BF16 storage).
pub fn float_values(name: &str, view: &TensorView<'_>) -> Result<Vec<f32>, ModelError> {
    match TensorDtype::of(view.dtype()) {
        Some(dtype @ (TensorDtype::F32 | TensorDtype::F16 | TensorDtype::BF16)) => f32_values(dtype, view.data()),
        _ => Err(ModelError::Weights(format!("{name} is {:?}; only F32, F16 and BF16 weights are exported", view.dtype()))),
    }
}

/// The tower of `expected` tensors (name, shape) of a checkpoint as `dtype`, each checked to be
/// there with that shape; `quantised` names those stored as int8 at [`ExportDtype::Int8`].
pub fn export_tensors(
    weights: &[u8],
    expected: Vec<(String, Vec<usize>)>,
    dtype: ExportDtype,
    quantised: impl Fn(&str, &[usize]) -> bool,
) -> Result<Vec<u8>, ModelError> {
    let st = safetensors::SafeTensors::deserialize(weights).map_err(|e| ModelError::Weights(e.to_string()))?;
    let mut out = TowerWriter::new(dtype);
    for (name, shape) in expected {
        let view = st.tensor(&name).map_err(|_| ModelError::WeightsMismatch(format!("{name} is missing")))?;
        if view.shape() != shape.as_slice() {
            return Err(ModelError::WeightsMismatch(format!("{name} has shape {:?}, the config implies {shape:?}", view.shape())));
        }
        let values = float_values(&name, &view)?;
        let int8 = quantised(&name, &shape);
        out.add(name, shape, &values, int8);
    }
    out.finish()
}

/// The tensors of an exported tower, stored as one [`ExportDtype`].
pub struct TowerWriter {
    dtype: ExportDtype,
    tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
}

impl TowerWriter {
    pub fn new(dtype: ExportDtype) -> Self {
        Self { dtype, tensors: Vec::new() }
    }

    /// Adds tensor `name` of `shape`. `quantisable`: a weight whose rows are output channels
    /// (linear and convolution layers), stored as int8 + scales at [`ExportDtype::Int8`];
    /// everything else is f16 there.
    pub fn add(&mut self, name: String, shape: Vec<usize>, values: &[f32], quantisable: bool) {
        match self.dtype {
            ExportDtype::F32 => {
                let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                self.tensors.push((name, Dtype::F32, shape, bytes));
            }
            ExportDtype::Int8 if quantisable && shape.len() >= 2 && !values.is_empty() => {
                let rows = shape[0];
                let (q, scales) = quantize_rows(values, values.len() / rows);
                let scale_bytes = scales.iter().flat_map(|v| v.to_le_bytes()).collect();
                self.tensors.push((format!("{name}{SCALE_SUFFIX}"), Dtype::F32, vec![rows], scale_bytes));
                self.tensors.push((name, Dtype::I8, shape, q.iter().map(|&v| v as u8).collect()));
            }
            ExportDtype::F16 | ExportDtype::Int8 => {
                let bytes = values.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes()).collect();
                self.tensors.push((name, Dtype::F16, shape, bytes));
            }
        }
    }

    /// The safetensors file.
    pub fn finish(self) -> Result<Vec<u8>, ModelError> {
        let views: Vec<(String, TensorView<'_>)> = self
            .tensors
            .iter()
            .map(|(n, d, s, b)| {
                let view = TensorView::new(*d, s.clone(), b).map_err(|e| ModelError::Weights(e.to_string()))?;
                Ok((n.clone(), view))
            })
            .collect::<Result<_, ModelError>>()?;
        let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
        safetensors::serialize(views, Some(metadata)).map_err(|e| ModelError::Weights(e.to_string()))
    }
}

/// The image tower of a `family` folder's weights as `dtype`. `config`: the folder's config
/// file (`config.json`; `open_clip_config.json` for MobileCLIP).
pub fn vision_tower(family: Family, config: &str, weights: &[u8], dtype: ExportDtype) -> Result<Vec<u8>, ModelError> {
    match family {
        Family::OpenAiClip => clip::export::vision_tower(weights, &ModelConfig::from_json(config)?, dtype),
        Family::MobileClip => mobileclip::export::vision_tower(weights, dtype),
        Family::Siglip => siglip::export::vision_tower(config, weights, dtype),
    }
}

/// The least cosine an exported tower's embedding of a test image must have to the folder's
/// model's: `clipmatch bundle` checks it before writing anything, and refuses in one line naming
/// the figure. The int8 bounds sit under what was measured (`examples/export_fidelity.rs`, fixture
/// and grocery photos, 2026-11-29): OpenAI CLIP ViT-B/32 random min 0.99994; MobileCLIP2-S0
/// full-size, calibrated BatchNorm, min 0.99996 (narrow fixture 0.99998); MobileCLIP-B (ViT-MCi,
/// a ViT-B/16 like OpenAI CLIP's, and so held to the same bound) full-size, calibrated BatchNorm,
/// min 0.99977; SigLIP2 base min 0.99984 (narrow fixture 0.99976). f16 measured >= 0.999997
/// everywhere.
pub fn min_cosine(family: Family, dtype: ExportDtype) -> f64 {
    match (dtype, family) {
        (ExportDtype::F32, _) => 0.99999,
        (ExportDtype::F16, _) => 0.9999,
        (ExportDtype::Int8, Family::OpenAiClip | Family::MobileClip) => 0.9995,
        (ExportDtype::Int8, Family::Siglip) => 0.999,
    }
}
