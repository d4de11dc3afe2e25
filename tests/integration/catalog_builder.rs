//! The core's catalog builder on the committed tiny CLIP with the real CLIP tokenizer (from
//! ../shared/data/clip-vit-base-patch32, or CLIPMATCH_TOKENIZER; skipped where it is absent).

#![cfg(not(target_arch = "wasm32"))]

use crate::common;

use std::collections::BTreeMap;

use clipmatch::error::{BuildError, ImageError, UpdateError};
use clipmatch::search::build_recipe::{inputs_sha256, Recipe};
use clipmatch::search::merge::merge;
use clipmatch::search::previous_catalog::PreviousCatalog;
use clipmatch::search::shard::{Shard, ShardFiles, ShardInputs, ShardManifest, ShardSpec};
use clipmatch::search::catalog::{Item, ModelInfo, VectorDtype};
use clipmatch::search::catalog_builder::{
    assemble, build_catalog, build_catalog_reusing, embed_sources, recipe, BuildEvents, BuildOptions, BuildPhase, EmbeddedItem, Quantisation,
    NoReuse, Reuse, ReusedImage, SkipReason, SourceItem, Work,
};
use clipmatch::search::rank::leave_one_out_threshold;
use clipmatch::search::ranking_options::RankingOverrides;
use clipmatch::models::folder::{self, FolderFiles, Layout};
use clipmatch::models::model::Engine;
use clipmatch::models::tokenizer::ClipTokenizer;
use clipmatch::{ClipModel, Embedder, FusionWeights, PreprocessConfig, Towers};
use common::*;

fn tokenizer_json() -> Option<Vec<u8>> {
    let path = std::env::var_os("CLIPMATCH_TOKENIZER")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| shared_data().join("clip-vit-base-patch32/tokenizer.json"));
    let json = std::fs::read(&path).ok();
    if json.is_none() {
        eprintln!("skipped: {} is absent", path.display());
    }
    json
}

fn embedder() -> Option<Embedder> {
    let json = tokenizer_json()?;
    let model = ClipModel::load(TINY_CONFIG, TINY_WEIGHTS, Some(Towers::VisionAndText)).unwrap();
    let tokenizer = ClipTokenizer::from_bytes(&json, model.config.text.max_position_embeddings).unwrap();
    Some(Embedder::new(model, PreprocessConfig::from_json(TINY_PREPROCESSOR).unwrap(), Some(tokenizer)))
}

/// The tiny CLIP on candle-transformers, whose image embeddings depend on the make-up of a batch
/// (in the last bits), unlike this crate's kernels: what batch-aligned reuse and shards are for.
fn candle_embedder() -> Option<Embedder> {
    let json = tokenizer_json()?;
    let files = FolderFiles { config: TINY_CONFIG, preprocessor: Some(TINY_PREPROCESSOR), weights: TINY_WEIGHTS, tokenizer: Some(&json), tokenizer_config: None };
    let layout = Layout::detect(false, Some(TINY_CONFIG)).unwrap();
    Some(folder::load(layout, &files, Towers::VisionAndText, Some(Engine::Candle)).unwrap())
}

/// Both engines.
fn embedders() -> Vec<Embedder> {
    [embedder(), candle_embedder()].into_iter().flatten().collect()
}

/// Records every event.
#[derive(Default)]
struct Recorder {
    progress: Vec<(BuildPhase, usize, usize)>,
    skipped: Vec<(usize, String)>,
    thumbnails: BTreeMap<String, Vec<u8>>,
    fail_thumbnails: bool,
    /// Photos embedded (not reused), by the sha256 of their file: vector and thumbnail.
    images: BTreeMap<String, ReusedImage>,
    /// Names embedded (not reused).
    names: BTreeMap<String, Vec<f32>>,
    /// The photos' sha256 reported since the last complete batch, and the complete batches.
    open_batch: Vec<String>,
    batches: Vec<Vec<String>>,
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
    fn image_embedded(&mut self, sha256: &str, vector: &[f32], file: &str, jpeg: &[u8]) -> std::io::Result<()> {
        assert_eq!(self.thumbnails[file], jpeg, "the thumbnail is given before the embedding is reported");
        let fresh = ReusedImage { vector: vector.to_vec(), thumbnail: jpeg.to_vec() };
        assert!(self.images.insert(sha256.to_string(), fresh).is_none(), "{sha256} reported twice");
        self.open_batch.push(sha256.to_string());
        Ok(())
    }
    fn batch_complete(&mut self) -> std::io::Result<()> {
        let batch = std::mem::take(&mut self.open_batch);
        if !batch.is_empty() {
            self.batches.push(batch);
        }
        Ok(())
    }
    fn name_embedded(&mut self, name: &str, vector: &[f32]) -> std::io::Result<()> {
        self.names.insert(name.to_string(), vector.to_vec());
        Ok(())
    }
}

