//! OpenAI CLIP on candle-transformers' `clip` model (the `--engine candle` of the CLI): the
//! vision transformer and the text transformer built from our [`ModelConfig`] (quick-GELU,
//! layer norm eps 1e-5, as that config requires), weights read from the same safetensors bytes
//! (f32, f16 or bf16, or an int8 or 4-bit export dequantised to f32, its image tower's linear
//! layers run as integer products on the int8 values), every tensor checked against the config
//! first. Texts are pooled where this crate's text tower pools them
//! ([`super::text::pooled_position`]), one text per forward pass, so rows may differ in length.

use std::collections::HashMap;

use candle_core::{Device, IndexOp, Module, Tensor};
use candle_nn::Linear;
use candle_transformers::models::clip::text_model::{Activation, ClipTextConfig, ClipTextTransformer};
use candle_transformers::models::clip::vision_model::{ClipVisionConfig, ClipVisionTransformer};

use crate::error::ModelError;
use crate::models::clip::text::pooled_position;
use crate::models::clip::{expected_tensors, Towers};
use crate::models::config::ModelConfig;
use crate::models::safetensors_header;
use crate::kernels::candle_ops::Int8Weights;
use crate::models::siglip::{check_float_tensors, f32_var_builder};

fn engine(e: candle_core::Error) -> ModelError {
    ModelError::Engine(e.to_string())
}

/// The text transformer and its projection.
struct CandleText {
    transformer: ClipTextTransformer,
    projection: Linear,
    vocab_size: usize,
}

/// OpenAI CLIP's towers on candle.
pub struct CandleClip {
    config: ModelConfig,
    vision: ClipVisionTransformer,
    visual_projection: Linear,
    text: Option<CandleText>,
    /// The image tower's linear layers stored as int8 (or 4-bit), computed in int8.
    int8: Int8Weights,
}

/// candle's config of the two towers from ours.
fn candle_configs(c: &ModelConfig) -> (ClipVisionConfig, ClipTextConfig) {
    let (v, t) = (&c.vision, &c.text);
    let vision = ClipVisionConfig {
        embed_dim: v.embed_dim,
        activation: Activation::QuickGelu,
        intermediate_size: v.intermediate_size,
        num_hidden_layers: v.num_hidden_layers,
        num_attention_heads: v.num_attention_heads,
        projection_dim: c.projection_dim,
        num_channels: v.num_channels,
        image_size: v.image_size,
        patch_size: v.patch_size,
    };
    let text = ClipTextConfig {
        vocab_size: t.vocab_size,
        embed_dim: t.embed_dim,
        activation: Activation::QuickGelu,
        intermediate_size: t.intermediate_size,
        max_position_embeddings: t.max_position_embeddings,
        pad_with: None,
        num_hidden_layers: t.num_hidden_layers,
        num_attention_heads: t.num_attention_heads,
        projection_dim: c.projection_dim,
    };
    (vision, text)
}

/// Checks names, shapes and dtypes of what the towers read, before candle reads them.
fn check_tensors(weights: &[u8], config: &ModelConfig, towers: Towers) -> Result<(), ModelError> {
    let file = safetensors_header::deserialize(weights).map_err(ModelError::Weights)?;
    let tensors: HashMap<String, _> = file.tensors().into_iter().collect();
    check_float_tensors(&tensors, &expected_tensors(config, towers))
}

impl CandleClip {
    /// Builds the towers asked for from `model.safetensors` bytes (run in f32).
    pub fn load(config: &ModelConfig, weights: &[u8], towers: Towers) -> Result<Self, ModelError> {
        // Its products and element-wise operations on this crate's GEMM and thread pool.
        crate::kernels::candle_ops::install();
        check_tensors(weights, config, towers)?;
        let image_tower = |name: &str| name.starts_with("vision_model.") || name == "visual_projection.weight";
        let (vb, int8) = f32_var_builder(weights, image_tower)?;
        let (vision_cfg, text_cfg) = candle_configs(config);
        let vision = ClipVisionTransformer::new(vb.pp("vision_model"), &vision_cfg).map_err(engine)?;
        let visual_projection =
            candle_nn::linear_no_bias(vision_cfg.embed_dim, config.projection_dim, vb.pp("visual_projection")).map_err(engine)?;
        let text = match towers {
            Towers::VisionOnly => None,
            Towers::VisionAndText => Some(CandleText {
                transformer: ClipTextTransformer::new(vb.pp("text_model"), &text_cfg).map_err(engine)?,
                projection: candle_nn::linear_no_bias(text_cfg.embed_dim, config.projection_dim, vb.pp("text_projection"))
                    .map_err(engine)?,
                vocab_size: text_cfg.vocab_size,
            }),
        };
        Ok(Self { config: config.clone(), vision, visual_projection, text, int8 })
    }

    /// Dimension of the joint embedding space.
    pub fn embedding_dim(&self) -> usize {
        self.config.projection_dim
    }

    /// Side of the square image the vision tower takes.
    pub fn image_size(&self) -> usize {
        self.config.vision.image_size
    }

    /// transformers' `get_image_features` of `n` NCHW images, as one batch.
    pub fn embed_images(&self, pixel_values: &[f32], n: usize) -> Result<Vec<Vec<f32>>, ModelError> {
        let (c, s) = (self.config.vision.num_channels, self.config.vision.image_size);
        if n == 0 || pixel_values.len() != n * c * s * s {
            return Err(ModelError::InputSize(format!("expected {n} images of {c}x{s}x{s} values")));
        }
        let input = Tensor::from_slice(pixel_values, (n, c, s, s), &Device::Cpu).map_err(engine)?;
        self.int8
            .run(|| self.vision.forward(&input)?.apply(&self.visual_projection))
            .and_then(|t| t.to_vec2())
            .map_err(engine)
    }

    /// transformers' `get_text_features` of token id rows (start and end-of-text included).
    pub fn embed_texts(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, ModelError> {
        let text = self.text.as_ref().ok_or(ModelError::NoTextTower)?;
        let max_len = self.config.text.max_position_embeddings;
        ids.iter()
            .map(|row| {
                if row.is_empty() || row.len() > max_len {
                    return Err(ModelError::InputSize(format!("a text must be 1 to {max_len} token ids")));
                }
                if let Some(id) = row.iter().find(|&&id| id as usize >= text.vocab_size) {
                    return Err(ModelError::InputSize(format!("token id {id} is outside the vocabulary of {}", text.vocab_size)));
                }
                // Causal attention: the tokens after the pooled one change nothing.
                let len = pooled_position(row) + 1;
                let input = Tensor::from_slice(&row[..len], (1, len), &Device::Cpu).map_err(engine)?;
                let hidden = text.transformer.forward_with_mask(&input, usize::MAX).map_err(engine)?;
                let pooled = hidden.i((.., len - 1, ..)).map_err(engine)?;
                pooled.apply(&text.projection).and_then(|t| t.squeeze(0)?.to_vec1()).map_err(engine)
            })
            .collect()
    }
}
