//! The page's model loading for every family, in the browser build as in the native one: the
//! image tower a bundle ships (committed in `tests/fixtures/bundle-towers/`: the f16 exports of
//! the narrow MobileCLIP2-S0, MobileCLIP-B and SigLIP2 fixtures, and 4-bit and int8 ones), loaded through `BundleModelLoader` from
//! bundle.json's description, the config files and the weights fed in slices, embeds the fixture
//! photos as the native build recorded in `bundle-towers/native_embeddings.json`. Natively the
//! tests also prove the committed files current: the towers are today's export of the fixture
//! folders, and the embeddings today's (rewrite both with CLIPMATCH_WRITE_BUNDLE_TOWERS=1 after a
//! deliberate change). And OpenAI CLIP on candle (`?engine=candle`) embeds like this crate's
//! kernels from the same bundle. Everything is compiled in, so `wasm-pack test` runs these in
//! Chromium.

use crate::common;

use std::collections::BTreeMap;

use clipmatch::models::model::{Engine, Family};
use clipmatch::models::vision_loader::VisionLoader;
use clipmatch::search::bundle::{Bundle, FileEntry, ModelFiles};
use clipmatch::search::bundle_model::BundleModelLoader;
use clipmatch::Embedder;
use common::*;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// wasm against native, and candle against ours, on the same bytes and pixels.
const SAME: f64 = 0.99999;
/// SigLIP's int8 tower on the two engines, which quantise different layers' activations.
const SIGLIP_INT8_ENGINES: f64 = 0.9999;

/// A family's committed bundle tower and the folder it was exported from.
struct Tower {
    family: Family,
    config_file: &'static str,
    config: &'static str,
    preprocessor: Option<&'static str>,
    weights: &'static [u8],
    /// The fixture folder under tests/fixtures (native: the export is redone from it).
    folder: &'static str,
    /// The export's dtype (`bundle --dtype`).
    dtype: &'static str,
    /// Fixture photos embedded (MobileCLIP on candle is slow: a few).
    images: usize,
}

/// A MobileCLIP tower (open_clip layout: the config holds the preprocessing).
const fn open_clip(config: &'static str, weights: &'static [u8], folder: &'static str, dtype: &'static str, images: usize) -> Tower {
    Tower { family: Family::MobileClip, config_file: "open_clip_config.json", config, preprocessor: None, weights, folder, dtype, images }
}

/// A tower in transformers' layout (config.json and preprocessor_config.json), 12 photos.
const fn transformers(family: Family, config: &'static str, preprocessor: &'static str, weights: &'static [u8], folder: &'static str, dtype: &'static str) -> Tower {
    Tower { family, config_file: "config.json", config, preprocessor: Some(preprocessor), weights, folder, dtype, images: 12 }
}

const SIGLIP_CONFIG: &str = include_str!("../fixtures/models/siglip2-base-narrow/config.json");
const SIGLIP_PREPROCESSOR: &str = include_str!("../fixtures/models/siglip2-base-narrow/preprocessor_config.json");

impl Tower {
    /// Its name in native_embeddings.json and its committed file's.
    fn name(&self) -> String {
        format!("{}-{}", self.folder.rsplit('/').next().unwrap(), self.dtype)
    }
}

