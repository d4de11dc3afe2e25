//! timm's `vit_base_mci_224`, the image tower of MobileCLIP-B and MobileCLIP2-B, on candle-nn
//! (candle-transformers has no model for it): a convolutional stem (4x4 stride 4 without bias,
//! BatchNorm, exact GELU; 2x2 stride 2 without bias, BatchNorm, GELU; 2x2 stride 2 with bias)
//! turns a 224 x 224 image into 14 x 14 patch tokens; the position embedding is added to the
//! patches before the class token is put in front (`no_embed_class`); then pre-norm transformer
//! blocks ([`Block`], LayerNorm eps 1e-6), the final LayerNorm, the class token (`timm_pool:
//! token`) and the head, a linear layer into the embedding space. Tensor names are open_clip's
//! (`visual.trunk.*`, timm's inside). Its shape comes from the file: timm's own name must have
//! the published one (width 768, 12 blocks, 12 heads, stem 192 wide); narrower models of the kind
//! are read as they are, with 64-wide attention heads as ViT-B's. An int8 or 4-bit file's linear
//! weights (the blocks' and the head's) are held as int8 and computed on as such ([`Linears`]).

use std::collections::BTreeSet;

use candle_core::{Module, ModuleT, Tensor};
use candle_nn::{batch_norm, conv2d, conv2d_no_bias, BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, LayerNorm, VarBuilder};

use super::block::{Block, BlockShape, TIMM};
use super::config::VisionSpec;
use super::tensors::{bad, Linears, Tensors};
use crate::kernels::candle_ops;
use crate::models::candle_linear::CandleLinear;
use crate::error::ModelError;

const PREFIX: &str = "visual.trunk";
const STEM: &str = "visual.trunk.patch_embed.backbone";
/// The stem's kernels and strides (each convolution's stride is its kernel).
const STEM_KERNELS: [usize; 3] = [4, 2, 2];
/// Pixels per patch token: the stem's strides multiplied.
const PATCH: usize = 16;
const HEAD_WIDTH: usize = 64;
const LAYER_NORM_EPS: f64 = 1e-6;
const BATCH_NORM_EPS: f64 = 1e-5;

/// The tower's shape as read from the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VitMciShape {
    /// Output channels of the stem's first two convolutions.
    pub stem_widths: [usize; 2],
    pub block: BlockShape,
    pub depth: usize,
    /// Patch tokens per side (image side / 16).
    pub grid: usize,
    pub embed_dim: usize,
}

impl VitMciShape {
    /// Reads the shape from the tensors (and the image size from the config).
    pub fn infer(t: &Tensors, spec: &VisionSpec) -> Result<Self, ModelError> {
        let side = spec.image_size as usize;
        if side % PATCH != 0 {
            return Err(bad(format!("vision_cfg.image_size {side} is not a multiple of {PATCH}, ViT-MCi's patch")));
        }
        let width = t.dim(&format!("{PREFIX}.cls_token"), 3, 2)?;
        let stem_widths = [t.dim(&format!("{STEM}.0.conv.weight"), 4, 0)?, t.dim(&format!("{STEM}.1.conv.weight"), 4, 0)?];
        let mlp_hidden = t.dim(&format!("{PREFIX}.blocks.0.mlp.fc1.bias"), 1, 0)?;
        let blocks = format!("{PREFIX}.blocks.");
        let depth = t
            .names()
            .filter_map(|n| n.strip_prefix(&blocks)?.split('.').next()?.parse::<usize>().ok())
            .max()
            .map_or(0, |last| last + 1);
        if width % HEAD_WIDTH != 0 {
            return Err(bad(format!("the image tower is {width} wide, not a multiple of {HEAD_WIDTH} (ViT-MCi's head width)")));
        }
        let shape = Self {
            stem_widths,
            block: BlockShape { width, heads: width / HEAD_WIDTH, mlp_hidden },
            depth,
            grid: side / PATCH,
            embed_dim: t.dim(&format!("{PREFIX}.head.weight"), 2, 0)?,
        };
        let published = ([192, 192], BlockShape { width: 768, heads: 12, mlp_hidden: 3072 }, 12);
        if spec.published_shape && (shape.stem_widths, shape.block, shape.depth) != published {
            return Err(bad(format!(
                "{} has stem widths {:?}, width {}, MLP {} and {} blocks; the file has {:?}, {}, {} and {}",
                spec.timm_model_name, published.0, published.1.width, published.1.mlp_hidden, published.2,
                shape.stem_widths, width, mlp_hidden, depth
            )));
        }
        Ok(shape)
    }

