//! The search session behind the page's `Matcher` and `clipmatch query`, on the committed tiny
//! CLIP: natively and, through `wasm-pack test`, in Chromium.

use crate::common;

use clipmatch::digest::sha256_hex;
use clipmatch::error::SessionError;
use clipmatch::search::catalog::{Item, ModelInfo, RankingDefaults};
use clipmatch::search::ranking_options::RankingOverrides;
use clipmatch::search::session::SearchSession;
use clipmatch::{rank, Catalog, CatalogError, ClipModel, Embedder, Error, PreprocessConfig, Towers};
use common::*;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

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
        .map(|(file, _, _)| Item { id: file.replace(['/', '.'], "-"), name: file.to_string(), description: None, image: file.to_string(), thumbnail: None, fields: Default::default() })
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
    // Settings no catalog may hold are refused by every ranking, the photo kept.
    for bad in [
        RankingOverrides { top_k: Some(0), ..Default::default() },
        RankingOverrides { text_weight: Some(f32::NAN), ..Default::default() },
        RankingOverrides { image_weight: Some(3e38), ..Default::default() },
        RankingOverrides { min_score: Some(f32::INFINITY), ..Default::default() },
    ] {
        assert!(matches!(s.rerank(&bad), Err(clipmatch::error::Error::Setting(_))), "{bad:?}");
        assert!(s.rank_photo(bytes, &bad).is_err() && s.rank_whole_photo(&bad).is_err(), "{bad:?}");
        s.rerank(&RankingOverrides::default()).unwrap();
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
    let item = Item { id: "a".into(), name: "a".into(), description: None, image: "a".into(), thumbnail: None, fields: Default::default() };
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

// ---- Regions of the last photo (the box drawn on the page, `clipmatch query --crop`) ----

use clipmatch::error::RegionError;
use clipmatch::imaging::crop::Region;
use clipmatch::imaging::decode::{decode_rgb, DecodeLimits};
use clipmatch::models::model::{EmbeddingModel, Engine, Family, FamilyTowers};
use clipmatch::ModelError;

/// A region of a fixture photo cut by Pillow (tests/fixtures/crops/make_crops.py) from the
/// upright (EXIF-transposed) image.
struct PillowCrop {
    file: String,
    photo: &'static [u8],
    region: Region,
    upright: (u32, u32),
    /// Pillow's crop, as PNG.
    png: &'static [u8],
}

fn pillow_crops() -> Vec<PillowCrop> {
    let listed: serde_json::Value = serde_json::from_str(include_str!("../fixtures/crops/crops.json")).unwrap();
    let png = |name: &str| -> &'static [u8] {
        match name {
            "lossless_30_20_120_100.png" => include_bytes!("../fixtures/crops/lossless_30_20_120_100.png"),
            "gray_100_40_90_250.png" => include_bytes!("../fixtures/crops/gray_100_40_90_250.png"),
            "exif_rotated_40_320_300_280.png" => include_bytes!("../fixtures/crops/exif_rotated_40_320_300_280.png"),
            other => panic!("{other} is not compiled into the tests"),
        }
    };
    listed["crops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let n = |v: &serde_json::Value| v.as_u64().unwrap() as u32;
            let r = &c["region"];
            let file = c["photo"].as_str().unwrap();
            PillowCrop {
                file: file.to_string(),
                photo: image(file).0,
                region: Region { x: n(&r[0]), y: n(&r[1]), width: n(&r[2]), height: n(&r[3]) },
                upright: (n(&c["upright_size"][0]), n(&c["upright_size"][1])),
                png: png(c["crop"].as_str().unwrap()),
            }
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt())
}

/// The ranking of `query` with the catalog's defaults, as the session would give it.
fn ranking_of(s: &SearchSession, query: &[f32], o: &RankingOverrides) -> clipmatch::Ranking {
    let catalog = s.catalog().unwrap();
    let r = o.resolve(&catalog.manifest.ranking);
    rank(catalog, query, r.weights, r.top_k, r.min_score)
}

