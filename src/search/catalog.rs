//! The catalog as static files: a JSON manifest (`catalog.json`) and one little-endian binary
//! of L2-normalised vectors (`vectors.bin`), item after item: its image vector, then its name
//! vector, as `i8` (one scale per vector kind for the whole catalog, in the manifest) or `f32`.
//! Loading checks everything a mismatched or damaged catalog could get wrong.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::models::config::PreprocessConfig;
use crate::digest::{sha256_hex, sha256_hex_of_parts};
use crate::error::CatalogError;

pub const FORMAT: &str = "clipmatch-catalog";
/// The version written. Version 1 (f32 vectors only) is still read.
pub const VERSION: u32 = 2;
pub const OLDEST_VERSION: u32 = 1;
pub const MANIFEST_FILE: &str = "catalog.json";
pub const VECTORS_FILE: &str = "vectors.bin";

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

/// How catalog vectors are stored in `vectors.bin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VectorDtype {
    /// One signed byte per value, -127..=127, times the catalog's scale for that vector kind.
    #[default]
    I8,
    /// Little-endian f32.
    F32,
}

impl VectorDtype {
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

/// Largest `embedding_dim` a catalog may declare (CLIP's are 512 to 1024).
pub const MAX_EMBEDDING_DIM: usize = 65_536;

/// Size of a vectors file: `items x 2 x embedding_dim x dtype bytes` (ViT-B/32 in i8: 1024
/// bytes per item); `None` when that is more than this machine can address (on wasm32, 4 GiB).
pub fn vectors_file_size(items: usize, dim: usize, dtype: VectorDtype) -> Option<usize> {
    items.checked_mul(2)?.checked_mul(dim)?.checked_mul(dtype.bytes())
}

/// Number of values a catalog's vectors hold: `items x 2 x embedding_dim`.
fn value_count(items: usize, dim: usize) -> Result<usize, CatalogError> {
    items.checked_mul(2).and_then(|n| n.checked_mul(dim)).ok_or_else(|| too_many_values(items, dim))
}

fn too_many_values(items: usize, dim: usize) -> CatalogError {
    CatalogError::Invalid(format!(
        "{items} items of {dim}-dimensional vector pairs are more values than this machine can address"
    ))
}

/// Refuses NaN and infinite values, naming the first item that holds one. `values` are laid
/// out as in the vectors file.
fn check_finite(items: &[Item], dim: usize, values: &[f32]) -> Result<(), CatalogError> {
    let Some(at) = values.iter().position(|x| !x.is_finite()) else { return Ok(()) };
    let vector = at / dim;
    Err(CatalogError::NonFiniteVector {
        item: items.get(vector / 2).map_or_else(String::new, |i| i.id.clone()),
        kind: if vector.is_multiple_of(2) { "image" } else { "name" },
    })
}

/// The scales of an i8 catalog: a stored value `q` stands for `offset + q * scale`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct VectorScales {
    pub image: f32,
    pub text: f32,
}

/// How `to_i8` picks each vector kind's scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScaleRule {
    /// The largest |difference from the offset| maps to 127: nothing is clamped.
    MaxAbs,
    /// The clipping level (a fraction of the largest |difference|) with the least squared
    /// quantisation error over the catalog's values; the few differences above it are clamped.
    #[default]
    LeastError,
}

/// The vectors of a catalog, in the file's layout: per item, its image vector then its name
/// vector, `embedding_dim` values each.
#[derive(Debug, Clone, PartialEq)]
pub enum Vectors {
    F32(Vec<f32>),
    I8 { values: Vec<i8>, scales: VectorScales, offsets: VectorOffsets },
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

/// A loaded catalog: its manifest and its unit vectors.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub manifest: Manifest,
    vectors: Vectors,
}

