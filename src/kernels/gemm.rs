//! `y = x · Wᵀ + b` for the model's linear layers, with `W` packed once at load time into
//! column panels so the inner loop reads it contiguously. One register-blocked micro-kernel,
//! written against [`F32Simd`], is compiled for SIMD128, AVX2 + FMA and a portable fallback.
//!
//! Loop order: for each panel of `NR` output columns, for each block of `KC` inputs, for each
//! block of `MR` rows: the `KC x NR` slice of weights stays in L1 while every row block uses it.

use super::simd::F32Simd;
use crate::parallel::DisjointWrites;

/// Output columns per packed panel: two SIMD vectors wide.
#[cfg(target_arch = "wasm32")]
pub const NR: usize = 8;
#[cfg(not(target_arch = "wasm32"))]
pub const NR: usize = 16;

/// Inputs per block (the weights slice of one panel and block is `KC * NR * 4` bytes). In wasm
/// the longer blocks win: each block costs a pass over the outputs, and a 768-input slice of one
/// panel (24 KB) still stays in L1 (measured in Node: 256 -> 768 about 3% faster).
#[cfg(target_arch = "wasm32")]
const KC: usize = 768;
#[cfg(not(target_arch = "wasm32"))]
const KC: usize = 256;

/// A linear layer's weights, packed for [`PackedLinear::forward`].
pub struct PackedLinear {
    in_dim: usize,
    out_dim: usize,
    /// `ceil(out_dim / NR)` panels, each `in_dim x NR`, row `k` holding `W[p*NR .. p*NR+NR][k]`
    /// (zero past `out_dim`).
    panels: Vec<f32>,
    /// Padded with zeros to whole panels, as the weights.
    bias: Option<Vec<f32>>,
}

impl PackedLinear {
    /// From a PyTorch-layout weight (`out_dim` rows of `in_dim`, row-major) and optional bias.
    pub fn new(weight: &[f32], out_dim: usize, in_dim: usize, bias: Option<Vec<f32>>) -> Self {
        let mut w = Self::zeros(out_dim, in_dim, bias.is_some());
        w.set_rows(0, weight, 1.0);
        if let Some(b) = bias {
            w.set_bias(0, &b, 1.0);
        }
        w
    }

    /// All-zero weights (and bias, if it has one), to be filled with [`Self::set_rows`].
    pub fn zeros(out_dim: usize, in_dim: usize, has_bias: bool) -> Self {
        let n_panels = out_dim.div_ceil(NR);
        Self {
            in_dim,
            out_dim,
            panels: vec![0.0; n_panels * in_dim * NR],
            bias: has_bias.then(|| vec![0.0; n_panels * NR]),
        }
    }

    /// Sets output rows `first..` of the PyTorch-layout weight to `scale * rows`.
    pub fn set_rows(&mut self, first: usize, rows: &[f32], scale: f32) {
        let k = self.in_dim;
        assert!(rows.len() % k == 0 && first + rows.len() / k <= self.out_dim, "weight rows out of range");
        for (i, row) in rows.chunks_exact(k).enumerate() {
            let o = first + i;
            let (p, c) = (o / NR, o % NR);
            let panel = &mut self.panels[p * k * NR..(p + 1) * k * NR];
            for (kk, &w) in row.iter().enumerate() {
                panel[kk * NR + c] = w * scale;
            }
        }
    }

    /// Sets bias entries `first..` to `scale * values`.
    pub fn set_bias(&mut self, first: usize, values: &[f32], scale: f32) {
        let b = self.bias.as_mut().expect("a layer with a bias");
        assert!(first + values.len() <= self.out_dim, "bias entries out of range");
        for (d, v) in b[first..first + values.len()].iter_mut().zip(values) {
            *d = v * scale;
        }
    }

    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// Bytes of weights held.
    pub fn bytes(&self) -> usize {
        (self.panels.len() + self.bias.as_ref().map_or(0, |_| self.out_dim)) * 4
    }

