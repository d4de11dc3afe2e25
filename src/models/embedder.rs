//! From inputs to embeddings: photo bytes through decoding and preprocessing into the vision
//! tower, texts through the tokenizer into the text tower. No file or browser access here.

use image::RgbImage;

use crate::models::config::PreprocessConfig;
use crate::imaging::decode::{decode_rgb, DecodeLimits};
use crate::error::Error;
use crate::models::clip::{l2_normalize, ClipModel};
use crate::imaging::preprocess::pixel_values;
use crate::models::tokenizer::ClipTokenizer;

pub struct Embedder {
    pub model: ClipModel,
    pub preprocess: PreprocessConfig,
    pub tokenizer: Option<ClipTokenizer>,
    pub limits: DecodeLimits,
}

impl Embedder {
    pub fn new(model: ClipModel, preprocess: PreprocessConfig, tokenizer: Option<ClipTokenizer>) -> Self {
        Self {
            model,
            preprocess,
            tokenizer,
            limits: DecodeLimits::default(),
        }
    }

    /// Model input for an encoded photo (JPEG, PNG, WebP, GIF).
    pub fn pixel_values(&self, bytes: &[u8]) -> Result<Vec<f32>, Error> {
        let rgb = decode_rgb(bytes, &self.limits)?;
        Ok(self.pixel_values_of(&rgb))
    }

    /// Model input for decoded upright RGB pixels.
    pub fn pixel_values_of(&self, rgb: &RgbImage) -> Vec<f32> {
        pixel_values(rgb, &self.preprocess)
    }

    /// Raw (unnormalised) image embeddings of preprocessed images, as one batch.
    pub fn embed_pixels(&self, batch: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, Error> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let flat: Vec<f32> = batch.iter().flatten().copied().collect();
        Ok(self.model.vision.embed(&flat, batch.len())?)
    }

    /// Unit image embedding of one encoded photo.
    pub fn embed_photo(&self, bytes: &[u8]) -> Result<Vec<f32>, Error> {
        let px = self.pixel_values(bytes)?;
        let mut v = self.embed_pixels(&[px])?.remove(0);
        l2_normalize(&mut v);
        Ok(v)
    }

    /// Raw (unnormalised) text embeddings, one batch padded with the end-of-text id.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn embed_texts<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>, Error> {
        let tokenizer = self
            .tokenizer
            .as_ref()
            .ok_or_else(|| crate::error::ModelError::Tokenizer("no tokenizer.json was loaded".into()))?;
        let ids = tokenizer.encode_batch(texts)?;
        Ok(self.model.text()?.embed(&ids)?)
    }
}
