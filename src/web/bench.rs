//! Entry points for the browser benchmarks only: a synthetic catalog to time ranking, and the
//! vision tower on already preprocessed pixels.

use wasm_bindgen::prelude::*;

use super::{js, Matcher};
use crate::error::CatalogError;
use crate::search::catalog::{vectors_file_size, Catalog, VectorDtype};
use crate::search::compact::page::PageCompactCatalog;
use crate::search::rank::FusionWeights;
use crate::search::rank::rank;
use crate::search::ranking_options::RankingOverrides;
use crate::search::synthetic;

#[wasm_bindgen]
impl Matcher {
    /// Raw image embedding (as transformers' `get_image_features`) of an encoded photo.
    #[wasm_bindgen(js_name = embedImage)]
    pub fn embed_image(&self, bytes: &[u8]) -> Result<Vec<f32>, JsError> {
        self.embedder().embed_photo_raw(bytes).map_err(js)
    }

    /// Raw image embedding of one already preprocessed image: CHW `pixel_values`
    /// (3 x 224 x 224 for ViT-B/32, f32), as transformers' `get_image_features`. For benchmarks.
    #[wasm_bindgen(js_name = embedPixelValues)]
    pub fn embed_pixel_values(&self, pixel_values: &[f32]) -> Result<Vec<f32>, JsError> {
        let mut rows = self.embedder().embed_pixels_raw(&[pixel_values.to_vec()]).map_err(js)?;
        Ok(rows.remove(0))
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
        let o = RankingOverrides { top_k: Some(top_k), ..Default::default() }.resolve(&self.catalog.manifest.ranking);
        serde_wasm_bindgen::to_value(&rank(&self.catalog, &self.query, o.weights, o.top_k, o.min_score)).map_err(js)
    }
}


/// A compact catalog as the page's worker holds it (page-catalog.json and compact.bin, then
/// vectors.bin), ranked against queries given as one array of unit vectors: to time the
/// ranking of 100,000 items where the page runs it (benches/browser/compact_bench.mjs).
#[wasm_bindgen]
pub struct CompactRankBench {
    catalog: PageCompactCatalog,
    queries: Vec<f32>,
}

#[wasm_bindgen]
impl CompactRankBench {
    #[wasm_bindgen(constructor)]
    pub fn new(page_manifest: &[u8], codes: &[u8], queries: Vec<f32>) -> Result<CompactRankBench, JsError> {
        let catalog = PageCompactCatalog::from_parts(page_manifest, codes).map_err(js)?;
        if queries.len() % catalog.manifest.model.embedding_dim != 0 {
            return Err(JsError::new("the queries are not whole vectors"));
        }
        Ok(CompactRankBench { catalog, queries })
    }

    /// As `Matcher.attachVectors`: rankings are exact from now on.
    #[wasm_bindgen(js_name = attachVectors)]
    pub fn attach_vectors(&mut self, vectors: &[u8]) -> Result<(), JsError> {
        self.catalog.attach_vectors(vectors).map_err(js)
    }

    /// The catalog's indices of the top k for query `i`, as the page ranks (fused weights 1.5
    /// and 0.5): from the codes alone until the vectors are attached, exactly after.
    pub fn rank(&self, i: usize, top_k: usize) -> Vec<u32> {
        let d = self.catalog.manifest.model.embedding_dim;
        let q = &self.queries[i * d..(i + 1) * d];
        let r = self.catalog.rank(q, FusionWeights { text: 1.5, image: 0.5 }, top_k, 0.0);
        r.matches.iter().map(|m| m.index as u32).collect()
    }
}

/// Milliseconds of one `QuantLinear::forward` (`m` rows, `k` inputs, `n` outputs, random int8
/// weights and inputs), the median of `reps` runs after one warm-up: the int8 product alone,
/// by shape, for the kernel work of issue 14.
#[wasm_bindgen(js_name = benchInt8Product)]
pub fn bench_int8_product(m: usize, k: usize, n: usize, reps: usize) -> f64 {
    use crate::kernels::qgemm::QuantLinear;
    let mut layer = QuantLinear::zeros(n, k, true);
    let mut state = 12345u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let q: Vec<i8> = (0..n * k).map(|_| (next() % 255) as i32 as i8).collect();
    layer.set_rows(0, &q, &vec![0.01; n]);
    let x: Vec<f32> = (0..m * k).map(|_| (next() % 2001) as f32 / 1000.0 - 1.0).collect();
    let mut out = vec![0.0f32; m * n];
    let performance = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).expect("performance");
    let now_fn: js_sys::Function = js_sys::Reflect::get(&performance, &"now".into()).expect("performance.now").into();
    let now = || now_fn.call0(&performance).ok().and_then(|v| v.as_f64()).unwrap_or(0.0);
    layer.forward(&x, m, &mut out);
    let mut times: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let t = now();
            for _ in 0..10 {
                layer.forward(&x, m, &mut out);
            }
            (now() - t) / 10.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