#[test]
fn a_region_ranks_as_pillows_crop_of_the_upright_photo_would() {
    let mut s = loaded_session();
    let everything = RankingOverrides { top_k: Some(100), ..Default::default() };
    for PillowCrop { file, photo: bytes, region, upright, png: pillow_png } in pillow_crops() {
        let whole = s.rank_photo(bytes, &everything).unwrap();
        assert_eq!(s.photo_size(), Some(upright), "{file}: regions are in the upright frame");
        let ours = s.rank_region(region, &everything).unwrap();
        assert_eq!(s.region(), Some(region));
        assert_ne!(ours, whole, "{file}: the region ranks differently from the whole photo");
        let theirs = s.embedder().embed_photo(pillow_png).unwrap();
        // The region's own pixels against Pillow's crop.
        let our_pixels = region.crop(&decode_rgb(bytes, &DecodeLimits::default()).unwrap(), 20).unwrap();
        let their_pixels = decode_rgb(pillow_png, &DecodeLimits::default()).unwrap();
        assert_eq!(our_pixels.dimensions(), their_pixels.dimensions(), "{file}");
        let max_diff = our_pixels.as_raw().iter().zip(their_pixels.as_raw()).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
        if file.ends_with(".jpg") {
            // JPEG decoders differ by a few levels (tests/integration/parity.rs); a misplaced region by far more.
            assert!(max_diff <= 6, "{file}: pixels differ by up to {max_diff} levels");
            let ours_q = s.embedder().embed_rgb(&our_pixels).unwrap();
            assert!(cosine(&ours_q, &theirs) > 0.9999, "{file}: cosine {}", cosine(&ours_q, &theirs));
            assert_eq!(ranking_of(&s, &ours_q, &everything), ours);
        } else {
            // Lossless: the same pixels, so the same embedding and the same ranking, exactly.
            assert_eq!(max_diff, 0, "{file}");
            assert_eq!(ours, ranking_of(&s, &theirs, &everything), "{file}");
        }
    }
}

#[test]
fn a_region_in_the_stored_frame_is_not_the_upright_one() {
    // exif_rotated.jpg is stored 640x480 and upright 480x640: 500,0,100,100 lies in the stored
    // frame only, so it is refused, naming the upright size.
    let mut s = loaded_session();
    s.rank_photo(image("images/exif_rotated.jpg").0, &RankingOverrides::default()).unwrap();
    let err = s.rank_region(Region { x: 500, y: 0, width: 100, height: 100 }, &RankingOverrides::default()).unwrap_err();
    assert_eq!(err.to_string(), "the region 500,0,100,100 (x,y,width,height) reaches past the photo, which is 480x640 pixels upright");
}

#[test]
fn a_refused_region_says_why_in_one_line_and_changes_nothing() {
    let mut s = loaded_session();
    let o = RankingOverrides::default();
    let good = Region { x: 100, y: 100, width: 200, height: 150 };
    let err = s.rank_region(good, &o).unwrap_err();
    assert!(matches!(err, Error::Session(SessionError::NoQuery)), "no photo yet: {err}");
    s.rank_photo(IMAGES[0].1, &o).unwrap(); // photo.jpg, 640x480
    let by_region = s.rank_region(good, &o).unwrap();
    for (bad, expected) in [
        (Region { x: 600, y: 0, width: 41, height: 100 }, RegionError::Outside { region: Region { x: 600, y: 0, width: 41, height: 100 }, width: 640, height: 480 }),
        (Region { x: 0, y: 0, width: 100, height: 7 }, RegionError::TooSmall { width: 100, height: 7, min_side: 8 }),
        (Region { x: 0, y: 0, width: 8, height: 170 }, RegionError::TooThin { width: 8, height: 170, max_ratio: 20 }),
    ] {
        let err = s.rank_region(bad, &o).unwrap_err();
        assert!(matches!(&err, Error::Region(e) if *e == expected), "{err}");
        assert!(!err.to_string().contains('\n'));
        assert_eq!(s.region(), Some(good), "the region before is kept");
        assert_eq!(s.rerank(&o).unwrap(), by_region);
    }
}

#[test]
fn rerank_applies_to_the_region_and_the_whole_photo_comes_back_as_it_was() {
    let mut s = loaded_session();
    let (_, bytes, _) = IMAGES[0];
    let region = Region { x: 320, y: 0, width: 320, height: 240 };
    let whole = s.rank_photo(bytes, &RankingOverrides::default()).unwrap();
    s.rank_region(region, &RankingOverrides::default()).unwrap();
    let crop = region.crop(&decode_rgb(bytes, &DecodeLimits::default()).unwrap(), 20).unwrap();
    let region_query = s.embedder().embed_rgb(&crop).unwrap();
    let other = RankingOverrides { text_weight: Some(0.0), image_weight: Some(2.0), top_k: Some(3), ..Default::default() };
    assert_eq!(s.rerank(&other).unwrap(), ranking_of(&s, &region_query, &other));
    // Back to the whole photo: its ranking as before, and reranking it again.
    assert_eq!(s.rank_whole_photo(&RankingOverrides::default()).unwrap(), whole);
    assert_eq!(s.region(), None);
    assert_eq!(s.rerank(&other).unwrap(), s.rank_photo(bytes, &other).unwrap());
}

