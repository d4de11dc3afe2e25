//! `clipmatch bundle`: everything the page needs, as one static folder: the vision tower only
//! (f16 by default), the catalog with its thumbnails, and `bundle.json` listing every file with
//! its size and sha256 (the page shows download progress against the sizes and keys its cache
//! by the hashes).

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clipmatch::digest::sha256_hex;
use clipmatch::models::clip::export::{vision_tower, ExportDtype};
use clipmatch::search::bundle::{Bundle, FileEntry, ModelFiles, BUNDLE_FILE};
use clipmatch::search::catalog::{ScaleRule, VectorDtype};
use clipmatch::Towers;

use super::output_dir::{Kind, StagedDir};
use super::{catalog_dir, model_dir, ModelArgs};

#[derive(clap::Args)]
pub struct BundleArgs {
    /// The catalog folder written by `clipmatch build`.
    #[arg(long, short)]
    catalog: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    /// The static folder to write (replaced atomically if it exists and is a bundle folder;
    /// it may not be, contain or lie inside the catalog or model folder).
    #[arg(long, short)]
    out: PathBuf,
    /// Storage type of the exported vision weights.
    #[arg(long, value_enum, default_value = "f16")]
    dtype: ExportDtype,
    /// Storage type of the catalog vectors: i8 (an f32 catalog is quantised), or f32 (only
    /// from a catalog built with --vector-dtype f32).
    #[arg(long, value_enum, default_value = "i8")]
    vector_dtype: VectorDtype,
}

pub fn run(args: BundleArgs) -> Result<ExitCode> {
    let mut catalog = catalog_dir::load(&args.catalog)?
        .with_dtype(args.vector_dtype, ScaleRule::default())
        .with_context(|| format!("cannot bundle {}", args.catalog.display()))?;
    let staged = StagedDir::new(
        &args.out,
        Kind::Bundle,
        &[("catalog folder", &args.catalog), ("model folder", &args.model.model)],
    )?;
    let model = model_dir::load_hashed(&args.model, Towers::VisionOnly)?;
    let info = model.info();
    catalog
        .check_model(info.embedding_dim, Some(&info.weights_sha256), &model.embedder.preprocess)
        .with_context(|| format!("{} was not built with the model in {}", args.catalog.display(), args.model.model.display()))?;
    let dtype = args.dtype;
    let Some(clip) = model.embedder.model.towers().as_clip() else {
        bail!(
            "clipmatch bundle exports OpenAI CLIP on this app's kernels only; {} on {} is not exported yet",
            model.embedder.model.towers().family().name(),
            model.embedder.model.towers().engine().name()
        );
    };
    let vision = vision_tower(model.weights(), &clip.config, dtype)?;
    let vision_sha = sha256_hex(&vision);
    let equivalent = &mut catalog.manifest.model.equivalent_weights_sha256;
    if !equivalent.contains(&vision_sha) {
        equivalent.push(vision_sha);
    }

    let model_files = ModelFiles {
        config: "model/config.json".into(),
        preprocessor: "model/preprocessor_config.json".into(),
        weights: "model/model.safetensors".into(),
        dtype: dtype.name().into(),
    };
    let root = staged.path().to_path_buf();
    fs::create_dir_all(root.join("model"))?;
    fs::create_dir_all(root.join("thumbs"))?;
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (model_files.config.clone(), fs::read(args.model.model.join("config.json"))?),
        (model_files.preprocessor.clone(), fs::read(args.model.model.join("preprocessor_config.json"))?),
        (model_files.weights.clone(), vision),
    ];
    let mut bundle = Bundle::new(model_files, Vec::with_capacity(files.len() + catalog.len()));
    files.push((bundle.catalog.clone(), catalog.manifest_json().into_bytes()));
    files.push((bundle.vectors.clone(), catalog.vectors_bytes()));
    for item in catalog.items() {
        if let Some(t) = &item.thumbnail {
            let bytes = catalog_dir::read_thumbnail(&args.catalog, t).with_context(|| format!("thumbnail of {:?}", item.id))?;
            files.push((t.clone(), bytes));
        }
    }
    for (path, bytes) in &files {
        fs::write(root.join(path), bytes)?;
        bundle.files.push(FileEntry::of(path, bytes));
    }
    bundle.check().context("the bundle written would not be readable")?;
    fs::write(root.join(BUNDLE_FILE), bundle.to_json())?;
    let total = bundle.total_bytes();
    let weights_bytes = bundle.file(&bundle.model.weights).map(|f| f.bytes).unwrap_or(0);
    staged.commit()?;
    println!(
        "bundled {}: {} files, {:.1} MB in all (vision tower {} {:.1} MB), {} products",
        args.out.display(),
        bundle.files.len(),
        total as f64 / 1e6,
        dtype.name(),
        weights_bytes as f64 / 1e6,
        catalog.len()
    );
    Ok(ExitCode::SUCCESS)
}
