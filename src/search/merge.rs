//! Joining the shards of a build: all `n` of them, each once, of one input list, one recipe and
//! one set of catalog settings; their items in input order, ready for
//! [`crate::search::catalog_builder::assemble`], which then makes the very catalog the
//! unsharded build makes.

use crate::error::ShardError;
use crate::search::build_recipe::Recipe;
use crate::search::catalog_builder::{BuildOptions, EmbeddedItem};
use crate::search::shard::{Shard, ShardSkip};

/// Where a merged item's thumbnail is: which of the shards given, and its sha256.
#[derive(Debug, Clone, PartialEq)]
pub struct ThumbnailSource {
    /// Position of its shard among those given.
    pub shard: usize,
    /// `thumbs/<id>.jpg`, in the shard folder and in the catalog.
    pub file: String,
    pub sha256: String,
}

/// The shards joined.
#[derive(Debug)]
pub struct Merged {
    pub recipe: Recipe,
    pub options: BuildOptions,
    /// Inputs of the whole build.
    pub total: usize,
    /// Every kept item, in input order.
    pub items: Vec<EmbeddedItem>,
    /// One per item.
    pub thumbnails: Vec<ThumbnailSource>,
    /// Every photo the shards skipped, in input order.
    pub skipped: Vec<ShardSkip>,
}

/// Joins `shards` (each with a label for messages, e.g. its folder), refusing shards of other
/// builds (another count, input list, recipe or catalog settings), missing or repeated ones.
pub fn merge(shards: Vec<(String, Shard)>) -> Result<Merged, ShardError> {
    let Some((first_label, first)) = shards.first() else { return Err(ShardError::None) };
    let f = &first.manifest;
    let count = f.shard.count;
    let mut at: Vec<Option<usize>> = vec![None; count];
    for (k, (label, shard)) in shards.iter().enumerate() {
        let m = &shard.manifest;
        let between = || format!("{first_label} (shard {}) and {label} (shard {})", f.shard, m.shard);
        if m.shard.count != count {
            return Err(ShardError::Mismatch(format!("{} split the inputs in different numbers of shards: they are of different builds", between())));
        }
        if m.inputs != f.inputs {
            return Err(ShardError::Mismatch(format!("{} were made from different input lists", between())));
        }
        if m.recipe != f.recipe {
            let diff = f.recipe.difference(&m.recipe).unwrap_or_else(|| format!("the model name {:?}, not {:?}", m.recipe.model.name, f.recipe.model.name));
            return Err(ShardError::Mismatch(format!("{label} was made with {diff} (as {first_label} was not)")));
        }
        if m.catalog != f.catalog {
            return Err(ShardError::Mismatch(format!(
                "{} were made with different catalog settings ({:?} and {:?})",
                between(),
                f.catalog,
                m.catalog
            )));
        }
        if let Some(j) = at[m.shard.index].replace(k) {
            return Err(ShardError::Duplicate { index: m.shard.index, count, first: shards[j].0.clone(), second: label.clone() });
        }
    }
    let missing: Vec<String> = at.iter().enumerate().filter(|(_, k)| k.is_none()).map(|(i, _)| i.to_string()).collect();
    if !missing.is_empty() {
        return Err(ShardError::Missing { missing: missing.join(", "), count });
    }
    let options = f.catalog.options(&f.recipe)?;
    let (recipe, total) = (f.recipe.clone(), f.inputs.items);
    let mut merged = Merged { recipe, options, total, items: Vec::new(), thumbnails: Vec::new(), skipped: Vec::new() };
    for k in at.into_iter().flatten() {
        let shard = &shards[k].1;
        for (item, listed) in shard.items.iter().zip(&shard.manifest.items) {
            let file = item.item.thumbnail.clone().expect("shard items have thumbnails");
            merged.thumbnails.push(ThumbnailSource { shard: k, file, sha256: listed.thumbnail_sha256.clone() });
            merged.items.push(item.clone());
        }
        merged.skipped.extend(shard.manifest.skipped.iter().cloned());
    }
    merged.skipped.sort_by_key(|s| s.index);
    Ok(merged)
}
