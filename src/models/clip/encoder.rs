//! The transformer stack both CLIP towers share (`transformers`' `CLIPEncoder`), and SigLIP's image
//! tower too (`SiglipEncoder`): pre-norm layers of multi-head self-attention and a GELU MLP (CLIP's
//! quick GELU, SigLIP's tanh approximation, [`Activation`]), run with this crate's own kernels
//! ([`crate::kernels`]). The vision towers attend over all of an image's tokens, the text tower
//! causally (each token sees the ones before it). [`Encoder::pool`] is SigLIP's attention-pooling
//! head on the same pieces.
//!
//! Sequences of different lengths go through one call: every linear layer multiplies all their
//! rows at once, attention stays inside each sequence.

use std::collections::HashSet;

use crate::error::ModelError;
use crate::kernels::gemm::PackedLinear;
use crate::kernels::attention::{attention_head, AttentionScratch, Queries};
use crate::kernels::math::{add_assign, gelu_erf_slice, gelu_tanh_slice, layer_norm, quick_gelu};
use crate::kernels::qgemm::QuantLinear;
use crate::parallel::{for_each_chunk, for_each_row_block, DisjointWrites};

/// CLIP's layer norms' epsilon (transformers' default `layer_norm_eps`).
const LAYER_NORM_EPS: f32 = 1e-5;

