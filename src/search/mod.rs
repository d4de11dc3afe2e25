//! Search: the catalog format and its vectors, item ids, and fused ranking.

pub mod catalog;
pub mod item_id;
pub mod rank;
/// Benchmark data: native, and in wasm only for the browser benchmarks (`--features bench`).
#[cfg(any(not(target_arch = "wasm32"), test, feature = "bench"))]
pub mod synthetic;