/// Reuses what a recorder saw embedded.
struct Seen<'a>(&'a Recorder);

impl Reuse for Seen<'_> {
    fn image(&self, sha256: &str) -> Option<ReusedImage> {
        self.0.images.get(sha256).cloned()
    }
    fn name(&self, name: &str) -> Option<Vec<f32>> {
        self.0.names.get(name).cloned()
    }
}

/// The twelve fixture photos, with a broken file at 2 and an unreadable one at 9.
fn sources() -> (Vec<SourceItem>, Vec<Result<Vec<u8>, String>>) {
    let mut items = Vec::new();
    let mut bytes = Vec::new();
    for (i, (file, data, _)) in IMAGES.iter().enumerate() {
        items.push(SourceItem { id: format!("p{i}"), name: format!("product {file}"), description: None, image: file.to_string(), fields: Default::default() });
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

#[test]
fn settings_no_reader_accepts_are_refused_before_anything_is_read() {
    let Some(e) = embedder() else { return };
    let (items, _) = sources();
    for (options, message) in [
        (BuildOptions { thumbnail_side: 0, ..BuildOptions::default() }, "the thumbnail size must be 1 to 1024 pixels, not 0"),
        (BuildOptions { ranking: RankingOverrides { min_score: Some(f32::NAN), ..Default::default() }, ..BuildOptions::default() }, "not NaN"),
        (
            BuildOptions { ranking: RankingOverrides { text_weight: Some(3e38), image_weight: Some(3e38), ..Default::default() }, ..BuildOptions::default() },
            "the text weight must be a number from 0 to 1000",
        ),
        (BuildOptions { ranking: RankingOverrides { top_k: Some(0), ..Default::default() }, ..BuildOptions::default() }, "(top_k) must be at least 1"),
    ] {
        let mut events = Recorder::default();
        let read = |_: usize| -> Result<Vec<u8>, String> { panic!("a photo was read before the settings were checked") };
        let err = build_catalog(&e, model_info(&e), items.clone(), read, &options, &mut events).unwrap_err();
        assert!(matches!(err, BuildError::Setting(_)) && err.to_string().contains(message), "{err}");
        assert!(events.progress.is_empty() && events.thumbnails.is_empty(), "nothing began");
    }
}

fn bytes_of(c: &clipmatch::Catalog) -> (String, Vec<u8>) {
    (c.manifest_json(), c.vectors_bytes())
}

#[test]
fn reused_embeddings_are_taken_as_they_are_and_reported_once() {
    let Some(e) = embedder() else { return };
    let (items, bytes) = sources();
    let options = BuildOptions { batch_size: 4, ..BuildOptions::default() };
    let mut first = Recorder::default();
    let built = build_catalog(&e, model_info(&e), items.clone(), |i| bytes[i].clone(), &options, &mut first).unwrap();
    assert_eq!(built.work, Work { images_embedded: 10, images_reused: 0, names_embedded: 10, names_reused: 0 });
    assert_eq!((first.images.len(), first.names.len()), (10, 10));
    for (sha, image) in &first.images {
        let i = bytes.iter().position(|b| b.as_ref().is_ok_and(|b| clipmatch::digest::sha256_hex(b) == *sha)).unwrap();
        assert_eq!(image.vector, e.embed_photo(bytes[i].as_ref().unwrap()).unwrap(), "item {i}");
    }

    // Everything known: nothing embedded, the same catalog and thumbnails.
    let mut again = Recorder::default();
    let reused = build_catalog_reusing(&e, model_info(&e), items.clone(), |i| bytes[i].clone(), &Seen(&first), &Quantisation::FromData, &options, &mut again).unwrap();
    assert_eq!(reused.work, Work { images_embedded: 0, images_reused: 10, names_embedded: 0, names_reused: 10 });
    assert!(again.images.is_empty() && again.names.is_empty());
    assert_eq!(bytes_of(&reused.catalog), bytes_of(&built.catalog));
    assert_eq!(again.thumbnails, first.thumbnails);
    assert_eq!(again.skipped, first.skipped);

    // Part known: only the rest is embedded (and reported), and the result is the same.
    let part = Recorder {
        images: first.images.iter().take(4).map(|(k, v)| (k.clone(), v.clone())).collect(),
        names: first.names.iter().skip(7).map(|(k, v)| (k.clone(), v.clone())).collect(),
        ..Recorder::default()
    };
    let mut third = Recorder::default();
    let mixed = build_catalog_reusing(&e, model_info(&e), items, |i| bytes[i].clone(), &Seen(&part), &Quantisation::FromData, &options, &mut third).unwrap();
    assert_eq!(mixed.work, Work { images_embedded: 6, images_reused: 4, names_embedded: 7, names_reused: 3 });
    assert_eq!((third.images.len(), third.names.len()), (6, 7));
    assert!(third.images.keys().all(|k| !part.images.contains_key(k)));
    assert_eq!(bytes_of(&mixed.catalog), bytes_of(&built.catalog));
    let of = |p: BuildPhase| third.progress.iter().filter(|e| e.0 == p).map(|e| (e.1, e.2)).collect::<Vec<_>>();
    assert_eq!(of(BuildPhase::Names), [(0, 7), (7, 7)]);
}

/// The previous catalog's embeddings, with its thumbnails from the recorder that saw it built.
struct Update<'a>(&'a PreviousCatalog, &'a Recorder);

impl Reuse for Update<'_> {
    fn image(&self, sha256: &str) -> Option<ReusedImage> {
        let (vector, file) = self.0.image(sha256)?;
        Some(ReusedImage { vector, thumbnail: self.1.thumbnails[file].clone() })
    }
    fn name(&self, name: &str) -> Option<Vec<f32>> {
        self.0.name(name)
    }
}

#[test]
fn an_update_embeds_only_what_changed_and_keeps_the_i8_bytes_of_the_rest() {
    let Some(e) = embedder() else { return };
    let (items, bytes) = sources();
    let options = BuildOptions { record_sources: true, ..BuildOptions::default() };
    // Before: items 0 to 9 (2 and 9 are skipped).
    let mut rec = Recorder::default();
    let old = build_catalog(&e, model_info(&e), items[..10].to_vec(), |i| bytes[i].clone(), &options, &mut rec).unwrap().catalog;
    assert_eq!(old.dtype(), VectorDtype::I8);
    let recorded = old.manifest.sources.clone().unwrap();
    assert_eq!((recorded.engine.as_str(), recorded.thumbnail_side), ("ours", 256));
    let kept_bytes: Vec<String> = [0, 1, 3, 4, 5, 6, 7, 8].iter().map(|&i| clipmatch::digest::sha256_hex(bytes[i].as_ref().unwrap())).collect();
    assert_eq!(recorded.image_sha256, kept_bytes);

    // After: item 0 removed, item 1 renamed, items 10 and 11 added.
    let mut new_items = items[1..].to_vec();
    new_items[0].name = "a new name".into();
    let new_bytes = &bytes[1..];
    let r = recipe(&e, model_info(&e), &options);
    let previous = PreviousCatalog::new(old.clone(), &r, VectorDtype::I8).unwrap();
    let mut seen = Recorder::default();
    let updated = build_catalog_reusing(&e, model_info(&e), new_items.clone(), |i| new_bytes[i].clone(), &Update(&previous, &rec), &previous.quantisation(), &options, &mut seen).unwrap();
    assert_eq!(updated.work, Work { images_embedded: 2, images_reused: 7, names_embedded: 3, names_reused: 6 });
    let c = &updated.catalog;
    let ids: Vec<&str> = c.items().iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["p1", "p3", "p4", "p5", "p6", "p7", "p8", "p10", "p11"]);
    assert_eq!(c.manifest.vectors.scales, old.manifest.vectors.scales);
    assert_eq!(c.manifest.vectors.offsets, old.manifest.vectors.offsets);
    // Every item kept: its image vector the same bytes; its name vector too unless renamed.
    let dim = c.dim();
    let (old_v, new_v) = (old.vectors_bytes(), c.vectors_bytes());
    let pair = |v: &[u8], i: usize| v[2 * dim * i..2 * dim * (i + 1)].to_vec();
    for (i, item) in c.items().iter().enumerate().take(7) {
        let j = old.items().iter().position(|o| o.id == item.id).unwrap();
        let (a, b) = (pair(&old_v, j), pair(&new_v, i));
        assert_eq!(a[..dim], b[..dim], "{}: image vector", item.id);
        assert_eq!(a[dim..] == b[dim..], item.id != "p1", "{}: name vector", item.id);
        assert_eq!(seen.thumbnails[item.thumbnail.as_deref().unwrap()], rec.thumbnails[item.thumbnail.as_deref().unwrap()]);
    }
    assert!(c.vector_problems().is_empty(), "{:?}", c.vector_problems());
    assert_eq!(c.manifest.sources.as_ref().unwrap().image_sha256.len(), 9);

    // Refused: another dtype, another model, another thumbnail size, a catalog that records nothing.
    let err = PreviousCatalog::new(old.clone(), &r, VectorDtype::F32).unwrap_err();
    assert_eq!(err, UpdateError::Dtype { catalog: "i8", asked: "f32" });
    let other = Recipe { model: ModelInfo { weights_sha256: "cd".repeat(32), ..r.model.clone() }, ..r.clone() };
    assert!(matches!(PreviousCatalog::new(old.clone(), &other, VectorDtype::I8), Err(UpdateError::Recipe(d)) if d.starts_with("another model")));
    let small = Recipe { thumbnail_side: 128, ..r.clone() };
    let err = PreviousCatalog::new(old.clone(), &small, VectorDtype::I8).unwrap_err().to_string();
    assert!(err.starts_with("the catalog was built with 256 px thumbnails, not 128; an update must use the same model and settings"), "{err}");
    let mut plain = old;
    plain.manifest.sources = None;
    assert_eq!(PreviousCatalog::new(plain, &r, VectorDtype::I8).unwrap_err(), UpdateError::NotUpdatable);
}

