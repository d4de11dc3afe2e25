//! The wasm API: a thin `wasm-bindgen` shell over the core. Errors become `JsError`s carrying
//! the core's message; results are plain JS objects via `serde-wasm-bindgen`.

use std::cell::RefCell;

use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::catalog::{vectors_file_size, Catalog, VectorDtype};
use crate::config::PreprocessConfig;
use crate::decode::rgb_from_rgba;
use crate::digest::{sha256_hex, Sha256Stream};
use crate::embedder::Embedder;
use crate::error::{CatalogError, Error};
use crate::model::{l2_normalize, ClipModel, ModelLoader, Towers};
use crate::ModelConfig;
use crate::rank::{rank, FusionWeights};
use crate::synthetic;

/// `initThreadPool(n)` in the multi-threaded build: starts `n` Web Workers for the model's
/// products. Call it once, before loading; the page must be cross-origin isolated.
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

fn js<E: std::fmt::Display>(e: E) -> JsError {
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
    embedder: Embedder,
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

    /// Raw image embedding of one already preprocessed image: CHW `pixel_values`
    /// (3 x 224 x 224 for ViT-B/32, f32), as transformers' `get_image_features`. For benchmarks.
    #[wasm_bindgen(js_name = embedPixelValues)]
    pub fn embed_pixel_values(&self, pixel_values: &[f32]) -> Result<Vec<f32>, JsError> {
        let mut rows = self.embedder.embed_pixels(&[pixel_values.to_vec()]).map_err(js)?;
        Ok(rows.remove(0))
    }
}

impl Matcher {
    fn with_model(model: ClipModel, preprocess: PreprocessConfig, weights_sha256: String) -> Self {
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

/// A synthetic catalog of random unit vectors (seeded, stored like a built catalog) and a
/// query, to time the ranking where the page runs it: `new RankBench(100000, 512, 1, "i8")`.
#[wasm_bindgen]
pub struct RankBench {
    catalog: Catalog,
    query: Vec<f32>,
}

#[wasm_bindgen]
impl RankBench {
    #[wasm_bindgen(constructor)]
    pub fn new(items: usize, dim: usize, seed: u32, dtype: &str) -> Result<RankBench, JsError> {
        let dtype = VectorDtype::parse(dtype).ok_or_else(|| js(CatalogError::UnsupportedDtype(dtype.into())))?;
        let catalog = synthetic::catalog(items, dim, seed as u64, dtype).map_err(js)?;
        let query = synthetic::Rng::new(!(seed as u64)).unit_vector(dim);
        Ok(RankBench { catalog, query })
    }

    /// Draws another random unit query.
    #[wasm_bindgen(js_name = newQuery)]
    pub fn new_query(&mut self, seed: u32) {
        self.query = synthetic::Rng::new(seed as u64).unit_vector(self.catalog.dim());
    }

    /// Bytes of the stored vectors (the size of its `vectors.bin`).
    #[wasm_bindgen(getter, js_name = vectorBytes)]
    pub fn vector_bytes(&self) -> usize {
        vectors_file_size(self.catalog.len(), self.catalog.dim(), self.catalog.dtype()).expect("a built catalog's size fits")
    }

    /// Ranks the catalog against the query exactly as `Matcher.rerank` does, same result object.
    pub fn rank(&self, top_k: usize) -> Result<JsValue, JsError> {
        let d = self.catalog.manifest.ranking;
        let weights = FusionWeights { text: d.text_weight, image: d.image_weight };
        serde_wasm_bindgen::to_value(&rank(&self.catalog, &self.query, weights, top_k, d.min_score)).map_err(js)
    }
}

/// Loads the vision tower from `model.safetensors` fed in slices, so wasm memory never holds the
/// whole file: `new MatcherLoader(config, preprocessor)`, `push(slice)` until the end, then
/// `finish(sha256)` gives the `Matcher`. Int8 weights load as int8, float weights as f32.
#[wasm_bindgen]
pub struct MatcherLoader {
    loader: ModelLoader,
    preprocess: PreprocessConfig,
    received: usize,
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
            received: 0,
            hasher: hash_weights.then(Sha256Stream::default),
        })
    }

    /// Feeds the next bytes of the weights file.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), JsError> {
        self.received += chunk.len();
        if let Some(h) = &mut self.hasher {
            h.update(chunk);
        }
        self.loader.push(chunk).map_err(js)
    }

    /// Bytes fed so far.
    #[wasm_bindgen(getter)]
    pub fn received(&self) -> usize {
        self.received
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