const TOWERS: [Tower; 8] = [
    // FastViT towers are written fused (mobileclip::fastvit::names) and run on this crate's kernels.
    open_clip(
        include_str!("../fixtures/models/mobileclip2-s0-narrow/open_clip_config.json"),
        include_bytes!("../fixtures/bundle-towers/mobileclip2-s0-narrow-f16.safetensors"),
        "models/mobileclip2-s0-narrow",
        "f16",
        4,
    ),
    // int8: the fused 1x1 convolutions and linear layers held and run as int8.
    open_clip(
        include_str!("../fixtures/models/mobileclip2-s0-narrow/open_clip_config.json"),
        include_bytes!("../fixtures/bundle-towers/mobileclip2-s0-narrow-int8.safetensors"),
        "models/mobileclip2-s0-narrow",
        "int8",
        4,
    ),
    // A bundle of the layout FastViT towers had before they were written fused (open_clip's
    // names): fused as it loads.
    open_clip(
        include_str!("../fixtures/models/mobileclip2-s0-narrow/open_clip_config.json"),
        include_bytes!("../fixtures/bundle-towers/mobileclip2-s0-narrow-f16-unfused.safetensors"),
        "models/mobileclip2-s0-narrow",
        UNFUSED_F16,
        4,
    ),
    // 4-bit: the linear layers read back as int8.
    open_clip(
        include_str!("../fixtures/models/mobileclip2-s0-narrow/open_clip_config.json"),
        include_bytes!("../fixtures/bundle-towers/mobileclip2-s0-narrow-int4.safetensors"),
        "models/mobileclip2-s0-narrow",
        "int4",
        4,
    ),
    transformers(
        Family::OpenAiClip,
        include_str!("../fixtures/tiny-clip/config.json"),
        include_str!("../fixtures/tiny-clip/preprocessor_config.json"),
        include_bytes!("../fixtures/bundle-towers/tiny-clip-int4.safetensors"),
        "tiny-clip",
        "int4",
    ),
    transformers(
        Family::Siglip,
        SIGLIP_CONFIG,
        SIGLIP_PREPROCESSOR,
        include_bytes!("../fixtures/bundle-towers/siglip2-base-narrow-f16.safetensors"),
        "models/siglip2-base-narrow",
        "f16",
    ),
    // int8: on candle-transformers' SigLIP, dequantised to f32.
    transformers(
        Family::Siglip,
        SIGLIP_CONFIG,
        SIGLIP_PREPROCESSOR,
        include_bytes!("../fixtures/bundle-towers/siglip2-base-narrow-int8.safetensors"),
        "models/siglip2-base-narrow",
        "int8",
    ),
    // ViT-MCi (MobileCLIP-B, MobileCLIP2-B): this crate's model on candle-nn, not candle-transformers'.
    open_clip(
        include_str!("../fixtures/models/mobileclip-b-narrow/open_clip_config.json"),
        include_bytes!("../fixtures/bundle-towers/mobileclip-b-narrow-f16.safetensors"),
        "models/mobileclip-b-narrow",
        "f16",
        12,
    ),
];

/// The dtype name of the committed tower in the layout before fusion (f16).
const UNFUSED_F16: &str = "f16-unfused";

const NATIVE_JSON: &str = include_str!("../fixtures/bundle-towers/native_embeddings.json");

/// A bundle.json of these model files (and stand-in catalog entries), describing the model as
/// `clipmatch bundle` does (family, preprocessing, embedding size, weights' sha256) with what the
/// core's loader makes of the same files.
fn bundle_of(family: Family, config: (&str, &str), preprocessor: Option<&str>, weights: &[u8], dtype: &str) -> Bundle {
    let probe = VisionLoader::load(family, None, config.1, preprocessor, weights).unwrap();
    let weights_entry = FileEntry::of("model/model.safetensors", weights);
    let mut files = vec![FileEntry::of(&format!("model/{}", config.0), config.1.as_bytes()), weights_entry.clone()];
    files.extend(preprocessor.map(|p| FileEntry::of("model/preprocessor_config.json", p.as_bytes())));
    files.push(FileEntry::of("catalog.json", b"{}"));
    files.push(FileEntry::of("vectors.bin", b""));
    let model = ModelFiles {
        family: Some(family.id().into()),
        config: format!("model/{}", config.0),
        preprocessor: preprocessor.map(|_| "model/preprocessor_config.json".into()),
        weights: weights_entry.path.clone(),
        dtype: dtype.into(),
        preprocessing: Some(probe.preprocess.clone()),
        embedding_dim: Some(probe.model.embedding_dim()),
        weights_sha256: Some(weights_entry.sha256),
        layout: clipmatch::models::mobileclip::exported_layout(family, config.1).filter(|_| dtype != UNFUSED_F16).map(str::to_string),
    };
    let bundle = Bundle::new(model, files);
    bundle.check().expect("a sound bundle");
    bundle
}

/// The tower loaded as the page loads it: slices of 64 KiB into the bundle's loader.
fn load_sliced(bundle: &Bundle, engine: Option<Engine>, config: &str, preprocessor: Option<&str>, weights: &[u8]) -> Embedder {
    let mut loader = BundleModelLoader::new(bundle, engine, config, preprocessor).unwrap();
    for slice in weights.chunks(64 << 10) {
        loader.push(slice).unwrap();
    }
    loader.finish(&bundle.file(&bundle.model.weights).unwrap().sha256).unwrap()
}

fn embed_fixtures(e: &Embedder, count: usize) -> BTreeMap<String, Vec<f32>> {
    IMAGES.iter().take(count).map(|(name, bytes, _)| (name.to_string(), e.embed_photo_raw(bytes).unwrap())).collect()
}

/// Per tower (its fixture folder's name), per photo.
type NativeEmbeddings = BTreeMap<String, BTreeMap<String, Vec<f32>>>;

