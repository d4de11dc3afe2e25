//! One model abstraction over every family and engine: an image tower (NCHW pixel values in,
//! raw features out), a text tower (texts in, tokenized by the family's own rule, raw features
//! out), the embedding size and what the model is. The [`crate::Embedder`] holds one of these
//! with the preprocessing its folder asks for; nothing past it knows which family runs.

use crate::error::ModelError;
use crate::models::clip::candle_engine::CandleClip;
use crate::models::clip::ClipModel;
use crate::models::mobileclip::fastvit::FastVit;
use crate::models::mobileclip::MobileClip;
use crate::models::siglip::ours::OursSiglip;
use crate::models::siglip::Siglip;
use crate::models::tokenizer::ClipTokenizer;

/// The model families this app runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// OpenAI CLIP ViT (Hugging Face `CLIPModel` folders).
    OpenAiClip,
    /// MobileCLIP / MobileCLIP2 (open_clip folders, FastViT-MCi image tower).
    MobileClip,
    /// SigLIP / SigLIP2 (Hugging Face `SiglipModel` folders).
    Siglip,
}

impl Family {
    pub const ALL: [Family; 3] = [Family::OpenAiClip, Family::MobileClip, Family::Siglip];

    pub fn name(self) -> &'static str {
        match self {
            Family::OpenAiClip => "OpenAI CLIP",
            Family::MobileClip => "MobileCLIP",
            Family::Siglip => "SigLIP",
        }
    }

    /// The stable name files record (`model.family` in bundle.json).
    pub fn id(self) -> &'static str {
        match self {
            Family::OpenAiClip => "openai-clip",
            Family::MobileClip => "mobileclip",
            Family::Siglip => "siglip",
        }
    }

    /// The family a file names by [`Self::id`].
    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.id() == id)
    }

    /// The engines that run this family (the first is the default).
    pub fn engines(self) -> &'static [Engine] {
        match self {
            // MobileCLIP's FastViT-MCi towers default to ours; its ViT-MCi tower (MobileCLIP-B) runs
            // on candle only (`mobileclip::engine_for` chooses).
            Family::OpenAiClip | Family::MobileClip | Family::Siglip => &[Engine::Ours, Engine::Candle],
        }
    }

    /// `engine`, or the family's default; refused for an engine that cannot run it.
    pub fn engine(self, engine: Option<Engine>) -> Result<Engine, ModelError> {
        let chosen = engine.unwrap_or(self.engines()[0]);
        if !self.engines().contains(&chosen) {
            return Err(ModelError::EngineCannotRun { family: self.name(), engine: chosen.name() });
        }
        Ok(chosen)
    }
}

/// What runs the towers: this crate's kernels or candle-transformers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(not(target_arch = "wasm32"), derive(clap::ValueEnum))]
pub enum Engine {
    /// This crate's kernels (OpenAI CLIP, SigLIP's image tower, MobileCLIP's FastViT-MCi towers;
    /// the default for them).
    #[default]
    Ours,
    /// candle-transformers (every family).
    Candle,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Ours => "ours",
            Engine::Candle => "candle",
        }
    }

    /// The engine called `name` ([`Self::name`]), refusing any other name.
    pub fn from_name(name: &str) -> Result<Self, ModelError> {
        [Engine::Ours, Engine::Candle]
            .into_iter()
            .find(|e| e.name() == name)
            .ok_or_else(|| ModelError::UnknownEngine(name.chars().take(40).collect()))
    }
}

/// A loaded model of any family on either engine: its towers, and texts to raw features.
pub trait EmbeddingModel: Send + Sync {
    /// The image tower and what the model is.
    fn towers(&self) -> &dyn FamilyTowers;
    /// Raw (unnormalised) text features; each family tokenizes its own way.
    #[cfg(not(target_arch = "wasm32"))]
    fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError>;
}

impl dyn EmbeddingModel {
    /// Dimension of the joint embedding space (what catalogs check).
    pub fn embedding_dim(&self) -> usize {
        self.towers().embedding_dim()
    }
}

/// A family's towers as its engine runs them: pixel values in, token ids in.
pub trait FamilyTowers: Send + Sync {
    fn family(&self) -> Family;
    fn engine(&self) -> Engine;
    /// Dimension of the joint embedding space.
    fn embedding_dim(&self) -> usize;
    /// Side of the square image the image tower takes.
    fn image_size(&self) -> usize;
    /// Raw (unnormalised) image features of `n` preprocessed images laid out NCHW.
    fn embed_images(&self, pixel_values: &[f32], n: usize) -> Result<Vec<Vec<f32>>, ModelError>;
    /// Raw text features of token id rows as the family's tokenizer makes them.
    fn embed_ids(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, ModelError>;
    /// The OpenAI CLIP model on our kernels, for what only it supports (the page's export).
    fn as_clip(&self) -> Option<&ClipModel> {
        None
    }
}

/// Texts to token id rows, each family's own rule.
pub trait Tokenize: Send + Sync {
    #[cfg(not(target_arch = "wasm32"))]
    fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, ModelError>;
}

/// A family's towers with the tokenizer its text tower takes (none: images only).
pub struct Tokenized<M, T> {
    pub model: M,
    pub tokenizer: Option<T>,
}

impl<M: FamilyTowers, T: Tokenize> EmbeddingModel for Tokenized<M, T> {
    fn towers(&self) -> &dyn FamilyTowers {
        &self.model
    }
    #[cfg(not(target_arch = "wasm32"))]
    fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        let tokenizer = self
            .tokenizer
            .as_ref()
            .ok_or_else(|| ModelError::Tokenizer("no tokenizer.json was loaded".into()))?;
        self.model.embed_ids(&tokenizer.encode_batch(texts)?)
    }
}

