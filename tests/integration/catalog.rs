//! The catalog format and the fused ranking: round trips, refusals with reasons, scores.

use clipmatch::search::catalog::{vectors_file_size, Item, ModelInfo, RankingDefaults, ScaleRule, VectorDtype, VERSION};
use clipmatch::search::rank::{leave_one_out_threshold, rank, FusionWeights};
use clipmatch::{Catalog, CatalogError, PreprocessConfig};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn model_info() -> ModelInfo {
    ModelInfo {
        name: "test-model".into(),
        weights_sha256: "aa".repeat(32),
        equivalent_weights_sha256: vec!["bb".repeat(32)],
        embedding_dim: 3,
    }
}

fn item(id: &str) -> Item {
    Item {
        id: id.into(),
        name: format!("Product {id}"),
        description: None,
        image: format!("{id}.jpg"),
        thumbnail: Some(format!("thumbs/{id}.jpg")),
        fields: Default::default(),
    }
}

/// Three products: a looks like the query, b's name reads like it, c is neither.
fn sample() -> Catalog {
    let vectors = vec![
        (unit(&[1.0, 0.0, 0.0]), unit(&[0.0, 1.0, 0.0])),
        (unit(&[0.0, 1.0, 0.0]), unit(&[1.0, 0.2, 0.0])),
        (unit(&[0.0, 0.0, 1.0]), unit(&[0.0, 0.0, 1.0])),
    ];
    Catalog::new(
        model_info(),
        PreprocessConfig::default(),
        RankingDefaults::default(),
        vec![item("a"), item("b"), item("c")],
        &vectors,
    )
    .unwrap()
}

#[test]
fn round_trip_through_files() {
    let c = sample();
    let back = Catalog::from_parts(c.manifest_json().as_bytes(), &c.vectors_bytes()).unwrap();
    assert_eq!(back.manifest, c.manifest);
    for i in 0..3 {
        assert_eq!(back.image_vector(i), c.image_vector(i));
        assert_eq!(back.name_vector(i), c.name_vector(i));
    }
    assert!(back.vector_problems().is_empty());
    assert_eq!(c.vectors_bytes().len(), 3 * 2 * 3 * 4);
}

#[test]
fn fused_score_prefers_the_label_with_default_weights() {
    let c = sample();
    let q = unit(&[1.0, 0.0, 0.0]);
    let r = rank(&c, &q, FusionWeights { text: 1.5, image: 0.5 }, 5, 0.0);
    let order: Vec<&str> = r.matches.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(order, ["b", "a", "c"]);
    let b = &r.matches[0];
    let cos_name = 1.0 / (1.0f32 + 0.04).sqrt();
    assert!((b.text_similarity - cos_name).abs() < 1e-6);
    assert!(b.image_similarity.abs() < 1e-6);
    assert!((b.score - 1.5 * cos_name).abs() < 1e-6);
    assert!((b.text_contribution + b.image_contribution - b.score).abs() < 1e-6);
    // Image only: the look-alike wins.
    let r = rank(&c, &q, FusionWeights { text: 0.0, image: 1.0 }, 1, 0.0);
    assert_eq!(r.matches.len(), 1);
    assert_eq!(r.matches[0].id, "a");
    assert!((r.matches[0].score - 1.0).abs() < 1e-6);
}

#[test]
fn no_confident_match_under_the_threshold() {
    let c = sample();
    let q = unit(&[0.0, 0.0, -1.0]);
    let r = rank(&c, &q, FusionWeights { text: 1.5, image: 0.5 }, 5, 0.2);
    assert!(!r.confident);
    let r = rank(&c, &unit(&[0.0, 0.0, 1.0]), FusionWeights { text: 1.5, image: 0.5 }, 5, 0.2);
    assert!(r.confident);
    assert_eq!(r.matches[0].id, "c");
}

