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

/// What `CLIPImageProcessor` (or open_clip's eval transform) does to a photo: resize, centre
/// crop, rescale, normalise. Stored in catalogs so that a page can check it runs the same
/// preprocessing. The fields after `std` are left out of the JSON while they hold
/// `CLIPImageProcessor`'s values, so CLIP catalogs read and write as before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreprocessConfig {
    pub shortest_edge: u32,
    pub crop_height: u32,
    pub crop_width: u32,
    pub rescale_factor: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    #[serde(default, skip_serializing_if = "is_default")]
    pub interpolation: Interpolation,
    #[serde(default, skip_serializing_if = "is_default")]
    pub resize_mode: ResizeMode,
    #[serde(default, skip_serializing_if = "is_default")]
    pub arithmetic: PreprocessArithmetic,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// Pillow's resampling filter for the resize (antialiased, support scaled with the reduction).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    #[default]
    Bicubic,
    Bilinear,
}

/// How the photo is brought to the model's size (open_clip's `resize_mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeMode {
    /// The short side becomes `shortest_edge` (long side truncated), then a centre crop.
    #[default]
    Shortest,
    /// The long side fits the crop (sizes rounded), then zero padding around it.
    Longest,
    /// Both sides resized to the crop size, the aspect ratio not kept.
    Squash,
}

