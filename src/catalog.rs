//! The catalog as static files: a JSON manifest (`catalog.json`) and one little-endian binary
//! of L2-normalised vectors (`vectors.bin`), item after item: its image vector, then its name
//! vector. Loading checks everything a mismatched or damaged catalog could get wrong.

use serde::{Deserialize, Serialize};

use crate::config::PreprocessConfig;
use crate::digest::sha256_hex;
use crate::error::CatalogError;

pub const FORMAT: &str = "clipmatch-catalog";
pub const VERSION: u32 = 1;
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
    pub dtype: String,
    /// Human-readable description of the layout, for people reading the manifest.
    pub layout: String,
    pub sha256: String,
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
    image_vectors: Vec<f32>,
    name_vectors: Vec<f32>,
}

const LAYOUT: &str = "per item in manifest order: image vector then name vector, embedding_dim values each, little-endian";

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
        let mut image_vectors = Vec::with_capacity(items.len() * dim);
        let mut name_vectors = Vec::with_capacity(items.len() * dim);
        for (img, name) in vectors {
            if img.len() != dim || name.len() != dim {
                return Err(CatalogError::DimensionMismatch {
                    catalog_dim: dim,
                    model_dim: img.len().max(name.len()),
                });
            }
            image_vectors.extend_from_slice(img);
            name_vectors.extend_from_slice(name);
        }
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
                },
                ranking,
                items,
            },
            image_vectors,
            name_vectors,
        };
        catalog.manifest.vectors.sha256 = sha256_hex(&catalog.vectors_bytes());
        catalog.validate_items()?;
        Ok(catalog)
    }

    /// Reads a catalog from its manifest JSON and the bytes of its vectors file.
    pub fn from_parts(manifest_json: &[u8], vectors: &[u8]) -> Result<Self, CatalogError> {
        let head: serde_json::Value = serde_json::from_slice(manifest_json)
            .map_err(|e| CatalogError::Manifest(e.to_string()))?;
        let format = head.get("format").and_then(|v| v.as_str()).unwrap_or("");
        let version = head.get("version").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
        if format != FORMAT || version != VERSION {
            return Err(CatalogError::UnsupportedVersion {
                found: format.to_string(),
                version,
                expected: FORMAT,
                supported: VERSION,
            });
        }
        let manifest: Manifest =
            serde_json::from_value(head).map_err(|e| CatalogError::Manifest(e.to_string()))?;
        if manifest.vectors.dtype != "f32" {
            return Err(CatalogError::UnsupportedDtype(manifest.vectors.dtype.clone()));
        }
        let dim = manifest.model.embedding_dim;
        if dim == 0 {
            return Err(CatalogError::Invalid("embedding_dim is 0".into()));
        }
        let n = manifest.items.len();
        let expected = n * 2 * dim * 4;
        if vectors.len() != expected {
            return Err(CatalogError::VectorsSize {
                found: vectors.len(),
                expected,
                items: n,
                dim,
                dtype_bytes: 4,
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
        let mut image_vectors = Vec::with_capacity(n * dim);
        let mut name_vectors = Vec::with_capacity(n * dim);
        for (i, chunk) in vectors.chunks_exact(dim * 4).enumerate() {
            let target = if i % 2 == 0 { &mut image_vectors } else { &mut name_vectors };
            target.extend(chunk.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
        }
        let catalog = Self {
            manifest,
            image_vectors,
            name_vectors,
        };
        catalog.validate_items()?;
        Ok(catalog)
    }

    fn validate_items(&self) -> Result<(), CatalogError> {
        let mut seen = std::collections::HashSet::new();
        for item in &self.manifest.items {
            if !seen.insert(item.id.as_str()) {
                return Err(CatalogError::Invalid(format!("item id {:?} appears twice", item.id)));
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
        let dim = self.dim();
        let mut out = Vec::with_capacity(self.len() * 2 * dim * 4);
        for i in 0..self.len() {
            for v in self.image_vector(i).iter().chain(self.name_vector(i)) {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
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

    pub fn image_vector(&self, i: usize) -> &[f32] {
        let d = self.dim();
        &self.image_vectors[i * d..(i + 1) * d]
    }

    pub fn name_vector(&self, i: usize) -> &[f32] {
        let d = self.dim();
        &self.name_vectors[i * d..(i + 1) * d]
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

    /// Problems with the vectors themselves: non-finite values or vectors not of unit length.
    pub fn vector_problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, item) in self.items().iter().enumerate() {
            for (kind, v) in [("image", self.image_vector(i)), ("name", self.name_vector(i))] {
                if v.iter().any(|x| !x.is_finite()) {
                    out.push(format!("item {:?}: {kind} vector has non-finite values", item.id));
                    continue;
                }
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                if (norm - 1.0).abs() > 1e-3 {
                    out.push(format!("item {:?}: {kind} vector has length {norm:.4}, not 1", item.id));
                }
            }
        }
        out
    }
}
