//! SigLIP's image tower on candle: ViT + attention-pooling (MAP) head, whose output is
//! transformers' `get_image_features` (not normalised).

use candle_core::{Device, Module, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::siglip;

use crate::error::ModelError;
use crate::models::clip::encoder_tensors;
use crate::models::siglip::engine_error;

/// Every tensor the image tower needs, with its shape, as transformers names them.
pub fn expected_tensors(cfg: &siglip::VisionConfig) -> Vec<(String, Vec<usize>)> {
    let (h, inter, p) = (cfg.hidden_size, cfg.intermediate_size, cfg.patch_size);
    let mut out = vec![
        ("vision_model.embeddings.patch_embedding.weight".into(), vec![h, cfg.num_channels, p, p]),
        ("vision_model.embeddings.patch_embedding.bias".into(), vec![h]),
        ("vision_model.embeddings.position_embedding.weight".into(), vec![cfg.num_patches(), h]),
    ];
    encoder_tensors("vision_model", cfg.num_hidden_layers, h, inter, &mut out);
    let head = "vision_model.head";
    for (name, shape) in [
        ("vision_model.post_layernorm.weight", vec![h]),
        ("vision_model.post_layernorm.bias", vec![h]),
        ("probe", vec![1, 1, h]),
        ("attention.in_proj_weight", vec![3 * h, h]),
        ("attention.in_proj_bias", vec![3 * h]),
        ("attention.out_proj.weight", vec![h, h]),
        ("attention.out_proj.bias", vec![h]),
        ("layernorm.weight", vec![h]),
        ("layernorm.bias", vec![h]),
        ("mlp.fc1.weight", vec![inter, h]),
        ("mlp.fc1.bias", vec![inter]),
        ("mlp.fc2.weight", vec![h, inter]),
        ("mlp.fc2.bias", vec![h]),
    ] {
        let full = if name.starts_with("vision_model.") { name.to_string() } else { format!("{head}.{name}") };
        out.push((full, shape));
    }
    out
}

/// The image tower, on the CPU.
pub struct VisionTower {
    model: siglip::VisionModel,
    channels: usize,
    image_size: usize,
}

impl VisionTower {
    pub fn load(cfg: &siglip::VisionConfig, vb: VarBuilder) -> Result<Self, ModelError> {
        let model = siglip::VisionModel::new(cfg, true, vb.pp("vision_model")).map_err(engine_error)?;
        Ok(Self {
            model,
            channels: cfg.num_channels,
            image_size: cfg.image_size,
        })
    }

    /// Side of the square image the tower takes.
    pub fn image_size(&self) -> usize {
        self.image_size
    }

    /// Unnormalised image embeddings of `n` CHW images laid out one after the other.
    pub fn embed(&self, pixel_values: &[f32], n: usize) -> Result<Vec<Vec<f32>>, ModelError> {
        let s = self.image_size;
        if pixel_values.len() != n * self.channels * s * s {
            return Err(ModelError::InputSize(format!("expected {n} images of {}x{s}x{s} values", self.channels)));
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let input = Tensor::from_slice(pixel_values, (n, self.channels, s, s), &Device::Cpu).map_err(engine_error)?;
        let out = self.model.forward(&input).map_err(engine_error)?;
        out.to_vec2::<f32>().map_err(engine_error)
    }
}
