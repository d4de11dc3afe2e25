//! This crate's kernels as candle operations (`CustomOp`s, forward only), which the towers this
//! crate builds from candle pieces apply explicitly: OpenAI CLIP's image tower on candle
//! (`--engine candle`), MobileCLIP-B's ViT-MCi and MobileCLIP's text tower.
//!
//! - [`matmul`]: a batched f32 product on the packed GEMM, its output columns split across the
//!   pool (candle's gemm runs on one thread in the browser); attention's `q · kᵀ` and `w · v`;
//! - [`conv2d`]: with one input channel per group (depthwise) on [`super::depthwise`], instead of
//!   candle's one convolution per group; with one group on [`super::dense_conv`];
//! - [`gelu_erf`]: the exact GELU, vectorised ([`super::math::gelu_erf_slice`]) and split across
//!   the pool;
//! - [`softmax_last_dim`]: rows split across the pool, with the vectorised `exp`;
//! - the linear layers' products ([`crate::models::candle_linear`]).
//!
//! Each falls back to candle's own operation for what it does not take (another dtype or device,
//! a layout it does not read, a tiny product), so a caller never needs to check. Models that are
//! candle-transformers' code (FastViT and SigLIP with `--engine candle`, the text towers of
//! OpenAI CLIP and SigLIP) run on candle as published, with the vectorised GELUs of
//! `vendor/candle-core` (PATCHES.md): nothing is installed into candle, nothing is found by a
//! tensor's address or identity, nor by an operation's name.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use candle_nn::Conv2dConfig;

use super::dense_conv::{dense_conv2d, DenseConvShape};
use super::depthwise::{depthwise_conv2d, DepthwiseShape};

/// Below this many multiply-adds a product is left to candle's gemm.
const MIN_MATMUL_WORK: usize = 1 << 18;

/// `a · b` over the last two dimensions, batched over the others (which must be equal), as
/// candle's `Tensor::matmul`. f32 CPU products whose sides each have contiguous rows or
/// contiguous columns run on this crate's packed GEMM, split across the pool; others on candle's.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let Some(op) = MatMul::of(a, b)? else { return a.matmul(b) };
    // A side read neither by rows nor by columns is made contiguous first.
    let readable = |t: &Tensor| strides_of(t.layout()).is_some();
    let a = if readable(a) { a.clone() } else { a.contiguous()? };
    let b = if readable(b) { b.clone() } else { b.contiguous()? };
    a.apply_op2_no_bwd(&b, &op)
}

/// A product [`matmul`] computes: `batches` of `m x k` times `k x n`.
struct MatMul {
    batches: usize,
    m: usize,
    n: usize,
    k: usize,
    out_dims: Vec<usize>,
}

impl MatMul {
    fn of(a: &Tensor, b: &Tensor) -> Result<Option<Self>> {
        let cpu_f32 = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
        let (da, db) = (a.dims(), b.dims());
        if !cpu_f32(a) || !cpu_f32(b) || da.len() < 2 || da.len() != db.len() || da[..da.len() - 2] != db[..db.len() - 2] {
            return Ok(None);
        }
        let r = da.len();
        let (m, k, n) = (da[r - 2], da[r - 1], db[r - 1]);
        if db[r - 2] != k {
            return Ok(None);
        }
        let batches: usize = da[..r - 2].iter().product();
        if m < 2 || n < 2 || k < 2 || batches * m * n * k < MIN_MATMUL_WORK {
            return Ok(None);
        }
        let mut out_dims = da.to_vec();
        out_dims[r - 1] = n;
        Ok(Some(Self { batches, m, n, k, out_dims }))
    }
}

/// A side of a batched product as its layout holds it: rows `rs` and columns `cs` apart, batches
/// `skip` apart ([`strides_of`]).
struct Side<'a> {
    values: &'a [f32],
    rs: usize,
    cs: usize,
    skip: usize,
}

