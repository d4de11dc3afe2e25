//! Compact codes: the first pass over product-quantised codes and the exact re-ranking of its
//! short list, on seeded CLIP-like clustered catalogs (also in Chromium: no files).

use clipmatch::search::catalog::{Catalog, CompactOptions, Item, ModelInfo, RankingDefaults, ScaleRule, VectorDtype};
use clipmatch::search::compact::page::PageCompactCatalog;
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
        .map(|i| Item { id: format!("item-{i}"), name: format!("Item {i}"), description: None, image: format!("{i}.jpg"), thumbnail: None, fields: Default::default() })
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

/// A small catalog with codes, as `build --compact` makes it, and its page files.
fn compact_catalog() -> (Clustered, Catalog, Vec<u8>, Vec<u8>) {
    let c = Clustered::generate(ClusteredSpec { items: 800, dim: 64, clusters: 16, seed: 4 });
    let p = TrainingParams { subspaces: 8, centroids: 64, iterations: 6, sample: 800, seed: 2 };
    let (catalog, codes) = i8_catalog(&c).with_compact(CompactOptions { training: p, min_items: 100 }).unwrap();
    let page = serde_json::to_vec(&catalog.page_catalog().unwrap()).unwrap();
    (c, catalog, page, codes.to_bytes())
}

#[test]
fn a_catalog_with_codes_reads_back_and_old_manifests_are_unchanged() {
    let (_, catalog, _, codes) = compact_catalog();
    let back = Catalog::from_parts(catalog.manifest_json().as_bytes(), &catalog.vectors_bytes()).unwrap();
    assert_eq!(back.manifest, catalog.manifest);
    let info = back.manifest.compact.as_ref().unwrap();
    assert_eq!((info.subspaces, info.centroids, info.codes.bytes as usize), (8, 64, codes.len()));
    assert_eq!(back.compact_codes(&codes).unwrap().to_bytes(), codes);
    // Damaged, cut or foreign codes are refused in one line.
    let mut damaged = codes.clone();
    damaged[codes.len() - 3] ^= 1;
    for (bad, words) in [(damaged, "sha256"), (codes[..codes.len() - 1].to_vec(), "truncated")] {
        let e = back.compact_codes(&bad).unwrap_err().to_string();
        assert!(e.contains(words) && !e.contains('\n'), "{e}");
    }
    // A manifest whose entry does not fit its catalog is refused at load.
    let json = catalog.manifest_json().replace("\"subspaces\": 8", "\"subspaces\": 7");
    let e = Catalog::from_parts(json.as_bytes(), &catalog.vectors_bytes()).unwrap_err().to_string();
    assert!(e.contains("subspaces must divide"), "{e}");
    // Without codes nothing about them is written.
    let plain = i8_catalog(&Clustered::generate(ClusteredSpec { items: 10, dim: 64, clusters: 2, seed: 1 }));
    assert!(!plain.manifest_json().contains("compact"));
}

#[test]
fn the_page_ranks_from_the_codes_then_exactly_once_the_vectors_arrive() {
    let (c, catalog, page, codes) = compact_catalog();
    let mut paged = PageCompactCatalog::from_parts(&page, &codes).unwrap();
    assert!(!paged.has_vectors());
    let q = c.photo(3, &mut Rng::new(8));
    let first = paged.rank(&q, WEIGHTS, 5, 0.0);
    assert!(first.codes_only);
    let from_codes = rank_codes_only(paged.codes(), catalog.items(), &q, WEIGHTS, 5, 0.0);
    assert_eq!(first.matches.iter().map(|m| (m.index, m.score)).collect::<Vec<_>>(), from_codes.matches.iter().map(|m| (m.index, m.score)).collect::<Vec<_>>());
    // The page's vectors must be the catalog's: others are refused.
    let other = i8_catalog(&Clustered::generate(ClusteredSpec { items: 800, dim: 64, clusters: 16, seed: 5 }));
    assert!(paged.attach_vectors(&other.vectors_bytes()).unwrap_err().to_string().contains("sha256"));
    paged.attach_vectors(&catalog.vectors_bytes()).unwrap();
    let exact = paged.rank(&q, WEIGHTS, 5, 0.0);
    let reference = rank(&catalog, &q, WEIGHTS, 5, 0.0);
    assert!(!exact.codes_only);
    assert_eq!(exact.matches.iter().map(|m| (m.index, m.score)).collect::<Vec<_>>(), reference.matches.iter().map(|m| (m.index, m.score)).collect::<Vec<_>>());
    // Hostile page files: refused in one line.
    let mut damaged = codes.clone();
    damaged[10] ^= 0x40;
    let e = PageCompactCatalog::from_parts(&page, &damaged).err().unwrap().to_string();
    assert!(e.contains("damaged") && !e.contains('\n'), "{e}");
    let text = String::from_utf8(page.clone()).unwrap();
    for (bad, words) in [
        (text.replacen("\"item-0\"", "\"../x\"", 1), "item 1"),
        (text.replacen("\"Item 0\",", "", 1), "ids but"),
        (text.replacen("clipmatch-page-catalog", "clipmatch-catalog", 1), "clipmatch-page-catalog"),
    ] {
        let e = PageCompactCatalog::from_parts(bad.as_bytes(), &codes).err().unwrap().to_string();
        assert!(e.contains(words), "{words}: {e}");
    }
}

#[test]
fn the_page_catalog_carries_item_fields_only_when_there_are_some() {
    let (c, catalog, page, codes) = compact_catalog();
    assert!(!String::from_utf8(page).unwrap().contains("\"fields\""), "no fields, no list");
    let mut manifest = catalog.manifest.clone();
    manifest.items[3].fields = [("price".to_string(), "2.50".to_string()), ("url".to_string(), "/p/3".to_string())].into_iter().collect();
    let with_fields = Catalog::from_parts(&serde_json::to_vec(&manifest).unwrap(), &catalog.vectors_bytes()).unwrap();
    let page = serde_json::to_vec(&with_fields.page_catalog().unwrap()).unwrap();
    let paged = PageCompactCatalog::from_parts(&page, &codes).unwrap();
    let q = c.photo(3, &mut Rng::new(8));
    let ranked = paged.rank(&q, WEIGHTS, 800, 0.0);
    let three = ranked.matches.iter().find(|m| m.index == 3).unwrap();
    assert_eq!(three.fields.get("price"), Some("2.50"));
    assert!(ranked.matches.iter().filter(|m| m.index != 3).all(|m| m.fields.is_empty()));
    // A fields list of another length is refused in one line.
    let mut json: serde_json::Value = serde_json::from_slice(&page).unwrap();
    json["fields"].as_array_mut().unwrap().pop();
    let e = PageCompactCatalog::from_parts(&serde_json::to_vec(&json).unwrap(), &codes).err().unwrap().to_string();
    assert!(e.contains("ids but the fields of 799 items") && !e.contains('\n'), "{e}");
}
