//! `eval` / `tune` on planted data whose answer is known: synthetic embeddings built so that
//! one text-weight share and one threshold are best; folds that never split a product; the
//! evaluation's scores equal to `rank`'s. Natively and, through `wasm-pack test`, in Chromium.

use std::collections::HashMap;

use clipmatch::search::catalog::{Item, ModelInfo, RankingDefaults, UtcSeconds, VectorDtype};
use clipmatch::search::eval::folds::grouped_folds;
use clipmatch::search::eval::tuning::cross_validate;
use clipmatch::search::eval::{evaluate, Method, Similarities, TuneOptions, Truth};
use clipmatch::search::synthetic::{self, Rng};
use clipmatch::{rank, Catalog, FusionWeights, PreprocessConfig};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// The planted best share of the text weight, and the planted threshold.
const BEST_SHARE: f32 = 0.4;
const BEST_THRESHOLD: f32 = 0.60;
/// What `tune` must find: the share within 0.05 (two grid steps), the threshold within 0.005.
const SHARE_TOLERANCE: f32 = 0.05;
const THRESHOLD_TOLERANCE: f32 = 0.005;

const PRODUCTS: usize = 24;
const PHOTOS_EACH: usize = 4;
const UNKNOWN_PHOTOS: usize = 10;

fn uniform(rng: &mut Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32
}

/// Three distinct items other than `not`.
fn three_others(rng: &mut Rng, not: usize) -> [usize; 3] {
    let mut out = Vec::new();
    while out.len() < 3 {
        let i = (rng.next_u64() % PRODUCTS as u64) as usize;
        if i != not && !out.contains(&i) {
            out.push(i);
        }
    }
    [out[0], out[1], out[2]]
}

/// A catalog whose item `i` has name vector e(2i) and image vector e(2i+1) (one spare
/// dimension), stored as f32 and weighted 1.5 / 0.5 (text share 0.75, far from the best).
fn planted_catalog() -> Catalog {
    let dim = 2 * PRODUCTS + 1;
    let basis = |k: usize| (0..dim).map(|j| if j == k { 1.0 } else { 0.0 }).collect::<Vec<f32>>();
    let pairs: Vec<(Vec<f32>, Vec<f32>)> = (0..PRODUCTS).map(|i| (basis(2 * i + 1), basis(2 * i))).collect();
    let items = (0..PRODUCTS)
        .map(|i| Item { id: format!("p{i}"), name: format!("Product {i}"), description: None, image: format!("p{i}.jpg"), thumbnail: None, fields: Default::default() })
        .collect();
    let model = ModelInfo { name: "planted".into(), weights_sha256: String::new(), equivalent_weights_sha256: vec![], embedding_dim: dim };
    let ranking = RankingDefaults { min_score: 0.3, ..RankingDefaults::default() };
    Catalog::new(model, PreprocessConfig::default(), ranking, items, &pairs).unwrap()
}

/// A unit photo vector with the given (name, image) cosines to some items; the spare
/// dimension takes up the rest of its length.
fn photo(cosines: &[(usize, f32, f32)]) -> Vec<f32> {
    let dim = 2 * PRODUCTS + 1;
    let mut v = vec![0.0f32; dim];
    for &(i, t, m) in cosines {
        v[2 * i] += t;
        v[2 * i + 1] += m;
    }
    let used: f32 = v.iter().map(|x| x * x).sum();
    assert!(used < 1.0, "planted cosines too large: {used}");
    v[dim - 1] = (1.0 - used).sqrt();
    v
}

