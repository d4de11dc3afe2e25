//! The catalog's files as they are written: the manifest's types (`catalog.json`), the names of
//! the two files, and the layout of `vectors.bin`: item after item, its image vector then its
//! name vector, `embedding_dim` little-endian values each, `i8` or `f32`.

use serde::{Deserialize, Serialize};

use crate::error::{CatalogError, SettingError};
use crate::models::config::PreprocessConfig;
use crate::search::item_fields::ItemFields;

pub const FORMAT: &str = "clipmatch-catalog";
/// The version written. Version 1 (f32 vectors only) is still read.
pub const VERSION: u32 = 2;
pub const OLDEST_VERSION: u32 = 1;
pub const MANIFEST_FILE: &str = "catalog.json";
pub const VECTORS_FILE: &str = "vectors.bin";
/// The compact codes (`build --compact`): codebooks and every item's codes.
pub const COMPACT_FILE: &str = "compact.bin";
/// What the page reads of a compact catalog before its first answer, in a bundle: the manifest
/// less what only the tool needs (see [`PageCatalog`]).
pub const PAGE_MANIFEST_FILE: &str = "page-catalog.json";
pub const PAGE_FORMAT: &str = "clipmatch-page-catalog";
pub const PAGE_VERSION: u32 = 1;

/// Largest `embedding_dim` a catalog may declare (CLIP's are 512 to 1024).
pub const MAX_EMBEDDING_DIM: usize = 65_536;

pub(super) const LAYOUT: &str = "per item in manifest order: image vector then name vector, embedding_dim values each, little-endian";
pub(super) const LAYOUT_I8: &str = "per item in manifest order: image vector then name vector, embedding_dim values each, i8 (value[j] = offsets.image[j] + q x scales.image, or the text ones)";

/// The two vectors of an item, in the order `vectors.bin` stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorKind {
    /// The embedding of the product's image.
    Image,
    /// The embedding of the product's name (its scale and offsets are the manifest's `text` ones).
    Name,
}

impl VectorKind {
    /// Both kinds, in file order.
    pub const ALL: [VectorKind; 2] = [VectorKind::Image, VectorKind::Name];

    /// Where this kind sits in an item's pair of vectors.
    pub fn index(self) -> usize {
        match self {
            VectorKind::Image => 0,
            VectorKind::Name => 1,
        }
    }

    /// The kind of the `v`-th vector of the file (counting from 0, all items in turn).
    pub fn of_vector(v: usize) -> Self {
        Self::ALL[v % Self::ALL.len()]
    }

    /// "image" or "name", for messages.
    pub fn label(self) -> &'static str {
        match self {
            VectorKind::Image => "image",
            VectorKind::Name => "name",
        }
    }
}

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

impl VectorOffsets {
    pub fn of(&self, kind: VectorKind) -> &[f32] {
        match kind {
            VectorKind::Image => &self.image,
            VectorKind::Name => &self.text,
        }
    }
}

/// The scales of an i8 catalog: a stored value `q` stands for `offset + q * scale`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct VectorScales {
    pub image: f32,
    pub text: f32,
}

impl VectorScales {
    pub fn of(&self, kind: VectorKind) -> f32 {
        match kind {
            VectorKind::Image => self.image,
            VectorKind::Name => self.text,
        }
    }
}

/// How catalog vectors are stored in `vectors.bin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(not(target_family = "wasm"), derive(clap::ValueEnum))]
pub enum VectorDtype {
    /// One signed byte per value, -127..=127, times the catalog's scale for that vector kind.
    #[default]
    #[cfg_attr(not(target_family = "wasm"), value(help = None::<&str>))]
    I8,
    /// Little-endian f32.
    #[cfg_attr(not(target_family = "wasm"), value(help = None::<&str>))]
    F32,
}

