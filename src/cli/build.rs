//! `clipmatch build`: embeds every product image and name into a catalog folder; or updates a
//! catalog, embedding only what changed (`--update`); or embeds one slice of the inputs into a
//! shard folder for `clipmatch merge` (`--shard i/n`). Every build stages its output resumably
//! and checkpoints each embedding, so a build killed at any point and run again resumes where
//! it stopped.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clipmatch::digest::sha256_hex;
use clipmatch::error::UpdateError;
use clipmatch::search::build_recipe::inputs_sha256;
use clipmatch::search::catalog::{Catalog, RankingDefaults, VectorDtype, MANIFEST_FILE, VECTORS_FILE};
use clipmatch::search::catalog_builder::{
    build_catalog_reusing, check_list_size, embed_sources, BuiltCatalog, Embedded, recipe, BuildEvents, BuildOptions, BuildPhase, Quantisation, SkipReason, Skipped,
    SourceItem as CatalogSource, Work,
};
use clipmatch::search::checkpoint::{self, CheckpointHeader};
use clipmatch::search::previous_catalog::PreviousCatalog;
use clipmatch::search::ranking_options::RankingOverrides;
use clipmatch::search::shard::{self, ShardInputs, ShardManifest, ShardSpec};
use clipmatch::Towers;
use indicatif::{ProgressBar, ProgressStyle};

use super::catalog_dir;
use super::checkpoint_file::CheckpointFile;
use super::compact_codes::{self, CompactArgs};
use super::files;
use super::model_dir;
use super::output_dir::{self, Kind, StagedDir};
use super::reuse::Known;
use super::settings;
use super::shown;
use super::sources::{self, NameFrom, SourceItem};
use super::ModelArgs;

#[derive(clap::Args)]
pub struct BuildArgs {
    /// A folder of product images, or a CSV/JSON list with columns image, name, description
    /// (optional), id (optional) and any others (url, price, sku, ...: kept as item fields).
    source: PathBuf,
    /// The catalog folder to write (replaced atomically if it exists and is a catalog folder;
    /// it may not be, contain or lie inside the source folder or the model folder). With
    /// --shard, the shard folder to write.
    #[arg(long, short)]
    out: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    /// For a folder: take product names from file names or from the folder holding each image.
    #[arg(long, value_enum, default_value = "file")]
    name_from: NameFrom,
    /// Update this catalog (one built with --updatable; it may be the --out folder, replaced
    /// once the update is complete): embed only images whose files are new or changed (by
    /// sha256) and names that are new, drop items no longer in SOURCE, and keep every other
    /// item's vectors and thumbnail as they are. Same model and settings only.
    #[arg(long, value_name = "CATALOG")]
    update: Option<PathBuf>,
    /// Record each image's sha256 (and the engine and thumbnail size) in the manifest, so that
    /// `build --update` can later embed only what changed (updated catalogs always record them).
    #[arg(long)]
    updatable: bool,
    /// Embed only the i-th of n slices of the inputs (i from 0 to n - 1; contiguous, in input
    /// order) into a shard folder; `clipmatch merge` joins the n shards into the catalog.
    #[arg(long, value_name = "i/n", value_parser = ShardSpec::parse)]
    shard: Option<ShardSpec>,
    /// Images embedded per model call.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    batch_size: u32,
    /// Exit 0 even if some files could not be read (they are still listed).
    #[arg(long)]
    allow_skips: bool,
    /// Default weight of cos(photo, product name) in the fused score [default: 1.5, or the
    /// updated catalog's].
    #[arg(long, value_parser = settings::text_weight)]
    text_weight: Option<f32>,
    /// Default weight of cos(photo, product image) in the fused score [default: 0.5, or the
    /// updated catalog's].
    #[arg(long, value_parser = settings::image_weight)]
    image_weight: Option<f32>,
    /// Default number of results [default: 5, or the updated catalog's].
    #[arg(long, value_parser = settings::top_k)]
    top_k: Option<usize>,
    /// Best score under which the answer is "no confident match" (default: estimated from the
    /// catalog by leaving each product out in turn).
    #[arg(long, value_parser = settings::min_score)]
    min_score: Option<f32>,
    /// Model name recorded in the catalog (default: from config.json or the folder name).
    #[arg(long)]
    model_name: Option<String>,
    /// Longest side of the thumbnails written beside the manifest, in pixels [default: 256, or
    /// the updated catalog's].
    #[arg(long, value_parser = settings::thumbnail_size)]
    thumbnail_size: Option<u32>,
    /// Storage type of the catalog vectors: i8 (1 byte a value, one scale per vector kind) or
    /// f32 [default: i8, or the updated catalog's].
    #[arg(long, value_enum)]
    vector_dtype: Option<VectorDtype>,
    #[command(flatten)]
    compact: CompactArgs,
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

/// The builder's events on the terminal: a progress bar per phase and skips as they happen;
/// thumbnails written into the staged folder; each embedding appended to the checkpoint.
struct Terminal<'a> {
    out: &'a Path,
    sources: &'a [SourceItem],
    bar: Option<ProgressBar>,
    checkpoint: CheckpointFile,
    /// sha256 of each thumbnail written, by file (for shard manifests).
    thumbnails: HashMap<String, String>,
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
        let line = shown::text(&format!("skipped {}: {reason}", self.sources[index].path.display())).into_owned();
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    fn thumbnail(&mut self, file: &str, jpeg: &[u8]) -> std::io::Result<()> {
        output_dir::write_file(self.out, file, jpeg).map_err(std::io::Error::other)?;
        self.thumbnails.insert(file.to_string(), sha256_hex(jpeg));
        Ok(())
    }