/// Photos of every product, planted so that its product wins exactly while the text share lies
/// in a window around [`BEST_SHARE`] (each photo its own, from 0.06 to 0.3 wide on either
/// side): a text-heavy rival A wins above it, an image-heavy rival B below. With the weights
/// summing to 2, the product scores 0.61 at any share, and a decoy D scores 0.59 at any share,
/// above A and B inside the windows: left out, a photo's best score is 0.59. Photos of unknown
/// products score 0.59 at best too. So 0.60 separates right answers from wrong ones.
fn planted_photos(seed: u64) -> Vec<(Truth, Vec<f32>)> {
    let (g, h, eps) = (0.305f32, 0.295f32, 0.4f32);
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for i in 0..PRODUCTS {
        for _ in 0..PHOTOS_EACH {
            let lo = BEST_SHARE - uniform(&mut rng, 0.06, 0.3);
            let hi = BEST_SHARE + uniform(&mut rng, 0.06, 0.3);
            let [a, b, d] = three_others(&mut rng, i);
            // Product minus A is eps * (hi - share): positive below hi. Product minus B is
            // eps * (share - lo): positive above lo.
            let v = photo(&[
                (i, g, g),
                (a, g + eps * (1.0 - hi), g - eps * hi),
                (b, g - eps * (1.0 - lo), g + eps * lo),
                (d, h, h),
            ]);
            out.push((Truth::Item(i), v));
        }
    }
    for k in 0..UNKNOWN_PHOTOS {
        out.push((Truth::NotInCatalog, photo(&[(k % PRODUCTS, h, h)])));
    }
    out
}

fn options(seed: u64) -> TuneOptions {
    TuneOptions { confident_precision: 0.9, folds: 5, seed, weight_sum: 2.0, steps: TuneOptions::STEPS }
}

#[test]
fn tune_finds_the_planted_weights_and_threshold() {
    let catalog = planted_catalog();
    for seed in [1, 2, 3] {
        let sims = Similarities::new(&catalog, planted_photos(seed)).unwrap();
        let ev = evaluate(&sims, &catalog.manifest.ranking, &options(seed)).unwrap();
        let tuned = ev.tuned.as_ref().expect("tuned");
        let p = tuned.point;
        assert!((p.text_share - BEST_SHARE).abs() <= SHARE_TOLERANCE, "seed {seed}: share {}", p.text_share);
        assert!((p.weights.text + p.weights.image - 2.0).abs() < 1e-6, "{:?}", p.weights);
        assert!((p.min_score - BEST_THRESHOLD).abs() <= THRESHOLD_TOLERANCE, "seed {seed}: threshold {}", p.min_score);
        assert!(p.target_met);
        // Every fold, choosing without its products, finds them too.
        assert_eq!(tuned.folds, 5);
        for f in &tuned.per_fold {
            assert!((f.text_share - BEST_SHARE).abs() <= SHARE_TOLERANCE, "seed {seed}: fold share {}", f.text_share);
            assert!((f.min_score - BEST_THRESHOLD).abs() <= THRESHOLD_TOLERANCE, "seed {seed}: fold threshold {}", f.min_score);
        }
        // Held out, the tuned weights rank every product first and the threshold is exact; the
        // catalog's 1.5 / 0.5 (share 0.75) is outside every window.
        let held_out = ev.method(Method::Tuned).unwrap();
        assert!(held_out.held_out);
        assert_eq!(held_out.ranking.top1, 1.0, "seed {seed}");
        let t = held_out.threshold.unwrap();
        assert_eq!((t.confident_precision, t.confident_recall, t.not_in_catalog_recall), (Some(1.0), Some(1.0), Some(1.0)));
        assert_eq!((t.in_catalog, t.not_in_catalog), (96, 96 + UNKNOWN_PHOTOS));
        assert_eq!(ev.method(Method::Catalog).unwrap().ranking.top1, 0.0, "seed {seed}");
        // Both single signals lose too: image only is below every window, text only above.
        assert_eq!(ev.method(Method::ImageOnly).unwrap().ranking.top1, 0.0);
        assert_eq!(ev.method(Method::TextOnly).unwrap().ranking.top1, 0.0);
        // The curve peaks at the planted share.
        let peak = ev.curve.iter().max_by(|a, b| a.ranking.top1.total_cmp(&b.ranking.top1)).unwrap();
        assert_eq!(peak.ranking.top1, 1.0);
        assert!((peak.text_share - BEST_SHARE).abs() <= 0.1, "{}", peak.text_share);
        // All the catalog's misses are listed, worst first: every photo of a product, then the
        // unknown products matched confidently (0.59 is over the catalog's threshold of 0.3).
        assert_eq!(ev.misses.len(), PRODUCTS * PHOTOS_EACH + UNKNOWN_PHOTOS);
        assert!(ev.misses.windows(2).all(|w| w[0].truth_rank >= w[1].truth_rank));
        assert!(ev.misses[PRODUCTS * PHOTOS_EACH..].iter().all(|m| m.truth.is_none() && m.confident));

        // What `tune` writes: the operating point, and the figures that justify it.
        let r = ev.tuned_ranking(&catalog.manifest.ranking, UtcSeconds(1_782_830_705)).unwrap();
        assert_eq!((r.text_weight, r.image_weight, r.min_score, r.top_k), (p.weights.text, p.weights.image, p.min_score, 5));
        let rec = r.tuned.unwrap();
        assert_eq!((rec.photos, rec.not_in_catalog_photos, rec.products, rec.folds), (106, 10, 24, 5));
        assert_eq!((rec.held_out.top1, rec.before.top1, rec.confident_precision_target), (1.0, 0.0, 0.9));
    }
}

