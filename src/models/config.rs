//! Reading Hugging Face `config.json` and `preprocessor_config.json` into what the model and
//! the preprocessing need. Defaults are those of `transformers`' `CLIPTextConfig`,
//! `CLIPVisionConfig` and `CLIPImageProcessor`, so a sparse config reads as transformers reads it.

use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// The vision and text tower shapes of a CLIP checkpoint.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub vision: VisionConfig,
    pub text: TextConfig,
    pub projection_dim: usize,
}

/// The vision transformer's shape (`vision_config`; quick-GELU, layer norm eps 1e-5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisionConfig {
    pub embed_dim: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_channels: usize,
    pub image_size: usize,
    pub patch_size: usize,
}

/// The text transformer's shape (`text_config`; quick-GELU, layer norm eps 1e-5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextConfig {
    pub vocab_size: usize,
    pub embed_dim: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
}

#[derive(Deserialize)]
struct HfClipConfig {
    #[serde(default = "default_projection_dim")]
    projection_dim: usize,
    #[serde(default)]
    model_type: Option<String>,
    #[serde(default)]
    text_config: HfTextConfig,
    #[serde(default)]
    vision_config: HfVisionConfig,
}

fn default_projection_dim() -> usize {
    512
}
fn default_act() -> String {
    "quick_gelu".into()
}
fn default_eps() -> f64 {
    1e-5
}

#[derive(Deserialize)]
#[serde(default)]
struct HfTextConfig {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    max_position_embeddings: usize,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
}

impl Default for HfTextConfig {
    fn default() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: default_act(),
            layer_norm_eps: default_eps(),
        }
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct HfVisionConfig {
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_channels: usize,
    image_size: usize,
    patch_size: usize,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
}

impl Default for HfVisionConfig {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 224,
            patch_size: 32,
            hidden_act: default_act(),
            layer_norm_eps: default_eps(),
        }
    }
}

/// Largest value accepted for each size in `config.json` (far above any CLIP checkpoint's, so that
/// a hostile config cannot size buffers beyond what a weights file could back).
const MAX_CONFIG_SIZES: [(&str, usize); 5] = [
    ("hidden_size", 1 << 14),
    ("intermediate_size", 1 << 16),
    ("image_size", MAX_MODEL_IMAGE_SIDE as usize),
    ("max_position_embeddings", 1 << 12),
    ("vocab_size", 1 << 21),
];

/// Largest image side a model or preprocessing config may ask for, in pixels.
pub const MAX_MODEL_IMAGE_SIDE: u32 = 4096;

fn check_size(tower: &str, name: &str, value: usize) -> Result<(), ModelError> {
    let max = MAX_CONFIG_SIZES.iter().find(|(n, _)| *n == name).map_or(1 << 16, |(_, m)| *m);
    if value == 0 || value > max {
        return Err(ModelError::Config(format!("{tower} {name} is {value}; it must be 1 to {max}")));
    }
    Ok(())
}

fn check_supported(tower: &str, act: &str, eps: f64, hidden: usize, heads: usize) -> Result<(), ModelError> {
    if act != "quick_gelu" {
        return Err(ModelError::Config(format!(
            "{tower} hidden_act {act:?} is not supported (CLIP checkpoints from openai use \"quick_gelu\")"
        )));
    }
    if (eps - 1e-5).abs() > 1e-12 {
        return Err(ModelError::Config(format!(
            "{tower} layer_norm_eps {eps} is not supported (only 1e-5)"
        )));
    }
    if heads == 0 || hidden % heads != 0 {
        return Err(ModelError::Config(format!(
            "{tower} hidden_size {hidden} is not divisible by num_attention_heads {heads}"
        )));
    }
    Ok(())
}

impl ModelConfig {
    /// Parses a Hugging Face CLIP `config.json`.
    pub fn from_json(json: &str) -> Result<Self, ModelError> {
        let hf: HfClipConfig =
            serde_json::from_str(json).map_err(|e| ModelError::Config(e.to_string()))?;
        if let Some(t) = &hf.model_type {
            if t != "clip" {
                return Err(ModelError::Config(format!(
                    "model_type is {t:?}, expected \"clip\""
                )));
            }
        }
        let (t, v) = (&hf.text_config, &hf.vision_config);
        check_supported("text_config", &t.hidden_act, t.layer_norm_eps, t.hidden_size, t.num_attention_heads)?;
        check_supported("vision_config", &v.hidden_act, v.layer_norm_eps, v.hidden_size, v.num_attention_heads)?;
        for (name, value) in [
            ("hidden_size", t.hidden_size),
            ("intermediate_size", t.intermediate_size),
            ("max_position_embeddings", t.max_position_embeddings),
            ("vocab_size", t.vocab_size),
        ] {
            check_size("text_config", name, value)?;
        }
        for (name, value) in [
            ("hidden_size", v.hidden_size),
            ("intermediate_size", v.intermediate_size),
            ("image_size", v.image_size),
        ] {
            check_size("vision_config", name, value)?;
        }
        check_size("config", "projection_dim", hf.projection_dim)?;
        if v.num_channels != 3 {
            return Err(ModelError::Config(format!("vision_config num_channels is {}; only 3 (RGB) is supported", v.num_channels)));
        }
        if v.patch_size == 0 || v.image_size % v.patch_size != 0 {
            return Err(ModelError::Config(format!(
                "vision image_size {} is not a multiple of patch_size {}",
                v.image_size, v.patch_size
            )));
        }
        Ok(Self {
            vision: VisionConfig {
                embed_dim: v.hidden_size,
                intermediate_size: v.intermediate_size,
                num_hidden_layers: v.num_hidden_layers,
                num_attention_heads: v.num_attention_heads,
                num_channels: v.num_channels,
                image_size: v.image_size,
                patch_size: v.patch_size,
            },
            text: TextConfig {
                vocab_size: t.vocab_size,
                embed_dim: t.hidden_size,
                intermediate_size: t.intermediate_size,
                max_position_embeddings: t.max_position_embeddings,
                num_hidden_layers: t.num_hidden_layers,
                num_attention_heads: t.num_attention_heads,
            },
            projection_dim: hf.projection_dim,
        })
    }
}

