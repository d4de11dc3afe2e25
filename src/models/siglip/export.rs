//! The SigLIP image tower alone (`vision_model.*`) as a safetensors file with transformers'
//! names, f16, f32 or int8 (linear and patch-embedding weights per output channel; the position
//! embedding and the head's probe stay f16): what `clipmatch bundle` ships with the folder's
//! `config.json` and `preprocessor_config.json`.

use super::config::SiglipConfig;
use super::vision::expected_tensors;
use crate::error::ModelError;
use crate::models::export::{export_tensors, ExportDtype, Quantisable};

/// Whether a tower tensor is a weight whose rows are output channels (linear layers, the patch
/// convolution, the head's attention projection); the head's last layer, which writes the
/// embedding, at most int8.
fn is_channel_weight(name: &str, shape: &[usize]) -> Quantisable {
    let weight = shape.len() >= 2 && (name.ends_with(".weight") || name.ends_with(".in_proj_weight"));
    match name {
        _ if !weight || name.contains("position_embedding") => Quantisable::No,
        "vision_model.head.mlp.fc2.weight" => Quantisable::Int8,
        _ => Quantisable::Yes,
    }
}

/// The image tower of a `model.safetensors`, checked against `config.json`, stored as `dtype`.
pub fn vision_tower(config_json: &str, weights: &[u8], dtype: ExportDtype) -> Result<Vec<u8>, ModelError> {
    let config = SiglipConfig::from_json(config_json)?;
    export_tensors(weights, expected_tensors(&config.candle.vision_config), dtype, is_channel_weight)
}
