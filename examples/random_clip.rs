//! A random-weight OpenAI CLIP model folder of a config's real size, written without Python, for
//! the tests that need a model of real size and nothing of its rankings (scripts/test.sh: the
//! threads' timing test, on a ViT-B/32-sized int8 bundle). Weights uniform with the spread of
//! transformers' initialisation (std 0.02), layer norms' scales 1 ± 0.1 and biases ± 0.02 from a
//! fixed seed, so the embeddings still depend on the photo. `scripts/make_fixtures.py --vit-b32`
//! writes the same shapes with transformers itself (what the parity tests use).
//!
//!     cargo run --release --example random_clip -- CONFIG_DIR OUT_DIR
//!
//! CONFIG_DIR holds config.json (its sizes), preprocessor_config.json and tokenizer.json, copied
//! to OUT_DIR beside the new model.safetensors.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use clipmatch::models::clip::{expected_tensors, Towers};
use clipmatch::models::config::ModelConfig;
use clipmatch::models::export::{ExportDtype, Quantisable, TowerWriter};

/// xorshift32: values in [-1, 1).
struct Noise(u32);

impl Noise {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        (self.0 >> 8) as f32 / (1u32 << 23) as f32 - 1.0
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config_dir, out] = args.as_slice() else { bail!("usage: random_clip CONFIG_DIR OUT_DIR") };
    let (config_dir, out) = (Path::new(config_dir), Path::new(out));
    let config = fs::read_to_string(config_dir.join("config.json")).context("reading config.json")?;
    let cfg = ModelConfig::from_json(&config)?;
    let mut noise = Noise(0x9E37_79B9);
    let mut writer = TowerWriter::new(ExportDtype::F32);
    // Uniform in [-a, a) has standard deviation a / sqrt(3).
    let spread = 0.02 * 3f32.sqrt();
    for (name, shape) in expected_tensors(&cfg, Towers::VisionAndText) {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = if name == "logit_scale" {
            vec![(1.0f32 / 0.07).ln()]
        } else if name.contains("norm") && name.ends_with(".weight") {
            (0..n).map(|_| 1.0 + 0.1 * noise.next()).collect()
        } else if name.ends_with(".bias") {
            (0..n).map(|_| 0.02 * noise.next()).collect()
        } else {
            (0..n).map(|_| spread * noise.next()).collect()
        };
        writer.add(name, shape, &values, Quantisable::No);
    }
    fs::create_dir_all(out)?;
    fs::write(out.join("model.safetensors"), writer.finish()?)?;
    for file in ["config.json", "preprocessor_config.json", "tokenizer.json"] {
        fs::copy(config_dir.join(file), out.join(file)).with_context(|| format!("copying {file}"))?;
    }
    println!("wrote {}", out.display());
    Ok(())
}
