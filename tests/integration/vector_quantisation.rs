//! i8 catalog vectors against f32: the top 5 (in order) must not change. Prints the largest
//! score difference. Fixture catalog: the fixture images through the tiny CLIP, names from the
//! reference text embeddings. Grocery catalog (where ../shared/data has it): the 31 products
//! built with `clipmatch build` in both dtypes, queried with the 100 photos.

#![cfg(not(target_arch = "wasm32"))]

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use clipmatch::search::catalog::{Item, ModelInfo, RankingDefaults, ScaleRule, VectorDtype};
use clipmatch::kernels::math::l2_normalize;
use clipmatch::search::rank::{rank, FusionWeights};
use clipmatch::search::synthetic::Rng;
use clipmatch::{Catalog, ClipModel, Embedder, PreprocessConfig, Towers};
use common::*;

const WEIGHTS: [FusionWeights; 3] = [
    FusionWeights { text: 1.5, image: 0.5 },
    FusionWeights { text: 0.0, image: 1.0 },
    FusionWeights { text: 1.0, image: 0.0 },
];

fn embedder() -> Embedder {
    let model = ClipModel::load(TINY_CONFIG, TINY_WEIGHTS, Some(Towers::VisionOnly)).unwrap();
    Embedder::new(model, PreprocessConfig::from_json(TINY_PREPROCESSOR).unwrap(), None)
}

/// What i8 storage did to the rankings of a set of queries.
struct Fidelity {
    rankings: usize,
    identical: usize,
    /// Identical top 5 per weighting (the `WEIGHTS` order).
    identical_by_weights: [usize; 3],
    /// Largest difference of a listed item's score, i8 vs f32.
    max_score_diff: f32,
    /// Largest f32 score gap between two items that i8 put in each other's place.
    max_swapped_gap: f32,
}

/// The largest rounding (and clamping) error of any stored value, per kind (image, name).
fn max_value_error(f32c: &Catalog, i8c: &Catalog) -> (f32, f32) {
    let mut e = (0f32, 0f32);
    for i in 0..f32c.len() {
        let d = |a: &[f32], b: &[f32]| a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        e.0 = e.0.max(d(&f32c.image_vector(i), &i8c.image_vector(i)));
        e.1 = e.1.max(d(&f32c.name_vector(i), &i8c.name_vector(i)));
    }
    e
}

/// Ranks every query against both catalogs with every weighting. The top 5 must be the same
/// items in the same order, except where f32 itself has a near-tie that i8 cannot resolve: two
/// items may trade places only if their f32 scores are closer than twice the worst-case score
/// error of the stored values (|w_text| e_name + |w_image| e_image) x ||query||_1.
fn compare(what: &str, f32c: &Catalog, i8c: &Catalog, queries: &[(String, Vec<f32>)]) -> Fidelity {
    let (e_image, e_name) = max_value_error(f32c, i8c);
    let mut f = Fidelity { rankings: 0, identical: 0, identical_by_weights: [0; 3], max_score_diff: 0.0, max_swapped_gap: 0.0 };
    for (name, q) in queries {
        for (k, w) in WEIGHTS.into_iter().enumerate() {
            let a = rank(f32c, q, w, 5, 0.0);
            let b = rank(i8c, q, w, 5, 0.0);
            let all = rank(f32c, q, w, f32c.len(), 0.0);
            let f32_score = |id: &str| all.matches.iter().find(|m| m.id == id).unwrap().score;
            let tie = 2.0 * (w.text.abs() * e_name + w.image.abs() * e_image) * q.iter().map(|x| x.abs()).sum::<f32>();
            f.rankings += 1;
            let same = a.matches.iter().map(|m| &m.id).eq(b.matches.iter().map(|m| &m.id)) as usize;
            f.identical += same;
            f.identical_by_weights[k] += same;
            assert_eq!(a.matches.len(), b.matches.len());
            for (x, y) in a.matches.iter().zip(&b.matches) {
                let gap = (x.score - f32_score(&y.id)).abs();
                assert!(
                    gap <= tie,
                    "{what}: query {name} with {w:?}: i8 lists {} where f32 lists {}, {gap} apart in f32 (near-tie width {tie})",
                    y.id,
                    x.id
                );
                f.max_swapped_gap = f.max_swapped_gap.max(gap);
                f.max_score_diff = f.max_score_diff.max((f32_score(&y.id) - y.score).abs());
            }
        }
    }
    f
}

/// The smallest gap between consecutive scores in the f32 top 6: how close a call it was.
fn smallest_gap(c: &Catalog, queries: &[(String, Vec<f32>)]) -> f32 {
    let mut gap = f32::MAX;
    for (_, q) in queries {
        for w in WEIGHTS {
            let r = rank(c, q, w, 6, 0.0);
            for p in r.matches.windows(2) {
                gap = gap.min(p[0].score - p[1].score);
            }
        }
    }
    gap
}

