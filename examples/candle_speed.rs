//! Image-tower speed of a MobileCLIP open_clip folder on candle, random pixels:
//! `RAYON_NUM_THREADS=1 cargo run --release --example candle_speed -- DIR [BATCH...]`
//! (candle's CPU kernels take their thread count from RAYON_NUM_THREADS).

use std::time::Instant;

use clipmatch::models::mobileclip::MobileClip;
use clipmatch::search::synthetic::Rng;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, batches) = args.split_first().ok_or_else(|| anyhow::anyhow!("usage: candle_speed DIR [BATCH...]"))?;
    let dir = std::path::Path::new(dir);
    let t = Instant::now();
    let model = MobileClip::load(
        &std::fs::read_to_string(dir.join("open_clip_config.json"))?,
        &std::fs::read(dir.join("open_clip_model.safetensors"))?,
    )?;
    println!("loaded in {:.2} s; threads {}", t.elapsed().as_secs_f64(), candle_core::utils::get_num_threads());
    let side = model.image_size();
    let mut rng = Rng::new(1);
    let batches: Vec<usize> = if batches.is_empty() { vec![1, 16] } else { batches.iter().map(|b| b.parse()).collect::<Result<_, _>>()? };
    for n in batches {
        let px: Vec<f32> = (0..n * 3 * side * side).map(|_| (rng.next_u64() % 256) as f32 / 255.0).collect();
        model.embed_images(&px, n)?; // warm-up
        let runs = if n == 1 { 5 } else { 2 };
        let mut best = f64::INFINITY;
        for _ in 0..runs {
            let t = Instant::now();
            model.embed_images(&px, n)?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("batch {n}: best of {runs} {:.1} ms, {:.1} ms per image", best * 1e3, best * 1e3 / n as f64);
    }
    Ok(())
}
