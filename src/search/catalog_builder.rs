//! Building a catalog from product photos and names: each photo decoded, preprocessed and
//! thumbnailed (a batch at a time, in parallel, order kept), embedded by the vision tower in
//! batches, then the names by the text tower, into unit vectors; then the catalog, its vectors
//! stored at the dtype asked for, and its "no confident match" threshold. The caller supplies
//! the photos' bytes and writes the thumbnails: no file access here.

use std::fmt;

use rayon::prelude::*;

use crate::error::{BuildError, ImageError};
use crate::imaging::decode::decode_rgb;
use crate::imaging::thumbnail::thumbnail_jpeg;
use crate::models::clip::text::TEXT_BATCH;
use crate::models::embedder::Embedder;
use crate::search::catalog::{Catalog, Item, ModelInfo, RankingDefaults, ScaleRule, VectorDtype};
use crate::search::item_id::thumbnail_file;
use crate::search::rank::leave_one_out_threshold;
use crate::search::ranking_options::RankingOverrides;

/// One product to put in the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceItem {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// The image as the caller names it (e.g. its path in the source list), kept in the manifest.
    pub image: String,
}

/// How a catalog is built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuildOptions {
    /// Photos per vision tower call (at least 1).
    pub batch_size: usize,
    /// Longest side of the thumbnails, in pixels.
    pub thumbnail_side: u32,
    pub vector_dtype: VectorDtype,
    /// The catalog's ranking defaults: [`RankingDefaults::default`] but for what is given here;
    /// without `min_score`, the threshold is [`leave_one_out_threshold`].
    pub ranking: RankingOverrides,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions { batch_size: 16, thumbnail_side: 256, vector_dtype: VectorDtype::default(), ranking: RankingOverrides::default() }
    }
}

/// A step of the build, as reported to [`BuildEvents::progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildPhase {
    /// Photos read, decoded, preprocessed and thumbnailed; `done` counts photos, skips included.
    Prepare,
    /// Photos embedded by the vision tower; `done` counts photos, skips included.
    Images,
    /// Names embedded by the text tower; `total` is the number of photos kept.
    Names,
    /// The catalog assembled, its vectors converted and its threshold set (0 of 1, then 1 of 1).
    Catalog,
}

/// Why a photo was left out of the catalog.
#[derive(Debug)]
pub enum SkipReason {
    /// The caller could not supply its bytes (its message).
    Unreadable(String),
    /// It is not an image this app reads, or too large, damaged, ...
    Image(ImageError),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Unreadable(why) => f.write_str(why),
            SkipReason::Image(e) => e.fmt(f),
        }
    }
}

/// A photo left out: its position in the items given, and why.
#[derive(Debug)]
pub struct Skipped {
    pub index: usize,
    pub reason: SkipReason,
}

/// What the caller hears while a catalog is built.
pub trait BuildEvents {
    /// The caller's own failure while taking a thumbnail (e.g. writing it to disk).
    type Error: std::error::Error + 'static;
    /// `done` of `total` units of `phase` are finished (reported at 0 when it starts).
    fn progress(&mut self, _phase: BuildPhase, _done: usize, _total: usize) {}
    /// The item at `index` is left out, for `reason`; the build goes on.
    fn skipped(&mut self, _index: usize, _reason: &SkipReason) {}
    /// The thumbnail of a kept item: a JPEG to store at `file`, relative to the manifest.
    fn thumbnail(&mut self, file: &str, jpeg: &[u8]) -> Result<(), Self::Error>;
}

/// A catalog, and the photos that could not go into it.
#[derive(Debug)]
pub struct BuiltCatalog {
    pub catalog: Catalog,
    pub skipped: Vec<Skipped>,
}

/// A photo ready for the vision tower.
struct Prepared {
    pixels: Vec<f32>,
    thumbnail: Vec<u8>,
}

fn prepare(embedder: &Embedder, bytes: Result<Vec<u8>, String>, thumbnail_side: u32) -> Result<Prepared, SkipReason> {
    let bytes = bytes.map_err(SkipReason::Unreadable)?;
    let rgb = decode_rgb(&bytes, &embedder.limits).map_err(SkipReason::Image)?;
    let pixels = embedder.pixel_values_of(&rgb);
    let thumbnail = thumbnail_jpeg(&rgb, thumbnail_side).map_err(SkipReason::Image)?;
    Ok(Prepared { pixels, thumbnail })
}