    /// `out[m x out_dim] = x[m x in_dim] · Wᵀ + b`.
    pub fn forward(&self, x: &[f32], m: usize, out: &mut [f32]) {
        let (k, n) = (self.in_dim, self.out_dim);
        assert_eq!(x.len(), m * k, "input size");
        assert_eq!(out.len(), m * n, "output size");
        if n % NR != 0 {
            // Only odd-sized layers pay for this: compute into a padded buffer, then copy.
            let np = n.div_ceil(NR) * NR;
            let mut padded = vec![0.0f32; m * np];
            self.run(x, m, &mut padded, np);
            for (dst, src) in out.chunks_exact_mut(n).zip(padded.chunks_exact(np)) {
                dst.copy_from_slice(&src[..n]);
            }
        } else {
            self.run(x, m, out, n);
        }
    }

    /// Outputs `outputs` of [`Self::forward`] only: the columns of `out` (`m x out_dim`) in that
    /// range are written, the others left as they are. Where the range does not fall on whole
    /// panels, every output is computed.
    pub fn forward_outputs(&self, x: &[f32], m: usize, outputs: std::ops::Range<usize>, out: &mut [f32]) {
        let (k, n) = (self.in_dim, self.out_dim);
        assert!(outputs.start <= outputs.end && outputs.end <= n, "outputs {outputs:?} of {n}");
        if n % NR != 0 || outputs.start % NR != 0 || outputs.end % NR != 0 {
            return self.forward(x, m, out);
        }
        assert_eq!(x.len(), m * k, "input size");
        assert_eq!(out.len(), m * n, "output size");
        let (first, end) = (outputs.start / NR, outputs.end / NR);
        if m == 0 || first == end {
            return;
        }
        let panels = &self.panels[first * k * NR..end * k * NR];
        let bias = self.bias.as_deref().map(|b| &b[first * NR..end * NR]);
        product_threaded(x, m, k, k, panels, bias, &mut out[first * NR..], n);
    }

    /// `out` has row stride `ldc` (a multiple of `NR`, at least `out_dim`).
    /// Every element of `out` in whole panels' columns is written (bias plus product).
    fn run(&self, x: &[f32], m: usize, out: &mut [f32], ldc: usize) {
        assert!(out.len() >= m * ldc, "output size");
        product_threaded(x, m, self.in_dim, self.in_dim, &self.panels, self.bias.as_deref(), out, ldc);
    }
}

/// `c[m x ldc] = a[m x k] · B (+ bias)`: `a`'s rows `lda` apart, `B` packed as [`PackedLinear`]'s
/// panels (by [`pack_panels`] for a `B` given as rows), `bias` padded to whole panels; the
/// panels split across threads. Every column of `c` in whole panels is written, so `ldc` is at
/// least the padded width.
#[allow(clippy::too_many_arguments)]
pub(crate) fn product_threaded(
    a: &[f32],
    m: usize,
    k: usize,
    lda: usize,
    panels: &[f32],
    bias: Option<&[f32]>,
    c: &mut [f32],
    ldc: usize,
) {
    assert!(k > 0 && panels.len() % (k * NR) == 0, "packed panels of {k} inputs");
    let n_panels = panels.len() / (k * NR);
    assert!(ldc >= n_panels * NR && (m == 0 || c.len() >= (m - 1) * ldc + n_panels * NR), "output size");
    assert!(bias.is_none_or(|b| b.len() >= n_panels * NR), "bias size");
    let kernel = Kernel::detect();
    // The input rows, `mr` at a time, interleaved (see `pack_strided_rows`): the micro-kernel then reads
    // them from one pointer. Kept per thread between calls, so a forward pass allocates once.
    let mut packed = PACKED_ROWS.with(|b| b.take());
    pack_strided_rows(a, m, k, lda, kernel.mr(), &mut packed);
    let job = Job { panels, k, a: &packed, bias, m, out: DisjointWrites::new(c), ldc, kernel };
    crate::parallel::for_each_chunk(n_panels, m * k * n_panels * NR, |panels| {
        // SAFETY: each chunk of panels writes a disjoint set of output columns.
        unsafe { job.panels(panels) }
    });
    PACKED_ROWS.with(|b| b.replace(packed));
}

