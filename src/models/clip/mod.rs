//! The CLIP towers ([`crate::models::clip::vision`], [`crate::models::clip::text`]), loaded from a Hugging Face
//! `model.safetensors` (f32, f16 or bf16, or int8 vision weights; full model or vision tower only)
//! with every tensor checked against `config.json` first, so a mismatched file is refused with the
//! name of what is wrong.

pub mod candle_engine;
pub mod candle_loader;
pub mod candle_vision;
pub mod encoder;
/// Writing weight files (`clipmatch export`, the benchmarks' ONNX comparison): not in the wasm package.
#[cfg(not(target_arch = "wasm32"))]
pub mod export;
pub mod text;
pub mod vision;

use crate::models::config::ModelConfig;
use crate::error::ModelError;
use crate::models::clip::text::{TextEncoder, TextEncoderBuilder};
use crate::models::clip::vision::{is_linear_weight, Precision, VisionEncoder, VisionEncoderBuilder};
use crate::models::quantised_tensors::{check_expected, stores_quantised, ScalePairs};
use crate::models::safetensors_stream::{f32_values, push_to, SafetensorsStream, TensorInfo, TensorSink};

/// Which towers a weights file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Towers {
    VisionOnly,
    VisionAndText,
}

/// The tensors of a Hugging Face encoder's layers (CLIP's and SigLIP's name them alike).
pub(crate) fn encoder_tensors(prefix: &str, layers: usize, hidden: usize, inter: usize, out: &mut Vec<(String, Vec<usize>)>) {
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

/// How many tensors [`expected_tensors`] lists, computed without listing them.
fn expected_count(cfg: &ModelConfig, towers: Towers) -> Result<usize, ModelError> {
    let per_layer = 16;
    let vision = cfg.vision.num_hidden_layers.checked_mul(per_layer).and_then(|n| n.checked_add(8));
    let text = match towers {
        Towers::VisionOnly => Some(0),
        Towers::VisionAndText => cfg.text.num_hidden_layers.checked_mul(per_layer).and_then(|n| n.checked_add(5)),
    };
    vision
        .zip(text)
        .and_then(|(v, t)| v.checked_add(t))
        .ok_or_else(|| ModelError::Config("num_hidden_layers is too large".into()))
}

/// Checks the file's header against what `want` needs (names, shapes, dtypes, no extra layers);
/// `None` takes whatever towers the file holds.
pub(crate) fn check_tensors(tensors: &[TensorInfo], cfg: &ModelConfig, want: Option<Towers>) -> Result<Towers, ModelError> {
    let has_text = tensors.iter().any(|t| t.name.starts_with("text_model."));
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
        if tensors.iter().any(|t| t.name.starts_with(&extra)) {
            return Err(ModelError::WeightsMismatch(format!(
                "the file has more than the {layers} {prefix} layers config.json declares"
            )));
        }
    }
    // Counted before the names are listed: a config.json declaring absurdly many layers must
    // not make that list enormous (a few missing tensors are still named below).
    let needed = expected_count(cfg, towers)?;
    if needed > tensors.len().saturating_add(1024) {
        return Err(ModelError::WeightsMismatch(format!(
            "the file has {} tensors; config.json's {} {needed}",
            tensors.len(),
            if towers == Towers::VisionOnly { "vision tower needs" } else { "towers need" }
        )));
    }
    check_expected(tensors, &expected_tensors(cfg, towers), is_linear_weight)?;
    Ok(towers)
}

/// Builds a [`ClipModel`] from a safetensors file fed in chunks ([`Self::push`]): each tensor is
/// converted and put in place as soon as it has arrived, so the whole file is never held.
pub struct ModelLoader {
    config: ModelConfig,
    want: Option<Towers>,
    /// `None`: as stored (int8 weights load as int8, float weights as f32).
    precision: Option<Precision>,
    /// Quantised weights (int8 or 4-bit) and their scales, each waiting for the other.
    pairs: ScalePairs,
    stream: SafetensorsStream,
    /// Set once the header has been read and checked.
    towers: Option<Towers>,
    vision: Option<VisionEncoderBuilder>,
    text: Option<TextEncoderBuilder>,
}

impl ModelLoader {
    /// `want` chooses the towers (`None`: all the file holds).
    pub fn new(config: ModelConfig, want: Option<Towers>) -> Self {
        Self {
            config,
            want,
            precision: None,
            pairs: ScalePairs::default(),
            stream: SafetensorsStream::new(),
            towers: None,
            vision: None,
            text: None,
        }
    }

    /// Tells the loader the file's length before it arrives (a mapped file's, or the size the
    /// page expects from `bundle.json`): a header whose data would not fill exactly that many
    /// bytes is refused before any tensor buffer is allocated from it.
    pub fn with_file_len(mut self, len: usize) -> Self {
        self.stream = SafetensorsStream::with_file_len(len);
        self
    }