#[test]
fn ties_keep_catalog_order_and_k_is_bounded() {
    let v = unit(&[1.0, 1.0, 1.0]);
    let vectors = vec![(v.clone(), v.clone()); 4];
    let items = ["w", "x", "y", "z"].map(item).to_vec();
    let c = Catalog::new(model_info(), PreprocessConfig::default(), RankingDefaults::default(), items, &vectors).unwrap();
    let r = rank(&c, &v, FusionWeights { text: 1.0, image: 1.0 }, 10, 0.0);
    let order: Vec<usize> = r.matches.iter().map(|m| m.index).collect();
    assert_eq!(order, [0, 1, 2, 3]);
    let r = rank(&c, &v, FusionWeights { text: 1.0, image: 1.0 }, 2, 0.0);
    assert_eq!(r.matches.iter().map(|m| m.index).collect::<Vec<_>>(), [0, 1]);
}

#[test]
fn leave_one_out_threshold_is_a_score_of_another_item() {
    let c = sample();
    let t = leave_one_out_threshold(&c, FusionWeights { text: 1.5, image: 0.5 });
    assert!(t.is_finite() && t > -2.0 && t < 2.0);
}

fn expect_err(manifest: &str, vectors: &[u8]) -> CatalogError {
    Catalog::from_parts(manifest.as_bytes(), vectors).err().expect("must be refused")
}

#[test]
fn unknown_version_is_refused() {
    let c = sample();
    let m = c.manifest_json().replace(&format!("\"version\": {VERSION}"), "\"version\": 7");
    let err = expect_err(&m, &c.vectors_bytes());
    assert!(matches!(err, CatalogError::UnsupportedVersion { version: 7, .. }), "{err}");
    let err = expect_err("{\"hello\": 1}", &c.vectors_bytes());
    assert!(matches!(err, CatalogError::UnsupportedVersion { .. }), "{err}");
    let err = expect_err("not json", &c.vectors_bytes());
    assert!(matches!(err, CatalogError::Manifest(_)), "{err}");
}

#[test]
fn truncated_or_oversized_vectors_are_refused() {
    let c = sample();
    let bytes = c.vectors_bytes();
    let err = expect_err(&c.manifest_json(), &bytes[..bytes.len() - 4]);
    assert!(err.to_string().contains("truncated"), "{err}");
    let mut bigger = bytes.clone();
    bigger.extend_from_slice(&[0; 24]);
    let err = expect_err(&c.manifest_json(), &bigger);
    assert!(err.to_string().contains("larger"), "{err}");
    let mut flipped = bytes;
    flipped[5] ^= 1;
    let err = expect_err(&c.manifest_json(), &flipped);
    assert!(err.to_string().contains("sha256"), "{err}");
}

#[test]
fn unsupported_dtype_is_refused() {
    let c = sample();
    let m = c.manifest_json().replace("\"dtype\": \"f32\"", "\"dtype\": \"q4\"");
    let err = expect_err(&m, &c.vectors_bytes());
    assert!(matches!(err, CatalogError::UnsupportedDtype(_)), "{err}");
}

#[test]
fn another_model_is_refused() {
    let c = sample();
    let p = PreprocessConfig::default();
    assert!(c.check_model(3, Some(&"aa".repeat(32)), &p).is_ok());
    assert!(c.check_model(3, Some(&"bb".repeat(32)), &p).is_ok(), "equivalent weights");
    assert!(c.check_model(3, None, &p).is_ok());
    let err = c.check_model(512, None, &p).unwrap_err();
    assert!(matches!(err, CatalogError::DimensionMismatch { catalog_dim: 3, model_dim: 512 }), "{err}");
    let err = c.check_model(3, Some(&"cc".repeat(32)), &p).unwrap_err();
    assert!(err.to_string().contains("test-model"), "{err}");
    let other = PreprocessConfig { shortest_edge: 336, ..p };
    let err = c.check_model(3, None, &other).unwrap_err();
    assert!(matches!(err, CatalogError::PreprocessMismatch { .. }), "{err}");
}

