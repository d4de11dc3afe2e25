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
//! - `gelu_erf` on f32: [`super::math::gelu_erf_slice`], vectorised, instead of a scalar `erf`;
//!   `gelu` (the tanh approximation) on f32: [`super::math::gelu_tanh_slice`], instead of a
//!   scalar `tanh`.
//!
//! The models this crate builds from candle pieces (OpenAI CLIP's and ViT-MCi's image towers) also
//! call operations of their own, candle `CustomOp`s that they hold or call directly:
//! [`softmax_last_dim`] (rows split across the pool, with the vectorised `exp`) and the int8 linear
//! layer ([`crate::models::candle_linear`]). Nothing is found by a tensor's address or identity,
//! nor by an operation's name.

use candle_core::cpu_kernels::{self, Conv2dArgs};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};

use super::dense_conv::{dense_conv2d, DenseConvShape};
use super::depthwise::{depthwise_conv2d, DepthwiseShape};

/// Installs the kernels in candle (once per process; later calls do nothing): convolutions, exact
/// and tanh-approximated GELU, the f32 matmul and the parallel element-wise operations. Every
/// loader of a model that runs on candle calls it (MobileCLIP, SigLIP, OpenAI CLIP on candle).
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        cpu_kernels::set_conv2d(conv2d);
        cpu_kernels::set_gelu_erf_f32(gelu_erf_threaded);
        cpu_kernels::set_gelu_tanh_f32(super::math::gelu_tanh_slice);
        cpu_kernels::set_matmul_f32(matmul_f32);
        cpu_kernels::set_chunk_splitter(split_chunks);
    });
}

/// candle's parallel element-wise operations (broadcast adds and products, unary maps) on this
/// crate's pool ([`crate::parallel::for_each_chunk`]) instead of candle's, which has one thread
/// in the browser. candle calls it only above its own size threshold, so it always splits.
fn split_chunks(items: usize, f: &(dyn Fn(std::ops::Range<usize>) + Sync)) {
    #[cfg(test)]
    tests::SPLITS.with(|c| c.set(c.get() + 1));
    crate::parallel::for_each_chunk(items, usize::MAX, f);
}

/// Below this many multiply-adds a product is left to candle's gemm.
const MIN_MATMUL_WORK: usize = 1 << 18;

/// candle's f32 matmul on this crate's packed GEMM ([`super::gemm::product_threaded`]), whose
/// columns split across the pool's threads (candle's gemm runs on one thread in the browser):
/// FastViT's attention stage (its `Linear` layers and attention products). Takes products whose
/// sides each have contiguous rows or contiguous columns.
fn matmul_f32(p: &mut cpu_kernels::MatMulF32) -> bool {
    use super::gemm::{pack_panels_threaded, pack_panels_transposed_threaded, product_threaded, NR};
    let (batches, m, n, k) = (p.batches, p.m, p.n, p.k);
    if m < 2 || n < 2 || k < 2 || batches * m * n * k < MIN_MATMUL_WORK {
        return false;
    }
    // A left side with contiguous columns instead (FastViT's `x.flatten(2).transpose(1, 2)` into
    // its `qkv` Linear) is copied into rows first: a small copy beside the product.
    if p.lhs_cs != 1 && p.lhs_rs != 1 {
        return false;
    }
    let rhs_rows = p.rhs_cs == 1;
    if !rhs_rows && p.rhs_rs != 1 {
        return false;
    }
    if !fits(p.lhs.len(), batches, p.lhs_skip, p.lhs_rs, p.lhs_cs, m, k) || !fits(p.rhs.len(), batches, p.rhs_skip, p.rhs_rs, p.rhs_cs, k, n) {
        return false;
    }
    #[cfg(test)]
    tests::MATMULS_TAKEN.with(|c| c.set(c.get() + 1));
    let ldc = n.div_ceil(NR) * NR;
    let (mut panels, mut rows) = (Vec::new(), Vec::new());
    let mut wide = vec![0.0f32; if ldc == n { 0 } else { m * ldc }];
    for b in 0..batches {
        if b == 0 || p.rhs_skip != 0 {
            let rhs = &p.rhs[b * p.rhs_skip..];
            if rhs_rows {
                pack_panels_threaded(rhs, k, n, p.rhs_rs, &mut panels);
            } else {
                pack_panels_transposed_threaded(rhs, n, k, p.rhs_cs, &mut panels);
            }
        }
        let (mut lhs, mut lda) = (&p.lhs[b * p.lhs_skip..], p.lhs_rs);
        if p.lhs_cs != 1 {
            rows.resize(m * k, 0.0);
            copy_rows(lhs, p.lhs_rs, p.lhs_cs, k, &mut rows);
            (lhs, lda) = (&rows, k);
        }
        let dst = &mut p.dst[b * m * n..(b + 1) * m * n];
        if ldc == n {
            product_threaded(lhs, m, k, lda, &panels, None, dst, n);
        } else {
            product_threaded(lhs, m, k, lda, &panels, None, &mut wide, ldc);
            for (row, out) in wide.chunks_exact(ldc).zip(dst.chunks_exact_mut(n)) {
                out.copy_from_slice(&row[..n]);
            }
        }
    }
    true
}

