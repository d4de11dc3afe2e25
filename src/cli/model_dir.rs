//! Loading a hub model folder from disk (regular files, size caps, the weights mapped) into
//! the core's `Embedder` through its one folder loader.

use std::path::Path;

use anyhow::{bail, Context, Result};
use clipmatch::search::catalog::ModelInfo;
use clipmatch::search::session::SearchSession;
use clipmatch::digest::sha256_hex;
use clipmatch::models::folder::{self, FolderFiles, Layout};
use clipmatch::{Embedder, ModelError, Towers};

use super::{files, ModelArgs};

/// A loaded model and what identifies it in a catalog.
pub struct LoadedModel {
    pub embedder: Embedder,
    /// Which kind of folder it is.
    pub layout: Layout,
    /// The texts of its config file and, where the layout has one, its preprocessor config.
    pub config: String,
    pub preprocessor: Option<String>,
    name: String,
    weights: memmap2::Mmap,
    /// Computed while the model loaded, by [`load_hashed`].
    weights_sha256: Option<String>,
}

impl LoadedModel {
    /// The bytes of model.safetensors.
    pub fn weights(&self) -> &[u8] {
        &self.weights
    }

    /// What identifies the model in a catalog. Hashes the weights file unless [`load_hashed`]
    /// already did (about 0.35 s for ViT-B/32's 605 MB on this machine).
    pub fn info(&self) -> ModelInfo {
        ModelInfo {
            name: self.name.clone(),
            weights_sha256: self.weights_sha256.clone().unwrap_or_else(|| sha256_hex(&self.weights)),
            equivalent_weights_sha256: Vec::new(),
            embedding_dim: self.embedder.model.embedding_dim(),
        }
    }

    /// A search session over this model (the weights hashed unless [`load_hashed`] did).
    pub fn into_session(self) -> SearchSession {
        let sha = self.info().weights_sha256;
        SearchSession::new(self.embedder, sha)
    }
}

const HOW_TO_GET: &str = "download a supported model folder from the Hugging Face hub \
(openai/clip-vit-base-patch32: config.json, model.safetensors, tokenizer.json, preprocessor_config.json; \
apple/MobileCLIP-S1-OpenCLIP, apple/MobileCLIP-S2-OpenCLIP, apple/MobileCLIP-B-OpenCLIP, timm/MobileCLIP2-S0-OpenCLIP, \
timm/MobileCLIP2-S2-OpenCLIP, timm/MobileCLIP2-B-OpenCLIP: \
open_clip_config.json, open_clip_model.safetensors, tokenizer.json; google/siglip2-base-patch16-224, \
google/siglip2-base-patch32-256: config.json, model.safetensors, preprocessor_config.json, tokenizer.json, \
tokenizer_config.json; google/siglip-base-patch16-224: the same with spiece.model for tokenizer.json) and pass it \
with --model or CLIPMATCH_MODEL";

