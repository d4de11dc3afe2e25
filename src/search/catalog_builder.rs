//! Building a catalog from product photos and names: each photo read and hashed, then decoded,
//! preprocessed and thumbnailed (a batch at a time, in parallel, order kept), embedded by the
//! vision tower in batches, then the names by the text tower, into unit vectors; then the
//! catalog, its vectors stored at the dtype asked for, and its "no confident match" threshold.
//!
//! A build may reuse embeddings it is given ([`Reuse`]: from a checkpoint of an interrupted
//! build, or the catalog being updated), found by content: a photo by the sha256 of its file,
//! a name by its text. It reports each embedding it computes ([`BuildEvents::image_embedded`],
//! [`BuildEvents::name_embedded`]) so the caller can checkpoint it. The two halves are public
//! for sharded builds: [`embed_sources`] (a slice of the inputs) and [`assemble`] (the catalog
//! from all of them). The caller supplies the photos' bytes and writes the thumbnails: no file
//! access here.

use std::fmt;

use rayon::prelude::*;

use crate::digest::sha256_hex;
use crate::error::{BuildError, CatalogError, ImageError, SettingError};
use crate::imaging::decode::decode_rgb;
use crate::imaging::thumbnail::thumbnail_jpeg;
use crate::models::clip::text::TEXT_BATCH;
use crate::models::embedder::Embedder;
use crate::search::build_recipe::Recipe;
use crate::search::catalog::{
    check_manifest_bytes, check_thumbnail_side, items_bytes, validate_manifest, Catalog, Item, ModelInfo, RankingDefaults,
    ScaleRule, SourcesRecord, VectorDtype, VectorOffsets, VectorScales,
};
use crate::search::item_fields::ItemFields;
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
    /// The shop's other columns, kept in the manifest.
    pub fields: ItemFields,
}

impl SourceItem {
    /// The item as the manifest holds it, its thumbnail named after its id.
    fn into_item(self) -> Item {
        let thumbnail = Some(thumbnail_file(&self.id));
        Item { id: self.id, name: self.name, description: self.description, image: self.image, thumbnail, fields: self.fields }
    }
}

/// Refuses a list whose catalog's manifest would be larger than
/// [`crate::search::catalog::MAX_MANIFEST_BYTES`], before
/// anything is embedded: its items alone, as the manifest will hold them (with their images'
/// sha256 when `record_sources`), already take too many bytes.
pub fn check_list_size(items: &[SourceItem], record_sources: bool) -> Result<(), CatalogError> {
    check_manifest_bytes(
        items_bytes(items.iter().cloned().map(SourceItem::into_item), record_sources),
        "this list's catalog.json would take at least",
        ": shorten its descriptions or fields, or split it into several catalogs",
    )
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
    /// Record in the manifest what a later update needs ([`SourcesRecord`]).
    pub record_sources: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            batch_size: 16,
            thumbnail_side: 256,
            vector_dtype: VectorDtype::default(),
            ranking: RankingOverrides::default(),
            record_sources: false,
        }
    }
}

impl BuildOptions {
    /// Refuses settings that would make no thumbnail or a catalog no reader accepts: a thumbnail
    /// size outside 1 to [`MAX_THUMBNAIL_SIDE`](crate::search::catalog::MAX_THUMBNAIL_SIDE), ranking settings
    /// [`RankingOptions::check`](crate::search::ranking_options::RankingOptions::check) refuses.
    pub fn check(&self) -> Result<(), SettingError> {
        check_thumbnail_side(self.thumbnail_side)?;
        self.ranking.check()
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
    /// A photo was embedded (not reused): the sha256 of its file, its unit vector, and its
    /// thumbnail, already given to [`BuildEvents::thumbnail`] as `thumbnail_file`.
    fn image_embedded(&mut self, _sha256: &str, _vector: &[f32], _thumbnail_file: &str, _thumbnail: &[u8]) -> Result<(), Self::Error> {
        Ok(())
    }
    /// A name was embedded (not reused): its unit vector.
    fn name_embedded(&mut self, _name: &str, _vector: &[f32]) -> Result<(), Self::Error> {
        Ok(())
    }
    /// The embeddings reported since the last call are a whole batch (of photos, or of names).
    fn batch_complete(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// A photo's embedding and thumbnail, made earlier with the same [`Recipe`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReusedImage {
    pub vector: Vec<f32>,
    pub thumbnail: Vec<u8>,
}

/// Embeddings a build may take instead of computing them, found by content. Whoever supplies
/// them vouches that they were made with the build's [`Recipe`].
pub trait Reuse: Sync {
    /// The embedding and thumbnail of the photo whose file has this sha256, if known from an
    /// earlier catalog: reused photo by photo.
    fn image(&self, sha256: &str) -> Option<ReusedImage>;
    /// The same, if known from a checkpoint of this very build, which was interrupted: reused
    /// only when every photo its batch embeds is known, so that photos embedded again are in
    /// the same company as before (the results of some engines, candle's among them, depend on
    /// the make-up of a batch).
    fn checkpointed_image(&self, _sha256: &str) -> Option<ReusedImage> {
        None
    }
    /// The embedding of this name, if known (text towers embed each text on its own).
    fn name(&self, name: &str) -> Option<Vec<f32>>;
}

/// Nothing to reuse: every photo and name is embedded.
pub struct NoReuse;

impl Reuse for NoReuse {
    fn image(&self, _: &str) -> Option<ReusedImage> {
        None
    }
    fn name(&self, _: &str) -> Option<Vec<f32>> {
        None
    }
}

/// How many embeddings a build computed and how many it reused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    pub images_embedded: usize,
    pub images_reused: usize,
    pub names_embedded: usize,
    pub names_reused: usize,
}

/// A kept item with its two unit vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedItem {
    /// Its position in the items given.
    pub index: usize,
    /// As the manifest will hold it (thumbnail included).
    pub item: Item,
    /// sha256 of its image file.
    pub image_sha256: String,
    pub image: Vec<f32>,
    pub name: Vec<f32>,
}

