//! OpenAI CLIP's vision transformer and visual projection (transformers' `CLIPVisionModel` and
//! `get_image_features`) built from candle and candle-nn pieces: layer norms, multi-head
//! attention, the quick-GELU MLP, and linear layers ([`CandleLinear`]) that hold an int8
//! bundle's weights once, as int8 run by a candle operation, or a float bundle's in f32. The patch
//! embedding, a convolution whose stride is its kernel, is the same product on each patch's
//! pixels, so it is a linear layer too. candle-transformers' `ClipVisionTransformer` holds every
//! weight in f32; it is the reference of the engine's tests (tests/integration/engines.rs).

use std::collections::HashMap;

use candle_core::{IndexOp, Module, Result, Tensor};
use candle_nn::LayerNorm;
use candle_transformers::models::clip::text_model::Activation;

use crate::kernels::candle_ops;
use crate::models::candle_linear::{CandleLinear, Weight};
use crate::models::config::ModelConfig;

/// transformers' CLIP layer norm epsilon.
const LAYER_NORM_EPS: f64 = 1e-5;

/// One encoder layer.
struct Layer {
    layer_norm1: LayerNorm,
    q_proj: CandleLinear,
    k_proj: CandleLinear,
    v_proj: CandleLinear,
    out_proj: CandleLinear,
    layer_norm2: LayerNorm,
    fc1: CandleLinear,
    fc2: CandleLinear,
}

/// The image tower.
pub struct CandleVision {
    channels: usize,
    image_size: usize,
    patch_size: usize,
    heads: usize,
    patch_embedding: CandleLinear,
    /// `1 x 1 x hidden`.
    class_embedding: Tensor,
    /// `positions x hidden`.
    position_embedding: Tensor,
    pre_layrnorm: LayerNorm,
    layers: Vec<Layer>,
    post_layernorm: LayerNorm,
    visual_projection: CandleLinear,
}

/// The loaded weights, taken by name as the tower is built.
struct Weights(HashMap<String, Weight>);

impl Weights {
    fn take(&mut self, name: &str) -> Result<Weight> {
        self.0
            .remove(name)
            .ok_or_else(|| candle_core::Error::Msg(format!("{name} was not loaded")))
    }

    fn float(&mut self, name: &str) -> Result<Tensor> {
        match self.take(name)? {
            Weight::Float(t) => Ok(t),
            Weight::Quantised(_) => {
                candle_core::bail!("{name} is quantised; only linear weights may be")
            }
        }
    }

    fn linear(&mut self, prefix: &str, bias: bool) -> Result<CandleLinear> {
        let bias = if bias {
            Some(self.float(&format!("{prefix}.bias"))?)
        } else {
            None
        };
        CandleLinear::new(self.take(&format!("{prefix}.weight"))?, bias)
    }

    fn layer_norm(&mut self, prefix: &str) -> Result<LayerNorm> {
        Ok(LayerNorm::new(
            self.float(&format!("{prefix}.weight"))?,
            self.float(&format!("{prefix}.bias"))?,
            LAYER_NORM_EPS,
        ))
    }
}

impl Layer {
    fn new(w: &mut Weights, prefix: &str) -> Result<Self> {
        Ok(Self {
            layer_norm1: w.layer_norm(&format!("{prefix}.layer_norm1"))?,
            q_proj: w.linear(&format!("{prefix}.self_attn.q_proj"), true)?,
            k_proj: w.linear(&format!("{prefix}.self_attn.k_proj"), true)?,
            v_proj: w.linear(&format!("{prefix}.self_attn.v_proj"), true)?,
            out_proj: w.linear(&format!("{prefix}.self_attn.out_proj"), true)?,
            layer_norm2: w.layer_norm(&format!("{prefix}.layer_norm2"))?,
            fc1: w.linear(&format!("{prefix}.mlp.fc1"), true)?,
            fc2: w.linear(&format!("{prefix}.mlp.fc2"), true)?,
        })
    }