/// Largest `config.json` / `preprocessor_config.json` read (the real ones are a few KB).
const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Largest `tokenizer.json` read (CLIP's is 3.6 MB; SentencePiece vocabularies of 256k run to ~35 MB).
const MAX_TOKENIZER_BYTES: u64 = 64 << 20;

/// A model file's bytes: a regular file (a FIFO or device is refused, never waited on), at most `max`.
fn read_file(path: &Path, max: u64) -> Result<Vec<u8>> {
    files::read_regular(path, max).with_context(|| format!("cannot read {}: {HOW_TO_GET}", path.display()))
}

fn read_text(dir: &Path, name: &str) -> Result<String> {
    let path = dir.join(name);
    String::from_utf8(read_file(&path, MAX_CONFIG_BYTES)?).with_context(|| format!("{} is not UTF-8 text", path.display()))
}

/// Loads the towers asked for; the text tower needs a tokenizer too.
pub fn load(args: &ModelArgs, towers: Towers) -> Result<LoadedModel> {
    load_with(args, towers, false)
}

/// [`load`], hashing the weights file for [`LoadedModel::info`] on another thread meanwhile
/// (loading converts and packs on one thread, so the hash costs no wall time on two cores).
pub fn load_hashed(args: &ModelArgs, towers: Towers) -> Result<LoadedModel> {
    load_with(args, towers, true)
}

/// Which kind of folder `dir` is, from its files.
fn detect(dir: &Path) -> Result<Layout> {
    let has_open_clip = dir.join(folder::OPEN_CLIP_CONFIG).exists();
    // Without open_clip_config.json, config.json is required (its absence is a read error naming it).
    let config = match has_open_clip {
        false => Some(read_text(dir, folder::HF_CONFIG)?),
        true => None,
    };
    Layout::detect(has_open_clip, config.as_deref()).with_context(|| format!("cannot load the model in {}", dir.display()))
}

fn load_with(args: &ModelArgs, towers: Towers, hash: bool) -> Result<LoadedModel> {
    let dir = &args.model;
    if !dir.is_dir() {
        bail!("model folder {} does not exist: {HOW_TO_GET}", dir.display());
    }
    let layout = detect(dir)?;
    let config = read_text(dir, layout.config_file())?;
    let preprocessor = layout.preprocessor_file().map(|name| read_text(dir, name)).transpose()?;
    let weights_path = dir.join(layout.weights_file());
    if !weights_path.exists() && dir.join("pytorch_model.bin").exists() {
        bail!(
            "{} has pytorch_model.bin but no {}; only safetensors weights are read (the hub's folders have them)",
            dir.display(),
            layout.weights_file()
        );
    }
    let weights = files::open_regular(&weights_path)
        .with_context(|| format!("cannot open {}: {HOW_TO_GET}", weights_path.display()))?
        .map()
        .with_context(|| format!("cannot map {}", weights_path.display()))?;
    let tokenizer = match towers {
        Towers::VisionOnly => None,
        Towers::VisionAndText => {
            // The first of the layout's tokenizer files that exists (the first named if none does).
            let files = layout.tokenizer_files().iter().map(|name| dir.join(name));
            let found = files.clone().find(|p| p.exists()).or_else(|| files.clone().next()).expect("a tokenizer file name");
            let path = args.tokenizer.clone().unwrap_or(found);
            Some((read_file(&path, MAX_TOKENIZER_BYTES)?, path))
        }
    };
    let tokenizer_config = match layout.tokenizer_config_file().map(|name| dir.join(name)) {
        Some(path) if towers == Towers::VisionAndText && path.exists() => Some(read_file(&path, MAX_CONFIG_BYTES)?),
        _ => None,
    };
    let files = FolderFiles {
        config: &config,
        preprocessor: preprocessor.as_deref(),
        weights: &weights,
        tokenizer: tokenizer.as_ref().map(|(json, _)| json.as_slice()),
        tokenizer_config: tokenizer_config.as_deref(),
    };
    let (embedder, weights_sha256) = std::thread::scope(|scope| {
        let hashing = hash.then(|| scope.spawn(|| sha256_hex(&weights)));
        let embedder = folder::load(layout, &files, towers, args.engine);
        (embedder, hashing.map(|h| h.join().expect("hashing does not panic")))
    });
    let embedder = embedder.map_err(|e| {
        let file = match &e {
            ModelError::Tokenizer(_) => tokenizer.as_ref().map(|(_, p)| p.clone()),
            ModelError::Preprocessor(_) => layout.preprocessor_file().map(|name| dir.join(name)),
            _ => None,
        };
        match file {
            Some(path) => anyhow::Error::new(e).context(path.display().to_string()),
            None => anyhow::Error::new(e).context(format!("cannot load the model in {}", dir.display())),
        }
    })?;
    Ok(LoadedModel {
        embedder,
        layout,
        name: model_name(dir, &config),
        config,
        preprocessor,
        weights,
        weights_sha256,
    })
}

/// The hub id if the folder says it (`_name_or_path` in config.json), else the folder's name.
fn model_name(dir: &Path, config: &str) -> String {
    let from_config = serde_json::from_str::<serde_json::Value>(config)
        .ok()
        .and_then(|v| v.get("_name_or_path").and_then(|n| n.as_str()).map(str::to_string))
        .filter(|s| !s.is_empty());
    from_config.unwrap_or_else(|| {
        dir.canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string())
    })
}
