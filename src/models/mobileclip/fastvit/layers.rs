//! The fused tower's layers on this crate's kernels, each reading its input from one buffer and
//! writing another (NCHW, one image): convolutions ([`Conv`]: dense kxk and 1x1 on
//! [`dense_conv2d`], depthwise on [`depthwise_conv2d`], int8 1x1 on [`QuantLinear`]) followed by
//! one pass that adds the bias, a residual and GELU ([`epilogue`]); linear layers (attention,
//! squeeze-excite, the head) on the CLIP encoder's [`Linear`]; squeeze-excite ([`Se`]).

use super::stored::{bad, StoredTensors, Values};
use crate::error::ModelError;
use crate::kernels::dense_conv::{dense_conv2d, DenseConvShape};
use crate::kernels::depthwise::{depthwise_conv2d, DepthwiseShape};
use crate::kernels::math::{exp, gelu_erf_slice};
use crate::kernels::qgemm::{QuantLinear, MAX_IN_DIM};
use crate::models::clip::encoder::{Linear, Precision, TensorValues};
use crate::parallel::for_each_row_block;

/// What follows a convolution's bias.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Act {
    None,
    Gelu,
}

/// How a convolution's weights are held.
enum Weights {
    /// One group, any kernel (`c_out x c_in·k·k`), f32.
    Dense(Vec<f32>),
    /// One input channel per group, `c_out / c_in` outputs each (`c_out x k·k`), f32.
    Depthwise(Vec<f32>),
    /// A 1x1 convolution as int8 rows with per-output-channel scales.
    Int8(QuantLinear),
}

/// A convolution with bias (padding `k / 2` on every side, as timm's FastViT pads).
pub struct Conv {
    weights: Weights,
    bias: Vec<f32>,
    pub c_in: usize,
    pub c_out: usize,
    k: usize,
    stride: usize,
}

impl Conv {
    /// Takes `{name}.weight` (`c_out x per_group x k x k`: one group if `per_group` is
    /// `c_in`, depthwise if 1) and `{name}.bias`. Only a 1x1 convolution may be int8.
    pub fn take(
        src: &mut StoredTensors,
        name: &str,
        c_in: usize,
        stride: usize,
    ) -> Result<Self, ModelError> {
        let w_name = format!("{name}.weight");
        let shape = match src.shape(&w_name) {
            Some(s) if s.len() == 4 && s[2] == s[3] && s[2] % 2 == 1 && s[0] > 0 => s.to_vec(),
            Some(s) => {
                return Err(bad(format!(
                    "tensor {w_name} has shape {s:?}; expected [out, in per group, k, k], k odd"
                )))
            }
            None => return Err(bad(format!(
                "tensor {w_name} is missing (the file is damaged or not a fused MobileCLIP tower)"
            ))),
        };
        let (c_out, per_group, k) = (shape[0], shape[1], shape[2]);
        let depthwise = per_group == 1 && c_in > 1 && c_out % c_in == 0;
        if !depthwise && per_group != c_in {
            return Err(bad(format!(
                "tensor {w_name} has shape {shape:?}; its input is {c_in} channels"
            )));
        }
        let weights = match src.take(&w_name, &shape)? {
            Values::F32(w) if depthwise => Weights::Depthwise(w),
            Values::F32(w) => Weights::Dense(w),
            Values::Int8 { values, scales } if k == 1 && !depthwise && c_in <= MAX_IN_DIM => {
                let mut q = QuantLinear::zeros(c_out, c_in, false);
                q.set_rows(0, &values, &scales);
                Weights::Int8(q)
            }
            Values::Int8 { .. } => {
                return Err(bad(format!(
                    "{w_name} is int8; only 1x1 convolutions and linear layers may be"
                )))
            }
        };
        let bias = src.take(&format!("{name}.bias"), &[c_out])?.into_f32();
        Ok(Self {
            weights,
            bias,
            c_in,
            c_out,
            k,
            stride,
        })
    }

    /// The output side for an input `side` wide (square).
    pub fn out_side(&self, side: usize) -> usize {
        (side + 2 * (self.k / 2) - self.k) / self.stride + 1
    }

    pub fn is_int8(&self) -> bool {
        matches!(self.weights, Weights::Int8(_))
    }

    pub fn bytes(&self) -> usize {
        let w = match &self.weights {
            Weights::Dense(w) | Weights::Depthwise(w) => w.len() * 4,
            Weights::Int8(q) => q.bytes(),
        };
        w + self.bias.len() * 4
    }

    /// `out = conv(x)` (no bias: [`epilogue`] adds it) for `x` `c_in x side x side`; `out`
    /// holds `c_out x out_side²` values. Returns the output side.
    pub fn run(&self, x: &[f32], side: usize, out: &mut [f32]) -> usize {
        let o = self.out_side(side);
        let x = &x[..self.c_in * side * side];
        let out = &mut out[..self.c_out * o * o];
        match &self.weights {
            Weights::Dense(w) => {
                let shape = DenseConvShape {
                    batch: 1,
                    c_in: self.c_in,
                    c_out: self.c_out,
                    height: side,
                    width: side,
                    kernel_h: self.k,
                    kernel_w: self.k,
                    stride: self.stride,
                    padding: self.k / 2,
                };
                dense_conv2d(&shape, x, w, out);
            }
            Weights::Depthwise(w) => {
                let shape = DepthwiseShape {
                    batch: 1,
                    channels: self.c_in,
                    multiplier: self.c_out / self.c_in,
                    height: side,
                    width: side,
                    kernel_h: self.k,
                    kernel_w: self.k,
                    stride: self.stride,
                    padding: self.k / 2,
                };
                depthwise_conv2d(&shape, x, w, out);
            }
            Weights::Int8(q) => q.forward_columns(x, side * side, out),
        }
        o
    }

