//! A shard of a build: the embeddings of the `i`-th of `n` deterministic slices of the input
//! list (contiguous, in list order, cut at the whole build's batch boundaries so that every
//! photo is embedded in the same batch as in the whole build: the results of some engines
//! depend on a batch's make-up), for [`crate::search::merge`] to join into the catalog the whole
//! build would make. A shard folder holds `shard.json` (this module's [`ShardManifest`]:
//! which slice of which input list, made with which recipe and catalog settings, its items
//! and the photos it skipped), `vectors.f32` (per kept item its image then its name vector,
//! f32 little-endian: the embeddings before any quantisation) and `thumbs/<id>.jpg`.

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::digest::{is_sha256_hex, sha256_hex};
use crate::error::ShardError;
use crate::search::build_recipe::Recipe;
use crate::search::catalog::{Item, VectorDtype, MAX_EMBEDDING_DIM};
use crate::search::catalog_builder::{BuildOptions, Embedded, EmbeddedItem};
use crate::search::item_fields::ItemFields;
use crate::search::item_id::{self, thumbnail_file};
use crate::search::ranking_options::RankingOverrides;

pub const FORMAT: &str = "clipmatch-shard";
pub const VERSION: u32 = 1;
pub const MANIFEST_FILE: &str = "shard.json";
pub const VECTORS_FILE: &str = "vectors.f32";

/// Which slice: `index` (from 0) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSpec {
    pub index: usize,
    pub count: usize,
}

impl ShardSpec {
    /// `"i/n"`, with `i` from 0 to `n - 1` (as Kubernetes' `JOB_COMPLETION_INDEX` counts).
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a shard: write i/n, e.g. 0/4 for the first of 4 (i counts from 0 to n - 1)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }

    /// The inputs of this slice among `total` embedded `batch` at a time: of the `b` batches,
    /// `b * i / n .. b * (i + 1) / n`.
    pub fn slice(&self, total: usize, batch: usize) -> Range<usize> {
        let batch = batch.max(1);
        let batches = total.div_ceil(batch);
        let at = |k: usize| ((batches as u128 * k as u128 / self.count as u128) as usize * batch).min(total);
        at(self.index)..at(self.index + 1)
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The catalog settings of the build besides its recipe: the merged catalog is made with them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogSettings {
    /// Photos per vision tower call: the slices are cut at batch boundaries.
    pub batch_size: usize,
    pub vector_dtype: String,
    pub text_weight: Option<f32>,
    pub image_weight: Option<f32>,
    pub top_k: Option<usize>,
    pub min_score: Option<f32>,
    pub record_sources: bool,
}

impl CatalogSettings {
    pub fn of(options: &BuildOptions) -> Self {
        let r = options.ranking;
        Self {
            batch_size: options.batch_size,
            vector_dtype: options.vector_dtype.name().into(),
            text_weight: r.text_weight,
            image_weight: r.image_weight,
            top_k: r.top_k,
            min_score: r.min_score,
            record_sources: options.record_sources,
        }
    }

    /// The build's options.
    pub fn options(&self, recipe: &Recipe) -> Result<BuildOptions, ShardError> {
        if self.batch_size == 0 {
            return Err(ShardError::Damaged("its batch size is 0".into()));
        }
        let vector_dtype = VectorDtype::parse(&self.vector_dtype)
            .ok_or_else(|| ShardError::Damaged(format!("unknown vector dtype {:?}", self.vector_dtype)))?;
        let ranking = RankingOverrides { text_weight: self.text_weight, image_weight: self.image_weight, top_k: self.top_k, min_score: self.min_score };
        Ok(BuildOptions { batch_size: self.batch_size, thumbnail_side: recipe.thumbnail_side, vector_dtype, ranking, record_sources: self.record_sources })
    }
}

/// The whole input list a shard is a slice of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInputs {
    /// Items in the whole list.
    pub items: usize,
    /// [`crate::search::build_recipe::inputs_sha256`] of the whole list.
    pub sha256: String,
}

/// A kept item of the slice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardItem {
    /// Its position in the whole input list.
    pub index: usize,
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub image: String,
    #[serde(default, skip_serializing_if = "ItemFields::is_empty")]
    pub fields: ItemFields,
    pub image_sha256: String,
    /// sha256 of `thumbs/<id>.jpg` in the shard folder.
    pub thumbnail_sha256: String,
}

