//! Search: the catalog format and its vectors, the bundle format, item ids, fused ranking and its options, and the
//! two pipelines: building a catalog and a search session over one.

pub mod bundle;
pub mod catalog;
pub mod catalog_builder;
pub mod item_id;
pub mod rank;
pub mod ranking_options;
pub mod session;
pub mod synthetic;
