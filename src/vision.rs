//! The CLIP vision encoder (ViT + visual projection), run with this crate's own kernels
//! ([`crate::kernels`]): the same function as `transformers`' `CLIPVisionModel` followed by
//! `visual_projection`, i.e. `get_image_features`.
//!
//! Weights are converted to f32 and packed tensor by tensor while loading
//! ([`VisionEncoderBuilder`]), so the packed model is the only full copy this module makes.

use candle_transformers::models::clip::vision_model::ClipVisionConfig;

use crate::kernels::gemm::PackedLinear;
use crate::kernels::qgemm::QuantLinear;
use crate::kernels::math::{add_assign, axpy, dot, layer_norm, quick_gelu, softmax};
use crate::error::ModelError;
use crate::parallel::for_each_row_block;

const LAYER_NORM_EPS: f32 = 1e-5;

struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Norm {
    fn zeros(d: usize) -> Self {
        Self { weight: vec![0.0; d], bias: vec![0.0; d] }
    }

    fn apply(&self, x: &[f32], out: &mut [f32]) {
        let d = self.weight.len();
        for_each_row_block(out, d, |first, rows| {
            layer_norm(&x[first * d..first * d + rows.len()], &self.weight, &self.bias, LAYER_NORM_EPS, rows);
        });
    }

    fn part(&mut self, what: &str) -> Option<&mut Vec<f32>> {
        match what {
            "weight" => Some(&mut self.weight),
            "bias" => Some(&mut self.bias),
            _ => None,
        }
    }
}

/// How the linear layers' weights are held and multiplied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// f32 weights and products.
    F32,
    /// int8 weights (one scale per output channel), 12-bit activations, exact integer sums.
    Int8,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Int8 => "int8",
        }
    }
}

/// A linear layer at either precision.
enum Linear {
    F32(PackedLinear),
    Int8(QuantLinear),
}

impl Linear {
    fn zeros(precision: Precision, out_dim: usize, in_dim: usize, has_bias: bool) -> Self {
        match precision {
            Precision::F32 => Linear::F32(PackedLinear::zeros(out_dim, in_dim, has_bias)),
            Precision::Int8 => Linear::Int8(QuantLinear::zeros(out_dim, in_dim, has_bias)),
        }
    }

    fn forward(&self, x: &[f32], m: usize, out: &mut [f32]) {
        match self {
            Linear::F32(l) => l.forward(x, m, out),
            Linear::Int8(l) => l.forward(x, m, out),
        }
    }

    fn out_dim(&self) -> usize {
        match self {
            Linear::F32(l) => l.out_dim(),
            Linear::Int8(l) => l.out_dim(),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Linear::F32(l) => l.bytes(),
            Linear::Int8(l) => l.bytes(),
        }
    }

    fn set_rows(&mut self, first: usize, rows: &Weights, scale: f32) -> Result<(), ModelError> {
        match (self, rows) {
            (Linear::F32(l), Weights::F32(v)) => l.set_rows(first, v, scale),
            (Linear::Int8(l), Weights::F32(v)) => l.set_rows_f32(first, v, scale),
            (Linear::Int8(l), Weights::Int8 { values, scales }) => {
                let scaled: Vec<f32> = scales.iter().map(|s| s * scale).collect();
                l.set_rows(first, values, &scaled)
            }
            (Linear::F32(_), Weights::Int8 { .. }) => {
                return Err(ModelError::Weights("int8 weights cannot be loaded at f32 precision".into()))
            }
        }
        Ok(())
    }

    fn set_bias(&mut self, first: usize, values: &[f32], scale: f32) {
        match self {
            Linear::F32(l) => l.set_bias(first, values, scale),
            Linear::Int8(l) => l.set_bias(first, values, scale),
        }
    }
}

/// A tensor's values as they arrive: floats, or int8 with one scale per row.
pub enum Weights<'a> {
    F32(&'a [f32]),
    Int8 { values: &'a [i8], scales: &'a [f32] },
}

/// Whether `name` is the weight of a linear layer (these may be stored as int8).
pub fn is_linear_weight(name: &str) -> bool {
    name == "vision_model.embeddings.patch_embedding.weight"
        || name == "visual_projection.weight"
        || (name.starts_with("vision_model.encoder.layers.")
            && ["q_proj.weight", "k_proj.weight", "v_proj.weight", "out_proj.weight", "fc1.weight", "fc2.weight"]
                .iter()
                .any(|s| name.ends_with(s)))
}

struct Layer {
    norm1: Norm,
    /// q, k and v projections as one product; q pre-scaled by `head_dim^-0.5`.
    qkv: Linear,
    out: Linear,
    norm2: Norm,
    fc1: Linear,
    fc2: Linear,
}

