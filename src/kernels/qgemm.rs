//! `y = x · Wᵀ + b` with 8-bit weights: `W` is stored as int8 with one scale per output channel
//! (symmetric), `x` is quantised per row to 12-bit integers at run time, and products are
//! summed exactly in 32-bit integers, then scaled back. The weights take a quarter of f32's
//! memory and download; 12-bit activations keep far more of the input than 8 bits would, and
//! `K * 127 * 2047` stays within i32 for inputs up to 8192 wide.
//!
//! Weights are packed in panels of [`QNR`] output columns, pairs of inputs interleaved, so one
//! 16-byte load holds two inputs of eight columns: `[c0k0, c0k1, c1k0, c1k1, ...]`.

use crate::parallel::DisjointWrites;

/// Output columns per panel.
pub const QNR: usize = 8;
/// Largest quantised activation magnitude.
const A_MAX: f32 = 2047.0;
/// Largest input width for which sums cannot overflow i32.
pub const MAX_IN_DIM: usize = 8192;

/// One quantised linear layer.
pub struct QuantLinear {
    in_dim: usize,
    out_dim: usize,
    /// Input width rounded up to even.
    k_pad: usize,
    /// `ceil(out_dim / QNR)` panels of `k_pad / 2` rows of 16 bytes.
    panels: Vec<i8>,
    /// Per output channel: `W[n][k] ≈ scales[n] * q[n][k]`.
    scales: Vec<f32>,
    bias: Option<Vec<f32>>,
}

/// int8 values and their scale, one per row: `w ≈ scale * q`, `q` in [-127, 127].
pub fn quantize_rows(weight: &[f32], in_dim: usize) -> (Vec<i8>, Vec<f32>) {
    let mut q = Vec::with_capacity(weight.len());
    let mut scales = Vec::with_capacity(weight.len() / in_dim);
    for row in weight.chunks_exact(in_dim) {
        let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        scales.push(scale);
        q.extend(row.iter().map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8));
    }
    (q, scales)
}

impl QuantLinear {
    pub fn zeros(out_dim: usize, in_dim: usize, has_bias: bool) -> Self {
        assert!(in_dim <= MAX_IN_DIM, "input width {in_dim} could overflow 32-bit sums");
        let k_pad = in_dim.div_ceil(2) * 2;
        Self {
            in_dim,
            out_dim,
            k_pad,
            panels: vec![0; out_dim.div_ceil(QNR) * k_pad * QNR],
            scales: vec![1.0; out_dim],
            bias: has_bias.then(|| vec![0.0; out_dim]),
        }
    }

    /// Sets output rows `first..` from int8 values and their per-row scales.
    pub fn set_rows(&mut self, first: usize, q: &[i8], scales: &[f32]) {
        let k = self.in_dim;
        assert!(q.len() == scales.len() * k && first + scales.len() <= self.out_dim, "weight rows out of range");
        for (i, row) in q.chunks_exact(k).enumerate() {
            let o = first + i;
            let (p, c) = (o / QNR, o % QNR);
            let panel = &mut self.panels[p * self.k_pad * QNR..(p + 1) * self.k_pad * QNR];
            for (kk, &w) in row.iter().enumerate() {
                panel[(kk / 2) * 2 * QNR + c * 2 + kk % 2] = w;
            }
            self.scales[o] = scales[i];
        }
    }

    /// Sets output rows `first..` by quantising f32 rows (times `scale`).
    pub fn set_rows_f32(&mut self, first: usize, rows: &[f32], scale: f32) {
        let scaled: Vec<f32> = rows.iter().map(|v| v * scale).collect();
        let (q, s) = quantize_rows(&scaled, self.in_dim);
        self.set_rows(first, &q, &s);
    }

    pub fn set_bias(&mut self, first: usize, values: &[f32], scale: f32) {
        let b = self.bias.as_mut().expect("a layer with a bias");
        for (d, v) in b[first..first + values.len()].iter_mut().zip(values) {
            *d = v * scale;
        }
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    pub fn bytes(&self) -> usize {
        self.panels.len() + (self.scales.len() + self.bias.as_ref().map_or(0, Vec::len)) * 4
    }

    /// `out[m x out_dim] = x[m x in_dim] · Wᵀ + b`.
    pub fn forward(&self, x: &[f32], m: usize, out: &mut [f32]) {
        let (k, n) = (self.in_dim, self.out_dim);
        assert_eq!(x.len(), m * k, "input size");
        assert_eq!(out.len(), m * n, "output size");
        // Quantise each row of x to [-A_MAX, A_MAX].
        let mut xq = vec![0i16; m * self.k_pad];
        let mut xs = vec![0.0f32; m];
        for ((row, dst), s) in x.chunks_exact(k).zip(xq.chunks_exact_mut(self.k_pad)).zip(xs.iter_mut()) {
            let max = row.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            *s = if max > 0.0 { max / A_MAX } else { 1.0 };
            let inv = 1.0 / *s;
            for (d, v) in dst.iter_mut().zip(row) {
                *d = (v * inv).round() as i16;
            }
        }
        let n_panels = n.div_ceil(QNR);
        let job = QJob { w: self, xq: &xq, xs: &xs, m, out: DisjointWrites::new(out) };
        crate::parallel::for_each_chunk(n_panels, m * k * n, |panels| job.panels(panels));
    }
}

struct QJob<'a> {
    w: &'a QuantLinear,
    xq: &'a [i16],
    xs: &'a [f32],
    m: usize,
    /// Each panel's columns are written by the thread that computes it.
    out: DisjointWrites<'a, f32>,
}

