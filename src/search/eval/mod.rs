//! Measuring and tuning search quality on a shop's own labelled photos (`clipmatch eval` and
//! `clipmatch tune`). The photos are embedded once; every figure is then computed from their
//! similarities to the catalog's stored vectors, for any weights, fold or product left out.
//!
//! [`labels`]: which item a photo shows; [`similarity`]: the photos against the catalog;
//! [`metrics`]: the figures; [`leave_out`]: "not in catalog" queries by leaving products out;
//! [`folds`]: cross-validation folds that keep a product's photos together; [`tuning`]:
//! choosing weights and threshold, cross-validated; [`evaluation`]: all of it for one catalog;
//! natively also [`embed`] (photos to vectors) and [`report`] (the static HTML report).

#[cfg(not(target_arch = "wasm32"))]
pub mod embed;
pub mod evaluation;
pub mod folds;
pub mod labels;
pub mod leave_out;
pub mod metrics;
#[cfg(not(target_arch = "wasm32"))]
pub mod report;
pub mod similarity;
pub mod tuning;

pub use evaluation::{evaluate, Evaluation, Method};
pub use labels::{ItemLookup, Truth};
pub use similarity::Similarities;
pub use tuning::TuneOptions;
