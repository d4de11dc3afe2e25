//! The catalog's files as they are written: the manifest's types (`catalog.json`), the names of
//! the two files, and the layout of `vectors.bin`: item after item, its image vector then its
//! name vector, `embedding_dim` little-endian values each, `i8` or `f32`.

use serde::{Deserialize, Serialize};

use crate::error::CatalogError;
use crate::models::config::PreprocessConfig;

pub const FORMAT: &str = "clipmatch-catalog";
/// The version written. Version 1 (f32 vectors only) is still read.
pub const VERSION: u32 = 2;
pub const OLDEST_VERSION: u32 = 1;
pub const MANIFEST_FILE: &str = "catalog.json";
pub const VECTORS_FILE: &str = "vectors.bin";

/// Largest `embedding_dim` a catalog may declare (CLIP's are 512 to 1024).
pub const MAX_EMBEDDING_DIM: usize = 65_536;

pub(super) const LAYOUT: &str = "per item in manifest order: image vector then name vector, embedding_dim values each, little-endian";
pub(super) const LAYOUT_I8: &str = "per item in manifest order: image vector then name vector, embedding_dim values each, i8 (value[j] = offsets.image[j] + q x scales.image, or the text ones)";

/// The two vectors of an item, in the order `vectors.bin` stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorKind {
    /// The embedding of the product's image.
    Image,
    /// The embedding of the product's name (its scale and offsets are the manifest's `text` ones).
    Name,
}

impl VectorKind {
    /// Both kinds, in file order.
    pub const ALL: [VectorKind; 2] = [VectorKind::Image, VectorKind::Name];

    /// Where this kind sits in an item's pair of vectors.
    pub fn index(self) -> usize {
        match self {
            VectorKind::Image => 0,
            VectorKind::Name => 1,
        }
    }

    /// The kind of the `v`-th vector of the file (counting from 0, all items in turn).
    pub fn of_vector(v: usize) -> Self {
        Self::ALL[v % Self::ALL.len()]
    }

    /// "image" or "name", for messages.
    pub fn label(self) -> &'static str {
        match self {
            VectorKind::Image => "image",
            VectorKind::Name => "name",
        }
    }
}

/// The model a catalog was embedded with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelInfo {
    /// Where the model came from, e.g. `openai/clip-vit-base-patch32` or a folder name.
    pub name: String,
    /// sha256 of the `model.safetensors` the catalog was built with.
    pub weights_sha256: String,
    /// sha256 of other weight files of the same model (e.g. an exported vision tower).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub equivalent_weights_sha256: Vec<String>,
    pub embedding_dim: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VectorsInfo {
    pub file: String,
    /// `"i8"` or `"f32"` (version 1: `"f32"` only).
    pub dtype: String,
    /// Human-readable description of the layout, for people reading the manifest.
    pub layout: String,
    pub sha256: String,
    /// i8 only: value = offset + stored integer x scale, one scale per vector kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scales: Option<VectorScales>,
    /// i8 only, optional (absent: 0): per vector kind, one offset per dimension (the catalog's
    /// mean vector of that kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offsets: Option<VectorOffsets>,
}

/// The offsets of an i8 catalog: `embedding_dim` values per vector kind.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VectorOffsets {
    pub image: Vec<f32>,
    pub text: Vec<f32>,
}

impl VectorOffsets {
    pub fn of(&self, kind: VectorKind) -> &[f32] {
        match kind {
            VectorKind::Image => &self.image,
            VectorKind::Name => &self.text,
        }
    }
}

/// The scales of an i8 catalog: a stored value `q` stands for `offset + q * scale`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct VectorScales {
    pub image: f32,
    pub text: f32,
}

impl VectorScales {
    pub fn of(&self, kind: VectorKind) -> f32 {
        match kind {
            VectorKind::Image => self.image,
            VectorKind::Name => self.text,
        }
    }
}

/// How catalog vectors are stored in `vectors.bin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(not(target_family = "wasm"), derive(clap::ValueEnum))]
pub enum VectorDtype {
    /// One signed byte per value, -127..=127, times the catalog's scale for that vector kind.
    #[default]
    #[cfg_attr(not(target_family = "wasm"), value(help = None::<&str>))]
    I8,
    /// Little-endian f32.
    #[cfg_attr(not(target_family = "wasm"), value(help = None::<&str>))]
    F32,
}

impl VectorDtype {
    /// The manifest's name for it (`vectors.dtype`).
    pub fn name(self) -> &'static str {
        match self {
            VectorDtype::I8 => "i8",
            VectorDtype::F32 => "f32",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "i8" => Some(VectorDtype::I8),
            "f32" => Some(VectorDtype::F32),
            _ => None,
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            VectorDtype::I8 => 1,
            VectorDtype::F32 => 4,
        }
    }
}

/// Size of a vectors file: `items x 2 x embedding_dim x dtype bytes` (ViT-B/32 in i8: 1024
/// bytes per item); `None` when that is more than this machine can address (on wasm32, 4 GiB).
pub fn vectors_file_size(items: usize, dim: usize, dtype: VectorDtype) -> Option<usize> {
    checked_value_count(items, dim)?.checked_mul(dtype.bytes())
}

fn checked_value_count(items: usize, dim: usize) -> Option<usize> {
    items.checked_mul(VectorKind::ALL.len())?.checked_mul(dim)
}

/// Number of values a catalog's vectors hold: `items x 2 x embedding_dim`.
pub(super) fn value_count(items: usize, dim: usize) -> Result<usize, CatalogError> {
    checked_value_count(items, dim).ok_or_else(|| too_many_values(items, dim))
}

pub(super) fn too_many_values(items: usize, dim: usize) -> CatalogError {
    CatalogError::Invalid(format!(
        "{items} items of {dim}-dimensional vector pairs are more values than this machine can address"
    ))
}

/// How results are scored unless the user says otherwise.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct RankingDefaults {
    pub text_weight: f32,
    pub image_weight: f32,
    pub top_k: usize,
    /// Below this best fused score the answer is "no confident match".
    pub min_score: f32,
}

impl Default for RankingDefaults {
    fn default() -> Self {
        Self {
            text_weight: 1.5,
            image_weight: 0.5,
            top_k: 5,
            min_score: 0.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Item {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The source image, as given to `build`.
    pub image: String,
    /// A small JPEG beside the manifest, relative to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub model: ModelInfo,
    pub preprocessing: PreprocessConfig,
    pub vectors: VectorsInfo,
    pub ranking: RankingDefaults,
    pub items: Vec<Item>,
}
