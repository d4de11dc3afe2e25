//! Search: the catalog format and its vectors, the bundle format, item ids, fused ranking and its options, the
//! two pipelines (building a catalog and a search session over one), and measuring and tuning search quality on
//! labelled photos (`eval`).

pub mod bundle;
/// The model a bundle names, loaded and checked against its description.
pub mod bundle_model;
pub mod catalog;
/// Building catalogs is the native tool's job (the page only searches).
#[cfg(not(target_arch = "wasm32"))]
pub mod catalog_builder;
pub mod eval;
pub mod item_id;
pub mod rank;
pub mod ranking_options;
pub mod session;
/// Seeded random numbers (also for cross-validation folds) and benchmark catalogs.
pub mod synthetic;
