//! The one limit on a catalog's manifest (`catalog.json`), shared by every writer and every
//! reader: [`MAX_MANIFEST_BYTES`]; and the bytes a list's items will take in it, known before
//! anything is embedded.

use std::io::Write;

use super::format::Item;
use crate::error::CatalogError;

/// Largest `catalog.json` written or read: 64 MiB (ViT-B/32 catalogs take about 200 bytes an
/// item). A page catalog, the manifest less what the page does not need, is held to it too.
pub const MAX_MANIFEST_BYTES: usize = 64 << 20;

/// Bytes of one `sources.image_sha256` entry in a manifest: `      "<64 hex digits>",\n`.
const SHA256_LINE_BYTES: u64 = 6 + 66 + 2;

/// Counts the bytes and line breaks written to it.
#[derive(Default)]
struct Counter {
    bytes: u64,
    lines: u64,
}

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes += buf.len() as u64;
        self.lines += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Bytes `items` take in a manifest (pretty JSON, each line of an item indented by 4 within
/// `items`, a comma and a line break between items), with a `sources.image_sha256` entry each
/// when `sources` is set: the manifest is larger by its head.
pub fn items_bytes(items: impl IntoIterator<Item = Item>, sources: bool) -> u64 {
    items
        .into_iter()
        .map(|item| {
            let mut c = Counter::default();
            serde_json::to_writer_pretty(&mut c, &item).expect("an item serialises");
            c.bytes + 4 * (c.lines + 1) + 2 + if sources { SHA256_LINE_BYTES } else { 0 }
        })
        .sum()
}

/// Most items a catalog can hold within [`MAX_MANIFEST_BYTES`]: as many of the smallest item a
/// manifest can hold (a one-letter id, no name, image or thumbnail) as fit.
pub fn max_items() -> usize {
    let smallest = Item {
        id: "a".into(),
        name: String::new(),
        description: None,
        image: String::new(),
        thumbnail: None,
        fields: Default::default(),
    };
    MAX_MANIFEST_BYTES / items_bytes([smallest], false) as usize
}

/// Refuses a manifest of `bytes` over [`MAX_MANIFEST_BYTES`]: `what` names it in the message,
/// `hint` says what to do.
pub fn check_manifest_bytes(bytes: u64, what: &'static str, hint: &'static str) -> Result<(), CatalogError> {
    if bytes <= MAX_MANIFEST_BYTES as u64 {
        return Ok(());
    }
    Err(CatalogError::ManifestTooLarge { what, bytes, max: MAX_MANIFEST_BYTES as u64, hint })
}