/// What [`embed_sources`] made of its items.
#[derive(Debug)]
pub struct Embedded {
    pub items: Vec<EmbeddedItem>,
    pub skipped: Vec<Skipped>,
    pub work: Work,
}

/// How an i8 catalog's scales and offsets are chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Quantisation {
    /// From the catalog's own vectors ([`ScaleRule::default`]).
    FromData,
    /// These (an updated catalog's), so that the vectors it keeps keep their bytes.
    Keep { scales: VectorScales, offsets: VectorOffsets },
}

/// A catalog, the photos that could not go into it, and what was embedded or reused.
#[derive(Debug)]
pub struct BuiltCatalog {
    pub catalog: Catalog,
    pub skipped: Vec<Skipped>,
    pub work: Work,
}

/// A photo of a batch once read and looked up.
enum Found {
    /// Known from an earlier catalog.
    Reused(ReusedImage),
    /// Known from this build's checkpoint (used if its whole batch is), and its file.
    Checkpointed(ReusedImage, Vec<u8>),
    /// Its file, to embed.
    New(Vec<u8>),
}

fn find<U: Reuse + ?Sized>(bytes: Result<Vec<u8>, String>, reuse: &U, dim: usize) -> Result<(String, Found), SkipReason> {
    let bytes = bytes.map_err(SkipReason::Unreadable)?;
    let sha256 = sha256_hex(&bytes);
    let found = if let Some(known) = reuse.image(&sha256).filter(|k| k.vector.len() == dim) {
        Found::Reused(known)
    } else if let Some(known) = reuse.checkpointed_image(&sha256).filter(|k| k.vector.len() == dim) {
        Found::Checkpointed(known, bytes)
    } else {
        Found::New(bytes)
    };
    Ok((sha256, found))
}

/// A photo ready for the vision tower, or its embedding from before.
enum Photo {
    Fresh { pixels: Vec<f32>, thumbnail: Vec<u8> },
    Reused(ReusedImage),
}

fn prepare(embedder: &Embedder, bytes: &[u8], thumbnail_side: u32) -> Result<Photo, SkipReason> {
    let rgb = decode_rgb(bytes, &embedder.limits).map_err(SkipReason::Image)?;
    let pixels = embedder.pixel_values_of(&rgb);
    let thumbnail = thumbnail_jpeg(&rgb, thumbnail_side).map_err(SkipReason::Image)?;
    Ok(Photo::Fresh { pixels, thumbnail })
}

/// Reads and looks up the photos at `positions`, then decodes, preprocesses and thumbnails
/// those to embed (on all threads, order kept): the new ones, and the checkpointed ones too
/// unless every photo of the batch that is to be embedded is checkpointed (photos that cannot be
/// decoded are skipped, so they do not count).
fn prepare_batch<R, U>(
    embedder: &Embedder,
    positions: std::ops::Range<usize>,
    read: &R,
    reuse: &U,
    thumbnail_side: u32,
) -> Vec<Result<(String, Photo), SkipReason>>
where
    R: Fn(usize) -> Result<Vec<u8>, String> + Sync,
    U: Reuse + ?Sized,
{
    let dim = embedder.model.embedding_dim();
    let prepare_new = |f: Result<(String, Found), SkipReason>| -> Result<(String, Found, Option<Photo>), SkipReason> {
        let (sha256, found) = f?;
        let photo = match &found {
            Found::New(bytes) => Some(prepare(embedder, bytes, thumbnail_side)?),
            _ => None,
        };
        Ok((sha256, found, photo))
    };
    let looked: Vec<_> = positions.into_par_iter().map(|i| prepare_new(find(read(i), reuse, dim))).collect();
    let whole_batch_known = !looked.iter().any(|f| matches!(f, Ok((_, _, Some(_)))));
    looked
        .into_par_iter()
        .map(|f| {
            let (sha256, found, photo) = f?;
            let photo = match (found, photo) {
                (_, Some(photo)) => photo,
                (Found::Reused(known), None) => Photo::Reused(known),
                (Found::Checkpointed(known, _), None) if whole_batch_known => Photo::Reused(known),
                (Found::Checkpointed(_, bytes) | Found::New(bytes), None) => prepare(embedder, &bytes, thumbnail_side)?,
            };
            Ok((sha256, photo))
        })
        .collect()
}