/// What `CLIPImageProcessor` does to a photo: resize the shortest edge, centre crop, rescale,
/// normalise. Stored in catalogs so that a page can check it runs the same preprocessing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreprocessConfig {
    pub shortest_edge: u32,
    pub crop_height: u32,
    pub crop_width: u32,
    pub rescale_factor: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Default for PreprocessConfig {
    /// The values of `openai/clip-vit-base-patch32`'s preprocessor_config.json.
    fn default() -> Self {
        Self {
            shortest_edge: 224,
            crop_height: 224,
            crop_width: 224,
            rescale_factor: 1.0 / 255.0,
            mean: [0.481_454_66, 0.457_827_5, 0.408_210_73],
            std: [0.268_629_54, 0.261_302_58, 0.275_777_1],
        }
    }
}

#[derive(Deserialize)]
struct HfPreprocessor {
    #[serde(default)]
    size: Option<serde_json::Value>,
    #[serde(default)]
    crop_size: Option<serde_json::Value>,
    #[serde(default)]
    image_mean: Option<[f32; 3]>,
    #[serde(default)]
    image_std: Option<[f32; 3]>,
    #[serde(default)]
    rescale_factor: Option<f32>,
    #[serde(default)]
    resample: Option<u32>,
    #[serde(default)]
    do_resize: Option<bool>,
    #[serde(default)]
    do_center_crop: Option<bool>,
    #[serde(default)]
    do_normalize: Option<bool>,
    #[serde(default)]
    do_rescale: Option<bool>,
}

fn edge_of(v: &serde_json::Value, keys: &[&str]) -> Option<u32> {
    // Values past u32 become u32::MAX (refused by the bound), never a wrapped small one.
    let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    if let Some(n) = v.as_u64() {
        return Some(clamp(n));
    }
    keys.iter().find_map(|k| v.get(*k).and_then(|x| x.as_u64())).map(clamp)
}

impl PreprocessConfig {
    /// Parses a Hugging Face `preprocessor_config.json` of a `CLIPImageProcessor`.
    pub fn from_json(json: &str) -> Result<Self, ModelError> {
        let bad = |m: String| ModelError::Preprocessor(m);
        let hf: HfPreprocessor = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        for (flag, name) in [
            (hf.do_resize, "do_resize"),
            (hf.do_center_crop, "do_center_crop"),
            (hf.do_normalize, "do_normalize"),
            (hf.do_rescale, "do_rescale"),
        ] {
            if flag == Some(false) {
                return Err(bad(format!("{name}: false is not supported")));
            }
        }
        if let Some(r) = hf.resample {
            if r != 3 {
                return Err(bad(format!(
                    "resample {r} is not supported (only 3, bicubic)"
                )));
            }
        }
        let d = Self::default();
        let shortest_edge = match &hf.size {
            Some(v) => edge_of(v, &["shortest_edge"])
                .ok_or_else(|| bad(format!("size {v} has no shortest_edge")))?,
            None => d.shortest_edge,
        };
        let (crop_height, crop_width) = match &hf.crop_size {
            Some(v) => {
                let h = edge_of(v, &["height"]).ok_or_else(|| bad(format!("crop_size {v} has no height")))?;
                let w = v.get("width").and_then(|x| x.as_u64()).map(|n| u32::try_from(n).unwrap_or(u32::MAX)).unwrap_or(h);
                (h, w)
            }
            None => (d.crop_height, d.crop_width),
        };
        let cfg = Self {
            shortest_edge,
            crop_height,
            crop_width,
            rescale_factor: hf.rescale_factor.unwrap_or(d.rescale_factor),
            mean: hf.image_mean.unwrap_or(d.mean),
            std: hf.image_std.unwrap_or(d.std),
        };
        let max = MAX_MODEL_IMAGE_SIDE;
        if [cfg.shortest_edge, cfg.crop_height, cfg.crop_width].iter().any(|&n| n == 0 || n > max) {
            return Err(bad(format!("size and crop_size must be 1 to {max} pixels")));
        }
        if cfg.std.iter().any(|s| *s <= 0.0) {
            return Err(bad("image_std must be positive".into()));
        }
        Ok(cfg)
    }

    /// Whether two preprocessing configs produce the same pixels (to float tolerance).
    pub fn same_as(&self, other: &Self) -> bool {
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-6;
        self.shortest_edge == other.shortest_edge
            && self.crop_height == other.crop_height
            && self.crop_width == other.crop_width
            && close(self.rescale_factor, other.rescale_factor)
            && self.mean.iter().zip(other.mean).all(|(a, b)| close(*a, b))
            && self.std.iter().zip(other.std).all(|(a, b)| close(*a, b))
    }
}
