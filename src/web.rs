//! The wasm API: a thin `wasm-bindgen` shell over the core. Errors become `JsError`s whose
//! message is the core's; results are plain JS objects via `serde-wasm-bindgen`.

use wasm_bindgen::prelude::*;

use crate::catalog::Catalog;
use crate::config::PreprocessConfig;
use crate::digest::sha256_hex;
use crate::embedder::Embedder;
use crate::model::{ClipModel, Towers};
use crate::rank::{rank, FusionWeights};

fn js<E: std::fmt::Display>(e: E) -> JsError {
    JsError::new(&e.to_string())
}

/// A loaded vision model and, once given, a catalog to rank photos against.
#[wasm_bindgen]
pub struct Matcher {
    embedder: Embedder,
    weights_sha256: String,
    catalog: Option<Catalog>,
}

#[wasm_bindgen]
impl Matcher {
    /// Loads the vision tower from `config.json`, `preprocessor_config.json` and
    /// `model.safetensors` bytes (f32 or f16; full model or vision tower only).
    #[wasm_bindgen(constructor)]
    pub fn new(config_json: &str, preprocessor_json: &str, weights: &[u8]) -> Result<Matcher, JsError> {
        let model = ClipModel::load(config_json, weights, Some(Towers::VisionOnly)).map_err(js)?;
        let preprocess = PreprocessConfig::from_json(preprocessor_json).map_err(js)?;
        Ok(Matcher {
            embedder: Embedder::new(model, preprocess, None),
            weights_sha256: sha256_hex(weights),
            catalog: None,
        })
    }

    /// sha256 of the weights this matcher was loaded from.
    #[wasm_bindgen(getter, js_name = weightsSha256)]
    pub fn weights_sha256(&self) -> String {
        self.weights_sha256.clone()
    }

    /// Loads a catalog (manifest JSON bytes + vectors file bytes), refusing one that was built
    /// with another model.
    #[wasm_bindgen(js_name = loadCatalog)]
    pub fn load_catalog(&mut self, manifest: &[u8], vectors: &[u8]) -> Result<usize, JsError> {
        let catalog = Catalog::from_parts(manifest, vectors).map_err(js)?;
        catalog
            .check_model(
                self.embedder.model.embedding_dim(),
                Some(&self.weights_sha256),
                &self.embedder.preprocess,
            )
            .map_err(js)?;
        let n = catalog.len();
        self.catalog = Some(catalog);
        Ok(n)
    }

    /// Raw image embedding (as transformers' `get_image_features`) of an encoded photo.
    #[wasm_bindgen(js_name = embedImage)]
    pub fn embed_image(&self, bytes: &[u8]) -> Result<Vec<f32>, JsError> {
        let px = self.embedder.pixel_values(bytes).map_err(js)?;
        let mut rows = self.embedder.embed_pixels(&[px]).map_err(js)?;
        Ok(rows.remove(0))
    }

    /// Ranks an encoded photo against the loaded catalog. Weights and k default to the
    /// catalog's.
    #[wasm_bindgen(js_name = rankImage)]
    pub fn rank_image(
        &self,
        bytes: &[u8],
        text_weight: Option<f32>,
        image_weight: Option<f32>,
        top_k: Option<usize>,
    ) -> Result<JsValue, JsError> {
        let catalog = self
            .catalog
            .as_ref()
            .ok_or_else(|| JsError::new("no catalog is loaded"))?;
        let query = self.embedder.embed_photo(bytes).map_err(js)?;
        let d = catalog.manifest.ranking;
        let weights = FusionWeights {
            text: text_weight.unwrap_or(d.text_weight),
            image: image_weight.unwrap_or(d.image_weight),
        };
        let ranking = rank(catalog, &query, weights, top_k.unwrap_or(d.top_k), d.min_score);
        serde_wasm_bindgen::to_value(&ranking).map_err(js)
    }
}