fn report(what: &str, f32c: &Catalog, i8c: &Catalog, queries: &[(String, Vec<f32>)]) {
    let f = compare(what, f32c, i8c, queries);
    let m = compare(what, f32c, &f32c.to_i8(ScaleRule::MaxAbs), queries);
    println!(
        "{what}: {} items of {} dims, {} queries x {} weightings; i8 scales {:?}\n  \
         top 5 identical to f32 in {}/{} (by weighting 1.5/0.5, 0/1, 1/0: {:?}); max score difference {:.5}; largest f32 gap between swapped items {:.5}\n  \
         (max-|x| scales: identical in {}/{}, max score difference {:.5}, largest swapped gap {:.5}; \
         smallest f32 gap in a top 6: {:.2e})",
        f32c.len(),
        f32c.dim(),
        queries.len(),
        WEIGHTS.len(),
        i8c.manifest.vectors.scales.unwrap(),
        f.identical,
        f.rankings,
        f.identical_by_weights,
        f.max_score_diff,
        f.max_swapped_gap,
        m.identical,
        m.rankings,
        m.max_score_diff,
        m.max_swapped_gap,
        smallest_gap(f32c, queries),
    );
}

#[test]
fn fixture_catalog_top5_is_unchanged_in_i8() {
    let e = embedder();
    let r = reference();
    let mut queries = Vec::new();
    for (file, bytes, _) in IMAGES {
        queries.push((file.to_string(), e.embed_photo(bytes).unwrap()));
    }
    let dim = queries[0].1.len();
    let vectors: Vec<(Vec<f32>, Vec<f32>)> = queries
        .iter()
        .enumerate()
        .map(|(i, (_, v))| {
            let mut name = r.texts[i % r.texts.len()].embedding.clone();
            l2_normalize(&mut name);
            (v.clone(), name)
        })
        .collect();
    let items = queries
        .iter()
        .map(|(f, _)| Item { id: f.replace(['/', '.'], "-"), name: f.clone(), description: None, image: f.clone(), thumbnail: None, fields: Default::default() })
        .collect();
    let model = ModelInfo { name: "tiny".into(), weights_sha256: String::new(), equivalent_weights_sha256: vec![], embedding_dim: dim };
    let f32c = Catalog::new(model, PreprocessConfig::default(), RankingDefaults::default(), items, &vectors).unwrap();
    report("fixture images", &f32c, &f32c.to_i8(ScaleRule::default()), &queries);
}

fn grocery() -> Option<(PathBuf, PathBuf, PathBuf)> {
    let tokenizer = shared_data().join("clip-vit-base-patch32/tokenizer.json");
    let iconic = shared_data().join("grocery-packages/iconic");
    let photos = shared_data().join("grocery-packages/photos");
    if tokenizer.is_file() && iconic.is_dir() && photos.is_dir() {
        Some((tokenizer, iconic, photos))
    } else {
        eprintln!("skipped: the grocery data or the tokenizer is absent under {}", shared_data().display());
        None
    }
}

fn tiny_model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip")
}

fn build(model: &Path, iconic: &Path, tokenizer: &Path, out: &Path, dtype: &str) -> Catalog {
    let o = Command::new(env!("CARGO_BIN_EXE_clipmatch"))
        .args(["build", iconic.to_str().unwrap(), "--name-from", "folder", "--vector-dtype", dtype, "--out", out.to_str().unwrap()])
        .env("CLIPMATCH_MODEL", model)
        .env("CLIPMATCH_TOKENIZER", tokenizer)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Catalog::from_parts(&fs::read(out.join("catalog.json")).unwrap(), &fs::read(out.join("vectors.bin")).unwrap()).unwrap()
}

#[test]
fn grocery_catalog_top5_is_unchanged_in_i8() {
    let Some((tokenizer, iconic, photos)) = grocery() else { return };
    grocery_fidelity("grocery (both built by clipmatch build)", &tiny_model_dir(), embedder(), &tokenizer, &iconic, &photos);
}

/// The same at ViT-B/32's size (512 dimensions, 1024 bytes per item), where a model folder is
/// named by `CLIPMATCH_B32_MODEL` (e.g. the random-weight one `scripts/make_fixtures.py --vit-b32`
/// writes); skipped otherwise, as in CI.
#[test]
fn grocery_catalog_top5_is_unchanged_in_i8_at_vit_b32_size() {
    let Some(dir) = std::env::var_os("CLIPMATCH_B32_MODEL").map(PathBuf::from) else {
        eprintln!("skipped: set CLIPMATCH_B32_MODEL to a ViT-B/32 model folder");
        return;
    };
    let Some((tokenizer, iconic, photos)) = grocery() else { return };
    let config = fs::read_to_string(dir.join("config.json")).unwrap();
    let model = ClipModel::load(&config, &fs::read(dir.join("model.safetensors")).unwrap(), Some(Towers::VisionOnly)).unwrap();
    let preprocess = PreprocessConfig::from_json(&fs::read_to_string(dir.join("preprocessor_config.json")).unwrap()).unwrap();
    let e = Embedder::new(model, preprocess, None);
    grocery_fidelity("grocery at ViT-B/32 size", &dir, e, &tokenizer, &iconic, &photos);
}

