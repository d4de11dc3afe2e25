//! clipmatch patch (PATCHES.md, 2): kernels that a crate using candle installs in place of
//! candle's own CPU code for the shapes it handles better. candle asks an installed kernel
//! first; the kernel answers `Ok(None)` for what it leaves to candle, whose own code then runs
//! unchanged. Each kernel is installed once per process (the first installation wins), and
//! nothing is installed unless a caller does so: without one, candle behaves as published.

use std::sync::OnceLock;

use crate::{Result, Tensor};

/// The arguments of [`Tensor::conv2d`] besides its two tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dArgs {
    pub padding: usize,
    pub stride: usize,
    pub dilation: usize,
    pub groups: usize,
}

/// `conv2d(input, kernel, args)` (input `(b, c_in, h, w)`, kernel `(c_out, c_in / groups, kh,
/// kw)`), or `None` to leave this convolution to candle. Asked for every `conv2d`; a kernel
/// without a backward pass should record itself as a `CustomOp2` (`Tensor::apply_op2`), whose
/// backward then fails naming it.
pub type Conv2dKernel = fn(&Tensor, &Tensor, Conv2dArgs) -> Result<Option<Tensor>>;

/// An element-wise f32 function: `ys[i] = f(xs[i])`, both slices of one length.
pub type UnaryF32Kernel = fn(&[f32], &mut [f32]);

/// A batched f32 product as candle's CPU matmul holds it (clipmatch patch, PATCHES.md, 3):
/// `dst[b] = lhs[b] · rhs[b]` for each of `batches`, `lhs[b]` being `m x k` with rows `lhs_rs` and
/// columns `lhs_cs` apart starting at `lhs[b * lhs_skip]`, `rhs[b]` `k x n` likewise, and
/// `dst` the `batches * m * n` contiguous result.
pub struct MatMulF32<'a> {
    pub batches: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub lhs: &'a [f32],
    pub lhs_rs: usize,
    pub lhs_cs: usize,
    pub lhs_skip: usize,
    pub rhs: &'a [f32],
    pub rhs_rs: usize,
    pub rhs_cs: usize,
    pub rhs_skip: usize,
    pub dst: &'a mut [f32],
}

/// Computes a product and returns `true`, or returns `false` (having written nothing that
/// matters) to leave it to candle's gemm.
pub type MatMulF32Kernel = fn(&mut MatMulF32) -> bool;

/// Runs a function over `0..n_items` in ranges covering it, on as many threads as the caller
/// likes, and returns when all have run (clipmatch patch, PATCHES.md, 4).
pub type ChunkSplitter = fn(usize, &(dyn Fn(std::ops::Range<usize>) + Sync));

static CONV2D: OnceLock<Conv2dKernel> = OnceLock::new();
static CHUNK_SPLITTER: OnceLock<ChunkSplitter> = OnceLock::new();
static MATMUL_F32: OnceLock<MatMulF32Kernel> = OnceLock::new();
static GELU_ERF_F32: OnceLock<UnaryF32Kernel> = OnceLock::new();
static GELU_TANH_F32: OnceLock<UnaryF32Kernel> = OnceLock::new();

/// Installs the convolution asked before candle's; `false` if one was installed already.
pub fn set_conv2d(kernel: Conv2dKernel) -> bool {
    CONV2D.set(kernel).is_ok()
}

/// Installs the f32 exact GELU (`x * Φ(x)`) used on contiguous f32 data in place of candle's
/// scalar one; `false` if one was installed already.
pub fn set_gelu_erf_f32(kernel: UnaryF32Kernel) -> bool {
    GELU_ERF_F32.set(kernel).is_ok()
}

/// Installs the f32 tanh-approximated GELU (`gelu`) used on contiguous f32 data in place of
/// candle's scalar one (clipmatch patch, PATCHES.md, 5); `false` if one was installed already.
pub fn set_gelu_tanh_f32(kernel: UnaryF32Kernel) -> bool {
    GELU_TANH_F32.set(kernel).is_ok()
}

/// Installs the f32 matmul asked before candle's gemm (PATCHES.md, 3); `false` if one was
/// installed already.
pub fn set_matmul_f32(kernel: MatMulF32Kernel) -> bool {
    MATMUL_F32.set(kernel).is_ok()
}

/// Installs the splitter that `BarrierPool::execute_chunked` (candle's parallel element-wise
/// operations) uses instead of candle's own pool (PATCHES.md, 4); `false` if one was installed
/// already.
pub fn set_chunk_splitter(splitter: ChunkSplitter) -> bool {
    CHUNK_SPLITTER.set(splitter).is_ok()
}

pub(crate) fn chunk_splitter() -> Option<ChunkSplitter> {
    CHUNK_SPLITTER.get().copied()
}

pub(crate) fn matmul_f32() -> Option<MatMulF32Kernel> {
    MATMUL_F32.get().copied()
}

pub(crate) fn conv2d(input: &Tensor, kernel: &Tensor, args: Conv2dArgs) -> Result<Option<Tensor>> {
    match CONV2D.get() {
        Some(f) => f(input, kernel, args),
        _ => Ok(None),
    }
}

pub(crate) fn gelu_erf_f32() -> Option<UnaryF32Kernel> {
    GELU_ERF_F32.get().copied()
}

pub(crate) fn gelu_tanh_f32() -> Option<UnaryF32Kernel> {
    GELU_TANH_F32.get().copied()
}
