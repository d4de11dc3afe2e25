//! The image pipeline: encoded bytes to upright RGB pixels (`decode`, the metadata its decoders
//! may hold bounded by `metadata`, walking files by `structure`), a region of them (`crop`),
//! pixels to a model's input (`preprocess`), and catalog thumbnails (`thumbnail`).

pub mod crop;
pub mod decode;
pub mod metadata;
pub mod preprocess;
pub mod reduced;
pub mod structure;
/// Catalog building only (the `jpeg-encoder` crate): not in the wasm package.
#[cfg(not(target_arch = "wasm32"))]
pub mod thumbnail;
