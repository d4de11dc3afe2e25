//! The core's catalog builder on the committed tiny CLIP with the real CLIP tokenizer (from
//! ../shared/data/clip-vit-base-patch32, or CLIPMATCH_TOKENIZER; skipped where it is absent).

#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::collections::BTreeMap;

use clipmatch::error::{BuildError, ImageError};
use clipmatch::search::catalog::{ModelInfo, VectorDtype};
use clipmatch::search::catalog_builder::{build_catalog, BuildEvents, BuildOptions, BuildPhase, SkipReason, SourceItem};
use clipmatch::search::rank::leave_one_out_threshold;
use clipmatch::search::ranking_options::RankingOverrides;
use clipmatch::models::tokenizer::ClipTokenizer;
use clipmatch::{ClipModel, Embedder, FusionWeights, PreprocessConfig, Towers};
use common::*;

fn embedder() -> Option<Embedder> {
    let path = std::env::var_os("CLIPMATCH_TOKENIZER")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| shared_data().join("clip-vit-base-patch32/tokenizer.json"));
    let Ok(json) = std::fs::read(&path) else {
        eprintln!("skipped: {} is absent", path.display());
        return None;
    };
    let model = ClipModel::load(TINY_CONFIG, TINY_WEIGHTS, Some(Towers::VisionAndText)).unwrap();
    let tokenizer = ClipTokenizer::from_bytes(&json, model.config.text.max_position_embeddings).unwrap();
    Some(Embedder::new(model, PreprocessConfig::from_json(TINY_PREPROCESSOR).unwrap(), Some(tokenizer)))
}

/// Records every event.
#[derive(Default)]
struct Recorder {
    progress: Vec<(BuildPhase, usize, usize)>,
    skipped: Vec<(usize, String)>,
    thumbnails: BTreeMap<String, Vec<u8>>,
    fail_thumbnails: bool,
}

impl BuildEvents for Recorder {
    type Error = std::io::Error;
    fn progress(&mut self, phase: BuildPhase, done: usize, total: usize) {
        self.progress.push((phase, done, total));
    }
    fn skipped(&mut self, index: usize, reason: &SkipReason) {
        self.skipped.push((index, reason.to_string()));
    }
    fn thumbnail(&mut self, file: &str, jpeg: &[u8]) -> std::io::Result<()> {
        if self.fail_thumbnails {
            return Err(std::io::Error::other("disk full"));
        }
        self.thumbnails.insert(file.to_string(), jpeg.to_vec());
        Ok(())
    }
}

/// The twelve fixture photos, with a broken file at 2 and an unreadable one at 9.
fn sources() -> (Vec<SourceItem>, Vec<Result<Vec<u8>, String>>) {
    let mut items = Vec::new();
    let mut bytes = Vec::new();
    for (i, (file, data, _)) in IMAGES.iter().enumerate() {
        items.push(SourceItem { id: format!("p{i}"), name: format!("product {file}"), description: None, image: file.to_string() });
        bytes.push(match i {
            2 => Ok(b"GIF89a truncated".to_vec()),
            9 => Err("cannot open it".to_string()),
            _ => Ok(data.to_vec()),
        });
    }
    (items, bytes)
}

fn model_info(e: &Embedder) -> ModelInfo {
    ModelInfo { name: "tiny".into(), weights_sha256: "ab".repeat(32), equivalent_weights_sha256: vec![], embedding_dim: e.model.embedding_dim() }
}

