//! Compact codes: the first pass over product-quantised fused codes (alone, as the page answers
//! before the vectors arrive, and with its short list re-ranked exactly), on seeded CLIP-like
//! clustered catalogs (also in Chromium: no files).

use clipmatch::search::catalog::{Catalog, CompactOptions, Item, ModelInfo, RankingDefaults, ScaleRule, VectorDtype};
use clipmatch::search::compact::page::PageCompactCatalog;
use clipmatch::search::compact::clustered::{Clustered, ClusteredSpec};
use clipmatch::search::compact::rank::{rank_codes_only, rank_compact, recall, shortlist};
use clipmatch::search::compact::{CompactCodes, ProductQuantizer, TrainingParams, DEFAULT_RESIDUAL_SUBSPACES, DEFAULT_TRAINING};
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

/// A 4,000-item catalog of 512-dim vectors with the default code size (64 + 16 bytes an item).
fn setup() -> (Clustered, Catalog, CompactCodes) {
    let c = Clustered::generate(ClusteredSpec { items: 4000, dim: 512, clusters: 80, seed: 11 });
    let catalog = i8_catalog(&c);
    let codes = CompactCodes::for_catalog(&catalog, TRAINING, DEFAULT_RESIDUAL_SUBSPACES).unwrap();
    (c, catalog, codes)
}

const TRAINING: TrainingParams = TrainingParams { iterations: 10, sample: 4000, ..DEFAULT_TRAINING };

/// The codes of the first version, for comparison: one quantiser per vector kind (32 bytes each,
/// 64 an item), an item's score `w_text * ADC(name) + w_image * ADC(image)`.
struct PerKindCodes {
    image: ProductQuantizer,
    name: ProductQuantizer,
    codes: Vec<(Vec<u8>, Vec<u8>)>,
}

impl PerKindCodes {
    fn new(c: &Clustered) -> Self {
        let d = c.dim;
        let rows = |k: usize| -> Vec<f32> { c.values.chunks_exact(d).skip(k).step_by(2).flatten().copied().collect() };
        let p = TrainingParams { subspaces: 32, ..TRAINING };
        let (images, names) = (rows(0), rows(1));
        let image = ProductQuantizer::train(&images, d, p).unwrap();
        let name = ProductQuantizer::train(&names, d, TrainingParams { seed: p.seed + 1, ..p }).unwrap();
        let codes = image.encode(&images).chunks_exact(32).zip(name.encode(&names).chunks_exact(32)).map(|(a, b)| (a.to_vec(), b.to_vec())).collect();
        Self { image, name, codes }
    }

    fn top5(&self, q: &[f32]) -> Vec<usize> {
        let (ti, tn) = (self.image.lookup_table(q, WEIGHTS.image), self.name.lookup_table(q, WEIGHTS.text));
        let adc = |t: &[f32], code: &[u8]| -> f32 { code.iter().enumerate().map(|(s, &k)| t[s * 256 + k as usize]).sum() };
        let mut scored: Vec<(f32, usize)> = self.codes.iter().enumerate().map(|(i, (a, b))| (adc(&ti, a) + adc(&tn, b), i)).collect();
        scored.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
        scored.into_iter().take(5).map(|(_, i)| i).collect()
    }
}

#[test]
fn the_fused_codes_alone_find_more_of_the_exact_top_5_than_per_kind_codes_and_short_lists_find_them_all() {
    let (c, catalog, codes) = setup();
    assert_eq!(codes.code_bytes(), 80);
    assert_eq!(codes.weights, WEIGHTS, "the codes are fused with the catalog's ranking weights");
    let old = PerKindCodes::new(&c);
    let mut rng = Rng::new(5);
    let (queries, shortlist_len) = (150, 300);
    let (mut reranked, mut codes_only, mut per_kind, mut identical) = (0.0, 0.0, 0.0, 0);
    for _ in 0..queries {
        let item = (rng.next_u64() % c.items() as u64) as usize;
        let q = c.photo(item, &mut rng);
        let exact = rank(&catalog, &q, WEIGHTS, 5, 0.2);
        let fast = rank_compact(&codes, &catalog, &q, WEIGHTS, 5, 0.2, shortlist_len);
        reranked += recall(&exact, &fast);
        codes_only += recall(&exact, &rank_codes_only(&codes, catalog.items(), &q, 5, 0.2));
        let top = old.top5(&q);
        per_kind += exact.matches.iter().filter(|m| top.contains(&m.index)).count() as f32 / exact.matches.len().max(1) as f32;
        let list = shortlist(&codes, &q, shortlist_len);
        if exact.matches.iter().all(|m| list.contains(&m.index)) {
            // The short list holds the exact top 5: the answer is rank's, scores and all.
            assert_eq!(fast, exact);
            identical += 1;
        }
    }
    let n = queries as f32;
    let (reranked, codes_only, per_kind) = (reranked / n, codes_only / n, per_kind / n);
    println!("recall@5 of the exact top 5 over {queries} photos: codes alone {codes_only:.4} (per-kind 64-byte codes {per_kind:.4}); re-ranked from {shortlist_len} {reranked:.4}; identical to rank: {identical}");
    assert!(codes_only >= 0.6, "recall of the codes alone {codes_only}");
    assert!(codes_only >= per_kind + 0.1, "fused {codes_only} vs per-kind {per_kind}");
    assert!(reranked >= 0.99, "re-ranked recall {reranked}");
}