    fn image_embedded(&mut self, sha256: &str, vector: &[f32], thumbnail_file: &str, thumbnail: &[u8]) -> std::io::Result<()> {
        self.checkpoint.append(&checkpoint::image_record(sha256, vector, thumbnail_file, thumbnail))
    }

    fn name_embedded(&mut self, name: &str, vector: &[f32]) -> std::io::Result<()> {
        self.checkpoint.append(&checkpoint::name_record(name, vector))
    }

    fn batch_complete(&mut self) -> std::io::Result<()> {
        self.checkpoint.append(&checkpoint::commit_record())
    }
}

/// Removes thumbnails from the staged folder that the output does not name (a killed run may
/// have written one for a photo that is skipped now).
fn remove_stray_thumbnails(staged: &Path, named: &HashSet<&str>) -> Result<()> {
    for entry in fs::read_dir(staged.join("thumbs"))? {
        let file = format!("thumbs/{}", entry?.file_name().to_string_lossy());
        if !named.contains(file.as_str()) {
            fs::remove_file(staged.join(&file)).with_context(|| format!("cannot remove {file} from the staged folder"))?;
        }
    }
    Ok(())
}

/// The ranking settings asked for; with --update, those not given are the catalog's (and its
/// threshold too if `clipmatch tune` chose it; otherwise it is estimated anew).
fn ranking(args: &BuildArgs, previous: Option<&RankingDefaults>) -> RankingOverrides {
    let tuned = previous.filter(|r| r.tuned.is_some());
    if let (Some(r), None) = (tuned, args.min_score) {
        let when = r.tuned.map(|t| t.when.to_string()).unwrap_or_default();
        eprintln!("the catalog's weights and threshold were tuned on {when}: kept; run `clipmatch tune` again to measure them on the updated catalog");
    }
    RankingOverrides {
        text_weight: args.text_weight.or(previous.map(|r| r.text_weight)),
        image_weight: args.image_weight.or(previous.map(|r| r.image_weight)),
        top_k: args.top_k.or(previous.map(|r| r.top_k)),
        min_score: args.min_score.or(tuned.map(|r| r.min_score)),
    }
}

/// The catalog to update, read and checked for what can be told without the model.
fn catalog_to_update(dir: &Path) -> Result<Catalog> {
    let catalog = catalog_dir::load(dir)?;
    if catalog.manifest.sources.is_none() {
        bail!("cannot update {}: {}", dir.display(), UpdateError::NotUpdatable);
    }
    Ok(catalog)
}

/// What a build made: a catalog, or a shard's embeddings.
enum Made {
    Catalog(Box<BuiltCatalog>),
    Shard(Embedded),
}

/// The staged output, what it holds, and the build's outcome, written and put in place.
struct Outcome<'a> {
    args: &'a BuildArgs,
    staged: StagedDir,
    sources: &'a [SourceItem],
    skipped: Vec<Skipped>,
    work: Work,
    ignored: usize,
}