#[test]
fn every_familys_bundle_tower_embeds_as_the_native_build_recorded() {
    let mut ours: NativeEmbeddings = BTreeMap::new();
    for t in &TOWERS {
        let bundle = bundle_of(t.family, (t.config_file, t.config), t.preprocessor, t.weights, t.dtype);
        let e = load_sliced(&bundle, None, t.config, t.preprocessor, t.weights);
        let fastvit = t.family == Family::MobileClip && !t.folder.contains("mobileclip-b");
        let engine = if t.family == Family::MobileClip && !fastvit { Engine::Candle } else { Engine::Ours };
        assert_eq!((e.model.towers().family(), e.model.towers().engine()), (t.family, engine));
        ours.insert(t.name(), embed_fixtures(&e, t.images));
    }
    #[cfg(not(target_arch = "wasm32"))]
    if std::env::var_os("CLIPMATCH_WRITE_BUNDLE_TOWERS").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bundle-towers/native_embeddings.json");
        std::fs::write(path, serde_json::to_string_pretty(&ours).unwrap()).unwrap();
        return;
    }
    let native: NativeEmbeddings = serde_json::from_str(NATIVE_JSON).unwrap();
    for t in &TOWERS {
        let name = t.name();
        let (a, b) = (&ours[&name], &native[&name]);
        assert_eq!(a.len(), b.len(), "{name}: images");
        for (image, v) in a {
            let c = cosine(v, &b[image]);
            assert!(c >= SAME, "{name} {image}: cosine to the native build {c} < {SAME}");
        }
        // The photos embed apart: the comparison is not between constants.
        let rows: Vec<&Vec<f32>> = a.values().collect();
        assert!(cosine(rows[0], rows[1]) < 0.999, "{name}: two photos embed alike");
    }
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn the_committed_towers_are_todays_exports() {
    use clipmatch::models::export::{vision_tower, ExportDtype};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for t in &TOWERS {
        let folder = root.join(t.folder);
        let weights_file = if t.family == Family::MobileClip { "open_clip_model.safetensors" } else { "model.safetensors" };
        let weights = std::fs::read(folder.join(weights_file)).unwrap();
        let export = match t.dtype {
            UNFUSED_F16 => clipmatch::models::mobileclip::export::open_clip_form(&weights, ExportDtype::F16).unwrap(),
            dtype => vision_tower(t.family, t.config, &weights, ExportDtype::parse(dtype).unwrap()).unwrap(),
        };
        let committed = root.join(format!("bundle-towers/{}.safetensors", t.name()));
        if std::env::var_os("CLIPMATCH_WRITE_BUNDLE_TOWERS").is_some() {
            std::fs::write(&committed, &export).unwrap();
            continue;
        }
        assert!(
            export == t.weights,
            "{} is stale: rerun with CLIPMATCH_WRITE_BUNDLE_TOWERS=1 (this test, then bundle_towers' other)",
            committed.display()
        );
    }
}

#[test]
fn openai_clip_on_candle_embeds_like_ours_from_the_same_bundle() {
    let bundle = bundle_of(Family::OpenAiClip, ("config.json", TINY_CONFIG), Some(TINY_PREPROCESSOR), TINY_VISION_F16_WEIGHTS, "f16");
    let ours = load_sliced(&bundle, None, TINY_CONFIG, Some(TINY_PREPROCESSOR), TINY_VISION_F16_WEIGHTS);
    let candle = load_sliced(&bundle, Some(Engine::Candle), TINY_CONFIG, Some(TINY_PREPROCESSOR), TINY_VISION_F16_WEIGHTS);
    assert_eq!((ours.model.towers().engine(), candle.model.towers().engine()), (Engine::Ours, Engine::Candle));
    let (a, b) = (embed_fixtures(&ours, IMAGES.len()), embed_fixtures(&candle, IMAGES.len()));
    for (image, v) in &a {
        let c = cosine(v, &b[image]);
        assert!(c >= SAME, "{image}: candle vs ours cosine {c} < {SAME}");
    }
}

/// SigLIP's default engine (this crate's kernels) and candle from the same bundle, at f16 and at
/// int8 (both run the encoder's linear layers as int8 products; ours the patch embedding and the
/// head's q|k|v projection too, which candle runs on their dequantised copies).
#[test]
fn siglip_on_candle_embeds_like_ours_from_the_same_bundle() {
    let siglip = |dtype| TOWERS.iter().find(|t| t.family == Family::Siglip && t.dtype == dtype).unwrap();
    for (t, bound) in [(siglip("f16"), SAME), (siglip("int8"), SIGLIP_INT8_ENGINES)] {
        let bundle = bundle_of(t.family, (t.config_file, t.config), t.preprocessor, t.weights, t.dtype);
        let ours = load_sliced(&bundle, None, t.config, t.preprocessor, t.weights);
        let candle = load_sliced(&bundle, Some(Engine::Candle), t.config, t.preprocessor, t.weights);
        assert_eq!((ours.model.towers().engine(), candle.model.towers().engine()), (Engine::Ours, Engine::Candle));
        let (a, b) = (embed_fixtures(&ours, t.images), embed_fixtures(&candle, t.images));
        for (image, v) in &a {
            let c = cosine(v, &b[image]);
            assert!(c >= bound, "{} {image}: candle vs ours cosine {c} < {bound}", t.name());
        }
    }
}

