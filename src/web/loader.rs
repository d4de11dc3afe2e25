//! Loading the vision tower from a stream of weight-file slices.

use wasm_bindgen::prelude::*;

use super::{js, Matcher};
use crate::digest::Sha256Stream;
use crate::models::clip::{ModelLoader, Towers};
use crate::models::config::PreprocessConfig;
use crate::ModelConfig;

/// Loads the vision tower from `model.safetensors` fed in slices, so wasm memory never holds the
/// whole file: `new MatcherLoader(config, preprocessor)`, `push(slice)` until the end, then
/// `finish(sha256)` gives the `Matcher`. Int8 weights load as int8, float weights as f32.
#[wasm_bindgen]
pub struct MatcherLoader {
    loader: ModelLoader,
    preprocess: PreprocessConfig,
    hasher: Option<Sha256Stream>,
}

#[wasm_bindgen]
impl MatcherLoader {
    /// `hash_weights`: compute the weights' sha256 while loading (slow in wasm: for pages
    /// without SubtleCrypto, which cannot verify the download themselves). `weights_len`: the
    /// file's size when known (from `bundle.json`); a header describing other data is then
    /// refused before any memory is sized from it.
    #[wasm_bindgen(constructor)]
    pub fn new(
        config_json: &str,
        preprocessor_json: &str,
        hash_weights: bool,
        weights_len: Option<usize>,
    ) -> Result<MatcherLoader, JsError> {
        let config = ModelConfig::from_json(config_json).map_err(js)?;
        let preprocess = PreprocessConfig::from_json(preprocessor_json).map_err(js)?;
        let loader = ModelLoader::new(config, Some(Towers::VisionOnly));
        Ok(MatcherLoader {
            loader: match weights_len {
                Some(len) => loader.with_file_len(len),
                None => loader,
            },
            preprocess,
            hasher: hash_weights.then(Sha256Stream::default),
        })
    }

    /// Feeds the next bytes of the weights file.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), JsError> {
        if let Some(h) = &mut self.hasher {
            h.update(chunk);
        }
        self.loader.push(chunk).map_err(js)
    }

    /// The matcher, once the whole file has been fed. `weights_sha256` is the file's hash as the
    /// caller verified it (the page checks every download with SubtleCrypto), or `undefined` when
    /// the loader was asked to hash; a catalog is only accepted for the weights it names.
    pub fn finish(self, weights_sha256: Option<String>) -> Result<Matcher, JsError> {
        let sha = match (weights_sha256, self.hasher) {
            (Some(s), _) => s,
            (None, Some(h)) => h.hex(),
            (None, None) => return Err(JsError::new("the weights' sha256 is unknown: pass it, or create the loader with hashing on")),
        };
        let model = self.loader.finish().map_err(js)?;
        Ok(Matcher::with_model(model, self.preprocess, sha))
    }
}
