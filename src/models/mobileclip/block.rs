//! One pre-norm transformer block on candle-nn (LayerNorm, fused q/k/v projection, softmax
//! attention with an optional additive mask, LayerNorm, MLP with exact GELU), as timm's ViT
//! `Block` and open_clip's `ResidualAttentionBlock` both compute it. The two name their tensors
//! differently ([`BlockNames`]); ViT-MCi's image tower uses timm's, the causal text tower
//! open_clip's with its causal mask. The linear layers hold an int8 file's weights as int8
//! ([`CandleLinear`], taken from [`Linears`]); the softmax is this crate's
//! ([`candle_ops::softmax_last_dim`]).

use candle_core::{Module, Result, Tensor};
use candle_nn::{layer_norm, LayerNorm, LayerNormConfig, VarBuilder};

use super::tensors::Linears;
use crate::kernels::candle_ops;
use crate::models::candle_linear::CandleLinear;

/// Where a block's tensors are, relative to the block.
pub struct BlockNames {
    pub norm1: &'static str,
    /// The fused q/k/v projection's weight `(3 * width, width)` and bias `(3 * width)`.
    pub qkv_weight: &'static str,
    pub qkv_bias: &'static str,
    /// The attention's output projection (a linear layer).
    pub proj: &'static str,
    pub norm2: &'static str,
    pub fc1: &'static str,
    pub fc2: &'static str,
}

impl BlockNames {
    /// Every tensor name of a block at `prefix`.
    pub fn tensors(&self, prefix: &str) -> Vec<String> {
        let mut names = vec![format!("{prefix}.{}", self.qkv_weight), format!("{prefix}.{}", self.qkv_bias)];
        for layer in [self.norm1, self.proj, self.norm2, self.fc1, self.fc2] {
            names.push(format!("{prefix}.{layer}.weight"));
            names.push(format!("{prefix}.{layer}.bias"));
        }
        names
    }
}

/// timm's `Block` (vision_transformer.py).
pub const TIMM: BlockNames = BlockNames {
    norm1: "norm1",
    qkv_weight: "attn.qkv.weight",
    qkv_bias: "attn.qkv.bias",
    proj: "attn.proj",
    norm2: "norm2",
    fc1: "mlp.fc1",
    fc2: "mlp.fc2",
};

/// open_clip's `ResidualAttentionBlock` (`nn.MultiheadAttention` inside).
pub const OPEN_CLIP: BlockNames = BlockNames {
    norm1: "ln_1",
    qkv_weight: "attn.in_proj_weight",
    qkv_bias: "attn.in_proj_bias",
    proj: "attn.out_proj",
    norm2: "ln_2",
    fc1: "mlp.c_fc",
    fc2: "mlp.c_proj",
};

/// A block's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockShape {
    pub width: usize,
    pub heads: usize,
    pub mlp_hidden: usize,
}

pub struct Block {
    norm1: LayerNorm,
    qkv: CandleLinear,
    proj: CandleLinear,
    norm2: LayerNorm,
    fc1: CandleLinear,
    fc2: CandleLinear,
    heads: usize,
    scale: f64,
}

impl Block {
    pub fn new(shape: BlockShape, eps: f64, names: &BlockNames, vb: VarBuilder, linears: &mut Linears) -> Result<Self> {
        let BlockShape { width, heads, mlp_hidden } = shape;
        let norm = |name| layer_norm(width, LayerNormConfig { eps, ..Default::default() }, vb.pp(name));
        let qkv = linears.linear(&vb, names.qkv_weight, Some(names.qkv_bias), (3 * width, width))?;
        let mut linear = |name, outputs, inputs| linears.linear(&vb.pp(name), "weight", Some("bias"), (outputs, inputs));
        Ok(Self {
            norm1: norm(names.norm1)?,
            qkv,
            proj: linear(names.proj, width, width)?,
            norm2: norm(names.norm2)?,
            fc1: linear(names.fc1, mlp_hidden, width)?,
            fc2: linear(names.fc2, width, mlp_hidden)?,
            heads,
            scale: ((width / heads) as f64).powf(-0.5),
        })
    }

    /// `x` `(batch, tokens, width)`; `mask` `(tokens, tokens)`, added to the attention logits.
    /// Its linear layers that compute on int8 values.
    pub fn quantised_layers(&self) -> usize {
        [&self.qkv, &self.proj, &self.fc1, &self.fc2].iter().filter(|l| l.is_quantised()).count()
    }

    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let x = (x + self.attention(&x.apply(&self.norm1)?, mask)?)?;
        let mlp = candle_ops::gelu_erf(&x.apply(&self.norm2)?.apply(&self.fc1)?)?.apply(&self.fc2)?;
        x + mlp
    }

    fn attention(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (batch, tokens, width) = x.dims3()?;
        let qkv = self
            .qkv
            .forward(x)?
            .reshape((batch, tokens, 3, self.heads, width / self.heads))?
            .permute((2, 0, 3, 1, 4))?;
        let q = (qkv.get(0)? * self.scale)?.contiguous()?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let mut logits = candle_ops::matmul(&q, &k.t()?)?;
        if let Some(mask) = mask {
            logits = logits.broadcast_add(mask)?;
        }
        let weights = candle_ops::softmax_last_dim(&logits)?;
        candle_ops::matmul(&weights, &v)?.transpose(1, 2)?.reshape((batch, tokens, width))?.apply(&self.proj)
    }
}
