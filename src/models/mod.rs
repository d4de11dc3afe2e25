//! Models and engines: configuration and weights reading shared by every family, the tokenizer,
//! and one folder per model family. `embedder` turns photos and texts into unit vectors with
//! whichever model is loaded.

pub mod clip;
pub mod config;
pub mod embedder;
pub mod mobileclip;
pub mod safetensors_stream;
pub mod siglip;
pub mod tokenizer;