#[test]
fn builds_unit_vectors_skips_what_it_cannot_read_and_reports_progress() {
    let Some(e) = embedder() else { return };
    let (items, bytes) = sources();
    let n = items.len();
    let options = BuildOptions { batch_size: 5, vector_dtype: VectorDtype::F32, ..BuildOptions::default() };
    let mut rec = Recorder::default();
    let built = build_catalog(&e, model_info(&e), items.clone(), |i| bytes[i].clone(), &options, &mut rec).unwrap();
    let c = &built.catalog;

    let skipped: Vec<usize> = built.skipped.iter().map(|s| s.index).collect();
    assert_eq!(skipped, [2, 9]);
    assert!(matches!(built.skipped[0].reason, SkipReason::Image(ImageError::TooLarge { .. })), "{}", built.skipped[0].reason);
    assert_eq!(rec.skipped[1], (9, "cannot open it".to_string()));

    let kept: Vec<&SourceItem> = items.iter().enumerate().filter(|(i, _)| !skipped.contains(i)).map(|(_, s)| s).collect();
    assert_eq!(c.len(), n - 2);
    for (i, (item, source)) in c.items().iter().zip(&kept).enumerate() {
        assert_eq!((&item.id, &item.name, &item.image), (&source.id, &source.name, &source.image));
        let thumb = item.thumbnail.as_deref().unwrap();
        assert_eq!(thumb, format!("thumbs/{}.jpg", source.id));
        assert!(image::load_from_memory(&rec.thumbnails[thumb]).is_ok(), "{thumb}");
        // The image vector is the photo's unit embedding, the name vector the name's.
        let photo = IMAGES.iter().find(|(f, _, _)| *f == source.image).unwrap().1;
        assert_eq!(c.image_vector(i).as_ref(), e.embed_photo(photo).unwrap().as_slice());
        assert_eq!(c.name_vector(i).as_ref(), e.embed_texts(&[source.name.as_str()]).unwrap()[0].as_slice());
    }
    assert_eq!(rec.thumbnails.len(), n - 2);
    assert!(c.vector_problems().is_empty(), "{:?}", c.vector_problems());

    // Defaults, and the leave-one-out threshold.
    let r = c.manifest.ranking;
    assert_eq!((r.text_weight, r.image_weight, r.top_k), (1.5, 0.5, 5));
    assert_eq!(r.min_score, leave_one_out_threshold(c, FusionWeights { text: 1.5, image: 0.5 }));

    // Progress: batches of 5 over 12 photos, then the names of the 10 kept, then the catalog.
    let of = |p: BuildPhase| rec.progress.iter().filter(|e| e.0 == p).map(|e| (e.1, e.2)).collect::<Vec<_>>();
    assert_eq!(of(BuildPhase::Prepare), [(0, 12), (5, 12), (10, 12), (12, 12)]);
    assert_eq!(of(BuildPhase::Images), [(0, 12), (5, 12), (10, 12), (12, 12)]);
    assert_eq!(of(BuildPhase::Names), [(0, 10), (10, 10)]);
    assert_eq!(of(BuildPhase::Catalog), [(0, 1), (1, 1)]);
}

#[test]
fn given_ranking_values_and_i8_vectors_are_kept() {
    let Some(e) = embedder() else { return };
    let (items, bytes) = sources();
    let ranking = RankingOverrides { text_weight: Some(2.0), image_weight: Some(0.25), top_k: Some(3), min_score: Some(0.75) };
    let options = BuildOptions { batch_size: 16, ranking, ..BuildOptions::default() };
    let built = build_catalog(&e, model_info(&e), items, |i| bytes[i].clone(), &options, &mut Recorder::default()).unwrap();
    let r = built.catalog.manifest.ranking;
    assert_eq!((r.text_weight, r.image_weight, r.top_k, r.min_score), (2.0, 0.25, 3, 0.75));
    assert_eq!(built.catalog.dtype(), VectorDtype::I8);
}

#[test]
fn nothing_readable_or_a_failing_thumbnail_stops_the_build() {
    let Some(e) = embedder() else { return };
    let (items, bytes) = sources();
    let none = build_catalog(&e, model_info(&e), items.clone(), |_| Err("gone".into()), &BuildOptions::default(), &mut Recorder::default());
    let err = none.unwrap_err();
    assert!(matches!(err, BuildError::NoImageRead { total: 12 }), "{err}");
    assert_eq!(err.to_string(), "none of the 12 images could be read; no catalog was written");

    let mut failing = Recorder { fail_thumbnails: true, ..Recorder::default() };
    let err = build_catalog(&e, model_info(&e), items, |i| bytes[i].clone(), &BuildOptions::default(), &mut failing).unwrap_err();
    assert!(matches!(err, BuildError::Output(_)), "{err}");
    assert_eq!(err.to_string(), "disk full");
}
