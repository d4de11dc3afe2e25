//! The CLIP towers of `candle-transformers`, loaded from a Hugging Face `model.safetensors`
//! (f32, f16 or bf16; full model or vision tower only) with every tensor checked against
//! `config.json` first, so a mismatched file is refused with the name of what is wrong.

use std::collections::HashMap;

use candle_core::{safetensors::Load, DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use candle_transformers::models::clip::{text_model::ClipTextTransformer, vision_model::ClipVisionTransformer};
use safetensors::SafeTensors;

use crate::config::ModelConfig;
use crate::error::ModelError;

/// Which towers a weights file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Towers {
    VisionOnly,
    VisionAndText,
}

fn encoder_tensors(prefix: &str, layers: usize, hidden: usize, inter: usize, out: &mut Vec<(String, Vec<usize>)>) {
    for l in 0..layers {
        let p = format!("{prefix}.encoder.layers.{l}");
        for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            out.push((format!("{p}.self_attn.{proj}.weight"), vec![hidden, hidden]));
            out.push((format!("{p}.self_attn.{proj}.bias"), vec![hidden]));
        }
        for ln in ["layer_norm1", "layer_norm2"] {
            out.push((format!("{p}.{ln}.weight"), vec![hidden]));
            out.push((format!("{p}.{ln}.bias"), vec![hidden]));
        }
        out.push((format!("{p}.mlp.fc1.weight"), vec![inter, hidden]));
        out.push((format!("{p}.mlp.fc1.bias"), vec![inter]));
        out.push((format!("{p}.mlp.fc2.weight"), vec![hidden, inter]));
        out.push((format!("{p}.mlp.fc2.bias"), vec![hidden]));
    }
}

/// Every tensor a tower needs, with its shape, as `transformers` names them.
pub fn expected_tensors(cfg: &ModelConfig, towers: Towers) -> Vec<(String, Vec<usize>)> {
    let v = &cfg.vision;
    let h = v.embed_dim;
    let positions = (v.image_size / v.patch_size).pow(2) + 1;
    let mut out = vec![
        ("vision_model.embeddings.class_embedding".into(), vec![h]),
        (
            "vision_model.embeddings.patch_embedding.weight".into(),
            vec![h, v.num_channels, v.patch_size, v.patch_size],
        ),
        ("vision_model.embeddings.position_embedding.weight".into(), vec![positions, h]),
        ("vision_model.pre_layrnorm.weight".into(), vec![h]),
        ("vision_model.pre_layrnorm.bias".into(), vec![h]),
    ];
    encoder_tensors("vision_model", v.num_hidden_layers, h, v.intermediate_size, &mut out);
    out.push(("vision_model.post_layernorm.weight".into(), vec![h]));
    out.push(("vision_model.post_layernorm.bias".into(), vec![h]));
    out.push(("visual_projection.weight".into(), vec![cfg.projection_dim, h]));
    if towers == Towers::VisionAndText {
        let t = &cfg.text;
        let h = t.embed_dim;
        out.push(("text_model.embeddings.token_embedding.weight".into(), vec![t.vocab_size, h]));
        out.push((
            "text_model.embeddings.position_embedding.weight".into(),
            vec![t.max_position_embeddings, h],
        ));
        encoder_tensors("text_model", t.num_hidden_layers, h, t.intermediate_size, &mut out);
        out.push(("text_model.final_layer_norm.weight".into(), vec![h]));
        out.push(("text_model.final_layer_norm.bias".into(), vec![h]));
        out.push(("text_projection.weight".into(), vec![cfg.projection_dim, h]));
    }
    out
}

/// Reads the tensors a model needs out of safetensors bytes, as f32, after checking names,
/// shapes and dtypes. `want` chooses the towers; `None` takes whatever the file holds.
fn read_tensors(
    bytes: &[u8],
    cfg: &ModelConfig,
    want: Option<Towers>,
) -> Result<(HashMap<String, Tensor>, Towers), ModelError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| ModelError::Weights(e.to_string()))?;
    let has_text = st.names().iter().any(|n| n.starts_with("text_model."));
    let towers = match want {
        Some(t) => t,
        None if has_text => Towers::VisionAndText,
        None => Towers::VisionOnly,
    };
    if towers == Towers::VisionAndText && !has_text {
        return Err(ModelError::NoTextTower);
    }
    for (prefix, layers) in [
        ("vision_model", cfg.vision.num_hidden_layers),
        ("text_model", cfg.text.num_hidden_layers),
    ] {
        let extra = format!("{prefix}.encoder.layers.{layers}.");
        if st.names().iter().any(|n| n.starts_with(&extra)) {
            return Err(ModelError::WeightsMismatch(format!(
                "the file has more than the {layers} {prefix} layers config.json declares"
            )));
        }
    }
    let expected = expected_tensors(cfg, towers);
    let mut tensors = HashMap::with_capacity(expected.len());
    let mut missing = Vec::new();
    for (name, shape) in &expected {
        let view = match st.tensor(name) {
            Ok(v) => v,
            Err(_) => {
                missing.push(name.clone());
                continue;
            }
        };
        if view.shape() != shape.as_slice() {
            return Err(ModelError::WeightsMismatch(format!(
                "{name} has shape {:?}, config.json implies {:?}",
                view.shape(),
                shape
            )));
        }
        if !matches!(
            view.dtype(),
            safetensors::Dtype::F32 | safetensors::Dtype::F16 | safetensors::Dtype::BF16
        ) {
            return Err(ModelError::Weights(format!(
                "{name} is {:?}; only F32, F16 and BF16 weights are supported",
                view.dtype()
            )));
        }
        let t = view.load(&Device::Cpu)?.to_dtype(DType::F32)?;
        tensors.insert(name.clone(), t);
    }
    if !missing.is_empty() {
        let shown: Vec<_> = missing.iter().take(3).cloned().collect();
        return Err(ModelError::WeightsMismatch(format!(
            "{} tensors are missing, e.g. {}",
            missing.len(),
            shown.join(", ")
        )));
    }
    Ok((tensors, towers))
}

