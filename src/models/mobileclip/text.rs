//! The text tower: open_clip's text transformer as candle-transformers'
//! `openclip::text_model` builds it (no causal mask: the MobileCLIP configs this engine takes
//! set `no_causal_mask`), pooled at the end-of-text token, then `x @ text_projection`. Its
//! shape comes from the config and is checked against the file.

use std::collections::BTreeSet;

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::openclip::text_model::{Config, OpenClipTextTransformer};

use super::config::TextSpec;
use super::tensors::{bad, Tensors};
use crate::error::ModelError;

const PREFIX: &str = "text";

/// The text tower and its projection into the shared embedding space.
pub struct TextTower {
    transformer: OpenClipTextTransformer,
    projection: Tensor,
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
        for n in [
            "attn.in_proj_weight",
            "attn.in_proj_bias",
            "attn.out_proj.weight",
            "attn.out_proj.bias",
            "ln_1.weight",
            "ln_1.bias",
            "ln_2.weight",
            "ln_2.bias",
            "mlp.c_fc.weight",
            "mlp.c_fc.bias",
            "mlp.c_proj.weight",
            "mlp.c_proj.bias",
        ] {
            names.insert(format!("{PREFIX}.transformer.resblocks.{layer}.{n}"));
        }
    }
    names
}

impl TextTower {
    pub fn build(spec: &TextSpec, embed_dim: usize, vb: VarBuilder) -> Result<Self, candle_core::Error> {
        let cfg = candle_config(spec, embed_dim);
        let vb = vb.pp(PREFIX);
        let transformer = OpenClipTextTransformer::new(vb.clone(), &cfg)?;
        let projection = vb.get((spec.width, embed_dim), "text_projection")?;
        Ok(Self { transformer, projection })
    }

    /// Embeddings of a batch of token ids `(n, context_length)`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor, candle_core::Error> {
        Module::forward(&self.transformer, ids)?.matmul(&self.projection)
    }
}
