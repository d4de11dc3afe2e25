//! The CLIP vision encoder (ViT + visual projection), run with this crate's own kernels
//! ([`crate::kernels`]): the same function as `transformers`' `CLIPVisionModel` followed by
//! `visual_projection`, i.e. `get_image_features`.
//!
//! Weights are converted to f32 and packed tensor by tensor while loading
//! ([`VisionEncoderBuilder`]), so the packed model is the only full copy this module makes.

use crate::models::config::VisionConfig;

use crate::models::clip::encoder::{Encoder, Expected, Linear, Mask, Norm, LAYER_LINEARS};
pub use crate::models::clip::encoder::{Precision, TensorValues};
use crate::error::ModelError;
use crate::kernels::math::add_assign;

/// Whether `name` is the weight of a linear layer (these may be stored as int8).
pub fn is_linear_weight(name: &str) -> bool {
    name == "vision_model.embeddings.patch_embedding.weight"
        || name == "visual_projection.weight"
        || (name.starts_with("vision_model.encoder.layers.")
            && LAYER_LINEARS.iter().any(|m| name.strip_suffix(".weight").is_some_and(|n| n.ends_with(m))))
}


const LAYERS_PREFIX: &str = "vision_model.encoder.layers.";

/// The loaded vision encoder.
pub struct VisionEncoder {
    image_size: usize,
    channels: usize,
    patch: usize,
    precision: Precision,
    /// The stride-`patch` convolution, as a product over flattened (channel, row, column) patches.
    patch_embedding: Linear,
    class_embedding: Vec<f32>,
    position_embedding: Vec<f32>,
    pre_norm: Norm,
    encoder: Encoder,
    post_norm: Norm,
    projection: Linear,
}

/// A [`VisionEncoder`] being filled tensor by tensor, in any order.
pub struct VisionEncoderBuilder {
    encoder: VisionEncoder,
    expected: Expected,
}

impl VisionEncoderBuilder {
    /// An encoder of `cfg`'s shape with every weight zero; `expected` lists the tensor names
    /// that must arrive before [`Self::finish`].
    pub fn new(
        cfg: &VisionConfig,
        projection_dim: usize,
        precision: Precision,
        expected: impl IntoIterator<Item = String>,
    ) -> Self {
        let (h, p, c) = (cfg.embed_dim, cfg.patch_size, cfg.num_channels);
        let tokens = (cfg.image_size / p).pow(2) + 1;
        Self {
            encoder: VisionEncoder {
                image_size: cfg.image_size,
                channels: c,
                patch: p,
                precision,
                patch_embedding: Linear::zeros(precision, h, c * p * p, false),
                class_embedding: vec![0.0; h],
                position_embedding: vec![0.0; tokens * h],
                pre_norm: Norm::zeros(h),
                encoder: Encoder::zeros(
                    precision,
                    cfg.num_hidden_layers,
                    h,
                    cfg.num_attention_heads,
                    cfg.intermediate_size,
                    Mask::None,
                ),
                post_norm: Norm::zeros(h),
                projection: Linear::zeros(precision, projection_dim, h, false),
            },
            expected: Expected::new(expected),
        }
    }

    /// Whether `name` is one of the encoder's tensors still to come.
    pub fn wants(&self, name: &str) -> bool {
        self.expected.wants(name)
    }

    /// Puts one tensor (shape already checked against the config) in its place. Only linear
    /// layers' weights may be int8 ([`is_linear_weight`]).
    pub fn put(&mut self, name: &str, tensor: TensorValues) -> Result<(), ModelError> {
        self.expected.arrived(name)?;
        let e = &mut self.encoder;
        if let Some(rest) = name.strip_prefix(LAYERS_PREFIX) {
            return e.encoder.put(rest, tensor);
        }
        let unknown = || ModelError::WeightsMismatch(format!("{name} is not a vision tower tensor"));
        match name {
            "vision_model.embeddings.patch_embedding.weight" => return e.patch_embedding.set_rows(0, &tensor, 1.0),
            "visual_projection.weight" => return e.projection.set_rows(0, &tensor, 1.0),
            _ => {}
        }
        let TensorValues::F32(values) = tensor else {
            return Err(ModelError::Weights(format!("{name} is int8; only linear layers' weights may be")));
        };
        let dst = match name {
            "vision_model.embeddings.class_embedding" => &mut e.class_embedding,
            "vision_model.embeddings.position_embedding.weight" => &mut e.position_embedding,
            _ => {
                let (norm, what) = if let Some(what) = name.strip_prefix("vision_model.pre_layrnorm.") {
                    (&mut e.pre_norm, what)
                } else if let Some(what) = name.strip_prefix("vision_model.post_layernorm.") {
                    (&mut e.post_norm, what)
                } else {
                    return Err(unknown());
                };
                norm.part(what).ok_or_else(unknown)?
            }
        };
        dst.copy_from_slice(values);
        Ok(())
    }