/// The row, column and batch strides of a side as `layout` holds it, if [`MatMul`] reads it in
/// place: rows or columns contiguous, and one stride for the whole batch (every batch dimension
/// larger than 1 laid out as one, or all of them broadcast).
fn strides_of(layout: &Layout) -> Option<(usize, usize, usize)> {
    let (dims, strides) = (layout.dims(), layout.stride());
    let r = dims.len();
    let (rs, cs) = (strides[r - 2], strides[r - 1]);
    let (mut skip, mut expected) = (None, None);
    for d in (0..r - 2).rev() {
        if dims[d] == 1 {
            continue;
        }
        match expected {
            None => skip = Some(strides[d]),
            Some(e) if e != strides[d] => return None,
            Some(_) => {}
        }
        expected = Some(strides[d] * dims[d]);
    }
    let skip = skip.unwrap_or(0);
    (rs == 1 || cs == 1).then_some((rs, cs, skip))
}

impl<'a> Side<'a> {
    fn of(storage: &'a CpuStorage, layout: &Layout, batches: usize, rows: usize, cols: usize) -> Result<Self> {
        let CpuStorage::F32(all) = storage else { candle_core::bail!("clipmatch-matmul: f32 only") };
        let Some((rs, cs, skip)) = strides_of(layout) else {
            candle_core::bail!("clipmatch-matmul: a side it does not read in place")
        };
        let values = &all[layout.start_offset()..];
        if !fits(values.len(), batches, skip, rs, cs, rows, cols) {
            candle_core::bail!("clipmatch-matmul: a side larger than its storage")
        }
        Ok(Self { values, rs, cs, skip })
    }
}

impl CustomOp2 for MatMul {
    fn name(&self) -> &'static str {
        "clipmatch-matmul"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        use super::gemm::{pack_panels_threaded, pack_panels_transposed_threaded, product_threaded, NR};
        let (batches, m, n, k) = (self.batches, self.m, self.n, self.k);
        let (lhs, rhs) = (Side::of(s1, l1, batches, m, k)?, Side::of(s2, l2, batches, k, n)?);
        #[cfg(test)]
        tests::MATMULS.with(|c| c.set(c.get() + 1));
        let mut dst = vec![0.0f32; batches * m * n];
        let ldc = n.div_ceil(NR) * NR;
        let (mut panels, mut rows) = (Vec::new(), Vec::new());
        let mut wide = vec![0.0f32; if ldc == n { 0 } else { m * ldc }];
        for b in 0..batches {
            if b == 0 || rhs.skip != 0 {
                let values = &rhs.values[b * rhs.skip..];
                if rhs.cs == 1 {
                    pack_panels_threaded(values, k, n, rhs.rs, &mut panels);
                } else {
                    pack_panels_transposed_threaded(values, n, k, rhs.cs, &mut panels);
                }
            }
            let (mut x, mut lda) = (&lhs.values[b * lhs.skip..], lhs.rs);
            if lhs.cs != 1 {
                // A left side with contiguous columns (FastViT's `x.flatten(2).transpose(1, 2)`)
                // is copied into rows: a small copy beside the product.
                rows.resize(m * k, 0.0);
                copy_rows(x, lhs.rs, lhs.cs, k, &mut rows);
                (x, lda) = (&rows, k);
            }
            let out = &mut dst[b * m * n..(b + 1) * m * n];
            if ldc == n {
                product_threaded(x, m, k, lda, &panels, None, out, n);
            } else {
                product_threaded(x, m, k, lda, &panels, None, &mut wide, ldc);
                for (row, o) in wide.chunks_exact(ldc).zip(out.chunks_exact_mut(n)) {
                    o.copy_from_slice(&row[..n]);
                }
            }
        }
        Ok((CpuStorage::F32(dst), Shape::from(self.out_dims.clone())))
    }
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
        let mut values = contiguous_f32(self.name(), storage, layout)?.to_vec();
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

