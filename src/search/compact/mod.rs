//! Compact codes for big catalogs: product quantisation of both vectors of every item (64 bytes
//! an item at 32 subspaces), a first pass over the codes, and exact re-ranking of a short list
//! from the stored vectors. [`clustered`] draws CLIP-like test catalogs; [`pq`] is the
//! quantiser; [`codes`] a catalog's codes and their file; [`rank`] the ranking with them.

pub mod clustered;
pub mod codes;
pub mod page;
pub mod pq;
pub mod rank;

pub use codes::{CompactCodes, CompactShape};
pub use pq::{ProductQuantizer, TrainingParams, MAX_CENTROIDS};

/// The training a catalog's codes get unless told otherwise: 32 subspaces of 256 centres
/// (32 bytes per vector, 64 per item), 20 Lloyd iterations on at most 20,000 vectors a kind.
pub const DEFAULT_TRAINING: TrainingParams = TrainingParams { subspaces: 32, centroids: 256, iterations: 20, sample: 20_000, seed: 0x5eed };
