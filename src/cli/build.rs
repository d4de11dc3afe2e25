//! `clipmatch build`: embeds every product image and name into a catalog folder.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clipmatch::search::catalog::{RankingDefaults, VectorDtype, MANIFEST_FILE, VECTORS_FILE};
use clipmatch::search::catalog_builder::{
    build_catalog, BuildEvents, BuildOptions, BuildPhase, SkipReason, SourceItem as CatalogSource,
};
use clipmatch::search::ranking_options::RankingOverrides;
use clipmatch::Towers;
use indicatif::{ProgressBar, ProgressStyle};

use super::files;
use super::model_dir;
use super::output_dir::{Kind, StagedDir};
use super::sources::{self, NameFrom, SourceItem};
use super::ModelArgs;

#[derive(clap::Args)]
pub struct BuildArgs {
    /// A folder of product images, or a CSV/JSON list with columns image, name, description.
    source: PathBuf,
    /// The catalog folder to write (replaced atomically if it exists and is a catalog folder;
    /// it may not be, contain or lie inside the source folder or the model folder).
    #[arg(long, short)]
    out: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    /// For a folder: take product names from file names or from the folder holding each image.
    #[arg(long, value_enum, default_value = "file")]
    name_from: NameFrom,
    /// Images embedded per model call.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    batch_size: u32,
    /// Exit 0 even if some files could not be read (they are still listed).
    #[arg(long)]
    allow_skips: bool,
    /// Default weight of cos(photo, product name) in the fused score.
    #[arg(long, default_value_t = RankingDefaults::default().text_weight)]
    text_weight: f32,
    /// Default weight of cos(photo, product image) in the fused score.
    #[arg(long, default_value_t = RankingDefaults::default().image_weight)]
    image_weight: f32,
    /// Default number of results.
    #[arg(long, default_value_t = RankingDefaults::default().top_k)]
    top_k: usize,
    /// Best score under which the answer is "no confident match" (default: estimated from the
    /// catalog by leaving each product out in turn).
    #[arg(long)]
    min_score: Option<f32>,
    /// Model name recorded in the catalog (default: from config.json or the folder name).
    #[arg(long)]
    model_name: Option<String>,
    /// Longest side of the thumbnails written beside the manifest, in pixels.
    #[arg(long, default_value_t = 256)]
    thumbnail_size: u32,
    /// Storage type of the catalog vectors: i8 (1 byte a value, one scale per vector kind) or f32.
    #[arg(long, value_enum, default_value = "i8")]
    vector_dtype: VectorDtype,
}

pub(super) fn progress_bar(len: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template("{msg:>8} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// The builder's events on the terminal: a progress bar per phase, skips as they happen, and
/// thumbnails written into the staged folder.
struct Terminal<'a> {
    out: &'a Path,
    sources: &'a [SourceItem],
    bar: Option<ProgressBar>,
}

impl BuildEvents for Terminal<'_> {
    type Error = std::io::Error;

    fn progress(&mut self, phase: BuildPhase, done: usize, total: usize) {
        let label = match phase {
            BuildPhase::Images => "images",
            BuildPhase::Names => "names",
            BuildPhase::Prepare | BuildPhase::Catalog => return,
        };
        let bar = self.bar.get_or_insert_with(|| progress_bar(total, label));
        bar.set_position(done as u64);
        if done == total {
            bar.finish_and_clear();
            self.bar = None;
        }
    }

    fn skipped(&mut self, index: usize, reason: &SkipReason) {
        let line = format!("skipped {}: {reason}", self.sources[index].path.display());
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    fn thumbnail(&mut self, file: &str, jpeg: &[u8]) -> std::io::Result<()> {
        fs::write(self.out.join(file), jpeg)
    }
}

pub fn run(args: BuildArgs) -> Result<ExitCode> {
    let (sources, ignored) = sources::load(&args.source, args.name_from)?;
    if sources.is_empty() {
        bail!("no images (.jpg, .jpeg, .png, .webp, .gif) found in {}", args.source.display());
    }
    let source_kind = if args.source.is_dir() { "source folder" } else { "source list" };
    let mut inputs = vec![(source_kind, args.source.as_path()), ("model folder", args.model.model.as_path())];
    if let Some(t) = &args.model.tokenizer {
        inputs.push(("tokenizer", t.as_path()));
    }
    let staged = StagedDir::new(&args.out, Kind::Catalog, &inputs)?;
    let model = model_dir::load_hashed(&args.model, Towers::VisionAndText)?;
    fs::create_dir_all(staged.path().join("thumbs"))?;

    let mut info = model.info();
    if let Some(name) = &args.model_name {
        info.name = name.clone();
    }
    let options = BuildOptions {
        batch_size: args.batch_size as usize,
        thumbnail_side: args.thumbnail_size,
        vector_dtype: args.vector_dtype,
        ranking: RankingOverrides {
            text_weight: Some(args.text_weight),
            image_weight: Some(args.image_weight),
            top_k: Some(args.top_k),
            min_score: args.min_score,
        },
        record_sources: false,
    };
    let items = sources
        .iter()
        .map(|s| CatalogSource { id: s.id.clone(), name: s.name.clone(), description: s.description.clone(), image: s.label.clone() })
        .collect();
    // Only a regular file, refused before reading it into memory if it is too large.
    let max_bytes = model.embedder.limits.max_file_bytes as u64;
    let read = |i: usize| files::read_regular(&sources[i].path, max_bytes).map_err(|e| e.to_string());
    let mut terminal = Terminal { out: staged.path(), sources: &sources, bar: None };
    let built = build_catalog(&model.embedder, info, items, read, &options, &mut terminal)?;
    let catalog = built.catalog;
    fs::write(staged.path().join(VECTORS_FILE), catalog.vectors_bytes())?;
    fs::write(staged.path().join(MANIFEST_FILE), catalog.manifest_json())?;
    staged.commit()?;

    let r = catalog.manifest.ranking;
    println!(
        "built {}: {} products, {}-dim {} vectors, model {}, fused score = {} x text + {} x image, no-confident-match under {:.4}",
        args.out.display(),
        catalog.len(),
        catalog.dim(),
        catalog.dtype().name(),
        catalog.manifest.model.name,
        r.text_weight,
        r.image_weight,
        r.min_score
    );
    if ignored > 0 {
        println!("passed over {ignored} files that are not images by their extension");
    }
    if built.skipped.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("skipped {} of {} images:", built.skipped.len(), built.skipped.len() + catalog.len());
    for s in &built.skipped {
        eprintln!("  {}: {}", sources[s.index].path.display(), s.reason);
    }
    if args.allow_skips {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("the catalog was written without them; pass --allow-skips to exit 0 anyway");
        Ok(ExitCode::from(2))
    }
}
