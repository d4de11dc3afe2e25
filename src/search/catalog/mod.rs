//! The catalog as static files: a JSON manifest (`catalog.json`) and one little-endian binary
//! of L2-normalised vectors (`vectors.bin`), item after item: its image vector, then its name
//! vector, as `i8` (one scale per vector kind for the whole catalog, in the manifest) or `f32`.
//! Loading checks everything a mismatched or damaged catalog could get wrong.
//!
//! [`format`] holds the manifest's types, [`quantize`] the i8 storage, [`load`] the reading and
//! its checks; this module the catalog itself and access to its vectors.

mod compact_files;
mod format;
mod load;
mod manifest_size;
mod quantize;
mod thumbnail_check;

use std::borrow::Cow;

pub use format::{
    check_thumbnail_side, vectors_file_size, MAX_THUMBNAIL_SIDE, CompactInfo, Item, ListedFile, Manifest, PageCatalog, COMPACT_FILE, PAGE_FORMAT, PAGE_MANIFEST_FILE, PAGE_VERSION, ModelInfo, RankingDefaults, TunedMetrics, TunedRanking, UtcSeconds, VectorDtype,
    SourcesRecord, VectorKind, VectorOffsets, VectorScales, VectorsInfo, FORMAT, MANIFEST_FILE, MAX_EMBEDDING_DIM, OLDEST_VERSION, VECTORS_FILE, VERSION,
};
pub use compact_files::CompactOptions;
pub use manifest_size::{check_manifest_bytes, items_bytes, max_items, MAX_MANIFEST_BYTES};
pub(crate) use compact_files::read_codes;
pub(crate) use load::validate_manifest;
pub use quantize::{ScaleRule, I8_LENGTH_TOLERANCE};
pub use thumbnail_check::check_thumbnail;

use crate::digest::sha256_hex_of_parts;
use crate::error::CatalogError;
use crate::models::config::PreprocessConfig;
use format::{value_count, LAYOUT};
use load::check_finite;
use quantize::{dequantise, length};

/// The vectors of a catalog, in the file's layout: per item, its image vector then its name
/// vector, `embedding_dim` values each.
#[derive(Debug, Clone, PartialEq)]
pub enum Vectors {
    F32(Vec<f32>),
    I8 { values: Vec<i8>, scales: VectorScales, offsets: VectorOffsets },
}

/// A loaded catalog: its manifest and its unit vectors.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub manifest: Manifest,
    vectors: Vectors,
}

impl Catalog {
    /// Builds a catalog from unit vectors. `vectors[i] = (image, name)` for `items[i]`.
    pub fn new(
        model: ModelInfo,
        preprocessing: PreprocessConfig,
        ranking: RankingDefaults,
        items: Vec<Item>,
        vectors: &[(Vec<f32>, Vec<f32>)],
    ) -> Result<Self, CatalogError> {
        if items.len() != vectors.len() {
            return Err(CatalogError::Invalid(format!(
                "{} items but {} vector pairs",
                items.len(),
                vectors.len()
            )));
        }
        let dim = model.embedding_dim;
        let mut values = Vec::with_capacity(value_count(items.len(), dim)?);
        for (img, name) in vectors {
            if img.len() != dim || name.len() != dim {
                return Err(CatalogError::DimensionMismatch {
                    catalog_dim: dim,
                    model_dim: img.len().max(name.len()),
                });
            }
            values.extend_from_slice(img);
            values.extend_from_slice(name);
        }
        Self::from_f32(model, preprocessing, ranking, items, values)
    }

    /// Builds a catalog from unit vectors already in the file's layout: per item, its image
    /// vector then its name vector.
    pub fn from_f32(
        model: ModelInfo,
        preprocessing: PreprocessConfig,
        ranking: RankingDefaults,
        items: Vec<Item>,
        values: Vec<f32>,
    ) -> Result<Self, CatalogError> {
        let expected = value_count(items.len(), model.embedding_dim)?;
        if values.len() != expected {
            return Err(CatalogError::Invalid(format!(
                "{} items of {}-dim vector pairs need {expected} values, not {}",
                items.len(),
                model.embedding_dim,
                values.len()
            )));
        }
        check_finite(&items, model.embedding_dim, &values)?;
        let mut catalog = Self {
            manifest: Manifest {
                format: FORMAT.into(),
                version: VERSION,
                model,
                preprocessing,
                vectors: VectorsInfo {
                    file: VECTORS_FILE.into(),
                    dtype: VectorDtype::F32.name().into(),
                    layout: LAYOUT.into(),
                    sha256: String::new(),
                    scales: None,
                    offsets: None,
                },
                ranking,
                sources: None,
                compact: None,
                items,
            },
            vectors: Vectors::F32(values),
        };
        catalog.manifest.vectors.sha256 = catalog.vectors_sha256();
        catalog.validate_items()?;
        Ok(catalog)
    }

    /// The manifest as pretty JSON.
    pub fn manifest_json(&self) -> String {
        serde_json::to_string_pretty(&self.manifest).expect("manifest serialises")
    }

    /// The catalog as a bundle ships it to the page: what the page uses and no more. Items keep
    /// their id, name, thumbnail and fields; their source images as given to `build` (local
    /// paths), their descriptions and the `sources` record (what `build --update` reads) are
    /// left out.
    pub fn for_page(mut self) -> Self {
        self.manifest.sources = None;
        for item in &mut self.manifest.items {
            item.image = String::new();
            item.description = None;
        }
        self
    }

