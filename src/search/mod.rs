//! Search: the catalog format and its vectors, the bundle format, item ids, fused ranking and its options, and the
//! two pipelines: building a catalog and a search session over one.

pub mod bundle;
/// The model a bundle names, loaded and checked against its description.
pub mod bundle_model;
pub mod catalog;
/// Building catalogs is the native tool's job (the page only searches).
#[cfg(not(target_arch = "wasm32"))]
pub mod catalog_builder;
pub mod item_id;
pub mod rank;
pub mod ranking_options;
pub mod session;
/// Benchmark data: native, and in wasm only for the browser benchmarks (`--features bench`).
#[cfg(any(not(target_arch = "wasm32"), test, feature = "bench"))]
pub mod synthetic;