    /// Every tensor name this tower has in an open_clip checkpoint.
    pub fn tensor_names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = ["cls_token", "pos_embed", "norm.weight", "norm.bias", "head.weight", "head.bias"]
            .iter()
            .map(|n| format!("{PREFIX}.{n}"))
            .collect();
        for conv in 0..2 {
            names.insert(format!("{STEM}.{conv}.conv.weight"));
            for n in ["weight", "bias", "running_mean", "running_var"] {
                names.insert(format!("{STEM}.{conv}.bn.{n}"));
            }
        }
        names.insert(format!("{STEM}.2.conv.weight"));
        names.insert(format!("{STEM}.2.conv.bias"));
        for block in 0..self.depth {
            names.extend(TIMM.tensors(&format!("{PREFIX}.blocks.{block}")));
        }
        names
    }
}

/// The tower, `images (n, 3, side, side) -> embeddings (n, embed_dim)`.
pub struct VitMci {
    stem: [(Conv2d, Option<BatchNorm>); 3],
    cls_token: Tensor,
    pos_embed: Tensor,
    blocks: Vec<Block>,
    norm: LayerNorm,
    head: CandleLinear,
}

impl VitMci {
    pub fn new(shape: &VitMciShape, vb: VarBuilder, linears: &mut Linears) -> candle_core::Result<Self> {
        let vb = vb.pp(PREFIX);
        let stem_vb = vb.pp("patch_embed.backbone");
        let width = shape.block.width;
        let [w0, w1] = shape.stem_widths;
        let conv_cfg = |k: usize| Conv2dConfig { stride: k, ..Default::default() };
        let bn_cfg = BatchNormConfig { eps: BATCH_NORM_EPS, ..Default::default() };
        let [k0, k1, k2] = STEM_KERNELS;
        let stem = [
            (conv2d_no_bias(3, w0, k0, conv_cfg(k0), stem_vb.pp("0.conv"))?, Some(batch_norm(w0, bn_cfg, stem_vb.pp("0.bn"))?)),
            (conv2d_no_bias(w0, w1, k1, conv_cfg(k1), stem_vb.pp("1.conv"))?, Some(batch_norm(w1, bn_cfg, stem_vb.pp("1.bn"))?)),
            (conv2d(w1, width, k2, conv_cfg(k2), stem_vb.pp("2.conv"))?, None),
        ];
        let blocks = (0..shape.depth)
            .map(|i| Block::new(shape.block, LAYER_NORM_EPS, &TIMM, vb.pp(format!("blocks.{i}")), linears))
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            stem,
            cls_token: vb.get((1, 1, width), "cls_token")?,
            pos_embed: vb.get((1, shape.grid * shape.grid, width), "pos_embed")?,
            blocks,
            norm: candle_nn::layer_norm(width, LAYER_NORM_EPS, vb.pp("norm"))?,
            head: linears.linear(&vb.pp("head"), "weight", Some("bias"), (shape.embed_dim, width))?,
        })
    }

    /// Linear layers computing on int8 values (all of them for an int8 or 4-bit file).
    pub fn quantised_layers(&self) -> usize {
        self.blocks.iter().map(Block::quantised_layers).sum::<usize>() + usize::from(self.head.is_quantised())
    }
}

/// A stem convolution on this crate's dense convolution ([`candle_ops::conv2d`]), its bias added.
fn stem_conv(x: &Tensor, conv: &Conv2d) -> candle_core::Result<Tensor> {
    let y = candle_ops::conv2d(x, conv.weight(), *conv.config())?;
    match conv.bias() {
        Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
        None => Ok(y),
    }
}

impl Module for VitMci {
    fn forward(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = images.clone();
        for (conv, bn) in &self.stem {
            x = stem_conv(&x, conv)?;
            if let Some(bn) = bn {
                x = candle_ops::gelu_erf(&bn.forward_t(&x, false)?)?;
            }
        }
        // (n, width, grid, grid) -> (n, grid * grid, width), position added before the class token.
        let patches = x.flatten_from(2)?.transpose(1, 2)?.broadcast_add(&self.pos_embed)?;
        let n = patches.dim(0)?;
        let cls = self.cls_token.broadcast_as((n, 1, self.cls_token.dim(2)?))?;
        let mut x = Tensor::cat(&[&cls, &patches], 1)?;
        for block in &self.blocks {
            x = block.forward(&x, None)?;
        }
        x.apply(&self.norm)?.narrow(1, 0, 1)?.squeeze(1)?.apply(&self.head)
    }
}