    /// The manifest as `catalog.json` holds it (pretty JSON), refused when larger than
    /// [`MAX_MANIFEST_BYTES`]: what every writer writes, so that every reader reads it.
    pub fn manifest_file(&self) -> Result<String, CatalogError> {
        let json = self.manifest_json();
        check_manifest_bytes(json.len() as u64, "its catalog.json would take", "")?;
        Ok(json)
    }

    /// The vectors file's bytes.
    pub fn vectors_bytes(&self) -> Vec<u8> {
        match &self.vectors {
            Vectors::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Vectors::I8 { values, .. } => values.iter().map(|&q| q as u8).collect(),
        }
    }

    /// sha256 of `vectors_bytes()`, a block at a time.
    fn vectors_sha256(&self) -> String {
        match &self.vectors {
            Vectors::F32(v) => sha256_hex_of_parts(
                v.chunks(4096).map(|c| c.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()),
            ),
            Vectors::I8 { values, .. } => {
                sha256_hex_of_parts(values.chunks(1 << 16).map(|c| c.iter().map(|&q| q as u8).collect::<Vec<u8>>()))
            }
        }
    }

    pub fn len(&self) -> usize {
        self.manifest.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.manifest.items.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.manifest.model.embedding_dim
    }

    pub fn items(&self) -> &[Item] {
        &self.manifest.items
    }

    /// The stored vectors, in the file's layout.
    pub fn vectors(&self) -> &Vectors {
        &self.vectors
    }

    pub fn dtype(&self) -> VectorDtype {
        match self.vectors {
            Vectors::F32(_) => VectorDtype::F32,
            Vectors::I8 { .. } => VectorDtype::I8,
        }
    }

    /// The `kind` vector of item `i`, de-quantised for i8 catalogs.
    pub fn vector(&self, i: usize, kind: VectorKind) -> Cow<'_, [f32]> {
        let d = self.dim();
        let at = (VectorKind::ALL.len() * i + kind.index()) * d;
        match &self.vectors {
            Vectors::F32(v) => Cow::Borrowed(&v[at..at + d]),
            Vectors::I8 { values, scales, offsets } => {
                let (s, m) = (scales.of(kind), offsets.of(kind));
                Cow::Owned(values[at..at + d].iter().zip(m).map(|(&q, &m)| dequantise(q, s, m)).collect())
            }
        }
    }

    pub fn image_vector(&self, i: usize) -> Cow<'_, [f32]> {
        self.vector(i, VectorKind::Image)
    }

    pub fn name_vector(&self, i: usize) -> Cow<'_, [f32]> {
        self.vector(i, VectorKind::Name)
    }

    /// Refuses a model that did not make this catalog: another embedding size, other
    /// weights (when their sha256 is known), or other preprocessing.
    pub fn check_model(
        &self,
        embedding_dim: usize,
        weights_sha256: Option<&str>,
        preprocessing: &PreprocessConfig,
    ) -> Result<(), CatalogError> {
        self.manifest.check_model(embedding_dim, weights_sha256, preprocessing)
    }

    /// Problems with the vectors themselves: non-finite values or vectors not of unit length
    /// (within 1e-3 for f32; within [`I8_LENGTH_TOLERANCE`] for i8, whose rounding moves the
    /// length a little).
    pub fn vector_problems(&self) -> Vec<String> {
        let tolerance = match self.dtype() {
            VectorDtype::F32 => 1e-3,
            VectorDtype::I8 => I8_LENGTH_TOLERANCE,
        };
        let mut out = Vec::new();
        for (i, item) in self.items().iter().enumerate() {
            for kind in VectorKind::ALL {
                let (v, label) = (self.vector(i, kind), kind.label());
                if v.iter().any(|x| !x.is_finite()) {
                    out.push(format!("item {:?}: {label} vector has non-finite values", item.id));
                    continue;
                }
                let norm = length(&v);
                if (norm - 1.0).abs() > tolerance {
                    out.push(format!("item {:?}: {label} vector has length {norm:.4}, not 1", item.id));
                }
            }
        }
        out
    }
}

impl Manifest {
    /// Refuses a model that did not make this catalog: another embedding size, other
    /// weights (when their sha256 is known), or other preprocessing.
    pub fn check_model(
        &self,
        embedding_dim: usize,
        weights_sha256: Option<&str>,
        preprocessing: &PreprocessConfig,
    ) -> Result<(), CatalogError> {
        let m = &self.model;
        if m.embedding_dim != embedding_dim {
            return Err(CatalogError::DimensionMismatch {
                catalog_dim: m.embedding_dim,
                model_dim: embedding_dim,
            });
        }
        if let Some(sha) = weights_sha256 {
            if sha != m.weights_sha256 && !m.equivalent_weights_sha256.iter().any(|s| s == sha) {
                return Err(CatalogError::ModelMismatch {
                    catalog_model: m.name.clone(),
                    catalog_sha: m.weights_sha256.clone(),
                    model_sha: sha.to_string(),
                });
            }
        }
        if !self.preprocessing.same_as(preprocessing) {
            return Err(CatalogError::PreprocessMismatch {
                catalog: format!("{:?}", self.preprocessing),
                model: format!("{preprocessing:?}"),
            });
        }
        Ok(())
    }
}