impl VectorDtype {
    /// The manifest's name for it (`vectors.dtype`).
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

/// Size of a vectors file: `items x 2 x embedding_dim x dtype bytes` (ViT-B/32 in i8: 1024
/// bytes per item); `None` when that is more than this machine can address (on wasm32, 4 GiB).
pub fn vectors_file_size(items: usize, dim: usize, dtype: VectorDtype) -> Option<usize> {
    checked_value_count(items, dim)?.checked_mul(dtype.bytes())
}

fn checked_value_count(items: usize, dim: usize) -> Option<usize> {
    items.checked_mul(VectorKind::ALL.len())?.checked_mul(dim)
}

/// Number of values a catalog's vectors hold: `items x 2 x embedding_dim`.
pub(super) fn value_count(items: usize, dim: usize) -> Result<usize, CatalogError> {
    checked_value_count(items, dim).ok_or_else(|| too_many_values(items, dim))
}

pub(super) fn too_many_values(items: usize, dim: usize) -> CatalogError {
    CatalogError::Invalid(format!(
        "{items} items of {dim}-dimensional vector pairs are more values than this machine can address"
    ))
}

/// How results are scored unless the user says otherwise.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct RankingDefaults {
    pub text_weight: f32,
    pub image_weight: f32,
    pub top_k: usize,
    /// Below this best fused score the answer is "no confident match".
    pub min_score: f32,
    /// Where the weights and the threshold came from when `clipmatch tune` chose them on the
    /// shop's photos; absent otherwise (and then not written, so untuned manifests are unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuned: Option<TunedRanking>,
}

impl Default for RankingDefaults {
    fn default() -> Self {
        Self {
            text_weight: 1.5,
            image_weight: 0.5,
            top_k: 5,
            min_score: 0.0,
            tuned: None,
        }
    }
}

/// `ranking.tuned`: how `clipmatch tune` chose the catalog's weights and threshold, and the
/// figures that justify them (measured on products held out of the choice).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct TunedRanking {
    /// When it was tuned (UTC, written as `YYYY-MM-DDTHH:MM:SSZ`).
    pub when: UtcSeconds,
    /// Labelled photos used, and how many of them show products the catalog does not hold.
    pub photos: usize,
    pub not_in_catalog_photos: usize,
    /// Catalog products that had photos.
    pub products: usize,
    /// Cross-validation folds over products (a product's photos are never on both sides).
    pub folds: usize,
    /// The operating point asked for: the precision of "confident match".
    pub confident_precision_target: f32,
    /// The operating point chosen on all the photos.
    pub text_weight: f32,
    pub image_weight: f32,
    pub min_score: f32,
    /// The same choice made without each fold's products, measured on them.
    pub held_out: TunedMetrics,
    /// The weights and threshold the catalog had before, measured on the same photos.
    pub before: TunedMetrics,
}

/// Search quality figures over labelled photos (fractions from 0 to 1; `None` where nothing
/// was counted, e.g. a precision when no photo was a confident match).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct TunedMetrics {
    /// The photo's product ranked first / in the first five, and the mean of 1 / its rank.
    pub top1: f32,
    pub top5: f32,
    pub mrr: f32,
    /// Of the confident matches, the share that named the right product (photos of products
    /// left out of the catalog count as wrong ones).
    pub confident_precision: Option<f32>,
    /// Of the photos of catalog products, the share matched confidently and rightly.
    pub confident_recall: Option<f32>,
}

/// A time as whole seconds since 1970-01-01 UTC, written as `YYYY-MM-DDTHH:MM:SSZ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UtcSeconds(pub u64);

impl UtcSeconds {
    const DAY: u64 = 86_400;

    /// Days since 1970-01-01 as (year, month, day): Howard Hinnant's `civil_from_days`.
    fn civil(days: u64) -> (u64, u64, u64) {
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z % 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        (yoe + era * 400 + u64::from(m <= 2), m, d)
    }

