//! `open_clip_config.json` of a MobileCLIP hub folder: `model_cfg` (embedding size, the timm
//! image tower's name and size, the text tower's shape and whether it is causal) and
//! `preprocess_cfg`. Only what this engine runs is accepted; anything else is refused in one
//! line naming what is supported.

use serde::Deserialize;

use crate::error::ModelError;
use crate::models::config::{square_size, PreprocessConfig, MAX_MODEL_IMAGE_SIDE};

/// The supported image towers, for messages.
pub const SUPPORTED: &str = "supported: timm fastvit_mci0, fastvit_mci1, fastvit_mci2, vit_base_mci_224 \
(MobileCLIP-S1, MobileCLIP-S2, MobileCLIP-B, MobileCLIP2-S0, MobileCLIP2-S2, MobileCLIP2-B) and narrower models \
of the same kinds; not MobileCLIP2-S3/S4 (fastvit_mci3/4) or MobileCLIP2-L-14";

/// Which FastViT-MCi kind a tower is, by its timm name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MciKind {
    Mci0,
    Mci1,
    Mci2,
}

impl MciKind {
    /// Stage depths and stem width of timm's own registration of this kind.
    pub fn published(self) -> ([usize; 4], usize) {
        match self {
            MciKind::Mci0 => ([2, 6, 10, 2], 64),
            MciKind::Mci1 => ([4, 12, 20, 4], 64),
            MciKind::Mci2 => ([4, 12, 24, 4], 80),
        }
    }
}

/// Which image tower a config names: timm's FastViT-MCi0/1/2, or its ViT-B with a convolutional
/// stem (`vit_base_mci_224`, MobileCLIP-B and MobileCLIP2-B).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisionKind {
    FastVit(MciKind),
    VitMci,
}

/// timm's name of the ViT-MCi tower (MobileCLIP-B, MobileCLIP2-B).
pub const VIT_MCI: &str = "vit_base_mci_224";

/// The image tower as the config names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisionSpec {
    pub timm_model_name: String,
    pub kind: VisionKind,
    /// `true` when the name is timm's own (`fastvit_mci0`, `vit_base_mci_224` ...): its depths
    /// and widths must be the published ones. Other names of the kind (`fastvit_mci0_narrow`)
    /// take them from the file.
    pub published_shape: bool,
    pub image_size: u32,
}

/// The text tower as the config describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextSpec {
    pub context_length: usize,
    pub vocab_size: usize,
    pub width: usize,
    pub heads: usize,
    pub layers: usize,
    /// `text_cfg.no_causal_mask` false: each position attends to itself and those before it
    /// (MobileCLIP-B, MobileCLIP2-B); else to every position, padding included.
    pub causal: bool,
}

/// Everything `open_clip_config.json` says that this engine uses.
#[derive(Debug, Clone)]
pub struct OpenClipConfig {
    pub embed_dim: usize,
    pub vision: VisionSpec,
    pub text: TextSpec,
    pub preprocess: PreprocessConfig,
}

