//! Model folders as the Hugging Face hub has them, recognised by their files, and one loader
//! from their bytes to an [`Embedder`] of the right family and engine. The caller (the CLI)
//! reads the files [`Layout`] names; nothing here touches the file system.

use crate::error::ModelError;
use crate::models::clip::candle_engine::CandleClip;
use crate::models::clip::{ClipModel, Towers};
use crate::models::config::{ModelConfig, PreprocessConfig};
use crate::models::embedder::Embedder;
use crate::models::mobileclip::config::OpenClipConfig;
use crate::models::mobileclip::{engine_for, MobileClip};
use crate::models::model::{EmbeddingModel, Engine, Family, MobileClipModel, OursClip, OursSiglipModel, SiglipModel, Tokenized};
use crate::models::siglip::config::SiglipConfig;
use crate::models::siglip::ours::OursSiglip;
use crate::models::siglip::tokenizer::SiglipTokenizer;
use crate::models::siglip::Siglip;
use crate::models::tokenizer::ClipTokenizer;

/// The folders this app reads, by hub id.
pub const SUPPORTED: &str = "supported model folders: openai/clip-vit-base-patch32 (config.json model_type \"clip\"); \
apple/MobileCLIP-S1-OpenCLIP, apple/MobileCLIP-S2-OpenCLIP, apple/MobileCLIP-B-OpenCLIP, timm/MobileCLIP2-S0-OpenCLIP, \
timm/MobileCLIP2-S2-OpenCLIP, timm/MobileCLIP2-B-OpenCLIP (open_clip_config.json + open_clip_model.safetensors); google/siglip2-base-patch16-224, google/siglip2-base-patch32-256 \
and google/siglip-base-patch16-224 (config.json model_type \"siglip\"; SigLIP v1 with spiece.model instead of tokenizer.json)";

pub const OPEN_CLIP_CONFIG: &str = "open_clip_config.json";
pub const HF_CONFIG: &str = "config.json";

/// Which kind of folder it is, and so which files hold what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Hugging Face `CLIPModel`: config.json, model.safetensors, preprocessor_config.json, tokenizer.json.
    HfClip,
    /// Hugging Face `SiglipModel`: the same files, plus tokenizer_config.json.
    HfSiglip,
    /// open_clip: open_clip_config.json (model_cfg, preprocess_cfg), open_clip_model.safetensors, tokenizer.json.
    OpenClip,
}

impl Layout {
    /// Recognises a folder from whether it has `open_clip_config.json` and from its
    /// `config.json` (when it has one). Anything else is refused, naming what is supported.
    pub fn detect(has_open_clip_config: bool, hf_config: Option<&str>) -> Result<Self, ModelError> {
        if has_open_clip_config {
            return Ok(Layout::OpenClip);
        }
        let Some(json) = hf_config else {
            return Err(ModelError::UnsupportedModel(format!("neither {HF_CONFIG} nor {OPEN_CLIP_CONFIG} is there; {SUPPORTED}")));
        };
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| ModelError::Config(format!("{HF_CONFIG} is not valid JSON: {e}")))?;
        let model_type = value.get("model_type").and_then(|t| t.as_str());
        let architectures: Vec<&str> = value
            .get("architectures")
            .and_then(|a| a.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        match model_type {
            Some("clip") => Ok(Layout::HfClip),
            None if architectures.contains(&"CLIPModel") => Ok(Layout::HfClip),
            Some("siglip") => Ok(Layout::HfSiglip),
            Some(other) => Err(ModelError::UnsupportedModel(format!("{HF_CONFIG} has model_type {other:?}; {SUPPORTED}"))),
            None => Err(ModelError::UnsupportedModel(format!("{HF_CONFIG} names no model_type; {SUPPORTED}"))),
        }
    }

    pub fn family(self) -> Family {
        match self {
            Layout::HfClip => Family::OpenAiClip,
            Layout::HfSiglip => Family::Siglip,
            Layout::OpenClip => Family::MobileClip,
        }
    }