/// Builds a catalog of `items` with `embedder` (both towers and a tokenizer), recorded as made
/// by `model`. `read(i)` gives the encoded photo of `items[i]` (called from several threads) or
/// why it cannot. Photos that cannot be read or decoded are skipped and reported; the build
/// stops only when the model fails, the caller's thumbnail handling fails, or no photo is left.
pub fn build_catalog<R, V>(
    embedder: &Embedder,
    model: ModelInfo,
    items: Vec<SourceItem>,
    read: R,
    options: &BuildOptions,
    events: &mut V,
) -> Result<BuiltCatalog, BuildError<V::Error>>
where
    R: Fn(usize) -> Result<Vec<u8>, String> + Sync,
    V: BuildEvents,
{
    let total = items.len();
    let mut kept: Vec<(Item, Vec<f32>)> = Vec::new();
    let mut skipped = Vec::new();
    events.progress(BuildPhase::Prepare, 0, total);
    events.progress(BuildPhase::Images, 0, total);
    let mut done = 0;
    let mut items = items.into_iter();
    while done < total {
        let first = done;
        let batch: Vec<SourceItem> = items.by_ref().take(options.batch_size.max(1)).collect();
        done += batch.len();
        // Reading, decoding, preprocessing and thumbnails of a batch run on all threads; order is kept.
        let prepared: Vec<Result<Prepared, SkipReason>> = (first..done)
            .into_par_iter()
            .map(|i| prepare(embedder, read(i), options.thumbnail_side))
            .collect();
        events.progress(BuildPhase::Prepare, done, total);
        let mut ready = Vec::with_capacity(batch.len());
        let mut pixels = Vec::with_capacity(batch.len());
        for ((index, item), result) in (first..).zip(batch).zip(prepared) {
            match result {
                Ok(p) => {
                    pixels.push(p.pixels);
                    ready.push((item, p.thumbnail));
                }
                Err(reason) => {
                    events.skipped(index, &reason);
                    skipped.push(Skipped { index, reason });
                }
            }
        }
        let vectors = embedder.embed_pixels(&pixels).map_err(BuildError::Vision)?;
        events.progress(BuildPhase::Images, done, total);
        for ((source, thumbnail), vector) in ready.into_iter().zip(vectors) {
            let file = thumbnail_file(&source.id);
            events.thumbnail(&file, &thumbnail).map_err(BuildError::Output)?;
            let item = Item { id: source.id, name: source.name, description: source.description, image: source.image, thumbnail: Some(file) };
            kept.push((item, vector));
        }
    }
    if kept.is_empty() {
        return Err(BuildError::NoImageRead { total });
    }

    events.progress(BuildPhase::Names, 0, kept.len());
    let mut pairs = Vec::with_capacity(kept.len());
    for chunk in kept.chunks(TEXT_BATCH) {
        let names: Vec<&str> = chunk.iter().map(|(item, _)| item.name.as_str()).collect();
        let vectors = embedder.embed_texts(&names).map_err(BuildError::Text)?;
        pairs.extend(chunk.iter().map(|(_, image)| image.clone()).zip(vectors));
        events.progress(BuildPhase::Names, pairs.len(), kept.len());
    }

    events.progress(BuildPhase::Catalog, 0, 1);
    let resolved = options.ranking.resolve(&RankingDefaults::default());
    let ranking = RankingDefaults { min_score: 0.0, ..RankingDefaults::from(resolved) };
    let items: Vec<Item> = kept.into_iter().map(|(item, _)| item).collect();
    let mut catalog = Catalog::new(model, embedder.preprocess.clone(), ranking, items, &pairs)?
        .with_dtype(options.vector_dtype, ScaleRule::default())?;
    catalog.manifest.ranking.min_score =
        options.ranking.min_score.unwrap_or_else(|| leave_one_out_threshold(&catalog, resolved.weights));
    events.progress(BuildPhase::Catalog, 1, 1);
    Ok(BuiltCatalog { catalog, skipped })
}
