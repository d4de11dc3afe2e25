//! `clipmatch merge`: joins the shard folders of a sharded build (`build --shard i/n`) into the
//! catalog the unsharded build makes, byte for byte. Shards of other builds (count, input list,
//! model or settings), missing, repeated or damaged ones are refused, naming the folder.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clipmatch::digest::sha256_hex;
use clipmatch::search::catalog::{check_thumbnail, MANIFEST_FILE, MAX_THUMBNAIL_SIDE, VECTORS_FILE};
use clipmatch::search::catalog_builder::{assemble, Quantisation};
use clipmatch::search::merge::merge;
use clipmatch::search::shard::{self, Shard};

use super::compact_codes::{self, CompactArgs};
use super::catalog_dir::{MAX_MANIFEST_BYTES, MAX_THUMBNAIL_BYTES};
use super::{files, shown, work_dir};
use super::output_dir::{self, Kind, StagedDir};

#[derive(clap::Args)]
pub struct MergeArgs {
    /// The shard folders, all n of them, in any order.
    #[arg(required = true)]
    shards: Vec<PathBuf>,
    /// The catalog folder to write (replaced atomically if it exists and is a catalog folder).
    #[arg(long, short)]
    out: PathBuf,
    /// Exit 0 even if the shards skipped some images (they are still listed).
    #[arg(long)]
    allow_skips: bool,
    #[command(flatten)]
    compact: CompactArgs,
}

/// One shard folder, read and checked on its own.
fn read_shard(dir: &Path) -> Result<Shard> {
    work_dir::settle(dir)?;
    let json = files::read_inside(dir, shard::MANIFEST_FILE, MAX_MANIFEST_BYTES)?;
    let manifest = Shard::manifest(&json)?;
    let expected = shard::vectors_len(manifest.items.len(), manifest.recipe.model.embedding_dim)
        .with_context(|| format!("{} lists more vectors than this machine can address", shard::MANIFEST_FILE))?;
    let file = files::open_inside(dir, shard::VECTORS_FILE)?;
    if file.len != expected as u64 {
        bail!("{} is {} bytes, not the {expected} its {} implies: the shard is damaged", dir.join(shard::VECTORS_FILE).display(), file.len, shard::MANIFEST_FILE);
    }
    let vectors = file.read(expected as u64).with_context(|| dir.join(shard::VECTORS_FILE).display().to_string())?;
    Ok(Shard::from_parts(&json, &vectors)?)
}

pub fn run(args: MergeArgs) -> Result<ExitCode> {
    let inputs: Vec<(&str, &Path)> = args.shards.iter().map(|d| ("shard folder", d.as_path())).collect();
    output_dir::check_target(&args.out, Kind::Catalog, &inputs)?;
    let mut shards = Vec::with_capacity(args.shards.len());
    for dir in &args.shards {
        let shard = read_shard(dir).with_context(|| format!("cannot use the shard folder {}", dir.display()))?;
        shards.push((dir.display().to_string(), shard));
    }
    let merged = merge(shards)?;
    let staged = StagedDir::new(&args.out, Kind::Catalog, &inputs)?;
    std::fs::create_dir_all(staged.path().join("thumbs"))?;
    for t in &merged.thumbnails {
        let dir = &args.shards[t.shard];
        let jpeg = files::read_inside(dir, &t.file, MAX_THUMBNAIL_BYTES)?;
        if sha256_hex(&jpeg) != t.sha256 {
            bail!("{} does not match the sha256 in its {}: the shard is damaged", dir.join(&t.file).display(), shard::MANIFEST_FILE);
        }
        let side = merged.recipe.thumbnail_side.min(MAX_THUMBNAIL_SIDE);
        check_thumbnail(&jpeg, side).with_context(|| dir.join(&t.file).display().to_string())?;
        output_dir::write_file(staged.path(), &t.file, &jpeg)?;
    }
    let catalog = assemble::<std::convert::Infallible>(&merged.recipe, merged.items, merged.total, &merged.options, &Quantisation::FromData)?;
    let catalog = compact_codes::add(catalog, args.compact.options(None), staged.path())?;
    output_dir::write_file(staged.path(), VECTORS_FILE, &catalog.vectors_bytes())?;
    output_dir::write_file(staged.path(), MANIFEST_FILE, catalog.manifest_file()?.as_bytes())?;
    staged.commit()?;
    println!(
        "merged {} shards into {}: {} products of {} inputs, {}-dim {} vectors, model {}",
        args.shards.len(),
        shown::path(&args.out),
        catalog.len(),
        merged.total,
        catalog.dim(),
        catalog.dtype().name(),
        shown::text(&catalog.manifest.model.name)
    );
    if merged.skipped.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("the shards skipped {} of {} images:", merged.skipped.len(), merged.total);
    for s in &merged.skipped {
        eprintln!("  {}", shown::text(&format!("{}: {}", s.image, s.reason)));
    }
    if args.allow_skips {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("the catalog was written without them; pass --allow-skips to exit 0 anyway");
        Ok(ExitCode::from(2))
    }
}
