//! `clipmatch inspect`: what a catalog's manifest says and whether its files agree with it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clipmatch::search::catalog::Item;
use clipmatch::PreprocessConfig;

use super::{catalog_dir, shown};

/// Shown values are cut to this many characters.
const SHOWN_VALUE_CHARS: usize = 60;

/// The item fields: each key, how many items have it, and the first item's value (escaped, cut).
fn print_fields(items: &[Item]) {
    let mut keys: std::collections::BTreeMap<&str, (usize, &str)> = std::collections::BTreeMap::new();
    for item in items {
        for (k, v) in item.fields.iter() {
            keys.entry(k).or_insert((0, v)).0 += 1;
        }
    }
    if keys.is_empty() {
        println!("fields       none");
    }
    for (i, (key, (count, example))) in keys.iter().enumerate() {
        let label = if i == 0 { "fields" } else { "" };
        let cut: String = example.chars().take(SHOWN_VALUE_CHARS).collect();
        let more = if cut.len() < example.len() { "..." } else { "" };
        println!("{label:<12} {key:?}: {count} of {} items (e.g. {cut:?}{more})", items.len());
    }
}

#[derive(clap::Args)]
pub struct InspectArgs {
    /// The catalog folder.
    catalog: PathBuf,
}

pub fn run(args: InspectArgs) -> Result<ExitCode> {
    let catalog = catalog_dir::load(&args.catalog)?;
    let m = &catalog.manifest;
    println!("catalog      {}", shown::path(&args.catalog));
    println!("format       {} version {}", m.format, m.version);
    println!("model        {} ({}-dim)", shown::text(&m.model.name), m.model.embedding_dim);
    println!("weights      sha256 {}", shown::text(&m.model.weights_sha256));
    for sha in &m.model.equivalent_weights_sha256 {
        println!("             sha256 {} (equivalent)", shown::text(sha));
    }
    let p = &m.preprocessing;
    println!(
        "preprocess   shortest edge {}, crop {}x{}, mean {:?}, std {:?}",
        p.shortest_edge, p.crop_width, p.crop_height, p.mean, p.std
    );
    // Only where they are not CLIP's (whose output stays as it was).
    let clip = PreprocessConfig::default();
    if (p.interpolation, p.resize_mode, p.arithmetic) != (clip.interpolation, clip.resize_mode, clip.arithmetic) {
        let [i, m, a] = [format!("{:?}", p.interpolation), format!("{:?}", p.resize_mode), format!("{:?}", p.arithmetic)];
        println!("             {} resize, {} mode, {} arithmetic", i.to_lowercase(), m.to_lowercase(), a.to_lowercase());
    }
    println!("vectors      {} ({}, sha256 {})", m.vectors.file, m.vectors.dtype, m.vectors.sha256);
    if let Some(s) = &m.vectors.scales {
        println!("scales       image {}, text {} (value = stored integer x scale)", s.image, s.text);
    }
    if let Some(c) = &m.compact {
        let residual = if c.residual_subspaces > 0 { format!(" + {} (residual)", c.residual_subspaces) } else { String::new() };
        println!(
            "compact      {} ({:.2} MB, sha256 {}): {} x text + {} x image fused, {}{residual} bytes an item, {} centres a subspace; the page ranks with it from {} items",
            c.codes.file,
            c.codes.bytes as f64 / 1e6,
            c.codes.sha256,
            c.text_weight,
            c.image_weight,
            c.subspaces,
            c.centroids,
            c.min_items
        );
    }
    let r = &m.ranking;
    println!(
        "ranking      {} x text + {} x image, top {}, no confident match under {:.4}",
        r.text_weight, r.image_weight, r.top_k, r.min_score
    );
    println!("items        {}", catalog.len());
    print_fields(catalog.items());
    let mut problems = catalog.vector_problems();
    for item in catalog.items() {
        if let Some(t) = &item.thumbnail {
            if let Some(why) = catalog_dir::thumbnail_problem(&args.catalog, t, m.thumbnail_side()) {
                problems.push(format!("item {:?}: thumbnail {t}: {why}", item.id));
            }
        }
    }
    if problems.is_empty() {
        println!("check        ok: {} unit vectors, all finite, thumbnails present", 2 * catalog.len());
        Ok(ExitCode::SUCCESS)
    } else {
        println!("check        {} problems:", problems.len());
        for p in &problems {
            println!("  {}", shown::text(p));
        }
        Ok(ExitCode::from(2))
    }
}