#[test]
fn a_stricter_precision_never_lowers_the_threshold() {
    let catalog = planted_catalog();
    let mut photos = planted_photos(7);
    // Unknown products scoring 0.605 at any share: admitted at 0.60 they bring precision to
    // 96 / (96 + 10) = 0.906.
    for k in 0..10 {
        photos.push((Truth::NotInCatalog, photo(&[(k, 0.3025, 0.3025)])));
    }
    let sims = Similarities::new(&catalog, photos).unwrap();
    let at = |target| evaluate(&sims, &catalog.manifest.ranking, &TuneOptions { confident_precision: target, ..options(7) }).unwrap();
    let loose = at(0.9).tuned.unwrap().point.min_score;
    let strict = at(0.95).tuned.unwrap().point.min_score;
    assert!((loose - 0.6).abs() <= THRESHOLD_TOLERANCE, "{loose}");
    assert!((strict - 0.6075).abs() <= THRESHOLD_TOLERANCE, "{strict}");
}

/// Random group sizes and fold counts: every photo in exactly one fold, every product's
/// photos in one fold, no empty fold, folds within one largest product of each other.
#[test]
fn folds_never_split_a_product() {
    for seed in 0..300u64 {
        let mut rng = Rng::new(seed);
        let groups_n = 1 + (rng.next_u64() % 40) as usize;
        let mut groups: Vec<usize> = (0..groups_n).flat_map(|g| std::iter::repeat_n(g, 1 + (rng.next_u64() % 8) as usize)).collect();
        for i in (1..groups.len()).rev() {
            groups.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let k = 2 + (rng.next_u64() % 9) as usize;
        let first = |g: usize| g % 5 != 4;
        let folds = grouped_folds(&groups, first, k, seed);
        assert_eq!(folds.len(), k.min(groups_n), "seed {seed}");
        assert!(folds.iter().all(|f| !f.is_empty()), "seed {seed}");
        let mut fold_of = vec![usize::MAX; groups.len()];
        for (f, photos) in folds.iter().enumerate() {
            for &p in photos {
                assert_eq!(fold_of[p], usize::MAX, "seed {seed}: photo {p} in two folds");
                fold_of[p] = f;
            }
        }
        assert!(fold_of.iter().all(|&f| f != usize::MAX), "seed {seed}: a photo in no fold");
        let mut product_fold: HashMap<usize, usize> = HashMap::new();
        for (p, &g) in groups.iter().enumerate() {
            assert_eq!(*product_fold.entry(g).or_insert(fold_of[p]), fold_of[p], "seed {seed}: group {g} split");
        }
        let sizes: Vec<usize> = folds.iter().map(Vec::len).collect();
        let largest = (0..groups_n).map(|g| groups.iter().filter(|&&x| x == g).count()).max().unwrap();
        assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= largest, "seed {seed}: {sizes:?}");
        let firsts = (0..groups_n).filter(|&g| first(g)).count();
        if firsts >= folds.len() {
            for (f, photos) in folds.iter().enumerate() {
                assert!(photos.iter().any(|&p| first(groups[p])), "seed {seed}: fold {f} has no product placed first");
            }
        }
    }
}

