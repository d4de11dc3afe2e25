//! A search session: a loaded model, the catalog it ranks against and the last photo (its
//! upright pixels, a large JPEG's at a reduced scale, and the embeddings of the whole photo and of
//! the region the user boxed), so that a region is ranked without decoding again and other weights
//! re-rank without running the model again. The page's `Matcher` and `clipmatch query` are thin shells over it.

use serde::Serialize;

use crate::error::{Error, SessionError};
use crate::imaging::crop::Region;
use crate::imaging::decode::{decode_photo, rgb_from_rgba, DecodedPhoto};
use crate::models::embedder::Embedder;
use crate::search::catalog::{Catalog, Manifest, TunedRanking};
use crate::search::compact::page::PageCompactCatalog;
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
    fn of(manifest: &Manifest) -> Self {
        let r = manifest.ranking;
        CatalogSummary {
            items: manifest.items.len(),
            model_name: manifest.model.name.clone(),
            text_weight: r.text_weight,
            image_weight: r.image_weight,
            top_k: r.top_k,
            min_score: r.min_score,
            tuned: r.tuned,
        }
    }
}

/// The last photo: its upright pixels and what has been embedded of it.
///
/// Memory: the pixels take 3 bytes each. A JPEG whose short side is 2,048 pixels or more is kept
/// at a reduced scale ([`crate::imaging::reduced`]: a 12- or 48-megapixel phone photo as
/// 2000x1500, 9 MB); any other photo at full resolution, at most 3 x
/// [`crate::imaging::decode::MAX_MEGAPIXELS`] megapixels (150 MB in the page, 192 MB natively; a
/// 5-megapixel PNG: 15 MB). They are the decoder's own output, kept instead of dropped, and are
/// freed before the next photo is decoded, so decoding never holds two photos at once.
struct Photo {
    decoded: DecodedPhoto,
    /// The whole photo's unit embedding, once computed.
    whole: Option<Vec<f32>>,
    /// The region being searched and its unit embedding; `None`: the whole photo.
    region: Option<(Region, Vec<f32>)>,
}

impl Photo {
    /// The embedding ranked now: the region's, else the whole photo's.
    fn query(&self) -> Option<&[f32]> {
        self.region.as_ref().map(|(_, q)| q.as_slice()).or(self.whole.as_deref())
    }
}

/// What photos are ranked against: a catalog with its stored vectors, or a big catalog's
/// compact codes (the page), with the vectors once they have arrived.
enum Searched {
    Exact(Box<Catalog>),
    Compact(Box<PageCompactCatalog>),
}

impl Searched {
    fn manifest(&self) -> &Manifest {
        match self {
            Searched::Exact(c) => &c.manifest,
            Searched::Compact(c) => &c.manifest,
        }
    }
}

/// A model, and once given, a catalog to rank photos against.
pub struct SearchSession {
    embedder: Embedder,
    weights_sha256: String,
    catalog: Option<Searched>,
    photo: Option<Photo>,
}

impl SearchSession {
    /// `weights_sha256`: the hash of the weights `embedder` was loaded from; only catalogs built
    /// with those weights (or equivalent ones) are accepted.
    pub fn new(embedder: Embedder, weights_sha256: String) -> Self {
        SearchSession { embedder, weights_sha256, catalog: None, photo: None }
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
        self.use_searched(Searched::Exact(Box::new(catalog)))
    }

    /// Ranks photos against a big catalog's compact codes from now on (the page's manifest and
    /// `compact.bin`: [`PageCompactCatalog`]), refusing one built with another model. Answers
    /// come from the codes alone until [`Self::attach_vectors`].
    pub fn use_compact_catalog(&mut self, catalog: PageCompactCatalog) -> Result<CatalogSummary, Error> {
        self.use_searched(Searched::Compact(Box::new(catalog)))
    }

    /// Gives the compact catalog its stored vectors (`vectors.bin`, checked against its
    /// manifest): short lists are re-ranked exactly from now on.
    pub fn attach_vectors(&mut self, vectors: &[u8]) -> Result<(), Error> {
        match &mut self.catalog {
            Some(Searched::Compact(c)) => Ok(c.attach_vectors(vectors)?),
            Some(Searched::Exact(_)) => Err(crate::error::CatalogError::Invalid("this catalog has its vectors already".into()).into()),
            None => Err(SessionError::NoCatalog.into()),
        }
    }

    fn use_searched(&mut self, searched: Searched) -> Result<CatalogSummary, Error> {
        searched.manifest().check_model(self.embedder.model.embedding_dim(), Some(&self.weights_sha256), &self.embedder.preprocess)?;
        let summary = CatalogSummary::of(searched.manifest());
        self.catalog = Some(searched);
        self.photo = None;
        Ok(summary)
    }

    /// The catalog with its stored vectors (a compact catalog's is not one: it ranks through the session).
    pub fn catalog(&self) -> Result<&Catalog, SessionError> {
        match &self.catalog {
            Some(Searched::Exact(c)) => Ok(c.as_ref()),
            _ => Err(SessionError::NoCatalog),
        }
    }

    fn searched(&self) -> Result<&Searched, SessionError> {
        self.catalog.as_ref().ok_or(SessionError::NoCatalog)
    }

