//! The command line: argument parsing and dispatch. Each subcommand lives in its own module.

mod build;
mod bundle;
mod catalog_dir;
mod checkpoint_file;
mod compact_codes;
mod durable;
mod embed;
mod eval;
mod files;
mod hub_folder;
mod inspect;
mod json_list;
mod labelled_photos;
mod merge;
mod model_dir;
mod output_dir;
mod query;
mod reuse;
mod settings;
mod shown;
mod sources;
mod swap;
mod tune;
mod work_dir;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use clipmatch::models::model::Engine;

#[derive(Parser)]
#[command(name = "clipmatch", version, about = "Reverse image search over a product catalog with CLIP")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the model comes from and what runs it.
#[derive(clap::Args, Clone)]
pub struct ModelArgs {
    /// Model folder as the Hugging Face hub has it: OpenAI CLIP (config.json, model.safetensors,
    /// tokenizer.json, preprocessor_config.json; openai/clip-vit-base-patch32), MobileCLIP
    /// (open_clip_config.json, open_clip_model.safetensors, tokenizer.json;
    /// apple/MobileCLIP-S1/-S2/-B-OpenCLIP, timm/MobileCLIP2-S0/-S2/-B-OpenCLIP) or SigLIP2
    /// (config.json, model.safetensors, preprocessor_config.json, tokenizer.json,
    /// tokenizer_config.json; google/siglip2-base-patch16-224, -patch32-256; google/siglip-base-patch16-224
    /// with spiece.model for tokenizer.json). Or one of those
    /// hub ids, once downloaded (scripts/download_model.sh puts it in models/<name>; the Hugging
    /// Face cache is looked in too).
    #[arg(long, env = "CLIPMATCH_MODEL", value_parser = hub_folder::parse)]
    model: PathBuf,
    /// Tokenizer file to use instead of the model folder's (tokenizer.json; SigLIP v1: spiece.model).
    #[arg(long, env = "CLIPMATCH_TOKENIZER")]
    tokenizer: Option<PathBuf>,
    /// What runs the model: `ours` (this app's kernels: OpenAI CLIP, SigLIP's image tower and
    /// MobileCLIP's FastViT image towers, the text towers of the last two on candle) or `candle`
    /// (candle-transformers; every family, the only one for MobileCLIP-B, where `ours` is
    /// refused). Default: `ours` where it runs, `candle` for MobileCLIP-B.
    #[arg(long, value_enum, env = "CLIPMATCH_ENGINE")]
    engine: Option<Engine>,
}

#[derive(Subcommand)]
enum Command {
    /// Embed every product image and name into a catalog folder the page can load.
    Build(build::BuildArgs),
    /// Rank a catalog's products against a photo.
    Query(query::QueryArgs),
    /// Print raw CLIP embeddings of images and texts as JSON.
    Embed(embed::EmbedArgs),
    /// Export what the page needs (vision tower, catalog, thumbnails) into one static folder.
    Bundle(bundle::BundleArgs),
    /// Describe a catalog and check that its vectors are consistent.
    Inspect(inspect::InspectArgs),
    /// Measure how well a catalog finds the products in labelled photos (table, JSON, HTML report).
    Eval(eval::EvalArgs),
    /// Choose the catalog's weights and threshold on labelled photos and record them in its manifest.
    Tune(tune::TuneArgs),
    /// Join the shard folders of a sharded build (`build --shard i/n`) into its catalog.
    Merge(merge::MergeArgs),
}

pub fn main() -> ExitCode {
    clipmatch::native_process::configure();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build(a) => build::run(a),
        Command::Query(a) => query::run(a),
        Command::Embed(a) => embed::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Bundle(a) => bundle::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Tune(a) => tune::run(a),
        Command::Merge(a) => merge::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", shown::text(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}