/// A layer norm's parameters.
pub struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl Norm {
    /// CLIP's epsilon ([`Self::with_eps`] for another).
    pub fn zeros(d: usize) -> Self {
        Self { weight: vec![0.0; d], bias: vec![0.0; d], eps: LAYER_NORM_EPS }
    }

    pub fn with_eps(self, eps: f32) -> Self {
        Self { eps, ..self }
    }

    /// Normalises each row of `x` into `out`, rows split across threads.
    pub fn apply(&self, x: &[f32], out: &mut [f32]) {
        let d = self.weight.len();
        for_each_row_block(out, d, |first, rows| {
            layer_norm(&x[first * d..first * d + rows.len()], &self.weight, &self.bias, self.eps, rows);
        });
    }

    /// The `weight` or `bias` vector.
    pub fn part(&mut self, what: &str) -> Option<&mut Vec<f32>> {
        match what {
            "weight" => Some(&mut self.weight),
            "bias" => Some(&mut self.bias),
            _ => None,
        }
    }

    pub fn bytes(&self) -> usize {
        (self.weight.len() + self.bias.len()) * 4
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

/// A tensor's values as they arrive: floats, or int8 with one scale per row.
pub enum TensorValues<'a> {
    F32(&'a [f32]),
    Int8 { values: &'a [i8], scales: &'a [f32] },
}

/// A linear layer at either precision.
pub enum Linear {
    F32(PackedLinear),
    Int8(QuantLinear),
}

impl Linear {
    pub fn zeros(precision: Precision, out_dim: usize, in_dim: usize, has_bias: bool) -> Self {
        match precision {
            Precision::F32 => Linear::F32(PackedLinear::zeros(out_dim, in_dim, has_bias)),
            Precision::Int8 => Linear::Int8(QuantLinear::zeros(out_dim, in_dim, has_bias)),
        }
    }

    /// `out = x · Wᵀ + b` for `m` rows of `x`.
    pub fn forward(&self, x: &[f32], m: usize, out: &mut [f32]) {
        match self {
            Linear::F32(l) => l.forward(x, m, out),
            Linear::Int8(l) => l.forward(x, m, out),
        }
    }

    /// Only outputs `outputs` of [`Self::forward`] (the columns of `out` in that range; the
    /// others are left as they are, or computed too where the range is not on whole panels).
    pub fn forward_outputs(&self, x: &[f32], m: usize, outputs: std::ops::Range<usize>, out: &mut [f32]) {
        match self {
            Linear::F32(l) => l.forward_outputs(x, m, outputs, out),
            Linear::Int8(l) => l.forward_outputs(x, m, outputs, out),
        }
    }

    pub fn out_dim(&self) -> usize {
        match self {
            Linear::F32(l) => l.out_dim(),
            Linear::Int8(l) => l.out_dim(),
        }
    }

    pub fn bytes(&self) -> usize {
        match self {
            Linear::F32(l) => l.bytes(),
            Linear::Int8(l) => l.bytes(),
        }
    }

    /// Sets output rows `first..` of the weight to `scale` times `rows`.
    pub fn set_rows(&mut self, first: usize, rows: &TensorValues, scale: f32) -> Result<(), ModelError> {
        match (self, rows) {
            (Linear::F32(l), TensorValues::F32(v)) => l.set_rows(first, v, scale),
            (Linear::Int8(l), TensorValues::F32(v)) => l.set_rows_f32(first, v, scale),
            (Linear::Int8(l), TensorValues::Int8 { values, scales }) => {
                let scaled: Vec<f32> = scales.iter().map(|s| s * scale).collect();
                l.set_rows(first, values, &scaled)
            }
            (Linear::F32(_), TensorValues::Int8 { .. }) => {
                return Err(ModelError::Weights("int8 weights cannot be loaded at f32 precision".into()))
            }
        }
        Ok(())
    }

    pub fn set_bias(&mut self, first: usize, values: &[f32], scale: f32) {
        match self {
            Linear::F32(l) => l.set_bias(first, values, scale),
            Linear::Int8(l) => l.set_bias(first, values, scale),
        }
    }
}

/// The MLP's activation (`hidden_act` in transformers' configs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `quick_gelu`: CLIP's.
    QuickGelu,
    /// `gelu_pytorch_tanh`: SigLIP's.
    GeluTanh,
    /// `gelu`, the exact one.
    GeluErf,
}

impl Activation {
    /// Applies the activation to every value of `xs`, in place.
    fn apply(self, xs: &mut [f32]) {
        let out_of_place = match self {
            Activation::QuickGelu => return quick_gelu(xs),
            Activation::GeluTanh => gelu_tanh_slice,
            Activation::GeluErf => gelu_erf_slice,
        };
        let mut buf = [0.0f32; 256];
        for chunk in xs.chunks_mut(buf.len()) {
            let copy = &mut buf[..chunk.len()];
            copy.copy_from_slice(chunk);
            out_of_place(copy, chunk);
        }
    }
}

/// The names of the linear layers inside an encoder layer (`{module}.weight` may be int8).
pub const LAYER_LINEARS: [&str; 6] =
    ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2"];

struct Layer {
    norm1: Norm,
    /// q, k and v projections as one product; q pre-scaled by `head_dim^-0.5`.
    qkv: Linear,
    out: Linear,
    norm2: Norm,
    fc1: Linear,
    fc2: Linear,
}

impl Layer {
    /// The linear layer `module` names, the first output row it fills and the factor its values
    /// take (q is pre-scaled by `q_scale`).
    fn linear(&mut self, module: &str, hidden: usize, q_scale: f32) -> Option<(&mut Linear, usize, f32)> {
        Some(match module {
            "self_attn.q_proj" => (&mut self.qkv, 0, q_scale),
            "self_attn.k_proj" => (&mut self.qkv, hidden, 1.0),
            "self_attn.v_proj" => (&mut self.qkv, 2 * hidden, 1.0),
            "self_attn.out_proj" => (&mut self.out, 0, 1.0),
            "mlp.fc1" => (&mut self.fc1, 0, 1.0),
            "mlp.fc2" => (&mut self.fc2, 0, 1.0),
            _ => return None,
        })
    }

    fn bytes(&self) -> usize {
        self.norm1.bytes()
            + self.norm2.bytes()
            + self.qkv.bytes()
            + self.out.bytes()
            + self.fc1.bytes()
            + self.fc2.bytes()
    }
}

/// How tokens attend to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mask {
    /// Every token sees every token of its sequence (vision).
    None,
    /// Each token sees itself and the tokens before it (text).
    Causal,
}

/// The layers of one tower.
pub struct Encoder {
    hidden: usize,
    heads: usize,
    inter: usize,
    mask: Mask,
    activation: Activation,
    layers: Vec<Layer>,
}