/// The loaded vision encoder.
pub struct VisionEncoder {
    image_size: usize,
    channels: usize,
    patch: usize,
    hidden: usize,
    heads: usize,
    inter: usize,
    precision: Precision,
    patch_embedding: Linear,
    class_embedding: Vec<f32>,
    position_embedding: Vec<f32>,
    pre_norm: Norm,
    layers: Vec<Layer>,
    post_norm: Norm,
    projection: Linear,
}

/// The linear layer a `q_proj`/`k_proj`/`v_proj`/`out_proj`/`fc1`/`fc2` name refers to, the
/// first output row it fills and the factor its values take (q is pre-scaled).
fn sublayer<'a>(layer: &'a mut Layer, module: &str, h: usize, scale: f32) -> Option<(&'a mut Linear, usize, f32)> {
    Some(match module {
        "self_attn.q_proj" => (&mut layer.qkv, 0, scale),
        "self_attn.k_proj" => (&mut layer.qkv, h, 1.0),
        "self_attn.v_proj" => (&mut layer.qkv, 2 * h, 1.0),
        "self_attn.out_proj" => (&mut layer.out, 0, 1.0),
        "mlp.fc1" => (&mut layer.fc1, 0, 1.0),
        "mlp.fc2" => (&mut layer.fc2, 0, 1.0),
        _ => return None,
    })
}

/// [`sublayer`] for a full `vision_model.encoder.layers.{i}.{module}.weight` name.
fn layer_linear<'a>(e: &'a mut VisionEncoder, name: &str, scale: f32) -> Option<(&'a mut Linear, usize, f32)> {
    let h = e.hidden;
    let rest = name.strip_prefix("vision_model.encoder.layers.")?.strip_suffix(".weight")?;
    let (index, module) = rest.split_once('.')?;
    let layer = e.layers.get_mut(index.parse::<usize>().ok()?)?;
    sublayer(layer, module, h, scale)
}

/// A [`VisionEncoder`] being filled tensor by tensor, in any order.
pub struct VisionEncoderBuilder {
    encoder: VisionEncoder,
    /// Tensors still to come, by `transformers` name.
    missing: std::collections::HashSet<String>,
}

impl VisionEncoderBuilder {
    /// An encoder of `cfg`'s shape with every weight zero; `expected` lists the tensor names
    /// that must arrive before [`Self::finish`].
    pub fn new(
        cfg: &ClipVisionConfig,
        projection_dim: usize,
        precision: Precision,
        expected: impl IntoIterator<Item = String>,
    ) -> Self {
        let lin = |o, i, b| Linear::zeros(precision, o, i, b);
        let (h, p, c, inter) = (cfg.embed_dim, cfg.patch_size, cfg.num_channels, cfg.intermediate_size);
        let tokens = (cfg.image_size / p).pow(2) + 1;
        let layers = (0..cfg.num_hidden_layers)
            .map(|_| Layer {
                norm1: Norm::zeros(h),
                qkv: lin(3 * h, h, true),
                out: lin(h, h, true),
                norm2: Norm::zeros(h),
                fc1: lin(inter, h, true),
                fc2: lin(h, inter, true),
            })
            .collect();
        Self {
            encoder: VisionEncoder {
                image_size: cfg.image_size,
                channels: c,
                patch: p,
                hidden: h,
                heads: cfg.num_attention_heads,
                inter,
                // The stride-p convolution is a product over flattened (channel, row, column) patches.
                precision,
                patch_embedding: lin(h, c * p * p, false),
                class_embedding: vec![0.0; h],
                position_embedding: vec![0.0; tokens * h],
                pre_norm: Norm::zeros(h),
                layers,
                post_norm: Norm::zeros(h),
                projection: lin(projection_dim, h, false),
            },
            missing: expected.into_iter().collect(),
        }
    }

    /// Whether `name` is one of the encoder's tensors.
    pub fn wants(&self, name: &str) -> bool {
        self.missing.contains(name)
    }