/// The exact GELU (`x Φ(x)`) of an f32 CPU tensor, vectorised ([`super::math::gelu_erf_slice`])
/// and split across the pool in ranges of [`GELU_CHUNK`] values; other tensors on candle's
/// `gelu_erf`.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        return x.gelu_erf();
    }
    x.contiguous()?.apply_op1_no_bwd(&GeluErf)
}

struct GeluErf;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "clipmatch-gelu-erf"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let xs = contiguous_f32(self.name(), storage, layout)?;
        let mut out = vec![0.0f32; xs.len()];
        gelu_erf_threaded(xs, &mut out);
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// [`super::math::gelu_erf_slice`] in ranges split across threads when there are enough values.
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

/// `input.conv2d(kernel, ..)` with `args` as candle-nn's `Conv2d` holds them (input `(b, c_in, h,
/// w)`, kernel `(c_out, c_in / groups, kh, kw)`, no bias):
/// f32 CPU convolutions with one input channel per group or one group (dilation 1) on this
/// crate's kernels, others on candle's.
pub fn conv2d(input: &Tensor, kernel: &Tensor, args: Conv2dConfig) -> Result<Tensor> {
    let op: Box<dyn CustomOp2 + Send + Sync> = match conv_op(input, kernel, args)? {
        Some(op) => op,
        None => return input.conv2d(kernel, args.padding, args.stride, args.dilation, args.groups),
    };
    // `apply_op2_arc` records the operation where gradients are tracked (candle-nn's BatchNorm
    // keeps its statistics as variables); a backward pass through it then fails, naming it,
    // instead of losing the gradient.
    input.contiguous()?.apply_op2_arc(&kernel.contiguous()?, std::sync::Arc::new(op))
}

/// The operation of this crate that computes the convolution, if one does.
fn conv_op(input: &Tensor, kernel: &Tensor, args: Conv2dConfig) -> Result<Option<Box<dyn CustomOp2 + Send + Sync>>> {
    let cpu_f32 = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
    if !cpu_f32(input) || !cpu_f32(kernel) || args.dilation != 1 {
        return Ok(None);
    }
    Ok(if let Some(shape) = depthwise_shape(input, kernel, args)? {
        Some(Box::new(DepthwiseConv(shape)))
    } else {
        dense_shape(input, kernel, args)?.map(|shape| Box::new(DenseConv(shape)) as Box<dyn CustomOp2 + Send + Sync>)
    })
}

/// The shape of a convolution with one input channel per group (CPU, f32, dilation 1 checked).
fn depthwise_shape(input: &Tensor, kernel: &Tensor, args: Conv2dConfig) -> Result<Option<DepthwiseShape>> {
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
fn dense_shape(input: &Tensor, kernel: &Tensor, args: Conv2dConfig) -> Result<Option<DenseConvShape>> {
    let (batch, c_in, height, width) = input.dims4()?;
    let (c_out, c_in_k, kernel_h, kernel_w) = kernel.dims4()?;
    if args.groups != 1 || c_in_k != c_in {
        return Ok(None);
    }
    let shape = DenseConvShape { batch, c_in, c_out, height, width, kernel_h, kernel_w, stride: args.stride, padding: args.padding };
    Ok(shape.is_valid().then_some(shape))
}

/// The f32 values of a contiguous CPU tensor, as an operation's `cpu_fwd` gets it; an error
/// naming the operation otherwise.
pub(crate) fn contiguous_f32<'a>(name: &str, storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(all) = storage else { candle_core::bail!("{name}: f32 input only") };
    let Some((start, end)) = layout.contiguous_offsets() else { candle_core::bail!("{name}: contiguous input only") };
    Ok(&all[start..end])
}

/// [`dense_conv2d`] as a candle operation on contiguous CPU tensors.
struct DenseConv(DenseConvShape);

