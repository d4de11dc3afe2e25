//! This crate's kernels as candle operations, for the models that run on candle-transformers
//! (FastViT in MobileCLIP, SigLIP, OpenAI CLIP with `--engine candle`): [`install`] hands them to
//! the hooks of the patched candle-core (`vendor/candle-core/PATCHES.md`), which asks them before
//! its own CPU code. The models stay candle-transformers' code; only the operations they call
//! get faster.
//!
//! - `conv2d` with one input channel per group (depthwise, any channel multiplier, dilation 1):
//!   [`super::depthwise`], as a candle `CustomOp2`, instead of candle's one convolution per group;
//! - `gelu_erf` on f32: [`super::math::gelu_erf_slice`], vectorised, instead of a scalar `erf`.

use candle_core::cpu_kernels::{self, Conv2dArgs};
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

use super::depthwise::{depthwise_conv2d, DepthwiseShape};

/// Installs the kernels in candle (once per process; later calls do nothing). The loaders of
/// the models that use these operations call it (MobileCLIP's FastViT; SigLIP and OpenAI CLIP
/// on candle have no grouped convolution and no exact GELU).
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        cpu_kernels::set_conv2d(conv2d);
        cpu_kernels::set_gelu_erf_f32(super::math::gelu_erf_slice);
    });
}

/// The convolutions this crate computes; `None` leaves the others to candle.
fn conv2d(input: &Tensor, kernel: &Tensor, args: Conv2dArgs) -> Result<Option<Tensor>> {
    match depthwise_shape(input, kernel, args)? {
        // `apply_op2` records the operation where gradients are tracked (candle-nn's BatchNorm
        // keeps its statistics as variables, so FastViT's fused kernels are tracked); a
        // backward pass through it then fails, naming it, instead of losing the gradient.
        Some(shape) => input.contiguous()?.apply_op2(&kernel.contiguous()?, DepthwiseConv(shape)).map(Some),
        None => Ok(None),
    }
}

/// The depthwise shape of a CPU f32 convolution with one input channel per group.
fn depthwise_shape(input: &Tensor, kernel: &Tensor, args: Conv2dArgs) -> Result<Option<DepthwiseShape>> {
    let cpu_f32 = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
    if !cpu_f32(input) || !cpu_f32(kernel) || args.groups <= 1 || args.dilation != 1 {
        return Ok(None);
    }
    let (batch, channels, height, width) = input.dims4()?;
    let (out_channels, per_group, kernel_h, kernel_w) = kernel.dims4()?;
    if per_group != 1 || args.groups != channels || out_channels % channels != 0 {
        return Ok(None);
    }
    let shape = DepthwiseShape {
        batch,
        channels,
        multiplier: out_channels / channels,
        height,
        width,
        kernel_h,
        kernel_w,
        stride: args.stride,
        padding: args.padding,
    };
    // A shape candle would refuse is left to candle, for its error message.
    Ok(shape.is_valid().then_some(shape))
}

/// [`depthwise_conv2d`] as a candle operation on contiguous CPU tensors.
struct DepthwiseConv(DepthwiseShape);