    /// Puts one tensor (shape already checked against the config) in its place. Only linear
    /// layers' weights may be int8 ([`is_linear_weight`]).
    pub fn put(&mut self, name: &str, tensor: Weights) -> Result<(), ModelError> {
        if !self.missing.remove(name) {
            return Err(ModelError::WeightsMismatch(format!("unexpected or repeated tensor {name}")));
        }
        let e = &mut self.encoder;
        let h = e.hidden;
        let scale = ((h / e.heads) as f32).powf(-0.5);
        let unknown = || ModelError::WeightsMismatch(format!("{name} is not a vision tower tensor"));
        if is_linear_weight(name) {
            let (linear, first, s) = match name {
                "vision_model.embeddings.patch_embedding.weight" => (&mut e.patch_embedding, 0, 1.0),
                "visual_projection.weight" => (&mut e.projection, 0, 1.0),
                _ => layer_linear(e, name, scale).ok_or_else(unknown)?,
            };
            return linear.set_rows(first, &tensor, s);
        }
        let Weights::F32(values) = tensor else {
            return Err(ModelError::Weights(format!("{name} is int8; only linear layers' weights may be")));
        };
        let copy = |dst: &mut Vec<f32>| {
            dst.copy_from_slice(values);
        };
        match name {
            "vision_model.embeddings.class_embedding" => copy(&mut e.class_embedding),
            "vision_model.embeddings.position_embedding.weight" => copy(&mut e.position_embedding),
            _ => {
                if let Some(rest) = name.strip_prefix("vision_model.pre_layrnorm.") {
                    copy(e.pre_norm.part(rest).ok_or_else(unknown)?);
                } else if let Some(rest) = name.strip_prefix("vision_model.post_layernorm.") {
                    copy(e.post_norm.part(rest).ok_or_else(unknown)?);
                } else {
                    let rest = name.strip_prefix("vision_model.encoder.layers.").ok_or_else(unknown)?;
                    let (index, part) = rest.split_once('.').ok_or_else(unknown)?;
                    let layer = index.parse::<usize>().ok().and_then(|i| e.layers.get_mut(i)).ok_or_else(unknown)?;
                    let (module, what) = part.rsplit_once('.').ok_or_else(unknown)?;
                    match module {
                        "layer_norm1" => copy(layer.norm1.part(what).ok_or_else(unknown)?),
                        "layer_norm2" => copy(layer.norm2.part(what).ok_or_else(unknown)?),
                        _ if what == "bias" => {
                            let (linear, first, s) = sublayer(layer, module, h, scale).ok_or_else(unknown)?;
                            linear.set_bias(first, values, s);
                        }
                        _ => return Err(unknown()),
                    }
                }
            }
        }
        Ok(())
    }