impl Encoder {
    /// `depth` layers of width `hidden` with every weight zero, to be filled with [`Self::put`].
    pub fn zeros(precision: Precision, depth: usize, hidden: usize, heads: usize, inter: usize, mask: Mask) -> Self {
        let lin = |o, i| Linear::zeros(precision, o, i, true);
        let layers = (0..depth)
            .map(|_| Layer {
                norm1: Norm::zeros(hidden),
                qkv: lin(3 * hidden, hidden),
                out: lin(hidden, hidden),
                norm2: Norm::zeros(hidden),
                fc1: lin(inter, hidden),
                fc2: lin(hidden, inter),
            })
            .collect();
        Self { hidden, heads, inter, mask, activation: Activation::QuickGelu, layers }
    }

    /// The MLPs' activation (CLIP's quick GELU unless set).
    pub fn with_activation(self, activation: Activation) -> Self {
        Self { activation, ..self }
    }

    /// The layer norms' epsilon (CLIP's 1e-5 unless set).
    pub fn with_norm_eps(mut self, eps: f32) -> Self {
        for l in &mut self.layers {
            l.norm1.eps = eps;
            l.norm2.eps = eps;
        }
        self
    }

    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Bytes of weights held.
    pub fn bytes(&self) -> usize {
        self.layers.iter().map(Layer::bytes).sum()
    }

    /// Puts one tensor, named as after `{tower}.encoder.layers.`: `{index}.{module}.{weight|bias}`.
    /// Only linear layers' weights may be int8.
    pub fn put(&mut self, name: &str, tensor: TensorValues) -> Result<(), ModelError> {
        let unknown = || ModelError::WeightsMismatch(format!("encoder.layers.{name} is not an encoder tensor"));
        let hidden = self.hidden;
        let q_scale = ((hidden / self.heads) as f32).powf(-0.5);
        let (index, part) = name.split_once('.').ok_or_else(unknown)?;
        let layer = index.parse::<usize>().ok().and_then(|i| self.layers.get_mut(i)).ok_or_else(unknown)?;
        let (module, what) = part.rsplit_once('.').ok_or_else(unknown)?;
        if let Some((linear, first, scale)) = layer.linear(module, hidden, q_scale) {
            return match (what, tensor) {
                ("weight", t) => linear.set_rows(first, &t, scale),
                ("bias", TensorValues::F32(values)) => {
                    linear.set_bias(first, values, scale);
                    Ok(())
                }
                _ => Err(unknown()),
            };
        }
        let norm = match module {
            "layer_norm1" => &mut layer.norm1,
            "layer_norm2" => &mut layer.norm2,
            _ => return Err(unknown()),
        };
        match (norm.part(what), tensor) {
            (Some(dst), TensorValues::F32(values)) => {
                dst.copy_from_slice(values);
                Ok(())
            }
            (Some(_), TensorValues::Int8 { .. }) => Err(ModelError::Weights(format!(
                "encoder.layers.{name} is int8; only linear layers' weights may be"
            ))),
            (None, _) => Err(unknown()),
        }
    }

    /// Runs every layer over `x`: sequences of `lens` tokens, one after another, `hidden` wide.
    pub fn forward(&self, x: &mut [f32], lens: &[usize]) {
        self.run(x, lens, None);
    }

    /// [`Self::forward`] for a caller that reads one row of each sequence afterwards (the class
    /// token of an image): `keep[i]` is that row's index in sequence `i`. Every layer but the last
    /// runs as in `forward`; the last computes keys and values for all rows but queries only for
    /// the kept ones, and takes only those through attention, the output projection and the MLP
    /// (which work on each row alone), so only they are final.
    pub fn forward_keeping(&self, x: &mut [f32], lens: &[usize], keep: &[usize]) {
        assert!(keep.len() == lens.len() && keep.iter().zip(lens).all(|(k, l)| k < l), "one kept row in each sequence");
        self.run(x, lens, Some(keep));
    }