/// The recipe of a build with `embedder`, recorded as made by `model`.
pub fn recipe(embedder: &Embedder, model: ModelInfo, options: &BuildOptions) -> Recipe {
    Recipe {
        model,
        preprocessing: embedder.preprocess.clone(),
        engine: embedder.model.towers().engine().name().to_string(),
        thumbnail_side: options.thumbnail_side,
    }
}

/// A kept photo between the two towers.
struct KeptPhoto {
    index: usize,
    source: SourceItem,
    sha256: String,
    image: Vec<f32>,
}

/// Embeds `items` with `embedder` (both towers and a tokenizer), taking from `reuse` what it
/// knows. `read(i)` gives the encoded photo of `items[i]` (called from several threads) or why
/// it cannot. Photos that cannot be read or decoded are skipped and reported; this stops only
/// when the model fails or the caller's handling of a thumbnail or an embedding fails.
pub fn embed_sources<R, U, V>(
    embedder: &Embedder,
    items: Vec<SourceItem>,
    read: R,
    reuse: &U,
    options: &BuildOptions,
    events: &mut V,
) -> Result<Embedded, BuildError<V::Error>>
where
    R: Fn(usize) -> Result<Vec<u8>, String> + Sync,
    U: Reuse + ?Sized,
    V: BuildEvents,
{
    options.check()?;
    let total = items.len();
    let mut kept: Vec<KeptPhoto> = Vec::new();
    let mut skipped = Vec::new();
    let mut work = Work::default();
    events.progress(BuildPhase::Prepare, 0, total);
    events.progress(BuildPhase::Images, 0, total);
    let mut done = 0;
    let mut items = items.into_iter();
    while done < total {
        let first = done;
        let batch: Vec<SourceItem> = items.by_ref().take(options.batch_size.max(1)).collect();
        done += batch.len();
        let prepared = prepare_batch(embedder, first..done, &read, reuse, options.thumbnail_side);
        events.progress(BuildPhase::Prepare, done, total);
        let mut ready = Vec::with_capacity(batch.len());
        let mut pixels = Vec::new();
        for ((index, source), result) in (first..).zip(batch).zip(prepared) {
            match result {
                Ok((sha256, Photo::Fresh { pixels: p, thumbnail })) => {
                    pixels.push(p);
                    ready.push((index, source, sha256, thumbnail, None));
                }
                Ok((sha256, Photo::Reused(known))) => ready.push((index, source, sha256, known.thumbnail, Some(known.vector))),
                Err(reason) => {
                    events.skipped(index, &reason);
                    skipped.push(Skipped { index, reason });
                }
            }
        }
        let mut fresh = embedder.embed_pixels(&pixels).map_err(BuildError::Vision)?.into_iter();
        events.progress(BuildPhase::Images, done, total);
        for (index, source, sha256, jpeg, known) in ready {
            let file = thumbnail_file(&source.id);
            events.thumbnail(&file, &jpeg).map_err(BuildError::Output)?;
            let image = match known {
                Some(vector) => {
                    work.images_reused += 1;
                    vector
                }
                None => {
                    let vector = fresh.next().expect("one vector per fresh photo");
                    events.image_embedded(&sha256, &vector, &file, &jpeg).map_err(BuildError::Output)?;
                    work.images_embedded += 1;
                    vector
                }
            };
            kept.push(KeptPhoto { index, source, sha256, image });
        }
        if !pixels.is_empty() {
            events.batch_complete().map_err(BuildError::Output)?;
        }
    }

    let dim = embedder.model.embedding_dim();
    let mut names: Vec<Option<Vec<f32>>> =
        kept.iter().map(|k| reuse.name(&k.source.name).filter(|v| v.len() == dim)).collect();
    let todo: Vec<usize> = (0..kept.len()).filter(|&i| names[i].is_none()).collect();
    work.names_reused = kept.len() - todo.len();
    events.progress(BuildPhase::Names, 0, todo.len());
    for chunk in todo.chunks(TEXT_BATCH) {
        let texts: Vec<&str> = chunk.iter().map(|&i| kept[i].source.name.as_str()).collect();
        let vectors = embedder.embed_texts(&texts).map_err(BuildError::Text)?;
        for (&i, vector) in chunk.iter().zip(vectors) {
            events.name_embedded(&kept[i].source.name, &vector).map_err(BuildError::Output)?;
            names[i] = Some(vector);
        }
        events.batch_complete().map_err(BuildError::Output)?;
        work.names_embedded += chunk.len();
        events.progress(BuildPhase::Names, work.names_embedded, todo.len());
    }

    let items = kept
        .into_iter()
        .zip(names)
        .map(|(k, name)| EmbeddedItem {
            index: k.index,
            item: k.source.into_item(),
            image_sha256: k.sha256,
            image: k.image,
            name: name.expect("every name embedded or reused"),
        })
        .collect();
    Ok(Embedded { items, skipped, work })
}

