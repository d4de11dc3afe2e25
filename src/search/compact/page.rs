//! A compact catalog as the page holds it: the page's manifest (`page-catalog.json`) and the
//! codes (`compact.bin`) first, which answer at once from the codes alone; then, once
//! `vectors.bin` has arrived (the page fetches all of it, whatever the photo), exactly as the
//! native tool ranks. (Re-ranking a short list of the codes' first pass instead would be slower
//! at 100,000 items than the full i8 pass, and not always exact: BENCHMARKS.md, "Compact codes".)

use crate::error::CatalogError;
use crate::models::config::PreprocessConfig;
use crate::search::catalog::{validate_manifest, Catalog, Item, Manifest, FORMAT, VERSION};
use crate::search::compact::page_file;
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
    /// Reads the page's manifest (`page-catalog.json`, gzipped or not) and the codes, checking
    /// both (format, counts, ids, the codes' size and sha256 as the manifest lists them), with
    /// bounded memory ([`page_file`]).
    pub fn from_parts(page_file: &[u8], compact: &[u8]) -> Result<Self, CatalogError> {
        let (page, codes) = page_file::read(page_file, compact)?;
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
