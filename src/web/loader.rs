//! Loading the image tower from a stream of weight-file slices: the core's loaders
//! ([`BundleModelLoader`] for a bundle, [`VisionLoader`] for loose files), forwarded.

use wasm_bindgen::prelude::*;

use super::{js, panic_hook, Matcher};
use crate::digest::Sha256Stream;
use crate::models::model::{Engine, Family};
use crate::models::vision_loader::VisionLoader;
use crate::search::bundle::Bundle;
use crate::search::bundle_model::BundleModelLoader;

enum Source {
    Bundle(BundleModelLoader),
    Files(VisionLoader),
}

/// Loads the image tower from its weights file fed in slices: `MatcherLoader.forBundle(...)` (or
/// `new MatcherLoader(...)` for files outside a bundle), `push(slice)` until the end, then
/// `finish(sha256)` gives the `Matcher`. OpenAI CLIP on this crate's kernels is built as the
/// slices arrive (int8 weights load as int8); candle gathers the file, up to its announced size.
#[wasm_bindgen]
pub struct MatcherLoader {
    source: Source,
    hasher: Option<Sha256Stream>,
}

/// `engine` as the page's `?engine=` gives it (`undefined`: the family's default).
fn engine(name: Option<String>) -> Result<Option<Engine>, JsError> {
    name.map(|n| Engine::from_name(&n)).transpose().map_err(js)
}

#[wasm_bindgen]
impl MatcherLoader {
    /// The model `bundle.json` (its text) names, from the texts of the config files it names.
    /// `hash_weights`: compute the weights' sha256 while loading (slow in wasm: for pages
    /// without SubtleCrypto, which cannot verify the download themselves).
    #[wasm_bindgen(js_name = forBundle)]
    pub fn for_bundle(
        bundle_json: &str,
        engine_name: Option<String>,
        config_json: &str,
        preprocessor_json: Option<String>,
        hash_weights: bool,
    ) -> Result<MatcherLoader, JsError> {
        panic_hook::install();
        let bundle = Bundle::from_json(bundle_json.as_bytes()).map_err(js)?;
        let loader =
            BundleModelLoader::new(&bundle, engine(engine_name)?, config_json, preprocessor_json.as_deref()).map_err(js)?;
        Ok(MatcherLoader { source: Source::Bundle(loader), hasher: hash_weights.then(Sha256Stream::default) })
    }

    /// A `family` image tower (`openai-clip`, `mobileclip`, `siglip`) from loose files (the
    /// browser benchmarks). `weights_len`: the file's size when known; candle needs it, and a
    /// header describing other data is refused before any memory is sized from it.
    #[wasm_bindgen(constructor)]
    pub fn new(
        family: &str,
        engine_name: Option<String>,
        config_json: &str,
        preprocessor_json: Option<String>,
        hash_weights: bool,
        weights_len: Option<usize>,
    ) -> Result<MatcherLoader, JsError> {
        panic_hook::install();
        let family = Family::from_id(family).ok_or_else(|| JsError::new(&format!("unknown model family {family:?}")))?;
        let loader =
            VisionLoader::new(family, engine(engine_name)?, config_json, preprocessor_json.as_deref(), weights_len).map_err(js)?;
        Ok(MatcherLoader { source: Source::Files(loader), hasher: hash_weights.then(Sha256Stream::default) })
    }

    /// Feeds the next bytes of the weights file.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), JsError> {
        if let Some(h) = &mut self.hasher {
            h.update(chunk);
        }
        match &mut self.source {
            Source::Bundle(l) => l.push(chunk).map_err(js),
            Source::Files(l) => l.push(chunk).map_err(js),
        }
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
        let embedder = match self.source {
            Source::Bundle(l) => l.finish(&sha).map_err(js)?,
            Source::Files(l) => l.finish().map_err(js)?,
        };
        Ok(Matcher::with_model(embedder, sha))
    }
}
