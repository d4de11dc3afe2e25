//! OpenAI CLIP on candle (the `--engine candle` of the CLI, `?engine=candle` in the page): the
//! image tower built from candle and candle-nn pieces ([`CandleVision`]: f32 weights for a float
//! file, an int8 or 4-bit export's linear weights held once as int8, [`crate::models::candle_linear`]), the text
//! tower candle-transformers' `clip` text transformer from our [`ModelConfig`] (quick-GELU,
//! layer norm eps 1e-5, as that config requires), weights read from the same safetensors bytes
//! (f32, f16 or bf16; int8 or 4-bit for the image tower's linear layers), every tensor checked
//! against the config first. Texts are pooled where this crate's text tower pools them
//! ([`super::text::pooled_position`]), one text per forward pass, so rows may differ in length.

use std::collections::HashMap;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::{Linear, VarBuilder};
use candle_transformers::models::clip::text_model::{Activation, ClipTextConfig, ClipTextTransformer};

use crate::error::ModelError;
use crate::models::candle_weights::f32_tensors;
use crate::models::clip::candle_loader::CandleVisionLoader;
use crate::models::clip::candle_vision::CandleVision;
use crate::models::clip::text::pooled_position;
use crate::models::clip::{expected_tensors, Towers};
use crate::models::config::ModelConfig;
use crate::models::safetensors_header;
use crate::models::siglip::check_float_tensors;

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
    vision: CandleVision,
    text: Option<CandleText>,
}

/// candle-transformers' config of the text tower from ours.
fn text_config(c: &ModelConfig) -> ClipTextConfig {
    let t = &c.text;
    ClipTextConfig {
        vocab_size: t.vocab_size,
        embed_dim: t.embed_dim,
        activation: Activation::QuickGelu,
        intermediate_size: t.intermediate_size,
        max_position_embeddings: t.max_position_embeddings,
        pad_with: None,
        num_hidden_layers: t.num_hidden_layers,
        num_attention_heads: t.num_attention_heads,
        projection_dim: c.projection_dim,
    }
}

/// Checks names, shapes and dtypes of what the towers read, before candle reads them.
fn check_tensors(weights: &[u8], config: &ModelConfig, towers: Towers) -> Result<(), ModelError> {
    let file = safetensors_header::deserialize(weights).map_err(ModelError::Weights)?;
    let tensors: HashMap<String, _> = file.tensors().into_iter().collect();
    check_float_tensors(&tensors, &expected_tensors(config, towers))
}

impl CandleClip {
    /// Builds the towers asked for from `model.safetensors` bytes (the image tower as
    /// [`CandleVisionLoader`] builds it, the text tower in f32).
    pub fn load(config: &ModelConfig, weights: &[u8], towers: Towers) -> Result<Self, ModelError> {
        check_tensors(weights, config, towers)?;
        let mut loader = CandleVisionLoader::new(config.clone()).with_file_len(weights.len());
        loader.push(weights)?;
        let mut model = Self::from_vision(config, loader.finish()?);
        if towers == Towers::VisionAndText {
            let tensors = f32_tensors(weights, |name| !name.starts_with("text_"), ModelError::Weights)?;
            let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
            let text_cfg = text_config(config);
            model.text = Some(CandleText {
                transformer: ClipTextTransformer::new(vb.pp("text_model"), &text_cfg).map_err(engine)?,
                projection: candle_nn::linear_no_bias(text_cfg.embed_dim, config.projection_dim, vb.pp("text_projection"))
                    .map_err(engine)?,
                vocab_size: text_cfg.vocab_size,
            });
        }
        Ok(model)
    }

    /// The model of an image tower alone (loaded by [`CandleVisionLoader`], as the page does).
    pub fn from_vision(config: &ModelConfig, vision: CandleVision) -> Self {
        Self { config: config.clone(), vision, text: None }
    }

    /// Linear layers of the image tower computing on int8 values.
    pub fn quantised_layers(&self) -> usize {
        self.vision.quantised_layers()
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
        self.vision.forward(&input).and_then(|t| t.to_vec2()).map_err(engine)
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
