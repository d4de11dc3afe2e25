//! `clipmatch query`: ranks a catalog against one photo.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clipmatch::imaging::crop::Region;
use clipmatch::search::rank::Ranking;
use clipmatch::search::ranking_options::RankingOverrides;
use clipmatch::Towers;

use super::{catalog_dir, files, model_dir, settings, shown, ModelArgs};

#[derive(clap::Args)]
pub struct QueryArgs {
    /// The photo to look up (JPEG, PNG, WebP or GIF).
    photo: PathBuf,
    /// The catalog folder written by `clipmatch build`.
    #[arg(long, short, env = "CLIPMATCH_CATALOG")]
    catalog: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    /// Number of results (default: the catalog's).
    #[arg(long, short = 'k', value_parser = settings::top_k)]
    top_k: Option<usize>,
    /// Weight of cos(photo, product name) (default: the catalog's).
    #[arg(long, value_parser = settings::text_weight)]
    text_weight: Option<f32>,
    /// Weight of cos(photo, product image) (default: the catalog's).
    #[arg(long, value_parser = settings::image_weight)]
    image_weight: Option<f32>,
    /// Best score under which there is no confident match (default: the catalog's).
    #[arg(long, value_parser = settings::min_score)]
    min_score: Option<f32>,
    /// Rank only this region of the photo: x,y,width,height in whole pixels of the upright photo
    /// (EXIF orientation applied), x,y its top-left corner; as the page's box sends it.
    #[arg(long, value_name = "X,Y,W,H", value_parser = parse_region)]
    crop: Option<Region>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: QueryArgs) -> Result<ExitCode> {
    let catalog = catalog_dir::load(&args.catalog)?;
    let mut session = model_dir::load_hashed(&args.model, Towers::VisionOnly)?.into_session();
    session
        .use_catalog(catalog)
        .with_context(|| format!("{} cannot be used with the model in {}", args.catalog.display(), args.model.model.display()))?;
    let max = session.embedder().limits.max_file_bytes as u64;
    let bytes = files::read_regular(&args.photo, max).with_context(|| args.photo.display().to_string())?;
    let overrides = RankingOverrides {
        text_weight: args.text_weight,
        image_weight: args.image_weight,
        top_k: args.top_k,
        min_score: args.min_score,
    };
    let ranking = match args.crop {
        Some(region) => session.rank_photo_region(&bytes, region, &overrides),
        None => session.rank_photo(&bytes, &overrides),
    }
    .with_context(|| format!("{}", args.photo.display()))?;
    if args.json {
        let out = serde_json::json!({ "photo": args.photo.display().to_string(), "crop": args.crop, "ranking": ranking });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_table(&ranking);
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_region(s: &str) -> Result<Region, String> {
    s.parse().map_err(|e: clipmatch::error::RegionError| e.to_string())
}

fn print_table(r: &Ranking) {
    let w = r.weights;
    println!(
        "{:>2}  {:>7}  {:>17}  {:>17}  name",
        "#",
        "score",
        format!("text {}x cos", w.text),
        format!("image {}x cos", w.image)
    );
    for (i, m) in r.matches.iter().enumerate() {
        println!(
            "{:>2}  {:>7.4}  {:>7.4} ({:>7.4})  {:>7.4} ({:>7.4})  {}",
            i + 1,
            m.score,
            m.text_contribution,
            m.text_similarity,
            m.image_contribution,
            m.image_similarity,
            shown::text(&m.name)
        );
    }
    println!("(text and image: the weighted share of the score, and in brackets the cosine similarity)");
    if !r.confident {
        let best = r.matches.first().map(|m| m.score).unwrap_or(f32::NAN);
        println!("no confident match: best score {best:.4} is under the threshold {:.4}", r.min_score);
    }
}
