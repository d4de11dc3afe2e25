//! clipmatch: reverse image search over a product catalog with CLIP.
//!
//! The core (this library, less the `web` module) has no browser and no file-system code:
//! it takes bytes and returns embeddings, catalogs and rankings. The wasm API (`web`) and the
//! native CLI (`src/main.rs`) are thin shells around it.

/// Native programs only: the process settings `main` applies first (allocator, candle's pool).
#[cfg(not(target_arch = "wasm32"))]
pub mod native_process;
pub mod digest;
pub mod error;
pub mod imaging;
pub mod kernels;
pub mod models;
pub mod parallel;
pub mod search;
mod source_file;

#[cfg(target_arch = "wasm32")]
pub mod web;

pub use search::catalog::Catalog;
pub use models::config::{ModelConfig, PreprocessConfig};
pub use models::embedder::Embedder;
pub use error::{CatalogError, Error, ImageError, ModelError};
pub use models::clip::{ClipModel, Towers};
pub use search::rank::{rank, FusionWeights, Match, Ranking};
