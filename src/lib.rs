//! clipmatch: reverse image search over a product catalog with CLIP.
//!
//! The core (this library, less the `web` module) has no browser and no file-system code:
//! it takes bytes and returns embeddings, catalogs and rankings. The wasm API (`web`) and the
//! native CLI (`src/main.rs`) are thin shells around it.

pub mod catalog;
pub mod config;
pub mod decode;
pub mod digest;
pub mod embedder;
pub mod encoder;
pub mod error;
pub mod export;
pub mod item_id;
pub mod kernels;
pub mod model;
pub mod parallel;
pub mod preprocess;
pub mod rank;
pub mod synthetic;
pub mod text;
pub mod thumbnail;
pub mod tokenize;
pub mod vision;
pub mod weights;

#[cfg(target_arch = "wasm32")]
pub mod web;

pub use catalog::Catalog;
pub use config::{ModelConfig, PreprocessConfig};
pub use embedder::Embedder;
pub use error::{CatalogError, Error, ImageError, ModelError};
pub use model::{ClipModel, Towers};
pub use rank::{rank, FusionWeights, Match, Ranking};
