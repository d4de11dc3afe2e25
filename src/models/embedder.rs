//! From inputs to embeddings: photo bytes through decoding and preprocessing into the vision
//! tower, texts through the tokenizer into the text tower. No file or browser access here.
//!
//! Embeddings are unit vectors (what catalogs store and ranking compares); the `*_raw`
//! methods give the projected features before normalisation (transformers'
//! `get_image_features` / `get_text_features`), for `clipmatch embed` and parity checks.

use image::RgbImage;

use crate::error::Error;
use crate::imaging::decode::{decode_rgb, DecodeLimits};
use crate::imaging::preprocess::pixel_values;
use crate::kernels::math::l2_normalize;
use crate::models::clip::ClipModel;
use crate::models::config::PreprocessConfig;
use crate::models::model::{EmbeddingModel, OursClip};
use crate::models::tokenizer::ClipTokenizer;

pub struct Embedder {
    /// Any family on either engine ([`crate::models::model`]).
    pub model: Box<dyn EmbeddingModel>,
    pub preprocess: PreprocessConfig,
    pub limits: DecodeLimits,
}

/// Each row scaled to unit length.
fn unit_rows(mut rows: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
    rows.iter_mut().for_each(|v| l2_normalize(v));
    rows
}

impl Embedder {
    /// OpenAI CLIP on this crate's kernels (the text tower needs `tokenizer`).
    pub fn new(model: ClipModel, preprocess: PreprocessConfig, tokenizer: Option<ClipTokenizer>) -> Self {
        Self::of(Box::new(OursClip { model, tokenizer }), preprocess)
    }

    /// Any model, with the preprocessing its folder asks for.
    pub fn of(model: Box<dyn EmbeddingModel>, preprocess: PreprocessConfig) -> Self {
        Self { model, preprocess, limits: DecodeLimits::default() }
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
    pub fn embed_pixels_raw(&self, batch: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, Error> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let flat: Vec<f32> = batch.iter().flatten().copied().collect();
        let towers = self.model.towers();
        Ok(crate::parallel::with_team(|| towers.embed_images(&flat, batch.len()))?)
    }

    /// Unit image embeddings of preprocessed images, as one batch.
    pub fn embed_pixels(&self, batch: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, Error> {
        Ok(unit_rows(self.embed_pixels_raw(batch)?))
    }

    /// Raw (unnormalised) image embedding of one encoded photo.
    pub fn embed_photo_raw(&self, bytes: &[u8]) -> Result<Vec<f32>, Error> {
        let px = self.pixel_values(bytes)?;
        Ok(self.embed_pixels_raw(&[px])?.remove(0))
    }

    /// Unit image embedding of one encoded photo.
    pub fn embed_photo(&self, bytes: &[u8]) -> Result<Vec<f32>, Error> {
        let mut v = self.embed_photo_raw(bytes)?;
        l2_normalize(&mut v);
        Ok(v)
    }

    /// Unit image embedding of decoded upright RGB pixels.
    pub fn embed_rgb(&self, rgb: &RgbImage) -> Result<Vec<f32>, Error> {
        Ok(self.embed_pixels(&[self.pixel_values_of(rgb)])?.remove(0))
    }

    /// Raw (unnormalised) text embeddings, one batch, tokenized as the model's family does.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn embed_texts_raw<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>, Error> {
        let texts: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        Ok(self.model.embed_texts(&texts)?)
    }

    /// Unit text embeddings, one batch.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn embed_texts<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>, Error> {
        Ok(unit_rows(self.embed_texts_raw(texts)?))
    }
}