    /// The configuration file (text).
    pub fn config_file(self) -> &'static str {
        match self {
            Layout::OpenClip => OPEN_CLIP_CONFIG,
            _ => HF_CONFIG,
        }
    }

    pub fn weights_file(self) -> &'static str {
        match self {
            Layout::OpenClip => "open_clip_model.safetensors",
            _ => "model.safetensors",
        }
    }

    /// The preprocessing file, where it is not in the config (required).
    pub fn preprocessor_file(self) -> Option<&'static str> {
        match self {
            Layout::OpenClip => None,
            _ => Some("preprocessor_config.json"),
        }
    }

    /// The tokenizer files to look for, in order (the first that exists is read): SigLIP v1
    /// folders have `spiece.model` instead of `tokenizer.json`.
    pub fn tokenizer_files(self) -> &'static [&'static str] {
        match self {
            Layout::HfSiglip => &["tokenizer.json", "spiece.model"],
            _ => &["tokenizer.json"],
        }
    }

    /// The tokenizer's settings file, read where there is one.
    pub fn tokenizer_config_file(self) -> Option<&'static str> {
        match self {
            Layout::HfSiglip => Some("tokenizer_config.json"),
            _ => None,
        }
    }
}

/// The bytes of a folder's files, as [`Layout`] names them.
pub struct FolderFiles<'a> {
    pub config: &'a str,
    pub preprocessor: Option<&'a str>,
    pub weights: &'a [u8],
    /// tokenizer.json (SigLIP v1: spiece.model, [`Layout::tokenizer_files`]); needed for the text tower only.
    pub tokenizer: Option<&'a [u8]>,
    pub tokenizer_config: Option<&'a [u8]>,
}