/// Whose arithmetic the pipeline follows where the references differ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PreprocessArithmetic {
    /// transformers: crop offset floored, rescale in float64 then cast.
    #[default]
    Transformers,
    /// torchvision (open_clip): crop offset rounded half to even, level / 255 in float32.
    Torchvision,
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
            interpolation: Interpolation::default(),
            resize_mode: ResizeMode::default(),
            arithmetic: PreprocessArithmetic::default(),
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
            ..d
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
            && self.interpolation == other.interpolation
            && self.resize_mode == other.resize_mode
            && self.arithmetic == other.arithmetic
    }

    /// `SiglipImageProcessor`'s pipeline from a SigLIP folder's `preprocessor_config.json`:
    /// resize to `size` x `size` without a crop (squash), bicubic (`resample` 3) or bilinear
    /// (2), rescale, normalise (mean = std = 0.5 on the hub). transformers resizes with Pillow,
    /// so the resize uses Pillow's own weights (the `torchvision` arithmetic; level / 255 in
    /// float32 differs from transformers' float64 rescale by at most one unit in the last place).
    pub fn from_siglip(json: &str) -> Result<Self, ModelError> {
        let bad = |m: String| ModelError::Preprocessor(format!("SigLIP processor: {m}"));
        let hf: HfPreprocessor = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        for (flag, name) in [(hf.do_resize, "do_resize"), (hf.do_normalize, "do_normalize"), (hf.do_rescale, "do_rescale")] {
            if flag == Some(false) {
                return Err(bad(format!("{name}: false is not supported")));
            }
        }
        let interpolation = match hf.resample {
            None | Some(3) => Interpolation::Bicubic,
            Some(2) => Interpolation::Bilinear,
            Some(r) => return Err(bad(format!("resample {r} is not supported (3, bicubic, or 2, bilinear)"))),
        };
        let size = match &hf.size {
            Some(v) => {
                let (h, w) = (edge_of(v, &["height"]), v.get("width").and_then(|x| x.as_u64()));
                match (h, w) {
                    (Some(h), Some(w)) if h as u64 == w => h,
                    _ => return Err(bad(format!("size {v} is not one square size (height = width)"))),
                }
            }
            None => 224,
        };
        if size == 0 || size > MAX_MODEL_IMAGE_SIDE {
            return Err(bad(format!("size {size} must be 1 to {MAX_MODEL_IMAGE_SIDE} pixels")));
        }
        let out = Self {
            shortest_edge: size,
            crop_height: size,
            crop_width: size,
            rescale_factor: hf.rescale_factor.unwrap_or(1.0 / 255.0),
            mean: hf.image_mean.unwrap_or([0.5; 3]),
            std: hf.image_std.unwrap_or([0.5; 3]),
            interpolation,
            resize_mode: ResizeMode::Squash,
            arithmetic: PreprocessArithmetic::Torchvision,
        };
        if out.std.iter().any(|s| *s <= 0.0) {
            return Err(bad("image_std must be positive".into()));
        }
        if (out.rescale_factor - 1.0 / 255.0).abs() > 1e-9 {
            return Err(bad(format!("rescale_factor {} is not supported (only 1/255)", out.rescale_factor)));
        }
        Ok(out)
    }

    /// open_clip's eval transform from `open_clip_config.json`'s `preprocess_cfg`, with
    /// open_clip's defaults for what it leaves out (size: the vision tower's `image_size`;
    /// OpenAI mean and std; bicubic; shortest).
    pub fn from_open_clip(preprocess_cfg: &serde_json::Value, image_size: u32) -> Result<Self, ModelError> {
        let bad = |m: String| ModelError::Preprocessor(format!("open_clip preprocess_cfg: {m}"));
        let cfg: OpenClipPreprocess =
            serde_json::from_value(preprocess_cfg.clone()).map_err(|e| bad(e.to_string()))?;
        let size = match &cfg.size {
            None => image_size,
            Some(v) => square_size(v).ok_or_else(|| bad(format!("size {v} is not one square size")))?,
        };
        if size == 0 || size > MAX_MODEL_IMAGE_SIDE {
            return Err(bad(format!("size {size} must be 1 to {MAX_MODEL_IMAGE_SIDE} pixels")));
        }
        if cfg.mode.as_deref().is_some_and(|m| m != "RGB") {
            return Err(bad(format!("mode {:?} is not supported (only \"RGB\")", cfg.mode.unwrap_or_default())));
        }
        if cfg.fill_color.is_some_and(|f| f != 0) {
            return Err(bad("fill_color other than 0 is not supported".into()));
        }
        let interpolation = match cfg.interpolation.as_deref() {
            None | Some("bicubic") => Interpolation::Bicubic,
            Some("bilinear") => Interpolation::Bilinear,
            Some(other) => return Err(bad(format!("interpolation {other:?} is not supported (bicubic or bilinear)"))),
        };
        let resize_mode = match cfg.resize_mode.as_deref() {
            None | Some("shortest") => ResizeMode::Shortest,
            Some("longest") => ResizeMode::Longest,
            Some("squash") => ResizeMode::Squash,
            Some(other) => {
                return Err(bad(format!("resize_mode {other:?} is not supported (shortest, longest or squash)")))
            }
        };
        let d = Self::default();
        let out = Self {
            shortest_edge: size,
            crop_height: size,
            crop_width: size,
            rescale_factor: d.rescale_factor,
            mean: cfg.mean.unwrap_or(d.mean),
            std: cfg.std.unwrap_or(d.std),
            interpolation,
            resize_mode,
            arithmetic: PreprocessArithmetic::Torchvision,
        };
        if out.std.iter().any(|s| *s <= 0.0) {
            return Err(bad("std must be positive".into()));
        }
        Ok(out)
    }
}

/// open_clip's `PreprocessCfg` fields as `open_clip_config.json` stores them.
#[derive(Default, Deserialize)]
#[serde(default)]
struct OpenClipPreprocess {
    size: Option<serde_json::Value>,
    mode: Option<String>,
    mean: Option<[f32; 3]>,
    std: Option<[f32; 3]>,
    interpolation: Option<String>,
    resize_mode: Option<String>,
    fill_color: Option<u32>,
}

/// A size given as `n` or `[n, n]`; `None` for anything else (non-square sizes are not supported).
pub fn square_size(v: &serde_json::Value) -> Option<u32> {
    let side = |x: &serde_json::Value| x.as_u64().map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    match v.as_array() {
        None => side(v),
        Some(pair) if pair.len() == 2 && side(&pair[0]).is_some() && side(&pair[0]) == side(&pair[1]) => side(&pair[0]),
        Some(_) => None,
    }
}
