//! Where `clipmatch build`'s time goes, phase by phase: the same library calls the `build`
//! command makes (src/cli/build.rs), in the same order and batch size, each timed. Prints one
//! JSON object (seconds per phase, summed over batches) so `benches/native_build_vs_pytorch.py`
//! can read it, or a table with `--table`.
//!
//!     cargo run --release --example build_phases -- MODEL_DIR PHOTOS_DIR [--batch 16] [--images-only] [--table]
//!
//! Names are the file stems with `-` and `_` as spaces (as `build --name-from file` and the
//! PyTorch side of the benchmark). `--images-only`: read, decode, preprocess and the vision
//! tower only (no thumbnails, names, hashing or catalog), for engine-to-engine comparison.
//! Threads: `RAYON_NUM_THREADS`, as for the tool.
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clipmatch::search::catalog::{Item, ModelInfo, RankingDefaults, ScaleRule, VectorDtype};
use clipmatch::imaging::decode::decode_rgb;
use clipmatch::digest::sha256_hex;
use clipmatch::models::clip::l2_normalize;
use clipmatch::search::rank::leave_one_out_threshold;
use clipmatch::models::tokenizer::ClipTokenizer;
use clipmatch::{Catalog, ClipModel, Embedder, FusionWeights, PreprocessConfig, Towers};

#[derive(Default)]
struct Phases {
    load: f64,
    read: f64,
    decode: f64,
    preprocess: f64,
    thumbnail: f64,
    vision: f64,
    write_thumbs: f64,
    text: f64,
    hash: f64,
    catalog: f64,
}

fn photos_in(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir).expect("photos folder").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            photos_in(&p, out);
        } else if matches!(p.extension().and_then(|e| e.to_str()).map(str::to_lowercase).as_deref(), Some("jpg" | "jpeg" | "png")) {
            out.push(p);
        }
    }
}


fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model_dir = PathBuf::from(args.first().expect("MODEL_DIR"));
    let photos_dir = PathBuf::from(args.get(1).expect("PHOTOS_DIR"));
    let batch: usize = args.iter().position(|a| a == "--batch").map_or(16, |i| args[i + 1].parse().expect("batch"));
    let images_only = args.iter().any(|a| a == "--images-only");
    let table = args.iter().any(|a| a == "--table");
    let mut photos = Vec::new();
    photos_in(&photos_dir, &mut photos);
    let out_dir = std::env::temp_dir().join(format!("build_phases_{}", std::process::id()));
    fs::create_dir_all(out_dir.join("thumbs")).expect("out dir");

    let mut ph = Phases::default();
    let t_all = Instant::now();
    let t = Instant::now();
    let config = fs::read_to_string(model_dir.join("config.json")).expect("config.json");
    let preprocess =
        PreprocessConfig::from_json(&fs::read_to_string(model_dir.join("preprocessor_config.json")).expect("preprocessor")).expect("preprocess");
    // Read, not memory-mapped: examples also compile for wasm32 (the browser tests build them).
    let weights = fs::read(model_dir.join("model.safetensors")).expect("model.safetensors");
    let towers = if images_only { Towers::VisionOnly } else { Towers::VisionAndText };
    // As `build` does: the weights are hashed on another thread while the model loads.
    let (model, weights_sha256, hash_wait) = std::thread::scope(|scope| {
        let hashing = (!images_only).then(|| scope.spawn(|| sha256_hex(&weights)));
        let model = ClipModel::load(&config, &weights, Some(towers)).expect("model");
        let t = Instant::now();
        let sha = hashing.map(|h| h.join().expect("hash"));
        (model, sha, secs(t))
    });
    ph.hash = hash_wait;
    let tokenizer = (!images_only).then(|| {
        let json = fs::read(model_dir.join("tokenizer.json")).expect("tokenizer.json");
        ClipTokenizer::from_bytes(&json, model.config.text.max_position_embeddings).expect("tokenizer")
    });
    let embedder = Embedder::new(model, preprocess, tokenizer);
    ph.load = secs(t);

    let t_work = Instant::now();
    let mut kept: Vec<(Item, Vec<f32>)> = Vec::new();
    for chunk in photos.chunks(batch) {
        let mut pixels = Vec::with_capacity(chunk.len());
        let mut thumbs = Vec::new();
        for path in chunk {
            let t = Instant::now();
            let bytes = fs::read(path).expect("read");
            ph.read += secs(t);
            let t = Instant::now();
            let rgb = decode_rgb(&bytes, &embedder.limits).expect("decode");
            ph.decode += secs(t);
            let t = Instant::now();
            pixels.push(embedder.pixel_values_of(&rgb));
            ph.preprocess += secs(t);
            if !images_only {
                let t = Instant::now();
                thumbs.push(clipmatch::imaging::thumbnail::thumbnail_jpeg(&rgb, 256).expect("jpeg"));
                ph.thumbnail += secs(t);
            }
        }
        let t = Instant::now();
        let vectors = embedder.embed_pixels(&pixels).expect("vision");
        ph.vision += secs(t);
        if images_only {
            continue;
        }
        let t = Instant::now();
        for ((path, mut v), thumb) in chunk.iter().zip(vectors).zip(thumbs) {
            l2_normalize(&mut v);
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            let id = format!("{}-{}", kept.len(), stem.to_lowercase());
            let rel = format!("thumbs/{id}.jpg");
            fs::write(out_dir.join(&rel), thumb).expect("thumb");
            let name = stem.replace(['-', '_'], " ");
            kept.push((Item { id, name, description: None, image: path.display().to_string(), thumbnail: Some(rel) }, v));
        }
        ph.write_thumbs += secs(t);
    }
    if !images_only {
        let t = Instant::now();
        let mut pairs = Vec::with_capacity(kept.len());
        for chunk in kept.chunks(clipmatch::models::clip::text::TEXT_BATCH) {
            let names: Vec<&str> = chunk.iter().map(|(item, _)| item.name.as_str()).collect();
            let vectors = embedder.embed_texts(&names).expect("text");
            for ((_, image_vec), mut name_vec) in chunk.iter().zip(vectors) {
                l2_normalize(&mut name_vec);
                pairs.push((image_vec.clone(), name_vec));
            }
        }
        ph.text = secs(t);
        let info = ModelInfo {
            name: "bench".into(),
            weights_sha256: weights_sha256.expect("hashed while loading"),
            equivalent_weights_sha256: Vec::new(),
            embedding_dim: embedder.model.embedding_dim(),
        };
        let t = Instant::now();
        let weights_f = FusionWeights { text: 1.5, image: 0.5 };
        let ranking = RankingDefaults { text_weight: 1.5, image_weight: 0.5, top_k: 5, min_score: 0.0 };
        let items: Vec<Item> = kept.into_iter().map(|(item, _)| item).collect();
        let mut catalog = Catalog::new(info, embedder.preprocess.clone(), ranking, items, &pairs)
            .expect("catalog")
            .with_dtype(VectorDtype::I8, ScaleRule::default())
            .expect("i8");
        catalog.manifest.ranking.min_score = leave_one_out_threshold(&catalog, weights_f);
        fs::write(out_dir.join("vectors.bin"), catalog.vectors_bytes()).expect("vectors");
        fs::write(out_dir.join("catalog.json"), catalog.manifest_json()).expect("manifest");
        ph.catalog = secs(t);
    }
    let work = secs(t_work);
    let total = secs(t_all);
    fs::remove_dir_all(&out_dir).ok();

    let rows = [
        ("load", ph.load),
        ("read", ph.read),
        ("decode", ph.decode),
        ("preprocess", ph.preprocess),
        ("thumbnail", ph.thumbnail),
        ("vision", ph.vision),
        ("write_thumbs", ph.write_thumbs),
        ("text", ph.text),
        ("hash", ph.hash),
        ("catalog", ph.catalog),
    ];
    if table {
        println!(
            "{} photos, batch {batch}, {} threads{}; work (all but load) {work:.3} s, total {total:.3} s",
            photos.len(),
            rayon::current_num_threads(),
            if images_only { ", images only" } else { "" }
        );
        for (name, s) in rows {
            println!("{name:>12} {s:8.3} s {:5.1} %", 100.0 * s / work);
        }
    } else {
        let fields: Vec<String> = rows.iter().map(|(k, v)| format!("\"{k}\": {v:.6}")).collect();
        println!(
            "{{\"photos\": {}, \"batch\": {batch}, \"threads\": {}, \"images_only\": {images_only}, {}, \"work\": {work:.6}, \"total\": {total:.6}}}",
            photos.len(),
            rayon::current_num_threads(),
            fields.join(", ")
        );
    }
}