/// Cross-validation holds out whole products: each fold's choice is made without any photo
/// of the products it is measured on (checked through the folds `tune` uses).
#[test]
fn cross_validation_keeps_products_apart() {
    let catalog = planted_catalog();
    let sims = Similarities::new(&catalog, planted_photos(5)).unwrap();
    for seed in 0..20 {
        let opts = TuneOptions { folds: 2 + seed as usize % 6, ..options(seed) };
        let folds = clipmatch::search::eval::tuning::folds_of(&sims, &opts);
        for (f, fold) in folds.iter().enumerate() {
            for (g, other) in folds.iter().enumerate().filter(|(g, _)| *g != f) {
                for &p in fold {
                    if let Truth::Item(i) = sims.truth(p) {
                        assert!(other.iter().all(|&q| sims.truth(q) != Truth::Item(i)), "product {i} in folds {f} and {g}");
                    }
                }
            }
        }
        let cv = cross_validate(&sims, &opts).unwrap();
        assert_eq!(cv.folds, folds.len());
        assert_eq!(cv.ranking.photos, PRODUCTS * PHOTOS_EACH, "every photo held out once");
    }
}

/// An evaluation's scores are those `rank` (and so `clipmatch query`) reports, on an i8
/// catalog: the same first item and the same score.
#[test]
fn scores_are_ranks_scores() {
    let catalog = synthetic::catalog(50, 32, 11, VectorDtype::I8).unwrap();
    let mut rng = Rng::new(12);
    let photos: Vec<(Truth, Vec<f32>)> = (0..40).map(|k| (Truth::Item(k % 50), rng.unit_vector(32))).collect();
    let queries: Vec<Vec<f32>> = photos.iter().map(|(_, v)| v.clone()).collect();
    let sims = Similarities::new(&catalog, photos).unwrap();
    for w in [FusionWeights { text: 1.5, image: 0.5 }, FusionWeights { text: 0.0, image: 2.0 }, FusionWeights { text: 0.7, image: 1.3 }] {
        for (p, q) in queries.iter().enumerate() {
            let r = rank(&catalog, q, w, 50, 0.0);
            let j = sims.judge(p, w);
            assert_eq!((j.best.0, j.best.1), (r.matches[0].index, r.matches[0].score), "photo {p} at {w:?}");
            let truth = p % 50;
            let place = r.matches.iter().position(|m| m.index == truth).unwrap() + 1;
            assert_eq!(j.truth_rank.map(|(r, _)| r), Some(place), "photo {p} at {w:?}");
            let without = r.matches.iter().find(|m| m.index != truth).unwrap().score;
            assert_eq!(j.best_without_truth, Some(without));
        }
    }
}

#[test]
fn photos_of_one_product_are_evaluated_but_not_tuned() {
    let catalog = planted_catalog();
    let photos: Vec<(Truth, Vec<f32>)> = planted_photos(3).into_iter().filter(|(t, _)| *t == Truth::Item(0)).collect();
    let sims = Similarities::new(&catalog, photos).unwrap();
    let ev = evaluate(&sims, &catalog.manifest.ranking, &options(0)).unwrap();
    assert!(ev.tuned.is_none() && ev.method(Method::Tuned).is_none());
    assert_eq!(ev.method(Method::Catalog).unwrap().ranking.photos, PHOTOS_EACH);
    let e = cross_validate(&sims, &options(0)).unwrap_err().to_string();
    assert_eq!(e, "tuning needs photos of at least 2 catalog products (kept apart across folds); these show 1");
    let none = Similarities::new(&catalog, vec![(Truth::NotInCatalog, photo(&[]))]).unwrap();
    let e = evaluate(&none, &catalog.manifest.ranking, &options(0)).unwrap_err().to_string();
    assert!(e.starts_with("none of the 1 labelled photos shows a product of the catalog"), "{e}");
}
