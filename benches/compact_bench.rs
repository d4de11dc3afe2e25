//! Compact codes at 100,000 items, in one run: a seeded CLIP-like clustered catalog (512 dims,
//! i8 vectors) built with compact codes (fused vectors, 64 + 16 bytes an item) and written to
//! disk as `clipmatch build --compact` and `clipmatch bundle` write it (the page catalog
//! gzipped); the bytes the page downloads before its first answer; recall@5
//! of the exact top 5 (codes alone, and short lists of several lengths re-ranked exactly);
//! milliseconds to rank natively. Optionally the grocery photos against their catalog padded
//! to 100,000 items. The folder it writes (`--out`, default target/compact-bench/) is what
//! benches/browser/compact_bench.mjs ranks in a Web Worker.
//!
//!   cargo bench --bench compact_bench -- [--out DIR] [--items 100000] [--queries 500]
//!       [--grocery CATALOG_DIR --photos DIR --model MODEL_DIR]
//!
//! CATALOG_DIR: `clipmatch build ../shared/data/grocery-packages/iconic --name-from folder
//! --model models/clip-b32-random --out CATALOG_DIR`; photos: ../shared/data/grocery-packages/photos.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clipmatch::search::catalog::{
    Catalog, CompactOptions, Item, ModelInfo, RankingDefaults, ScaleRule, VectorDtype, VectorKind, COMPACT_FILE, MANIFEST_FILE,
    PAGE_MANIFEST_FILE, VECTORS_FILE,
};
use clipmatch::search::compact::clustered::{Clustered, ClusteredSpec};
use clipmatch::search::compact::page::PageCompactCatalog;
use clipmatch::search::compact::rank::{rank_codes_only, rank_compact, recall};
use clipmatch::search::compact::{CompactCodes, DEFAULT_RESIDUAL_SUBSPACES, DEFAULT_TRAINING};
use clipmatch::search::synthetic::Rng;
use clipmatch::{rank, ClipModel, Embedder, FusionWeights, PreprocessConfig, Towers};

const WEIGHTS: FusionWeights = FusionWeights { text: 1.5, image: 0.5 };
const SHORTLISTS: [usize; 6] = [100, 250, 500, 1000, 2000, 4000];
const MIN_ITEMS: usize = 10_000;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn items(n: usize) -> Vec<Item> {
    (0..n)
        .map(|i| Item { id: format!("item-{i}"), name: format!("Item {i}"), description: None, image: format!("item-{i}.jpg"), thumbnail: None, fields: Default::default() })
        .collect()
}

fn i8_catalog(model: ModelInfo, items: Vec<Item>, values: Vec<f32>) -> Catalog {
    Catalog::from_f32(model, PreprocessConfig::default(), RankingDefaults::default(), items, values)
        .expect("a valid catalog")
        .with_dtype(VectorDtype::I8, ScaleRule::default())
        .expect("i8")
}

/// Recall@5 of the exact top 5 over `queries`: codes alone, then each short-list length.
fn recalls(codes: &CompactCodes, catalog: &Catalog, queries: &[Vec<f32>]) -> (f32, Vec<f32>) {
    let mut only = 0.0;
    let mut by_len = vec![0.0; SHORTLISTS.len()];
    for q in queries {
        let exact = rank(catalog, q, WEIGHTS, 5, 0.0);
        only += recall(&exact, &rank_codes_only(codes, catalog.items(), q, 5, 0.0));
        for (r, &len) in by_len.iter_mut().zip(&SHORTLISTS) {
            *r += recall(&exact, &rank_compact(codes, catalog, q, WEIGHTS, 5, 0.0, len));
        }
    }
    let n = queries.len() as f32;
    (only / n, by_len.into_iter().map(|r| r / n).collect())
}

fn print_recalls(what: &str, (only, by_len): (f32, Vec<f32>), queries: usize) {
    let lens: Vec<String> = SHORTLISTS.iter().zip(&by_len).map(|(l, r)| format!("{l}: {r:.4}")).collect();
    println!("{what}: recall@5 of the exact top 5 over {queries} photos: codes alone {only:.4}; short list re-ranked exactly, by length: {}", lens.join(", "));
}

/// `bytes` gzipped, as `clipmatch bundle` writes a compact bundle's page catalog.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(bytes).expect("writing to memory");
    z.finish().expect("writing to memory")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> usize {
    fs::write(dir.join(name), bytes).expect("writable output folder");
    bytes.len()
}

