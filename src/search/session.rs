//! A search session: a loaded model, the catalog it ranks against and the last photo's
//! embedding, so that other weights re-rank it without running the model again. The page's
//! `Matcher` and `clipmatch query` are thin shells over it.

use serde::Serialize;

use crate::error::{Error, SessionError};
use crate::imaging::decode::rgb_from_rgba;
use crate::models::embedder::Embedder;
use crate::search::catalog::{Catalog, TunedRanking};
use crate::search::rank::{rank, Ranking};
use crate::search::ranking_options::RankingOverrides;

/// What a caller shows about a loaded catalog (field names as the page reads them).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogSummary {
    pub items: usize,
    pub model_name: String,
    pub text_weight: f32,
    pub image_weight: f32,
    pub top_k: usize,
    pub min_score: f32,
    /// Where the weights and threshold came from, when `clipmatch tune` chose them (the
    /// manifest's `ranking.tuned`, its field names as written there); `None`: build's defaults.
    pub tuned: Option<TunedRanking>,
}

impl CatalogSummary {
    fn of(catalog: &Catalog) -> Self {
        let r = catalog.manifest.ranking;
        CatalogSummary {
            items: catalog.len(),
            model_name: catalog.manifest.model.name.clone(),
            text_weight: r.text_weight,
            image_weight: r.image_weight,
            top_k: r.top_k,
            min_score: r.min_score,
            tuned: r.tuned,
        }
    }
}

/// A model, and once given, a catalog to rank photos against.
pub struct SearchSession {
    embedder: Embedder,
    weights_sha256: String,
    catalog: Option<Catalog>,
    last_query: Option<Vec<f32>>,
}

impl SearchSession {
    /// `weights_sha256`: the hash of the weights `embedder` was loaded from; only catalogs built
    /// with those weights (or equivalent ones) are accepted.
    pub fn new(embedder: Embedder, weights_sha256: String) -> Self {
        SearchSession { embedder, weights_sha256, catalog: None, last_query: None }
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    pub fn weights_sha256(&self) -> &str {
        &self.weights_sha256
    }

    /// Reads a catalog from its manifest JSON and vectors file bytes and makes it the one
    /// photos are ranked against ([`Self::use_catalog`]).
    pub fn load_catalog(&mut self, manifest: &[u8], vectors: &[u8]) -> Result<CatalogSummary, Error> {
        self.use_catalog(Catalog::from_parts(manifest, vectors)?)
    }

    /// Ranks photos against `catalog` from now on, refusing one built with another model
    /// (embedding size, weights or preprocessing). The last photo is forgotten.
    pub fn use_catalog(&mut self, catalog: Catalog) -> Result<CatalogSummary, Error> {
        catalog.check_model(self.embedder.model.embedding_dim(), Some(&self.weights_sha256), &self.embedder.preprocess)?;
        let summary = CatalogSummary::of(&catalog);
        self.catalog = Some(catalog);
        self.last_query = None;
        Ok(summary)
    }

    pub fn catalog(&self) -> Result<&Catalog, SessionError> {
        self.catalog.as_ref().ok_or(SessionError::NoCatalog)
    }

    /// Ranks an encoded photo (JPEG, PNG, WebP, GIF) against the catalog.
    pub fn rank_photo(&mut self, bytes: &[u8], overrides: &RankingOverrides) -> Result<Ranking, Error> {
        self.catalog()?;
        let query = self.embedder.embed_photo(bytes)?;
        self.rank_query(query, overrides)
    }

    /// Ranks RGBA pixels (e.g. a camera frame) against the catalog.
    pub fn rank_rgba(&mut self, rgba: &[u8], width: u32, height: u32, overrides: &RankingOverrides) -> Result<Ranking, Error> {
        self.catalog()?;
        let rgb = rgb_from_rgba(rgba, width, height, &self.embedder.limits)?;
        let query = self.embedder.embed_rgb(&rgb)?;
        self.rank_query(query, overrides)
    }

    /// Ranks the last photo again with other settings: no model run.
    pub fn rerank(&self, overrides: &RankingOverrides) -> Result<Ranking, Error> {
        let catalog = self.catalog()?;
        let query = self.last_query.as_deref().ok_or(SessionError::NoQuery)?;
        let o = overrides.resolve(&catalog.manifest.ranking);
        Ok(rank(catalog, query, o.weights, o.top_k, o.min_score))
    }

    fn rank_query(&mut self, query: Vec<f32>, overrides: &RankingOverrides) -> Result<Ranking, Error> {
        self.last_query = Some(query);
        self.rerank(overrides)
    }
}
