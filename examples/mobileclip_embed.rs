//! Image embeddings of a MobileCLIP open_clip folder for 8-bit crops given as PNG files (already
//! at the model's size), as JSON lines: `cargo run --release --example mobileclip_embed -- DIR a.png ...`.

use clipmatch::imaging::preprocess::normalize;
use clipmatch::models::mobileclip::MobileClip;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, pngs) = args.split_first().ok_or_else(|| anyhow::anyhow!("usage: mobileclip_embed DIR PNG..."))?;
    let dir = std::path::Path::new(dir);
    let model = MobileClip::load(
        &std::fs::read_to_string(dir.join("open_clip_config.json"))?,
        &std::fs::read(dir.join("open_clip_model.safetensors"))?,
    )?;
    let batch = std::env::var("BATCH").ok().and_then(|b| b.parse().ok()).unwrap_or(1usize);
    for group in pngs.chunks(batch) {
        let mut px = Vec::new();
        for png in group {
            px.extend(normalize(&image::open(png)?.to_rgb8(), model.preprocess()));
        }
        for e in model.embed_images(&px, group.len())? {
            println!("{}", serde_json::to_string(&e)?);
        }
    }
    Ok(())
}
