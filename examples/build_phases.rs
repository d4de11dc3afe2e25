//! Where `clipmatch build`'s time goes, phase by phase: the core's catalog builder (the call the
//! `build` command makes, src/cli/build.rs), with each of its progress events timed. Prints one
//! JSON object (seconds per phase, summed over batches) so `benches/native_build_vs_pytorch.py`
//! can read it, or a table with `--table`.
//!
//!     cargo run --release --example build_phases -- MODEL_DIR PHOTOS_DIR [--batch 16] [--images-only] [--table]
//!
//! MODEL_DIR is any folder `build` takes (OpenAI CLIP, open_clip MobileCLIP, SigLIP), on its
//! default engine; the tokenizer is its tokenizer.json, or CLIPMATCH_TOKENIZER as for the tool.
//!
//! Names are the file stems with `-` and `_` as spaces (as `build --name-from file` and the
//! PyTorch side of the benchmark). Phases of a build: `read` (the builder's reads, summed over
//! threads), `prepare` (read, decode, preprocess and thumbnail, in parallel), `vision`,
//! `write_thumbs`, `text`, `catalog` (assembly, i8 vectors, threshold), and `hash` (waiting for
//! the weights' hash after loading). `--images-only`: the embedder alone on each batch, with
//! read, decode, preprocess and the vision tower timed apart (no thumbnails, names, hashing or
//! catalog), for engine-to-engine comparison. Threads: `RAYON_NUM_THREADS`, as for the tool.
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use clipmatch::digest::sha256_hex;
use clipmatch::imaging::decode::decode_rgb;
use clipmatch::models::folder::{self, FolderFiles, Layout, HF_CONFIG, OPEN_CLIP_CONFIG};
use clipmatch::search::catalog::ModelInfo;
use clipmatch::search::catalog_builder::{build_catalog, BuildEvents, BuildOptions, BuildPhase, SkipReason, SourceItem};
use clipmatch::{Embedder, Towers};

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

/// Seconds per phase: the time since the previous event goes to the phase of the event that
/// closes it.
struct PhaseClock {
    last: Instant,
    seconds: BTreeMap<&'static str, f64>,
    out_dir: PathBuf,
}

impl PhaseClock {
    fn lap(&mut self, phase: &'static str) {
        let now = Instant::now();
        *self.seconds.entry(phase).or_default() += (now - self.last).as_secs_f64();
        self.last = now;
    }
}

impl BuildEvents for PhaseClock {
    type Error = std::io::Error;

    fn progress(&mut self, phase: BuildPhase, done: usize, _total: usize) {
        if done == 0 {
            self.last = Instant::now();
            return;
        }
        self.lap(match phase {
            BuildPhase::Prepare => "prepare",
            BuildPhase::Images => "vision",
            BuildPhase::Names => "text",
            BuildPhase::Catalog => "catalog",
        });
    }

    fn skipped(&mut self, index: usize, reason: &SkipReason) {
        eprintln!("skipped photo {index}: {reason}");
    }

    fn thumbnail(&mut self, file: &str, jpeg: &[u8]) -> std::io::Result<()> {
        let result = fs::write(self.out_dir.join(file), jpeg);
        self.lap("write_thumbs");
        result
    }
}

/// `--images-only`: the embedder on each batch, each step timed apart.
fn images_only(embedder: &Embedder, photos: &[PathBuf], batch: usize, seconds: &mut BTreeMap<&'static str, f64>) {
    let mut add = |k: &'static str, t: Instant| *seconds.entry(k).or_default() += secs(t);
    for chunk in photos.chunks(batch) {
        let mut pixels = Vec::with_capacity(chunk.len());
        for path in chunk {
            let t = Instant::now();
            let bytes = fs::read(path).expect("read");
            add("read", t);
            let t = Instant::now();
            let rgb = decode_rgb(&bytes, &embedder.limits).expect("decode");
            add("decode", t);
            let t = Instant::now();
            pixels.push(embedder.pixel_values_of(&rgb));
            add("preprocess", t);
        }
        let t = Instant::now();
        embedder.embed_pixels_raw(&pixels).expect("vision");
        add("vision", t);
    }
}

