//! Writing an image tower alone as a safetensors file, what `clipmatch bundle` puts in the page's
//! bundle. Shared by every family's export (`clip::export`, `mobileclip::export`,
//! `siglip::export`): the storage types, any float tensor read as f32, the int8 layout (a
//! weight as int8 with one f32 scale per output channel, its first dimension, in
//! `<name>_scale`), which this crate's CLIP kernels read as is and the candle families
//! dequantise at load ([`crate::models::candle_weights`]), and the 4-bit one
//! ([`crate::models::int4`]), read back as int8.

use std::collections::HashMap;

use half::f16;
use safetensors::{tensor::TensorView, Dtype};

use crate::error::ModelError;
use crate::kernels::qgemm::quantize_rows;
use crate::models::candle_weights::SCALE_SUFFIX;
use crate::models::config::ModelConfig;
use crate::models::int4::{self, Int4Weight};
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
    /// The same weights in 4 bits, blocks of 32 with one f16 scale each ([`crate::models::int4`]),
    /// everything else as f16: about an eighth of f32's size. They run as int8 once loaded.
    #[cfg_attr(
        not(target_family = "wasm"),
        value(help = "4-bit weights (blocks of 32, f16 scales), the rest f16: about an eighth of f32's size")
    )]
    Int4,
}

impl ExportDtype {
    pub const ALL: [ExportDtype; 4] = [ExportDtype::F16, ExportDtype::F32, ExportDtype::Int8, ExportDtype::Int4];

    pub fn name(self) -> &'static str {
        match self {
            ExportDtype::F16 => "f16",
            ExportDtype::F32 => "f32",
            ExportDtype::Int8 => "int8",
            ExportDtype::Int4 => "int4",
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

/// How far below f16 a tower tensor may be stored (each family says, by name and shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantisable {
    /// Never: f16 at int8 and int4 (biases, norms, and what a family keeps precise).
    No,
    /// int8 at both int8 and int4: the layer that writes the embedding. Its 4-bit error reaches
    /// the embedding without passing through any later layer; on the ViT-B/32 fixture keeping
    /// OpenAI CLIP's projection in int8 took the int4 tower's centred cosine to f32 on 100
    /// grocery photos from 0.71 to 0.84 for 0.17 MB more (`benches/quantised_fidelity.py`).
    Int8,
    /// int8 at int8, 4-bit at int4: a weight whose rows are output channels.
    Yes,
}

/// The tower of `expected` tensors (name, shape) of a checkpoint as `dtype`, each checked to be
/// there with that shape; `quantised` says which may be stored as int8 or 4-bit.
pub fn export_tensors(
    weights: &[u8],
    expected: Vec<(String, Vec<usize>)>,
    dtype: ExportDtype,
    quantised: impl Fn(&str, &[usize]) -> Quantisable,
) -> Result<Vec<u8>, ModelError> {
    let st = crate::models::safetensors_header::deserialize(weights).map_err(ModelError::Weights)?;
    let mut out = TowerWriter::new(dtype);
    for (name, shape) in expected {
        let view = st.tensor(&name).map_err(|_| ModelError::WeightsMismatch(format!("{name} is missing")))?;
        if view.shape() != shape.as_slice() {
            return Err(ModelError::WeightsMismatch(format!("{name} has shape {:?}, the config implies {shape:?}", view.shape())));
        }
        let values = float_values(&name, &view)?;
        let how = quantised(&name, &shape);
        out.add(name, shape, &values, how);
    }
    out.finish()
}

/// The tensors of an exported tower, stored as one [`ExportDtype`].
pub struct TowerWriter {
    dtype: ExportDtype,
    tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
    metadata: HashMap<String, String>,
}

impl TowerWriter {
    pub fn new(dtype: ExportDtype) -> Self {
        Self { dtype, tensors: Vec::new(), metadata: HashMap::from([("format".to_string(), "pt".to_string())]) }
    }

    /// Makes `key: value` the file's `__metadata__` (a layout the reader checks), in place of
    /// `format: pt`: the safetensors crate writes a map of several entries in no fixed order,
    /// and an export must be the same bytes each time.
    pub fn with_metadata(mut self, key: &str, value: &str) -> Self {
        self.metadata = HashMap::from([(key.to_string(), value.to_string())]);
        self
    }