    /// (year, month, day) as days since 1970-01-01: `days_from_civil`, for years from 1970.
    fn days(y: u64, m: u64, d: u64) -> u64 {
        let y = if m <= 2 { y - 1 } else { y };
        let (era, yoe) = (y / 400, y % 400);
        let mp = if m > 2 { m - 3 } else { m + 9 };
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let shape = b.len() == 20
            && [4, 7].iter().all(|&i| b[i] == b'-')
            && b[10] == b'T'
            && [13, 16].iter().all(|&i| b[i] == b':')
            && b[19] == b'Z';
        let num = |r: std::ops::Range<usize>| -> Option<u64> {
            s.get(r).filter(|t| t.bytes().all(|c| c.is_ascii_digit()))?.parse().ok()
        };
        let (y, mo, d, h, mi, se) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
        let valid = shape && y >= 1970 && (1..=12).contains(&mo) && (1..=31).contains(&d) && h < 24 && mi < 60 && se < 60;
        let t = Self(Self::days(y, mo, d) * Self::DAY + h * 3600 + mi * 60 + se);
        // A day past the month's end (2025-02-30) comes back as another date: refused.
        (valid && t.to_string() == s).then_some(t)
    }
}

impl std::fmt::Display for UtcSeconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (y, m, d) = Self::civil(self.0 / Self::DAY);
        let s = self.0 % Self::DAY;
        write!(f, "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
    }
}

impl Serialize for UtcSeconds {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UtcSeconds {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not a time like 2025-06-30T14:05:00Z")))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Item {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The source image, as given to `build`. Empty, and not written, in a bundle's catalog
    /// ([`super::Catalog::for_page`]): a local path is no business of the web.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// A small JPEG beside the manifest, relative to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<String>,
    /// The shop's other columns (`url`, `price`, `sku`, ...); absent when there are none (and
    /// then not written, so catalogs without them are unchanged, and older ones read).
    #[serde(default, skip_serializing_if = "ItemFields::is_empty")]
    pub fields: ItemFields,
}

/// Largest thumbnail side a catalog may ask for, in pixels (the default is 256).
pub const MAX_THUMBNAIL_SIDE: u32 = 1024;

/// `side` if it is a thumbnail size: 1 to [`MAX_THUMBNAIL_SIDE`] pixels.
pub fn check_thumbnail_side(side: u32) -> Result<u32, SettingError> {
    if (1..=MAX_THUMBNAIL_SIDE).contains(&side) {
        Ok(side)
    } else {
        Err(SettingError::ThumbnailSide { value: side, max: MAX_THUMBNAIL_SIDE })
    }
}

/// `sources`: what `clipmatch build --updatable` records so that a later `build --update` can
/// tell which items changed and refuse settings that would give other vectors or thumbnails.
/// Absent otherwise (and then not written, so other manifests are unchanged).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourcesRecord {
    /// What ran the model (`ours` or `candle`: for OpenAI CLIP they differ in the last bits).
    pub engine: String,
    /// Longest side of the thumbnails, in pixels.
    pub thumbnail_side: u32,
    /// sha256 (lowercase hex) of each item's image file, in item order.
    pub image_sha256: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub model: ModelInfo,
    pub preprocessing: PreprocessConfig,
    pub vectors: VectorsInfo,
    pub ranking: RankingDefaults,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<SourcesRecord>,
    /// `build --compact`: the compact codes and the page's manifest; absent otherwise (and then
    /// not written, so other manifests are unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compact: Option<CompactInfo>,
    pub items: Vec<Item>,
}

pub(super) const COMPACT_LAYOUT: &str = "one fused vector per item (text_weight x name + image_weight x image) in two product-quantisation stages: the first stage's codebook (subspaces x centroids x embedding_dim / subspaces little-endian f16), the residual stage's (residual_subspaces x centroids x ..., absent when 0), then per item in manifest order: its first code (subspaces bytes) then its residual code (residual_subspaces bytes)";

/// A file beside the manifest, with its size and sha256.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ListedFile {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
}

