//! Writes a model's vision tower alone as safetensors, as `clipmatch bundle` does for the page
//! (f16, f32 or int8): for the benchmarks, which load the same file in every engine.
//!
//!     cargo run --release --example export_vision -- models/clip-b32-random int8 out.safetensors
use clipmatch::models::clip::export::{vision_tower, ExportDtype};
use clipmatch::ModelConfig;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, dtype, out] = args.as_slice() else {
        panic!("usage: export_vision MODEL_DIR f16|f32|int8 OUT.safetensors");
    };
    let dir = std::path::Path::new(dir);
    let config = ModelConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).expect("config.json")).expect("config");
    let weights = std::fs::read(dir.join("model.safetensors")).expect("model.safetensors");
    let dtype = ExportDtype::parse(dtype).unwrap_or_else(|| panic!("unknown dtype {dtype}"));
    let bytes = vision_tower(&weights, &config, dtype).expect("export");
    std::fs::write(out, &bytes).expect("write");
    println!("{out}: {:.1} MB", bytes.len() as f64 / 1e6);
}
