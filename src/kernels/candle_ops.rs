//! This crate's kernels as candle operations, for the models that run on candle-transformers
//! (FastViT in MobileCLIP, SigLIP, OpenAI CLIP with `--engine candle`): [`install`] hands them to
//! the hooks of the patched candle-core (`vendor/candle-core/PATCHES.md`), which asks them before
//! its own CPU code. The models stay candle-transformers' code; only the operations they call
//! get faster.
//!
//! - `conv2d` with one input channel per group (depthwise, any channel multiplier, dilation 1):
//!   [`super::depthwise`], instead of candle's one convolution per group;
//! - `conv2d` with one group (dilation 1): [`super::dense_conv`], the packed matrix product,
//!   instead of candle's gemm behind an element-by-element copy of the input and the output;
//! - `gelu_erf` on f32: [`super::math::gelu_erf_slice`], vectorised, instead of a scalar `erf`.

use candle_core::cpu_kernels::{self, Conv2dArgs};
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

use super::dense_conv::{dense_conv2d, DenseConvShape};
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
    let cpu_f32 = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
    if !cpu_f32(input) || !cpu_f32(kernel) || args.dilation != 1 {
        return Ok(None);
    }
    let op: Box<dyn CustomOp2 + Send + Sync> = if let Some(shape) = depthwise_shape(input, kernel, args)? {
        Box::new(DepthwiseConv(shape))
    } else if let Some(shape) = dense_shape(input, kernel, args)? {
        Box::new(DenseConv(shape))
    } else {
        return Ok(None);
    };
    // `apply_op2_arc` records the operation where gradients are tracked (candle-nn's BatchNorm
    // keeps its statistics as variables, so FastViT's fused kernels are tracked); a backward
    // pass through it then fails, naming it, instead of losing the gradient.
    input.contiguous()?.apply_op2_arc(&kernel.contiguous()?, std::sync::Arc::new(op)).map(Some)
}

/// The shape of a convolution with one input channel per group (CPU, f32, dilation 1 checked).
fn depthwise_shape(input: &Tensor, kernel: &Tensor, args: Conv2dArgs) -> Result<Option<DepthwiseShape>> {
    if args.groups <= 1 {
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

/// The shape of a convolution with one group (CPU, f32, dilation 1 checked).
fn dense_shape(input: &Tensor, kernel: &Tensor, args: Conv2dArgs) -> Result<Option<DenseConvShape>> {
    let (batch, c_in, height, width) = input.dims4()?;
    let (c_out, c_in_k, kernel_h, kernel_w) = kernel.dims4()?;
    if args.groups != 1 || c_in_k != c_in {
        return Ok(None);
    }
    let shape = DenseConvShape { batch, c_in, c_out, height, width, kernel_h, kernel_w, stride: args.stride, padding: args.padding };
    Ok(shape.is_valid().then_some(shape))
}

/// The f32 slices of two contiguous CPU tensors.
fn contiguous_f32<'a>(
    name: &str,
    s1: &'a CpuStorage,
    l1: &Layout,
    s2: &'a CpuStorage,
    l2: &Layout,
) -> Result<(&'a [f32], &'a [f32])> {
    let (CpuStorage::F32(a), CpuStorage::F32(b)) = (s1, s2) else {
        candle_core::bail!("{name}: f32 tensors only")
    };
    let (Some((a0, a1)), Some((b0, b1))) = (l1.contiguous_offsets(), l2.contiguous_offsets()) else {
        candle_core::bail!("{name}: contiguous tensors only")
    };
    Ok((&a[a0..a1], &b[b0..b1]))
}

/// [`dense_conv2d`] as a candle operation on contiguous CPU tensors.
struct DenseConv(DenseConvShape);

impl CustomOp2 for DenseConv {
    fn name(&self) -> &'static str {
        "clipmatch-dense-conv2d"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (input, weights) = contiguous_f32(self.name(), s1, l1, s2, l2)?;
        let s = self.0;
        let mut out = vec![0.0f32; s.out_len()];
        dense_conv2d(&s, input, weights, &mut out);
        Ok((CpuStorage::F32(out), Shape::from((s.batch, s.c_out, s.out_h(), s.out_w()))))
    }
}