impl Outcome<'_> {
    /// Puts the output in place and reports skips: exit 2 if there were any (unless --allow-skips).
    fn finish(self, named: HashSet<&str>, summary: String) -> Result<ExitCode> {
        remove_stray_thumbnails(self.staged.path(), &named)?;
        self.staged.commit()?;
        println!("{}", shown::text(&summary));
        if self.work.images_reused + self.work.names_reused > 0 {
            let w = self.work;
            println!(
                "embedded {} images and {} names; reused {} images and {} names",
                w.images_embedded, w.names_embedded, w.images_reused, w.names_reused
            );
        }
        if self.ignored > 0 {
            println!("passed over {} files that are not images by their extension", self.ignored);
        }
        if self.skipped.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!("skipped {} of {} images:", self.skipped.len(), self.sources.len());
        for s in &self.skipped {
            eprintln!("  {}", shown::text(&format!("{}: {}", self.sources[s.index].path.display(), s.reason)));
        }
        if self.args.allow_skips {
            Ok(ExitCode::SUCCESS)
        } else {
            let what = if self.args.shard.is_some() { "shard" } else { "catalog" };
            eprintln!("the {what} was written without them; pass --allow-skips to exit 0 anyway");
            Ok(ExitCode::from(2))
        }
    }
}

pub fn run(args: BuildArgs) -> Result<ExitCode> {
    let (mut sources, ignored) = sources::load(&args.source, args.name_from)?;
    if sources.is_empty() {
        bail!("no images (.jpg, .jpeg, .png, .webp, .gif) found in {}", args.source.display());
    }
    if args.shard.is_some() && args.update.is_some() {
        bail!("--shard and --update do not go together: build the shards anew, or update the merged catalog");
    }
    if args.shard.is_some() && args.compact.wanted() {
        bail!("--shard and --compact do not go together: compact codes are learnt over the whole catalog; pass --compact to `clipmatch merge`");
    }
    let catalog_sources = |sources: &[sources::SourceItem]| -> Vec<CatalogSource> {
        sources
            .iter()
            .map(|s| CatalogSource { id: s.id.clone(), name: s.name.clone(), description: s.description.clone(), image: s.label.clone(), fields: s.fields.clone() })
            .collect()
    };
    let mut all = catalog_sources(&sources);
    check_list_size(&all, args.updatable || args.update.is_some())
        .with_context(|| format!("cannot build a catalog of {}", args.source.display()))?;
    let source_kind = if args.source.is_dir() { "source folder" } else { "source list" };
    let mut inputs = vec![(source_kind, args.source.as_path()), ("model folder", args.model.model.as_path())];
    if let Some(t) = &args.model.tokenizer {
        inputs.push(("tokenizer", t.as_path()));
    }
    // The catalog to update may be the output, replaced once the update is complete.
    if let Some(c) = &args.update {
        if output_dir::resolve(c)? != output_dir::resolve(&args.out)? {
            inputs.push(("catalog to update", c.as_path()));
        }
    }
    let kind = if args.shard.is_some() { Kind::Shard } else { Kind::Catalog };
    // Locked before the catalog to update is read: no other writer changes it meanwhile.
    let work = output_dir::claim(&args.out, kind, &inputs)?;
    let previous = args.update.as_deref().map(catalog_to_update).transpose()?;
    if let Some(catalog) = &previous {
        // Ids are kept: the slugs of new items may be made otherwise than the catalog's were.
        sources::keep_ids(&mut sources, catalog.items());
        all = catalog_sources(&sources);
    }
    let compact = args.compact.options(previous.as_ref().and_then(|c| c.manifest.compact.as_ref()));

    let model = model_dir::load_hashed(&args.model, Towers::VisionAndText)?;
    let mut info = model.info();
    if let Some(c) = &compact {
        c.check(info.embedding_dim).context("--compact")?;
    }
    if let Some(name) = &args.model_name {
        info.name = name.clone();
    }
    let recorded_side = previous.as_ref().and_then(|c| c.manifest.sources.as_ref()).map(|r| r.thumbnail_side);
    let options = BuildOptions {
        batch_size: args.batch_size as usize,
        thumbnail_side: args.thumbnail_size.or(recorded_side).unwrap_or(256),
        vector_dtype: args.vector_dtype.or(previous.as_ref().map(|c| c.dtype())).unwrap_or_default(),
        ranking: ranking(&args, previous.as_ref().map(|c| &c.manifest.ranking)),
        record_sources: args.updatable || args.update.is_some(),
    };
    let recipe = recipe(&model.embedder, info.clone(), &options);
    let previous = match (previous, &args.update) {
        (Some(catalog), Some(dir)) => Some((
            PreviousCatalog::new(catalog, &recipe, options.vector_dtype).with_context(|| format!("cannot update {}", dir.display()))?,
            dir.clone(),
        )),
        _ => None,
    };

    let header = CheckpointHeader {
        recipe: recipe.clone(),
        inputs_sha256: inputs_sha256(&all),
        batch_size: options.batch_size,
        updating: previous.as_ref().map(|(p, _)| p.vectors_sha256().to_string()),
    };
    let slice = args.shard.map_or(0..all.len(), |s| s.slice(all.len(), options.batch_size));
    let (items, sources) = (all[slice.clone()].to_vec(), &sources[slice]);

    let mut staged = StagedDir::resumable(work)?;
    let work_dir = staged.work_dir().to_path_buf();
    let out = staged.path().to_path_buf();
    let (checkpoint, resumed) = CheckpointFile::open(&work_dir, &out, &header)?;
    fs::create_dir_all(out.join("thumbs"))?;
    let quantisation = previous.as_ref().map_or(Quantisation::FromData, |(p, _)| p.quantisation());
    let resuming = !(resumed.images.is_empty() && resumed.names.is_empty());
    let known = Known { checkpoint: resumed, staging: &out, previous, thumbnail_side: options.thumbnail_side };

    // Only a regular file, refused before reading it into memory if it is too large.
    let max_bytes = model.embedder.limits.max_file_bytes as u64;
    let read = |i: usize| files::read_regular(&sources[i].path, max_bytes).map_err(|e| e.to_string());
    let mut terminal = Terminal { out: &out, sources, bar: None, checkpoint, thumbnails: HashMap::new() };
    let result = match args.shard {
        Some(_) => embed_sources(&model.embedder, items, read, &known, &options, &mut terminal).map(Made::Shard),
        None => build_catalog_reusing(&model.embedder, info, items, read, &known, &quantisation, &options, &mut terminal)
            .map(|b| Made::Catalog(Box::new(b))),
    };
    if result.is_err() && (resuming || terminal.checkpoint.appended > 0) {
        staged.keep_on_failure();
        eprintln!("the embeddings made so far are kept in {}: run the same command again to resume", shown::path(&work_dir));
    }
    let thumbnails = std::mem::take(&mut terminal.thumbnails);
    match result? {
        Made::Catalog(built) => {
            let built = *built;
            let c = compact_codes::add(built.catalog, compact, &out)?;
            output_dir::write_file(&out, VECTORS_FILE, &c.vectors_bytes())?;
            output_dir::write_file(&out, MANIFEST_FILE, c.manifest_file()?.as_bytes())?;
            let r = c.manifest.ranking;
            let summary = format!(
                "built {}: {} products, {}-dim {} vectors, model {}, fused score = {} x text + {} x image, no-confident-match under {:.4}",
                args.out.display(),
                c.len(),
                c.dim(),
                c.dtype().name(),
                c.manifest.model.name,
                r.text_weight,
                r.image_weight,
                r.min_score
            );
            let named = c.items().iter().filter_map(|i| i.thumbnail.as_deref()).collect();
            let outcome = Outcome { args: &args, staged, sources, skipped: built.skipped, work: built.work, ignored };
            outcome.finish(named, summary)
        }
        Made::Shard(embedded) => {
            let spec = args.shard.expect("a shard build");
            let shard_inputs = ShardInputs { items: all.len(), sha256: header.inputs_sha256.clone() };
            let images: Vec<String> = sources.iter().map(|s| s.label.clone()).collect();
            let files = ShardManifest::files(spec, shard_inputs, &recipe, &options, &embedded, &images, |file| {
                thumbnails.get(file).cloned().unwrap_or_default()
            });
            output_dir::write_file(&out, shard::VECTORS_FILE, &files.vectors)?;
            output_dir::write_file(&out, shard::MANIFEST_FILE, files.manifest_json.as_bytes())?;
            let range = spec.slice(all.len(), options.batch_size);
            let summary = format!(
                "built shard {spec} of {} inputs ({} to {}) into {}: {} products",
                all.len(),
                range.start,
                range.end,
                args.out.display(),
                embedded.items.len()
            );
            let files: Vec<String> = embedded.items.iter().filter_map(|e| e.item.thumbnail.clone()).collect();
            let named = files.iter().map(String::as_str).collect();
            let outcome = Outcome { args: &args, staged, sources, skipped: embedded.skipped, work: embedded.work, ignored };
            outcome.finish(named, summary)
        }
    }
}
