//! `clipmatch bundle`: everything the page needs, as one static folder: the image tower only (f16
//! by default) of any supported family with the config file(s) its loader reads, the catalog with
//! its thumbnails, and `bundle.json` listing every file with its size and sha256 and saying what
//! the model is (the page shows download progress against the sizes, keys its cache by the
//! hashes and picks the engine from the family). The exported tower is loaded back as the page
//! loads it and must embed a test image like the folder's model before anything is committed.

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clipmatch::digest::sha256_hex;
use clipmatch::kernels::math::dot;
use clipmatch::models::export::{self, ExportDtype};
use clipmatch::search::bundle::{Bundle, BundleCompact, FileEntry, ModelFiles, BUNDLE_FILE};
use clipmatch::search::bundle_model::BundleModelLoader;
use clipmatch::search::catalog::{ScaleRule, VectorDtype};
use clipmatch::{Embedder, Towers};

use super::output_dir::{Kind, StagedDir};
use super::{catalog_dir, files, model_dir, shown, ModelArgs};

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
    /// Storage type of the exported image tower [default: int8 for OpenAI CLIP and SigLIP, f16
    /// for MobileCLIP, whose int8 ranks the grocery photos less like f32]. Refused where the
    /// exported tower's fidelity falls under the bound for that dtype.
    #[arg(long, value_enum)]
    dtype: Option<ExportDtype>,
    /// Storage type of the catalog vectors: i8 (an f32 catalog is quantised), or f32 (only
    /// from a catalog built with --vector-dtype f32).
    #[arg(long, value_enum, default_value = "i8")]
    vector_dtype: VectorDtype,
}

/// A test image with detail at several scales (what the exported tower must embed alike).
fn probe_image() -> image::RgbImage {
    image::RgbImage::from_fn(320, 240, |x, y| {
        let ring = ((x as i32 - 150).pow(2) + (y as i32 - 110).pow(2)) / 300;
        image::Rgb([(x * 255 / 320) as u8, (ring * 37 % 256) as u8, ((x / 16 + y / 16) % 2 * 200) as u8])
    })
}

/// Refuses an exported tower that does not embed the test image like the folder's model.
fn check_fidelity(folder: &Embedder, exported: &Embedder, min_cosine: f64, dtype: ExportDtype) -> Result<()> {
    let probe = probe_image();
    let (a, b) = (folder.embed_rgb(&probe)?, exported.embed_rgb(&probe)?);
    let cosine = dot(&a, &b) as f64;
    if cosine < min_cosine {
        bail!(
            "the exported {} image tower embeds a test image at cosine {cosine:.6} to the model's, under the {min_cosine} it must keep; nothing was written{}",
            dtype.name(),
            if dtype == ExportDtype::F16 { "" } else { " (try --dtype f16)" }
        );
    }
    Ok(())
}

/// `bytes` gzipped (the page catalog of a compact bundle: www/worker.js decompresses it).
fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(bytes).expect("writing to memory");
    z.finish().expect("writing to memory")
}

pub fn run(args: BundleArgs) -> Result<ExitCode> {
    // Only what the page uses: no local paths.
    let mut catalog = catalog_dir::load(&args.catalog)?
        .for_page()
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
    let family = model.embedder.model.towers().family();
    let (dtype, layout) = (args.dtype.unwrap_or(export::default_dtype(family)), model.layout);
    let vision = export::vision_tower(family, &model.config, model.weights(), dtype)
        .with_context(|| format!("cannot export the image tower of {}", args.model.model.display()))?;
    let vision_sha = sha256_hex(&vision);
    let equivalent = &mut catalog.manifest.model.equivalent_weights_sha256;
    if !equivalent.contains(&vision_sha) {
        equivalent.push(vision_sha.clone());
    }

    let in_model = |name: &str| format!("model/{name}");
    let model_files = ModelFiles {
        family: Some(family.id().into()),
        config: in_model(layout.config_file()),
        preprocessor: layout.preprocessor_file().map(in_model),
        weights: in_model(layout.weights_file()),
        dtype: dtype.name().into(),
        preprocessing: Some(model.embedder.preprocess.clone()),
        embedding_dim: Some(info.embedding_dim),
        weights_sha256: Some(vision_sha),
        layout: clipmatch::models::mobileclip::exported_layout(family, &model.config).map(str::to_string),
    };
    let mut files: Vec<(String, Vec<u8>)> = vec![(model_files.config.clone(), model.config.clone().into_bytes())];
    if let (Some(path), Some(text)) = (&model_files.preprocessor, &model.preprocessor) {
        files.push((path.clone(), text.clone().into_bytes()));
    }
    files.push((model_files.weights.clone(), vision));
    let mut bundle = Bundle::new(model_files, Vec::with_capacity(files.len() + catalog.len()));
    // A big catalog with compact codes: the page ranks with them and never fetches thumbnails
    // (www/worker.js: 100,000 cannot come first, and only the results' would reveal the photo),
    // so the bundle carries none and its manifest names none.
    let big = catalog.manifest.compact.as_ref().is_some_and(|c| catalog.len() >= c.min_items);
    if big {
        catalog.manifest.items.iter_mut().for_each(|item| item.thumbnail = None);
    }
    files.push((bundle.catalog.clone(), catalog.manifest_file()?.into_bytes()));
    files.push((bundle.vectors.clone(), catalog.vectors_bytes()));
    if let (true, Some(page), Some(info)) = (big, catalog.page_catalog(), &catalog.manifest.compact) {
        let compact = BundleCompact::default();
        let codes = files::read_inside(&args.catalog, &info.codes.file, info.codes.bytes)?;
        files.push((compact.manifest.clone(), gzip(&serde_json::to_vec(&page).expect("a manifest serialises"))));
        files.push((compact.codes.clone(), codes));
        bundle.compact = Some(compact);
    }
    for item in catalog.items() {
        if let Some(t) = &item.thumbnail {
            let side = catalog.manifest.thumbnail_side();
            let bytes = catalog_dir::read_thumbnail(&args.catalog, t, side).with_context(|| format!("thumbnail of {:?}", item.id))?;
            files.push((t.clone(), bytes));
        }
    }
    for (path, bytes) in &files {
        bundle.files.push(FileEntry::of(path, bytes));
    }
    bundle.check().context("the bundle written would not be readable")?;
    let weights = &files.iter().find(|(p, _)| *p == bundle.model.weights).expect("listed").1;
    let exported = BundleModelLoader::load(&bundle, None, &model.config, model.preprocessor.as_deref(), weights)
        .context("the exported image tower does not load as the page loads it")?;
    check_fidelity(&model.embedder, &exported, export::min_cosine(family, dtype), dtype)?;
    let engine = exported.model.towers().engine();
    drop(exported);

    let root = staged.path().to_path_buf();
    for (path, bytes) in &files {
        let target = root.join(path);
        fs::create_dir_all(target.parent().expect("inside the bundle"))?;
        fs::write(target, bytes)?;
    }
    fs::write(root.join(BUNDLE_FILE), bundle.to_json())?;
    let total = bundle.total_bytes();
    let weights_bytes = bundle.file(&bundle.model.weights).map(|f| f.bytes).unwrap_or(0);
    staged.commit()?;
    println!(
        "bundled {}: {} files, {:.1} MB in all ({} image tower {} {:.1} MB, run by the {} engine in the page), {} products",
        shown::path(&args.out),
        bundle.files.len(),
        total as f64 / 1e6,
        family.name(),
        dtype.name(),
        weights_bytes as f64 / 1e6,
        engine.name(),
        catalog.len()
    );
    Ok(ExitCode::SUCCESS)
}
