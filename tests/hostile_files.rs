//! Hostile weights and catalog files: every size read from a header or manifest is checked
//! before it is trusted, and each bad file is refused with a one-line reason naming the tensor or
//! item, without allocating what the file claims (heap counted by this binary's allocator).
//! Natively and in Chromium.

mod common;

use clipmatch::search::catalog::{vectors_file_size, Item, ModelInfo, RankingDefaults, VectorDtype, MAX_EMBEDDING_DIM};
use clipmatch::digest::sha256_hex;
use clipmatch::models::clip::candle_engine::CandleClip;
use clipmatch::models::clip::{expected_tensors, ModelLoader};
use clipmatch::{Catalog, CatalogError, ClipModel, ModelConfig, ModelError, PreprocessConfig, Towers};
use common::{jpeg_header, peak_heap, png_header, serial, timed, TINY_CONFIG, TINY_WEIGHTS};
use serde_json::{json, Value};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// Natively; in the browser the crate's own allocator counts (`clipmatch::web::HeapCount`).
#[cfg(not(target_arch = "wasm32"))]
#[global_allocator]
static ALLOC: common::Counting = common::Counting;

// ---- safetensors ----

/// A safetensors file from header JSON text and `data` bytes.
fn safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// The tiny model's header and data, split.
fn tiny_parts() -> (serde_json::Map<String, Value>, &'static [u8]) {
    let n = u64::from_le_bytes(TINY_WEIGHTS[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&TINY_WEIGHTS[8..8 + n]).unwrap();
    (header.as_object().unwrap().clone(), &TINY_WEIGHTS[8 + n..])
}

/// The tiny model with `extra` tensors (name, dtype, shape, bytes) appended to its data.
fn tiny_with(extra: &[(&str, &str, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let (mut header, data) = tiny_parts();
    let mut data = data.to_vec();
    for (name, dtype, shape, bytes) in extra {
        let begin = data.len();
        data.extend_from_slice(bytes);
        header.insert(name.to_string(), json!({"dtype": dtype, "shape": shape, "data_offsets": [begin, data.len()]}));
    }
    safetensors(&Value::Object(header).to_string(), &data)
}

/// Loads through both engines' loaders, this crate's (the whole file at once) and candle's,
/// which must refuse it with the same one-line message; returns it.
fn engines_refusal(bytes: &[u8]) -> String {
    let whole = ClipModel::load(TINY_CONFIG, bytes, Some(Towers::VisionOnly)).err().expect("refused");
    let config = ModelConfig::from_json(TINY_CONFIG).unwrap();
    let candle = CandleClip::load(&config, bytes, Towers::VisionOnly).err().expect("refused by candle");
    assert!(matches!((&whole, &candle), (ModelError::Weights(_), ModelError::Weights(_))), "{whole} / {candle}");
    assert_eq!(whole.to_string(), candle.to_string());
    let msg = whole.to_string();
    assert!(!msg.contains('\n'), "{msg}");
    msg
}

/// Loads through both engines and through the streaming path (in 4 KiB slices), which must
/// agree; returns the message.
fn refusal(bytes: &[u8]) -> String {
    let whole = engines_refusal(bytes);
    let mut loader = ModelLoader::new(ModelConfig::from_json(TINY_CONFIG).unwrap(), Some(Towers::VisionOnly));
    let streamed = bytes.chunks(4096).try_for_each(|c| loader.push(c)).and_then(|()| loader.finish().map(|_| ()));
    let streamed = streamed.expect_err("refused when streamed");
    assert_eq!(whole, streamed.to_string());
    whole
}

#[test]
fn every_dtype_of_the_format_is_accepted_and_size_checked() {
    let _s = serial();
    // Hub checkpoints carry an I64 position_ids; any tensor the model does not use is skipped.
    let file = tiny_with(&[
        ("vision_model.embeddings.position_ids", "I64", vec![1, 50], vec![0; 400]),
        ("extra.bool", "BOOL", vec![3], vec![1, 0, 1]),
        ("extra.u8", "U8", vec![2, 2], vec![0; 4]),
        ("extra.f64", "F64", vec![2], vec![0; 16]),
        ("extra.f4", "F4", vec![4], vec![0; 2]),
    ]);
    let model = ClipModel::load(TINY_CONFIG, &file, Some(Towers::VisionOnly)).unwrap();
    assert_eq!(model.embedding_dim(), 16);
    let msg = refusal(&tiny_with(&[("vision_model.embeddings.position_ids", "I64", vec![1, 50], vec![0; 200])]));
    assert_eq!(
        msg,
        "model.safetensors could not be read: invalid safetensors header: vision_model.embeddings.position_ids: a 200-byte range for shape [1, 50] of I64 (400 bytes)"
    );
    let msg = refusal(&tiny_with(&[("extra.f4", "F4", vec![3], vec![0; 2])]));
    assert!(msg.contains("extra.f4: shape [3] of F4 is too large or not a whole number of bytes"), "{msg}");
}

#[test]
fn a_dtype_outside_the_format_is_refused_by_name() {
    let _s = serial();
    let msg = refusal(&tiny_with(&[("extra.odd", "F33", vec![2], vec![0; 8])]));
    assert!(msg.ends_with("extra.odd: unknown dtype \"F33\" (not one of the safetensors format's)"), "{msg}");
}

#[test]
fn a_range_ending_before_it_begins_is_refused() {
    let _s = serial();
    let header = json!({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}}).to_string();
    let msg = refusal(&safetensors(&header, &[0; 8]));
    assert!(msg.ends_with("w: its data ends (byte 4) before it begins (byte 8)"), "{msg}");
}

#[test]
fn overlapping_ranges_are_refused() {
    let _s = serial();
    let header = json!({
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
    })
    .to_string();
    let msg = refusal(&safetensors(&header, &[0; 12]));
    assert!(msg.ends_with("a and b overlap"), "{msg}");
}

#[test]
fn a_gap_between_tensors_is_refused_by_both_engines() {
    let _s = serial();
    // safetensors' own validation (candle's, the Python library's) lays tensors end to end.
    let (mut header, data) = tiny_parts();
    let mut data = data.to_vec();
    data.extend_from_slice(&[0; 12]);
    let begin = data.len() - 8;
    header.insert("extra".into(), json!({"dtype": "F32", "shape": [2], "data_offsets": [begin, begin + 8]}));
    let msg = refusal(&safetensors(&Value::Object(header).to_string(), &data));
    assert!(msg.ends_with(&format!("4 bytes between {} (ending at byte {}) and extra hold no tensor", last_tensor(), begin - 4)), "{msg}");
    // Nor may the data begin with bytes no tensor holds.
    let header = json!({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}).to_string();
    let msg = refusal(&safetensors(&header, &[0; 8]));
    assert!(msg.ends_with("invalid safetensors header: w, the first tensor, begins at byte 4 of the data, not 0"), "{msg}");
}

/// The name of the tiny model's last tensor in its data.
fn last_tensor() -> String {
    let (header, _) = tiny_parts();
    let end = |v: &Value| v["data_offsets"][1].as_u64().unwrap_or(0);
    header.iter().filter(|(n, _)| *n != "__metadata__").max_by_key(|(_, v)| end(v)).unwrap().0.clone()
}

#[test]
fn offsets_past_the_end_of_the_file_are_refused_by_both_engines() {
    let _s = serial();
    let (mut header, data) = tiny_parts();
    let begin = data.len();
    header.insert("extra".into(), json!({"dtype": "F32", "shape": [2], "data_offsets": [begin, begin + 8]}));
    let file = safetensors(&Value::Object(header).to_string(), data);
    let msg = engines_refusal(&file);
    let at = file.len() + 8;
    assert!(msg.ends_with(&format!("extra's data ends at byte {at} but the file has {} bytes", file.len())), "{msg}");
}

#[test]
fn a_tensor_named_twice_is_refused() {
    let _s = serial();
    // JSON maps keep the last of a repeated key; the header is read entry by entry instead.
    let header = r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
    let msg = refusal(&safetensors(header, &[0; 8]));
    assert!(msg.ends_with("invalid safetensors header: w appears twice"), "{msg}");
}

#[test]
fn a_shape_whose_size_overflows_is_refused() {
    let _s = serial();
    let big = usize::MAX / 2 + 1;
    let header = json!({"w": {"dtype": "F32", "shape": [big, 4], "data_offsets": [0, 0]}}).to_string();
    let msg = refusal(&safetensors(&header, &[]));
    assert!(msg.contains(&format!("w: shape [{big}, 4] of F32 is too large")), "{msg}");
}

#[test]
fn a_header_longer_than_the_file_is_refused() {
    let _s = serial();
    let mut file = 1000u64.to_le_bytes().to_vec();
    file.extend_from_slice(b"{\"a\":");
    let err = ClipModel::load(TINY_CONFIG, &file, Some(Towers::VisionOnly)).err().unwrap();
    assert_eq!(err.to_string(), "model.safetensors could not be read: not a safetensors file (a header of 1000 bytes in a file of 13)");
}

/// A config like ViT-L's vision tower, wider and deeper: about 1.2 GB of f32 weights.
fn big_config() -> ModelConfig {
    let mut cfg: Value = serde_json::from_str(TINY_CONFIG).unwrap();
    cfg["vision_config"]["hidden_size"] = 1024.into();
    cfg["vision_config"]["intermediate_size"] = 4096.into();
    cfg["vision_config"]["num_attention_heads"] = 16.into();
    cfg["vision_config"]["num_hidden_layers"] = 24.into();
    cfg["vision_config"]["patch_size"] = 14.into();
    cfg["projection_dim"] = 768.into();
    ModelConfig::from_json(&cfg.to_string()).unwrap()
}

/// A header declaring every tensor `cfg`'s vision tower needs, as F32, with no data after it.
fn header_only(cfg: &ModelConfig) -> (Vec<u8>, usize) {
    let mut header = serde_json::Map::new();
    let mut at = 0usize;
    for (name, shape) in expected_tensors(cfg, Towers::VisionOnly) {
        let bytes = shape.iter().product::<usize>() * 4;
        header.insert(name, json!({"dtype": "F32", "shape": shape, "data_offsets": [at, at + bytes]}));
        at += bytes;
    }
    (safetensors(&Value::Object(header).to_string(), &[]), at)
}

#[test]
fn a_small_file_claiming_huge_tensors_allocates_nothing_for_them() {
    let _s = serial();
    let cfg = big_config();
    let (file, claimed) = header_only(&cfg);
    assert!(file.len() < 100_000 && claimed > 1_000_000_000, "{} bytes claiming {claimed}", file.len());
    // The whole file at once (the CLI maps it): its length is known.
    let (err, heap) = peak_heap(|| ClipModel::from_config(cfg.clone(), &file, Some(Towers::VisionOnly)).err().unwrap());
    assert!(err.to_string().contains("visual_projection.weight's data ends at byte"), "{err}");
    assert!(err.to_string().contains(&format!("but the file has {} bytes", file.len())), "{err}");
    assert!(heap < 10_000_000, "{heap} bytes");
    // Streamed with the length announced (the page knows it from bundle.json).
    let (err, heap) = peak_heap(|| {
        let mut loader = ModelLoader::new(cfg.clone(), Some(Towers::VisionOnly)).with_file_len(file.len());
        file.chunks(1000).try_for_each(|c| loader.push(c)).err().unwrap()
    });
    assert!(err.to_string().contains("visual_projection.weight's data ends at byte"), "{err}");
    assert!(heap < 10_000_000, "{heap} bytes");
    // A file longer than its header says is refused as soon as the header is in, too.
    let mut long = TINY_WEIGHTS.to_vec();
    long.extend_from_slice(&[0; 64]);
    let mut loader = ModelLoader::new(ModelConfig::from_json(TINY_CONFIG).unwrap(), None).with_file_len(long.len());
    let err = loader.push(&long[..TINY_WEIGHTS.len() / 4]).unwrap_err();
    assert!(err.to_string().contains("longer than its header says"), "{err}");
}

#[test]
fn a_config_declaring_absurdly_many_layers_is_refused_by_count() {
    let _s = serial();
    let mut cfg = ModelConfig::from_json(TINY_CONFIG).unwrap();
    cfg.vision.num_hidden_layers = 50_000_000;
    let (err, heap) = peak_heap(|| ClipModel::from_config(cfg, TINY_WEIGHTS, Some(Towers::VisionOnly)).err().unwrap());
    assert!(matches!(err, ModelError::WeightsMismatch(_)), "{err}");
    assert!(err.to_string().contains("config.json's vision tower needs 800000008"), "{err}");
    assert!(heap < 10_000_000, "{heap} bytes");
}

#[test]
fn config_sizes_past_their_bounds_are_refused_naming_them() {
    let with = |path: &[&str], value: Value| {
        let mut cfg: Value = serde_json::from_str(TINY_CONFIG).unwrap();
        let mut at = &mut cfg;
        for key in &path[..path.len() - 1] {
            at = &mut at[*key];
        }
        at[path[path.len() - 1]] = value;
        ModelConfig::from_json(&cfg.to_string()).map(|_| ()).unwrap_err().to_string()
    };
    for (path, value, expect) in [
        (&["vision_config", "hidden_size"][..], json!(1u64 << 30), "vision_config hidden_size is 1073741824; it must be 1 to 16384"),
        (&["vision_config", "image_size"][..], json!(1 << 20), "vision_config image_size is 1048576; it must be 1 to 4096"),
        (&["text_config", "vocab_size"][..], json!(0), "text_config vocab_size is 0; it must be 1 to 2097152"),
        (&["text_config", "max_position_embeddings"][..], json!(100_000), "text_config max_position_embeddings is 100000"),
        (&["projection_dim"][..], json!(1u64 << 20), "config projection_dim is 1048576; it must be 1 to 65536"),
        (&["vision_config", "num_channels"][..], json!(4), "num_channels is 4; only 3 (RGB) is supported"),
    ] {
        let err = with(path, value);
        assert!(err.contains(expect), "{path:?}: {err}");
        assert!(!err.contains('\n'), "{err}");
    }
}

#[test]
fn preprocessing_sizes_past_their_bound_are_refused_not_wrapped() {
    for json in [
        r#"{"crop_size": {"height": 100000, "width": 100000}}"#,
        r#"{"size": {"shortest_edge": 4294967520}}"#, // 2^32 + 224: must not wrap to 224
        r#"{"crop_size": {"height": 224, "width": 4294967520}}"#,
        r#"{"size": 0}"#,
    ] {
        let err = PreprocessConfig::from_json(json).unwrap_err().to_string();
        assert!(err.contains("size and crop_size must be 1 to 4096 pixels"), "{json}: {err}");
    }
}

// ---- catalogs ----

fn item(id: &str) -> Item {
    Item { id: id.into(), name: format!("Product {id}"), description: None, image: format!("{id}.jpg"), thumbnail: None, fields: Default::default() }
}

fn model_info(dim: usize) -> ModelInfo {
    ModelInfo { name: "m".into(), weights_sha256: "aa".repeat(32), equivalent_weights_sha256: Vec::new(), embedding_dim: dim }
}

/// Two items of 2-dimensional f32 vectors.
fn f32_catalog() -> Catalog {
    let pairs = vec![(vec![0.6, 0.8], vec![0.8, 0.6]), (vec![1.0, 0.0], vec![0.0, 1.0])];
    Catalog::new(model_info(2), PreprocessConfig::default(), RankingDefaults::default(), vec![item("p1"), item("p2")], &pairs)
        .unwrap()
}

/// `catalog`'s manifest with value `at` of its vectors replaced by `x` (the sha256 updated).
fn with_value(catalog: &Catalog, at: usize, x: f32) -> (String, Vec<u8>) {
    let mut bytes = catalog.vectors_bytes();
    bytes[at * 4..at * 4 + 4].copy_from_slice(&x.to_le_bytes());
    let mut manifest = catalog.manifest.clone();
    manifest.vectors.sha256 = sha256_hex(&bytes);
    (serde_json::to_string(&manifest).unwrap(), bytes)
}

#[test]
fn non_finite_vectors_are_refused_naming_the_item() {
    let _s = serial();
    let c = f32_catalog();
    for (at, x, item, kind) in [(5, f32::NAN, "p2", "image"), (2, f32::INFINITY, "p1", "name"), (7, f32::NEG_INFINITY, "p2", "name")] {
        let (manifest, vectors) = with_value(&c, at, x);
        let err = Catalog::from_parts(manifest.as_bytes(), &vectors).unwrap_err();
        assert!(matches!(err, CatalogError::NonFiniteVector { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!("item \"{item}\"'s {kind} vector holds NaN or an infinite value: the vectors file is damaged")
        );
    }
    // Nor is a catalog built from such vectors.
    let bad = vec![(vec![f32::NAN, 0.0], vec![1.0, 0.0])];
    let err = Catalog::new(model_info(2), PreprocessConfig::default(), RankingDefaults::default(), vec![item("p1")], &bad)
        .unwrap_err();
    assert!(matches!(err, CatalogError::NonFiniteVector { .. }), "{err}");
}

#[test]
fn the_vectors_size_is_checked_arithmetic() {
    let _s = serial();
    assert_eq!(vectors_file_size(usize::MAX / 2, 2, VectorDtype::I8), None);
    assert_eq!(vectors_file_size(3, usize::MAX / 4, VectorDtype::F32), None);
    assert_eq!(vectors_file_size(2, 512, VectorDtype::F32), Some(8192));
    // 8192 items of 65536 f32 values a pair: 2^32 bytes, one past what wasm32 addresses.
    let c = f32_catalog();
    let mut manifest: Value = serde_json::from_str(&c.manifest_json()).unwrap();
    manifest["model"]["embedding_dim"] = MAX_EMBEDDING_DIM.into();
    manifest["vectors"]["sha256"] = "".into();
    manifest["items"] = (0..8192).map(|i| serde_json::to_value(item(&format!("p{i}"))).unwrap()).collect();
    let (err, heap) = peak_heap(|| Catalog::from_parts(manifest.to_string().as_bytes(), &[0; 64]).unwrap_err());
    assert!(heap < 50_000_000, "{heap} bytes");
    if cfg!(target_pointer_width = "32") {
        assert_eq!(
            err.to_string(),
            "invalid catalog: 8192 items of 65536-dimensional vector pairs are more values than this machine can address"
        );
    } else {
        assert!(matches!(err, CatalogError::VectorsSize { expected, .. } if expected as u64 == 1 << 32), "{err}");
    }
}

#[test]
fn an_embedding_size_past_the_limit_is_refused_before_anything_is_sized_from_it() {
    let _s = serial();
    let c = f32_catalog();
    for dim in [0, MAX_EMBEDDING_DIM + 1, usize::MAX] {
        let mut manifest: Value = serde_json::from_str(&c.manifest_json()).unwrap();
        manifest["model"]["embedding_dim"] = dim.into();
        manifest["items"] = json!([]);
        let (err, heap) = peak_heap(|| Catalog::from_parts(manifest.to_string().as_bytes(), &[]).unwrap_err());
        assert_eq!(err.to_string(), format!("invalid catalog: embedding_dim is {dim}; it must be 1 to 65536"));
        assert!(heap < 1_000_000, "{heap} bytes");
    }
}

#[test]
fn a_version_past_u32_is_not_read_as_a_small_one() {
    let _s = serial();
    let c = f32_catalog();
    let mut manifest: Value = serde_json::from_str(&c.manifest_json()).unwrap();
    manifest["version"] = ((1u64 << 32) + 2).into();
    let err = Catalog::from_parts(manifest.to_string().as_bytes(), &c.vectors_bytes()).unwrap_err();
    assert!(matches!(err, CatalogError::UnsupportedVersion { version: 0, .. }), "{err}");
}

// ---- the page catalog of a compact bundle ----

/// A 300-item compact catalog's page catalog (its JSON, as `bundle` writes it) and codes.
fn page_catalog() -> (String, Vec<u8>) {
    use clipmatch::search::catalog::CompactOptions;
    use clipmatch::search::compact::TrainingParams;
    let c = clipmatch::search::synthetic::catalog(300, 16, 3, VectorDtype::I8).unwrap();
    let training = TrainingParams { subspaces: 4, centroids: 16, iterations: 2, sample: 300, seed: 1 };
    let (c, codes) = c.with_compact(CompactOptions { training, residual_subspaces: 0, min_items: 1 }).unwrap();
    (serde_json::to_string(&c.page_catalog().unwrap()).unwrap(), codes.to_bytes())
}

/// `json` gzipped as `bundle` writes it, then `tail` (JSON text) `repeat` times, then `end`: a
/// page catalog whose last list runs on, compressed as it is written (nothing held whole).
fn gzip_running_on(json: &str, tail: &str, repeat: usize, end: &str) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(json.as_bytes()).unwrap();
    let block = tail.repeat(1 << 16);
    for _ in 0..repeat >> 16 {
        z.write_all(block.as_bytes()).unwrap();
    }
    z.write_all(end.as_bytes()).unwrap();
    z.finish().unwrap()
}

/// The page's whole catalog file, gzipped (as a bundle carries it) or not, is read; a page
/// catalog that expands past what any catalog's manifest may take (here 235 KB of gzip holding
/// 240 MB of names) is refused while it is decompressed, in one line, holding next to nothing;
/// and the next one loads.
#[test]
fn a_page_catalog_expanding_past_a_catalogs_size_is_refused_while_decompressing() {
    use clipmatch::search::compact::page::PageCompactCatalog;
    let _s = serial();
    let (json, codes) = page_catalog();
    let plain = PageCompactCatalog::from_parts(json.as_bytes(), &codes).unwrap();
    let gzipped = PageCompactCatalog::from_parts(&gzip_running_on(&json, "", 0, ""), &codes).unwrap();
    assert_eq!((gzipped.len(), gzipped.manifest), (300, plain.manifest));

    let names_open = json.rsplit_once(']').unwrap().0.rsplit_once('[').unwrap().0.to_string() + "[";
    assert!(names_open.ends_with("\"names\":["), "{names_open}");
    let bomb = gzip_running_on(&names_open, "\"a\",", 60 << 20, "\"a\"]}");
    eprintln!("page catalog bomb: {} bytes of gzip", bomb.len());
    let ((err, heap), time) = timed(|| peak_heap(|| PageCompactCatalog::from_parts(&bomb, &codes).err().unwrap().to_string()));
    eprintln!("refused in {time:?}, peak heap {heap} bytes");
    assert_eq!(err, "invalid catalog: the page catalog expands to more than the 64 MiB a catalog's manifest may take: it is not one `clipmatch bundle` wrote");
    assert!(heap < 2_000_000, "{heap} bytes");
    assert!(PageCompactCatalog::from_parts(&gzip_running_on(&json, "", 0, ""), &codes).is_ok(), "the next one loads");
}

/// Within that size, a page catalog listing more items than any catalog holds, or an item with
/// more fields than an item may have, is refused from counting them, before any is kept.
#[test]
fn a_page_catalog_listing_too_much_is_refused_before_keeping_any_of_it() {
    use clipmatch::search::compact::page::PageCompactCatalog;
    let _s = serial();
    let (json, codes) = page_catalog();
    let page: Value = serde_json::from_str(&json).unwrap();
    let mut small = page.clone();
    small["ids"] = json!([]);
    small["names"] = json!([]);
    let head = small.to_string();
    // 7 million ids and names of 4 bytes each: 56 MB of JSON.
    let many = head.replace("\"ids\":[]", &format!("\"ids\":[{}\"a\"]", "\"a\",".repeat(7_000_000 - 1)));
    let many = many.replace("\"names\":[]", &format!("\"names\":[{}\"\"]", "\"\",".repeat(7_000_000 - 1)));
    let (err, heap) = peak_heap(|| PageCompactCatalog::from_parts(many.as_bytes(), &codes).err().unwrap().to_string());
    assert!(err.starts_with("invalid catalog: the page catalog lists 7000000 items; a catalog holds at most "), "{err}");
    assert!(heap < 2_000_000, "{heap} bytes");
    // An item with 100,000 fields.
    let mut wide = page;
    wide["fields"] = Value::Array(vec![json!({}); 300]);
    let fields: serde_json::Map<String, Value> = (0..100_000).map(|i| (format!("k{i}"), json!("v"))).collect();
    wide["fields"][7] = Value::Object(fields);
    let text = wide.to_string();
    drop(wide);
    let (err, heap) = peak_heap(|| PageCompactCatalog::from_parts(text.as_bytes(), &codes).err().unwrap().to_string());
    assert_eq!(err, "invalid catalog: the page catalog gives an item 100000 fields; an item may have at most 32");
    assert!(heap < 2_000_000, "{heap} bytes");
}

// ---- thumbnails ----

/// A catalog's thumbnail is read only as a JPEG of at most the catalog's thumbnail size a side,
/// told from its header: a 16384 x 16384 picture (+1.4 GB once a page draws it) is refused in one
/// line without a pixel decoded.
#[test]
fn thumbnails_are_read_only_as_jpegs_of_at_most_the_thumbnail_size() {
    use clipmatch::search::catalog::{check_thumbnail, SourcesRecord, MAX_THUMBNAIL_SIDE};
    let _s = serial();
    assert!(check_thumbnail(&jpeg_header(256, 170), 256).is_ok());
    assert!(check_thumbnail(&jpeg_header(1, 256), 256).is_ok());
    let refused = |bytes: &[u8], side: u32| {
        let (err, heap) = peak_heap(|| check_thumbnail(bytes, side).unwrap_err().to_string());
        assert!(heap < 100_000, "{heap} bytes");
        err
    };
    let rule = "this catalog's thumbnails are JPEGs of at most 256 pixels a side";
    assert_eq!(refused(&jpeg_header(257, 100), 256), format!("the thumbnail is a 257x100 JPEG; {rule}"));
    assert_eq!(refused(&jpeg_header(16384, 16384), 256), format!("the thumbnail is a 16384x16384 JPEG; {rule}"));
    assert_eq!(refused(&png_header(16384, 16384), 256), format!("the thumbnail is a PNG image, not a JPEG; {rule}"));
    assert_eq!(refused(b"<svg/>", 256), format!("the thumbnail is not an image; {rule}"));
    let no_frame = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x07, b'J', b'F', b'I', b'F', 0, 0xFF, 0xFE, 0x00, 0x04, b'h', b'i'];
    assert_eq!(refused(&no_frame, 256), format!("the thumbnail is a JPEG whose header gives no size; {rule}"));
    // The size is the one the catalog records (`build --updatable`), else the largest allowed.
    let mut m = f32_catalog().manifest;
    assert_eq!(m.thumbnail_side(), MAX_THUMBNAIL_SIDE);
    m.sources = Some(SourcesRecord { engine: "ours".into(), thumbnail_side: 128, image_sha256: vec!["ab".repeat(32); 2] });
    assert_eq!(m.thumbnail_side(), 128);
    m.sources.as_mut().unwrap().thumbnail_side = 1 << 20;
    assert_eq!(m.thumbnail_side(), MAX_THUMBNAIL_SIDE);
}
