//! The search session behind the page's `Matcher` and `clipmatch query`, on the committed tiny
//! CLIP: natively and, through `wasm-pack test`, in Chromium.

mod common;

use clipmatch::digest::sha256_hex;
use clipmatch::error::SessionError;
use clipmatch::search::catalog::{Item, ModelInfo, RankingDefaults};
use clipmatch::search::ranking_options::RankingOverrides;
use clipmatch::search::session::SearchSession;
use clipmatch::{rank, Catalog, CatalogError, ClipModel, Embedder, Error, PreprocessConfig, Towers};
use common::*;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

fn embedder() -> Embedder {
    let model = ClipModel::load(TINY_CONFIG, TINY_WEIGHTS, Some(Towers::VisionOnly)).unwrap();
    Embedder::new(model, PreprocessConfig::from_json(TINY_PREPROCESSOR).unwrap(), None)
}

fn session() -> SearchSession {
    SearchSession::new(embedder(), sha256_hex(TINY_WEIGHTS))
}

/// A catalog of the fixture photos: item i's image vector is photo i's embedding, its name
/// vector photo i+1's (so that the two signals disagree), recorded as made with `weights_sha256`.
fn catalog(e: &Embedder, weights_sha256: &str, embedding_dim: usize) -> Catalog {
    let vectors: Vec<Vec<f32>> = IMAGES.iter().map(|(_, bytes, _)| e.embed_photo(bytes).unwrap()).collect();
    let pairs: Vec<(Vec<f32>, Vec<f32>)> =
        (0..vectors.len()).map(|i| (vectors[i].clone(), vectors[(i + 1) % vectors.len()].clone())).collect();
    let items = IMAGES
        .iter()
        .map(|(file, _, _)| Item { id: file.replace(['/', '.'], "-"), name: file.to_string(), description: None, image: file.to_string(), thumbnail: None })
        .collect();
    let model = ModelInfo { name: "tiny".into(), weights_sha256: weights_sha256.into(), equivalent_weights_sha256: vec![], embedding_dim };
    let ranking = RankingDefaults { text_weight: 1.25, image_weight: 0.75, top_k: 4, min_score: 0.5, tuned: None };
    Catalog::new(model, e.preprocess.clone(), ranking, items, &pairs).unwrap()
}

fn loaded_session() -> SearchSession {
    let mut s = session();
    let c = catalog(s.embedder(), s.weights_sha256(), s.embedder().model.embedding_dim());
    s.load_catalog(c.manifest_json().as_bytes(), &c.vectors_bytes()).unwrap();
    s
}

#[test]
fn loading_a_catalog_summarises_it() {
    let mut s = session();
    let c = catalog(s.embedder(), s.weights_sha256(), s.embedder().model.embedding_dim());
    let summary = s.load_catalog(c.manifest_json().as_bytes(), &c.vectors_bytes()).unwrap();
    assert_eq!(summary.items, IMAGES.len());
    assert_eq!(summary.model_name, "tiny");
    assert_eq!((summary.text_weight, summary.image_weight, summary.top_k, summary.min_score), (1.25, 0.75, 4, 0.5));
}

#[test]
fn a_photo_ranks_its_own_item_first_by_image() {
    let mut s = loaded_session();
    let image_only = RankingOverrides { text_weight: Some(0.0), image_weight: Some(1.0), ..Default::default() };
    for (i, (file, bytes, _)) in IMAGES.iter().enumerate() {
        let r = s.rank_photo(bytes, &image_only).unwrap();
        assert_eq!(r.matches[0].index, i, "{file}");
        assert!((r.matches[0].image_similarity - 1.0).abs() < 1e-4, "{file}: {}", r.matches[0].image_similarity);
    }
}

#[test]
fn ranking_uses_the_catalogs_defaults_and_the_overrides() {
    let mut s = loaded_session();
    let (_, bytes, _) = IMAGES[0];
    let query = s.embedder().embed_photo(bytes).unwrap();
    let by_default = s.rank_photo(bytes, &RankingOverrides::default()).unwrap();
    let catalog = s.catalog().unwrap();
    let d = catalog.manifest.ranking;
    let weights = clipmatch::FusionWeights { text: d.text_weight, image: d.image_weight };
    assert_eq!(by_default, rank(catalog, &query, weights, 4, 0.5));
    let o = RankingOverrides { text_weight: Some(0.5), image_weight: Some(2.0), top_k: Some(2), min_score: Some(9.0) };
    let overridden = s.rank_photo(bytes, &o).unwrap();
    let catalog = s.catalog().unwrap();
    assert_eq!(overridden, rank(catalog, &query, clipmatch::FusionWeights { text: 0.5, image: 2.0 }, 2, 9.0));
    assert!(!overridden.confident);
}