/// An update stores new vectors with the catalog's i8 scales and offsets; one so far outside their
/// range that clamping would take it out of unit length is stretched back within it, and when no
/// stretch can, the scales are chosen anew (every vector stored with them): either way the
/// catalog passes its own checks.
#[test]
fn an_update_keeps_new_i8_vectors_of_unit_length_whatever_the_kept_scales() {
    let model = ModelInfo { name: "flat".into(), weights_sha256: "ab".repeat(32), equivalent_weights_sha256: vec![], embedding_dim: 2 };
    let r = Recipe { model: model.clone(), preprocessing: PreprocessConfig::default(), engine: "ours".into(), thumbnail_side: 256 };
    let at = |i: usize, degrees: f32| {
        let v = vec![degrees.to_radians().cos(), degrees.to_radians().sin()];
        let item = Item { id: format!("p{i}"), name: format!("P{i}"), description: None, image: format!("{i}.jpg"), thumbnail: None, fields: Default::default() };
        EmbeddedItem { index: i, item, image_sha256: "cd".repeat(32), image: v.clone(), name: v }
    };
    // The catalog: 21 directions within 10 degrees of each other.
    let old_items: Vec<EmbeddedItem> = (0..21).map(|i| at(i, i as f32 - 10.0)).collect();
    let options = BuildOptions::default();
    let old = assemble::<std::io::Error>(&r, old_items.clone(), 21, &options, &Quantisation::FromData).unwrap();
    let (scales, offsets) = (old.manifest.vectors.scales.unwrap(), old.manifest.vectors.offsets.clone().unwrap());
    let keep = Quantisation::Keep { scales, offsets: offsets.clone() };
    // A new item among them: stored with the kept scales, the others keep their bytes.
    let near = assemble::<std::io::Error>(&r, [old_items.clone(), vec![at(21, 3.5)]].concat(), 22, &options, &keep).unwrap();
    assert_eq!(near.manifest.vectors.scales, Some(scales));
    assert_eq!(near.vectors_bytes()[..old.vectors_bytes().len()], old.vectors_bytes());
    // One 45 degrees away: clamped to the kept range it would be 0.83 long; stretched, it is
    // stored within the tolerance with the kept scales.
    let aside = assemble::<std::io::Error>(&r, [old_items.clone(), vec![at(21, 45.0)]].concat(), 22, &options, &keep).unwrap();
    assert_eq!(aside.manifest.vectors.scales, Some(scales));
    assert_eq!(aside.vectors_bytes()[..old.vectors_bytes().len()], old.vectors_bytes());
    assert!(aside.vector_problems().is_empty(), "{:?}", aside.vector_problems());
    // One at right angles: no stretch brings it back (its first value is 0, clamped to the range
    // near 1), so the scales are chosen anew.
    let far = assemble::<std::io::Error>(&r, [old_items, vec![at(21, 90.0)]].concat(), 22, &options, &keep).unwrap();
    assert!(far.vector_problems().is_empty(), "{:?}", far.vector_problems());
    assert_ne!(far.manifest.vectors.scales, Some(scales));
}