impl CustomOp2 for DenseConv {
    fn name(&self) -> &'static str {
        "clipmatch-dense-conv2d"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (input, weights) = (contiguous_f32(self.name(), s1, l1)?, contiguous_f32(self.name(), s2, l2)?);
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
        let (input, weights) = (contiguous_f32(self.name(), s1, l1)?, contiguous_f32(self.name(), s2, l2)?);
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
        /// Products [`MatMul`] computed on this thread.
        pub(super) static MATMULS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
        /// Calls of [`softmax_rows`] on this thread.
        pub(super) static SOFTMAXES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
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

    /// Products [`matmul`] computes (Linear-like with a broadcast transposed weight and a width
    /// that is not whole panels, batched rows, attention's q·kᵀ, a transposed left side, a side
    /// read neither by rows nor by columns) and ones it leaves to candle (a small product), all
    /// against candle's f64 product.
    #[test]
    fn matmul_on_the_packed_gemm_equals_candles_own() {
        let t = |dims: &[usize], seed: u32| {
            Tensor::from_vec(crate::kernels::test_values(dims.iter().product(), seed), dims, &Device::Cpu).unwrap()
        };
        let f64 = |x: &Tensor| x.to_dtype(DType::F64).unwrap();
        let check = |a: &Tensor, b: &Tensor, what: &str, ours: bool| {
            let before = MATMULS.with(std::cell::Cell::get);
            let got = matmul(a, b).unwrap();
            assert_eq!(MATMULS.with(std::cell::Cell::get) - before, usize::from(ours), "{what}: computed here");
            let want = f64(a).matmul(&f64(b)).unwrap().to_dtype(DType::F32).unwrap();
            assert!(max_diff(&got, &want) < 1e-4, "{what}: {}", max_diff(&got, &want));
        };
        let (x, w) = (t(&[2, 50, 96], 1), t(&[70, 96], 2));
        check(&x, &w.t().unwrap().broadcast_left(2).unwrap(), "linear, 70 outputs", true);
        check(&t(&[3, 40, 64], 3), &t(&[3, 64, 72], 4), "batched rows", true);
        let (q, k) = (t(&[1, 4, 64, 32], 5), t(&[1, 4, 64, 32], 6));
        check(&q, &k.transpose(2, 3).unwrap(), "attention q kᵀ", true);
        let (q, k) = (t(&[2, 3, 64, 32], 13), t(&[2, 3, 64, 32], 14));
        check(&q, &k.transpose(2, 3).unwrap(), "two batch dimensions", true);
        check(&t(&[2, 64, 80], 7).transpose(1, 2).unwrap(), &t(&[2, 64, 48], 8), "transposed left side", true);
        // Every other column: rows 160 and columns 2 apart.
        let strided = t(&[2, 64, 80, 2], 11).narrow(3, 1, 1).unwrap().squeeze(3).unwrap();
        check(&strided, &t(&[2, 80, 48], 12), "strided both ways", true);
        check(&t(&[1, 3, 5], 9), &t(&[1, 5, 2], 10), "small", false);
    }