    fn run(&self, x: &mut [f32], lens: &[usize], keep: Option<&[usize]>) {
        let h = self.hidden;
        let rows: usize = lens.iter().sum();
        assert_eq!(x.len(), rows * h, "{rows} rows of {h}");
        let starts = starts(lens);
        let seqs = Sequences { starts: &starts, lens };
        let mut normed = vec![0.0f32; rows * h];
        let mut qkv = vec![0.0f32; rows * 3 * h];
        let mut attended = vec![0.0f32; rows * h];
        let mut hidden = vec![0.0f32; rows * self.inter];
        for (i, l) in self.layers.iter().enumerate() {
            l.norm1.apply(x, &mut normed);
            match keep.filter(|_| i + 1 == self.layers.len()) {
                None => {
                    l.qkv.forward(&normed, rows, &mut qkv);
                    self.attention(seqs, None, &qkv, &mut attended);
                    self.after_attention(l, x, &attended, rows, &mut normed, &mut hidden);
                }
                Some(keep) => {
                    let kept: Vec<usize> = starts.iter().zip(keep).map(|(s, k)| s + k).collect();
                    let gather = |from: &[f32]| kept.iter().flat_map(|&r| from[r * h..(r + 1) * h].iter().copied()).collect::<Vec<f32>>();
                    let m = kept.len();
                    // Keys and values of every row; queries of the kept rows only.
                    l.qkv.forward_outputs(&normed, rows, h..3 * h, &mut qkv);
                    let mut queries = vec![0.0f32; m * 3 * h];
                    l.qkv.forward_outputs(&gather(&normed), m, 0..h, &mut queries);
                    let mut attended_kept = vec![0.0f32; m * h];
                    self.attention(seqs, Some((&queries, keep)), &qkv, &mut attended_kept);
                    let mut x_kept = gather(x);
                    self.after_attention(l, &mut x_kept, &attended_kept, m, &mut normed[..m * h], &mut hidden[..m * self.inter]);
                    for (&r, row) in kept.iter().zip(x_kept.chunks_exact(h)) {
                        x[r * h..(r + 1) * h].copy_from_slice(row);
                    }
                }
            }
        }
    }

    /// SigLIP's attention-pooling head (`SiglipMultiheadAttentionPoolingHead`), held as this
    /// encoder's one layer: in each sequence of `x` (`lens` rows, one after another, already
    /// normalised), the query projected from `probe` (one row of `hidden`) attends over the
    /// sequence's rows; then the output projection, and the layer's second norm and MLP with their
    /// residual. There is no residual around attention: the head's stream starts from its output.
    /// One row of `hidden` per sequence.
    pub fn pool(&self, probe: &[f32], x: &[f32], lens: &[usize]) -> Vec<f32> {
        let [l] = self.layers.as_slice() else { panic!("a pooling head has one layer") };
        let (h, n) = (self.hidden, lens.len());
        let rows: usize = lens.iter().sum();
        assert!(probe.len() == h && x.len() == rows * h, "a probe of {h} and {rows} rows of {h}");
        let starts = starts(lens);
        // Keys and values of every row; the query, the same for every sequence, once.
        let mut kv = vec![0.0f32; rows * 3 * h];
        l.qkv.forward_outputs(x, rows, h..3 * h, &mut kv);
        let mut query = vec![0.0f32; 3 * h];
        l.qkv.forward_outputs(probe, 1, 0..h, &mut query);
        let mut attended = vec![0.0f32; n * h];
        let seqs = Sequences { starts: &starts, lens };
        self.attention(seqs, Some((&query.repeat(n), &vec![0; n])), &kv, &mut attended);
        let mut pooled = vec![0.0f32; n * h];
        self.after_attention(l, &mut pooled, &attended, n, &mut vec![0.0; n * h], &mut vec![0.0; n * self.inter]);
        pooled
    }

    /// The rest of layer `l` once attention has run, row by row: output projection and residual,
    /// then the MLP and its residual. `normed` and `hidden` are scratch of `rows` rows.
    fn after_attention(&self, l: &Layer, x: &mut [f32], attended: &[f32], rows: usize, normed: &mut [f32], hidden: &mut [f32]) {
        let h = self.hidden;
        l.out.forward(attended, rows, normed);
        residual_add(x, normed, h);
        l.norm2.apply(x, normed);
        l.fc1.forward(normed, rows, hidden);
        for_each_row_block(hidden, self.inter, |_, block| self.activation.apply(block));
        l.fc2.forward(hidden, rows, normed);
        residual_add(x, normed, h);
    }