/// The shards of a build of `items` in `count` slices, as read back from their files.
fn shards(e: &Embedder, items: &[SourceItem], bytes: &[Result<Vec<u8>, String>], options: &BuildOptions, count: usize) -> Vec<(String, ShardFiles)> {
    let r = recipe(e, model_info(e), options);
    let inputs = ShardInputs { items: items.len(), sha256: inputs_sha256(items) };
    (0..count)
        .map(|index| {
            let spec = ShardSpec { index, count };
            let slice = spec.slice(items.len(), options.batch_size);
            let mut rec = Recorder::default();
            let first = slice.start;
            let embedded = embed_sources(e, items[slice.clone()].to_vec(), |i| bytes[first + i].clone(), &NoReuse, options, &mut rec).unwrap();
            let images: Vec<String> = items[slice].iter().map(|s| s.image.clone()).collect();
            let files = ShardManifest::files(spec, inputs.clone(), &r, options, &embedded, &images, |f| clipmatch::digest::sha256_hex(&rec.thumbnails[f]));
            (format!("shard-{index}"), files)
        })
        .collect()
}

fn read_back(files: &[(String, ShardFiles)]) -> Vec<(String, Shard)> {
    files.iter().map(|(label, f)| (label.clone(), Shard::from_parts(f.manifest_json.as_bytes(), &f.vectors).unwrap())).collect()
}

