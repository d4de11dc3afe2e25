//! Writing the OpenAI CLIP vision tower alone as a safetensors file, f16, f32, int8 or int4: what the
//! page downloads (about 176 MB for ViT-B/32 in f16, against 605 MB for the whole f32
//! checkpoint). The storage types and the int8 layout are every family's ([`crate::models::export`]).

use crate::error::ModelError;
use crate::models::clip::vision::is_linear_weight;
use crate::models::clip::{expected_tensors, Towers};
use crate::models::config::ModelConfig;
pub use crate::models::export::ExportDtype;
use crate::models::export::{export_tensors, Quantisable};

/// The `vision_model.*` and `visual_projection.*` tensors of a checkpoint, checked against the
/// config, stored as `dtype` (int8, int4: the linear layers' weights; the projection, which
/// writes the embedding, at most int8), with transformers' names.
pub fn vision_tower(weights: &[u8], config: &ModelConfig, dtype: ExportDtype) -> Result<Vec<u8>, ModelError> {
    export_tensors(weights, expected_tensors(config, Towers::VisionOnly), dtype, |name, _| match name {
        "visual_projection.weight" => Quantisable::Int8,
        _ if is_linear_weight(name) => Quantisable::Yes,
        _ => Quantisable::No,
    })
}