    /// `x` (`batch x tokens x hidden`) through attention and the MLP, each added to its input.
    fn forward(&self, x: &Tensor, heads: usize) -> Result<Tensor> {
        let (batch, tokens, hidden) = x.dims3()?;
        let head_dim = hidden / heads;
        let split = |t: Tensor| {
            t.reshape((batch, tokens, heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let y = self.layer_norm1.forward(x)?;
        let q = split((self.q_proj.forward(&y)? * (head_dim as f64).powf(-0.5))?)?;
        let k = split(self.k_proj.forward(&y)?)?;
        let v = split(self.v_proj.forward(&y)?)?;
        let weights = candle_ops::softmax_last_dim(&candle_ops::matmul(&q, &k.t()?)?)?;
        let attended = candle_ops::matmul(&weights, &v)?
            .transpose(1, 2)?
            .reshape((batch, tokens, hidden))?;
        let x = (x + self.out_proj.forward(&attended)?)?;
        let y = self.fc1.forward(&self.layer_norm2.forward(&x)?)?;
        x + self.fc2.forward(&Activation::QuickGelu.forward(&y)?)?
    }
}

impl CandleVision {
    /// The tower of `config` from its weights by transformers' names (shapes checked before).
    pub fn new(config: &ModelConfig, weights: HashMap<String, Weight>) -> Result<Self> {
        let v = &config.vision;
        let mut w = Weights(weights);
        let layers = (0..v.num_hidden_layers)
            .map(|l| Layer::new(&mut w, &format!("vision_model.encoder.layers.{l}")))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            channels: v.num_channels,
            image_size: v.image_size,
            patch_size: v.patch_size,
            heads: v.num_attention_heads,
            patch_embedding: w.linear("vision_model.embeddings.patch_embedding", false)?,
            class_embedding: w
                .float("vision_model.embeddings.class_embedding")?
                .reshape((1, 1, v.embed_dim))?,
            position_embedding: w.float("vision_model.embeddings.position_embedding.weight")?,
            pre_layrnorm: w.layer_norm("vision_model.pre_layrnorm")?,
            layers,
            post_layernorm: w.layer_norm("vision_model.post_layernorm")?,
            visual_projection: w.linear("visual_projection", false)?,
        })
    }

    /// Linear layers computing on int8 values (all of them for an int8 bundle).
    pub fn quantised_layers(&self) -> usize {
        let per_layer = |l: &Layer| {
            [&l.q_proj, &l.k_proj, &l.v_proj, &l.out_proj, &l.fc1, &l.fc2]
                .iter()
                .filter(|p| p.is_quantised())
                .count()
        };
        let ends = [&self.patch_embedding, &self.visual_projection]
            .iter()
            .filter(|p| p.is_quantised())
            .count();
        ends + self.layers.iter().map(per_layer).sum::<usize>()
    }

    /// `get_image_features` of `pixels` (`batch x channels x side x side`).
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let (batch, channels, p) = (pixels.dim(0)?, self.channels, self.patch_size);
        let grid = self.image_size / p;
        // Each patch's pixels in the kernel's order (channel, row, column), as the convolution
        // (stride = kernel, no padding; pixels past the last whole patch unused) reads them.
        let side = grid * p;
        let pixels = pixels.narrow(2, 0, side)?.narrow(3, 0, side)?;
        let patches = pixels
            .reshape((batch, channels, grid, p, grid, p))?
            .permute(vec![0, 2, 4, 1, 3, 5])?
            .reshape((batch, grid * grid, channels * p * p))?;
        let patches = self.patch_embedding.forward(&patches)?;
        let hidden = patches.dim(2)?;
        let class = self.class_embedding.broadcast_as((batch, 1, hidden))?;
        let tokens =
            Tensor::cat(&[&class, &patches], 1)?.broadcast_add(&self.position_embedding)?;
        let mut x = self.pre_layrnorm.forward(&tokens)?;
        for layer in &self.layers {
            x = layer.forward(&x, self.heads)?;
        }
        let pooled = self.post_layernorm.forward(&x.i((.., 0, ..))?)?;
        self.visual_projection.forward(&pooled)
    }
}