/// Packs the rows of `B` (`k` rows of `n`, row-major, rows `ldb` apart) as [`PackedLinear`]'s
/// panels: `ceil(n / NR)` panels of `k x NR`, zero past column `n`. With `B = Wᵀ` this is the
/// weights' layout; with `B = Kᵀ` (`k` = head size) the keys' in attention.
pub(crate) fn pack_panels(b: &[f32], k: usize, n: usize, ldb: usize, panels: &mut Vec<f32>) {
    let n_panels = n.div_ceil(NR);
    panels.clear();
    panels.resize(n_panels * k * NR, 0.0);
    for (kk, row) in (0..k).map(|kk| (kk, &b[kk * ldb..][..n])) {
        for (p, chunk) in row.chunks(NR).enumerate() {
            panels[(p * k + kk) * NR..][..chunk.len()].copy_from_slice(chunk);
        }
    }
}

/// [`pack_panels`] with the panels shared out across threads (each copies its own panels'
/// columns): for a `B` that changes from call to call, as a convolution's input.
pub(crate) fn pack_panels_threaded(b: &[f32], k: usize, n: usize, ldb: usize, panels: &mut Vec<f32>) {
    assert!(k > 0 && (k - 1) * ldb + n <= b.len(), "rows to pack");
    fill_panels_threaded(panels, k, n, |p, cols, panel| {
        for (kk, dst) in panel.chunks_exact_mut(NR).enumerate() {
            dst[..cols].copy_from_slice(&b[kk * ldb + p * NR..][..cols]);
            dst[cols..].fill(0.0);
        }
    });
}

/// Sizes `panels` for `n` columns of `k` inputs and calls `fill(p, cols, panel)` on each panel
/// (its index, its columns before the zero padding, its `k * NR` values) across threads; `fill`
/// writes every value, so the last call's are not cleared.
pub(crate) fn fill_panels_threaded<F>(panels: &mut Vec<f32>, k: usize, n: usize, fill: F)
where
    F: Fn(usize, usize, &mut [f32]) + Sync + Send,
{
    panels.resize(n.div_ceil(NR) * k * NR, 0.0);
    crate::parallel::for_each_row_block(panels, k * NR, |first, block| {
        for (p, panel) in (first..).zip(block.chunks_exact_mut(k * NR)) {
            fill(p, NR.min(n - p * NR), panel);
        }
    });
}

/// [`pack_panels`] for `B = Mᵀ`, `M` being `n` rows of `k` (rows `ldm` apart).
pub(crate) fn pack_panels_transposed(mat: &[f32], n: usize, k: usize, ldm: usize, panels: &mut Vec<f32>) {
    // Every value is written below (zero past row `n`).
    panels.resize(n.div_ceil(NR) * k * NR, 0.0);
    for (p, panel) in panels.chunks_exact_mut(k * NR).enumerate() {
        transposed_panel(mat, k, ldm, p, NR.min(n - p * NR), panel);
    }
}

/// [`pack_panels_transposed`] with the panels shared out across threads: for a `B = Mᵀ` that
/// changes from call to call (or is not known to stay), as candle's matmul of a `Linear` has it.
pub(crate) fn pack_panels_transposed_threaded(mat: &[f32], n: usize, k: usize, ldm: usize, panels: &mut Vec<f32>) {
    assert!(n > 0 && (n - 1) * ldm + k <= mat.len(), "rows to pack");
    fill_panels_threaded(panels, k, n, |p, cols, panel| transposed_panel(mat, k, ldm, p, cols, panel));
}

/// Panel `p` of `B = Mᵀ` (`k x NR`): rows `p * NR ..` of `M` (the first `cols` of them) as its
/// columns, zero past them.
fn transposed_panel(mat: &[f32], k: usize, ldm: usize, p: usize, cols: usize, panel: &mut [f32]) {
    for c in 0..NR {
        if c < cols {
            for (kk, &v) in mat[(p * NR + c) * ldm..][..k].iter().enumerate() {
                panel[kk * NR + c] = v;
            }
        } else {
            for kk in 0..k {
                panel[kk * NR + c] = 0.0;
            }
        }
    }
}