    /// Holds the vision tower's linear layers at `precision` whatever the file stores (float
    /// weights are quantised when loading at int8; int8 weights cannot load at f32).
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = Some(precision);
        self
    }

    /// Feeds the next bytes of `model.safetensors`.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), ModelError> {
        push_to(self, |l| &mut l.stream, chunk)
    }

    /// Bytes the file has in all, once its header has arrived.
    pub fn expected_len(&self) -> Option<usize> {
        self.stream.expected_len()
    }

    /// The model, once the whole file has arrived.
    pub fn finish(self) -> Result<ClipModel, ModelError> {
        self.stream.finish()?;
        let config = self.config;
        let vision = VisionTower {
            encoder: self.vision.expect("the header created the encoder").finish()?,
            channels: config.vision.num_channels,
        };
        let text = self.text.map(|b| b.finish().map(|encoder| TextTower { encoder })).transpose()?;
        Ok(ClipModel { config, vision, text })
    }
}

impl TensorSink for ModelLoader {
    fn header(&mut self, tensors: &[TensorInfo]) -> Result<(), ModelError> {
        let towers = check_tensors(tensors, &self.config, self.want)?;
        let stored_int8 = stores_quantised(tensors, is_linear_weight);
        let precision = match (self.precision, stored_int8) {
            (Some(Precision::F32), true) => {
                return Err(ModelError::Weights("the weights are int8 or 4-bit; they cannot be loaded at f32 precision".into()))
            }
            (Some(p), _) => p,
            (None, true) => Precision::Int8,
            (None, false) => Precision::F32,
        };
        let vision_names = expected_tensors(&self.config, Towers::VisionOnly).into_iter().map(|(n, _)| n);
        self.vision =
            Some(VisionEncoderBuilder::new(&self.config.vision, self.config.projection_dim, precision, vision_names));
        if towers == Towers::VisionAndText {
            let all = expected_tensors(&self.config, Towers::VisionAndText).into_iter().map(|(n, _)| n);
            let text_names = all.filter(|n| n.starts_with("text_"));
            self.text = Some(TextEncoderBuilder::new(&self.config.text, self.config.projection_dim, text_names));
        }
        self.towers = Some(towers);
        Ok(())
    }

    fn tensor(&mut self, info: &TensorInfo, data: &[u8]) -> Result<(), ModelError> {
        let vision = self.vision.as_mut().expect("the header comes first");
        if vision.wants(&info.name) {
            return self.pairs.tower_tensor(info, data, |name, values| vision.put(name, values));
        }
        if self.pairs.scales(info, data, is_linear_weight, |name, values| vision.put(name, values))? {
            return Ok(());
        }
        if let Some(text) = self.text.as_mut().filter(|t| t.wants(&info.name)) {
            let dtype = info.dtype.expect("checked with the header");
            return text.put(&info.name, &f32_values(dtype, data)?);
        }
        Ok(())
    }
}

/// The image encoder: vision transformer + visual projection.
pub struct VisionTower {
    encoder: VisionEncoder,
    channels: usize,
}

/// The text encoder: text transformer + text projection.
pub struct TextTower {
    encoder: TextEncoder,
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
        let mut loader = ModelLoader::new(config, want).with_file_len(weights.len());
        loader.push(weights)?;
        loader.finish()
    }

    /// Dimension of the joint embedding space.
    pub fn embedding_dim(&self) -> usize {
        self.config.projection_dim
    }

    pub fn text(&self) -> Result<&TextTower, ModelError> {
        self.text.as_ref().ok_or(ModelError::NoTextTower)
    }
}

impl VisionTower {
    /// Side of the square image the tower takes (224 for ViT-B/32).
    pub fn image_size(&self) -> usize {
        self.encoder.image_size()
    }

    /// Bytes of weights the tower holds in memory.
    pub fn weight_bytes(&self) -> usize {
        self.encoder.weight_bytes()
    }

    /// Unnormalised image embeddings of `n` CHW images laid out one after the other.
    pub fn embed(&self, pixel_values: &[f32], n: usize) -> Result<Vec<Vec<f32>>, ModelError> {
        let s = self.image_size();
        if pixel_values.len() != n * self.channels * s * s {
            return Err(ModelError::InputSize(format!("expected {n} images of {}x{s}x{s} values", self.channels)));
        }
        Ok(self.encoder.embed(pixel_values, n))
    }
}

impl TextTower {
    /// Unnormalised text embeddings of token id rows (start and end-of-text tokens included;
    /// rows may differ in length, and padding after end-of-text changes nothing).
    pub fn embed(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, ModelError> {
        self.encoder.embed(ids)
    }

    /// Bytes of weights the tower holds in memory.
    pub fn weight_bytes(&self) -> usize {
        self.encoder.weight_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tensor_count_is_that_of_the_list() {
        let mut cfg = ModelConfig::from_json(include_str!("../../../tests/fixtures/tiny-clip/config.json")).unwrap();
        for layers in [0, 1, 12] {
            cfg.vision.num_hidden_layers = layers;
            cfg.text.num_hidden_layers = layers + 1;
            for towers in [Towers::VisionOnly, Towers::VisionAndText] {
                assert_eq!(expected_count(&cfg, towers).unwrap(), expected_tensors(&cfg, towers).len());
            }
        }
        cfg.vision.num_hidden_layers = usize::MAX / 4;
        assert!(expected_count(&cfg, Towers::VisionOnly).is_err());
    }
}