    /// Adds tensor `name` of `shape`, stored as [`ExportDtype`] and `how` allow: int8 + scales
    /// at [`ExportDtype::Int8`] (and at [`ExportDtype::Int4`] for [`Quantisable::Int8`]), 4-bit +
    /// block scales at [`ExportDtype::Int4`]; everything else is f16 there.
    pub fn add(&mut self, name: String, shape: Vec<usize>, values: &[f32], how: Quantisable) {
        let weight = how != Quantisable::No && shape.len() >= 2 && !values.is_empty();
        let dtype = match (self.dtype, how) {
            (ExportDtype::Int4, Quantisable::Int8) => ExportDtype::Int8,
            (dtype, _) => dtype,
        };
        match dtype {
            ExportDtype::F32 => {
                let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                self.tensors.push((name, Dtype::F32, shape, bytes));
            }
            ExportDtype::Int8 if weight => {
                let rows = shape[0];
                let (q, scales) = quantize_rows(values, values.len() / rows);
                let scale_bytes = scales.iter().flat_map(|v| v.to_le_bytes()).collect();
                self.tensors.push((format!("{name}{SCALE_SUFFIX}"), Dtype::F32, vec![rows], scale_bytes));
                self.tensors.push((name, Dtype::I8, shape, q.iter().map(|&v| v as u8).collect()));
            }
            ExportDtype::Int4 if weight => {
                let w = Int4Weight::quantize(values, &shape);
                let scale_bytes = w.scales_f16().iter().flat_map(|v| v.to_le_bytes()).collect();
                self.tensors.push((format!("{name}{SCALE_SUFFIX}"), Dtype::F16, int4::scales_shape(&shape), scale_bytes));
                self.tensors.push((name, Dtype::U8, int4::packed_shape(&shape), w.packed));
            }
            ExportDtype::F16 | ExportDtype::Int8 | ExportDtype::Int4 => {
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
        safetensors::serialize(views, Some(self.metadata.clone())).map_err(|e| ModelError::Weights(e.to_string()))
    }
}

/// The image tower of a `family` folder's weights as `dtype`. `config`: the folder's config
/// file (`config.json`; `open_clip_config.json` for MobileCLIP).
pub fn vision_tower(family: Family, config: &str, weights: &[u8], dtype: ExportDtype) -> Result<Vec<u8>, ModelError> {
    match family {
        Family::OpenAiClip => clip::export::vision_tower(weights, &ModelConfig::from_json(config)?, dtype),
        Family::MobileClip => mobileclip::export::vision_tower(config, weights, dtype),
        Family::Siglip => siglip::export::vision_tower(config, weights, dtype),
    }
}

/// What `clipmatch bundle` exports when `--dtype` is not given: int8, for every family, where the
/// int8 tower ranks grocery photos as f16 does: the rankings it changes against f32 are near-ties
/// (the swapped products' f32 scores are closer than the scores moved), as f16's are
/// (`examples/export_fidelity.rs MODEL 100 f16,int8`, 100 phone photos against the 31 products,
/// full-size random-weight models):
/// - OpenAI CLIP ViT-B/32: int8 99/100 top-5 identical (the one change swaps two products 0.00001
///   apart), 88 MB against f16's 176 MB (2026-11-29);
/// - SigLIP2 base: int8 99/100, 94 MB against 187 MB (2026-11-29);
/// - MobileCLIP2-S0: int8 94/100, top-1 changed for 1, swaps at most 0.00032 apart with scores
///   moved up to 0.00081; f16 98/100, top-1 changed for 1 (2026-12-08). 12 MB against 23 MB, 37 MB
///   of page memory against 81 MB, and 0.72x the f16 tower's time in Chromium.
pub fn default_dtype(family: Family) -> ExportDtype {
    match family {
        Family::OpenAiClip | Family::Siglip | Family::MobileClip => ExportDtype::Int8,
    }
}

/// The least cosine an exported tower's embedding of a test image must have to the folder's
/// model's: `clipmatch bundle` checks it before writing anything, and refuses in one line naming
/// the figure. The int8 bounds sit under what was measured (`examples/export_fidelity.rs`, fixture
/// and grocery photos, 2026-11-29): OpenAI CLIP ViT-B/32 random min 0.99994; MobileCLIP2-S0
/// full-size, calibrated BatchNorm, min 0.99996 (narrow fixture 0.99998); MobileCLIP-B (ViT-MCi,
/// a ViT-B/16 like OpenAI CLIP's, and so held to the same bound) full-size, calibrated BatchNorm,
/// min 0.99977; SigLIP2 base min 0.99984 (narrow fixture 0.99976). f16 measured >= 0.999997
/// everywhere. int4 (same command and day, fixture images): ViT-B/32 min 0.99707 (tiny fixture
/// 0.99226); MobileCLIP-B narrow 0.99875; SigLIP2 base 0.97455, the one family that loses this
/// much in 4 bits (its narrow fixture, 0.95184, is refused). MobileCLIP2-S0 with its convolutions
/// in 4 bits was 0.99867; with them int8 (since 2026-12-07) 0.99997 (narrow 0.99999).
pub fn min_cosine(family: Family, dtype: ExportDtype) -> f64 {
    match (dtype, family) {
        (ExportDtype::F32, _) => 0.99999,
        (ExportDtype::F16, _) => 0.9999,
        (ExportDtype::Int8, Family::OpenAiClip | Family::MobileClip) => 0.9995,
        (ExportDtype::Int8, Family::Siglip) => 0.999,
        (ExportDtype::Int4, Family::OpenAiClip) => 0.99,
        (ExportDtype::Int4, Family::MobileClip) => 0.995,
        (ExportDtype::Int4, Family::Siglip) => 0.97,
    }
}
