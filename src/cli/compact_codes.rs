//! `--compact` of `build` and `merge`: compact codes (product quantisation of each item's two
//! vectors fused with the catalog's ranking weights) for ranking big catalogs in the page,
//! written as `compact.bin` beside the vectors and recorded in the manifest. They are learnt
//! over the whole catalog, so shards carry none (`merge --compact`); `tune`, which changes the
//! weights, learns them again.

use std::path::Path;

use anyhow::{Context, Result};
use clipmatch::search::catalog::{CompactInfo, CompactOptions, COMPACT_FILE};
use clipmatch::search::compact::{TrainingParams, DEFAULT_RESIDUAL_SUBSPACES, DEFAULT_TRAINING};
use clipmatch::Catalog;

use super::output_dir;

/// The page ranks catalogs of at least this many items with their codes (when they have them):
/// below it, the vectors file (1 KB an item for ViT-B/32 in i8) is small enough to fetch whole.
pub const DEFAULT_MIN_ITEMS: usize = 10_000;

#[derive(clap::Args, Clone, Debug)]
pub struct CompactArgs {
    /// Also write compact codes (compact.bin: product quantisation of each item's two vectors
    /// fused with the ranking weights, --compact-bytes + --compact-residual-bytes bytes an
    /// item) with which the page ranks big catalogs before downloading their vectors. With
    /// --update, a catalog that has codes keeps them (learnt again over the updated catalog).
    #[arg(long)]
    compact: bool,
    /// Bytes an item of the first code (it must divide the embedding size).
    #[arg(long, default_value_t = DEFAULT_TRAINING.subspaces, requires = "compact")]
    compact_bytes: usize,
    /// Bytes an item of the code of what the first code leaves (it must divide the embedding
    /// size; 0: no second code).
    #[arg(long, default_value_t = DEFAULT_RESIDUAL_SUBSPACES, requires = "compact")]
    compact_residual_bytes: usize,
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
        match (self.compact, previous) {
            (true, _) => Some(options_of(self.compact_bytes, self.compact_residual_bytes, self.compact_min_items)),
            (false, Some(p)) => Some(options_of(p.subspaces, p.residual_subspaces, p.min_items)),
            (false, None) => None,
        }
    }
}

fn options_of(subspaces: usize, residual_subspaces: usize, min_items: usize) -> CompactOptions {
    CompactOptions { training: TrainingParams { subspaces, ..DEFAULT_TRAINING }, residual_subspaces, min_items }
}

/// The catalog with its codes when `options` asks for them, the codes written to `out`.
pub fn add(catalog: Catalog, options: Option<CompactOptions>, out: &Path) -> Result<Catalog> {
    let Some(options) = options else { return Ok(catalog) };
    let (catalog, codes) = catalog.with_compact(options).context("cannot make the compact codes")?;
    output_dir::write_file(out, COMPACT_FILE, &codes.to_bytes())?;
    Ok(catalog)
}

/// The catalog's compact codes for a command that rewrites its manifest without changing its
/// vectors (`tune`): `compact.bin` copied from `from` into `to` when the ranking weights are
/// still those the codes were fused with, else learnt again for the new weights (same shape).
pub fn keep(catalog: Catalog, from: &Path, to: &Path) -> Result<Catalog> {
    let Some(info) = catalog.manifest.compact.clone() else { return Ok(catalog) };
    let r = &catalog.manifest.ranking;
    if (info.text_weight, info.image_weight) != (r.text_weight, r.image_weight) {
        return add(catalog, Some(options_of(info.subspaces, info.residual_subspaces, info.min_items)), to);
    }
    let bytes = super::files::read_inside(from, COMPACT_FILE, info.codes.bytes)?;
    catalog.compact_codes(&bytes).with_context(|| format!("cannot use {}", from.join(COMPACT_FILE).display()))?;
    output_dir::write_file(to, COMPACT_FILE, &bytes)?;
    Ok(catalog)
}
