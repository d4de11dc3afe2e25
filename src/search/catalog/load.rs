//! Reading a catalog from its two files, and the checks every catalog passes (read or built):
//! format and version, dtype, scales, offsets, sizes, sha256, finite values, items and ids.

use super::manifest_size::check_manifest_bytes;
use super::format::{
    too_many_values, vectors_file_size, Item, Manifest, VectorDtype, VectorKind, VectorOffsets, FORMAT,
    MAX_EMBEDDING_DIM, OLDEST_VERSION, VECTORS_FILE, VERSION,
};
use super::{Catalog, Vectors};
use crate::digest::sha256_hex;
use crate::error::CatalogError;
use crate::search::ranking_options::RankingOptions;

impl Catalog {
    /// Reads a catalog from its manifest JSON (at most [`super::MAX_MANIFEST_BYTES`]) and the bytes of
    /// its vectors file.
    pub fn from_parts(manifest_json: &[u8], vectors: &[u8]) -> Result<Self, CatalogError> {
        check_manifest_bytes(manifest_json.len() as u64, "catalog.json takes", "")?;
        let head: serde_json::Value = serde_json::from_slice(manifest_json)
            .map_err(|e| CatalogError::Manifest(e.to_string()))?;
        let format = head.get("format").and_then(|v| v.as_str()).unwrap_or("");
        let version = head.get("version").and_then(|v| v.as_u64()).and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
        if format != FORMAT || !(OLDEST_VERSION..=VERSION).contains(&version) {
            return Err(CatalogError::UnsupportedVersion {
                found: format.to_string(),
                version,
                expected: FORMAT,
                supported: VERSION,
            });
        }
        let manifest: Manifest =
            serde_json::from_value(head).map_err(|e| CatalogError::Manifest(e.to_string()))?;
        let dtype = match VectorDtype::parse(&manifest.vectors.dtype) {
            Some(VectorDtype::I8) if version < 2 => {
                return Err(CatalogError::Invalid(format!(
                    "version {version} catalogs hold f32 vectors only, yet this one says \"i8\""
                )))
            }
            Some(d) => d,
            None => return Err(CatalogError::UnsupportedDtype(manifest.vectors.dtype.clone())),
        };
        let dim = manifest.model.embedding_dim;
        if dim == 0 || dim > MAX_EMBEDDING_DIM {
            return Err(CatalogError::Invalid(format!(
                "embedding_dim is {dim}; it must be 1 to {MAX_EMBEDDING_DIM}"
            )));
        }
        let scales = match (dtype, manifest.vectors.scales) {
            (VectorDtype::I8, None) => {
                return Err(CatalogError::Invalid(
                    "an i8 catalog needs vectors.scales (image and text) in its manifest; it has none".into(),
                ))
            }
            (VectorDtype::I8, Some(s)) if !(s.image.is_finite() && s.text.is_finite() && s.image > 0.0 && s.text > 0.0) => {
                return Err(CatalogError::Invalid(format!(
                    "vectors.scales must be positive finite numbers, not image {} and text {}",
                    s.image, s.text
                )))
            }
            (_, s) => s,
        };
        let offsets = match &manifest.vectors.offsets {
            _ if dtype != VectorDtype::I8 => None,
            None => Some(VectorOffsets { image: vec![0.0; dim], text: vec![0.0; dim] }),
            Some(o) if o.image.len() != dim || o.text.len() != dim => {
                return Err(CatalogError::Invalid(format!(
                    "vectors.offsets must hold {dim} values per kind (embedding_dim), not image {} and text {}",
                    o.image.len(),
                    o.text.len()
                )))
            }
            Some(o) if !o.image.iter().chain(&o.text).all(|x| x.is_finite()) => {
                return Err(CatalogError::Invalid("vectors.offsets must be finite numbers".into()))
            }
            Some(o) => Some(o.clone()),
        };
        let n = manifest.items.len();
        let expected = vectors_file_size(n, dim, dtype).ok_or_else(|| too_many_values(n, dim))?;
        if vectors.len() != expected {
            return Err(CatalogError::VectorsSize {
                found: vectors.len(),
                expected,
                items: n,
                dim,
                dtype_bytes: dtype.bytes(),
                hint: if vectors.len() < expected {
                    "it is truncated"
                } else {
                    "it is larger than the manifest says: it belongs to another catalog"
                },
            });
        }
        if !manifest.vectors.sha256.is_empty() && sha256_hex(vectors) != manifest.vectors.sha256 {
            return Err(CatalogError::Invalid(
                "the vectors file does not match the sha256 in the manifest: it is damaged or from another catalog".into(),
            ));
        }
        let vectors = match (scales, offsets) {
            (Some(scales), Some(offsets)) => {
                let values: Vec<i8> = vectors.iter().map(|&b| b as i8).collect();
                if values.contains(&i8::MIN) {
                    return Err(CatalogError::Invalid("the i8 vectors hold -128, outside -127..=127: the file is damaged".into()));
                }
                Vectors::I8 { values, scales, offsets }
            }
            _ => {
                let values: Vec<f32> =
                    vectors.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                check_finite(&manifest.items, dim, &values)?;
                Vectors::F32(values)
            }
        };
        if let Some(info) = &manifest.compact {
            super::compact_files::check_info(info, n, dim)?;
        }
        let catalog = Self { manifest, vectors };
        catalog.validate_items()?;
        Ok(catalog)
    }

