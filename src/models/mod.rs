//! Models and engines: configuration and weights reading shared by every family, the tokenizer,
//! and one folder per model family. `embedder` turns photos and texts into unit vectors with
//! whichever model is loaded.

/// Safetensors files as candle tensors in f32, int8 exports dequantised.
pub mod candle_linear;
pub mod candle_weights;
pub mod clip;
pub mod config;
pub mod embedder;
/// Writing an image tower alone for the page's bundle (native only).
#[cfg(not(target_arch = "wasm32"))]
pub mod export;
/// Reading hub folders (the tokenizers are native only).
#[cfg(not(target_arch = "wasm32"))]
pub mod folder;
/// 4-bit weights in blocks of 32 with f16 scales: the smallest export.
pub mod int4;
pub mod mobileclip;
pub mod model;
/// Checking and pairing the quantised weights of a tower streamed into this crate's kernels.
pub mod quantised_tensors;
pub mod safetensors_header;
pub mod safetensors_stream;
pub mod siglip;
pub mod vision_loader;
/// Catalog building and text queries only (the `tokenizers` crate): not in the wasm package.
#[cfg(not(target_arch = "wasm32"))]
pub mod open_clip_text;
#[cfg(not(target_arch = "wasm32"))]
pub mod tokenizer;
/// The page embeds photos, never text: in the wasm build there is no tokenizer, and this type
/// has no values, so an [`embedder::Embedder`] there is always made without one.
#[cfg(target_arch = "wasm32")]
pub mod tokenizer {
    pub enum ClipTokenizer {}
}
