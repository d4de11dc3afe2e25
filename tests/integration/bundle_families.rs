//! `clipmatch bundle` for every family, on the committed narrow fixtures (OpenAI CLIP: tiny-clip;
//! MobileCLIP: mobileclip2-s0-narrow, and mobileclip-b-narrow for the ViT-MCi tower of
//! MobileCLIP-B; SigLIP: siglip2-base-narrow): the exported image tower
//! embeds like the folder's model (identical at f32, cosine >= 0.9999 at f16, the int8 bound of
//! `models::export` at int8); bundle.json records the family, the resolved preprocessing, the
//! embedding size and the tower's sha256, and the page's loader (`BundleModelLoader`) ranks the
//! catalog's own photos first from the bundle's files; hostile bundles (family and files that
//! disagree, an unknown family, a catalog of another model, a description that lies) are refused
//! in one line. Building catalogs for OpenAI CLIP and MobileCLIP needs CLIP's tokenizer from
//! ../shared/data (those families are skipped with a message where it is absent).

#![cfg(not(target_arch = "wasm32"))]

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clipmatch::digest::sha256_hex;
use clipmatch::error::BundleError;
use clipmatch::models::config::PreprocessConfig;
use clipmatch::models::export::{default_dtype, min_cosine, vision_tower, ExportDtype};
use clipmatch::models::folder::{self, FolderFiles, Layout};
use clipmatch::models::mobileclip::config::OpenClipConfig;
use clipmatch::models::model::Family;
use clipmatch::models::vision_loader::VisionLoader;
use clipmatch::search::bundle::{Bundle, BUNDLE_FILE};
use clipmatch::search::bundle_model::BundleModelLoader;
use clipmatch::search::ranking_options::RankingOverrides;
use clipmatch::search::session::SearchSession;
use clipmatch::{Embedder, Towers};
use common::*;

const EXE: &str = env!("CARGO_BIN_EXE_clipmatch");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A narrow fixture folder of one family.
struct Fixture {
    family: Family,
    folder: &'static str,
    /// Whether building a catalog needs CLIP's tokenizer from the shared data (the folder has none).
    clip_tokenizer: bool,
    /// Fixture photos embedded per dtype (MobileCLIP on candle is slow: a few).
    images: usize,
}

const FIXTURES: [Fixture; 4] = [
    Fixture { family: Family::OpenAiClip, folder: "tiny-clip", clip_tokenizer: true, images: 12 },
    Fixture { family: Family::MobileClip, folder: "models/mobileclip2-s0-narrow", clip_tokenizer: true, images: 4 },
    Fixture { family: Family::Siglip, folder: "models/siglip2-base-narrow", clip_tokenizer: false, images: 12 },
    Fixture { family: Family::MobileClip, folder: "models/mobileclip-b-narrow", clip_tokenizer: true, images: 12 },
];

/// A model folder's files, read as the CLI reads them.
struct Files {
    layout: Layout,
    config: String,
    preprocessor: Option<String>,
    weights: Vec<u8>,
}

impl Fixture {
    fn dir(&self) -> PathBuf {
        fixtures().join(self.folder)
    }

    /// The folder's own name (two fixtures are MobileCLIP).
    fn name(&self) -> &str {
        self.folder.rsplit('/').next().unwrap()
    }

    fn files(&self) -> Files {
        let dir = self.dir();
        let read = |name: &str| fs::read_to_string(dir.join(name)).ok();
        let layout = Layout::detect(dir.join(folder::OPEN_CLIP_CONFIG).exists(), read(folder::HF_CONFIG).as_deref()).unwrap();
        assert_eq!(layout.family(), self.family);
        Files {
            layout,
            config: read(layout.config_file()).unwrap(),
            preprocessor: layout.preprocessor_file().and_then(read),
            weights: fs::read(dir.join(layout.weights_file())).unwrap(),
        }
    }

