//! Compact codes for big catalogs: product quantisation, in two stages, of one vector per item
//! (its two vectors fused with the catalog's ranking weights; 64 + 16 bytes an item by
//! default), a first pass over the codes, and (natively) exact re-ranking of a short list from
//! the stored vectors. [`clustered`] draws CLIP-like test catalogs; [`pq`] is the quantiser;
//! [`codes`] a catalog's codes and their file; [`rank`] the ranking with them; [`page`] the
//! page's compact catalog, read from its file by `page_file`.

pub mod clustered;
pub mod codes;
pub mod page;
mod page_file;
pub mod pq;
pub mod rank;

pub use codes::{CompactCodes, CompactShape};
pub use pq::{ProductQuantizer, TrainingParams, MAX_CENTROIDS};

/// The training a catalog's codes get unless told otherwise: a first stage of 64 subspaces of
/// 256 centres (64 bytes an item), 20 Lloyd iterations on at most 20,000 fused vectors.
pub const DEFAULT_TRAINING: TrainingParams = TrainingParams { subspaces: 64, centroids: 256, iterations: 20, sample: 20_000, seed: 0x5eed };

/// Bytes of the residual's code unless told otherwise: 64 + 16 bytes an item keep a
/// 100,000-item page catalog under 10 MB (BENCHMARKS.md, "Compact codes").
pub const DEFAULT_RESIDUAL_SUBSPACES: usize = 16;