/// `compact`: the compact codes of the catalog (product quantisation of one vector per item, its
/// two fused with `text_weight` and `image_weight`, in two stages). `clipmatch bundle` derives
/// the page's smaller manifest ([`PageCatalog`]) from this one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CompactInfo {
    /// [`COMPACT_FILE`].
    pub codes: ListedFile,
    /// Bytes of an item's first code: each subspace of `embedding_dim / subspaces` values.
    pub subspaces: usize,
    /// Bytes of an item's residual code (0: none). Absent from the per-kind codes of older
    /// versions, which are refused by their `layout`.
    #[serde(default)]
    pub residual_subspaces: usize,
    /// The weights the item vectors were fused with (the ranking weights when they were made).
    #[serde(default)]
    pub text_weight: f32,
    #[serde(default)]
    pub image_weight: f32,
    /// Centres per subspace (at most 256: one byte).
    pub centroids: usize,
    /// Catalogs of at least this many items are ranked with the codes; smaller ones exactly.
    pub min_items: usize,
    pub layout: String,
}

/// `page-catalog.json`: what the page needs of a compact catalog to rank and show results, and
/// to check `compact.bin` and (later, in the background) `vectors.bin`: no source paths, no
/// descriptions, no thumbnails (a page cannot download 100,000 thumbnails up front, and fetching
/// only the results' would tell the host what the photo shows).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PageCatalog {
    pub format: String,
    pub version: u32,
    pub model: ModelInfo,
    pub preprocessing: PreprocessConfig,
    pub vectors: VectorsInfo,
    pub ranking: RankingDefaults,
    pub compact: CompactInfo,
    /// Every item's id, in manifest order (two plain lists: at 100,000 items, objects with keys
    /// would add 1.5 MB).
    pub ids: Vec<String>,
    /// Every item's name, in manifest order.
    pub names: Vec<String>,
    /// Every item's fields, in manifest order; absent when no item has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<ItemFields>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnail_sizes_are_1_to_max_side() {
        assert_eq!(check_thumbnail_side(1), Ok(1));
        assert_eq!(check_thumbnail_side(MAX_THUMBNAIL_SIDE), Ok(MAX_THUMBNAIL_SIDE));
        assert_eq!(check_thumbnail_side(0).unwrap_err().to_string(), "the thumbnail size must be 1 to 1024 pixels, not 0");
        assert!(check_thumbnail_side(MAX_THUMBNAIL_SIDE + 1).is_err());
    }

    #[test]
    fn times_are_written_as_utc_and_read_back() {
        for (secs, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_782_830_705, "2026-06-30T14:45:05Z"),
            (4_107_542_399, "2100-02-28T23:59:59Z"),
        ] {
            assert_eq!(UtcSeconds(secs).to_string(), text);
            assert_eq!(UtcSeconds::parse(text), Some(UtcSeconds(secs)), "{text}");
        }
        for bad in ["2025-02-30T00:00:00Z", "2025-13-01T00:00:00Z", "2025-01-01 00:00:00Z", "1969-12-31T23:59:59Z", "2025-01-01T00:00:60Z", "+025-01-01T00:00:00Z"] {
            assert_eq!(UtcSeconds::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn untuned_rankings_are_written_as_before_and_tuned_ones_read_back() {
        let plain = serde_json::to_string(&RankingDefaults::default()).unwrap();
        assert_eq!(plain, r#"{"text_weight":1.5,"image_weight":0.5,"top_k":5,"min_score":0.0}"#);
        let old: RankingDefaults = serde_json::from_str(r#"{"text_weight":1,"image_weight":2,"top_k":3,"min_score":0.5}"#).unwrap();
        assert_eq!(old.tuned, None);
        let m = TunedMetrics { top1: 0.5, top5: 1.0, mrr: 0.75, confident_precision: Some(0.9), confident_recall: None };
        let tuned = RankingDefaults {
            tuned: Some(TunedRanking {
                when: UtcSeconds(1_782_830_705),
                photos: 100,
                not_in_catalog_photos: 3,
                products: 21,
                folds: 5,
                confident_precision_target: 0.9,
                text_weight: 1.1,
                image_weight: 0.9,
                min_score: 0.61,
                held_out: m,
                before: TunedMetrics { confident_precision: None, ..m },
            }),
            ..RankingDefaults::default()
        };
        let json = serde_json::to_string(&tuned).unwrap();
        assert!(json.contains(r#""when":"2026-06-30T14:45:05Z""#), "{json}");
        assert_eq!(serde_json::from_str::<RankingDefaults>(&json).unwrap(), tuned);
    }
}