fn grocery_fidelity(what: &str, model: &Path, e: Embedder, tokenizer: &Path, iconic: &Path, photos: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let f32c = build(model, iconic, tokenizer, &tmp.path().join("f32"), "f32");
    let i8c = build(model, iconic, tokenizer, &tmp.path().join("i8"), "i8");
    assert_eq!(f32c.len(), 31);
    assert_eq!((f32c.dtype(), i8c.dtype()), (VectorDtype::F32, VectorDtype::I8));
    assert_eq!(fs::metadata(tmp.path().join("i8/vectors.bin")).unwrap().len() as usize, 31 * 2 * f32c.dim());
    // The i8 catalog `build` writes is the f32 one quantised with the default rule.
    assert_eq!(i8c.vectors(), f32c.to_i8(ScaleRule::default()).vectors());
    let mut files: Vec<PathBuf> = walk(photos);
    files.sort();
    let queries: Vec<(String, Vec<f32>)> = files
        .iter()
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), e.embed_photo(&fs::read(p).unwrap()).unwrap()))
        .collect();
    assert!(queries.len() >= 100, "{} photos", queries.len());
    report(what, &f32c, &i8c, &queries);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "jpg") {
            out.push(p);
        }
    }
    out
}

/// `n` pairs of unit vectors of `d` values as a model's look: a direction they share plus noise of
/// `spread`, and with `outliers`, one vector in 40 with one value far out (a tiny model's name
/// vectors have such: clamped to a clipping level chosen for the others, it shortened the vector).
fn model_like(rng: &mut Rng, n: usize, d: usize, spread: f32, outliers: bool) -> Vec<f32> {
    let common = rng.unit_vector(d);
    let mut values = Vec::with_capacity(n * 2 * d);
    for _ in 0..2 * n {
        let noise = rng.unit_vector(d);
        let mut v: Vec<f32> = common.iter().zip(&noise).map(|(c, e)| c + spread * e).collect();
        if outliers && rng.next_u64() % 40 == 0 {
            let j = (rng.next_u64() % d as u64) as usize;
            v[j] += if rng.next_u64() % 2 == 0 { 3.0 } else { -3.0 };
        }
        l2_normalize(&mut v);
        values.extend(v);
    }
    values
}

/// A catalog the tool writes passes its own checks: whatever the vectors (sizes, spreads, an
/// outlying value now and then), their i8 form, written and read back, is of unit length within
/// the readers' tolerance.
#[test]
fn i8_catalogs_always_pass_their_own_length_check() {
    let mut rng = Rng::new(25);
    let pick = |rng: &mut Rng, of: &[usize]| of[rng.next_u64() as usize % of.len()];
    for case in 0..300 {
        let d = pick(&mut rng, &[2, 3, 4, 8, 16, 16, 16, 32, 64, 512]);
        let n = pick(&mut rng, &[1, 2, 3, 7, 50, 400, 3000]).min(2_000_000 / d);
        let spread = [0.01, 0.05, 0.2, 1.0, 10.0][rng.next_u64() as usize % 5];
        let outliers = rng.next_u64() % 3 != 0;
        let values = model_like(&mut rng, n, d, spread, outliers);
        let items = (0..n)
            .map(|i| Item { id: format!("p{i}"), name: format!("P{i}"), description: None, image: format!("{i}.jpg"), thumbnail: None, fields: Default::default() })
            .collect();
        let model = ModelInfo { name: "random".into(), weights_sha256: String::new(), equivalent_weights_sha256: vec![], embedding_dim: d };
        let f32c = Catalog::from_f32(model, PreprocessConfig::default(), RankingDefaults::default(), items, values).unwrap();
        let what = format!("case {case}: {n} items of {d} dims, spread {spread}, outliers {outliers}");
        let i8c = f32c.with_dtype(VectorDtype::I8, ScaleRule::default()).unwrap_or_else(|e| panic!("{what}: {e}"));
        let back = Catalog::from_parts(i8c.manifest_json().as_bytes(), &i8c.vectors_bytes()).unwrap();
        let problems = back.vector_problems();
        assert!(problems.is_empty(), "{what}: {} problems, e.g. {}", problems.len(), problems[0]);
    }
}