    /// Refuses what would let a manifest name files outside its folder or collide: ids not
    /// allowed by [`crate::search::item_id::RULE`], ids equal but for case, a thumbnail other than
    /// `thumbs/<id>.jpg`, a vectors file other than [`VECTORS_FILE`]; and ranking settings that
/// [`RankingOptions::check`] refuses.
    pub(super) fn validate_items(&self) -> Result<(), CatalogError> {
        validate_manifest(&self.manifest)
    }
}

/// The checks of [`Catalog::validate_items`] on a manifest alone.
pub(crate) fn validate_manifest(manifest: &Manifest) -> Result<(), CatalogError> {
    use crate::search::item_id;
    let invalid = |msg: String| Err(CatalogError::Invalid(msg));
    if manifest.vectors.file != VECTORS_FILE {
        return invalid(format!(
            "vectors.file is {}; it must be {VECTORS_FILE:?}",
            item_id::quoted(&manifest.vectors.file)
        ));
    }
    let mut seen: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    for (i, item) in manifest.items.iter().enumerate() {
        if let Err(e) = item_id::check(&item.id) {
            return invalid(format!("item {}: {e}", i + 1));
        }
        if let Some(other) = seen.insert(item_id::collision_key(&item.id), &item.id) {
            return invalid(if other == item.id {
                format!("item id {:?} appears twice", item.id)
            } else {
                format!("item ids {other:?} and {:?} differ only in case (their thumbnails would be one file on macOS and Windows)", item.id)
            });
        }
        if let Err(e) = item.fields.check() {
            return invalid(format!("item {:?}: {e}", item.id));
        }
        if let Some(t) = &item.thumbnail {
            let allowed = item_id::thumbnail_file(&item.id);
            if *t != allowed {
                return invalid(format!(
                    "item {:?}: thumbnail is {}; it must be {allowed:?} or absent",
                    item.id,
                    item_id::quoted(t)
                ));
            }
        }
    }
    if let Some(sources) = &manifest.sources {
        let n = manifest.items.len();
        if sources.image_sha256.len() != n {
            return invalid(format!("sources.image_sha256 lists {} images for {n} items", sources.image_sha256.len()));
        }
        if let Some(i) = sources.image_sha256.iter().position(|s| !crate::digest::is_sha256_hex(s)) {
            return invalid(format!("sources.image_sha256[{i}] is not a sha256 (64 lowercase hex digits)"));
        }
        if let Err(e) = super::format::check_thumbnail_side(sources.thumbnail_side) {
            return invalid(format!("sources: {e}"));
        }
    }
    if let Err(e) = RankingOptions::from(&manifest.ranking).check() {
        return invalid(format!("ranking: {e}"));
    }
    Ok(())
}

/// Refuses NaN and infinite values, naming the first item that holds one. `values` are laid
/// out as in the vectors file.
pub(super) fn check_finite(items: &[Item], dim: usize, values: &[f32]) -> Result<(), CatalogError> {
    let Some(at) = values.iter().position(|x| !x.is_finite()) else { return Ok(()) };
    let vector = at / dim;
    Err(CatalogError::NonFiniteVector {
        item: items.get(vector / VectorKind::ALL.len()).map_or_else(String::new, |i| i.id.clone()),
        kind: VectorKind::of_vector(vector).label(),
    })
}
