//! Reading the page's manifest (`page-catalog.json`, gzipped as bundles carry it, or plain) with
//! bounded memory: streamed from the decompressor, never held whole, and parsed straight into its
//! typed form, in three passes over the stream. The first reads its format and version; the
//! second counts its items and their fields without keeping any, and checks the count against
//! the compact codes; only then the third keeps them. The stream is cut past
//! [`MAX_MANIFEST_BYTES`] (the page catalog is less than the catalog's manifest, held to it too),
//! and no pass ever holds more than a catalog within that limit could need.

use std::io::{BufReader, Read};

use flate2::read::GzDecoder;
use serde::de::{DeserializeOwned, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::error::CatalogError;
use crate::search::catalog::{max_items, read_codes, CompactInfo, PageCatalog, MAX_MANIFEST_BYTES, PAGE_FORMAT, PAGE_VERSION};
use crate::search::compact::CompactCodes;
use crate::search::item_fields::MAX_FIELDS;

/// gzip's first two bytes (RFC 1952); JSON never starts with them.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The page's manifest read and checked as far as its shape goes (format, version, counts, the
/// codes), and the codes.
pub(crate) fn read(file: &[u8], codes: &[u8]) -> Result<(PageCatalog, CompactCodes), CatalogError> {
    let tag: Tag = parse(file)?;
    let (format, version) = (tag.format.0.unwrap_or_default(), tag.version.0.and_then(|v| u32::try_from(v).ok()).unwrap_or(0));
    if format != PAGE_FORMAT || version != PAGE_VERSION {
        return Err(CatalogError::UnsupportedVersion { found: format, version, expected: PAGE_FORMAT, supported: PAGE_VERSION });
    }
    let outline: Outline = parse(file)?;
    let n = outline.ids.len;
    if outline.names.len != n {
        return Err(CatalogError::Invalid(format!("the page catalog lists {n} ids but {} names", outline.names.len)));
    }
    if let Some(fields) = outline.fields.filter(|f| f.len != n) {
        return Err(CatalogError::Invalid(format!("the page catalog lists {n} ids but the fields of {} items", fields.len)));
    }
    if n > max_items() {
        return Err(CatalogError::Invalid(format!(
            "the page catalog lists {n} items; a catalog holds at most {} (its manifest may take {} MiB)",
            max_items(),
            MAX_MANIFEST_BYTES >> 20
        )));
    }
    if let Some(fields) = outline.fields.filter(|f| f.widest > MAX_FIELDS) {
        return Err(CatalogError::Invalid(format!(
            "the page catalog gives an item {} fields; an item may have at most {MAX_FIELDS}",
            fields.widest
        )));
    }
    let codes = read_codes(&outline.compact, n, outline.model.embedding_dim, codes)?;
    Ok((parse(file)?, codes))
}

/// `T` from the page catalog's JSON, streamed: decompressed if gzipped, refused past the limit.
fn parse<T: DeserializeOwned>(file: &[u8]) -> Result<T, CatalogError> {
    let inner: Box<dyn Read + '_> = if file.starts_with(&GZIP_MAGIC) { Box::new(GzDecoder::new(file)) } else { Box::new(file) };
    let mut stream = BufReader::new(Capped { inner, left: MAX_MANIFEST_BYTES as u64, exceeded: false });
    let parsed = serde_json::from_reader(&mut stream);
    if stream.get_ref().exceeded {
        return Err(CatalogError::Invalid(format!(
            "the page catalog expands to more than the {} MiB a catalog's manifest may take: it is not one `clipmatch bundle` wrote",
            MAX_MANIFEST_BYTES >> 20
        )));
    }
    parsed.map_err(|e| CatalogError::Manifest(format!("page catalog: {e}")))
}

/// Passes on at most `left` bytes of `inner`; a byte more is an error, and `exceeded` says so.
struct Capped<R> {
    inner: R,
    left: u64,
    exceeded: bool,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let most = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX).saturating_add(1));
        let n = self.inner.read(&mut buf[..most])?;
        if n as u64 > self.left {
            self.exceeded = true;
            return Err(std::io::Error::other("the page catalog is too large"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// `format` and `version`, whatever their JSON types (anything but a string or a whole number
/// is none), and nothing else kept.
#[derive(Deserialize)]
struct Tag {
    #[serde(default)]
    format: Loose<String>,
    #[serde(default)]
    version: Loose<u64>,
}

/// What the items take, counted, not kept: the three lists' lengths, the embedding size and
/// the compact codes' entry (to check the count against the codes).
#[derive(Deserialize)]
struct Outline {
    model: OutlineModel,
    compact: CompactInfo,
    ids: Shape,
    names: Shape,
    #[serde(default)]
    fields: Option<Shape>,
}

#[derive(Deserialize)]
struct OutlineModel {
    embedding_dim: usize,
}

/// A value of type `T`, or none if the JSON holds something else there (skipped, not kept).
#[derive(Default)]
struct Loose<T>(Option<T>);

impl<'de> Deserialize<'de> for Loose<String> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Loose(d.deserialize_any(Skim { keep_text: true })?.text))
    }
}

impl<'de> Deserialize<'de> for Loose<u64> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Loose(d.deserialize_any(Skim { keep_text: false })?.number))
    }
}

/// A JSON list's length, and the most entries any of its elements has as an object.
#[derive(Clone, Copy)]
struct Shape {
    len: usize,
    widest: usize,
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = Shape;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
                let mut shape = Shape { len: 0, widest: 0 };
                while let Some(element) = seq.next_element::<Skimmed>()? {
                    shape.len += 1;
                    shape.widest = shape.widest.max(element.entries);
                }
                Ok(shape)
            }
        }
        d.deserialize_seq(List)
    }
}

/// Any JSON value, skimmed: its value if a whole number, its number of entries if an object, its
/// text if a string and that was asked for; nothing of it kept otherwise.
#[derive(Default)]
struct Skimmed {
    text: Option<String>,
    number: Option<u64>,
    entries: usize,
}

impl<'de> Deserialize<'de> for Skimmed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Skim { keep_text: false })
    }
}

struct Skim {
    keep_text: bool,
}

impl<'de> Visitor<'de> for Skim {
    type Value = Skimmed;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E>(self, v: &str) -> Result<Skimmed, E> {
        Ok(Skimmed { text: self.keep_text.then(|| v.to_string()), ..Skimmed::default() })
    }

    fn visit_u64<E>(self, v: u64) -> Result<Skimmed, E> {
        Ok(Skimmed { number: Some(v), ..Skimmed::default() })
    }

    fn visit_i64<E>(self, _: i64) -> Result<Skimmed, E> {
        Ok(Skimmed::default())
    }

    fn visit_f64<E>(self, _: f64) -> Result<Skimmed, E> {
        Ok(Skimmed::default())
    }

    fn visit_bool<E>(self, _: bool) -> Result<Skimmed, E> {
        Ok(Skimmed::default())
    }

    fn visit_unit<E>(self) -> Result<Skimmed, E> {
        Ok(Skimmed::default())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skimmed, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Skimmed::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skimmed, A::Error> {
        let mut entries = 0;
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
            entries += 1;
        }
        Ok(Skimmed { entries, ..Skimmed::default() })
    }
}