/// `c[m x ldc] = a[m x k] · B` on the calling thread with `kernel` ([`Kernel::detect`]), `a`'s
/// rows `lda` apart, `B` packed by [`pack_panels`] (`ldc` at least its padded width; every column
/// of it is written). `scratch` holds the packed rows of `a`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn product_packed(
    kernel: Kernel,
    a: &[f32],
    m: usize,
    k: usize,
    lda: usize,
    panels: &[f32],
    c: &mut [f32],
    ldc: usize,
    scratch: &mut Vec<f32>,
) {
    let n_panels = panels.len() / (k * NR).max(1);
    assert!(panels.len() == n_panels * k * NR && ldc >= n_panels * NR, "product sizes");
    assert!(m == 0 || c.len() >= (m - 1) * ldc + n_panels * NR, "output size");
    pack_strided_rows(a, m, k, lda, kernel.mr(), scratch);
    let job = Job { panels, k, a: scratch, bias: None, m, out: DisjointWrites::new(c), ldc, kernel };
    // SAFETY: `scratch` and `c` are sized above, and this thread alone writes `c`.
    unsafe { job.panels(0..n_panels) }
}

thread_local! {
    /// [`pack_strided_rows`]'s buffer, reused. Taken out while in use, so a nested call (a thread that
    /// runs another job while it waits) only allocates its own.
    static PACKED_ROWS: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Lays `x` (`m` rows of `k`, rows `lda` apart) out as `ceil(m / mr)` blocks of `k x mr`:
/// block `b`, input `kk` holds `x[b*mr .. b*mr+mr][kk]`, zero past row `m`.
fn pack_strided_rows(x: &[f32], m: usize, k: usize, lda: usize, mr: usize, packed: &mut Vec<f32>) {
    assert!(m == 0 || x.len() >= (m - 1) * lda + k);
    // Every element is written below: no need to clear what the last call left.
    packed.resize(m.div_ceil(mr) * k * mr, 0.0);
    if k == 0 {
        return;
    }
    let pack = |first: usize, blocks: &mut [f32]| match mr {
        4 => pack_rows_mr::<4>(x, m, k, lda, first, blocks),
        6 => pack_rows_mr::<6>(x, m, k, lda, first, blocks),
        _ => unreachable!("no kernel has {mr} rows"),
    };
    // Large batches (natively) pack on every thread: on one, packing is a visible serial step.
    if packed.len() >= MIN_PARALLEL_PACK {
        crate::parallel::for_each_row_block(packed, k * mr, pack);
    } else {
        pack(0, packed);
    }
}

/// Below this many values [`pack_strided_rows`] runs on the calling thread alone.
const MIN_PARALLEL_PACK: usize = 1 << 18;

/// Blocks `first..` of [`pack_strided_rows`]'s layout into `blocks`.
fn pack_rows_mr<const MR: usize>(x: &[f32], m: usize, k: usize, lda: usize, first: usize, blocks: &mut [f32]) {
    for (b, block) in (first..).zip(blocks.chunks_exact_mut(k * MR)) {
        let rows = MR.min(m - b * MR);
        if rows == MR {
            let src: [&[f32]; MR] = std::array::from_fn(|r| &x[(b * MR + r) * lda..][..k]);
            for (kk, dst) in block.chunks_exact_mut(MR).enumerate() {
                for r in 0..MR {
                    dst[r] = src[r][kk];
                }
            }
        } else {
            for (kk, dst) in block.chunks_exact_mut(MR).enumerate() {
                for (r, d) in dst.iter_mut().enumerate() {
                    *d = if r < rows { x[(b * MR + r) * lda + kk] } else { 0.0 };
                }
            }
        }
    }
}

/// The instruction set the micro-kernel is compiled for, and its rows per block.
#[derive(Clone, Copy)]
pub(crate) enum Kernel {
    #[cfg(target_arch = "x86_64")]
    Avx2(super::simd::Avx2),
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    Simd128,
    #[allow(dead_code)]
    Portable,
}

impl Kernel {
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if let Some(s) = super::simd::Avx2::detect() {
            return Kernel::Avx2(s);
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        return Kernel::Simd128;
        #[allow(unreachable_code)]
        Kernel::Portable
    }

    /// Rows per micro-kernel block: as many accumulators as the registers hold (SIMD128 in
    /// browsers has 16 registers, one of them the engine's scratch: 8 sums, 2 weights, 4 inputs
    /// and a product).
    fn mr(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(_) => 6,
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Kernel::Simd128 => 4,
            Kernel::Portable => 4,
        }
    }
}