impl QJob<'_> {
    fn panels(&self, range: std::ops::Range<usize>) {
        const MR: usize = 4;
        let w = self.w;
        let pairs = w.k_pad / 2;
        let mut acc = [[0i32; QNR]; MR];
        for p in range {
            let panel = &w.panels[p * w.k_pad * QNR..(p + 1) * w.k_pad * QNR];
            let mut i = 0;
            while i < self.m {
                let rows = MR.min(self.m - i);
                let a: [&[i16]; MR] = std::array::from_fn(|r| {
                    let row = (i + r.min(rows - 1)) * w.k_pad;
                    &self.xq[row..row + w.k_pad]
                });
                dot_block(panel, &a, pairs, &mut acc);
                for (r, sums) in acc.iter().enumerate().take(rows) {
                    let row = i + r;
                    for (c, &sum) in sums.iter().enumerate() {
                        let col = p * QNR + c;
                        if col < w.out_dim {
                            let v = sum as f32 * self.xs[row] * w.scales[col] + w.bias.as_ref().map_or(0.0, |b| b[col]);
                            // SAFETY: (row, col) is inside `out`, and this panel's columns are ours.
                            unsafe { *self.out.at(row * w.out_dim + col) = v };
                        }
                    }
                }
                i += MR;
            }
        }
    }
}

/// `acc[r][c] = Σ_k a[r][k] * panel(c, k)` for four rows and one panel.
#[inline]
fn dot_block(panel: &[i8], a: &[&[i16]; 4], pairs: usize, acc: &mut [[i32; QNR]; 4]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        // SAFETY: `panel` holds `pairs` rows of 16 bytes and each `a` row 2 * pairs values.
        unsafe { simd128::dot_block(panel, a, pairs, acc) };
    }
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present; sizes as above.
        unsafe { avx2::dot_block(panel, a, pairs, acc) };
        return;
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        *acc = [[0; QNR]; 4];
        for kp in 0..pairs {
            let wrow = &panel[kp * 2 * QNR..(kp + 1) * 2 * QNR];
            for (r, row) in a.iter().enumerate() {
                let (a0, a1) = (row[2 * kp] as i32, row[2 * kp + 1] as i32);
                for c in 0..QNR {
                    acc[r][c] += a0 * wrow[2 * c] as i32 + a1 * wrow[2 * c + 1] as i32;
                }
            }
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128 {
    use super::QNR;
    use core::arch::wasm32::*;

    #[inline]
    pub unsafe fn dot_block(panel: &[i8], a: &[&[i16]; 4], pairs: usize, acc: &mut [[i32; QNR]; 4]) {
        let z = i32x4_splat(0);
        let mut lo = [z; 4];
        let mut hi = [z; 4];
        let w = panel.as_ptr();
        let ap: [*const i16; 4] = [a[0].as_ptr(), a[1].as_ptr(), a[2].as_ptr(), a[3].as_ptr()];
        for kp in 0..pairs {
            let wv = v128_load(w.add(kp * 16) as *const v128);
            // Columns 0-3 (k, k+1 interleaved) and 4-7, widened to i16.
            let w_lo = i16x8_extend_low_i8x16(wv);
            let w_hi = i16x8_extend_high_i8x16(wv);
            for r in 0..4 {
                let av = v128_load32_splat(ap[r].add(2 * kp) as *const u32);
                lo[r] = i32x4_add(lo[r], i32x4_dot_i16x8(av, w_lo));
                hi[r] = i32x4_add(hi[r], i32x4_dot_i16x8(av, w_hi));
            }
        }
        for r in 0..4 {
            v128_store(acc[r].as_mut_ptr() as *mut v128, lo[r]);
            v128_store(acc[r].as_mut_ptr().add(4) as *mut v128, hi[r]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::QNR;
    use core::arch::x86_64::*;

    #[target_feature(enable = "avx2")]
    pub unsafe fn dot_block(panel: &[i8], a: &[&[i16]; 4], pairs: usize, acc: &mut [[i32; QNR]; 4]) {
        let mut sums = [_mm256_setzero_si256(); 4];
        let w = panel.as_ptr();
        for kp in 0..pairs {
            // Eight columns, two inputs each, widened to sixteen i16.
            let wv = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.add(kp * 16) as *const __m128i));
            for r in 0..4 {
                let pair = (a[r].as_ptr().add(2 * kp) as *const i32).read_unaligned();
                sums[r] = _mm256_add_epi32(sums[r], _mm256_madd_epi16(_mm256_set1_epi32(pair), wv));
            }
        }
        for r in 0..4 {
            _mm256_storeu_si256(acc[r].as_mut_ptr() as *mut __m256i, sums[r]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_product_matches_dequantised_reference() {
        for &(m, n, k) in &[(1, 8, 2), (5, 13, 7), (50, 24, 301)] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0).collect();
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 53 % 89) as f32 - 44.0) / 31.0).collect();
            let b: Vec<f32> = (0..n).map(|i| i as f32 * 0.25 - 1.0).collect();
            let mut q = QuantLinear::zeros(n, k, true);
            q.set_rows_f32(0, &w, 1.0);
            q.set_bias(0, &b, 1.0);
            let mut out = vec![f32::NAN; m * n];
            q.forward(&x, m, &mut out);
            for i in 0..m {
                for j in 0..n {
                    let exact: f32 = (0..k).map(|kk| x[i * k + kk] * w[j * k + kk]).sum::<f32>() + b[j];
                    let norm: f32 = (0..k).map(|kk| (x[i * k + kk] * w[j * k + kk]).abs()).sum();
                    let got = out[i * n + j];
                    assert!((got - exact).abs() <= 0.01 * norm + 1e-4, "{m}x{n}x{k} [{i},{j}]: {got} vs {exact}");
                }
            }
        }
    }
}