#[test]
fn rerank_equals_rank_with_the_same_overrides() {
    let mut s = loaded_session();
    let (_, bytes, _) = IMAGES[3];
    s.rank_photo(bytes, &RankingOverrides::default()).unwrap();
    for o in [
        RankingOverrides { text_weight: Some(0.0), ..Default::default() },
        RankingOverrides { image_weight: Some(3.0), top_k: Some(1), ..Default::default() },
        RankingOverrides { min_score: Some(-5.0), top_k: Some(100), ..Default::default() },
    ] {
        let again = s.rerank(&o).unwrap();
        assert_eq!(again, s.rank_photo(bytes, &o).unwrap(), "{o:?}");
    }
}

#[test]
fn rgba_pixels_rank_as_the_encoded_photo() {
    let mut s = loaded_session();
    let (_, bytes, _) = IMAGES[0]; // photo.jpg: opaque, upright
    let rgba = image::load_from_memory(bytes).unwrap().to_rgba8();
    let from_pixels = s.rank_rgba(rgba.as_raw(), rgba.width(), rgba.height(), &RankingOverrides::default()).unwrap();
    assert_eq!(from_pixels, s.rank_photo(bytes, &RankingOverrides::default()).unwrap());
    let err = s.rank_rgba(&[0; 7], 2, 1, &RankingOverrides::default()).unwrap_err();
    assert!(matches!(err, Error::Image(_)), "{err}");
}

#[test]
fn nothing_ranks_before_a_catalog_and_a_photo() {
    let mut s = session();
    let (_, bytes, _) = IMAGES[0];
    let err = s.rank_photo(bytes, &RankingOverrides::default()).unwrap_err();
    assert!(matches!(err, Error::Session(SessionError::NoCatalog)), "{err}");
    assert_eq!(err.to_string(), "no catalog is loaded");
    let err = s.rerank(&RankingOverrides::default()).unwrap_err();
    assert!(matches!(err, Error::Session(SessionError::NoCatalog)), "{err}");

    let mut s = loaded_session();
    let err = s.rerank(&RankingOverrides::default()).unwrap_err();
    assert!(matches!(err, Error::Session(SessionError::NoQuery)), "{err}");
    assert_eq!(err.to_string(), "no photo has been ranked yet");
    // A photo that fails leaves no query behind either.
    assert!(s.rank_photo(b"not an image", &RankingOverrides::default()).is_err());
    assert!(matches!(s.rerank(&RankingOverrides::default()), Err(Error::Session(SessionError::NoQuery))));
}

#[test]
fn a_new_catalog_forgets_the_last_photo() {
    let mut s = loaded_session();
    s.rank_photo(IMAGES[0].1, &RankingOverrides::default()).unwrap();
    let c = catalog(s.embedder(), s.weights_sha256(), s.embedder().model.embedding_dim());
    s.use_catalog(c).unwrap();
    assert!(matches!(s.rerank(&RankingOverrides::default()), Err(Error::Session(SessionError::NoQuery))));
}

#[test]
fn a_catalog_of_another_model_is_refused() {
    let mut s = loaded_session();
    let dim = s.embedder().model.embedding_dim();
    let other = catalog(s.embedder(), &"0".repeat(64), dim);
    let err = s.load_catalog(other.manifest_json().as_bytes(), &other.vectors_bytes()).unwrap_err();
    assert!(matches!(err, Error::Catalog(CatalogError::ModelMismatch { .. })), "{err}");

    let e = embedder();
    let narrow: Vec<(Vec<f32>, Vec<f32>)> = vec![(vec![1.0, 0.0], vec![0.0, 1.0])];
    let item = Item { id: "a".into(), name: "a".into(), description: None, image: "a".into(), thumbnail: None };
    let model = ModelInfo { name: "other".into(), weights_sha256: s.weights_sha256().into(), equivalent_weights_sha256: vec![], embedding_dim: 2 };
    let two_dim = Catalog::new(model, e.preprocess.clone(), RankingDefaults::default(), vec![item], &narrow).unwrap();
    let err = s.use_catalog(two_dim).unwrap_err();
    assert!(matches!(err, Error::Catalog(CatalogError::DimensionMismatch { catalog_dim: 2, .. })), "{err}");

    let mut preprocess = e.preprocess.clone();
    preprocess.shortest_edge += 1;
    let mut shifted = catalog(&e, s.weights_sha256(), dim);
    shifted.manifest.preprocessing = preprocess;
    let err = s.use_catalog(shifted).unwrap_err();
    assert!(matches!(err, Error::Catalog(CatalogError::PreprocessMismatch { .. })), "{err}");

    // The catalog loaded before is still the one in use.
    let r = s.rank_photo(IMAGES[0].1, &RankingOverrides::default()).unwrap();
    assert_eq!(r.matches.len(), 4);
}
