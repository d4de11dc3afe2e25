//! The integration tests, in one binary with a module per area (as ripgrep has them): the crate
//! and its dependencies are linked once, not once per file. Six stay binaries of their own,
//! because they measure their whole process: those that bound the heap (`candle_memory`,
//! `hostile_files`, `hostile_images`, `metadata_bombs`, `photo_memory`: their counting allocator
//! sees every thread) and `threads_past_cores` (the process's CPU time, and its one pool).

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod bundle_families;
mod bundle_format;
mod bundle_towers;
mod catalog;
mod catalog_builder;
mod cli;
mod cli_compact;
mod cli_eval;
mod cli_fields;
mod cli_grow;
mod cli_models;
mod compact;
mod engines;
mod eval_planted;
mod hostile_paths;
mod int8;
mod mobileclip_parity;
mod model_loading;
mod parity;
mod session;
mod siglip_parity;
mod streaming_load;
mod tokenizer;
mod vector_quantisation;
