//! Writes a model folder's image tower alone as safetensors, as `clipmatch bundle` does for the
//! page (f16, f32 or int8), for any supported family: for the benchmarks, which load the same
//! file in every engine.
//!
//!     cargo run --release --example export_vision -- models/clip-b32-random int8 out.safetensors
use std::path::Path;

use clipmatch::models::export::{vision_tower, ExportDtype};
use clipmatch::models::folder::Layout;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, dtype, out] = args.as_slice() else {
        panic!("usage: export_vision MODEL_DIR f16|f32|int8 OUT.safetensors");
    };
    let dir = Path::new(dir);
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let layout = Layout::detect(dir.join("open_clip_config.json").exists(), read("config.json").as_deref()).expect("a model folder");
    let config = read(layout.config_file()).expect("the config file");
    let weights = std::fs::read(dir.join(layout.weights_file())).expect("the weights file");
    let dtype = ExportDtype::parse(dtype).unwrap_or_else(|| panic!("unknown dtype {dtype}"));
    let bytes = vision_tower(layout.family(), &config, &weights, dtype).expect("export");
    std::fs::write(out, &bytes).expect("write");
    println!("{out}: {} image tower, {:.1} MB", layout.family().name(), bytes.len() as f64 / 1e6);
}