/// The catalog of `items` (all of a build's kept items, in input order; `total` inputs in all),
/// made with `recipe`: its vectors stored as `options.vector_dtype` (i8 with `quantisation`),
/// its ranking defaults from `options` and, unless given, its threshold estimated by
/// [`leave_one_out_threshold`].
pub fn assemble<E: std::error::Error + 'static>(
    recipe: &Recipe,
    items: Vec<EmbeddedItem>,
    total: usize,
    options: &BuildOptions,
    quantisation: &Quantisation,
) -> Result<Catalog, BuildError<E>> {
    if items.is_empty() {
        return Err(BuildError::NoImageRead { total });
    }
    let resolved = options.ranking.resolve(&RankingDefaults::default());
    let ranking = RankingDefaults { min_score: 0.0, ..RankingDefaults::from(resolved) };
    let mut manifest_items = Vec::with_capacity(items.len());
    let mut pairs = Vec::with_capacity(items.len());
    let mut image_sha256 = Vec::with_capacity(items.len());
    for e in items {
        manifest_items.push(e.item);
        pairs.push((e.image, e.name));
        image_sha256.push(e.image_sha256);
    }
    let catalog = Catalog::new(recipe.model.clone(), recipe.preprocessing.clone(), ranking, manifest_items, &pairs)?;
    let mut catalog = match (options.vector_dtype, quantisation) {
        (VectorDtype::I8, Quantisation::Keep { scales, offsets }) => {
            let kept = catalog.to_i8_with(*scales, offsets.clone())?;
            // A new vector far outside the kept range would be clamped out of unit length: then
            // the scales are chosen anew (and every vector stored with them).
            if kept.vector_problems().is_empty() {
                kept
            } else {
                catalog.with_dtype(VectorDtype::I8, ScaleRule::default())?
            }
        }
        (dtype, _) => catalog.with_dtype(dtype, ScaleRule::default())?,
    };
    catalog.manifest.ranking.min_score =
        options.ranking.min_score.unwrap_or_else(|| leave_one_out_threshold(&catalog, resolved.weights));
    if options.record_sources {
        catalog.manifest.sources =
            Some(SourcesRecord { engine: recipe.engine.clone(), thumbnail_side: recipe.thumbnail_side, image_sha256 });
    }
    // What is written passes the checks it will be read with.
    validate_manifest(&catalog.manifest)?;
    Ok(catalog)
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
    build_catalog_reusing(embedder, model, items, read, &NoReuse, &Quantisation::FromData, options, events)
}

/// [`build_catalog`], taking from `reuse` the embeddings it knows, and storing i8 vectors with
/// `quantisation`.
#[allow(clippy::too_many_arguments)]
pub fn build_catalog_reusing<R, U, V>(
    embedder: &Embedder,
    model: ModelInfo,
    items: Vec<SourceItem>,
    read: R,
    reuse: &U,
    quantisation: &Quantisation,
    options: &BuildOptions,
    events: &mut V,
) -> Result<BuiltCatalog, BuildError<V::Error>>
where
    R: Fn(usize) -> Result<Vec<u8>, String> + Sync,
    U: Reuse + ?Sized,
    V: BuildEvents,
{
    let recipe = recipe(embedder, model, options);
    let total = items.len();
    let embedded = embed_sources(embedder, items, read, reuse, options, events)?;
    events.progress(BuildPhase::Catalog, 0, 1);
    let catalog = assemble(&recipe, embedded.items, total, options, quantisation)?;
    events.progress(BuildPhase::Catalog, 1, 1);
    Ok(BuiltCatalog { catalog, skipped: embedded.skipped, work: embedded.work })
}
