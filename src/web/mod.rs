//! The wasm API: a thin `wasm-bindgen` shell over the core's search session. Errors become
//! `JsError`s carrying the core's message; results are plain JS objects via `serde-wasm-bindgen`.

use serde::Serialize;
use wasm_bindgen::prelude::*;

#[cfg(feature = "bench")]
mod bench;
mod limits;
mod loader;
mod out_of_memory;
mod panic_hook;
mod threads;

#[cfg(feature = "bench")]
pub use bench::{CompactRankBench, RankBench};
pub use limits::max_photo_bytes;
pub use loader::MatcherLoader;
pub use out_of_memory::{take_failed_allocation, HeapCount};
#[cfg(feature = "test-hooks")]
pub use panic_hook::panic_for_test;
pub use panic_hook::take_panic_message;
pub use threads::{set_threads, thread_probe};

use crate::imaging::crop::Region;
use crate::models::embedder::Embedder;
use crate::search::compact::page::PageCompactCatalog;
use crate::search::ranking_options::RankingOverrides;
use crate::search::session::SearchSession;

/// `initThreadPool(n)` in the multi-threaded build: starts `n` Web Workers for the model's
/// products. Call it once, before loading; the page must be cross-origin isolated.
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

pub(crate) fn js<E: std::fmt::Display>(e: E) -> JsError {
    JsError::new(&e.to_string())
}

/// A plain JS value; maps (an item's fields) as plain objects, not `Map`s.
fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    value.serialize(&serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true)).map_err(js)
}

fn overrides(text_weight: Option<f32>, image_weight: Option<f32>, top_k: Option<usize>) -> RankingOverrides {
    RankingOverrides { text_weight, image_weight, top_k, min_score: None }
}

/// A loaded vision model and, once given, a catalog to rank photos against.
#[wasm_bindgen]
pub struct Matcher {
    session: SearchSession,
}

#[wasm_bindgen]
impl Matcher {
    /// Loads a catalog (manifest JSON bytes + vectors file bytes), refusing one built with
    /// another model. Returns a summary: items, model name, default weights, threshold.
    #[wasm_bindgen(js_name = loadCatalog)]
    pub fn load_catalog(&mut self, manifest: &[u8], vectors: &[u8]) -> Result<JsValue, JsError> {
        to_js(&self.session.load_catalog(manifest, vectors).map_err(js)?)
    }

    /// Loads a big catalog's compact form (the bundle's page-catalog.json.gz, gzipped or not, and
    /// compact.bin bytes), refusing one built with another model, a damaged codes file or a page
    /// catalog that expands past a catalog's size, in one line, with bounded memory. Photos are
    /// ranked from the codes alone (results say `codes_only`) until `attachVectors`.
    #[wasm_bindgen(js_name = loadCompactCatalog)]
    pub fn load_compact_catalog(&mut self, page_manifest: &[u8], codes: &[u8]) -> Result<JsValue, JsError> {
        let catalog = PageCompactCatalog::from_parts(page_manifest, codes).map_err(js)?;
        to_js(&self.session.use_compact_catalog(catalog).map_err(js)?)
    }

    /// Gives the compact catalog its vectors file (all of it: the page fetches it whatever the
    /// photo), checked against its manifest; from now on rankings are exact.
    #[wasm_bindgen(js_name = attachVectors)]
    pub fn attach_vectors(&mut self, vectors: &[u8]) -> Result<(), JsError> {
        self.session.attach_vectors(vectors).map_err(js)
    }

    /// Ranks an encoded photo (JPEG, PNG, WebP, GIF) against the catalog. Weights and k
    /// default to the catalog's.
    #[wasm_bindgen(js_name = rankImage)]
    pub fn rank_image(
        &mut self,
        bytes: &[u8],
        text_weight: Option<f32>,
        image_weight: Option<f32>,
        top_k: Option<usize>,
    ) -> Result<JsValue, JsError> {
        to_js(&self.session.rank_photo(bytes, &overrides(text_weight, image_weight, top_k)).map_err(js)?)
    }

    /// Ranks RGBA pixels (e.g. a camera frame from a canvas) against the catalog.
    #[wasm_bindgen(js_name = rankPixels)]
    pub fn rank_pixels(
        &mut self,
        rgba: &[u8],
        width: u32,
        height: u32,
        text_weight: Option<f32>,
        image_weight: Option<f32>,
        top_k: Option<usize>,
    ) -> Result<JsValue, JsError> {
        let o = overrides(text_weight, image_weight, top_k);
        to_js(&self.session.rank_rgba(rgba, width, height, &o).map_err(js)?)
    }

    /// Ranks a region of the last photo, without decoding it again: `x`, `y` (top-left corner),
    /// `width`, `height` in whole pixels of the upright photo (EXIF orientation applied, as an
    /// `<img>` shows it: its `naturalWidth` x `naturalHeight`). A region outside the photo, under
    /// 8 pixels a side or thinner than 1:20 is refused in one line, and the session stays as it was.
    #[wasm_bindgen(js_name = rankRegion)]
    #[allow(clippy::too_many_arguments)]
    pub fn rank_region(
        &mut self,
        x: f64,
        y: f64,
        width: f64,
        height: f64,
        text_weight: Option<f32>,
        image_weight: Option<f32>,
        top_k: Option<usize>,
    ) -> Result<JsValue, JsError> {
        let region = Region::from_numbers(x, y, width, height).map_err(js)?;
        to_js(&self.session.rank_region(region, &overrides(text_weight, image_weight, top_k)).map_err(js)?)
    }

    /// Forgets the region and ranks the whole last photo again: no model run.
    #[wasm_bindgen(js_name = rankWholePhoto)]
    pub fn rank_whole_photo(
        &mut self,
        text_weight: Option<f32>,
        image_weight: Option<f32>,
        top_k: Option<usize>,
    ) -> Result<JsValue, JsError> {
        to_js(&self.session.rank_whole_photo(&overrides(text_weight, image_weight, top_k)).map_err(js)?)
    }

    /// The model family answering: `openai-clip`, `mobileclip` or `siglip`.
    #[wasm_bindgen(getter)]
    pub fn family(&self) -> String {
        self.session.embedder().model.towers().family().id().into()
    }

    /// What runs the model: `ours` or `candle`.
    #[wasm_bindgen(getter)]
    pub fn engine(&self) -> String {
        self.session.embedder().model.towers().engine().name().into()
    }

    /// Ranks the last photo (its region, if one is set) again, with other weights: no model run,
    /// so it is instant.
    pub fn rerank(
        &self,
        text_weight: Option<f32>,
        image_weight: Option<f32>,
        top_k: Option<usize>,
    ) -> Result<JsValue, JsError> {
        to_js(&self.session.rerank(&overrides(text_weight, image_weight, top_k)).map_err(js)?)
    }
}

impl Matcher {
    pub(crate) fn with_model(embedder: Embedder, weights_sha256: String) -> Self {
        Matcher { session: SearchSession::new(embedder, weights_sha256) }
    }

    #[cfg(feature = "bench")]
    pub(crate) fn embedder(&self) -> &Embedder {
        self.session.embedder()
    }
}
