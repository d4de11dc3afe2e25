//! A family's image tower from the files the page downloads (a bundle's model folder): the
//! family and engine named, the config file(s) as text, the weights fed in slices. OpenAI CLIP
//! (on this crate's kernels or on candle) and SigLIP on this crate's kernels are built tensor by
//! tensor as the slices arrive; the other families' candle models and MobileCLIP's FastViT on this
//! crate's kernels need the whole file, so for them the slices are
//! gathered (never past the size announced up front) and the tower is built once the last has
//! arrived. The preprocessing always comes from the
//! config files (open_clip's `preprocess_cfg`, SigLIP's or CLIP's processor), never assumed.
//! No tokenizer, no text tower: the page embeds photos only.
//!
//! In the browser, candle is only in the package built with the `candle-engine` feature
//! (`pkg/candle/`): it adds about 2.8 MB, which a page showing OpenAI CLIP, SigLIP or MobileCLIP's
//! FastViT on this crate's kernels does not download. The other package refuses what only candle
//! runs before any weights arrive.

use crate::error::ModelError;
use crate::models::clip::{ModelLoader, Towers};
use crate::models::config::{ModelConfig, PreprocessConfig};
use crate::models::embedder::Embedder;
use crate::models::mobileclip::config::OpenClipConfig;
use crate::models::mobileclip::engine_for;
use crate::models::mobileclip::fastvit::FastVit;
use crate::models::model::{EmbeddingModel, Engine, Family, OursSiglipModel, Tokenized};
use crate::models::tokenizer::ClipTokenizer;
use crate::models::siglip::config::SiglipConfig;
use crate::models::siglip::loader::ImageTowerLoader;
use crate::models::siglip::ours::OursSiglip;
#[cfg(any(not(target_arch = "wasm32"), feature = "candle-engine"))]
use crate::models::clip::{candle_engine::CandleClip, candle_loader::CandleVisionLoader};

/// Where the weights go while they arrive.
enum Weights {
    /// Built tensor by tensor (OpenAI CLIP on this crate's kernels).
    Streamed(Box<ModelLoader>),
    /// Built tensor by tensor (OpenAI CLIP on candle).
    #[cfg(any(not(target_arch = "wasm32"), feature = "candle-engine"))]
    CandleClip { loader: Box<CandleVisionLoader>, config: ModelConfig },
    /// Built tensor by tensor (SigLIP's image tower on this crate's kernels).
    SiglipStreamed { loader: Box<ImageTowerLoader>, config: SiglipConfig },
    /// Gathered whole (candle, MobileCLIP's FastViT on this crate's kernels): at most `len` bytes.
    Gathered { bytes: Vec<u8>, len: usize },
}

/// An image tower being loaded from slices of its weights file.
pub struct VisionLoader {
    family: Family,
    engine: Engine,
    config: String,
    preprocess: PreprocessConfig,
    weights: Weights,
}

/// Whether this build runs candle: always natively; in wasm, the `candle-engine` package.
pub const HAS_CANDLE: bool = cfg!(any(not(target_arch = "wasm32"), feature = "candle-engine"));

/// The preprocessing a family's files ask for. `preprocessor`: `preprocessor_config.json`
/// (OpenAI CLIP and SigLIP need it; MobileCLIP's is inside `open_clip_config.json`).
fn preprocessing(family: Family, config: &str, preprocessor: Option<&str>) -> Result<PreprocessConfig, ModelError> {
    let preprocessor = || preprocessor.ok_or_else(|| ModelError::Preprocessor(format!("{} needs preprocessor_config.json", family.name())));
    match family {
        Family::OpenAiClip => PreprocessConfig::from_json(preprocessor()?),
        Family::MobileClip => Ok(OpenClipConfig::from_json(config)?.preprocess),
        Family::Siglip => {
            SiglipConfig::from_json(config)?;
            PreprocessConfig::from_siglip(preprocessor()?)
        }
    }
}

impl VisionLoader {
    /// Starts loading a `family` image tower on `engine` (`None`: the family's default) from its
    /// config file's text (`config.json`, or `open_clip_config.json` for MobileCLIP) and
    /// `preprocessor_config.json` where the family has one. `weights_len`: the weights file's
    /// size (bundle.json lists it); candle needs it, and no more bytes than that are taken.
    pub fn new(
        family: Family,
        engine: Option<Engine>,
        config: &str,
        preprocessor: Option<&str>,
        weights_len: Option<usize>,
    ) -> Result<Self, ModelError> {
        let engine = match family {
            Family::MobileClip => engine_for(&OpenClipConfig::from_json(config)?.vision, engine)?,
            _ => family.engine(engine)?,
        };
        if engine == Engine::Candle && !HAS_CANDLE {
            return Err(ModelError::NoCandleInPackage(family.name()));
        }
        let preprocess = preprocessing(family, config, preprocessor)?;
        let weights = match (family, engine, weights_len) {
            (Family::OpenAiClip, Engine::Ours, len) => {
                let loader = ModelLoader::new(ModelConfig::from_json(config)?, Some(Towers::VisionOnly));
                Weights::Streamed(Box::new(match len {
                    Some(len) => loader.with_file_len(len),
                    None => loader,
                }))
            }
            #[cfg(any(not(target_arch = "wasm32"), feature = "candle-engine"))]
            (Family::OpenAiClip, Engine::Candle, len) => {
                let config = ModelConfig::from_json(config)?;
                let loader = CandleVisionLoader::new(config.clone());
                let loader = Box::new(match len {
                    Some(len) => loader.with_file_len(len),
                    None => loader,
                });
                Weights::CandleClip { loader, config }
            }
            (Family::Siglip, Engine::Ours, len) => {
                let config = SiglipConfig::from_json(config)?;
                config.check_preprocess(&preprocess)?;
                let loader = ImageTowerLoader::new(config.clone());
                let loader = Box::new(match len {
                    Some(len) => loader.with_file_len(len),
                    None => loader,
                });
                Weights::SiglipStreamed { loader, config }
            }
            (_, _, Some(len)) => Weights::Gathered { bytes: Vec::new(), len },
            (_, _, None) => {
                return Err(ModelError::Weights(format!(
                    "{} on the {} engine needs the weights file's size before it arrives",
                    family.name(),
                    engine.name()
                )))
            }
        };
        Ok(Self { family, engine, config: config.to_string(), preprocess, weights })
    }