/// OpenAI CLIP on this crate's kernels, with transformers' CLIPTokenizer.
pub type OursClip = Tokenized<ClipModel, ClipTokenizer>;
/// MobileCLIP (its image tower on either engine, its text tower on candle), with open_clip's way
/// of using CLIP's BPE.
pub type MobileClipModel = Tokenized<MobileClip, ClipTokenizer>;
/// SigLIP / SigLIP2 on candle, with the folder's SentencePiece tokenizer.
pub type SiglipModel = Tokenized<Siglip, SiglipTokenizer>;
/// SigLIP / SigLIP2 with the image tower on this crate's kernels (the text tower on candle).
pub type OursSiglipModel = Tokenized<OursSiglip, SiglipTokenizer>;

impl FamilyTowers for ClipModel {
    fn family(&self) -> Family {
        Family::OpenAiClip
    }
    fn engine(&self) -> Engine {
        Engine::Ours
    }
    fn embedding_dim(&self) -> usize {
        ClipModel::embedding_dim(self)
    }
    fn image_size(&self) -> usize {
        self.vision.image_size()
    }
    fn embed_images(&self, pixel_values: &[f32], n: usize) -> Result<Vec<Vec<f32>>, ModelError> {
        self.vision.embed(pixel_values, n)
    }
    fn embed_ids(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, ModelError> {
        self.text()?.embed(ids)
    }
    fn as_clip(&self) -> Option<&ClipModel> {
        Some(self)
    }
}

/// The towers whose inherent methods have the same names and meaning; `$engine` says which
/// engine runs a model (MobileCLIP's image tower runs on either).
macro_rules! towers_of {
    ($model:ty, $family:expr, $engine:expr) => {
        impl FamilyTowers for $model {
            fn family(&self) -> Family {
                $family
            }
            fn engine(&self) -> Engine {
                ($engine)(self)
            }
            fn embedding_dim(&self) -> usize {
                <$model>::embedding_dim(self)
            }
            fn image_size(&self) -> usize {
                <$model>::image_size(self)
            }
            fn embed_images(&self, pixel_values: &[f32], n: usize) -> Result<Vec<Vec<f32>>, ModelError> {
                <$model>::embed_images(self, pixel_values, n)
            }
            fn embed_ids(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, ModelError> {
                <$model>::embed_texts(self, ids)
            }
        }
    };
}

towers_of!(CandleClip, Family::OpenAiClip, |_: &CandleClip| Engine::Candle);
towers_of!(MobileClip, Family::MobileClip, MobileClip::engine);
towers_of!(Siglip, Family::Siglip, |_: &Siglip| Engine::Candle);
towers_of!(OursSiglip, Family::Siglip, |_: &OursSiglip| Engine::Ours);

/// MobileCLIP's FastViT-MCi image tower alone on this crate's kernels (the page's, which has no
/// text tower and no candle).
impl FamilyTowers for FastVit {
    fn family(&self) -> Family {
        Family::MobileClip
    }
    fn engine(&self) -> Engine {
        Engine::Ours
    }
    fn embedding_dim(&self) -> usize {
        FastVit::embedding_dim(self)
    }
    fn image_size(&self) -> usize {
        FastVit::image_size(self)
    }
    fn embed_images(&self, pixel_values: &[f32], n: usize) -> Result<Vec<Vec<f32>>, ModelError> {
        FastVit::embed_images(self, pixel_values, n)
    }
    fn embed_ids(&self, _: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, ModelError> {
        Err(ModelError::NoTextTower)
    }
}

impl Tokenize for ClipTokenizer {
    #[cfg(not(target_arch = "wasm32"))]
    fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, ModelError> {
        ClipTokenizer::encode_batch(self, texts)
    }
}

/// The SigLIP tokenizer where it exists (native builds), else a type with no values.
#[cfg(not(target_arch = "wasm32"))]
pub use crate::models::siglip::tokenizer::SiglipTokenizer;
#[cfg(target_arch = "wasm32")]
pub enum SiglipTokenizer {}

impl Tokenize for SiglipTokenizer {
    #[cfg(not(target_arch = "wasm32"))]
    fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, ModelError> {
        SiglipTokenizer::encode_batch(self, texts)
    }
}
