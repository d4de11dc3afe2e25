//! `y = x · Wᵀ + b` for the model's linear layers, with `W` packed once at load time into
//! column panels so the inner loop reads it contiguously. One register-blocked micro-kernel,
//! written against [`F32Simd`], is compiled for SIMD128, AVX2 + FMA and a portable fallback.
//!
//! Loop order: for each panel of `NR` output columns, for each block of `KC` inputs, for each
//! block of `MR` rows: the `KC x NR` slice of weights stays in L1 while every row block uses it.

use super::simd::F32Simd;

/// Output columns per packed panel: two SIMD vectors wide.
#[cfg(target_arch = "wasm32")]
pub const NR: usize = 8;
#[cfg(not(target_arch = "wasm32"))]
pub const NR: usize = 16;

/// Inputs per block (the weights slice of one panel and block is `KC * NR * 4` bytes).
const KC: usize = 256;

/// A linear layer's weights, packed for [`PackedLinear::forward`].
pub struct PackedLinear {
    in_dim: usize,
    out_dim: usize,
    /// `ceil(out_dim / NR)` panels, each `in_dim x NR`, row `k` holding `W[p*NR .. p*NR+NR][k]`
    /// (zero past `out_dim`).
    panels: Vec<f32>,
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
        Self { in_dim, out_dim, panels: vec![0.0; n_panels * in_dim * NR], bias: has_bias.then(|| vec![0.0; out_dim]) }
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
        (self.panels.len() + self.bias.as_ref().map_or(0, Vec::len)) * 4
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

    /// `out` has row stride `ldc` (a multiple of `NR`, at least `out_dim`).
    fn run(&self, x: &[f32], m: usize, out: &mut [f32], ldc: usize) {
        for row in out.chunks_exact_mut(ldc) {
            match &self.bias {
                Some(b) => row[..self.out_dim].copy_from_slice(b),
                None => row[..self.out_dim].fill(0.0),
            }
        }
        let n_panels = self.out_dim.div_ceil(NR);
        let job = Job { w: self, x: x.as_ptr(), m, out: out.as_mut_ptr(), ldc };
        crate::parallel::for_each_chunk(n_panels, m * self.in_dim * self.out_dim, |panels| {
            // SAFETY: `job` points into `x` and `out`, alive for this call; each chunk of
            // panels writes a disjoint set of output columns.
            unsafe { job.panels(panels) }
        });
    }
}

/// One product, shared by the threads that each compute a range of panels.
struct Job<'a> {
    w: &'a PackedLinear,
    x: *const f32,
    m: usize,
    out: *mut f32,
    ldc: usize,
}

// SAFETY: threads write disjoint output columns and only read the rest.
unsafe impl Send for Job<'_> {}
unsafe impl Sync for Job<'_> {}

impl Job<'_> {
    unsafe fn panels(&self, range: std::ops::Range<usize>) {
        #[cfg(target_arch = "x86_64")]
        if let Some(s) = super::simd::Avx2::detect() {
            return self.panels_avx2(s, range);
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        return self.panels_with::<_, 4>(super::simd::Simd128, range);
        #[allow(unreachable_code)]
        self.panels_with::<_, 4>(super::simd::Portable, range)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn panels_avx2(&self, s: super::simd::Avx2, range: std::ops::Range<usize>) {
        self.panels_with::<_, 6>(s, range)
    }

    #[inline(always)]
    unsafe fn panels_with<S: F32Simd, const MR: usize>(&self, s: S, range: std::ops::Range<usize>) {
        debug_assert_eq!(2 * S::LANES, NR);
        let k = self.w.in_dim;
        for p in range {
            let panel = self.w.panels.as_ptr().add(p * k * NR);
            let c_col = self.out.add(p * NR);
            let mut k0 = 0;
            while k0 < k {
                let kc = KC.min(k - k0);
                let b = panel.add(k0 * NR);
                let mut i = 0;
                while i + MR <= self.m {
                    micro::<S, MR>(s, kc, self.x.add(i * k + k0), k, b, c_col.add(i * self.ldc), self.ldc);
                    i += MR;
                }
                let a = self.x.add(i * k + k0);
                let c = c_col.add(i * self.ldc);
                match self.m - i {
                    0 => {}
                    1 => micro::<S, 1>(s, kc, a, k, b, c, self.ldc),
                    2 => micro::<S, 2>(s, kc, a, k, b, c, self.ldc),
                    3 => micro::<S, 3>(s, kc, a, k, b, c, self.ldc),
                    4 => micro::<S, 4>(s, kc, a, k, b, c, self.ldc),
                    5 => micro::<S, 5>(s, kc, a, k, b, c, self.ldc),
                    _ => unreachable!("MR is at most 6"),
                }
                k0 += kc;
            }
        }
    }
}

/// `C[MR x NR] += A[MR x kc] · B[kc x NR]`, `A` rows `lda` apart, `B` packed (`NR` per row),
/// `C` rows `ldc` apart. Accumulators stay in registers for the whole `kc` loop.
#[inline(always)]
unsafe fn micro<S: F32Simd, const MR: usize>(
    s: S,
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
) {
    let mut lo = [s.zero(); MR];
    let mut hi = [s.zero(); MR];
    for kk in 0..kc {
        let b0 = s.load(b.add(kk * NR));
        let b1 = s.load(b.add(kk * NR + S::LANES));
        for r in 0..MR {
            let av = s.splat(*a.add(r * lda + kk));
            lo[r] = s.mul_add(av, b0, lo[r]);
            hi[r] = s.mul_add(av, b1, hi[r]);
        }
    }
    for r in 0..MR {
        let p = c.add(r * ldc);
        s.store(p, s.add(s.load(p), lo[r]));
        s.store(p.add(S::LANES), s.add(s.load(p.add(S::LANES)), hi[r]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
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
}
