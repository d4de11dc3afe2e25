//! The text tower: open_clip's text transformer pooled at the end-of-text token (the largest
//! id), then `x @ text_projection`. Its shape comes from the config and is checked against the
//! file. Without a causal mask (`no_causal_mask`: MobileCLIP-S1/S2, MobileCLIP2-S0/S2) it is
//! candle-transformers' `openclip::text_model`. That model has no mask, and candle-transformers'
//! causal CLIP text models do not fit (`clip::text_model` has quick-GELU only, and
//! `stable_diffusion::clip` only fixed presets): so the causal tower (MobileCLIP-B,
//! MobileCLIP2-B) is this module's, the same computation with open_clip's causal mask, built
//! from [`Block`], the block ViT-MCi's image tower uses.

use std::collections::BTreeSet;

use candle_core::{Device, IndexOp, Module, Tensor};
use candle_nn::{embedding, Embedding, LayerNorm, VarBuilder};
use candle_transformers::models::openclip::text_model::{Config, OpenClipTextTransformer};

use super::block::{Block, BlockShape, OPEN_CLIP};
use super::tensors::Linears;
use super::config::TextSpec;
use super::tensors::{bad, Tensors};
use crate::error::ModelError;

const PREFIX: &str = "text";
/// open_clip's LayerNorm (torch's default eps).
const LAYER_NORM_EPS: f64 = 1e-5;

/// The text tower and its projection into the shared embedding space.
pub struct TextTower {
    transformer: Transformer,
    projection: Tensor,
}

enum Transformer {
    /// Every position attends to every other (candle-transformers' model pools itself).
    Bidirectional(OpenClipTextTransformer),
    Causal(CausalTransformer),
}

/// open_clip's `TextTransformer` with its causal mask (`build_causal_mask`: -inf above the
/// diagonal), up to the final LayerNorm.
struct CausalTransformer {
    token_embedding: Embedding,
    positional_embedding: Tensor,
    blocks: Vec<Block>,
    ln_final: LayerNorm,
}

impl CausalTransformer {
    fn new(spec: &TextSpec, vb: VarBuilder) -> Result<Self, candle_core::Error> {
        let shape = BlockShape { width: spec.width, heads: spec.heads, mlp_hidden: spec.width * 4 };
        let blocks = (0..spec.layers)
            .map(|i| Block::new(shape, LAYER_NORM_EPS, &OPEN_CLIP, vb.pp(format!("transformer.resblocks.{i}")), &mut Linears::default()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            token_embedding: embedding(spec.vocab_size, spec.width, vb.pp("token_embedding"))?,
            positional_embedding: vb.get((spec.context_length, spec.width), "positional_embedding")?,
            blocks,
            ln_final: candle_nn::layer_norm(spec.width, LAYER_NORM_EPS, vb.pp("ln_final"))?,
        })
    }

    /// Each row's features at its end-of-text token, `(n, width)`.
    fn pooled(&self, ids: &Tensor) -> Result<Tensor, candle_core::Error> {
        let (n, len) = ids.dims2()?;
        let mask: Vec<f32> = (0..len).flat_map(|i| (0..len).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 })).collect();
        let mask = Tensor::from_vec(mask, (len, len), &Device::Cpu)?;
        let mut x = ids.apply(&self.token_embedding)?.broadcast_add(&self.positional_embedding.narrow(0, 0, len)?)?;
        for block in &self.blocks {
            x = block.forward(&x, Some(&mask))?;
        }
        let x = x.apply(&self.ln_final)?;
        let rows = ids.to_vec2::<u32>()?;
        let pooled = (0..n).map(|row| x.i((row, end_of_text(&rows[row])))).collect::<Result<Vec<_>, _>>()?;
        Tensor::stack(&pooled, 0)
    }
}

/// Where open_clip pools a row: the first position of its largest id (torch's `argmax`), the
/// end-of-text token of CLIP's tokenizer.
fn end_of_text(row: &[u32]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, &id)| if id > row[best] { i } else { best })
}

/// candle's config for a text tower of `spec`'s shape projecting to `embed_dim`.
fn candle_config(spec: &TextSpec, embed_dim: usize) -> Config {
    Config {
        vocab_size: spec.vocab_size,
        embed_dim: spec.width,
        intermediate_size: spec.width * 4,
        max_position_embeddings: spec.context_length,
        pad_with: None,
        num_hidden_layers: spec.layers,
        num_attention_heads: spec.heads,
        projection_dim: embed_dim,
    }
}

/// Refuses a file whose text tower has more layers than the config says (the names check
/// catches fewer).
pub fn check_depth(t: &Tensors, spec: &TextSpec) -> Result<(), ModelError> {
    let extra = format!("{PREFIX}.transformer.resblocks.{}.ln_1.weight", spec.layers);
    if t.dims(&extra).is_ok() {
        return Err(bad(format!("tensor {extra} exists but text_cfg.layers is {}", spec.layers)));
    }
    Ok(())
}

/// Every tensor name the text tower has in an open_clip checkpoint.
pub fn tensor_names(spec: &TextSpec) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = [
        "token_embedding.weight",
        "positional_embedding",
        "ln_final.weight",
        "ln_final.bias",
        "text_projection",
    ]
    .iter()
    .map(|n| format!("{PREFIX}.{n}"))
    .collect();
    for layer in 0..spec.layers {
        names.extend(OPEN_CLIP.tensors(&format!("{PREFIX}.transformer.resblocks.{layer}")));
    }
    names
}

impl TextTower {
    pub fn build(spec: &TextSpec, embed_dim: usize, vb: VarBuilder) -> Result<Self, candle_core::Error> {
        let vb = vb.pp(PREFIX);
        let transformer = if spec.causal {
            Transformer::Causal(CausalTransformer::new(spec, vb.clone())?)
        } else {
            Transformer::Bidirectional(OpenClipTextTransformer::new(vb.clone(), &candle_config(spec, embed_dim))?)
        };
        let projection = vb.get((spec.width, embed_dim), "text_projection")?;
        Ok(Self { transformer, projection })
    }

    /// Embeddings of a batch of token ids `(n, context_length)`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor, candle_core::Error> {
        let pooled = match &self.transformer {
            Transformer::Bidirectional(t) => Module::forward(t, ids)?,
            Transformer::Causal(t) => t.pooled(ids)?,
        };
        pooled.matmul(&self.projection)
    }
}
