//! Compact codes: the first pass over product-quantised codes and the exact re-ranking of its
//! short list, on seeded CLIP-like clustered catalogs (also in Chromium: no files).

use clipmatch::search::catalog::{Catalog, Item, ModelInfo, RankingDefaults, ScaleRule, VectorDtype};
use clipmatch::search::compact::clustered::{Clustered, ClusteredSpec};
use clipmatch::search::compact::rank::{rank_codes_only, rank_compact, recall, shortlist};
use clipmatch::search::compact::{CompactCodes, TrainingParams, DEFAULT_TRAINING};
use clipmatch::search::rank::{rank, FusionWeights};
use clipmatch::search::synthetic::Rng;
use clipmatch::models::config::PreprocessConfig;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const WEIGHTS: FusionWeights = FusionWeights { text: 1.5, image: 0.5 };

fn i8_catalog(c: &Clustered) -> Catalog {
    let items = (0..c.items())
        .map(|i| Item { id: format!("item-{i}"), name: format!("Item {i}"), description: None, image: format!("{i}.jpg"), thumbnail: None })
        .collect();
    let model = ModelInfo { name: "clustered".into(), weights_sha256: String::new(), equivalent_weights_sha256: Vec::new(), embedding_dim: c.dim };
    Catalog::from_f32(model, PreprocessConfig::default(), RankingDefaults::default(), items, c.values.clone())
        .unwrap()
        .with_dtype(VectorDtype::I8, ScaleRule::default())
        .unwrap()
}

/// A 4,000-item catalog of 512-dim vectors with the default code size (32 bytes a vector).
fn setup() -> (Clustered, Catalog, CompactCodes) {
    let c = Clustered::generate(ClusteredSpec { items: 4000, dim: 512, clusters: 80, seed: 11 });
    let catalog = i8_catalog(&c);
    let codes = CompactCodes::for_catalog(&catalog, TrainingParams { iterations: 10, sample: 4000, ..DEFAULT_TRAINING }).unwrap();
    (c, catalog, codes)
}

#[test]
fn reranked_short_lists_find_the_exact_top_5_and_equal_rank_when_they_hold_it() {
    let (c, catalog, codes) = setup();
    assert_eq!(codes.shape().code_bytes(), 64);
    let mut rng = Rng::new(5);
    let (queries, shortlist_len) = (150, 300);
    let (mut reranked, mut codes_only, mut identical) = (0.0, 0.0, 0);
    for _ in 0..queries {
        let item = (rng.next_u64() % c.items() as u64) as usize;
        let q = c.photo(item, &mut rng);
        let exact = rank(&catalog, &q, WEIGHTS, 5, 0.2);
        let fast = rank_compact(&codes, &catalog, &q, WEIGHTS, 5, 0.2, shortlist_len);
        reranked += recall(&exact, &fast);
        codes_only += recall(&exact, &rank_codes_only(&codes, catalog.items(), &q, WEIGHTS, 5, 0.2));
        let list = shortlist(&codes, &q, WEIGHTS, shortlist_len);
        if exact.matches.iter().all(|m| list.contains(&m.index)) {
            // The short list holds the exact top 5: the answer is rank's, scores and all.
            assert_eq!(fast, exact);
            identical += 1;
        }
    }
    let (reranked, codes_only) = (reranked / queries as f32, codes_only / queries as f32);
    println!("recall@5 of the exact top 5 over {queries} photos: re-ranked from {shortlist_len} {reranked:.4}, codes only {codes_only:.4}; identical to rank: {identical}");
    assert!(reranked >= 0.98, "re-ranked recall {reranked}");
    assert!(codes_only < reranked, "re-ranking must add something: {codes_only} vs {reranked}");
}

#[test]
fn same_seed_same_bytes_other_seed_other_codes() {
    let c = Clustered::generate(ClusteredSpec { items: 1500, dim: 128, clusters: 30, seed: 3 });
    let catalog = i8_catalog(&c);
    let p = TrainingParams { subspaces: 16, centroids: 64, iterations: 5, sample: 1000, seed: 9 };
    let a = CompactCodes::for_catalog(&catalog, p).unwrap().to_bytes();
    let b = CompactCodes::for_catalog(&catalog, p).unwrap().to_bytes();
    assert_eq!(a, b);
    assert_ne!(a, CompactCodes::for_catalog(&catalog, TrainingParams { seed: 10, ..p }).unwrap().to_bytes());
    let again = i8_catalog(&Clustered::generate(ClusteredSpec { items: 1500, dim: 128, clusters: 30, seed: 3 }));
    assert_eq!(CompactCodes::for_catalog(&again, p).unwrap().to_bytes(), a);
}