#[test]
fn duplicate_ids_are_refused() {
    let v = unit(&[1.0, 0.0, 0.0]);
    let err = Catalog::new(
        model_info(),
        PreprocessConfig::default(),
        RankingDefaults::default(),
        vec![item("a"), item("a")],
        &[(v.clone(), v.clone()), (v.clone(), v)],
    )
    .unwrap_err();
    assert!(err.to_string().contains("twice"), "{err}");
}

/// The sample catalog in i8: what `clipmatch build` writes by default.
fn sample_i8() -> Catalog {
    sample().with_dtype(VectorDtype::I8, ScaleRule::default()).unwrap()
}

#[test]
fn i8_catalog_round_trips_and_ranks_like_f32() {
    let f = sample();
    let c = sample_i8();
    assert_eq!(c.dtype(), VectorDtype::I8);
    assert_eq!(Some(c.vectors_bytes().len()), vectors_file_size(3, 3, VectorDtype::I8));
    let m: serde_json::Value = serde_json::from_str(&c.manifest_json()).unwrap();
    assert_eq!(m["version"], 2);
    assert_eq!(m["vectors"]["dtype"], "i8");
    assert!(m["vectors"]["scales"]["image"].as_f64().unwrap() > 0.0 && m["vectors"]["scales"]["text"].as_f64().unwrap() > 0.0);
    assert_eq!(m["vectors"]["offsets"]["image"].as_array().unwrap().len(), 3);
    let back = Catalog::from_parts(c.manifest_json().as_bytes(), &c.vectors_bytes()).unwrap();
    assert_eq!(back.manifest, c.manifest);
    assert_eq!(back.vectors(), c.vectors());
    assert!(back.vector_problems().is_empty(), "{:?}", back.vector_problems());
    for q in [unit(&[1.0, 0.0, 0.0]), unit(&[0.3, -0.2, 0.9]), unit(&[0.0, 0.0, -1.0])] {
        for w in [FusionWeights { text: 1.5, image: 0.5 }, FusionWeights { text: 0.0, image: 1.0 }, FusionWeights { text: -1.0, image: 2.0 }] {
            let (a, b) = (rank(&f, &q, w, 5, 0.0), rank(&back, &q, w, 5, 0.0));
            assert_eq!(a.matches.iter().map(|m| m.index).collect::<Vec<_>>(), b.matches.iter().map(|m| m.index).collect::<Vec<_>>());
            for (x, y) in a.matches.iter().zip(&b.matches) {
                assert!((x.score - y.score).abs() < 0.02, "{} vs {}", x.score, y.score);
                assert!((y.text_contribution + y.image_contribution - y.score).abs() < 1e-5);
            }
        }
    }
    // i8 stays i8; it is not turned back into f32.
    assert!(c.clone().with_dtype(VectorDtype::I8, ScaleRule::default()).is_ok());
    let err = c.with_dtype(VectorDtype::F32, ScaleRule::default()).unwrap_err();
    assert!(err.to_string().contains("--vector-dtype f32"), "{err}");
}

#[test]
fn version_1_catalogs_still_load() {
    let c = sample();
    let m = c.manifest_json().replace(&format!("\"version\": {VERSION}"), "\"version\": 1");
    let back = Catalog::from_parts(m.as_bytes(), &c.vectors_bytes()).unwrap();
    assert_eq!(back.manifest.version, 1);
    assert_eq!(back.dtype(), VectorDtype::F32);
    assert_eq!(back.image_vector(1), c.image_vector(1));
    // Version 1 knew only f32.
    let i8c = sample_i8();
    let m = i8c.manifest_json().replace(&format!("\"version\": {VERSION}"), "\"version\": 1");
    let err = expect_err(&m, &i8c.vectors_bytes());
    assert!(err.to_string().contains("f32 vectors only"), "{err}");
}