    /// The encoder, once every expected tensor has arrived.
    pub fn finish(self) -> Result<VisionEncoder, ModelError> {
        if !self.missing.is_empty() {
            let mut names: Vec<_> = self.missing.into_iter().collect();
            names.sort();
            return Err(ModelError::WeightsMismatch(format!(
                "{} tensors are missing, e.g. {}",
                names.len(),
                names.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(self.encoder)
    }
}

/// Work buffers of one forward pass, sized for `rows` tokens.
struct Scratch {
    x: Vec<f32>,
    normed: Vec<f32>,
    qkv: Vec<f32>,
    attended: Vec<f32>,
    hidden: Vec<f32>,
}

impl VisionEncoder {
    pub fn image_size(&self) -> usize {
        self.image_size
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Tokens per image: one per patch, plus the class token.
    fn tokens(&self) -> usize {
        (self.image_size / self.patch).pow(2) + 1
    }

    /// Bytes of weights held.
    pub fn weight_bytes(&self) -> usize {
        let norm = |n: &Norm| (n.weight.len() + n.bias.len()) * 4;
        let layers: usize = self
            .layers
            .iter()
            .map(|l| norm(&l.norm1) + norm(&l.norm2) + l.qkv.bytes() + l.out.bytes() + l.fc1.bytes() + l.fc2.bytes())
            .sum();
        layers
            + self.patch_embedding.bytes()
            + self.projection.bytes()
            + (self.class_embedding.len() + self.position_embedding.len()) * 4
            + norm(&self.pre_norm)
            + norm(&self.post_norm)
    }

    /// Raw image embeddings (`get_image_features`) of `n` CHW images laid out one after another.
    pub fn embed(&self, pixel_values: &[f32], n: usize) -> Vec<Vec<f32>> {
        let (s, c, h) = (self.image_size, self.channels, self.hidden);
        assert_eq!(pixel_values.len(), n * c * s * s, "pixel values of {n} images");
        let t = self.tokens();
        let rows = n * t;
        let mut buf = Scratch {
            x: vec![0.0; rows * h],
            normed: vec![0.0; rows * h],
            qkv: vec![0.0; rows * 3 * h],
            attended: vec![0.0; rows * h],
            hidden: vec![0.0; rows * self.inter],
        };
        self.embeddings(pixel_values, n, &mut buf);
        buf.normed.copy_from_slice(&buf.x);
        self.pre_norm.apply(&buf.normed, &mut buf.x);
        for layer in &self.layers {
            self.layer(layer, n, &mut buf);
        }
        // Pooled output: the class token of each image, normalised, then projected.
        let mut pooled = vec![0.0f32; n * h];
        for (i, dst) in pooled.chunks_exact_mut(h).enumerate() {
            self.post_norm.apply(&buf.x[i * t * h..i * t * h + h], dst);
        }
        let d = self.projection.out_dim();
        let mut out = vec![0.0f32; n * d];
        self.projection.forward(&pooled, n, &mut out);
        out.chunks_exact(d).map(<[f32]>::to_vec).collect()
    }

    /// Class token and patch embeddings plus position embeddings, into `buf.x`.
    fn embeddings(&self, pixel_values: &[f32], n: usize, buf: &mut Scratch) {
        let (s, c, p, h) = (self.image_size, self.channels, self.patch, self.hidden);
        let side = s / p;
        let t = self.tokens();
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
        let mut embedded = vec![0.0f32; n * side * side * h];
        self.patch_embedding.forward(&patches, n * side * side, &mut embedded);
        for img in 0..n {
            let x = &mut buf.x[img * t * h..(img + 1) * t * h];
            x[..h].copy_from_slice(&self.class_embedding);
            x[h..].copy_from_slice(&embedded[img * (t - 1) * h..(img + 1) * (t - 1) * h]);
            add_assign(x, &self.position_embedding);
        }
    }

    fn layer(&self, l: &Layer, n: usize, buf: &mut Scratch) {
        let h = self.hidden;
        let rows = n * self.tokens();
        l.norm1.apply(&buf.x, &mut buf.normed);
        l.qkv.forward(&buf.normed, rows, &mut buf.qkv);
        self.attention(n, &buf.qkv, &mut buf.attended);
        l.out.forward(&buf.attended, rows, &mut buf.normed);
        residual_add(&mut buf.x, &buf.normed, h);
        l.norm2.apply(&buf.x, &mut buf.normed);
        l.fc1.forward(&buf.normed, rows, &mut buf.hidden);
        for_each_row_block(&mut buf.hidden, self.inter, |_, block| quick_gelu(block));
        l.fc2.forward(&buf.hidden, rows, &mut buf.normed);
        residual_add(&mut buf.x, &buf.normed[..rows * h], h);
    }

    /// Multi-head self-attention of each image's tokens: `qkv` rows hold q (pre-scaled), k, v.
    fn attention(&self, n: usize, qkv: &[f32], out: &mut [f32]) {
        let (h, heads, t) = (self.hidden, self.heads, self.tokens());
        let d = h / heads;
        let out_ptr = SharedOut(out.as_mut_ptr());
        crate::parallel::for_each_chunk(n * heads, n * heads * t * t * d * 2, |range| {
            let mut q = vec![0.0f32; t * d];
            let mut k = vec![0.0f32; t * d];
            let mut v = vec![0.0f32; t * d];
            let mut scores = vec![0.0f32; t];
            let mut acc = vec![0.0f32; d];
            for job in range {
                let (img, head) = (job / heads, job % heads);
                for i in 0..t {
                    let row = &qkv[(img * t + i) * 3 * h..][..3 * h];
                    q[i * d..(i + 1) * d].copy_from_slice(&row[head * d..][..d]);
                    k[i * d..(i + 1) * d].copy_from_slice(&row[h + head * d..][..d]);
                    v[i * d..(i + 1) * d].copy_from_slice(&row[2 * h + head * d..][..d]);
                }
                for i in 0..t {
                    let qi = &q[i * d..(i + 1) * d];
                    for (j, sc) in scores.iter_mut().enumerate() {
                        *sc = dot(qi, &k[j * d..(j + 1) * d]);
                    }
                    softmax(&mut scores);
                    acc.fill(0.0);
                    for (j, &p) in scores.iter().enumerate() {
                        axpy(p, &v[j * d..(j + 1) * d], &mut acc);
                    }
                    // SAFETY: each (image, head) job writes its own d columns of its own rows.
                    unsafe {
                        let dst = out_ptr.get().add((img * t + i) * h + head * d);
                        std::ptr::copy_nonoverlapping(acc.as_ptr(), dst, d);
                    }
                }
            }
        });
    }
}

/// `x += y`, rows of `width` split across threads.
fn residual_add(x: &mut [f32], y: &[f32], width: usize) {
    for_each_row_block(x, width, |first, block| add_assign(block, &y[first * width..first * width + block.len()]));
}

/// The attention output, written by several threads at disjoint places.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: see `VisionEncoder::attention`: the jobs write disjoint elements.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}
impl SharedOut {
    fn get(self) -> *mut f32 {
        self.0
    }
}
