//! SigLIP with its image tower on this crate's kernels ([`ImageTower`], the default engine) and,
//! natively, its text tower on candle (catalog builds' text queries; the page embeds photos only).

use crate::error::ModelError;
use crate::models::clip::Towers;
use crate::models::siglip::config::SiglipConfig;
use crate::models::siglip::image_tower::ImageTower;
use crate::models::siglip::loader::ImageTowerLoader;
#[cfg(not(target_arch = "wasm32"))]
use crate::models::siglip::text::TextTower;

/// A SigLIP model whose image tower runs on this crate's kernels.
pub struct OursSiglip {
    pub config: SiglipConfig,
    pub vision: ImageTower,
    /// On candle, when asked for (never in the wasm build, which would then link candle).
    #[cfg(not(target_arch = "wasm32"))]
    pub text: Option<TextTower>,
}

impl OursSiglip {
    /// The image tower from the whole weights file (and natively, with [`Towers::VisionAndText`],
    /// the text tower on candle, refused if the file has none).
    pub fn load(config: SiglipConfig, weights: &[u8], towers: Towers) -> Result<Self, ModelError> {
        let vision = ImageTowerLoader::load(config.clone(), weights)?;
        #[cfg(not(target_arch = "wasm32"))]
        let text = match towers {
            Towers::VisionOnly => None,
            Towers::VisionAndText => Some(text_tower(&config, weights)?),
        };
        #[cfg(target_arch = "wasm32")]
        if towers == Towers::VisionAndText {
            return Err(ModelError::NoTextTower);
        }
        Ok(Self {
            config,
            vision,
            #[cfg(not(target_arch = "wasm32"))]
            text,
        })
    }

    /// A model of an image tower loaded on its own (the page's, streamed).
    pub fn of_image_tower(config: SiglipConfig, vision: ImageTower) -> Self {
        Self {
            config,
            vision,
            #[cfg(not(target_arch = "wasm32"))]
            text: None,
        }
    }

    pub fn embedding_dim(&self) -> usize {
        self.config.embedding_dim()
    }

    pub fn image_size(&self) -> usize {
        self.vision.image_size()
    }

    /// transformers' `get_image_features` of `n` NCHW images (pixels already normalised).
    pub fn embed_images(&self, pixel_values: &[f32], n: usize) -> Result<Vec<Vec<f32>>, ModelError> {
        self.vision.embed(pixel_values, n)
    }

    /// transformers' `get_text_features` of token id rows.
    pub fn embed_texts(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, ModelError> {
        #[cfg(not(target_arch = "wasm32"))]
        return self.text.as_ref().ok_or(ModelError::NoTextTower)?.embed(ids);
        #[cfg(target_arch = "wasm32")]
        {
            let _ = ids;
            Err(ModelError::NoTextTower)
        }
    }
}

/// The text tower on candle from the file's `text_model.*` tensors alone (the file checked first).
#[cfg(not(target_arch = "wasm32"))]
fn text_tower(config: &SiglipConfig, weights: &[u8]) -> Result<TextTower, ModelError> {
    use candle_core::{DType, Device};
    use candle_nn::VarBuilder;

    use crate::models::candle_weights::f32_tensors;

    if !super::check_tensors(weights, config)? {
        return Err(ModelError::NoTextTower);
    }
    let text_tensors = f32_tensors(weights, |name| !name.starts_with("text_model."), ModelError::Weights)?;
    TextTower::load(&config.candle.text_config, VarBuilder::from_tensors(text_tensors, DType::F32, &Device::Cpu))
}
