//! The wasm API: a thin `wasm-bindgen` shell over the core. Errors become `JsError`s carrying
//! the core's message; results are plain JS objects via `serde-wasm-bindgen`.

use std::cell::RefCell;

use serde::Serialize;
use wasm_bindgen::prelude::*;

#[cfg(feature = "bench")]
mod bench;
mod limits;
mod loader;

#[cfg(feature = "bench")]
pub use bench::RankBench;
pub use limits::max_photo_bytes;
pub use loader::MatcherLoader;

use crate::digest::sha256_hex;
use crate::error::Error;
use crate::imaging::decode::rgb_from_rgba;
use crate::models::clip::{l2_normalize, ClipModel, Towers};
use crate::models::config::PreprocessConfig;
use crate::models::embedder::Embedder;
use crate::search::catalog::Catalog;
use crate::search::rank::{rank, FusionWeights};

/// `initThreadPool(n)` in the multi-threaded build: starts `n` Web Workers for the model's
/// products. Call it once, before loading; the page must be cross-origin isolated.
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

pub(crate) fn js<E: std::fmt::Display>(e: E) -> JsError {
    JsError::new(&e.to_string())
}

/// What the page shows about a loaded catalog.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CatalogSummary {
    items: usize,
    model_name: String,
    text_weight: f32,
    image_weight: f32,
    top_k: usize,
    min_score: f32,
}

/// A loaded vision model and, once given, a catalog to rank photos against.
#[wasm_bindgen]
pub struct Matcher {
    pub(crate) embedder: Embedder,
    weights_sha256: String,
    catalog: Option<Catalog>,
    last_query: RefCell<Option<Vec<f32>>>,
}

#[wasm_bindgen]
impl Matcher {
    /// Loads the vision tower from `config.json`, `preprocessor_config.json` and
    /// `model.safetensors` bytes (f32 or f16; full model or vision tower only).
    /// `weights_sha256` is the weights' hash when the caller has already verified it (the page
    /// checks every download with SubtleCrypto); otherwise it is computed here.
    #[wasm_bindgen(constructor)]
    pub fn new(
        config_json: &str,
        preprocessor_json: &str,
        weights: &[u8],
        weights_sha256: Option<String>,
    ) -> Result<Matcher, JsError> {
        let model = ClipModel::load(config_json, weights, Some(Towers::VisionOnly)).map_err(js)?;
        let preprocess = PreprocessConfig::from_json(preprocessor_json).map_err(js)?;
        Ok(Matcher::with_model(model, preprocess, weights_sha256.unwrap_or_else(|| sha256_hex(weights))))
    }

    /// sha256 of the weights this matcher was loaded from.
    #[wasm_bindgen(getter, js_name = weightsSha256)]
    pub fn weights_sha256(&self) -> String {
        self.weights_sha256.clone()
    }

    /// Loads a catalog (manifest JSON bytes + vectors file bytes), refusing one built with
    /// another model. Returns a summary: items, model name, default weights, threshold.
    #[wasm_bindgen(js_name = loadCatalog)]
    pub fn load_catalog(&mut self, manifest: &[u8], vectors: &[u8]) -> Result<JsValue, JsError> {
        let catalog = Catalog::from_parts(manifest, vectors).map_err(js)?;
        catalog
            .check_model(
                self.embedder.model.embedding_dim(),
                Some(&self.weights_sha256),
                &self.embedder.preprocess,
            )
            .map_err(js)?;
        let r = catalog.manifest.ranking;
        let summary = CatalogSummary {
            items: catalog.len(),
            model_name: catalog.manifest.model.name.clone(),
            text_weight: r.text_weight,
            image_weight: r.image_weight,
            top_k: r.top_k,
            min_score: r.min_score,
        };
        self.catalog = Some(catalog);
        self.last_query.replace(None);
        serde_wasm_bindgen::to_value(&summary).map_err(js)
    }

    /// Raw image embedding (as transformers' `get_image_features`) of an encoded photo.
    #[wasm_bindgen(js_name = embedImage)]
    pub fn embed_image(&self, bytes: &[u8]) -> Result<Vec<f32>, JsError> {
        let px = self.embedder.pixel_values(bytes).map_err(js)?;
        let mut rows = self.embedder.embed_pixels(&[px]).map_err(js)?;
        Ok(rows.remove(0))
    }

    /// Ranks an encoded photo (JPEG, PNG, WebP, GIF) against the catalog. Weights and k
    /// default to the catalog's.
    #[wasm_bindgen(js_name = rankImage)]
    pub fn rank_image(
        &self,
        bytes: &[u8],
        text_weight: Option<f32>,
        image_weight: Option<f32>,
        top_k: Option<usize>,
    ) -> Result<JsValue, JsError> {
        self.catalog()?;
        let query = self.embedder.embed_photo(bytes).map_err(js)?;
        self.last_query.replace(Some(query));
        self.rerank(text_weight, image_weight, top_k)
    }

    /// Ranks RGBA pixels (e.g. a camera frame from a canvas) against the catalog.
    #[wasm_bindgen(js_name = rankPixels)]
    pub fn rank_pixels(
        &self,
        rgba: &[u8],
        width: u32,
        height: u32,
        text_weight: Option<f32>,
        image_weight: Option<f32>,
        top_k: Option<usize>,
    ) -> Result<JsValue, JsError> {
        self.catalog()?;
        let rgb = rgb_from_rgba(rgba, width, height, &self.embedder.limits).map_err(js)?;
        let px = self.embedder.pixel_values_of(&rgb);
        let mut query = self.embedder.embed_pixels(&[px]).map_err(|e: Error| js(e))?.remove(0);
        l2_normalize(&mut query);
        self.last_query.replace(Some(query));
        self.rerank(text_weight, image_weight, top_k)
    }

    /// Ranks the last photo again, with other weights: no model run, so it is instant.
    pub fn rerank(
        &self,
        text_weight: Option<f32>,
        image_weight: Option<f32>,
        top_k: Option<usize>,
    ) -> Result<JsValue, JsError> {
        let catalog = self.catalog()?;
        let last = self.last_query.borrow();
        let query = last.as_ref().ok_or_else(|| JsError::new("no photo has been ranked yet"))?;
        let d = catalog.manifest.ranking;
        let weights = FusionWeights {
            text: text_weight.unwrap_or(d.text_weight),
            image: image_weight.unwrap_or(d.image_weight),
        };
        let ranking = rank(catalog, query, weights, top_k.unwrap_or(d.top_k), d.min_score);
        serde_wasm_bindgen::to_value(&ranking).map_err(js)
    }
}

impl Matcher {
    pub(crate) fn with_model(model: ClipModel, preprocess: PreprocessConfig, weights_sha256: String) -> Self {
        Matcher {
            embedder: Embedder::new(model, preprocess, None),
            weights_sha256,
            catalog: None,
            last_query: RefCell::new(None),
        }
    }

    fn catalog(&self) -> Result<&Catalog, JsError> {
        self.catalog.as_ref().ok_or_else(|| JsError::new("no catalog is loaded"))
    }
}