const LAYOUT: &str = "per item in manifest order: image vector then name vector, embedding_dim values each, little-endian";
const LAYOUT_I8: &str = "per item in manifest order: image vector then name vector, embedding_dim values each, i8 (value[j] = offsets.image[j] + q x scales.image, or the text ones)";

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
                    dtype: "f32".into(),
                    layout: LAYOUT.into(),
                    sha256: String::new(),
                    scales: None,
                    offsets: None,
                },
                ranking,
                items,
            },
            vectors: Vectors::F32(values),
        };
        catalog.manifest.vectors.sha256 = catalog.vectors_sha256();
        catalog.validate_items()?;
        Ok(catalog)
    }

    /// Reads a catalog from its manifest JSON and the bytes of its vectors file.
    pub fn from_parts(manifest_json: &[u8], vectors: &[u8]) -> Result<Self, CatalogError> {
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
        let catalog = Self { manifest, vectors };
        catalog.validate_items()?;
        Ok(catalog)
    }

    /// The same catalog with its vectors stored as `dtype`: f32 vectors are quantised to i8
    /// (scales chosen from the data by `rule`), i8 stay as they are. i8 vectors are not turned
    /// back into f32: the precision is gone.
    pub fn with_dtype(self, dtype: VectorDtype, rule: ScaleRule) -> Result<Self, CatalogError> {
        match (&self.vectors, dtype) {
            (Vectors::F32(_), VectorDtype::I8) => Ok(self.to_i8(rule)),
            (Vectors::I8 { .. }, VectorDtype::F32) => Err(CatalogError::Invalid(
                "this catalog stores i8 vectors; f32 vectors need a catalog built with --vector-dtype f32".into(),
            )),
            _ => Ok(self),
        }
    }

    /// The catalog with i8 vectors: per vector kind, the mean vector of the catalog is the
    /// offset and each value's difference from it is stored in steps of one scale (chosen by
    /// `rule`), rounded to the nearest step and clamped to -127..=127. CLIP vectors share a
    /// large common direction, so the differences span a much smaller range than the values.
    pub fn to_i8(&self, rule: ScaleRule) -> Self {
        let Vectors::F32(values) = &self.vectors else {
            return self.clone();
        };
        let d = self.dim();
        let kind = |k: usize| values.chunks_exact(d).skip(k).step_by(2);
        let mean = |k: usize| -> Vec<f32> {
            let mut sum = vec![0f64; d];
            for v in kind(k) {
                sum.iter_mut().zip(v).for_each(|(s, x)| *s += *x as f64);
            }
            sum.iter().map(|s| (s / self.len().max(1) as f64) as f32).collect()
        };
        let offsets = VectorOffsets { image: mean(0), text: mean(1) };
        let scales = VectorScales {
            image: choose_scale(residuals(values, d, 0, &offsets.image), values.len() / 2, rule),
            text: choose_scale(residuals(values, d, 1, &offsets.text), values.len() / 2, rule),
        };
        let q = values
            .chunks_exact(d)
            .enumerate()
            .flat_map(|(i, v)| {
                let (s, m) = if i % 2 == 0 { (scales.image, &offsets.image) } else { (scales.text, &offsets.text) };
                v.iter().zip(m).map(move |(x, m)| ((x - m) / s).round().clamp(-127.0, 127.0) as i8)
            })
            .collect();
        let mut manifest = self.manifest.clone();
        manifest.version = VERSION;
        manifest.vectors.dtype = VectorDtype::I8.name().into();
        manifest.vectors.layout = LAYOUT_I8.into();
        manifest.vectors.scales = Some(scales);
        manifest.vectors.offsets = Some(offsets.clone());
        let mut out = Self {
            manifest,
            vectors: Vectors::I8 { values: q, scales, offsets },
        };
        out.manifest.vectors.sha256 = out.vectors_sha256();
        out
    }

    /// Refuses what would let a manifest name files outside its folder or collide: ids not
    /// allowed by [`crate::search::item_id::RULE`], ids equal but for case, a thumbnail other than
    /// `thumbs/<id>.jpg`, a vectors file other than [`VECTORS_FILE`]; and non-finite weights.
    fn validate_items(&self) -> Result<(), CatalogError> {
        use crate::search::item_id;
        let invalid = |msg: String| Err(CatalogError::Invalid(msg));
        if self.manifest.vectors.file != VECTORS_FILE {
            return invalid(format!(
                "vectors.file is {}; it must be {VECTORS_FILE:?}",
                item_id::quoted(&self.manifest.vectors.file)
            ));
        }
        let mut seen: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
        for (i, item) in self.manifest.items.iter().enumerate() {
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
        let r = &self.manifest.ranking;
        if !(r.text_weight.is_finite() && r.image_weight.is_finite() && r.min_score.is_finite()) {
            return Err(CatalogError::Invalid("ranking weights must be finite numbers".into()));
        }
        Ok(())
    }

    /// The manifest as pretty JSON.
    pub fn manifest_json(&self) -> String {
        serde_json::to_string_pretty(&self.manifest).expect("manifest serialises")
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

    /// Vector `kind` (0 image, 1 name) of item `i`, de-quantised for i8 catalogs.
    fn vector(&self, i: usize, kind: usize) -> Cow<'_, [f32]> {
        let d = self.dim();
        let at = (2 * i + kind) * d;
        match &self.vectors {
            Vectors::F32(v) => Cow::Borrowed(&v[at..at + d]),
            Vectors::I8 { values, scales, offsets } => {
                let (s, m) = if kind == 0 { (scales.image, &offsets.image) } else { (scales.text, &offsets.text) };
                Cow::Owned(values[at..at + d].iter().zip(m).map(|(&q, m)| m + q as f32 * s).collect())
            }
        }
    }

    pub fn image_vector(&self, i: usize) -> Cow<'_, [f32]> {
        self.vector(i, 0)
    }

    pub fn name_vector(&self, i: usize) -> Cow<'_, [f32]> {
        self.vector(i, 1)
    }

    /// Refuses a model that did not make this catalog: another embedding size, other
    /// weights (when their sha256 is known), or other preprocessing.
    pub fn check_model(
        &self,
        embedding_dim: usize,
        weights_sha256: Option<&str>,
        preprocessing: &PreprocessConfig,
    ) -> Result<(), CatalogError> {
        let m = &self.manifest.model;
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
        if !self.manifest.preprocessing.same_as(preprocessing) {
            return Err(CatalogError::PreprocessMismatch {
                catalog: format!("{:?}", self.manifest.preprocessing),
                model: format!("{preprocessing:?}"),
            });
        }
        Ok(())
    }

    /// Problems with the vectors themselves: non-finite values or vectors not of unit length
    /// (within 1e-3 for f32; within 0.05 for i8, whose rounding moves the length a little).
    pub fn vector_problems(&self) -> Vec<String> {
        let tolerance = match self.dtype() {
            VectorDtype::F32 => 1e-3,
            VectorDtype::I8 => 0.05,
        };
        let mut out = Vec::new();
        for (i, item) in self.items().iter().enumerate() {
            for (kind, v) in [("image", self.image_vector(i)), ("name", self.name_vector(i))] {
                if v.iter().any(|x| !x.is_finite()) {
                    out.push(format!("item {:?}: {kind} vector has non-finite values", item.id));
                    continue;
                }
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                if (norm - 1.0).abs() > tolerance {
                    out.push(format!("item {:?}: {kind} vector has length {norm:.4}, not 1", item.id));
                }
            }
        }
        out
    }
}

