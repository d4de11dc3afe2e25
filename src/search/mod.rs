//! Search: the catalog format and its vectors, the bundle format, item ids, and fused ranking.

pub mod bundle;
pub mod catalog;
pub mod item_id;
pub mod rank;
pub mod synthetic;