    #[test]
    fn grouped_and_dense_conv2d_equal_candles_own() {
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
                    let got = conv2d(&x, kernel, Conv2dConfig { padding: pad, stride, dilation: 1, groups, ..Default::default() }).unwrap();
                    let want = candle_f64(&x, kernel, pad, stride, groups);
                    let d = max_diff(&got, &want);
                    assert!(d < 1e-5, "{b}x{c}x{side} kernel {:?} s{stride} groups {groups}: {d}", kernel.dims());
                }
            }
        }
    }

    #[test]
    fn a_backward_pass_through_the_kernel_fails_naming_it() {
        let x = candle_core::Var::from_tensor(&tensor((1, 2, 5, 5), 1)).unwrap();
        let args = Conv2dConfig { padding: 1, stride: 1, dilation: 1, groups: 2, ..Default::default() };
        let y = conv2d(&x, &tensor((2, 1, 3, 3), 2), args).unwrap();
        let err = y.sum_all().unwrap().backward().unwrap_err().to_string();
        assert!(err.contains("clipmatch-depthwise-conv2d"), "{err}");
    }

    #[test]
    fn each_convolution_goes_to_its_kernel_or_stays_with_candle() {
        let x = tensor((1, 4, 8, 8), 3);
        let args = |groups, dilation| Conv2dConfig { padding: 1, stride: 1, dilation, groups, ..Default::default() };
        let depthwise = tensor((8, 1, 3, 3), 4);
        let dense = tensor((4, 4, 3, 3), 4);
        assert!(depthwise_shape(&x, &depthwise, args(4, 1)).unwrap().is_some());
        assert!(dense_shape(&x, &depthwise, args(4, 1)).unwrap().is_none());
        assert!(dense_shape(&x, &dense, args(1, 1)).unwrap().is_some());
        assert!(depthwise_shape(&x, &dense, args(1, 1)).unwrap().is_none());
        // Two inputs a group, dilated, f64, a kernel larger than the padded input: candle's.
        assert!(conv_op(&x, &tensor((4, 2, 3, 3), 4), args(2, 1)).unwrap().is_none());
        assert!(conv_op(&x, &depthwise, args(4, 2)).unwrap().is_none());
        let f64 = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
        assert!(conv_op(&f64(&x), &f64(&dense), args(1, 1)).unwrap().is_none());
        assert!(conv_op(&x, &tensor((4, 1, 11, 11), 4), args(4, 1)).unwrap().is_none());
        assert!(conv_op(&x, &tensor((4, 4, 11, 11), 4), args(1, 1)).unwrap().is_none());
        // What is left to candle is still computed, by candle.
        let got = conv2d(&x, &tensor((4, 2, 3, 3), 4), args(2, 1)).unwrap();
        assert!(max_diff(&got, &candle_f64(&x, &tensor((4, 2, 3, 3), 4), 1, 1, 2)) < 1e-5);
    }

    /// `op` on candle tensors of each length in `lens` (values `test_values(n, seed) * scale`)
    /// gives exactly what `kernel` gives on the same values.
    fn unary_equals(op: fn(&Tensor) -> Result<Tensor>, kernel: fn(&[f32], &mut [f32]), lens: [usize; 2], seed: u32, scale: f64) {
        for n in lens {
            let x = (Tensor::from_vec(crate::kernels::test_values(n, seed), n, &Device::Cpu).unwrap() * scale).unwrap();
            let got = op(&x).unwrap().to_vec1::<f32>().unwrap();
            let mut want = vec![0.0f32; n];
            kernel(&x.to_vec1::<f32>().unwrap(), &mut want);
            assert_eq!(got, want, "{n} values");
        }
    }

    #[test]
    fn the_gelu_operation_is_the_vectorised_kernel() {
        // Small (one thread) and large (ranges on several threads, a short last one).
        unary_equals(gelu_erf, super::super::math::gelu_erf_slice, [999, 5 * GELU_CHUNK + 77], 5, 6.0);
    }

    /// candle's own GELUs are the vectorisable functions of `vendor/candle-core` (PATCHES.md, 2),
    /// the same as this crate's kernels, value for value: candle-transformers' models (SigLIP,
    /// FastViT with `--engine candle`, the text towers) compute what this crate's towers do.
    #[test]
    fn candles_gelus_are_the_vectorised_functions() {
        unary_equals(Tensor::gelu_erf, super::super::math::gelu_erf_slice, [999, 5 * GELU_CHUNK + 77], 25, 6.0);
        // One range, and candle's parallel ranges with a short last one.
        unary_equals(Tensor::gelu, super::super::math::gelu_tanh_slice, [999, 12 * 16 * 1024 + 77], 15, 8.0);
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