    /// The encoder, once every expected tensor has arrived.
    pub fn finish(self) -> Result<VisionEncoder, ModelError> {
        self.expected.check_complete()?;
        Ok(self.encoder)
    }
}

impl VisionEncoder {
    pub fn image_size(&self) -> usize {
        self.image_size
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    fn hidden(&self) -> usize {
        self.encoder.hidden()
    }

    /// Tokens per image: one per patch, plus the class token.
    fn tokens(&self) -> usize {
        (self.image_size / self.patch).pow(2) + 1
    }

    /// Bytes of weights held.
    pub fn weight_bytes(&self) -> usize {
        self.encoder.bytes()
            + self.patch_embedding.bytes()
            + self.projection.bytes()
            + (self.class_embedding.len() + self.position_embedding.len()) * 4
            + self.pre_norm.bytes()
            + self.post_norm.bytes()
    }

    /// Raw image embeddings (`get_image_features`) of `n` CHW images laid out one after another.
    pub fn embed(&self, pixel_values: &[f32], n: usize) -> Vec<Vec<f32>> {
        let (s, c, h) = (self.image_size, self.channels, self.hidden());
        assert_eq!(pixel_values.len(), n * c * s * s, "pixel values of {n} images");
        let t = self.tokens();
        let embedded = self.embeddings(pixel_values, n);
        let mut x = vec![0.0f32; n * t * h];
        self.pre_norm.apply(&embedded, &mut x);
        // Only the class token of each image is read after the last layer.
        self.encoder.forward_keeping(&mut x, &vec![t; n], &vec![0; n]);
        // Pooled output: the class token of each image, normalised, then projected.
        let mut pooled = vec![0.0f32; n * h];
        for (i, dst) in pooled.chunks_exact_mut(h).enumerate() {
            self.post_norm.apply(&x[i * t * h..i * t * h + h], dst);
        }
        let d = self.projection.out_dim();
        let mut out = vec![0.0f32; n * d];
        self.projection.forward(&pooled, n, &mut out);
        out.chunks_exact(d).map(<[f32]>::to_vec).collect()
    }

    /// Class token and patch embeddings plus position embeddings, `n * tokens` rows.
    fn embeddings(&self, pixel_values: &[f32], n: usize) -> Vec<f32> {
        let (s, c, p, h) = (self.image_size, self.channels, self.patch, self.hidden());
        let side = s / p;
        let t = self.tokens();
        let patches = patch_rows(pixel_values, n, c, s, p);
        let mut embedded = vec![0.0f32; n * side * side * h];
        self.patch_embedding.forward(&patches, n * side * side, &mut embedded);
        let mut x = vec![0.0f32; n * t * h];
        for img in 0..n {
            let x = &mut x[img * t * h..(img + 1) * t * h];
            x[..h].copy_from_slice(&self.class_embedding);
            x[h..].copy_from_slice(&embedded[img * (t - 1) * h..(img + 1) * (t - 1) * h]);
            add_assign(x, &self.position_embedding);
        }
        x
    }
}

/// The stride-`p` convolution's inputs: each `p`-pixel patch of `n` CHW images of side `s`, row
/// by row, as one row of its (channel, row, column) values: `n * (s / p)²` rows.
pub(crate) fn patch_rows(pixel_values: &[f32], n: usize, c: usize, s: usize, p: usize) -> Vec<f32> {
    let side = s / p;
    let k = c * p * p;
    let mut patches = vec![0.0f32; n * side * side * k];
    for img in 0..n {
        let px = &pixel_values[img * c * s * s..(img + 1) * c * s * s];
        for py in 0..side {
            for pxi in 0..side {
                let dst = &mut patches[((img * side + py) * side + pxi) * k..][..k];
                for ch in 0..c {
                    for ky in 0..p {
                        let src = &px[ch * s * s + (py * p + ky) * s + pxi * p..][..p];
                        dst[(ch * p + ky) * p..][..p].copy_from_slice(src);
                    }
                }
            }
        }
    }
    patches
}