#[test]
fn ranking_only_a_region_of_a_photo_equals_ranking_the_photo_then_its_region() {
    let o = RankingOverrides { top_k: Some(100), ..Default::default() };
    let region = Region { x: 10, y: 10, width: 100, height: 80 };
    let (_, bytes, _) = IMAGES[5]; // photo.webp
    let mut a = loaded_session();
    let direct = a.rank_photo_region(bytes, region, &o).unwrap();
    let mut b = loaded_session();
    let whole = b.rank_photo(bytes, &o).unwrap();
    assert_eq!(direct, b.rank_region(region, &o).unwrap());
    // The whole photo was never embedded in `a`: asking for it runs the model once.
    assert_eq!(a.rank_whole_photo(&o).unwrap(), whole);
}

#[test]
fn a_new_photo_or_catalog_forgets_the_region() {
    let mut s = loaded_session();
    let o = RankingOverrides::default();
    s.rank_photo(IMAGES[0].1, &o).unwrap();
    s.rank_region(Region { x: 0, y: 0, width: 64, height: 64 }, &o).unwrap();
    let second = s.rank_photo(IMAGES[5].1, &o).unwrap();
    assert_eq!(s.region(), None);
    assert_eq!(s.rerank(&o).unwrap(), second);
    let rgba = image::load_from_memory(IMAGES[0].1).unwrap().to_rgba8();
    s.rank_region(Region { x: 0, y: 0, width: 64, height: 64 }, &o).unwrap();
    s.rank_rgba(rgba.as_raw(), rgba.width(), rgba.height(), &o).unwrap();
    assert_eq!(s.region(), None, "a camera frame is a new photo too");
    s.rank_region(Region { x: 0, y: 0, width: 64, height: 64 }, &o).unwrap();
    let c = catalog(s.embedder(), s.weights_sha256(), s.embedder().model.embedding_dim());
    s.use_catalog(c).unwrap();
    assert_eq!((s.region(), s.photo_size()), (None, None));
    assert!(matches!(s.rank_region(Region { x: 0, y: 0, width: 64, height: 64 }, &o), Err(Error::Session(SessionError::NoQuery))));
}

/// The tiny CLIP, counting the images its vision tower embeds (each is a model run).
struct Counting {
    model: ClipModel,
    images: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FamilyTowers for Counting {
    fn family(&self) -> Family {
        self.model.family()
    }
    fn engine(&self) -> Engine {
        self.model.engine()
    }
    fn embedding_dim(&self) -> usize {
        FamilyTowers::embedding_dim(&self.model)
    }
    fn image_size(&self) -> usize {
        self.model.image_size()
    }
    fn embed_images(&self, pixel_values: &[f32], n: usize) -> Result<Vec<Vec<f32>>, ModelError> {
        self.images.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
        self.model.embed_images(pixel_values, n)
    }
    fn embed_ids(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, ModelError> {
        self.model.embed_ids(ids)
    }
}

impl EmbeddingModel for Counting {
    fn towers(&self) -> &dyn FamilyTowers {
        self
    }
    #[cfg(not(target_arch = "wasm32"))]
    fn embed_texts(&self, _: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        Err(ModelError::NoTextTower)
    }
}

#[test]
fn the_model_runs_only_for_new_pixels_never_for_reranking_or_going_back_to_the_whole_photo() {
    let images = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let model = ClipModel::load(TINY_CONFIG, TINY_WEIGHTS, Some(Towers::VisionOnly)).unwrap();
    let counting = Counting { model, images: images.clone() };
    let embedder = Embedder::of(Box::new(counting), PreprocessConfig::from_json(TINY_PREPROCESSOR).unwrap());
    let mut s = SearchSession::new(embedder, sha256_hex(TINY_WEIGHTS));
    let c = catalog(s.embedder(), s.weights_sha256(), s.embedder().model.embedding_dim());
    s.use_catalog(c).unwrap();
    let runs = || images.swap(0, std::sync::atomic::Ordering::SeqCst);
    runs();
    let o = RankingOverrides::default();
    let other = RankingOverrides { text_weight: Some(0.0), ..Default::default() };
    let region = Region { x: 0, y: 0, width: 300, height: 200 };
    let (_, bytes, _) = IMAGES[0];
    s.rank_photo(bytes, &o).unwrap();
    assert_eq!(runs(), 1, "the photo");
    s.rank_region(region, &o).unwrap();
    assert_eq!(runs(), 1, "its region");
    s.rerank(&other).unwrap();
    assert!(s.rank_region(Region { width: 2, ..region }, &o).is_err());
    s.rank_whole_photo(&o).unwrap();
    s.rerank(&other).unwrap();
    assert_eq!(runs(), 0, "reranking, a refused region and going back to the whole photo run nothing");
    s.rank_photo_region(bytes, region, &o).unwrap();
    assert_eq!(runs(), 1, "--crop embeds the region only");
    s.rank_whole_photo(&o).unwrap();
    s.rank_whole_photo(&o).unwrap();
    assert_eq!(runs(), 1, "the whole photo, once, when first asked for");
}