/// Whether `batches` matrices of `rows x cols`, `skip` apart, with rows `rs` and columns `cs`
/// apart, lie within `len` values.
fn fits(len: usize, batches: usize, skip: usize, rs: usize, cs: usize, rows: usize, cols: usize) -> bool {
    (batches - 1) * skip + (rows - 1) * rs + (cols - 1) * cs < len
}

/// The matrix whose element (i, j) is `src[i * rs + j * cs]` into `dst` as contiguous rows of
/// `cols` values (as many rows as `dst` holds).
fn copy_rows(src: &[f32], rs: usize, cs: usize, cols: usize, dst: &mut [f32]) {
    for (i, row) in dst.chunks_exact_mut(cols).enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = src[i * rs + j * cs];
        }
    }
}

/// The softmax over the last dimension of an f32 tensor on the CPU, as candle-nn's
/// `ops::softmax_last_dim` computes it, with [`softmax_rows`] (a candle operation, forward only):
/// the attention of the towers this crate builds from candle pieces.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&SoftmaxLastDim)
}

struct SoftmaxLastDim;

impl CustomOp1 for SoftmaxLastDim {
    fn name(&self) -> &'static str {
        "clipmatch-softmax-last-dim"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(all) = storage else { candle_core::bail!("{}: f32 input only", self.name()) };
        let Some((start, end)) = layout.contiguous_offsets() else { candle_core::bail!("{}: contiguous input only", self.name()) };
        let mut values = all[start..end].to_vec();
        let row_len = layout.shape().dims().last().copied().unwrap_or(1);
        if row_len > 0 && !values.is_empty() {
            softmax_rows(&mut values, row_len);
        }
        Ok((CpuStorage::F32(values), layout.shape().clone()))
    }
}

/// Softmax of each `row_len`-value row of `values` in place ([`super::math::softmax`], with the
/// vectorised `exp`), the rows split across the pool.
fn softmax_rows(values: &mut [f32], row_len: usize) {
    #[cfg(test)]
    tests::SOFTMAXES.with(|c| c.set(c.get() + 1));
    let rows = values.len() / row_len;
    let out = crate::parallel::DisjointWrites::new(values);
    // About 20 operations a value (max, exp, sum, scale).
    crate::parallel::for_each_chunk(rows, rows * row_len * 20, |range| {
        for r in range {
            // SAFETY: row `r` lies inside `values` and is written by this chunk only.
            let row = unsafe { std::slice::from_raw_parts_mut(out.at(r * row_len), row_len) };
            super::math::softmax(row);
        }
    });
}

/// Values of a GELU slice one thread takes at a time.
const GELU_CHUNK: usize = 1 << 14;