    /// The folder's model, image tower only, as `clipmatch` loads it.
    fn model(&self, f: &Files) -> Embedder {
        let files = FolderFiles {
            config: &f.config,
            preprocessor: f.preprocessor.as_deref(),
            weights: &f.weights,
            tokenizer: None,
            tokenizer_config: None,
        };
        folder::load(f.layout, &files, Towers::VisionOnly, None).unwrap()
    }

    /// The preprocessing its files ask for, read here independently of the loaders.
    fn preprocessing(&self, f: &Files) -> PreprocessConfig {
        match self.family {
            Family::OpenAiClip => PreprocessConfig::from_json(f.preprocessor.as_deref().unwrap()).unwrap(),
            Family::MobileClip => OpenClipConfig::from_json(&f.config).unwrap().preprocess,
            Family::Siglip => PreprocessConfig::from_siglip(f.preprocessor.as_deref().unwrap()).unwrap(),
        }
    }

    /// `--tokenizer` for `build`: `Some(None)` for the folder's own, `None` where it is absent.
    fn tokenizer(&self) -> Option<Option<PathBuf>> {
        if !self.clip_tokenizer {
            return Some(None);
        }
        shared_clip_tokenizer(self.family.name()).map(Some)
    }
}

fn embed(e: &Embedder, count: usize) -> Vec<Vec<f32>> {
    IMAGES.iter().take(count).map(|(_, bytes, _)| e.embed_photo_raw(bytes).unwrap()).collect()
}

#[test]
fn exported_towers_embed_like_their_folders_at_each_dtype() {
    for fx in &FIXTURES {
        let f = fx.files();
        let reference = embed(&fx.model(&f), fx.images);
        for dtype in ExportDtype::ALL {
            let tower = vision_tower(fx.family, &f.config, &f.weights, dtype).unwrap();
            let exported = VisionLoader::load(fx.family, None, &f.config, f.preprocessor.as_deref(), &tower).unwrap();
            let ours = embed(&exported, fx.images);
            let worst = ours.iter().zip(&reference).map(|(a, b)| cosine(a, b)).fold(1.0, f64::min);
            println!("{} {}: {:.2} MB, worst cosine to the folder's model {worst:.7}", fx.name(), dtype.name(), tower.len() as f64 / 1e6);
            match dtype {
                ExportDtype::F32 => assert_eq!(ours, reference, "{}: f32 export embeds differently", fx.family.name()),
                ExportDtype::F16 => assert!(worst >= 0.9999, "{} f16: cosine {worst}", fx.family.name()),
                ExportDtype::Int8 | ExportDtype::Int4 => {
                    let bound = min_cosine(fx.family, dtype);
                    if (fx.family, dtype) == (Family::Siglip, ExportDtype::Int4) {
                        // The narrow fixture's 4-bit tower is further from f32 than full-size
                        // SigLIP2's (0.975) and under the bound: `bundle` would refuse it.
                        assert!(worst < bound, "siglip int4: cosine {worst} now keeps the bound {bound}");
                    } else {
                        assert!(worst >= bound, "{} {}: cosine {worst} < {bound}", fx.family.name(), dtype.name());
                    }
                    // Quantised for real: the tower is not the f16 one.
                    assert!(worst < 0.999999, "{} {}: embeds exactly like f32", fx.family.name(), dtype.name());
                }
            }
        }
    }
}

fn clipmatch(args: &[&str], model: &Path, tokenizer: Option<&Path>) -> Output {
    let mut cmd = Command::new(EXE);
    cmd.args(args).arg("--model").arg(model);
    for var in ["CLIPMATCH_MODEL", "CLIPMATCH_TOKENIZER", "CLIPMATCH_ENGINE", "CLIPMATCH_CATALOG"] {
        cmd.env_remove(var);
    }
    if let Some(t) = tokenizer {
        cmd.arg("--tokenizer").arg(t);
    }
    cmd.output().expect("clipmatch runs")
}