    pub fn family(&self) -> Family {
        self.family
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The preprocessing the config files ask for.
    pub fn preprocess(&self) -> &PreprocessConfig {
        &self.preprocess
    }

    /// Feeds the next bytes of the weights file.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), ModelError> {
        match &mut self.weights {
            Weights::Streamed(loader) => loader.push(chunk),
            #[cfg(any(not(target_arch = "wasm32"), feature = "candle-engine"))]
            Weights::CandleClip { loader, .. } => loader.push(chunk),
            Weights::SiglipStreamed { loader, .. } => loader.push(chunk),
            Weights::Gathered { bytes, len } => {
                if bytes.len().saturating_add(chunk.len()) > *len {
                    return Err(ModelError::Weights(format!("the file is longer than the {len} bytes announced")));
                }
                if bytes.capacity() == 0 {
                    bytes.try_reserve_exact(*len).map_err(|_| ModelError::Weights(format!("no memory for {len} bytes of weights")))?;
                }
                bytes.extend_from_slice(chunk);
                Ok(())
            }
        }
    }

    /// The model, once the whole file has arrived, with its preprocessing.
    pub fn finish(self) -> Result<Embedder, ModelError> {
        let Self { family, engine, config, preprocess, weights } = self;
        let bytes = match weights {
            Weights::Streamed(loader) => return Ok(Embedder::new(loader.finish()?, preprocess, None)),
            #[cfg(any(not(target_arch = "wasm32"), feature = "candle-engine"))]
            Weights::CandleClip { loader, config } => {
                let model = CandleClip::from_vision(&config, loader.finish()?);
                return Ok(Embedder::of(Box::new(Tokenized::<_, ClipTokenizer> { model, tokenizer: None }), preprocess));
            }
            Weights::SiglipStreamed { loader, config } => {
                let model = OursSiglip::of_image_tower(config, loader.finish()?);
                return Ok(Embedder::of(Box::new(OursSiglipModel { model, tokenizer: None }), preprocess));
            }
            Weights::Gathered { bytes, len } if bytes.len() != len => {
                return Err(ModelError::Weights(format!("the file ended after {} of the {len} bytes announced", bytes.len())))
            }
            Weights::Gathered { bytes, .. } => bytes,
        };
        let model: Box<dyn EmbeddingModel> = match (family, engine) {
            (Family::MobileClip, Engine::Ours) => {
                let tower = FastVit::load_owned(&OpenClipConfig::from_json(&config)?, bytes)?;
                Box::new(Tokenized::<_, ClipTokenizer> { model: tower, tokenizer: None })
            }
            _ => on_candle(family, &config, &bytes, &preprocess)?,
        };
        Ok(Embedder::of(model, preprocess))
    }

    /// Loads the tower from the whole weights file at once.
    pub fn load(
        family: Family,
        engine: Option<Engine>,
        config: &str,
        preprocessor: Option<&str>,
        weights: &[u8],
    ) -> Result<Embedder, ModelError> {
        let mut loader = Self::new(family, engine, config, preprocessor, Some(weights.len()))?;
        loader.push(weights)?;
        loader.finish()
    }
}

/// A family's image tower on candle from its whole weights file.
#[cfg(any(not(target_arch = "wasm32"), feature = "candle-engine"))]
fn on_candle(family: Family, config: &str, bytes: &[u8], preprocess: &PreprocessConfig) -> Result<Box<dyn EmbeddingModel>, ModelError> {
    use crate::models::mobileclip::MobileClip;
    use crate::models::model::{MobileClipModel, SiglipModel};
    use crate::models::siglip::Siglip;

    Ok(match family {
        Family::OpenAiClip => {
            let model = CandleClip::load(&ModelConfig::from_json(config)?, bytes, Towers::VisionOnly)?;
            Box::new(Tokenized::<_, ClipTokenizer> { model, tokenizer: None })
        }
        Family::MobileClip => {
            let model = MobileClip::load_towers(config, bytes, Towers::VisionOnly)?;
            Box::new(MobileClipModel { model, tokenizer: None })
        }
        Family::Siglip => {
            let model = Siglip::load(config, bytes)?;
            model.config.check_preprocess(preprocess)?;
            Box::new(SiglipModel { model, tokenizer: None })
        }
    })
}

/// Without candle (the page's core package), refused up front in [`VisionLoader::new`].
#[cfg(not(any(not(target_arch = "wasm32"), feature = "candle-engine")))]
fn on_candle(family: Family, _: &str, _: &[u8], _: &PreprocessConfig) -> Result<Box<dyn EmbeddingModel>, ModelError> {
    Err(ModelError::NoCandleInPackage(family.name()))
}