#[test]
fn shards_merged_make_the_very_catalog_of_the_whole_build() {
    let (items, bytes) = sources();
    for e in embedders() {
    for options in [
        BuildOptions { batch_size: 3, record_sources: true, ..BuildOptions::default() },
        BuildOptions { vector_dtype: VectorDtype::F32, ranking: RankingOverrides { top_k: Some(3), ..Default::default() }, ..BuildOptions::default() },
    ] {
        let whole = build_catalog(&e, model_info(&e), items.clone(), |i| bytes[i].clone(), &options, &mut Recorder::default()).unwrap();
        for count in [1, 3, 4, 12, 13] {
            let merged = merge(read_back(&shards(&e, &items, &bytes, &options, count))).unwrap();
            assert_eq!(merged.skipped.iter().map(|s| s.index).collect::<Vec<_>>(), [2, 9]);
            assert_eq!(merged.thumbnails.len(), 10);
            let c = assemble::<std::io::Error>(&merged.recipe, merged.items, merged.total, &merged.options, &Quantisation::FromData).unwrap();
            assert_eq!(bytes_of(&c), bytes_of(&whole.catalog), "{count} shards");
        }
    }
    }
}

#[test]
fn shards_of_other_builds_missing_repeated_or_damaged_ones_are_refused() {
    let Some(e) = embedder() else { return };
    let (items, bytes) = sources();
    let options = BuildOptions { batch_size: 4, ..BuildOptions::default() };
    let files = shards(&e, &items, &bytes, &options, 3);
    let err = |shards: Vec<(String, Shard)>| merge(shards).unwrap_err().to_string();

    let mut some = read_back(&files);
    some.remove(1);
    assert_eq!(err(some), "missing: shard 1 (a build in 3 shards needs shards 0 to 2, each once)");
    let mut twice = read_back(&files);
    twice[2] = twice[0].clone();
    twice[2].0 = "again".into();
    assert_eq!(err(twice), "shard 0/3 is given twice: shard-0 and again");

    // Another input list (one name changed), another model, other settings, another split.
    let mut renamed = items.clone();
    renamed[0].name = "renamed".into();
    let mut mixed = read_back(&files);
    mixed[1] = read_back(&shards(&e, &renamed, &bytes, &options, 3)).remove(1);
    assert_eq!(err(mixed), "shard-0 (shard 0/3) and shard-1 (shard 1/3) were made from different input lists");
    let mut other_model = read_back(&files);
    other_model[2].1.manifest.recipe.model.weights_sha256 = "cd".repeat(32);
    assert!(err(other_model).starts_with("shard-2 was made with another model (weights sha256 cdcd"));
    let f32_options = BuildOptions { vector_dtype: VectorDtype::F32, ..options };
    let mut settings = read_back(&files);
    settings[0] = read_back(&shards(&e, &items, &bytes, &f32_options, 3)).remove(0);
    assert!(err(settings).contains("were made with different catalog settings"));
    let mut split = read_back(&files);
    split[1] = read_back(&shards(&e, &items, &bytes, &options, 4)).remove(1);
    assert!(err(split).contains("split the inputs in different numbers of shards"));

    // Damaged files: a flipped vector byte, a cut vectors file, a shard that lost an item.
    let (json, vectors) = (files[0].1.manifest_json.as_bytes(), &files[0].1.vectors);
    let mut flipped = vectors.clone();
    flipped[5] ^= 1;
    assert_eq!(Shard::from_parts(json, &flipped).unwrap_err().to_string(), "it is damaged: vectors.f32 does not match the sha256 in shard.json");
    let e1 = Shard::from_parts(json, &vectors[..vectors.len() - 4]).unwrap_err().to_string();
    assert!(e1.starts_with("it is damaged: vectors.f32 is"), "{e1}");
    let mut manifest: serde_json::Value = serde_json::from_str(&files[0].1.manifest_json).unwrap();
    manifest["items"].as_array_mut().unwrap().remove(0);
    let e2 = Shard::from_parts(&serde_json::to_vec(&manifest).unwrap(), vectors).unwrap_err().to_string();
    assert_eq!(e2, "it is damaged: it does not list each input 0 to 4 of its slice exactly once");
    let e3 = Shard::from_parts(br#"{"format": "clipmatch-catalog", "version": 2}"#, vectors).unwrap_err().to_string();
    assert!(e3.starts_with("it is not a shard folder this version reads"), "{e3}");
}

/// What a killed build left: the complete batches of a recorder, and some of the batch after.
struct Checkpointed {
    images: BTreeMap<String, ReusedImage>,
}

impl Reuse for Checkpointed {
    fn image(&self, _: &str) -> Option<ReusedImage> {
        None
    }
    fn checkpointed_image(&self, sha256: &str) -> Option<ReusedImage> {
        self.images.get(sha256).cloned()
    }
    fn name(&self, _: &str) -> Option<Vec<f32>> {
        None
    }
}

#[test]
fn a_checkpoint_is_reused_a_whole_batch_at_a_time_so_the_resumed_build_is_the_same() {
    let (items, bytes) = sources();
    for e in embedders() {
        let options = BuildOptions { batch_size: 4, ..BuildOptions::default() };
        let mut rec = Recorder::default();
        let whole = build_catalog(&e, model_info(&e), items.clone(), |i| bytes[i].clone(), &options, &mut rec).unwrap();
        // Batches of 4 positions, less the skipped 2 and 9: 3, 4 and 3 photos.
        assert_eq!(rec.batches.iter().map(Vec::len).collect::<Vec<_>>(), [3, 4, 3]);
        for (complete, partial) in [(0, 0), (0, 2), (1, 0), (1, 1), (1, 3), (2, 2), (3, 0)] {
            let mut images = BTreeMap::new();
            let known = rec.batches[..complete].iter().flatten().chain(rec.batches.get(complete).into_iter().flatten().take(partial));
            for sha in known {
                images.insert(sha.clone(), rec.images[sha].clone());
            }
            let mut again = Recorder::default();
            let resumed = build_catalog_reusing(&e, model_info(&e), items.clone(), |i| bytes[i].clone(), &Checkpointed { images }, &Quantisation::FromData, &options, &mut again).unwrap();
            assert_eq!(bytes_of(&resumed.catalog), bytes_of(&whole.catalog), "{} engine, {complete} batches and {partial} photos known", e.model.towers().engine().name());
            let reused: usize = rec.batches[..complete].iter().map(Vec::len).sum();
            assert_eq!(resumed.work.images_reused, reused, "a batch known in part is embedded again whole");
            assert_eq!(again.batches.len(), 3 - complete);
        }
    }
}
