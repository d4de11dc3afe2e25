//! Reading a catalog folder from disk: `catalog.json`, `vectors.bin` (and `compact.bin` when the
//! manifest lists it: its size, sha256 and values checked) and `thumbs/<id>.jpg`, by
//! those names only, each a regular file inside the folder (see [`files::open_inside`]), with
//! size caps: the manifest at most [`MAX_MANIFEST_BYTES`], the vectors exactly the size the
//! manifest implies (checked before reading), a thumbnail at most [`MAX_THUMBNAIL_BYTES`] and,
//! by its header, a JPEG of at most the catalog's thumbnail size a side.
//! Before reading, a swap into the folder that a stopped command left half done is finished
//! ([`work_dir::settle`]).

use std::path::Path;

use anyhow::{bail, Context, Result};
use clipmatch::search::catalog::{self, check_thumbnail, VectorDtype, COMPACT_FILE, MANIFEST_FILE, VECTORS_FILE};
use clipmatch::Catalog;

use super::{files, work_dir};

/// Largest `catalog.json` read: the core's limit, which every writer keeps to.
pub const MAX_MANIFEST_BYTES: u64 = catalog::MAX_MANIFEST_BYTES as u64;
/// Largest thumbnail read: 4 MiB (`build` writes 256 px JPEGs of about 15 kB).
pub const MAX_THUMBNAIL_BYTES: u64 = 4 << 20;

/// Size of the vectors file the manifest implies, if it says enough to tell (the core refuses a
/// manifest that does not); an error if the size does not fit in 64 bits.
fn implied_vectors_len(manifest: &[u8]) -> Result<Option<(u64, String)>> {
    let Ok(head) = serde_json::from_slice::<serde_json::Value>(manifest) else {
        return Ok(None);
    };
    let items = head.get("items").and_then(|v| v.as_array()).map(|a| a.len() as u64);
    let dim = head.pointer("/model/embedding_dim").and_then(|v| v.as_u64());
    let dtype = head.pointer("/vectors/dtype").and_then(|v| v.as_str()).and_then(VectorDtype::parse);
    let (Some(items), Some(dim), Some(dtype)) = (items, dim, dtype) else {
        return Ok(None);
    };
    let how = format!("{items} items x 2 vectors x {dim} dims x {} bytes", dtype.bytes());
    match items.checked_mul(2).and_then(|n| n.checked_mul(dim)).and_then(|n| n.checked_mul(dtype.bytes() as u64)) {
        Some(n) => Ok(Some((n, how))),
        None => bail!("the manifest implies a vectors file of more than 2^64 bytes ({how})"),
    }
}

pub fn load(dir: &Path) -> Result<Catalog> {
    work_dir::settle(dir)?;
    let manifest = files::read_inside(dir, MANIFEST_FILE, MAX_MANIFEST_BYTES)
        .with_context(|| format!("cannot load the catalog in {} (is it a folder made by `clipmatch build`?)", dir.display()))?;
    let not_loaded = || format!("cannot load the catalog in {}", dir.display());
    let vectors = match implied_vectors_len(&manifest).with_context(not_loaded)? {
        // The core refuses this manifest before it looks at the vectors.
        None => Vec::new(),
        Some((expected, how)) => {
            let path = dir.join(VECTORS_FILE);
            let file = files::open_inside(dir, VECTORS_FILE)?;
            if file.len != expected {
                let hint = if file.len < expected {
                    "it is truncated"
                } else {
                    "it is larger than the manifest says: it belongs to another catalog"
                };
                bail!("{} is {} bytes, expected {expected} ({how}): {hint}", path.display(), file.len);
            }
            file.read(expected).with_context(|| path.display().to_string())?
        }
    };
    let catalog = Catalog::from_parts(&manifest, &vectors).with_context(not_loaded)?;
    if let Some(info) = &catalog.manifest.compact {
        let path = dir.join(COMPACT_FILE);
        let file = files::open_inside(dir, COMPACT_FILE).with_context(not_loaded)?;
        if file.len != info.codes.bytes {
            let hint = if file.len < info.codes.bytes { "it is truncated" } else { "it belongs to another catalog" };
            bail!("cannot load the catalog in {}: {} is {} bytes, not the {} its manifest lists: {hint}", dir.display(), path.display(), file.len, info.codes.bytes);
        }
        let bytes = file.read(info.codes.bytes).with_context(|| path.display().to_string())?;
        catalog.compact_codes(&bytes).with_context(not_loaded)?;
    }
    Ok(catalog)
}

/// The bytes of a thumbnail named by a loaded catalog (whose names the core has checked): a JPEG
/// of at most `max_side` pixels a side (`Manifest::thumbnail_side`), by its header.
pub fn read_thumbnail(dir: &Path, name: &str, max_side: u32) -> Result<Vec<u8>> {
    let bytes = files::read_inside(dir, name, MAX_THUMBNAIL_BYTES)?;
    check_thumbnail(&bytes, max_side).with_context(|| dir.join(name).display().to_string())?;
    Ok(bytes)
}

/// Why a thumbnail named by a loaded catalog could not be read or is not one, if it is not.
pub fn thumbnail_problem(dir: &Path, name: &str, max_side: u32) -> Option<String> {
    read_thumbnail(dir, name, max_side).err().map(|e| format!("{e:#}"))
}
