//! Milliseconds per image of a SigLIP image tower on candle (no decoding, no resizing), natively.
//! Threads: RAYON_NUM_THREADS (candle and rayon both read it).
//!
//!     RAYON_NUM_THREADS=1 cargo run --release --example siglip_speed -- FOLDER [batch] [runs]
use std::time::Instant;

use clipmatch::models::siglip::Siglip;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("model folder"));
    let batch: usize = args.next().map_or(1, |s| s.parse().expect("batch"));
    let runs: usize = args.next().map_or(10, |s| s.parse().expect("runs"));
    let config = std::fs::read_to_string(dir.join("config.json")).expect("config.json");
    let weights = std::fs::read(dir.join("model.safetensors")).expect("model.safetensors");
    let t = Instant::now();
    let model = Siglip::load(&config, &weights).expect("model");
    println!("load: {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
    drop(weights);
    let s = model.image_size();
    let px: Vec<f32> = (0..batch * 3 * s * s).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    let first = model.embed_images(&px, batch).expect("warm-up").remove(0);
    let norm = first.iter().map(|x| x * x).sum::<f32>().sqrt();
    println!("first image: |e| = {norm:.5}, e[..4] = {:.5?}", &first[..4]);
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        model.embed_images(&px, batch).expect("embed");
        times.push(t.elapsed().as_secs_f64() * 1e3 / batch as f64);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "candle f32, {s} px, batch {batch}, {} threads: {:.1} ms per image (median of {runs}; min {:.1}, max {:.1})",
        candle_core::utils::get_num_threads(),
        times[runs / 2],
        times[0],
        times[runs - 1]
    );
}