    /// Ranks an encoded photo (JPEG, PNG, WebP, GIF) against the catalog; the photo is kept.
    /// Settings that [`RankingOverrides::check`] refuses are refused first, by every ranking.
    /// The photo before (and its region) is freed first, so one that cannot be read leaves none.
    pub fn rank_photo(&mut self, bytes: &[u8], overrides: &RankingOverrides) -> Result<Ranking, Error> {
        overrides.check()?;
        self.searched()?;
        self.photo = None;
        let decoded = decode_photo(bytes, &self.embedder.limits)?;
        self.rank_new_photo(decoded, overrides)
    }

    /// Ranks RGBA pixels (e.g. a camera frame) against the catalog, as [`Self::rank_photo`].
    pub fn rank_rgba(&mut self, rgba: &[u8], width: u32, height: u32, overrides: &RankingOverrides) -> Result<Ranking, Error> {
        overrides.check()?;
        self.searched()?;
        self.photo = None;
        let rgb = rgb_from_rgba(rgba, width, height, &self.embedder.limits)?;
        self.rank_new_photo(DecodedPhoto { upright_size: rgb.dimensions(), rgb }, overrides)
    }

    /// Ranks only `region` of an encoded photo (`clipmatch query --crop`): the whole photo is
    /// not embedded (until [`Self::rank_whole_photo`] asks for it). The photo is kept.
    pub fn rank_photo_region(&mut self, bytes: &[u8], region: Region, overrides: &RankingOverrides) -> Result<Ranking, Error> {
        overrides.check()?;
        self.searched()?;
        self.photo = None;
        let decoded = decode_photo(bytes, &self.embedder.limits)?;
        let query = self.embed_region(&decoded, region)?;
        self.photo = Some(Photo { decoded, whole: None, region: Some((region, query)) });
        self.rerank(overrides)
    }

    /// Ranks `region` of the last photo (in its upright pixels): cropped (from the reduced copy
    /// of a large JPEG), then preprocessed and embedded as a photo of that region alone would be;
    /// no decoding again. A refused region
    /// leaves the session as it was.
    pub fn rank_region(&mut self, region: Region, overrides: &RankingOverrides) -> Result<Ranking, Error> {
        overrides.check()?;
        self.searched()?;
        let photo = self.photo.as_ref().ok_or(SessionError::NoQuery)?;
        let query = self.embed_region(&photo.decoded, region)?;
        self.photo.as_mut().expect("checked above").region = Some((region, query));
        self.rerank(overrides)
    }

    /// Forgets the region and ranks the whole last photo: no model run when it was ranked whole
    /// before.
    pub fn rank_whole_photo(&mut self, overrides: &RankingOverrides) -> Result<Ranking, Error> {
        overrides.check()?;
        self.searched()?;
        let photo = self.photo.as_mut().ok_or(SessionError::NoQuery)?;
        if photo.whole.is_none() {
            photo.whole = Some(self.embedder.embed_rgb(&photo.decoded.rgb)?);
        }
        photo.region = None;
        self.rerank(overrides)
    }

    /// The region being searched, if any (else the whole photo is).
    pub fn region(&self) -> Option<Region> {
        self.photo.as_ref().and_then(|p| p.region.as_ref().map(|(r, _)| *r))
    }

    /// The last photo's upright width and height, the frame regions are given in (its own, also
    /// when its pixels are kept at a reduced scale).
    pub fn photo_size(&self) -> Option<(u32, u32)> {
        self.photo.as_ref().map(|p| p.decoded.upright_size)
    }

    /// The last photo's kept pixels' width and height (smaller than [`Self::photo_size`] for a
    /// large JPEG).
    pub fn kept_size(&self) -> Option<(u32, u32)> {
        self.photo.as_ref().map(|p| p.decoded.rgb.dimensions())
    }

    /// Ranks the last photo (its region, if one is set) again with other settings: no model run.
    pub fn rerank(&self, overrides: &RankingOverrides) -> Result<Ranking, Error> {
        overrides.check()?;
        let searched = self.searched()?;
        let query = self.photo.as_ref().and_then(Photo::query).ok_or(SessionError::NoQuery)?;
        let o = overrides.resolve(&searched.manifest().ranking);
        Ok(match searched {
            Searched::Exact(catalog) => rank(catalog, query, o.weights, o.top_k, o.min_score),
            Searched::Compact(catalog) => catalog.rank(query, o.weights, o.top_k, o.min_score),
        })
    }

    fn rank_new_photo(&mut self, decoded: DecodedPhoto, overrides: &RankingOverrides) -> Result<Ranking, Error> {
        let whole = self.embedder.embed_rgb(&decoded.rgb)?;
        self.photo = Some(Photo { decoded, whole: Some(whole), region: None });
        self.rerank(overrides)
    }

    /// The unit embedding of `region` of `photo`, checked against the photo limits' aspect ratio.
    fn embed_region(&self, photo: &DecodedPhoto, region: Region) -> Result<Vec<f32>, Error> {
        let cropped = region.crop_photo(photo, self.embedder.limits.max_aspect_ratio)?;
        self.embedder.embed_rgb(&cropped)
    }
}