    /// [`Self::run`] then [`epilogue`] with this convolution's bias.
    pub fn apply(
        &self,
        x: &[f32],
        side: usize,
        out: &mut [f32],
        residual: Option<&[f32]>,
        act: Act,
    ) -> usize {
        let o = self.run(x, side, out);
        epilogue(
            &mut out[..self.c_out * o * o],
            o * o,
            Some(&self.bias),
            residual,
            act,
        );
        o
    }
}

/// Values per GELU pass on the stack.
const CHUNK: usize = 256;

/// `act` of every value of `out` in place (`pixels` values a channel).
pub fn activate(out: &mut [f32], pixels: usize, act: Act) {
    epilogue(out, pixels, None, None, act);
}

/// `out[c][p] = act(out[c][p] + bias[c] + residual[c][p])` (`pixels` values a channel), the
/// channels split across threads.
pub fn epilogue(
    out: &mut [f32],
    pixels: usize,
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    act: Act,
) {
    for_each_row_block(out, pixels, |first, rows| {
        let mut tmp = [0.0f32; CHUNK];
        for (i, row) in rows.chunks_exact_mut(pixels).enumerate() {
            let c = first + i;
            let b = bias.map_or(0.0, |b| b[c]);
            let res = residual.map(|r| &r[c * pixels..(c + 1) * pixels]);
            for (j, part) in row.chunks_mut(CHUNK).enumerate() {
                let t = &mut tmp[..part.len()];
                match res {
                    Some(r) => {
                        for ((t, v), r) in t.iter_mut().zip(part.iter()).zip(&r[j * CHUNK..]) {
                            *t = v + b + r;
                        }
                    }
                    None => t.iter_mut().zip(part.iter()).for_each(|(t, v)| *t = v + b),
                }
                match act {
                    Act::Gelu => gelu_erf_slice(t, part),
                    Act::None => part.copy_from_slice(t),
                }
            }
        }
    });
}

/// Takes a linear layer's `{name}.weight` (`out x in`, or a 1x1 convolution's `out x in x 1 x 1`)
/// and `{name}.bias`: f32 or int8 as stored.
pub fn take_linear(
    src: &mut StoredTensors,
    name: &str,
    out: usize,
    inputs: usize,
    conv: bool,
) -> Result<Linear, ModelError> {
    let shape: Vec<usize> = if conv {
        vec![out, inputs, 1, 1]
    } else {
        vec![out, inputs]
    };
    let values = src.take(&format!("{name}.weight"), &shape)?;
    let precision = if values.is_int8() && inputs <= MAX_IN_DIM {
        Precision::Int8
    } else {
        Precision::F32
    };
    let mut linear = Linear::zeros(precision, out, inputs, true);
    match &values {
        Values::F32(w) => linear.set_rows(0, &TensorValues::F32(w), 1.0)?,
        Values::Int8 { values, scales } => {
            linear.set_rows(0, &TensorValues::Int8 { values, scales }, 1.0)?
        }
    }
    linear.set_bias(
        0,
        &src.take(&format!("{name}.bias"), &[out])?.into_f32(),
        1.0,
    );
    Ok(linear)
}

/// Squeeze-excite (timm's `SEModule`): each channel times
/// `sigmoid(fc2(relu(fc1(mean over the pixels))))`.
pub struct Se {
    fc1: Linear,
    fc2: Linear,
    c: usize,
    rd: usize,
}

impl Se {
    /// `{name}.fc1` and `{name}.fc2` over `c` channels, if the file has them.
    pub fn take(src: &mut StoredTensors, name: &str, c: usize) -> Result<Option<Self>, ModelError> {
        let Some(rd) = src
            .shape(&format!("{name}.fc1.weight"))
            .and_then(|s| s.first().copied())
        else {
            return Ok(None);
        };
        if rd == 0 {
            return Err(bad(format!("tensor {name}.fc1.weight is empty")));
        }
        let fc1 = take_linear(src, &format!("{name}.fc1"), rd, c, true)?;
        let fc2 = take_linear(src, &format!("{name}.fc2"), c, rd, true)?;
        Ok(Some(Self { fc1, fc2, c, rd }))
    }

    pub fn bytes(&self) -> usize {
        self.fc1.bytes() + self.fc2.bytes()
    }

    pub fn linears(&self) -> [&Linear; 2] {
        [&self.fc1, &self.fc2]
    }

    /// Scales the channels of `x` (`c x pixels`) in place.
    pub fn apply(&self, x: &mut [f32], pixels: usize) {
        let x = &mut x[..self.c * pixels];
        let mean: Vec<f32> = x
            .chunks_exact(pixels)
            .map(|row| row.iter().sum::<f32>() / pixels as f32)
            .collect();
        let mut hidden = vec![0.0f32; self.rd];
        self.fc1.forward(&mean, 1, &mut hidden);
        hidden.iter_mut().for_each(|h| *h = h.max(0.0));
        let mut gate = vec![0.0f32; self.c];
        self.fc2.forward(&hidden, 1, &mut gate);
        for_each_row_block(x, pixels, |first, rows| {
            for (i, row) in rows.chunks_exact_mut(pixels).enumerate() {
                let g = 1.0 / (1.0 + exp(-gate[first + i]));
                row.iter_mut().for_each(|v| *v *= g);
            }
        });
    }
}