/// A photo of the slice the build could not use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardSkip {
    pub index: usize,
    pub image: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardVectors {
    pub file: String,
    pub sha256: String,
}

/// `shard.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardManifest {
    pub format: String,
    pub version: u32,
    pub shard: ShardSpec,
    pub inputs: ShardInputs,
    pub recipe: Recipe,
    pub catalog: CatalogSettings,
    pub vectors: ShardVectors,
    pub items: Vec<ShardItem>,
    pub skipped: Vec<ShardSkip>,
}

/// A shard read back: its manifest and its items as the merge joins them.
#[derive(Debug, Clone)]
pub struct Shard {
    pub manifest: ShardManifest,
    pub items: Vec<EmbeddedItem>,
}

/// A shard's two files.
pub struct ShardFiles {
    pub manifest_json: String,
    pub vectors: Vec<u8>,
}

impl ShardManifest {
    /// The files of shard `spec` of a build of `inputs` with `recipe` and `options`, from what
    /// [`crate::search::catalog_builder::embed_sources`] made of its slice (indices relative to
    /// the slice; `images[k]` is the image of the slice's `k`-th input, for skip messages) and
    /// the sha256 of each thumbnail written (by file).
    pub fn files(
        spec: ShardSpec,
        inputs: ShardInputs,
        recipe: &Recipe,
        options: &BuildOptions,
        embedded: &Embedded,
        images: &[String],
        thumbnail_sha256: impl Fn(&str) -> String,
    ) -> ShardFiles {
        let first = spec.slice(inputs.items, options.batch_size).start;
        let mut vectors = Vec::with_capacity(embedded.items.len() * recipe.model.embedding_dim * 8);
        let items = embedded
            .items
            .iter()
            .map(|e| {
                e.image.iter().chain(&e.name).for_each(|x| vectors.extend_from_slice(&x.to_le_bytes()));
                ShardItem {
                    index: first + e.index,
                    id: e.item.id.clone(),
                    name: e.item.name.clone(),
                    description: e.item.description.clone(),
                    image: e.item.image.clone(),
                    fields: e.item.fields.clone(),
                    image_sha256: e.image_sha256.clone(),
                    thumbnail_sha256: thumbnail_sha256(&thumbnail_file(&e.item.id)),
                }
            })
            .collect();
        let skipped = embedded
            .skipped
            .iter()
            .map(|s| ShardSkip { index: first + s.index, image: images[s.index].clone(), reason: s.reason.to_string() })
            .collect();
        let manifest = ShardManifest {
            format: FORMAT.into(),
            version: VERSION,
            shard: spec,
            inputs,
            recipe: recipe.clone(),
            catalog: CatalogSettings::of(options),
            vectors: ShardVectors { file: VECTORS_FILE.into(), sha256: sha256_hex(&vectors) },
            items,
            skipped,
        };
        ShardFiles { manifest_json: serde_json::to_string_pretty(&manifest).expect("shard manifest serialises"), vectors }
    }
}

/// The vectors file's expected size for `items` kept items of `dim` values per vector.
pub fn vectors_len(items: usize, dim: usize) -> Option<usize> {
    items.checked_mul(2)?.checked_mul(dim)?.checked_mul(4)
}

impl Shard {
    /// The manifest alone (to check its vectors file's size before reading it).
    pub fn manifest(json: &[u8]) -> Result<ShardManifest, ShardError> {
        let head: serde_json::Value = serde_json::from_slice(json).map_err(|e| ShardError::Format(format!("{MANIFEST_FILE}: {e}")))?;
        let format = head.get("format").and_then(|v| v.as_str()).unwrap_or("");
        let version = head.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
        if format != FORMAT || version != VERSION as u64 {
            return Err(ShardError::Format(format!("format {format:?} version {version}; this reads {FORMAT:?} version {VERSION}")));
        }
        serde_json::from_value(head).map_err(|e| ShardError::Format(format!("{MANIFEST_FILE}: {e}")))
    }