/// One product, shared by the threads that each compute a range of panels.
struct Job<'a> {
    /// The weights, packed as [`PackedLinear::panels`].
    panels: &'a [f32],
    /// Inputs.
    k: usize,
    /// The input, packed by [`pack_strided_rows`] with [`Kernel::mr`] rows per block.
    a: &'a [f32],
    /// The padded bias.
    bias: Option<&'a [f32]>,
    m: usize,
    /// Each panel's columns are written by the thread that computes it.
    out: DisjointWrites<'a, f32>,
    ldc: usize,
    kernel: Kernel,
}

impl Job<'_> {
    unsafe fn panels(&self, range: std::ops::Range<usize>) {
        match self.kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(s) => self.panels_avx2(s, range),
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Kernel::Simd128 => self.panels_with::<_, 4>(super::simd::Simd128, range),
            Kernel::Portable => self.panels_with::<_, 4>(super::simd::Portable, range),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn panels_avx2(&self, s: super::simd::Avx2, range: std::ops::Range<usize>) {
        self.panels_with::<_, 6>(s, range)
    }

    #[inline(always)]
    unsafe fn panels_with<S: F32Simd, const MR: usize>(&self, s: S, range: std::ops::Range<usize>) {
        debug_assert_eq!(2 * S::LANES, NR);
        debug_assert_eq!(MR, self.kernel.mr());
        let k = self.k;
        for p in range {
            let panel = self.panels.as_ptr().add(p * k * NR);
            let c_col = self.out.at(p * NR);
            let mut k0 = 0;
            while k0 < k {
                let kc = KC.min(k - k0);
                let b = panel.add(k0 * NR);
                let mut i = 0;
                while i < self.m {
                    let a = self.a.as_ptr().add(i * k + k0 * MR);
                    let c = c_col.add(i * self.ldc);
                    // The first block starts from the bias, the others add to what is there.
                    let init = match (k0, self.bias) {
                        (0, Some(bias)) => Init::Bias(bias.as_ptr().add(p * NR)),
                        (0, None) => Init::Zero,
                        _ => Init::Accumulate,
                    };
                    // A last, partial block multiplies only its rows.
                    match self.m - i {
                        1 => micro::<S, MR, 1>(s, kc, a, b, c, self.ldc, init),
                        2 if MR > 2 => micro::<S, MR, 2>(s, kc, a, b, c, self.ldc, init),
                        3 if MR > 3 => micro::<S, MR, 3>(s, kc, a, b, c, self.ldc, init),
                        4 if MR > 4 => micro::<S, MR, 4>(s, kc, a, b, c, self.ldc, init),
                        5 if MR > 5 => micro::<S, MR, 5>(s, kc, a, b, c, self.ldc, init),
                        _ => micro::<S, MR, MR>(s, kc, a, b, c, self.ldc, init),
                    }
                    i += MR;
                }
                k0 += kc;
            }
        }
    }
}

/// What a micro-kernel adds its product to.
#[derive(Clone, Copy)]
enum Init {
    /// `C` as it is.
    Accumulate,
    /// `NR` bias values (`C` is overwritten).
    Bias(*const f32),
    /// Nothing (`C` is overwritten).
    Zero,
}

