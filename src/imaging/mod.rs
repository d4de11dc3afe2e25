//! The image pipeline: encoded bytes to upright RGB pixels (`decode`), pixels to a model's
//! input (`preprocess`), and catalog thumbnails (`thumbnail`).

pub mod decode;
pub mod preprocess;
pub mod thumbnail;
