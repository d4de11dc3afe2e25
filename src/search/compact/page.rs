//! A compact catalog as the page holds it: the page's manifest (`page-catalog.json`) and the
//! codes (`compact.bin`) first, which answer at once from the codes alone; then, once
//! `vectors.bin` has arrived (the page fetches all of it, whatever the photo), exactly as the
//! native tool ranks. (Re-ranking a short list of the codes' first pass instead would be slower
//! at 100,000 items than the full i8 pass, and not always exact: BENCHMARKS.md, "Compact codes".)

use crate::error::CatalogError;
use crate::models::config::PreprocessConfig;
use crate::search::catalog::{read_codes, validate_manifest, Catalog, Item, Manifest, PageCatalog, FORMAT, PAGE_FORMAT, PAGE_VERSION, VERSION};
use crate::search::compact::rank::rank_codes_only;
use crate::search::compact::CompactCodes;
use crate::search::item_fields::ItemFields;
use crate::search::rank::{rank, FusionWeights, Ranking};

pub struct PageCompactCatalog {
    /// The catalog's manifest as far as the page knows it (items without source paths).
    pub manifest: Manifest,
    codes: CompactCodes,
    exact: Option<Catalog>,
}

impl PageCompactCatalog {
    /// Reads the page's manifest and the codes, checking both (format, ids, the codes' size
    /// and sha256 as the manifest lists them).
    pub fn from_parts(page_json: &[u8], compact: &[u8]) -> Result<Self, CatalogError> {
        let head: serde_json::Value = serde_json::from_slice(page_json).map_err(|e| CatalogError::Manifest(e.to_string()))?;
        let format = head.get("format").and_then(|v| v.as_str()).unwrap_or("");
        let version = head.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
        if format != PAGE_FORMAT || version != PAGE_VERSION as u64 {
            return Err(CatalogError::UnsupportedVersion { found: format.into(), version: version as u32, expected: PAGE_FORMAT, supported: PAGE_VERSION });
        }
        let page: PageCatalog = serde_json::from_value(head).map_err(|e| CatalogError::Manifest(e.to_string()))?;
        if page.ids.len() != page.names.len() {
            return Err(CatalogError::Invalid(format!("the page catalog lists {} ids but {} names", page.ids.len(), page.names.len())));
        }
        if let Some(fields) = page.fields.as_ref().filter(|f| f.len() != page.ids.len()) {
            return Err(CatalogError::Invalid(format!("the page catalog lists {} ids but the fields of {} items", page.ids.len(), fields.len())));
        }
        let manifest = Manifest {
            format: FORMAT.into(),
            version: VERSION,
            model: page.model,
            preprocessing: page.preprocessing,
            vectors: page.vectors,
            ranking: page.ranking,
            sources: None,
            compact: Some(page.compact),
            items: page
                .ids
                .into_iter()
                .zip(page.names)
                .zip(page.fields.unwrap_or_default().into_iter().chain(std::iter::repeat_with(ItemFields::default)))
                .map(|((id, name), fields)| Item { id, name, description: None, image: String::new(), thumbnail: None, fields })
                .collect(),
        };
        validate_manifest(&manifest)?;
        let (n, dim) = (manifest.items.len(), manifest.model.embedding_dim);
        let codes = read_codes(manifest.compact.as_ref().expect("set above"), n, dim, compact)?;
        Ok(Self { manifest, codes, exact: None })
    }

    /// Takes the catalog's `vectors.bin` (checked against the manifest: size, sha256, values):
    /// from now on short lists are re-ranked exactly.
    pub fn attach_vectors(&mut self, vectors: &[u8]) -> Result<(), CatalogError> {
        let json = serde_json::to_vec(&self.manifest).expect("a manifest serialises");
        self.exact = Some(Catalog::from_parts(&json, vectors)?);
        Ok(())
    }

    /// Are the stored vectors here (answers exact)?
    pub fn has_vectors(&self) -> bool {
        self.exact.is_some()
    }

    pub fn len(&self) -> usize {
        self.manifest.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.manifest.items.is_empty()
    }

    pub fn codes(&self) -> &CompactCodes {
        &self.codes
    }

    pub fn check_model(&self, embedding_dim: usize, weights_sha256: Option<&str>, preprocessing: &PreprocessConfig) -> Result<(), CatalogError> {
        self.manifest.check_model(embedding_dim, weights_sha256, preprocessing)
    }

    /// The top k: exactly as [`rank`] with `weights` once the vectors are here; before, from the
    /// codes alone (`codes_only` set), with the weights the codes were made for (the ranking's
    /// `weights` say which: a page whose user asked for others says so).
    pub fn rank(&self, query: &[f32], weights: FusionWeights, top_k: usize, min_score: f32) -> Ranking {
        match &self.exact {
            Some(catalog) => rank(catalog, query, weights, top_k, min_score),
            None => rank_codes_only(&self.codes, &self.manifest.items, query, top_k, min_score),
        }
    }
}