#[test]
fn same_seed_same_bytes_other_seed_other_codes() {
    let c = Clustered::generate(ClusteredSpec { items: 1500, dim: 128, clusters: 30, seed: 3 });
    let catalog = i8_catalog(&c);
    let p = TrainingParams { subspaces: 16, centroids: 64, iterations: 5, sample: 1000, seed: 9 };
    let a = CompactCodes::for_catalog(&catalog, p, 8).unwrap().to_bytes();
    let b = CompactCodes::for_catalog(&catalog, p, 8).unwrap().to_bytes();
    assert_eq!(a, b);
    assert_ne!(a, CompactCodes::for_catalog(&catalog, TrainingParams { seed: 10, ..p }, 8).unwrap().to_bytes());
    let again = i8_catalog(&Clustered::generate(ClusteredSpec { items: 1500, dim: 128, clusters: 30, seed: 3 }));
    assert_eq!(CompactCodes::for_catalog(&again, p, 8).unwrap().to_bytes(), a);
}

/// A small catalog with codes, as `build --compact` makes it, and its page files.
fn compact_catalog() -> (Clustered, Catalog, Vec<u8>, Vec<u8>) {
    let c = Clustered::generate(ClusteredSpec { items: 800, dim: 64, clusters: 16, seed: 4 });
    let p = TrainingParams { subspaces: 8, centroids: 64, iterations: 6, sample: 800, seed: 2 };
    let (catalog, codes) = i8_catalog(&c).with_compact(CompactOptions { training: p, residual_subspaces: 8, min_items: 100 }).unwrap();
    let page = serde_json::to_vec(&catalog.page_catalog().unwrap()).unwrap();
    (c, catalog, page, codes.to_bytes())
}

#[test]
fn a_catalog_with_codes_reads_back_and_old_manifests_are_unchanged() {
    let (_, catalog, _, codes) = compact_catalog();
    let back = Catalog::from_parts(catalog.manifest_json().as_bytes(), &catalog.vectors_bytes()).unwrap();
    assert_eq!(back.manifest, catalog.manifest);
    let info = back.manifest.compact.as_ref().unwrap();
    assert_eq!((info.subspaces, info.residual_subspaces, info.centroids, info.codes.bytes as usize), (8, 8, 64, codes.len()));
    assert_eq!((info.text_weight, info.image_weight), (WEIGHTS.text, WEIGHTS.image));
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
    // Per-kind codes of the first layout are refused, saying how to make them again.
    let json = catalog.manifest_json().replace("one fused vector per item", "image codebook then name codebook");
    let e = Catalog::from_parts(json.as_bytes(), &catalog.vectors_bytes()).unwrap_err().to_string();
    assert!(e.contains("older layout") && e.contains("--compact") && !e.contains('\n'), "{e}");
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
    let from_codes = rank_codes_only(paged.codes(), catalog.items(), &q, 5, 0.0);
    assert_eq!(first.matches.iter().map(|m| (m.index, m.score)).collect::<Vec<_>>(), from_codes.matches.iter().map(|m| (m.index, m.score)).collect::<Vec<_>>());
    // Other weights before the vectors: the codes' own answer, saying which weights it used.
    let images_only = FusionWeights { text: 0.0, image: 1.0 };
    let approx = paged.rank(&q, images_only, 5, 0.0);
    assert_eq!((approx.weights, approx.codes_only), (WEIGHTS, true));
    assert_eq!(approx.matches, first.matches);
    // The page's vectors must be the catalog's: others are refused.
    let other = i8_catalog(&Clustered::generate(ClusteredSpec { items: 800, dim: 64, clusters: 16, seed: 5 }));
    assert!(paged.attach_vectors(&other.vectors_bytes()).unwrap_err().to_string().contains("sha256"));
    paged.attach_vectors(&catalog.vectors_bytes()).unwrap();
    for weights in [WEIGHTS, images_only] {
        let exact = paged.rank(&q, weights, 5, 0.0);
        let reference = rank(&catalog, &q, weights, 5, 0.0);
        assert!(!exact.codes_only);
        assert_eq!(exact.weights, weights);
        assert_eq!(exact.matches.iter().map(|m| (m.index, m.score)).collect::<Vec<_>>(), reference.matches.iter().map(|m| (m.index, m.score)).collect::<Vec<_>>());
    }
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