/// Loads the towers asked for on `engine` (`None`: the family's default). With
/// [`Towers::VisionAndText`] the tokenizer is required.
pub fn load(layout: Layout, files: &FolderFiles, towers: Towers, engine: Option<Engine>) -> Result<Embedder, ModelError> {
    let engine = match layout {
        Layout::OpenClip => engine_for(&OpenClipConfig::from_json(files.config)?.vision, engine)?,
        _ => layout.family().engine(engine)?,
    };
    let text = towers == Towers::VisionAndText;
    let tokenizer = match (text, files.tokenizer) {
        (true, None) => return Err(ModelError::Tokenizer("no tokenizer.json was given for the text tower".into())),
        (true, Some(json)) => Some(json),
        (false, _) => None,
    };
    let preprocessor = || {
        files
            .preprocessor
            .ok_or_else(|| ModelError::Preprocessor("preprocessor_config.json is missing".into()))
    };
    let (model, preprocess): (Box<dyn EmbeddingModel>, PreprocessConfig) = match layout {
        Layout::HfClip => {
            let preprocess = PreprocessConfig::from_json(preprocessor()?)?;
            let config = ModelConfig::from_json(files.config)?;
            let max_len = config.text.max_position_embeddings;
            let tokenizer = tokenizer.map(|json| ClipTokenizer::from_bytes(json, max_len)).transpose()?;
            let model: Box<dyn EmbeddingModel> = match engine {
                Engine::Ours => Box::new(OursClip { model: ClipModel::from_config(config, files.weights, Some(towers))?, tokenizer }),
                Engine::Candle => Box::new(Tokenized { model: CandleClip::load(&config, files.weights, towers)?, tokenizer }),
            };
            (model, preprocess)
        }
        Layout::HfSiglip => {
            let preprocess = PreprocessConfig::from_siglip(preprocessor()?)?;
            let config = SiglipConfig::from_json(files.config)?;
            config.check_preprocess(&preprocess)?;
            let tokenizer = tokenizer.map(|file| SiglipTokenizer::from_file(file, files.tokenizer_config)).transpose()?;
            let model: Box<dyn EmbeddingModel> = match engine {
                Engine::Ours => Box::new(OursSiglipModel { model: OursSiglip::load(config, files.weights, towers)?, tokenizer }),
                Engine::Candle => {
                    let model = Siglip::load(files.config, files.weights)?;
                    if text && model.text.is_none() {
                        return Err(ModelError::NoTextTower);
                    }
                    Box::new(SiglipModel { model, tokenizer })
                }
            };
            (model, preprocess)
        }
        Layout::OpenClip => {
            let model = MobileClip::load_on(files.config, files.weights, towers, Some(engine))?;
            let preprocess = model.preprocess().clone();
            let tokenizer = tokenizer.map(|json| ClipTokenizer::open_clip(json, model.context_length())).transpose()?;
            (Box::new(MobileClipModel { model, tokenizer }), preprocess)
        }
    };
    Ok(Embedder::of(model, preprocess))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::config::{Interpolation, PreprocessArithmetic, ResizeMode};

    #[test]
    fn folders_are_recognised_by_their_files_and_others_refused_naming_the_supported() {
        assert_eq!(Layout::detect(true, None).unwrap(), Layout::OpenClip);
        assert_eq!(Layout::detect(false, Some(r#"{"model_type": "clip"}"#)).unwrap(), Layout::HfClip);
        assert_eq!(Layout::detect(false, Some(r#"{"architectures": ["CLIPModel"]}"#)).unwrap(), Layout::HfClip);
        assert_eq!(Layout::detect(false, Some(r#"{"model_type": "siglip"}"#)).unwrap(), Layout::HfSiglip);
        for config in [Some(r#"{"model_type": "bert"}"#), Some("{}"), None] {
            let e = Layout::detect(false, config).unwrap_err().to_string();
            assert!(e.contains("timm/MobileCLIP2-S0-OpenCLIP") && e.contains("openai/clip-vit-base-patch32"), "{e}");
        }
        assert!(Layout::detect(false, Some("not json")).is_err());
    }

    #[test]
    fn siglip_preprocessing_is_read_from_the_folder() {
        let json = include_str!("../../tests/fixtures/models/siglip2-base-narrow/preprocessor_config.json");
        let p = PreprocessConfig::from_siglip(json).unwrap();
        assert_eq!((p.crop_width, p.crop_height, p.mean, p.std), (224, 224, [0.5; 3], [0.5; 3]));
        assert_eq!((p.interpolation, p.resize_mode, p.arithmetic), (Interpolation::Bicubic, ResizeMode::Squash, PreprocessArithmetic::Torchvision));
        let e = PreprocessConfig::from_siglip(&json.replace("\"width\": 224", "\"width\": 256")).unwrap_err();
        assert!(e.to_string().contains("not one square size"), "{e}");
    }

    #[test]
    fn siglip_loads_on_our_kernels_by_default_and_on_candle_when_asked() {
        let files = FolderFiles {
            config: include_str!("../../tests/fixtures/models/siglip2-base-narrow/config.json"),
            preprocessor: Some(include_str!("../../tests/fixtures/models/siglip2-base-narrow/preprocessor_config.json")),
            weights: include_bytes!("../../tests/fixtures/models/siglip2-base-narrow/model.safetensors"),
            tokenizer: None,
            tokenizer_config: None,
        };
        let e = load(Layout::HfSiglip, &files, Towers::VisionAndText, None).err().unwrap();
        assert!(e.to_string().contains("no tokenizer.json"), "{e}");
        for (engine, expected) in [(None, Engine::Ours), (Some(Engine::Candle), Engine::Candle)] {
            let embedder = load(Layout::HfSiglip, &files, Towers::VisionOnly, engine).unwrap();
            assert_eq!((embedder.model.towers().family(), embedder.model.towers().engine()), (Family::Siglip, expected));
            assert_eq!(embedder.model.embedding_dim(), 32);
        }
    }
}