fn main() {
    clipmatch::native_process::configure(); // as the CLI does
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model_dir = PathBuf::from(args.first().expect("MODEL_DIR"));
    let photos_dir = PathBuf::from(args.get(1).expect("PHOTOS_DIR"));
    let batch: usize = args.iter().position(|a| a == "--batch").map_or(16, |i| args[i + 1].parse().expect("batch"));
    let images_only_mode = args.iter().any(|a| a == "--images-only");
    let table = args.iter().any(|a| a == "--table");
    let mut photos = Vec::new();
    photos_in(&photos_dir, &mut photos);
    let out_dir = std::env::temp_dir().join(format!("build_phases_{}", std::process::id()));
    fs::create_dir_all(out_dir.join("thumbs")).expect("out dir");

    let t_all = Instant::now();
    let t = Instant::now();
    // Any supported folder (OpenAI CLIP, open_clip MobileCLIP, SigLIP), loaded as `build` loads
    // it; the tokenizer from the folder or CLIPMATCH_TOKENIZER, as for the tool.
    let layout = Layout::detect(model_dir.join(OPEN_CLIP_CONFIG).exists(), fs::read_to_string(model_dir.join(HF_CONFIG)).ok().as_deref())
        .expect("a supported model folder");
    let text = |name: &str| fs::read_to_string(model_dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let config = text(layout.config_file());
    let preprocessor = layout.preprocessor_file().map(text);
    // Read, not memory-mapped: examples also compile for wasm32 (the browser tests build them).
    let weights = fs::read(model_dir.join(layout.weights_file())).expect("weights");
    let towers = if images_only_mode { Towers::VisionOnly } else { Towers::VisionAndText };
    let tokenizer = (!images_only_mode).then(|| {
        let path = std::env::var_os("CLIPMATCH_TOKENIZER").map_or_else(|| model_dir.join("tokenizer.json"), PathBuf::from);
        fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    });
    let tokenizer_config = layout.tokenizer_config_file().and_then(|name| fs::read(model_dir.join(name)).ok());
    let files = FolderFiles {
        config: &config,
        preprocessor: preprocessor.as_deref(),
        weights: &weights,
        tokenizer: tokenizer.as_deref(),
        tokenizer_config: tokenizer_config.as_deref(),
    };
    // As `build` does: the weights are hashed on another thread while the model loads.
    let (embedder, weights_sha256, hash_wait) = std::thread::scope(|scope| {
        let hashing = (!images_only_mode).then(|| scope.spawn(|| sha256_hex(&weights)));
        let embedder = folder::load(layout, &files, towers, None).expect("model");
        let t = Instant::now();
        let sha = hashing.map(|h| h.join().expect("hash"));
        (embedder, sha, secs(t))
    });
    let load = secs(t);

    let t_work = Instant::now();
    let mut seconds = BTreeMap::new();
    let keys: &[&str] = if images_only_mode {
        images_only(&embedder, &photos, batch, &mut seconds);
        &["read", "decode", "preprocess", "vision"]
    } else {
        let info = ModelInfo {
            name: "bench".into(),
            weights_sha256: weights_sha256.expect("hashed while loading"),
            equivalent_weights_sha256: Vec::new(),
            embedding_dim: embedder.model.embedding_dim(),
        };
        let items: Vec<SourceItem> = photos
            .iter()
            .enumerate()
            .map(|(i, path)| {
                let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
                let name = stem.replace(['-', '_'], " ");
                SourceItem { id: format!("{i}-{}", stem.to_lowercase()), name, description: None, image: path.display().to_string(), fields: Default::default() }
            })
            .collect();
        let read_seconds = Mutex::new(0.0);
        let read = |i: usize| {
            let t = Instant::now();
            let bytes = fs::read(&photos[i]).map_err(|e| e.to_string());
            *read_seconds.lock().unwrap() += secs(t);
            bytes
        };
        let options = BuildOptions { batch_size: batch, ..BuildOptions::default() };
        let mut clock = PhaseClock { last: Instant::now(), seconds: BTreeMap::new(), out_dir: out_dir.clone() };
        let built = build_catalog(&embedder, info, items, read, &options, &mut clock).expect("build");
        let t = Instant::now();
        fs::write(out_dir.join("vectors.bin"), built.catalog.vectors_bytes()).expect("vectors");
        fs::write(out_dir.join("catalog.json"), built.catalog.manifest_json()).expect("manifest");
        clock.seconds.insert("write_catalog", secs(t));
        seconds = clock.seconds;
        seconds.insert("read", read_seconds.into_inner().unwrap());
        seconds.insert("hash", hash_wait);
        &["read", "prepare", "vision", "write_thumbs", "text", "catalog", "write_catalog", "hash"]
    };
    let work = secs(t_work);
    let total = secs(t_all);
    fs::remove_dir_all(&out_dir).ok();

    let rows: Vec<(&str, f64)> =
        std::iter::once(("load", load)).chain(keys.iter().map(|k| (*k, seconds.get(k).copied().unwrap_or(0.0)))).collect();
    if table {
        println!(
            "{} photos, batch {batch}, {} threads{}; work (all but load) {work:.3} s, total {total:.3} s",
            photos.len(),
            rayon::current_num_threads(),
            if images_only_mode { ", images only" } else { "" }
        );
        for (name, s) in rows {
            let note = if name == "read" && !images_only_mode { "  (summed over threads, within prepare)" } else { "" };
            println!("{name:>13} {s:8.3} s {:5.1} %{note}", 100.0 * s / work);
        }
    } else {
        let fields: Vec<String> = rows.iter().map(|(k, v)| format!("\"{k}\": {v:.6}")).collect();
        println!(
            "{{\"photos\": {}, \"batch\": {batch}, \"threads\": {}, \"images_only\": {images_only_mode}, {}, \"work\": {work:.6}, \"total\": {total:.6}}}",
            photos.len(),
            rayon::current_num_threads(),
            fields.join(", ")
        );
    }
}
