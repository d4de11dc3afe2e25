//! Search: the catalog format and its vectors, item ids, and fused ranking.

pub mod catalog;
pub mod item_id;
pub mod rank;
pub mod synthetic;