/// The image encoder: vision transformer + visual projection.
pub struct VisionTower {
    transformer: ClipVisionTransformer,
    projection: Linear,
    image_size: usize,
    channels: usize,
}

/// The text encoder: text transformer + text projection.
pub struct TextTower {
    transformer: ClipTextTransformer,
    projection: Linear,
}

/// A loaded CLIP model: the vision tower, and the text tower unless it was left out.
pub struct ClipModel {
    pub config: ModelConfig,
    pub vision: VisionTower,
    pub text: Option<TextTower>,
}

impl ClipModel {
    /// Loads from `config.json` text and `model.safetensors` bytes; `want` chooses the
    /// towers (`None`: all the file holds).
    pub fn load(config_json: &str, weights: &[u8], want: Option<Towers>) -> Result<Self, ModelError> {
        let config = ModelConfig::from_json(config_json)?;
        Self::from_config(config, weights, want)
    }

    pub fn from_config(config: ModelConfig, weights: &[u8], want: Option<Towers>) -> Result<Self, ModelError> {
        let (tensors, towers) = read_tensors(weights, &config, want)?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let vision = VisionTower {
            transformer: ClipVisionTransformer::new(vb.pp("vision_model"), &config.vision)?,
            projection: candle_nn::linear_no_bias(
                config.vision.embed_dim,
                config.projection_dim,
                vb.pp("visual_projection"),
            )?,
            image_size: config.vision.image_size,
            channels: config.vision.num_channels,
        };
        let text = match towers {
            Towers::VisionOnly => None,
            Towers::VisionAndText => Some(TextTower {
                transformer: ClipTextTransformer::new(vb.pp("text_model"), &config.text)?,
                projection: candle_nn::linear_no_bias(
                    config.text.embed_dim,
                    config.projection_dim,
                    vb.pp("text_projection"),
                )?,
            }),
        };
        Ok(Self { config, vision, text })
    }

    /// Dimension of the joint embedding space.
    pub fn embedding_dim(&self) -> usize {
        self.config.projection_dim
    }

    pub fn text(&self) -> Result<&TextTower, ModelError> {
        self.text.as_ref().ok_or(ModelError::NoTextTower)
    }
}

fn rows(t: Tensor) -> Result<Vec<Vec<f32>>, ModelError> {
    Ok(t.to_dtype(DType::F32)?.to_vec2::<f32>()?)
}

impl VisionTower {
    /// Side of the square image the tower takes (224 for ViT-B/32).
    pub fn image_size(&self) -> usize {
        self.image_size
    }

    /// Unnormalised image embeddings of `n` CHW images laid out one after the other.
    pub fn embed(&self, pixel_values: &[f32], n: usize) -> Result<Vec<Vec<f32>>, ModelError> {
        let s = self.image_size;
        let x = Tensor::from_slice(pixel_values, (n, self.channels, s, s), &Device::Cpu)?;
        rows(self.transformer.forward(&x)?.apply(&self.projection)?)
    }
}

impl TextTower {
    /// Unnormalised text embeddings of token id rows of equal length (pad with end-of-text).
    pub fn embed(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, ModelError> {
        let len = ids.first().map(Vec::len).unwrap_or(0);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if ids.iter().any(|r| r.len() != len) {
            return Err(ModelError::Tokenizer("token rows of a batch must be padded to one length".into()));
        }
        let flat: Vec<u32> = ids.iter().flatten().copied().collect();
        let x = Tensor::from_vec(flat, (ids.len(), len), &Device::Cpu)?;
        rows(self.transformer.forward(&x)?.apply(&self.projection)?)
    }
}

/// Scales a vector to unit length (a zero vector stays zero).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}