/// `C[R x NR] = init + A[R x kc] · B[kc x NR]`: `A` the first `R` rows of a block packed `MR`
/// per input (see [`pack_strided_rows`]), `B` packed (`NR` per input), `C` rows `ldc` apart.
/// Accumulators stay in registers for the whole `kc` loop, and each input reads `A` and `B` at
/// fixed offsets from two pointers, so the loop is loads and arithmetic only.
#[inline(always)]
unsafe fn micro<S: F32Simd, const MR: usize, const R: usize>(
    s: S,
    kc: usize,
    mut a: *const f32,
    mut b: *const f32,
    c: *mut f32,
    ldc: usize,
    init: Init,
) {
    debug_assert!(R <= MR);
    let mut lo = [s.zero(); R];
    let mut hi = [s.zero(); R];
    // A zero the optimiser cannot see through: stepping the pointers through it keeps LLVM from
    // turning each load's address into an induction variable of its own (in wasm, one `i32.add`
    // per load) instead of a constant offset on the two pointers.
    let opaque_zero = core::hint::black_box(0usize);
    let end = b.add(kc * NR);
    while b != end {
        let b0 = s.load(b);
        let b1 = s.load(b.add(S::LANES));
        for r in 0..R {
            let av = s.splat(*a.add(r));
            lo[r] = s.mul_add(av, b0, lo[r]);
            hi[r] = s.mul_add(av, b1, hi[r]);
        }
        a = a.add(MR).map_addr(|x| x ^ opaque_zero);
        b = b.add(NR).map_addr(|x| x ^ opaque_zero);
    }
    for r in 0..R {
        let p = c.add(r * ldc);
        let (base_lo, base_hi) = match init {
            Init::Accumulate => (s.load(p), s.load(p.add(S::LANES))),
            Init::Bias(bias) => (s.load(bias), s.load(bias.add(S::LANES))),
            Init::Zero => (s.zero(), s.zero()),
        };
        s.store(p, s.add(base_lo, lo[r]));
        s.store(p.add(S::LANES), s.add(base_hi, hi[r]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_values as values;

    fn reference(x: &[f32], w: &[f32], b: Option<&[f32]>, m: usize, n: usize, k: usize) -> Vec<f32> {
        let mut out = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = b.map_or(0.0, |b| b[j] as f64);
                for kk in 0..k {
                    s += x[i * k + kk] as f64 * w[j * k + kk] as f64;
                }
                out[i * n + j] = s;
            }
        }
        out.into_iter().map(|v| v as f32).collect()
    }

    #[test]
    fn matches_a_plain_product_for_awkward_shapes() {
        // Rows not a multiple of MR, columns not a multiple of NR, inputs over several KC blocks.
        for &(m, n, k, bias) in &[(1, 16, 3, true), (7, 40, 300, true), (50, 24, 513, false), (13, 5, 1, true)] {
            let x = values(m * k, 1);
            let w = values(n * k, 2);
            let b = bias.then(|| values(n, 3));
            let packed = PackedLinear::new(&w, n, k, b.clone());
            let mut out = vec![f32::NAN; m * n];
            packed.forward(&x, m, &mut out);
            let want = reference(&x, &w, b.as_deref(), m, n, k);
            for (got, want) in out.iter().zip(&want) {
                assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "{m}x{n}x{k}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn every_kernel_matches_a_plain_product() {
        // The detected kernel and the portable one (which this machine may not otherwise run), on
        // strided inputs, partial row blocks and panels, more inputs than one block, and enough
        // rows to pack them on several threads.
        let mut scratch = Vec::new();
        for kernel in [Kernel::detect(), Kernel::Portable] {
            for &(m, n, k, lda) in &[(1, 16, 3, 3), (7, 40, 300, 310), (50, 24, 1100, 1100), (13, 5, 1, 2), (6, 8, 64, 64), (301, 16, 1000, 1001)] {
                let x = values((m - 1) * lda + k, 4);
                let b = values(k * n, 5); // k rows of n
                let mut panels = Vec::new();
                pack_panels(&b, k, n, n, &mut panels);
                let ldc = n.div_ceil(NR) * NR + 3;
                let mut out = vec![f32::NAN; (m - 1) * ldc + n.div_ceil(NR) * NR];
                product_packed(kernel, &x, m, k, lda, &panels, &mut out, ldc, &mut scratch);
                let dense: Vec<f32> = (0..m).flat_map(|i| x[i * lda..][..k].to_vec()).collect();
                let wt: Vec<f32> = (0..n).flat_map(|j| (0..k).map(move |kk| (j, kk))).map(|(j, kk)| b[kk * n + j]).collect();
                let want = reference(&dense, &wt, None, m, n, k);
                for i in 0..m {
                    for j in 0..n {
                        let (got, want) = (out[i * ldc + j], want[i * n + j]);
                        assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "{m}x{n}x{k}: [{i}][{j}] {got} vs {want}");
                    }
                    for j in n..n.div_ceil(NR) * NR {
                        assert_eq!(out[i * ldc + j], 0.0, "padding column");
                    }
                }
                // Transposed and threaded packing give the same panels.
                let mut again = Vec::new();
                pack_panels_transposed(&wt, n, k, k, &mut again);
                assert_eq!(panels, again);
                pack_panels_threaded(&b, k, n, n, &mut again);
                assert_eq!(panels, again);
            }
        }
    }
}