/// [`depthwise_conv2d`] as a candle operation on contiguous CPU tensors.
struct DepthwiseConv(DepthwiseShape);

impl CustomOp2 for DepthwiseConv {
    fn name(&self) -> &'static str {
        "clipmatch-depthwise-conv2d"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (input, weights) = contiguous_f32(self.name(), s1, l1, s2, l2)?;
        let s = self.0;
        let mut out = vec![0.0f32; s.out_len()];
        depthwise_conv2d(&s, input, weights, &mut out);
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

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims());
        let (a, b) = (a.flatten_all().unwrap().to_vec1::<f32>().unwrap(), b.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    /// candle's own convolution of the same tensors in f64 (this crate's kernels take f32 only).
    fn candle_f64(x: &Tensor, w: &Tensor, pad: usize, stride: usize, groups: usize) -> Tensor {
        let f64 = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
        f64(x).conv2d(&f64(w), pad, stride, 1, groups).unwrap().to_dtype(DType::F32).unwrap()
    }

    #[test]
    fn grouped_and_dense_conv2d_equal_candles_own() {
        install();
        // (batch, channels, multiplier, side, kernel, stride, padding): depthwise as FastViT's,
        // two outputs a channel, strided; then the same input through a dense kernel.
        for (b, c, m, side, k, stride, pad) in [(2, 4, 1, 12, 3, 1, 1), (1, 3, 2, 11, 7, 2, 3), (1, 5, 1, 7, 7, 1, 3)] {
            let x = tensor((b, c, side, side), 1);
            let w = tensor((c * m, 1, k, k), 2);
            let dense = tensor((c * m, c, k, k), 3);
            let pointwise = tensor((c * m, c, 1, 1), 4);
            // Also a transposed (non-contiguous) input view.
            for x in [x.clone(), x.transpose(2, 3).unwrap()] {
                let cases = [(&w, pad, stride, c), (&dense, pad, stride, 1), (&pointwise, 0, 1, 1)];
                for (kernel, pad, stride, groups) in cases {
                    let got = x.conv2d(kernel, pad, stride, 1, groups).unwrap();
                    let want = candle_f64(&x, kernel, pad, stride, groups);
                    let d = max_diff(&got, &want);
                    assert!(d < 1e-5, "{b}x{c}x{side} kernel {:?} s{stride} groups {groups}: {d}", kernel.dims());
                }
            }
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
    fn each_convolution_goes_to_its_kernel_or_stays_with_candle() {
        let x = tensor((1, 4, 8, 8), 3);
        let args = |groups, dilation| Conv2dArgs { padding: 1, stride: 1, dilation, groups };
        let depthwise = tensor((8, 1, 3, 3), 4);
        let dense = tensor((4, 4, 3, 3), 4);
        assert!(depthwise_shape(&x, &depthwise, args(4, 1)).unwrap().is_some());
        assert!(dense_shape(&x, &depthwise, args(4, 1)).unwrap().is_none());
        assert!(dense_shape(&x, &dense, args(1, 1)).unwrap().is_some());
        assert!(depthwise_shape(&x, &dense, args(1, 1)).unwrap().is_none());
        // Two inputs a group, dilated, f64, a kernel larger than the padded input: candle's.
        assert!(conv2d(&x, &tensor((4, 2, 3, 3), 4), args(2, 1)).unwrap().is_none());
        assert!(conv2d(&x, &depthwise, args(4, 2)).unwrap().is_none());
        let f64 = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
        assert!(conv2d(&f64(&x), &f64(&dense), args(1, 1)).unwrap().is_none());
        assert!(conv2d(&x, &tensor((4, 1, 11, 11), 4), args(4, 1)).unwrap().is_none());
        assert!(conv2d(&x, &tensor((4, 4, 11, 11), 4), args(1, 1)).unwrap().is_none());
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
