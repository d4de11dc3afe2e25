//! Reading a catalog folder (catalog.json + its vectors file) from disk.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use clipmatch::catalog::MANIFEST_FILE;
use clipmatch::Catalog;

pub fn load(dir: &Path) -> Result<Catalog> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest = fs::read(&manifest_path)
        .with_context(|| format!("cannot read {} (is {} a catalog folder made by `clipmatch build`?)", manifest_path.display(), dir.display()))?;
    let vectors_file = serde_json::from_slice::<serde_json::Value>(&manifest)
        .ok()
        .and_then(|v| v.pointer("/vectors/file").and_then(|f| f.as_str()).map(str::to_string))
        .unwrap_or_else(|| clipmatch::catalog::VECTORS_FILE.to_string());
    let vectors_path = dir.join(&vectors_file);
    let vectors = fs::read(&vectors_path).with_context(|| format!("cannot read {}", vectors_path.display()))?;
    Catalog::from_parts(&manifest, &vectors).with_context(|| format!("cannot load the catalog in {}", dir.display()))
}