impl CustomOp2 for DepthwiseConv {
    fn name(&self) -> &'static str {
        "clipmatch-depthwise-conv2d"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(input), CpuStorage::F32(weights)) = (s1, s2) else {
            candle_core::bail!("{}: f32 tensors only", self.name())
        };
        let (Some((i0, i1)), Some((w0, w1))) = (l1.contiguous_offsets(), l2.contiguous_offsets()) else {
            candle_core::bail!("{}: contiguous tensors only", self.name())
        };
        let s = self.0;
        let mut out = vec![0.0f32; s.out_len()];
        depthwise_conv2d(&s, &input[i0..i1], &weights[w0..w1], &mut out);
        Ok((CpuStorage::F32(out), Shape::from((s.batch, s.out_channels(), s.out_h(), s.out_w()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn tensor(len_shape: (usize, usize, usize, usize), seed: u32) -> Tensor {
        let (a, b, c, d) = len_shape;
        Tensor::from_vec(crate::kernels::test_values(a * b * c * d, seed), len_shape, &Device::Cpu).unwrap()
    }

    /// A grouped kernel `(c_out, 1, kh, kw)` as the equivalent dense one `(c_out, c_in, kh, kw)`:
    /// zero but for output channel `o`'s own input channel `o / multiplier`.
    fn dense(kernel: &Tensor, channels: usize) -> Tensor {
        let (c_out, _, kh, kw) = kernel.dims4().unwrap();
        let k = kernel.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut out = vec![0.0f32; c_out * channels * kh * kw];
        for o in 0..c_out {
            let c = o / (c_out / channels);
            out[(o * channels + c) * kh * kw..][..kh * kw].copy_from_slice(&k[o * kh * kw..][..kh * kw]);
        }
        Tensor::from_vec(out, (c_out, channels, kh, kw), &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims());
        let (a, b) = (a.flatten_all().unwrap().to_vec1::<f32>().unwrap(), b.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn grouped_conv2d_equals_candles_dense_convolution_of_the_same_kernel() {
        install();
        // (batch, channels, multiplier, side, kernel, stride, padding), and a transposed input view.
        for (b, c, m, side, k, stride, pad) in [(2, 4, 1, 12, 3, 1, 1), (1, 3, 2, 11, 7, 2, 3), (1, 5, 1, 7, 7, 1, 3)] {
            let x = tensor((b, c, side, side), 1);
            let w = tensor((c * m, 1, k, k), 2);
            assert_eq!(depthwise_shape(&x, &w, Conv2dArgs { padding: pad, stride, dilation: 1, groups: c }).unwrap().is_some(), true);
            let got = x.conv2d(&w, pad, stride, 1, c).unwrap();
            // groups = 1 is candle's own path (the hook leaves it alone).
            let want = x.conv2d(&dense(&w, c), pad, stride, 1, 1).unwrap();
            assert!(max_diff(&got, &want) < 1e-5, "{b}x{c}x{side} k{k} s{stride}: {}", max_diff(&got, &want));
            let xt = x.transpose(2, 3).unwrap();
            let got_t = xt.conv2d(&w, pad, stride, 1, c).unwrap();
            let want_t = xt.conv2d(&dense(&w, c), pad, stride, 1, 1).unwrap();
            assert!(max_diff(&got_t, &want_t) < 1e-5, "transposed view");
        }
    }

    #[test]
    fn a_backward_pass_through_the_kernel_fails_naming_it() {
        install();
        let x = candle_core::Var::from_tensor(&tensor((1, 2, 5, 5), 1)).unwrap();
        let y = x.conv2d(&tensor((2, 1, 3, 3), 2), 1, 1, 1, 2).unwrap();
        let err = y.sum_all().unwrap().backward().unwrap_err().to_string();
        assert!(err.contains("clipmatch-depthwise-conv2d"), "{err}");
    }

    #[test]
    fn other_convolutions_are_left_to_candle() {
        let x = tensor((1, 4, 8, 8), 3);
        let args = |groups, dilation| Conv2dArgs { padding: 1, stride: 1, dilation, groups };
        // Dense, two inputs a group, dilated, f64, a kernel larger than the padded input.
        assert!(depthwise_shape(&x, &tensor((4, 4, 3, 3), 4), args(1, 1)).unwrap().is_none());
        assert!(depthwise_shape(&x, &tensor((4, 2, 3, 3), 4), args(2, 1)).unwrap().is_none());
        assert!(depthwise_shape(&x, &tensor((4, 1, 3, 3), 4), args(4, 2)).unwrap().is_none());
        let x64 = x.to_dtype(DType::F64).unwrap();
        assert!(depthwise_shape(&x64, &tensor((4, 1, 3, 3), 4).to_dtype(DType::F64).unwrap(), args(4, 1)).unwrap().is_none());
        assert!(depthwise_shape(&x, &tensor((4, 1, 11, 11), 4), args(4, 1)).unwrap().is_none());
    }

    #[test]
    fn gelu_erf_on_candle_tensors_uses_the_vectorised_kernel() {
        install();
        let x = Tensor::from_vec(crate::kernels::test_values(999, 5), 999, &Device::Cpu).unwrap();
        let x = (x * 6.0).unwrap();
        let got = x.gelu_erf().unwrap().to_vec1::<f32>().unwrap();
        let mut want = vec![0.0f32; 999];
        super::super::math::gelu_erf_slice(&x.to_vec1::<f32>().unwrap(), &mut want);
        assert_eq!(got, want);
    }

    #[test]
    fn batched_matmul_with_a_transposed_left_side_and_a_shared_right_side() {
        // FastViT's attention: `x.flatten(2).transpose(1, 2)` through a Linear (a broadcast
        // weight). candle-core 0.11.1 folded the batch into the rows here and read every image
        // but the first from the wrong place (PATCHES.md, 1).
        let (b, c, n, out) = (3, 8, 5, 6);
        let x = Tensor::from_vec(crate::kernels::test_values(b * c * n, 6), (b, c, n), &Device::Cpu).unwrap();
        let w = Tensor::from_vec(crate::kernels::test_values(out * c, 7), (out, c), &Device::Cpu).unwrap();
        let linear = candle_nn::Linear::new(w, None);
        let xt = x.transpose(1, 2).unwrap(); // (b, n, c), rows 1 apart
        let batched = xt.apply(&linear).unwrap();
        for i in 0..b {
            let single = xt.get(i).unwrap().contiguous().unwrap().apply(&linear).unwrap();
            let diff = max_diff(&batched.get(i).unwrap(), &single);
            assert!(diff < 1e-6, "image {i}: {diff}");
        }
    }
}
