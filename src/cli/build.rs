//! `clipmatch build`: embeds every product image and name into a catalog folder.

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clipmatch::search::catalog::{Item, RankingDefaults, ScaleRule, VectorDtype, MANIFEST_FILE, VECTORS_FILE};
use clipmatch::imaging::decode::decode_rgb;
use clipmatch::models::clip::l2_normalize;
use clipmatch::models::clip::text::TEXT_BATCH;
use clipmatch::imaging::thumbnail::thumbnail_jpeg;
use clipmatch::search::rank::{leave_one_out_threshold, FusionWeights};
use clipmatch::search::item_id::thumbnail_file;
use clipmatch::{Catalog, Towers};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use super::model_dir::{self, LoadedModel};
use super::files;
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
    #[arg(long, default_value_t = 1.5)]
    text_weight: f32,
    /// Default weight of cos(photo, product image) in the fused score.
    #[arg(long, default_value_t = 0.5)]
    image_weight: f32,
    /// Default number of results.
    #[arg(long, default_value_t = 5)]
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

struct Prepared {
    item: SourceItem,
    pixels: Vec<f32>,
    thumbnail: Vec<u8>,
}

fn prepare(model: &LoadedModel, item: SourceItem, thumb_side: u32) -> Result<Prepared, String> {
    let limits = &model.embedder.limits;
    // Only a regular file, refused before reading it into memory if it is too large.
    let bytes = files::read_regular(&item.path, limits.max_file_bytes as u64).map_err(|e| e.to_string())?;
    let rgb = decode_rgb(&bytes, limits).map_err(|e| e.to_string())?;
    let pixels = model.embedder.pixel_values_of(&rgb);
    let thumbnail = thumbnail_jpeg(&rgb, thumb_side).map_err(|e| e.to_string())?;
    Ok(Prepared { item, pixels, thumbnail })
}

fn progress(len: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template("{msg:>8} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

pub fn run(args: BuildArgs) -> Result<ExitCode> {
    let (items, ignored) = sources::load(&args.source, args.name_from)?;
    if items.is_empty() {
        bail!("no images (.jpg, .jpeg, .png, .webp, .gif) found in {}", args.source.display());
    }
    let source_kind = if args.source.is_dir() { "source folder" } else { "source list" };
    let mut inputs = vec![(source_kind, args.source.as_path()), ("model folder", args.model.model.as_path())];
    if let Some(t) = &args.model.tokenizer {
        inputs.push(("tokenizer", t.as_path()));
    }
    let staged = StagedDir::new(&args.out, Kind::Catalog, &inputs)?;
    let model = model_dir::load_hashed(&args.model, Towers::VisionAndText)?;
    let thumbs_dir = staged.path().join("thumbs");
    fs::create_dir_all(&thumbs_dir)?;

    let mut kept: Vec<(Item, Vec<f32>)> = Vec::new();
    let mut skipped: Vec<(String, String)> = Vec::new();
    let pb = progress(items.len(), "images");
    for chunk in items.chunks(args.batch_size as usize) {
        let mut batch = Vec::with_capacity(chunk.len());
        // Decoding, preprocessing and thumbnails of a batch run on all threads; order is kept.
        let prepared: Vec<_> =
            chunk.par_iter().map(|item| (item, prepare(&model, item.clone(), args.thumbnail_size))).collect();
        for (item, result) in prepared {
            match result {
                Ok(p) => batch.push(p),
                Err(reason) => {
                    pb.suspend(|| eprintln!("skipped {}: {reason}", item.path.display()));
                    skipped.push((item.path.display().to_string(), reason));
                }
            }
        }
        let pixels: Vec<Vec<f32>> = batch.iter_mut().map(|p| std::mem::take(&mut p.pixels)).collect();
        let vectors = model.embedder.embed_pixels(&pixels).context("the vision model failed")?;
        for (p, mut v) in batch.into_iter().zip(vectors) {
            l2_normalize(&mut v);
            let thumb = thumbnail_file(&p.item.id);
            fs::write(staged.path().join(&thumb), &p.thumbnail)?;
            kept.push((
                Item {
                    id: p.item.id,
                    name: p.item.name,
                    description: p.item.description,
                    image: p.item.label,
                    thumbnail: Some(thumb),
                },
                v,
            ));
        }
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    if kept.is_empty() {
        bail!("none of the {} images could be read; no catalog was written", items.len());
    }

    let pb = progress(kept.len(), "names");
    let mut pairs = Vec::with_capacity(kept.len());
    for chunk in kept.chunks(TEXT_BATCH) {
        let names: Vec<&str> = chunk.iter().map(|(item, _)| item.name.as_str()).collect();
        let vectors = model.embedder.embed_texts(&names).context("the text model failed")?;
        for ((_, image_vec), mut name_vec) in chunk.iter().zip(vectors) {
            l2_normalize(&mut name_vec);
            pairs.push((image_vec.clone(), name_vec));
        }
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();

    let mut info = model.info();
    if let Some(name) = &args.model_name {
        info.name = name.clone();
    }
    let weights = FusionWeights {
        text: args.text_weight,
        image: args.image_weight,
    };
    let ranking = RankingDefaults {
        text_weight: weights.text,
        image_weight: weights.image,
        top_k: args.top_k,
        min_score: 0.0,
    };
    let items: Vec<Item> = kept.into_iter().map(|(item, _)| item).collect();
    let mut catalog = Catalog::new(info, model.embedder.preprocess.clone(), ranking, items, &pairs)?
        .with_dtype(args.vector_dtype, ScaleRule::default())?;
    catalog.manifest.ranking.min_score = args
        .min_score
        .unwrap_or_else(|| leave_one_out_threshold(&catalog, weights));
    fs::write(staged.path().join(VECTORS_FILE), catalog.vectors_bytes())?;
    fs::write(staged.path().join(MANIFEST_FILE), catalog.manifest_json())?;
    staged.commit()?;

    println!(
        "built {}: {} products, {}-dim {} vectors, model {}, fused score = {} x text + {} x image, no-confident-match under {:.4}",
        args.out.display(),
        catalog.len(),
        catalog.dim(),
        catalog.dtype().name(),
        catalog.manifest.model.name,
        weights.text,
        weights.image,
        catalog.manifest.ranking.min_score
    );
    if ignored > 0 {
        println!("passed over {ignored} files that are not images by their extension");
    }
    if skipped.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("skipped {} of {} images:", skipped.len(), skipped.len() + catalog.len());
    for (path, reason) in &skipped {
        eprintln!("  {path}: {reason}");
    }
    if args.allow_skips {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("the catalog was written without them; pass --allow-skips to exit 0 anyway");
        Ok(ExitCode::from(2))
    }
}