fn main() {
    // `cargo test --all-targets` runs benches without `--bench`: only `cargo bench` measures.
    if !std::env::args().any(|a| a == "--bench") {
        println!("compact_bench measures under `cargo bench --bench compact_bench` only");
        return;
    }
    let out = PathBuf::from(arg("--out").unwrap_or_else(|| "target/compact-bench".into()));
    let n: usize = arg("--items").map_or(100_000, |s| s.parse().expect("a number"));
    let queries: usize = arg("--queries").map_or(500, |s| s.parse().expect("a number"));
    fs::create_dir_all(&out).expect("output folder");
    println!("machine: {} threads for training; {n} items x 2 x 512 dims", rayon::current_num_threads());

    let t = Instant::now();
    let spec = ClusteredSpec { items: n, dim: 512, clusters: n / 50, seed: 1 };
    let data = Clustered::generate(spec);
    let model = ModelInfo { name: "clustered".into(), weights_sha256: String::new(), equivalent_weights_sha256: Vec::new(), embedding_dim: 512 };
    let catalog = i8_catalog(model, items(n), data.values.clone());
    println!("generated ({} clusters, seed 1) and quantised to i8 in {:.1} s", spec.clusters, t.elapsed().as_secs_f64());
    let t = Instant::now();
    let options = CompactOptions { training: DEFAULT_TRAINING, residual_subspaces: DEFAULT_RESIDUAL_SUBSPACES, min_items: MIN_ITEMS };
    let (catalog, codes) = catalog.with_compact(options).expect("codes");
    println!(
        "compact codes: one fused vector an item ({} x name + {} x image), {} + {} (residual) subspaces x {} centroids, {} bytes an item, trained on {} vectors a stage and encoded in {:.1} s",
        codes.weights.text,
        codes.weights.image,
        DEFAULT_TRAINING.subspaces,
        DEFAULT_RESIDUAL_SUBSPACES,
        DEFAULT_TRAINING.centroids,
        codes.shape().code_bytes(),
        DEFAULT_TRAINING.sample.min(n),
        t.elapsed().as_secs_f64()
    );

    // The files, as build --compact and bundle write them.
    let page = serde_json::to_vec(&catalog.page_catalog().expect("a compact catalog")).expect("serialises");
    let page_bytes = write(&out, &format!("{PAGE_MANIFEST_FILE}.gz"), &gzip(&page));
    let codes_bytes = write(&out, COMPACT_FILE, &codes.to_bytes());
    let vectors_bytes = write(&out, VECTORS_FILE, &catalog.vectors_bytes());
    let manifest_bytes = write(&out, MANIFEST_FILE, catalog.manifest_json().as_bytes());
    let mut rng = Rng::new(77);
    let photos: Vec<(usize, Vec<f32>)> = (0..queries)
        .map(|_| {
            let i = (rng.next_u64() % n as u64) as usize;
            (i, data.photo(i, &mut rng))
        })
        .collect();
    let qs: Vec<Vec<f32>> = photos.iter().map(|(_, q)| q.clone()).collect();
    let exact_top5: Vec<Vec<usize>> = qs.iter().map(|q| rank(&catalog, q, WEIGHTS, 5, 0.0).matches.iter().map(|m| m.index).collect()).collect();
    write(&out, "queries.bin", &qs.iter().flatten().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>());
    write(&out, "exact-top5.json", serde_json::to_string(&exact_top5).expect("serialises").as_bytes());
    let before_first = page_bytes + codes_bytes;
    let codebooks = codes_bytes - n * codes.shape().code_bytes();
    println!(
        "page downloads before its first answer (catalog files): {PAGE_MANIFEST_FILE}.gz {:.2} MB ({:.2} MB raw) + {COMPACT_FILE} {:.2} MB ({:.2} MB codes + {:.2} MB codebooks) = {:.2} MB",
        page_bytes as f64 / 1e6,
        page.len() as f64 / 1e6,
        codes_bytes as f64 / 1e6,
        (codes_bytes - codebooks) as f64 / 1e6,
        codebooks as f64 / 1e6,
        before_first as f64 / 1e6
    );
    println!(
        "then in the background, all of it whatever the photo: {VECTORS_FILE} {:.1} MB; never by the page: {MANIFEST_FILE} {:.1} MB",
        vectors_bytes as f64 / 1e6,
        manifest_bytes as f64 / 1e6
    );

    // The page's object, from the files written.
    let mut paged = PageCompactCatalog::from_parts(&page, &fs::read(out.join(COMPACT_FILE)).expect("written")).expect("reads back");
    let hits = photos.iter().filter(|(i, q)| rank(&catalog, q, WEIGHTS, 1, 0.0).matches[0].index == *i).count();
    println!("the photo's own item ranked first exactly: {hits} of {queries}");
    print_recalls("synthetic", recalls(&codes, &catalog, &qs), queries);

    let time = |f: &dyn Fn(&[f32])| -> f64 {
        let runs: Vec<f64> = qs.iter().take(40).map(|q| { let t = Instant::now(); f(q); t.elapsed().as_secs_f64() * 1e3 }).collect();
        median(runs[5..].to_vec())
    };
    let codes_only = time(&|q| { paged.rank(q, WEIGHTS, 5, 0.0); });
    paged.attach_vectors(&catalog.vectors_bytes()).expect("the vectors attach");
    let after = time(&|q| { paged.rank(q, WEIGHTS, 5, 0.0); });
    let reranked: Vec<String> = [SHORTLISTS[3], SHORTLISTS[5]]
        .iter()
        .map(|&len| format!("codes + exact re-rank of {len}: {:.2} ms", time(&|q| { rank_compact(&codes, &catalog, q, WEIGHTS, 5, 0.0, len); })))
        .collect();
    println!(
        "native, one thread, median of 35 photos: the page before the vectors (codes alone) {codes_only:.2} ms; after them (exact i8 rank) {after:.2} ms; {}",
        reranked.join("; ")
    );

    if let (Some(dir), Some(photos), Some(model)) = (arg("--grocery"), arg("--photos"), arg("--model")) {
        grocery(Path::new(&dir), Path::new(&photos), Path::new(&model), n);
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).expect("a photo folder") {
        let p = entry.expect("readable").path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "jpg") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The grocery photos against their 31-product catalog (where a short list of 31 holds every
/// item, so re-ranking is trivially exact), and against that catalog padded to `n` items with
/// near copies of its products (each a product's vectors plus noise half as large as the
/// typical difference between two products), which compete with the real ones.
fn grocery(dir: &Path, photos: &Path, model_dir: &Path, n: usize) {
    let catalog = Catalog::from_parts(&fs::read(dir.join(MANIFEST_FILE)).expect("catalog.json"), &fs::read(dir.join(VECTORS_FILE)).expect("vectors.bin"))
        .expect("a grocery catalog");
    let config = fs::read_to_string(model_dir.join("config.json")).expect("config.json");
    let clip = ClipModel::load(&config, &fs::read(model_dir.join("model.safetensors")).expect("weights"), Some(Towers::VisionOnly)).expect("model");
    let pre = PreprocessConfig::from_json(&fs::read_to_string(model_dir.join("preprocessor_config.json")).expect("preprocessor")).expect("preprocessing");
    let embedder = Embedder::new(clip, pre, None);
    let qs: Vec<Vec<f32>> = walk(photos).iter().map(|p| embedder.embed_photo(&fs::read(p).expect("photo")).expect("embeds")).collect();
    let small = catalog.len();
    let values: Vec<f32> = (0..small).flat_map(|i| VectorKind::ALL.map(|k| catalog.vector(i, k).into_owned())).flatten().collect();
    let options = CompactOptions { training: DEFAULT_TRAINING, residual_subspaces: DEFAULT_RESIDUAL_SUBSPACES, min_items: 1 };
    let (c31, codes31) = catalog.clone().with_compact(options).expect("codes");
    print_recalls(&format!("grocery, {small} products (a short list of {small} holds them all)"), recalls(&codes31, &c31, &qs), qs.len());

    let pair = 2 * 512;
    let mut spread = 0.0f32;
    for i in 0..small {
        for j in 0..i {
            spread += values[i * pair..(i + 1) * pair].iter().zip(&values[j * pair..(j + 1) * pair]).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt();
        }
    }
    let per_vector = spread / (small * (small - 1) / 2) as f32 / 2f32.sqrt();
    let mut rng = Rng::new(3);
    let mut padded = values.clone();
    for p in small..n {
        let src = p % small;
        for k in 0..2 {
            let v = &values[src * pair + k * 512..src * pair + (k + 1) * 512];
            let noise = rng.unit_vector(512);
            let mut w: Vec<f32> = v.iter().zip(&noise).map(|(x, e)| x + 0.5 * per_vector * e).collect();
            let norm = w.iter().map(|x| x * x).sum::<f32>().sqrt();
            w.iter_mut().for_each(|x| *x /= norm);
            padded.extend(w);
        }
    }
    let mut all = catalog.items().to_vec();
    all.extend(items(n).into_iter().skip(small));
    let big = i8_catalog(catalog.manifest.model.clone(), all, padded);
    let (big, codes) = big.with_compact(CompactOptions { min_items: MIN_ITEMS, ..options }).expect("codes");
    let real_first = qs.iter().filter(|q| rank(&big, q, WEIGHTS, 1, 0.0).matches[0].index < small).count();
    println!("grocery padded to {n} items: the best match is one of the {small} real products for {real_first} of {} photos", qs.len());
    print_recalls(&format!("grocery padded to {n} items"), recalls(&codes, &big, &qs), qs.len());
}