/// The differences from `offsets` of every vector of kind `k` (0 image, 1 name).
fn residuals<'a>(values: &'a [f32], d: usize, k: usize, offsets: &'a [f32]) -> impl Iterator<Item = f32> + Clone + 'a {
    values.chunks_exact(d).skip(k).step_by(2).flat_map(move |v| v.iter().zip(offsets).map(|(x, m)| x - m))
}

/// The scale of one vector kind (`count` values): `max |x| / 127`, or for `LeastError` the
/// clipping level among 100 %, 95 %, ..., 40 % of that maximum whose rounding and clamping
/// lose the least (sum of squared errors, on at most about a million evenly spread values).
fn choose_scale(values: impl Iterator<Item = f32> + Clone, count: usize, rule: ScaleRule) -> f32 {
    let max = values.clone().fold(0.0f32, |m, x| m.max(x.abs()));
    if max == 0.0 || !max.is_finite() {
        return 1.0 / 127.0;
    }
    if rule == ScaleRule::MaxAbs {
        return max / 127.0;
    }
    let sample: Vec<f32> = values.step_by((count / (1 << 20)).max(1)).collect();
    let error = |s: f32| -> f64 {
        sample
            .iter()
            .map(|&x| {
                let e = x - (x / s).round().clamp(-127.0, 127.0) * s;
                (e * e) as f64
            })
            .sum()
    };
    (0..=12)
        .map(|k| max * (1.0 - 0.05 * k as f32) / 127.0)
        .map(|s| (s, error(s)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(s, _)| s)
        .unwrap_or(max / 127.0)
}