fn ok(o: Output, what: &str) -> String {
    assert!(o.status.success(), "{what}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The one line `clipmatch` printed on failing.
fn refusal(o: Output) -> String {
    assert!(!o.status.success(), "expected a refusal");
    let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

const PHOTOS: [&str; 3] = ["photo.jpg", "tall.png", "gray.png"];

/// A catalog of three fixture photos built with `fx`'s folder, and its bundle at `dtype` (""
/// for `bundle`'s default).
fn catalog_and_bundle(fx: &Fixture, tmp: &Path, dtype: &str) -> Option<(PathBuf, PathBuf)> {
    let tokenizer = fx.tokenizer()?;
    let products = tmp.join("products");
    if !products.exists() {
        fs::create_dir(&products).unwrap();
        for p in PHOTOS {
            fs::copy(fixtures().join("images").join(p), products.join(p)).unwrap();
        }
    }
    let name = fx.name();
    let (catalog, bundle) = (tmp.join(format!("catalog-{name}")), tmp.join(format!("bundle-{name}-{dtype}")));
    let s = |p: &Path| p.to_str().unwrap().to_string();
    if !catalog.exists() {
        ok(clipmatch(&["build", &s(&products), "--out", &s(&catalog)], &fx.dir(), tokenizer.as_deref()), "build");
    }
    let mut args = vec!["bundle".to_string(), "--catalog".into(), s(&catalog), "--out".into(), s(&bundle)];
    if !dtype.is_empty() {
        args.extend(["--dtype".into(), dtype.into()]);
    }
    let out = clipmatch(&args.iter().map(String::as_str).collect::<Vec<_>>(), &fx.dir(), None);
    println!("{}", ok(out, "bundle").trim());
    Some((catalog, bundle))
}

/// A bundle folder read as the page reads it.
struct Written {
    dir: PathBuf,
    json: Vec<u8>,
}

impl Written {
    fn open(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf(), json: fs::read(dir.join(BUNDLE_FILE)).unwrap() }
    }

    fn bundle(&self) -> Result<Bundle, BundleError> {
        Bundle::from_json(&self.json)
    }

    fn text(&self, path: &str) -> String {
        fs::read_to_string(self.dir.join(path)).unwrap()
    }

    /// The page's model: bundle.json (possibly edited) and the files it names.
    fn load(&self, bundle: &Bundle) -> Result<Embedder, clipmatch::Error> {
        let m = &bundle.model;
        let preprocessor = m.preprocessor.as_ref().map(|p| self.text(p));
        let weights = fs::read(self.dir.join(&m.weights)).unwrap();
        BundleModelLoader::load(bundle, None, &self.text(&m.config), preprocessor.as_deref(), &weights)
    }

    /// A search session as the page's: the bundle's model and catalog.
    fn session(&self, bundle: &Bundle) -> Result<SearchSession, clipmatch::Error> {
        let embedder = self.load(bundle)?;
        let mut session = SearchSession::new(embedder, bundle.model.weights_sha256.clone().unwrap());
        let read = |p: &str| fs::read(self.dir.join(p)).unwrap();
        session.load_catalog(&read(&bundle.catalog), &read(&bundle.vectors))?;
        Ok(session)
    }

    /// bundle.json edited by `edit`, read back through the core.
    fn edited(&self, edit: impl FnOnce(&mut serde_json::Value)) -> Result<Bundle, BundleError> {
        let mut v: serde_json::Value = serde_json::from_slice(&self.json).unwrap();
        edit(&mut v);
        Bundle::from_json(v.to_string().as_bytes())
    }
}

fn one_line(e: impl std::fmt::Display) -> String {
    let e = e.to_string();
    assert!(!e.contains('\n'), "one line: {e}");
    e
}

#[test]
fn without_dtype_each_family_gets_its_measured_default() {
    let tmp = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for fx in &FIXTURES {
        let Some((_, dir)) = catalog_and_bundle(fx, tmp.path(), "") else { continue };
        let dtype = Written::open(&dir).bundle().unwrap().model.dtype;
        assert_eq!(dtype, default_dtype(fx.family).name(), "{}", fx.family.name());
        seen.push((fx.family, dtype));
    }
    // int8 for every family (its ranking changes are near-ties, as f16's are).
    if seen.len() == FIXTURES.len() {
        assert!(seen.iter().all(|(_, dtype)| dtype == "int8"), "{seen:?}");
    }
}

#[test]
fn bundle_json_records_the_model_and_the_page_ranks_from_it() {
    let tmp = tempfile::tempdir().unwrap();
    for fx in &FIXTURES {
        let Some((_, dir)) = catalog_and_bundle(fx, tmp.path(), "f16") else { continue };
        let f = fx.files();
        let written = Written::open(&dir);
        let bundle = written.bundle().unwrap();
        let m = &bundle.model;
        assert_eq!((bundle.version, m.family.as_deref(), m.dtype.as_str()), (2, Some(fx.family.id()), "f16"));
        assert_eq!(m.config, format!("model/{}", f.layout.config_file()));
        assert_eq!(m.preprocessor.is_some(), fx.family != Family::MobileClip);
        assert_eq!(m.preprocessing.as_ref(), Some(&fx.preprocessing(&f)), "{}", fx.family.name());
        assert_eq!(written.text(&m.config), f.config, "the config file is the folder's");
        let tower = fs::read(dir.join(&m.weights)).unwrap();
        assert_eq!(m.weights_sha256.as_deref(), Some(sha256_hex(&tower).as_str()));
        assert_eq!(tower, vision_tower(fx.family, &f.config, &f.weights, ExportDtype::F16).unwrap());
        let json: serde_json::Value = serde_json::from_slice(&written.json).unwrap();
        let p = &json["model"]["preprocessing"];
        assert!(p["interpolation"].is_string() && p["resize_mode"].is_string() && p["arithmetic"].is_string(), "every field written: {p}");

        let mut session = written.session(&bundle).unwrap();
        assert_eq!(m.embedding_dim, Some(session.embedder().model.embedding_dim()));
        assert_eq!(session.embedder().model.towers().family(), fx.family);
        let image_only = RankingOverrides { text_weight: Some(0.0), image_weight: Some(1.0), ..Default::default() };
        for p in PHOTOS {
            let ranking = session.rank_photo(&fs::read(fixtures().join("images").join(p)).unwrap(), &image_only).unwrap();
            let best = &ranking.matches[0];
            assert!(best.id.starts_with(p.split('.').next().unwrap()), "{} {p}: best match {}", fx.family.name(), best.id);
            assert!(best.image_similarity > 0.99, "{} {p}: self-similarity {}", fx.family.name(), best.image_similarity);
        }
    }
}

#[test]
fn hostile_bundles_are_refused_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let [_, mobileclip, siglip, _] = &FIXTURES;
    let Some((mobileclip_catalog, mc_dir)) = catalog_and_bundle(mobileclip, tmp.path(), "f16") else { return };
    let (siglip_catalog, sg_dir) = catalog_and_bundle(siglip, tmp.path(), "int8").unwrap();
    let (mc, sg) = (Written::open(&mc_dir), Written::open(&sg_dir));

    // The family names another model than the files hold: SigLIP's files called MobileCLIP, and a
    // MobileCLIP bundle whose tower is SigLIP's (listed with its own size and sha256).
    let e = one_line(sg.load(&sg.edited(|v| v["model"]["family"] = "mobileclip".into()).unwrap()).err().unwrap());
    assert!(e.starts_with("open_clip_config.json: "), "{e}");
    let sg_tower = sg.bundle().unwrap().weights_file().unwrap().clone();
    let swapped = mc
        .edited(|v| {
            let path = v["model"]["weights"].clone();
            for f in v["files"].as_array_mut().unwrap().iter_mut().filter(|f| f["path"] == path) {
                f["bytes"] = sg_tower.bytes.into();
                f["sha256"] = sg_tower.sha256.clone().into();
            }
            v["model"]["weights_sha256"] = sg_tower.sha256.clone().into();
        })
        .unwrap();
    fs::copy(sg_dir.join(&sg_tower.path), mc_dir.join(&swapped.model.weights)).unwrap();
    let e = one_line(mc.load(&swapped).err().unwrap());
    // The fused FastViT reader names the first tensor that is not its own.
    assert!(e.contains("tensor vision_model.") && e.contains("is not part of a MobileCLIP image tower"), "a SigLIP tower in a MobileCLIP bundle: {e}");

    // An unknown family, and a version-2 description with a part missing.
    let e = mc.edited(|v| v["model"]["family"] = "dinov2".into()).unwrap_err();
    assert_eq!(e, BundleError::UnknownFamily("dinov2".into()));
    one_line(e);
    let e = mc.edited(|v| { v["model"].as_object_mut().unwrap().remove("preprocessing"); }).unwrap_err();
    assert_eq!(e, BundleError::MissingField("preprocessing"));
    let e = sg.edited(|v| { v["model"].as_object_mut().unwrap().remove("preprocessor"); }).unwrap_err();
    assert_eq!(one_line(e), "bundle.json names no preprocessor config, which a SigLIP model needs");
    let e = sg.edited(|v| v["model"]["weights_sha256"] = "0".repeat(64).into()).unwrap_err();
    assert!(matches!(e, BundleError::WeightsSha256 { .. }), "{e}");

    // A description the files do not bear out.
    let lying = sg.edited(|v| v["model"]["preprocessing"]["interpolation"] = "bilinear".into()).unwrap();
    let e = one_line(sg.load(&lying).err().unwrap());
    assert!(e.contains("bundle.json says the model's preprocessing is"), "{e}");
    let lying = sg.edited(|v| v["model"]["embedding_dim"] = 64.into()).unwrap();
    assert_eq!(one_line(sg.load(&lying).err().unwrap()), "bundle.json says the model's embedding size is 64, but its files make 32");

    // A catalog built with another model (same embedding size): refused by the page and the CLI.
    let mut session = sg.session(&sg.bundle().unwrap()).unwrap();
    let read = |p: PathBuf| fs::read(p).unwrap();
    let e = session
        .load_catalog(&read(mobileclip_catalog.join("catalog.json")), &read(mobileclip_catalog.join("vectors.bin")))
        .err()
        .unwrap();
    assert!(one_line(e).contains("not with the loaded model"));
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let o = clipmatch(&["bundle", "--catalog", &s(&siglip_catalog), "--out", &s(&tmp.path().join("x"))], &mobileclip.dir(), None);
    assert!(refusal(o).contains("was not built with the model in"));
}

#[test]
fn version_1_bundles_still_load_as_openai_clip() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((_, dir)) = catalog_and_bundle(&FIXTURES[0], tmp.path(), "int8") else { return };
    let written = Written::open(&dir);
    let v1 = written
        .edited(|v| {
            v["version"] = 1.into();
            let model = v["model"].as_object_mut().unwrap();
            for field in ["family", "preprocessing", "embedding_dim", "weights_sha256"] {
                model.remove(field);
            }
        })
        .unwrap();
    assert_eq!(v1.model.family().unwrap(), Family::OpenAiClip);
    let weights = fs::read(dir.join(&v1.model.weights)).unwrap();
    let mut session = SearchSession::new(written.load(&v1).unwrap(), sha256_hex(&weights));
    let read = |p: &str| fs::read(dir.join(p)).unwrap();
    session.load_catalog(&read(&v1.catalog), &read(&v1.vectors)).unwrap();
    assert_eq!(session.embedder().model.towers().engine(), clipmatch::models::model::Engine::Ours);
    let e = written.edited(|v| v["version"] = 3.into()).unwrap_err();
    assert_eq!(one_line(e), "bundle.json is format \"clipmatch-bundle\" version 3; this app reads \"clipmatch-bundle\" versions 1 to 2");
}
