//! `clipmatch bundle`: everything the page needs, as one static folder: the vision tower only
//! (f16 by default), the catalog with its thumbnails, and `bundle.json` listing every file with
//! its size and sha256 (the page shows download progress against the sizes and keys its cache
//! by the hashes).

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clipmatch::search::catalog::{ScaleRule, MANIFEST_FILE, VECTORS_FILE};
use clipmatch::digest::sha256_hex;
use clipmatch::models::clip::export::{vision_tower, WeightsDtype};
use clipmatch::Towers;
use serde::Serialize;

use super::output_dir::{Kind, StagedDir};
use super::{catalog_dir, model_dir, ModelArgs, VectorDtypeArg};

pub const BUNDLE_FILE: &str = "bundle.json";
pub const BUNDLE_FORMAT: &str = "clipmatch-bundle";

#[derive(Clone, Copy, clap::ValueEnum)]
enum Dtype {
    F16,
    F32,
    /// int8 linear layers (per-channel scales), the rest f16: a quarter of f32's size.
    Int8,
}

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
    dtype: Dtype,
    /// Storage type of the catalog vectors: i8 (an f32 catalog is quantised), or f32 (only
    /// from a catalog built with --vector-dtype f32).
    #[arg(long, value_enum, default_value = "i8")]
    vector_dtype: VectorDtypeArg,
}

#[derive(Serialize)]
struct FileEntry {
    path: String,
    bytes: u64,
    sha256: String,
}

#[derive(Serialize)]
struct ModelFiles {
    config: String,
    preprocessor: String,
    weights: String,
    dtype: &'static str,
}

#[derive(Serialize)]
struct Bundle {
    format: &'static str,
    version: u32,
    model: ModelFiles,
    catalog: String,
    vectors: String,
    files: Vec<FileEntry>,
}

pub fn run(args: BundleArgs) -> Result<ExitCode> {
    let mut catalog = catalog_dir::load(&args.catalog)?
        .with_dtype(args.vector_dtype.into(), ScaleRule::default())
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
    let dtype = match args.dtype {
        Dtype::F16 => WeightsDtype::F16,
        Dtype::F32 => WeightsDtype::F32,
        Dtype::Int8 => WeightsDtype::Int8,
    };
    let vision = vision_tower(model.weights(), &model.embedder.model.config, dtype)?;
    let vision_sha = sha256_hex(&vision);
    let equivalent = &mut catalog.manifest.model.equivalent_weights_sha256;
    if !equivalent.contains(&vision_sha) {
        equivalent.push(vision_sha);
    }

    let root = staged.path().to_path_buf();
    fs::create_dir_all(root.join("model"))?;
    fs::create_dir_all(root.join("thumbs"))?;
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("model/config.json".into(), fs::read(args.model.model.join("config.json"))?),
        (
            "model/preprocessor_config.json".into(),
            fs::read(args.model.model.join("preprocessor_config.json"))?,
        ),
        ("model/model.safetensors".into(), vision),
        (MANIFEST_FILE.into(), catalog.manifest_json().into_bytes()),
        (VECTORS_FILE.into(), catalog.vectors_bytes()),
    ];
    for item in catalog.items() {
        if let Some(t) = &item.thumbnail {
            let bytes = catalog_dir::read_thumbnail(&args.catalog, t).with_context(|| format!("thumbnail of {:?}", item.id))?;
            files.push((t.clone(), bytes));
        }
    }
    let mut entries = Vec::with_capacity(files.len());
    for (path, bytes) in &files {
        fs::write(root.join(path), bytes)?;
        entries.push(FileEntry {
            path: path.clone(),
            bytes: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        });
    }
    let bundle = Bundle {
        format: BUNDLE_FORMAT,
        version: 1,
        model: ModelFiles {
            config: "model/config.json".into(),
            preprocessor: "model/preprocessor_config.json".into(),
            weights: "model/model.safetensors".into(),
            dtype: dtype.name(),
        },
        catalog: MANIFEST_FILE.into(),
        vectors: VECTORS_FILE.into(),
        files: entries,
    };
    fs::write(root.join(BUNDLE_FILE), serde_json::to_string_pretty(&bundle)?)?;
    let total: u64 = bundle.files.iter().map(|f| f.bytes).sum();
    let weights_bytes = bundle.files.iter().find(|f| f.path == bundle.model.weights).map(|f| f.bytes).unwrap_or(0);
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
