//! Search: the catalog format and its vectors, the bundle format, item ids, fused ranking and its options, the
//! two pipelines (building a catalog and a search session over one), and measuring and tuning search quality on
//! labelled photos (`eval`).

pub mod bundle;
/// The model a bundle names, loaded and checked against its description.
pub mod bundle_model;
/// What a build's vectors depend on (native only, like the builder).
#[cfg(not(target_arch = "wasm32"))]
pub mod build_recipe;
pub mod catalog;
/// Compact codes (product quantisation) for ranking big catalogs.
pub mod compact;
/// Building catalogs is the native tool's job (the page only searches).
#[cfg(not(target_arch = "wasm32"))]
pub mod catalog_builder;
/// Checkpoints of interrupted builds, updates and shards: native only, like the builder.
#[cfg(not(target_arch = "wasm32"))]
pub mod checkpoint;
pub mod eval;
/// The shop's own columns of a product list (url, price, sku, ...), kept per item.
pub mod item_fields;
pub mod item_id;
/// An item's name and description: bounded, no control characters.
pub mod item_text;
#[cfg(not(target_arch = "wasm32"))]
pub mod merge;
#[cfg(not(target_arch = "wasm32"))]
pub mod previous_catalog;
pub mod rank;
pub mod ranking_options;
pub mod session;
#[cfg(not(target_arch = "wasm32"))]
pub mod shard;
/// Seeded random numbers (also for cross-validation folds) and benchmark catalogs.
pub mod synthetic;