    /// Multi-head self-attention within each sequence: `qkv` rows hold q (pre-scaled), k, v.
    /// With `kept = (queries, keep)`, only row `keep[i]` of sequence `i` attends, its query in row
    /// `i` of `queries` (rows of q|k|v, only q read), its output in row `i` of `out`.
    fn attention(&self, seqs: Sequences, kept: Option<(&[f32], &[usize])>, qkv: &[f32], out: &mut [f32]) {
        let (h, heads) = (self.hidden, self.heads);
        let d = h / heads;
        let causal = self.mask == Mask::Causal;
        let longest = seqs.lens.iter().copied().max().unwrap_or(0);
        let queries = |seq: usize| kept.map_or(seqs.lens[seq], |_| 1);
        let work: usize = (0..seqs.lens.len()).map(|s| queries(s) * seqs.lens[s] * d * 2 * heads).sum();
        let out_ptr = DisjointWrites::new(out);
        for_each_chunk(seqs.lens.len() * heads, work, |range| {
            let mut scratch = AttentionScratch::default();
            let mut head_out = vec![0.0f32; longest * d];
            for job in range {
                let (seq, head) = (job / heads, job % heads);
                let (start, t) = (seqs.starts[seq], seqs.lens[seq]);
                // q, k and v of this head read in place: rows of q|k|v, 3h apart.
                let rows = &qkv[start * 3 * h..(start + t) * 3 * h];
                let (k, v) = (&rows[h + head * d..], &rows[2 * h + head * d..]);
                let (q, first, out_row) = match kept {
                    None => (&rows[head * d..], 0, start),
                    Some((queries, keep)) => (&queries[seq * 3 * h + head * d..], keep[seq], seq),
                };
                let q = Queries { q, ld: 3 * h, rows: queries(seq), first };
                attention_head(q, k, v, 3 * h, t, d, &mut head_out, d, causal, &mut scratch);
                for i in 0..q.rows {
                    // SAFETY: each (sequence, head) job writes its own d columns of its own rows.
                    unsafe {
                        let dst = out_ptr.at((out_row + i) * h + head * d);
                        std::ptr::copy_nonoverlapping(head_out.as_ptr().add(i * d), dst, d);
                    }
                }
            }
        });
    }
}

/// The first row of each sequence of `lens` rows laid one after another.
fn starts(lens: &[usize]) -> Vec<usize> {
    lens.iter().scan(0, |s, &l| Some(std::mem::replace(s, *s + l))).collect()
}

/// Where each sequence's rows start, and how many it has.
#[derive(Clone, Copy)]
struct Sequences<'a> {
    starts: &'a [usize],
    lens: &'a [usize],
}

/// `x += y`, rows of `width` split across threads.
fn residual_add(x: &mut [f32], y: &[f32], width: usize) {
    for_each_row_block(x, width, |first, block| add_assign(block, &y[first * width..first * width + block.len()]));
}

/// The tensor names a tower still waits for while it is filled in any order.
pub struct Expected {
    missing: HashSet<String>,
}

