//! `clipmatch embed`: raw CLIP embeddings of images and texts as JSON, for scripts and parity
//! checks. Values are the projected, unnormalised features (`get_image_features`,
//! `get_text_features` in transformers).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clipmatch::Towers;
use serde::Serialize;

use super::{files, model_dir, shown, ModelArgs};

#[derive(clap::Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Image files to embed.
    #[arg(long = "image", num_args = 1..)]
    images: Vec<PathBuf>,
    /// Texts to embed.
    #[arg(long = "text", num_args = 1..)]
    texts: Vec<String>,
}

#[derive(Serialize)]
struct Output {
    images: BTreeMap<String, Vec<f32>>,
    texts: BTreeMap<String, Vec<f32>>,
    errors: BTreeMap<String, String>,
}

pub fn run(args: EmbedArgs) -> Result<ExitCode> {
    let towers = if args.texts.is_empty() { Towers::VisionOnly } else { Towers::VisionAndText };
    let model = model_dir::load(&args.model, towers)?;
    let mut out = Output {
        images: BTreeMap::new(),
        texts: BTreeMap::new(),
        errors: BTreeMap::new(),
    };
    for path in &args.images {
        let key = path.display().to_string();
        let result = files::read_regular(path, model.embedder.limits.max_file_bytes as u64)
            .map_err(|e| e.to_string())
            .and_then(|bytes| model.embedder.pixel_values(&bytes).map_err(|e| e.to_string()));
        match result {
            Ok(px) => {
                let v = model.embedder.embed_pixels_raw(&[px]).context("the vision model failed")?;
                out.images.insert(key, v.into_iter().next().expect("one row"));
            }
            Err(reason) => {
                eprintln!("{}", shown::text(&format!("{key}: {reason}")));
                out.errors.insert(key, reason);
            }
        }
    }
    if !args.texts.is_empty() {
        let vectors = model.embedder.embed_texts_raw(&args.texts).context("the text model failed")?;
        out.texts.extend(args.texts.iter().cloned().zip(vectors));
    }
    println!("{}", serde_json::to_string(&out)?);
    Ok(if out.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}
