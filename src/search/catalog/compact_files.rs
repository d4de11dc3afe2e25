//! A catalog's compact codes as files: `compact.bin`, recorded in the manifest's `compact`
//! entry (size, sha256, shape), checked against it when read; and the page's manifest
//! (`page-catalog.json`) derived from the catalog's.

use super::format::{
    CompactInfo, ListedFile, PageCatalog, COMPACT_FILE, COMPACT_LAYOUT, PAGE_FORMAT, PAGE_VERSION,
};
use super::Catalog;
use crate::digest::{is_sha256_hex, sha256_hex};
use crate::error::{CatalogError, SettingError};
use crate::search::compact::pq::shape_problem;
use crate::search::compact::{CompactCodes, CompactShape, TrainingParams, MAX_CENTROIDS};
use crate::search::rank::FusionWeights;

/// How a catalog's compact codes are made and used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompactOptions {
    /// The first stage (`subspaces` bytes an item).
    pub training: TrainingParams,
    /// Bytes of the residual stage's code (0: none).
    pub residual_subspaces: usize,
    /// The page ranks with the codes from this many items on; smaller catalogs exactly.
    pub min_items: usize,
}

impl CompactOptions {
    /// Refuses codes that cannot be made for `dim`-dimensional vectors (a stage's bytes that do
    /// not divide it, no first stage, an impossible number of centres): checked before a build
    /// embeds anything.
    pub fn check(&self, dim: usize) -> Result<(), SettingError> {
        let centroids = self.training.centroids;
        let residual = Some(self.residual_subspaces).filter(|&m| m > 0);
        match [Some(self.training.subspaces), residual].into_iter().flatten().find_map(|m| shape_problem(dim, m, centroids)) {
            Some(problem) => Err(SettingError::Compact(problem)),
            None => Ok(()),
        }
    }
}

/// The shape a `compact` entry describes for a catalog of `items` items of `dim` values.
pub(super) fn shape_of(info: &CompactInfo, items: usize, dim: usize) -> CompactShape {
    CompactShape { items, dim, subspaces: info.subspaces, residual_subspaces: info.residual_subspaces, centroids: info.centroids }
}

/// The weights a `compact` entry's codes were fused with.
pub fn compact_weights(info: &CompactInfo) -> FusionWeights {
    FusionWeights { text: info.text_weight, image: info.image_weight }
}

/// Refuses a `compact` entry that names another file or an impossible shape.
pub(super) fn check_info(info: &CompactInfo, items: usize, dim: usize) -> Result<(), CatalogError> {
    let invalid = |m: String| Err(CatalogError::Invalid(m));
    if info.codes.file != COMPACT_FILE {
        return invalid(format!("compact.codes.file must be {COMPACT_FILE:?}"));
    }
    if !is_sha256_hex(&info.codes.sha256) {
        return invalid("compact.codes.sha256 is not a sha256 (64 lowercase hex digits)".into());
    }
    if info.layout != COMPACT_LAYOUT {
        return invalid("the compact codes are of an older layout (one code per vector kind): build the catalog again with `clipmatch build ... --compact`".into());
    }
    let fits = |m: usize| m == 0 || dim.is_multiple_of(m);
    if info.subspaces == 0 || !fits(info.subspaces) || !fits(info.residual_subspaces) || !(1..=MAX_CENTROIDS).contains(&info.centroids) {
        return invalid(format!(
            "compact codes of {} + {} subspaces x {} centroids do not fit {dim}-dimensional vectors (subspaces must divide it; 1 to {MAX_CENTROIDS} centroids)",
            info.subspaces, info.residual_subspaces, info.centroids
        ));
    }
    if !(info.text_weight.is_finite() && info.image_weight.is_finite()) {
        return invalid("compact.text_weight and compact.image_weight must be finite numbers".into());
    }
    match shape_of(info, items, dim).file_size() {
        Some(n) if n as u64 == info.codes.bytes => Ok(()),
        Some(n) => invalid(format!("compact.codes.bytes is {}, but {items} items with these codes take {n}", info.codes.bytes)),
        None => invalid("the compact codes' size is more than this machine can address".into()),
    }
}

impl Catalog {
    /// The catalog with compact codes of its stored vectors (recorded in its manifest), and
    /// the codes.
    pub fn with_compact(mut self, options: CompactOptions) -> Result<(Self, CompactCodes), CatalogError> {
        let codes = CompactCodes::for_catalog(&self, options.training, options.residual_subspaces)?;
        let bytes = codes.to_bytes();
        self.manifest.compact = Some(CompactInfo {
            codes: ListedFile { file: COMPACT_FILE.into(), bytes: bytes.len() as u64, sha256: sha256_hex(&bytes) },
            subspaces: options.training.subspaces,
            residual_subspaces: options.residual_subspaces,
            text_weight: codes.weights.text,
            image_weight: codes.weights.image,
            centroids: options.training.centroids,
            min_items: options.min_items,
            layout: COMPACT_LAYOUT.into(),
        });
        Ok((self, codes))
    }

    /// Reads `compact.bin` against the manifest: its size, sha256 and values. A catalog without
    /// compact codes has nothing to read.
    pub fn compact_codes(&self, bytes: &[u8]) -> Result<CompactCodes, CatalogError> {
        let info = self.manifest.compact.as_ref().ok_or_else(|| CatalogError::Invalid("this catalog has no compact codes".into()))?;
        read_codes(info, self.len(), self.dim(), bytes)
    }

    /// The page's manifest, if the catalog has compact codes.
    pub fn page_catalog(&self) -> Option<PageCatalog> {
        let m = &self.manifest;
        Some(PageCatalog {
            format: PAGE_FORMAT.into(),
            version: PAGE_VERSION,
            model: m.model.clone(),
            preprocessing: m.preprocessing.clone(),
            vectors: m.vectors.clone(),
            ranking: m.ranking,
            compact: m.compact.clone()?,
            ids: m.items.iter().map(|i| i.id.clone()).collect(),
            names: m.items.iter().map(|i| i.name.clone()).collect(),
            fields: m.items.iter().any(|i| !i.fields.is_empty()).then(|| m.items.iter().map(|i| i.fields.clone()).collect()),
        })
    }
}

/// `compact.bin` read and checked against a `compact` entry.
pub(crate) fn read_codes(info: &CompactInfo, items: usize, dim: usize, bytes: &[u8]) -> Result<CompactCodes, CatalogError> {
    check_info(info, items, dim)?;
    if bytes.len() as u64 == info.codes.bytes && sha256_hex(bytes) != info.codes.sha256 {
        return Err(CatalogError::Invalid(
            "the compact codes file does not match the sha256 in the manifest: it is damaged or from another catalog".into(),
        ));
    }
    CompactCodes::from_bytes(shape_of(info, items, dim), compact_weights(info), bytes)
}