/// Synthetic catalogs exist natively, and in wasm only in the benchmarks' build (`--features bench`).
#[cfg(any(not(target_arch = "wasm32"), feature = "bench"))]
#[test]
fn i8_items_take_1024_bytes_at_512_dims() {
    assert_eq!(vectors_file_size(1, 512, VectorDtype::I8), Some(1024));
    assert_eq!(vectors_file_size(1, 512, VectorDtype::F32), Some(4096));
    let c = clipmatch::search::synthetic::catalog(10, 512, 7, VectorDtype::I8).unwrap();
    assert_eq!(c.vectors_bytes().len(), 10 * 1024);
    assert!(c.vector_problems().is_empty(), "{:?}", c.vector_problems());
}

#[test]
fn bad_i8_catalogs_are_refused() {
    let c = sample_i8();
    let json = c.manifest_json();
    let bytes = c.vectors_bytes();
    // Missing scales.
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["vectors"].as_object_mut().unwrap().remove("scales");
    let err = expect_err(&v.to_string(), &bytes);
    assert!(matches!(err, CatalogError::Invalid(_)) && err.to_string().contains("needs vectors.scales"), "{err}");
    // Half the scales, zero, negative.
    v["vectors"]["scales"] = serde_json::json!({ "image": 0.01 });
    assert!(matches!(expect_err(&v.to_string(), &bytes), CatalogError::Manifest(_)));
    for bad in [0.0, -0.01] {
        v["vectors"]["scales"] = serde_json::json!({ "image": 0.01, "text": bad });
        let err = expect_err(&v.to_string(), &bytes);
        assert!(err.to_string().contains("positive finite"), "{err}");
    }
    // Offsets of another dimension, or not numbers.
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["vectors"]["offsets"]["text"] = serde_json::json!([0.1, 0.2]);
    let err = expect_err(&v.to_string(), &bytes);
    assert!(err.to_string().contains("3 values per kind"), "{err}");
    v["vectors"]["offsets"]["text"] = serde_json::json!([0.1, "x", 0.2]);
    assert!(matches!(expect_err(&v.to_string(), &bytes), CatalogError::Manifest(_)));
    // Without offsets (optional), values are q x scale: the catalog loads.
    v["vectors"].as_object_mut().unwrap().remove("offsets");
    v["vectors"]["sha256"] = "".into();
    assert!(Catalog::from_parts(v.to_string().as_bytes(), &bytes).is_ok());
    // f32-sized file for an i8 manifest, and the other way round.
    let err = expect_err(&json, &sample().vectors_bytes());
    assert!(matches!(err, CatalogError::VectorsSize { dtype_bytes: 1, .. }) && err.to_string().contains("larger"), "{err}");
    let err = expect_err(&json, &bytes[..bytes.len() - 1]);
    assert!(err.to_string().contains("truncated") && err.to_string().contains("x 1 bytes"), "{err}");
    let f = sample();
    let err = expect_err(&f.manifest_json(), &bytes);
    assert!(matches!(err, CatalogError::VectorsSize { dtype_bytes: 4, .. }), "{err}");
    // Unknown dtype.
    let m = json.replace("\"dtype\": \"i8\"", "\"dtype\": \"int4\"");
    let err = expect_err(&m, &bytes);
    assert!(matches!(err, CatalogError::UnsupportedDtype(_)) && err.to_string().contains("\"i8\" and \"f32\""), "{err}");
    // -128 is outside the symmetric range (with the sha256 left out, so only the value is wrong).
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["vectors"]["sha256"] = "".into();
    let mut damaged = bytes.clone();
    damaged[0] = 0x80;
    let err = expect_err(&v.to_string(), &damaged);
    assert!(err.to_string().contains("-128"), "{err}");
}