/// MobileCLIP's FastViT on this crate's kernels (the bundle read in the layout before fusion,
/// fused as it loads) embeds as candle-transformers' FastViT on the same bytes, photo by photo.
#[test]
fn mobileclip_fastvit_on_candle_embeds_like_ours_from_the_same_bundle() {
    let t = TOWERS.iter().find(|t| t.dtype == UNFUSED_F16).unwrap();
    let bundle = bundle_of(t.family, (t.config_file, t.config), None, t.weights, t.dtype);
    let ours = load_sliced(&bundle, None, t.config, None, t.weights);
    let candle = load_sliced(&bundle, Some(Engine::Candle), t.config, None, t.weights);
    assert_eq!((ours.model.towers().engine(), candle.model.towers().engine()), (Engine::Ours, Engine::Candle));
    let (a, b) = (embed_fixtures(&ours, t.images), embed_fixtures(&candle, t.images));
    for (image, v) in &a {
        let c = cosine(v, &b[image]);
        assert!(c >= SAME, "{image}: candle vs ours cosine {c} < {SAME}");
    }
}

/// `tests/fixtures/tiny-clip` exported at int8 (tests/integration/int8.rs keeps it current).
const TINY_VISION_INT8_WEIGHTS: &[u8] = include_bytes!("../fixtures/tiny-clip-vision-int8/model.safetensors");

#[test]
fn an_int8_openai_clip_bundle_runs_integer_products_on_candle_too() {
    let bundle = bundle_of(Family::OpenAiClip, ("config.json", TINY_CONFIG), Some(TINY_PREPROCESSOR), TINY_VISION_INT8_WEIGHTS, "int8");
    let ours = load_sliced(&bundle, None, TINY_CONFIG, Some(TINY_PREPROCESSOR), TINY_VISION_INT8_WEIGHTS);
    let candle = load_sliced(&bundle, Some(Engine::Candle), TINY_CONFIG, Some(TINY_PREPROCESSOR), TINY_VISION_INT8_WEIGHTS);
    let (a, b) = (embed_fixtures(&ours, IMAGES.len()), embed_fixtures(&candle, IMAGES.len()));
    // Both run the linear layers as this crate's int8 products on 12-bit activations (candle as
    // a candle operation holding the packed weights), so they agree as closely as on f16 weights;
    // on the dequantised weights in f32 candle was 0.9995-0.99999 from ours.
    for (image, v) in &a {
        let c = cosine(v, &b[image]);
        assert!(c >= SAME, "{image}: candle vs ours (int8) cosine {c} < {SAME}");
    }
}

#[test]
fn the_page_is_told_plainly_what_cannot_run() {
    let bundle = bundle_of(Family::OpenAiClip, ("config.json", TINY_CONFIG), Some(TINY_PREPROCESSOR), TINY_VISION_F16_WEIGHTS, "f16");
    let e = clipmatch::models::model::Engine::from_name("fast").unwrap_err().to_string();
    assert_eq!(e, "unknown engine \"fast\": the engines are \"ours\" (OpenAI CLIP, SigLIP, MobileCLIP's FastViT towers) and \"candle\"");
    let b = &TOWERS[7];
    let mobileclip_b = bundle_of(b.family, (b.config_file, b.config), None, b.weights, b.dtype);
    let e = BundleModelLoader::new(&mobileclip_b, Some(Engine::Ours), b.config, None).err().unwrap().to_string();
    assert!(e.contains("MobileCLIP-B's ViT-MCi image tower runs on candle only") && !e.contains('\n'), "{e}");
    let t = &TOWERS[0];
    let mobileclip = bundle_of(t.family, (t.config_file, t.config), None, t.weights, t.dtype);
    // More bytes than bundle.json lists are refused as they arrive.
    let mut loader = BundleModelLoader::new(&mobileclip, None, t.config, None).unwrap();
    loader.push(t.weights).unwrap();
    let e = loader.push(b"x").unwrap_err().to_string();
    assert!(e.contains(&format!("longer than the {} bytes announced", t.weights.len())), "{e}");
    // Weights other than the listed ones (a stale cache, a swapped file) are refused at the end.
    let mut loader = BundleModelLoader::new(&bundle, None, TINY_CONFIG, Some(TINY_PREPROCESSOR)).unwrap();
    loader.push(TINY_VISION_F16_WEIGHTS).unwrap();
    let e = loader.finish(&"0".repeat(64)).err().unwrap().to_string();
    assert!(e.contains("not the") && e.contains("bundle.json lists"), "{e}");
}