#[derive(Deserialize)]
struct File {
    model_cfg: ModelCfg,
    #[serde(default)]
    preprocess_cfg: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ModelCfg {
    embed_dim: usize,
    vision_cfg: VisionCfg,
    text_cfg: TextCfg,
    #[serde(default)]
    quick_gelu: bool,
}

#[derive(Deserialize)]
struct VisionCfg {
    #[serde(default)]
    timm_model_name: Option<String>,
    #[serde(default)]
    timm_pool: Option<String>,
    #[serde(default)]
    timm_proj: Option<String>,
    image_size: serde_json::Value,
}

#[derive(Deserialize)]
struct TextCfg {
    #[serde(default = "default_context")]
    context_length: usize,
    #[serde(default = "default_vocab")]
    vocab_size: usize,
    #[serde(default = "default_width")]
    width: usize,
    #[serde(default = "default_heads")]
    heads: usize,
    #[serde(default = "default_layers")]
    layers: usize,
    #[serde(default)]
    no_causal_mask: bool,
    #[serde(default)]
    hf_model_name: Option<String>,
    #[serde(default)]
    pool_type: Option<String>,
    #[serde(default)]
    mlp_ratio: Option<f64>,
}

// open_clip's CLIPTextCfg defaults.
fn default_context() -> usize {
    77
}
fn default_vocab() -> usize {
    49408
}
fn default_width() -> usize {
    512
}
fn default_heads() -> usize {
    8
}
fn default_layers() -> usize {
    12
}

fn bad(message: String) -> ModelError {
    ModelError::OpenClipConfig(message)
}

fn vision_spec(v: &VisionCfg) -> Result<VisionSpec, ModelError> {
    let name = v.timm_model_name.clone().ok_or_else(|| {
        bad(format!("the image tower is not a timm model (no vision_cfg.timm_model_name); {SUPPORTED}"))
    })?;
    let kind = if name.starts_with("fastvit_mci0") {
        VisionKind::FastVit(MciKind::Mci0)
    } else if name.starts_with("fastvit_mci1") {
        VisionKind::FastVit(MciKind::Mci1)
    } else if name.starts_with("fastvit_mci2") {
        VisionKind::FastVit(MciKind::Mci2)
    } else if name.starts_with(VIT_MCI) {
        VisionKind::VitMci
    } else {
        return Err(bad(format!("image tower {name:?} is not supported; {SUPPORTED}")));
    };
    // timm's pooling of each kind: the average of the last feature map, or the class token.
    let pool_of_kind = if kind == VisionKind::VitMci { "token" } else { "avg" };
    if let Some(pool) = v.timm_pool.as_deref().filter(|p| *p != pool_of_kind) {
        return Err(bad(format!("vision_cfg.timm_pool {pool:?} is not supported for {name} (only {pool_of_kind:?})")));
    }
    if let Some(proj) = &v.timm_proj {
        return Err(bad(format!("vision_cfg.timm_proj {proj:?} is not supported (only null)")));
    }
    let image_size = square_size(&v.image_size)
        .filter(|s| (1..=MAX_MODEL_IMAGE_SIDE).contains(s))
        .ok_or_else(|| bad(format!("vision_cfg.image_size {} is not one square size of 1 to {MAX_MODEL_IMAGE_SIDE}", v.image_size)))?;
    let published_shape = ["fastvit_mci0", "fastvit_mci1", "fastvit_mci2", VIT_MCI].contains(&name.as_str());
    Ok(VisionSpec { timm_model_name: name, kind, published_shape, image_size })
}

fn text_spec(t: &TextCfg, quick_gelu: bool) -> Result<TextSpec, ModelError> {
    if let Some(hf) = &t.hf_model_name {
        return Err(bad(format!("text_cfg.hf_model_name {hf:?}: Hugging Face text towers are not supported")));
    }
    if let Some(pool) = t.pool_type.as_deref().filter(|p| *p != "argmax") {
        return Err(bad(format!("text_cfg.pool_type {pool:?} is not supported (only \"argmax\")")));
    }
    if quick_gelu {
        return Err(bad("model_cfg.quick_gelu is true: only exact GELU is supported".into()));
    }
    if t.heads == 0 || t.width % t.heads != 0 {
        return Err(bad(format!("text_cfg.width {} is not divisible by heads {}", t.width, t.heads)));
    }
    if let Some(r) = t.mlp_ratio.filter(|r| *r != 4.0) {
        return Err(bad(format!("text_cfg.mlp_ratio {r} is not supported (only 4)")));
    }
    for (name, value, max) in [
        ("context_length", t.context_length, 1 << 12),
        ("vocab_size", t.vocab_size, 1 << 21),
        ("width", t.width, 1 << 14),
        ("layers", t.layers, 1 << 8),
    ] {
        if value == 0 || value > max {
            return Err(bad(format!("text_cfg.{name} is {value}; it must be 1 to {max}")));
        }
    }
    Ok(TextSpec {
        context_length: t.context_length,
        vocab_size: t.vocab_size,
        width: t.width,
        heads: t.heads,
        layers: t.layers,
        causal: !t.no_causal_mask,
    })
}

impl OpenClipConfig {
    /// Parses `open_clip_config.json`.
    pub fn from_json(json: &str) -> Result<Self, ModelError> {
        let file: File = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        let m = &file.model_cfg;
        if m.embed_dim == 0 || m.embed_dim > 1 << 14 {
            return Err(bad(format!("model_cfg.embed_dim is {}; it must be 1 to {}", m.embed_dim, 1 << 14)));
        }
        let vision = vision_spec(&m.vision_cfg)?;
        let text = text_spec(&m.text_cfg, m.quick_gelu)?;
        let empty = serde_json::Value::Object(Default::default());
        let preprocess = PreprocessConfig::from_open_clip(file.preprocess_cfg.as_ref().unwrap_or(&empty), vision.image_size)?;
        Ok(Self { embed_dim: m.embed_dim, vision, text, preprocess })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::config::{Interpolation, PreprocessArithmetic, ResizeMode};

    const S0_NARROW: &str = include_str!("../../../tests/fixtures/models/mobileclip2-s0-narrow/open_clip_config.json");
    const B_NARROW: &str = include_str!("../../../tests/fixtures/models/mobileclip-b-narrow/open_clip_config.json");

    fn edited(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut v: serde_json::Value = serde_json::from_str(S0_NARROW).unwrap();
        edit(&mut v);
        v.to_string()
    }

    #[test]
    fn reads_the_fixture() {
        let c = OpenClipConfig::from_json(S0_NARROW).unwrap();
        assert_eq!(c.embed_dim, 32);
        assert_eq!(c.vision.kind, VisionKind::FastVit(MciKind::Mci0));
        assert!(!c.vision.published_shape);
        assert_eq!(c.text, TextSpec { context_length: 77, vocab_size: 49408, width: 16, heads: 2, layers: 2, causal: false });
        let p = &c.preprocess;
        assert_eq!((p.shortest_edge, p.crop_width, p.crop_height), (256, 256, 256));
        assert_eq!((p.mean, p.std), ([0.0; 3], [1.0; 3]));
        assert_eq!(p.interpolation, Interpolation::Bilinear);
        assert_eq!(p.resize_mode, ResizeMode::Shortest);
        assert_eq!(p.arithmetic, PreprocessArithmetic::Torchvision);
    }

    #[test]
    fn reads_mobileclip_b_and_its_causal_text_tower() {
        let c = OpenClipConfig::from_json(B_NARROW).unwrap();
        assert_eq!((c.vision.kind, c.vision.published_shape, c.vision.image_size), (VisionKind::VitMci, false, 224));
        assert!(c.text.causal);
        let published = B_NARROW.replace("vit_base_mci_224_narrow", "vit_base_mci_224");
        assert!(OpenClipConfig::from_json(&published).unwrap().vision.published_shape);
        // Each kind's own pooling only.
        let avg = B_NARROW.replace("\"token\"", "\"avg\"");
        assert!(OpenClipConfig::from_json(&avg).unwrap_err().to_string().contains("only \"token\""));
        let token = edited(|v| v["model_cfg"]["vision_cfg"]["timm_pool"] = "token".into());
        assert!(OpenClipConfig::from_json(&token).unwrap_err().to_string().contains("only \"avg\""));
    }

    #[test]
    fn refuses_what_candle_cannot_run_naming_what_is_supported() {
        for name in ["fastvit_mci3", "fastvit_mci4", "vit_large_patch14_clip_224"] {
            let other = edited(|v| v["model_cfg"]["vision_cfg"]["timm_model_name"] = name.into());
            let e = OpenClipConfig::from_json(&other).unwrap_err().to_string();
            assert!(e.contains("not supported") && e.contains("vit_base_mci_224 (MobileCLIP-S1") && e.contains("not MobileCLIP2-S3/S4"), "{e}");
        }
        let bicubic_random = edited(|v| v["preprocess_cfg"]["interpolation"] = "random".into());
        assert!(OpenClipConfig::from_json(&bicubic_random).unwrap_err().to_string().contains("interpolation"));
    }

    #[test]
    fn missing_preprocess_cfg_takes_open_clips_defaults() {
        let bare = edited(|v| {
            v.as_object_mut().unwrap().remove("preprocess_cfg");
        });
        let p = OpenClipConfig::from_json(&bare).unwrap().preprocess;
        assert_eq!(p.interpolation, Interpolation::Bicubic);
        assert_eq!(p.mean, PreprocessConfig::default().mean);
        assert_eq!(p.shortest_edge, 256);
    }
}