impl Expected {
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        Self { missing: names.into_iter().collect() }
    }

    pub fn wants(&self, name: &str) -> bool {
        self.missing.contains(name)
    }

    /// Marks `name` as arrived; an error if it was not expected or came twice.
    pub fn arrived(&mut self, name: &str) -> Result<(), ModelError> {
        if self.missing.remove(name) {
            Ok(())
        } else {
            Err(ModelError::WeightsMismatch(format!("unexpected or repeated tensor {name}")))
        }
    }

    /// An error naming some of the tensors that never came.
    pub fn check_complete(self) -> Result<(), ModelError> {
        if self.missing.is_empty() {
            return Ok(());
        }
        let mut names: Vec<_> = self.missing.into_iter().collect();
        names.sort();
        Err(ModelError::WeightsMismatch(format!(
            "{} tensors are missing, e.g. {}",
            names.len(),
            names.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-layer encoder with weights from a simple deterministic sequence.
    fn encoder(mask: Mask) -> Encoder {
        let (h, heads, inter) = (8, 2, 16);
        let mut e = Encoder::zeros(Precision::F32, 1, h, heads, inter, mask);
        let mut seed = 1u32;
        let mut next = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                    (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
                })
                .collect()
        };
        for m in LAYER_LINEARS {
            let (o, i) = match m {
                "mlp.fc1" => (inter, h),
                "mlp.fc2" => (h, inter),
                _ => (h, h),
            };
            e.put(&format!("0.{m}.weight"), TensorValues::F32(&next(o * i))).unwrap();
            e.put(&format!("0.{m}.bias"), TensorValues::F32(&next(o))).unwrap();
        }
        for n in ["layer_norm1", "layer_norm2"] {
            e.put(&format!("0.{n}.weight"), TensorValues::F32(&vec![1.0; h])).unwrap();
            e.put(&format!("0.{n}.bias"), TensorValues::F32(&next(h))).unwrap();
        }
        e
    }

    fn tokens(n: usize) -> Vec<f32> {
        (0..n * 8).map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.5).collect()
    }

    #[test]
    fn causal_prefix_does_not_depend_on_later_tokens() {
        let e = encoder(Mask::Causal);
        let mut long = tokens(6);
        let mut short = long[..4 * 8].to_vec();
        e.forward(&mut long, &[6]);
        e.forward(&mut short, &[4]);
        assert_eq!(&long[..4 * 8], &short[..], "causal rows see only earlier tokens");
    }

    #[test]
    fn full_attention_sees_later_tokens() {
        let e = encoder(Mask::None);
        let mut long = tokens(6);
        let mut short = long[..4 * 8].to_vec();
        e.forward(&mut long, &[6]);
        e.forward(&mut short, &[4]);
        assert_ne!(&long[..4 * 8], &short[..]);
    }

    #[test]
    fn sequences_in_one_call_equal_separate_calls() {
        for mask in [Mask::None, Mask::Causal] {
            let e = encoder(mask);
            let mut both = tokens(9);
            let mut first = both[..5 * 8].to_vec();
            let mut second = both[5 * 8..].to_vec();
            e.forward(&mut both, &[5, 4]);
            e.forward(&mut first, &[5]);
            e.forward(&mut second, &[4]);
            let max_diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
            assert!(max_diff(&both[..5 * 8], &first) < 1e-6, "{mask:?}");
            assert!(max_diff(&both[5 * 8..], &second) < 1e-6, "{mask:?}");
        }
    }

    #[test]
    fn unknown_and_misplaced_tensors_are_refused() {
        let mut e = encoder(Mask::None);
        assert!(e.put("1.mlp.fc1.weight", TensorValues::F32(&[0.0; 128])).is_err(), "no layer 1");
        assert!(e.put("0.mlp.fc3.weight", TensorValues::F32(&[0.0; 128])).is_err());
        let int8 = TensorValues::Int8 { values: &[0; 8], scales: &[1.0] };
        assert!(e.put("0.layer_norm1.weight", int8).is_err());
    }

    #[test]
    fn expected_tensors_arrive_once() {
        let mut x = Expected::new(["a".to_string(), "b".to_string()]);
        assert!(x.wants("a"));
        x.arrived("a").unwrap();
        assert!(x.arrived("a").is_err(), "twice");
        assert!(x.arrived("c").is_err(), "unexpected");
        assert!(Expected::new(["b".to_string()]).check_complete().is_err());
    }

    #[test]
    fn keeping_one_row_a_sequence_gives_those_rows_exactly() {
        for mask in [Mask::None, Mask::Causal] {
            let e = encoder(mask);
            let mut all = tokens(9);
            let mut kept = all.clone();
            e.forward(&mut all, &[5, 4]);
            e.forward_keeping(&mut kept, &[5, 4], &[0, 2]);
            for row in [0, 5 + 2] {
                assert_eq!(&kept[row * 8..(row + 1) * 8], &all[row * 8..(row + 1) * 8], "{mask:?} row {row}");
            }
            // The other rows stopped before the last layer's MLP.
            assert_ne!(&kept[8..16], &all[8..16], "{mask:?}");
        }
    }
}
