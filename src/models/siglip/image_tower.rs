//! SigLIP's image tower on this crate's kernels ([`crate::kernels`]), sharing OpenAI CLIP's
//! encoder ([`crate::models::clip::encoder`]): the same function as transformers'
//! `SiglipVisionTransformer` with its head, i.e. `get_image_features`. What differs from CLIP:
//! the patch embedding has a bias, the position embeddings have no class token, there is no
//! layer norm before the encoder, the MLPs' GELU is the tanh approximation (or the exact one) and
//! the norms' epsilon the config's, and the pooled embedding is the attention-pooling head's
//! (a learned probe attending over the normalised patches, then a layer norm and an MLP with a
//! residual, [`Encoder::pool`]), with no projection after it.
//!
//! Weights are packed tensor by tensor while they arrive ([`ImageTowerBuilder`]): int8 (or 4-bit)
//! weights stay int8, float ones become f32, and the packed tower is the only copy kept.

use candle_transformers::models::siglip::VisionConfig;

use crate::error::ModelError;
use crate::kernels::math::add_assign;
use crate::models::clip::encoder::{
    Activation, Encoder, Expected, Linear, Mask, Norm, Precision, TensorValues, LAYER_LINEARS,
};
use crate::models::clip::vision::patch_rows;

const LAYERS_PREFIX: &str = "vision_model.encoder.layers.";
const HEAD_PREFIX: &str = "vision_model.head.";

/// Whether `name` is the weight of one of the tower's linear layers (these may be stored int8 or
/// 4-bit): the patch embedding, the encoder layers' six, the head's attention and MLP.
pub fn is_linear_weight(name: &str) -> bool {
    match name.strip_prefix(LAYERS_PREFIX) {
        Some(rest) => LAYER_LINEARS.iter().any(|m| rest.strip_suffix(".weight").is_some_and(|n| n.ends_with(m))),
        None => matches!(
            name,
            "vision_model.embeddings.patch_embedding.weight"
                | "vision_model.head.attention.in_proj_weight"
                | "vision_model.head.attention.out_proj.weight"
                | "vision_model.head.mlp.fc1.weight"
                | "vision_model.head.mlp.fc2.weight"
        ),
    }
}

/// The loaded image tower.
pub struct ImageTower {
    image_size: usize,
    channels: usize,
    patch: usize,
    precision: Precision,
    /// The stride-`patch` convolution (with its bias), as a product over flattened patches.
    patch_embedding: Linear,
    position_embedding: Vec<f32>,
    encoder: Encoder,
    post_norm: Norm,
    probe: Vec<f32>,
    /// The attention-pooling head as a one-layer encoder ([`Encoder::pool`]).
    head: Encoder,
}

/// An [`ImageTower`] being filled tensor by tensor, in any order.
pub struct ImageTowerBuilder {
    tower: ImageTower,
    expected: Expected,
}

/// The encoders' activation for the config's `hidden_act` (the config refuses any other).
fn activation(act: candle_nn::Activation) -> Result<Activation, ModelError> {
    match act {
        candle_nn::Activation::GeluPytorchTanh => Ok(Activation::GeluTanh),
        candle_nn::Activation::Gelu => Ok(Activation::GeluErf),
        other => Err(ModelError::UnsupportedModel(format!("vision_config.hidden_act {other:?} is not run"))),
    }
}

impl ImageTowerBuilder {
    /// A tower of `cfg`'s shape with every weight zero; `expected` lists the tensor names that must
    /// arrive before [`Self::finish`].
    pub fn new(
        cfg: &VisionConfig,
        precision: Precision,
        expected: impl IntoIterator<Item = String>,
    ) -> Result<Self, ModelError> {
        let (h, p, c, inter) = (cfg.hidden_size, cfg.patch_size, cfg.num_channels, cfg.intermediate_size);
        let (act, eps) = (activation(cfg.hidden_act)?, cfg.layer_norm_eps as f32);
        let encoder = |depth| {
            Encoder::zeros(precision, depth, h, cfg.num_attention_heads, inter, Mask::None)
                .with_activation(act)
                .with_norm_eps(eps)
        };
        Ok(Self {
            tower: ImageTower {
                image_size: cfg.image_size,
                channels: c,
                patch: p,
                precision,
                patch_embedding: Linear::zeros(precision, h, c * p * p, true),
                position_embedding: vec![0.0; cfg.num_patches() * h],
                encoder: encoder(cfg.num_hidden_layers),
                post_norm: Norm::zeros(h).with_eps(eps),
                probe: vec![0.0; h],
                head: encoder(1),
            },
            expected: Expected::new(expected),
        })
    }

    /// Whether `name` is one of the tower's tensors still to come.
    pub fn wants(&self, name: &str) -> bool {
        self.expected.wants(name)
    }

