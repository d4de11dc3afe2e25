//! `--compact` of `build` and `merge`: compact codes (product quantisation) for ranking big
//! catalogs in the page, written as `compact.bin` beside the vectors and recorded in the
//! manifest. They are learnt over the whole catalog, so shards carry none (`merge --compact`).

use std::path::Path;

use anyhow::{Context, Result};
use clipmatch::search::catalog::{CompactInfo, CompactOptions, COMPACT_FILE};
use clipmatch::search::compact::{TrainingParams, DEFAULT_TRAINING};
use clipmatch::Catalog;

use super::output_dir;

/// The page ranks catalogs of at least this many items with their codes (when they have them):
/// below it, the vectors file (1 KB an item for ViT-B/32 in i8) is small enough to fetch whole.
pub const DEFAULT_MIN_ITEMS: usize = 10_000;

#[derive(clap::Args, Clone, Debug)]
pub struct CompactArgs {
    /// Also write compact codes (compact.bin: product quantisation of each item's two vectors,
    /// 2 x --compact-bytes bytes an item) with which the page ranks big catalogs before
    /// downloading their vectors. With --update, a catalog that has codes keeps them (learnt
    /// again over the updated catalog).
    #[arg(long)]
    compact: bool,
    /// Bytes per vector of the compact codes (it must divide the embedding size).
    #[arg(long, default_value_t = DEFAULT_TRAINING.subspaces, requires = "compact")]
    compact_bytes: usize,
    /// The page ranks with the codes from this many items on; smaller catalogs exactly.
    #[arg(long, default_value_t = DEFAULT_MIN_ITEMS, requires = "compact")]
    compact_min_items: usize,
}

impl CompactArgs {
    pub fn wanted(&self) -> bool {
        self.compact
    }

    /// The options asked for; or, without --compact, those of the catalog being updated.
    pub fn options(&self, previous: Option<&CompactInfo>) -> Option<CompactOptions> {
        let of = |subspaces, min_items| CompactOptions { training: TrainingParams { subspaces, ..DEFAULT_TRAINING }, min_items };
        match (self.compact, previous) {
            (true, _) => Some(of(self.compact_bytes, self.compact_min_items)),
            (false, Some(p)) => Some(of(p.subspaces, p.min_items)),
            (false, None) => None,
        }
    }
}

/// The catalog with its codes when `options` asks for them, the codes written to `out`.
pub fn add(catalog: Catalog, options: Option<CompactOptions>, out: &Path) -> Result<Catalog> {
    let Some(options) = options else { return Ok(catalog) };
    let (catalog, codes) = catalog.with_compact(options).context("cannot make the compact codes")?;
    output_dir::write_file(out, COMPACT_FILE, &codes.to_bytes())?;
    Ok(catalog)
}

/// Copies the catalog's `compact.bin` from `from` into `to` when its manifest lists one (a
/// command that rewrites a catalog's manifest without changing its vectors keeps the codes).
pub fn copy(catalog: &Catalog, from: &Path, to: &Path) -> Result<()> {
    let Some(info) = &catalog.manifest.compact else { return Ok(()) };
    let bytes = super::files::read_inside(from, COMPACT_FILE, info.codes.bytes)?;
    catalog.compact_codes(&bytes).with_context(|| format!("cannot use {}", from.join(COMPACT_FILE).display()))?;
    output_dir::write_file(to, COMPACT_FILE, &bytes)
}