    /// A shard from its two files, checked on its own: a slice of its input list that it
    /// covers exactly (each input kept or skipped, in order), vectors of the size and sha256
    /// the manifest says, finite, valid ids and digests.
    pub fn from_parts(json: &[u8], vectors: &[u8]) -> Result<Shard, ShardError> {
        let manifest = Self::manifest(json)?;
        let damaged = |why: String| Err(ShardError::Damaged(why));
        let m = &manifest;
        if m.shard.count == 0 || m.shard.index >= m.shard.count {
            return damaged(format!("it calls itself shard {}", m.shard));
        }
        if !is_sha256_hex(&m.inputs.sha256) {
            return damaged("its input list digest is not a sha256".into());
        }
        let options = m.catalog.options(&m.recipe)?;
        let slice = m.shard.slice(m.inputs.items, options.batch_size);
        let mut listed: Vec<usize> = m.items.iter().map(|i| i.index).chain(m.skipped.iter().map(|s| s.index)).collect();
        listed.sort_unstable();
        if !listed.iter().copied().eq(slice.clone()) {
            return damaged(format!("it does not list each input {} to {} of its slice exactly once", slice.start, slice.end));
        }
        if !m.items.windows(2).all(|w| w[0].index < w[1].index) {
            return damaged("its items are not in input order".into());
        }
        for item in &m.items {
            if let Err(e) = item_id::check(&item.id) {
                return damaged(format!("input {}: {e}", item.index));
            }
            if !(is_sha256_hex(&item.image_sha256) && is_sha256_hex(&item.thumbnail_sha256)) {
                return damaged(format!("input {}: a sha256 is not 64 lowercase hex digits", item.index));
            }
        }
        let dim = m.recipe.model.embedding_dim;
        if dim == 0 || dim > MAX_EMBEDDING_DIM {
            return damaged(format!("its embedding_dim is {dim}"));
        }
        if m.vectors.file != VECTORS_FILE {
            return damaged(format!("its vectors file is {:?}, not {VECTORS_FILE:?}", m.vectors.file));
        }
        if Some(vectors.len()) != vectors_len(m.items.len(), dim) {
            return damaged(format!("{VECTORS_FILE} is {} bytes, not {} items x 2 x {dim} values x 4 bytes", vectors.len(), m.items.len()));
        }
        if sha256_hex(vectors) != m.vectors.sha256 {
            return damaged(format!("{VECTORS_FILE} does not match the sha256 in {MANIFEST_FILE}"));
        }
        let values: Vec<f32> = vectors.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        if values.iter().any(|x| !x.is_finite()) {
            return damaged(format!("{VECTORS_FILE} holds NaN or infinite values"));
        }
        let items = m
            .items
            .iter()
            .zip(values.chunks_exact(2 * dim))
            .map(|(s, v)| EmbeddedItem {
                index: s.index,
                item: Item {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    description: s.description.clone(),
                    image: s.image.clone(),
                    thumbnail: Some(thumbnail_file(&s.id)),
                    fields: s.fields.clone(),
                },
                image_sha256: s.image_sha256.clone(),
                image: v[..dim].to_vec(),
                name: v[dim..].to_vec(),
            })
            .collect();
        Ok(Shard { manifest, items })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_slices_cover_the_list_once() {
        assert_eq!(ShardSpec::parse("0/4").unwrap(), ShardSpec { index: 0, count: 4 });
        assert_eq!(ShardSpec::parse("3/4").unwrap().to_string(), "3/4");
        for bad in ["4/4", "1/0", "-1/4", "1", "a/b", "1/4/5", ""] {
            let e = ShardSpec::parse(bad).unwrap_err();
            assert!(e.contains("is not a shard: write i/n"), "{bad}: {e}");
        }
        for total in [0, 1, 3, 4, 10, 781] {
            for batch in [1, 3, 16] {
                for count in 1..=6 {
                    let slices: Vec<Range<usize>> = (0..count).map(|index| ShardSpec { index, count }.slice(total, batch)).collect();
                    assert_eq!(slices[0].start, 0);
                    assert_eq!(slices[count - 1].end, total);
                    assert!(slices.windows(2).all(|w| w[0].end == w[1].start), "{total} {count}");
                    assert!(slices.iter().all(|s| s.start % batch == 0 || s.is_empty()), "{total} {batch} {count}: {slices:?}");
                    let batches = total.div_ceil(batch);
                    assert!(slices.iter().all(|s| s.len().div_ceil(batch) <= batches.div_ceil(count)), "{total} {batch} {count}: {slices:?}");
                }
            }
        }
        assert_eq!(ShardSpec { index: 1, count: 4 }.slice(781, 16), 192..384);
    }
}