    /// Puts one tensor (shape already checked against the config) in its place. Only linear
    /// layers' weights may be int8 ([`is_linear_weight`]).
    pub fn put(&mut self, name: &str, tensor: TensorValues) -> Result<(), ModelError> {
        self.expected.arrived(name)?;
        let t = &mut self.tower;
        if let Some(rest) = name.strip_prefix(LAYERS_PREFIX) {
            return t.encoder.put(rest, tensor);
        }
        if let Some(rest) = name.strip_prefix(HEAD_PREFIX).filter(|r| *r != "probe") {
            return put_head(&mut t.head, rest, tensor);
        }
        let unknown = || ModelError::WeightsMismatch(format!("{name} is not an image tower tensor"));
        if name == "vision_model.embeddings.patch_embedding.weight" {
            return t.patch_embedding.set_rows(0, &tensor, 1.0);
        }
        let TensorValues::F32(values) = tensor else {
            return Err(ModelError::Weights(format!("{name} is int8; only linear layers' weights may be")));
        };
        let dst = match name {
            "vision_model.embeddings.patch_embedding.bias" => {
                t.patch_embedding.set_bias(0, values, 1.0);
                return Ok(());
            }
            "vision_model.embeddings.position_embedding.weight" => &mut t.position_embedding,
            "vision_model.head.probe" => &mut t.probe,
            _ => {
                let what = name.strip_prefix("vision_model.post_layernorm.").ok_or_else(unknown)?;
                t.post_norm.part(what).ok_or_else(unknown)?
            }
        };
        dst.copy_from_slice(values);
        Ok(())
    }

    /// The tower, once every expected tensor has arrived.
    pub fn finish(self) -> Result<ImageTower, ModelError> {
        self.expected.check_complete()?;
        Ok(self.tower)
    }
}

/// Puts a head tensor (named as after `vision_model.head.`) into the one-layer encoder holding
/// it, under the names of an encoder layer: `nn.MultiheadAttention`'s packed q|k|v projection
/// split into its three, the layer norm as the layer's second (before the MLP).
fn put_head(head: &mut Encoder, name: &str, tensor: TensorValues) -> Result<(), ModelError> {
    let in_proj = match name {
        "attention.in_proj_weight" => "weight",
        "attention.in_proj_bias" => "bias",
        _ => {
            let renamed = if let Some(rest) = name.strip_prefix("attention.") {
                format!("0.self_attn.{rest}")
            } else if let Some(rest) = name.strip_prefix("layernorm.") {
                format!("0.layer_norm2.{rest}")
            } else {
                format!("0.{name}")
            };
            return head.put(&renamed, tensor);
        }
    };
    let h = head.hidden();
    for (i, proj) in ["q_proj", "k_proj", "v_proj"].into_iter().enumerate() {
        let part = match &tensor {
            TensorValues::F32(v) if in_proj == "weight" => TensorValues::F32(&v[i * h * h..(i + 1) * h * h]),
            TensorValues::F32(v) => TensorValues::F32(&v[i * h..(i + 1) * h]),
            TensorValues::Int8 { values, scales } => {
                TensorValues::Int8 { values: &values[i * h * h..(i + 1) * h * h], scales: &scales[i * h..(i + 1) * h] }
            }
        };
        head.put(&format!("0.self_attn.{proj}.{in_proj}"), part)?;
    }
    Ok(())
}

impl ImageTower {
    pub fn image_size(&self) -> usize {
        self.image_size
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Width of the embedding (the tower's).
    pub fn hidden(&self) -> usize {
        self.encoder.hidden()
    }

    /// Bytes of weights held.
    pub fn weight_bytes(&self) -> usize {
        self.encoder.bytes()
            + self.head.bytes()
            + self.patch_embedding.bytes()
            + (self.position_embedding.len() + self.probe.len()) * 4
            + self.post_norm.bytes()
    }

    /// Raw image embeddings (`get_image_features`) of `n` CHW images laid out one after another.
    pub fn embed(&self, pixel_values: &[f32], n: usize) -> Result<Vec<Vec<f32>>, ModelError> {
        let (s, c, p, h) = (self.image_size, self.channels, self.patch, self.hidden());
        if pixel_values.len() != n * c * s * s {
            return Err(ModelError::InputSize(format!("expected {n} images of {c}x{s}x{s} values")));
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let t = (s / p).pow(2);
        let mut x = vec![0.0f32; n * t * h];
        self.patch_embedding.forward(&patch_rows(pixel_values, n, c, s, p), n * t, &mut x);
        for image in x.chunks_exact_mut(t * h) {
            add_assign(image, &self.position_embedding);
        }
        let lens = vec![t; n];
        self.encoder.forward(&mut x, &lens);
        let mut normed = vec![0.0f32; n * t * h];
        self.post_norm.apply(&x, &mut normed);
        let pooled = self.head.pool(&self.probe, &normed, &lens);
        Ok(pooled.chunks_exact(h).map(<[f32]>::to_vec).collect())
    }
}