#[cfg(any(not(target_arch = "wasm32"), feature = "bench"))]
#[test]
fn ranking_a_synthetic_catalog_keeps_the_exact_top_k() {
    // The fast pass (i16 query against i8 values) picks the same top 5, in the same order, as
    // exact scores against the de-quantised vectors; ties keep catalog order.
    let c = clipmatch::search::synthetic::catalog(2000, 64, 3, VectorDtype::I8).unwrap();
    let w = FusionWeights { text: 1.5, image: 0.5 };
    for seed in 0..5 {
        let q = clipmatch::search::synthetic::Rng::new(100 + seed).unit_vector(64);
        let r = rank(&c, &q, w, 5, 0.0);
        let mut exact: Vec<(usize, f32)> = (0..c.len())
            .map(|i| {
                let t: f32 = q.iter().zip(c.name_vector(i).iter()).map(|(a, b)| a * b).sum();
                let m: f32 = q.iter().zip(c.image_vector(i).iter()).map(|(a, b)| a * b).sum();
                (i, w.text * t + w.image * m)
            })
            .collect();
        exact.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        assert_eq!(r.matches.iter().map(|m| m.index).collect::<Vec<_>>(), exact[..5].iter().map(|e| e.0).collect::<Vec<_>>());
        for (m, e) in r.matches.iter().zip(&exact) {
            assert!((m.score - e.1).abs() < 1e-5);
        }
    }
}

/// One limit on `catalog.json`, shared by the writer and every reader: a catalog whose manifest
/// would be larger is not written, and a larger manifest is not read, each said in one line.
#[test]
fn manifests_over_the_shared_limit_are_neither_written_nor_read() {
    use clipmatch::search::catalog::MAX_MANIFEST_BYTES;
    let d = unit(&[1.0, 0.0, 0.0]);
    let items: Vec<Item> = (0..700).map(|i| Item { description: Some("d".repeat(100_000)), ..item(&format!("p{i}")) }).collect();
    let vectors = vec![(d.clone(), d); 700];
    let big = Catalog::new(model_info(), PreprocessConfig::default(), RankingDefaults::default(), items, &vectors).unwrap();
    let err = big.manifest_file().unwrap_err();
    assert!(matches!(err, CatalogError::ManifestTooLarge { bytes, .. } if bytes > MAX_MANIFEST_BYTES as u64), "{err}");
    assert_eq!(err.to_string(), "its catalog.json would take 70.1 MB, over the 64 MiB (67.1 MB) a catalog's manifest may take");
    let json = big.manifest_json();
    let err = Catalog::from_parts(json.as_bytes(), &big.vectors_bytes()).unwrap_err().to_string();
    assert_eq!(err, "catalog.json takes 70.1 MB, over the 64 MiB (67.1 MB) a catalog's manifest may take");
    // Ordinary catalogs are written as they always were.
    assert_eq!(sample().manifest_file().unwrap(), sample().manifest_json());
}

/// What `build` counts before it embeds anything: a list's items take in the manifest what
/// `items_bytes` says (with the sources' sha256 lines, at most the head of that entry more).
#[test]
fn items_take_in_the_manifest_what_the_estimate_says() {
    use clipmatch::search::catalog::{items_bytes, SourcesRecord};
    let items: Vec<Item> = (0..40)
        .map(|i| Item {
            name: format!("Product \"{i}\"\n"),
            description: (i % 3 == 0).then(|| "é".repeat(i)),
            fields: [("url".to_string(), format!("/p/{i}"))].into_iter().take(i % 2).collect(),
            ..item(&format!("p{i}"))
        })
        .collect();
    let model = ModelInfo { embedding_dim: 1, ..model_info() };
    let catalog = |items: Vec<Item>| {
        let values = vec![1.0; 2 * items.len()];
        Catalog::from_f32(model.clone(), PreprocessConfig::default(), RankingDefaults::default(), items, values).unwrap()
    };
    let (empty, mut full) = (catalog(vec![]), catalog(items.clone()));
    // The items add their bytes to the manifest, and "[]" becomes "[\n" ... "\n  ]".
    let added = (full.manifest_json().len() - empty.manifest_json().len()) as u64;
    assert_eq!(items_bytes(items.clone(), false), added - 2);
    full.manifest.sources = Some(SourcesRecord { engine: "ours".into(), thumbnail_side: 256, image_sha256: vec!["ab".repeat(32); 40] });
    let added = (full.manifest_json().len() - empty.manifest_json().len()) as u64;
    let estimate = items_bytes(items, true);
    assert!(estimate <= added && added - estimate < 100, "{estimate} of {added}");
}