/// The exact GELU ([`super::math::gelu_erf_slice`]) over a tensor's data, in ranges of
/// [`GELU_CHUNK`] values split across threads when there are enough of them: MobileCLIP's MLPs
/// apply it to every pixel of every expanded channel (8 % of the tower's time on one thread).
fn gelu_erf_threaded(xs: &[f32], ys: &mut [f32]) {
    assert_eq!(xs.len(), ys.len(), "gelu_erf lengths");
    let len = xs.len();
    let out = crate::parallel::DisjointWrites::new(ys);
    // About 30 operations a value (a rational erf fit and the product).
    crate::parallel::for_each_chunk(len.div_ceil(GELU_CHUNK), len * 30, |chunks| {
        let (first, end) = (chunks.start * GELU_CHUNK, (chunks.end * GELU_CHUNK).min(len));
        // SAFETY: `first..end` lies inside `ys`, and this range of chunks is written here only.
        let dst = unsafe { std::slice::from_raw_parts_mut(out.at(first), end - first) };
        super::math::gelu_erf_slice(&xs[first..end], dst);
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

    thread_local! {
        /// Products [`matmul_f32`] computed on this thread.
        pub(super) static MATMULS_TAKEN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
        /// Calls of [`softmax_rows`] on this thread.
        pub(super) static SOFTMAXES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
        /// Calls of [`split_chunks`] on this thread.
        pub(super) static SPLITS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

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

    /// Products the matmul hook takes (Linear-like with a broadcast transposed weight and a width
    /// that is not whole panels, batched rows, attention's q·kᵀ, a transposed left side) and ones
    /// it leaves to candle (neither side's rows or columns contiguous, a small product), all
    /// against candle's f64 product.
    #[test]
    fn matmul_on_the_packed_gemm_equals_candles_own() {
        install();
        let t = |dims: &[usize], seed: u32| {
            Tensor::from_vec(crate::kernels::test_values(dims.iter().product(), seed), dims, &Device::Cpu).unwrap()
        };
        let f64 = |x: &Tensor| x.to_dtype(DType::F64).unwrap();
        let check = |a: &Tensor, b: &Tensor, what: &str, ours: bool| {
            let before = MATMULS_TAKEN.with(std::cell::Cell::get);
            let got = a.matmul(b).unwrap();
            assert_eq!(MATMULS_TAKEN.with(std::cell::Cell::get) - before, usize::from(ours), "{what}: taken by the hook");
            let want = f64(a).matmul(&f64(b)).unwrap().to_dtype(DType::F32).unwrap();
            assert!(max_diff(&got, &want) < 1e-4, "{what}: {}", max_diff(&got, &want));
        };
        let (x, w) = (t(&[2, 50, 96], 1), t(&[70, 96], 2));
        check(&x, &w.t().unwrap().broadcast_left(2).unwrap(), "linear, 70 outputs", true);
        check(&t(&[3, 40, 64], 3), &t(&[3, 64, 72], 4), "batched rows", true);
        let (q, k) = (t(&[1, 4, 64, 32], 5), t(&[1, 4, 64, 32], 6));
        check(&q, &k.transpose(2, 3).unwrap(), "attention q kᵀ", true);
        check(&t(&[2, 64, 80], 7).transpose(1, 2).unwrap(), &t(&[2, 64, 48], 8), "transposed left side", true);
        // Every other column: rows 160 and columns 2 apart.
        let strided = t(&[2, 64, 80, 2], 11).narrow(3, 1, 1).unwrap().squeeze(3).unwrap();
        check(&strided, &t(&[2, 80, 48], 12), "strided both ways", false);
        check(&t(&[1, 3, 5], 9), &t(&[1, 5, 2], 10), "small", false);
    }

    /// A large broadcast product and sum go through the installed splitter, value for value as
    /// computed one by one.
    #[test]
    fn candles_element_wise_operations_run_on_the_splitter() {
        install();
        let (c, hw) = (64, 64 * 64);
        let x = Tensor::from_vec(crate::kernels::test_values(c * hw, 21), (1, c, 64, 64), &Device::Cpu).unwrap();
        let gamma = Tensor::from_vec(crate::kernels::test_values(c, 22), (1, c, 1, 1), &Device::Cpu).unwrap();
        let before = SPLITS.with(std::cell::Cell::get);
        let y = (x.broadcast_mul(&gamma).unwrap() + &x).unwrap();
        assert!(SPLITS.with(std::cell::Cell::get) > before, "the splitter was not used");
        let (xs, gs, ys) = (
            x.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            gamma.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        for (i, (&v, &got)) in xs.iter().zip(&ys).enumerate() {
            assert_eq!(got, v * gs[i / hw] + v, "value {i}");
        }
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

    /// `op` on candle tensors of each length in `lens` (values `test_values(n, seed) * scale`)
    /// gives exactly what `kernel` gives on the same values: the installed kernel ran.
    fn unary_runs_on(op: fn(&Tensor) -> Result<Tensor>, kernel: fn(&[f32], &mut [f32]), lens: [usize; 2], seed: u32, scale: f64) {
        install();
        for n in lens {
            let x = (Tensor::from_vec(crate::kernels::test_values(n, seed), n, &Device::Cpu).unwrap() * scale).unwrap();
            let got = op(&x).unwrap().to_vec1::<f32>().unwrap();
            let mut want = vec![0.0f32; n];
            kernel(&x.to_vec1::<f32>().unwrap(), &mut want);
            assert_eq!(got, want, "{n} values");
        }
    }

    #[test]
    fn gelu_erf_on_candle_tensors_uses_the_vectorised_kernel() {
        // Small (one thread) and large (ranges on several threads, a short last one).
        unary_runs_on(Tensor::gelu_erf, super::super::math::gelu_erf_slice, [999, 5 * GELU_CHUNK + 77], 5, 6.0);
    }

    #[test]
    fn gelu_on_candle_tensors_uses_the_vectorised_tanh_kernel() {
        // One range, and candle's parallel ranges (patch 4: 16 Ki values each) with a short last one.
        unary_runs_on(Tensor::gelu, super::super::math::gelu_tanh_slice, [999, 12 * 16 * 1024 + 77], 15, 8.0);
    }

    #[test]
    fn the_softmax_operation_runs_on_the_vectorised_rows() {
        // Attention weights (batch, heads, queries, keys), and a strided view of them.
        let x = (Tensor::from_vec(crate::kernels::test_values(2 * 3 * 50 * 50, 17), (2, 3, 50, 50), &Device::Cpu).unwrap() * 20.0).unwrap();
        for x in [x.clone(), x.transpose(2, 3).unwrap()] {
            let before = SOFTMAXES.with(std::cell::Cell::get);
            let got = softmax_last_dim(&x).unwrap();
            assert_eq!(SOFTMAXES.with(std::cell::Cell::get) - before, 1, "the vectorised softmax ran");
            let rows = x.flatten_to(2).unwrap().to_vec2::<f32>().unwrap();
            let got_rows = got.flatten_to(2).unwrap().to_vec2::<f32>().unwrap();
            for (row, got) in rows.iter().zip(&got_rows) {
                let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
                let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
                for (&v, &g) in row.iter().zip(got) {
                    let want = (v as f64 - max).exp() / sum;
                    assert!((g as f64 - want).abs() <= 1e-6 * want + 1e-9, "{g} vs {want}");
                }
            }
        }
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
