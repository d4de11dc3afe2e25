//! Milliseconds per image of the vision tower alone (no decoding), natively: for quick
//! before/after checks while working on kernels. The benchmarks against other engines are in
//! `benches/`.
//!
//!     cargo run --release --example vision_speed -- models/clip-b32-random [batch] [runs] [f32|int8]
use std::time::Instant;

use clipmatch::models::clip::ModelLoader;
use clipmatch::models::clip::vision::Precision;
use clipmatch::{ModelConfig, Towers};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("model folder"));
    let batch: usize = args.next().map_or(1, |s| s.parse().expect("batch"));
    let runs: usize = args.next().map_or(10, |s| s.parse().expect("runs"));
    let precision = match args.next().as_deref() {
        Some("int8") => Precision::Int8,
        _ => Precision::F32,
    };
    let config = std::fs::read_to_string(dir.join("config.json")).expect("config.json");
    let weights = std::fs::read(dir.join("model.safetensors")).expect("model.safetensors");
    let t = Instant::now();
    let mut loader =
        ModelLoader::new(ModelConfig::from_json(&config).expect("config"), Some(Towers::VisionOnly)).with_precision(precision);
    loader.push(&weights).expect("weights");
    let model = loader.finish().expect("model");
    println!("load: {:.0} ms, weights held: {:.1} MB", t.elapsed().as_secs_f64() * 1e3, model.vision.weight_bytes() as f64 / 1e6);
    drop(weights);
    let s = model.vision.image_size();
    let px: Vec<f32> = (0..batch * 3 * s * s).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    model.vision.embed(&px, batch).expect("warm-up");
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        model.vision.embed(&px, batch).expect("embed");
        times.push(t.elapsed().as_secs_f64() * 1e3 / batch as f64);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{}, batch {batch}, {} threads: {:.1} ms per image (median of {runs}; min {:.1}, max {:.1})",
        precision.name(),
        rayon::current_num_threads(),
        times[runs / 2],
        times[0],
        times[runs - 1]
    );
}
