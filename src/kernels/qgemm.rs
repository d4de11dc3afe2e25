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
/// Inputs (rows of the product) per block.
const MR: usize = 4;
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

    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    pub fn bytes(&self) -> usize {
        self.panels.len() + (self.scales.len() + self.bias.as_ref().map_or(0, Vec::len)) * 4
    }

    /// `out[m x out_dim] = x[m x in_dim] · Wᵀ + b`.
    pub fn forward(&self, x: &[f32], m: usize, out: &mut [f32]) {
        self.forward_outputs(x, m, 0..self.out_dim, out);
    }

    /// Outputs `outputs` of [`Self::forward`] only: the columns of `out` (`m x out_dim`) in that
    /// range are written, the others left as they are. Where the range does not fall on whole
    /// panels, every output is computed.
    pub fn forward_outputs(&self, x: &[f32], m: usize, outputs: std::ops::Range<usize>, out: &mut [f32]) {
        let n = self.out_dim;
        assert!(outputs.start <= outputs.end && outputs.end <= n, "outputs {outputs:?} of {n}");
        let on_panels = outputs.start % QNR == 0 && (outputs.end % QNR == 0 || outputs.end == n);
        let outputs = if on_panels { outputs } else { 0..n };
        let k = self.in_dim;
        assert_eq!(x.len(), m * k, "input size");
        assert_eq!(out.len(), m * n, "output size");
        let packed = quantize_activation_rows(x, k, self.k_pad);
        self.run(&packed, m, Layout::RowsAreInputs, outputs.start / QNR..outputs.end.div_ceil(QNR), out);
    }

    /// The same product with both sides transposed, as a 1x1 convolution over NCHW planes has
    /// it: `x` is `in_dim x m` (an input channel per row, a pixel per column), `out` is
    /// `out_dim x m`, `out = W · x + b`. Each pixel is quantised on its own, as a row is in
    /// [`Self::forward`].
    pub fn forward_columns(&self, x: &[f32], m: usize, out: &mut [f32]) {
        let k = self.in_dim;
        assert_eq!(x.len(), m * k, "input size");
        assert_eq!(out.len(), m * self.out_dim, "output size");
        let packed = quantize_activation_columns(x, k, m, self.k_pad);
        self.run(&packed, m, Layout::ColumnsAreInputs, 0..self.out_dim.div_ceil(QNR), out);
    }

    /// The outputs of `panels` (a range of panel indices).
    fn run(&self, x: &PackedActivations, m: usize, layout: Layout, panels: std::ops::Range<usize>, out: &mut [f32]) {
        let job = QJob { w: self, x, m, layout, out: DisjointWrites::new(out) };
        let work = m * self.in_dim * panels.len() * QNR;
        crate::parallel::for_each_chunk(panels.len(), work, |chunk| job.panels(chunk.start + panels.start..chunk.end + panels.start));
    }
}

/// Where an input's values and an output's lie.
#[derive(Clone, Copy)]
enum Layout {
    /// An input per row (`m x in_dim`), an output per row (`m x out_dim`).
    RowsAreInputs,
    /// An input per column (`in_dim x m`), an output per column (`out_dim x m`).
    ColumnsAreInputs,
}

/// The scale that maps a vector whose largest magnitude is `max` onto [-A_MAX, A_MAX].
fn activation_scale(max: f32) -> f32 {
    if max > 0.0 {
        max / A_MAX
    } else {
        1.0
    }
}

/// Activations in the order the product reads them: blocks of [`MR`] inputs (the last padded
/// with zeros); in a block, for each pair of input values `(2j, 2j+1)`, the pair of each of its
/// inputs in turn, so one 16-byte load holds what a block multiplies into a panel row.
struct PackedActivations {
    values: Vec<i16>,
    /// One scale per input: `x ≈ scale * q`.
    scales: Vec<f32>,
    pairs: usize,
}

impl PackedActivations {
    fn zeros(m: usize, k_pad: usize) -> Self {
        let pairs = k_pad / 2;
        Self { values: vec![0; m.div_ceil(MR) * pairs * 2 * MR], scales: vec![1.0; m], pairs }
    }

    /// Block `b`: `pairs * 2 * MR` values.
    fn block(&self, b: usize) -> &[i16] {
        let len = self.pairs * 2 * MR;
        &self.values[b * len..(b + 1) * len]
    }
}

/// The larger of two magnitudes, as a comparison: `f32::max` is a call (`fmaxf`) in wasm32.
#[inline]
fn larger(a: f32, b: f32) -> f32 {
    if b > a {
        b
    } else {
        a
    }
}

/// The largest magnitude in `v`, over eight lanes (vectorised), then across them.
fn largest_magnitude(v: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let mut chunks = v.chunks_exact(8);
    for chunk in &mut chunks {
        for (a, x) in lanes.iter_mut().zip(chunk) {
            *a = larger(*a, x.abs());
        }
    }
    let tail = chunks.remainder().iter().fold(0.0f32, |a, x| larger(a, x.abs()));
    lanes.iter().fold(tail, |a, &x| larger(a, x))
}

/// Each row of `x` (`m x k`) quantised on its own.
fn quantize_activation_rows(x: &[f32], k: usize, k_pad: usize) -> PackedActivations {
    let m = x.len() / k;
    let mut packed = PackedActivations::zeros(m, k_pad);
    let mut inv = vec![0.0f32; m];
    for ((row, scale), inv) in x.chunks_exact(k).zip(packed.scales.iter_mut()).zip(inv.iter_mut()) {
        *scale = activation_scale(largest_magnitude(row));
        *inv = 1.0 / *scale;
    }
    let block_len = packed.pairs * 2 * MR;
    // Whole blocks of rows, four values a row at a time; what is left, value by value.
    let (whole_rows, whole_k) = (m / MR * MR, k / 4 * 4);
    for (b, dst) in packed.values.chunks_exact_mut(block_len).enumerate() {
        let first = b * MR;
        let rows: [&[f32]; MR] = std::array::from_fn(|r| if first + r < m { &x[(first + r) * k..(first + r + 1) * k] } else { &[] });
        let done = if first < whole_rows { whole_k } else { 0 };
        for c in (0..done).step_by(4) {
            let at = (c / 2) * 2 * MR;
            let four: [&[f32]; MR] = std::array::from_fn(|r| &rows[r][c..c + 4]);
            quantize_two_pairs(&four, &inv[first..first + MR], &mut dst[at..at + 4 * MR]);
        }
        for (r, row) in rows.iter().enumerate() {
            for (c, v) in row.iter().enumerate().skip(done) {
                dst[((c / 2) * MR + r) * 2 + c % 2] = (v * inv[first + r]).round_ties_even() as i16;
            }
        }
    }
    packed
}

/// Values `c..c + 4` of the [`MR`] rows of a block (`four[r]`), quantised with each row's `inv`,
/// as the block stores them: pair `c / 2` of rows 0-3, then pair `c / 2 + 1`.
#[inline]
fn quantize_two_pairs(four: &[&[f32]; MR], inv: &[f32], dst: &mut [i16]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        use core::arch::wasm32::*;
        assert!(four.iter().all(|r| r.len() >= 4) && inv.len() >= MR && dst.len() >= 4 * MR);
        // SAFETY: the lengths are checked above; loads and stores are unaligned-safe in wasm.
        unsafe {
            let q = |r: usize| {
                let v = f32x4_mul(v128_load(four[r].as_ptr() as *const v128), f32x4_splat(inv[r]));
                i32x4_trunc_sat_f32x4(f32x4_nearest(v))
            };
            // As 32-bit lanes: [r0 pair c/2, r0 pair c/2+1, r1 ..., r1 ...], and rows 2, 3.
            let rows01 = i16x8_narrow_i32x4(q(0), q(1));
            let rows23 = i16x8_narrow_i32x4(q(2), q(3));
            v128_store(dst.as_mut_ptr() as *mut v128, i32x4_shuffle::<0, 2, 4, 6>(rows01, rows23));
            v128_store(dst.as_mut_ptr().add(2 * MR) as *mut v128, i32x4_shuffle::<1, 3, 5, 7>(rows01, rows23));
        }
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    for (r, row) in four.iter().enumerate() {
        for (c, v) in row.iter().take(4).enumerate() {
            dst[((c / 2) * MR + r) * 2 + c % 2] = (v * inv[r]).round_ties_even() as i16;
        }
    }
}

/// Each column of `x` (`k x m`) quantised on its own.
fn quantize_activation_columns(x: &[f32], k: usize, m: usize, k_pad: usize) -> PackedActivations {
    debug_assert!(x.len() == k * m && k <= k_pad);
    // The largest magnitude of each column, one row of `x` at a time (contiguous, vectorised).
    let mut max = vec![0.0f32; m];
    for row in x.chunks_exact(m) {
        for (a, v) in max.iter_mut().zip(row) {
            *a = larger(*a, v.abs());
        }
    }
    let mut packed = PackedActivations::zeros(m, k_pad);
    for (s, &v) in packed.scales.iter_mut().zip(&max) {
        *s = activation_scale(v);
    }
    // Padded inputs are multiplied by 0.
    let mut inv = vec![0.0f32; m.div_ceil(MR) * MR];
    for (d, s) in inv.iter_mut().zip(&packed.scales) {
        *d = 1.0 / s;
    }
    // The padding row past an odd `k` (only then is one needed).
    let zeros = vec![0.0f32; if k % 2 == 1 { m } else { 0 }];
    let row = |c: usize| if c < k { &x[c * m..(c + 1) * m] } else { &zeros[..] };
    let block_len = packed.pairs * 2 * MR;
    for j in 0..packed.pairs {
        let (even, odd) = (row(2 * j), row(2 * j + 1));
        for (b, dst) in packed.values.chunks_exact_mut(block_len).enumerate() {
            let dst = &mut dst[j * 2 * MR..(j + 1) * 2 * MR];
            let first = b * MR;
            if first + MR <= m {
                quantize_pairs(&even[first..first + MR], &odd[first..first + MR], &inv[first..first + MR], dst);
            } else {
                for i in first..m {
                    let r = i - first;
                    dst[2 * r] = (even[i] * inv[i]).round_ties_even() as i16;
                    dst[2 * r + 1] = (odd[i] * inv[i]).round_ties_even() as i16;
                }
            }
        }
    }
    packed
}

/// `dst = [q(even[0]), q(odd[0]), q(even[1]), ...]` for [`MR`] inputs, `q(v) = round(v * inv)`.
#[inline]
fn quantize_pairs(even: &[f32], odd: &[f32], inv: &[f32], dst: &mut [i16]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        use core::arch::wasm32::*;
        assert!(even.len() >= 4 && odd.len() >= 4 && inv.len() >= 4 && dst.len() >= 8);
        // SAFETY: the lengths are checked above; loads and stores are unaligned-safe in wasm.
        unsafe {
            let s = v128_load(inv.as_ptr() as *const v128);
            let e = i32x4_trunc_sat_f32x4(f32x4_nearest(f32x4_mul(v128_load(even.as_ptr() as *const v128), s)));
            let o = i32x4_trunc_sat_f32x4(f32x4_nearest(f32x4_mul(v128_load(odd.as_ptr() as *const v128), s)));
            // [e0 e1 e2 e3 o0 o1 o2 o3] as i16, then interleaved.
            let narrow = i16x8_narrow_i32x4(e, o);
            let pairs = i16x8_shuffle::<0, 4, 1, 5, 2, 6, 3, 7>(narrow, narrow);
            v128_store(dst.as_mut_ptr() as *mut v128, pairs);
        }
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    for r in 0..MR {
        dst[2 * r] = (even[r] * inv[r]).round_ties_even() as i16;
        dst[2 * r + 1] = (odd[r] * inv[r]).round_ties_even() as i16;
    }
}

struct QJob<'a> {
    w: &'a QuantLinear,
    x: &'a PackedActivations,
    m: usize,
    layout: Layout,
    /// Each panel's columns are written by the thread that computes it.
    out: DisjointWrites<'a, f32>,
}

impl QJob<'_> {
    fn panels(&self, range: std::ops::Range<usize>) {
        let w = self.w;
        let mut acc = [[0i32; QNR]; MR];
        let zeros = [0.0f32; QNR];
        let mut widened = vec![0i16; w.k_pad * QNR];
        for p in range {
            let panel = &w.panels[p * w.k_pad * QNR..(p + 1) * w.k_pad * QNR];
            let first_col = p * QNR;
            let whole = first_col + QNR <= w.out_dim;
            for b in 0..self.m.div_ceil(MR) {
                let first = b * MR;
                let weights = if b == 0 { Weights::Widening(panel, &mut widened) } else { Weights::Widened(&widened) };
                dot_block(weights, self.x.block(b), self.x.pairs, (self.m - first).min(MR), &mut acc);
                let rows = acc.iter().enumerate().take(self.m - first);
                if whole && matches!(self.layout, Layout::RowsAreInputs) {
                    // A row's eight outputs are side by side: one pass over them (`scale_sums`).
                    let scales: &[f32; QNR] = w.scales[first_col..first_col + QNR].try_into().expect("a whole panel");
                    let bias: &[f32; QNR] = match &w.bias {
                        Some(b) => b[first_col..first_col + QNR].try_into().expect("a whole panel"),
                        None => &zeros,
                    };
                    for (r, sums) in rows {
                        let row = first + r;
                        // SAFETY: columns `first_col..+QNR` of `row` are inside `out` and ours.
                        let dst = unsafe { std::slice::from_raw_parts_mut(self.out.at(row * w.out_dim + first_col), QNR) };
                        scale_sums(sums, self.x.scales[row], scales, bias, dst.try_into().expect("QNR columns"));
                    }
                    continue;
                }
                for (r, sums) in rows {
                    let row = first + r;
                    for (c, &sum) in sums.iter().enumerate() {
                        let col = first_col + c;
                        if col < w.out_dim {
                            let v = sum as f32 * self.x.scales[row] * w.scales[col] + w.bias.as_ref().map_or(0.0, |b| b[col]);
                            let at = match self.layout {
                                Layout::RowsAreInputs => row * w.out_dim + col,
                                Layout::ColumnsAreInputs => col * self.m + row,
                            };
                            // SAFETY: (row, col) is inside `out`, and this panel's columns are ours.
                            unsafe { *self.out.at(at) = v };
                        }
                    }
                }
            }
        }
    }
}

/// `dst[c] = sums[c] * x_scale * scales[c] + bias[c]`: one input's outputs of a whole panel
/// (four vector operations a half in wasm; V8 ran LLVM's scalar form, six instructions a value).
#[inline]
fn scale_sums(sums: &[i32; QNR], x_scale: f32, scales: &[f32; QNR], bias: &[f32; QNR], dst: &mut [f32; QNR]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    // SAFETY: every pointer is to QNR = 8 values; wasm loads and stores need no alignment.
    unsafe {
        use core::arch::wasm32::*;
        let xs = f32x4_splat(x_scale);
        for half in [0, 4] {
            let v = f32x4_convert_i32x4(v128_load(sums.as_ptr().add(half) as *const v128));
            let s = v128_load(scales.as_ptr().add(half) as *const v128);
            let b = v128_load(bias.as_ptr().add(half) as *const v128);
            v128_store(dst.as_mut_ptr().add(half) as *mut v128, f32x4_add(f32x4_mul(f32x4_mul(v, xs), s), b));
        }
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    for c in 0..QNR {
        dst[c] = sums[c] as f32 * x_scale * scales[c] + bias[c];
    }
}

/// A panel's weights as [`dot_block`] reads them. The first block of inputs reads the int8
/// panel, and in wasm also leaves it widened to i16 in a scratch the size of one panel (12 KB for
/// 768 inputs, in L1); the other blocks load that as it is. The kernel widened the panel again
/// for each block (13 times for ViT-B/32's 50 tokens): two of its eighteen vector operations a
/// step. Widening in the first block's pass, not before it, keeps the panel's reads from memory
/// under that block's products.
enum Weights<'a> {
    /// The panel, and where the first block leaves it widened.
    Widening(&'a [i8], &'a mut [i16]),
    /// What the first block left.
    Widened(&'a [i16]),
}

/// `acc[r][c] = Σ_k a(r, k) * panel(c, k)` for the first `rows` (at most [`MR`]) inputs of one
/// block ([`PackedActivations`]: pair `j` of input `r` at `block[(j * MR + r) * 2..]`) and one
/// panel; rows past `rows` are padding, and are left alone where the kernel can skip them.
#[inline]
fn dot_block(weights: Weights, block: &[i16], pairs: usize, rows: usize, acc: &mut [[i32; QNR]; MR]) {
    let len = match &weights {
        Weights::Widening(panel, widened) => panel.len().min(widened.len()),
        Weights::Widened(widened) => widened.len(),
    };
    assert!(len >= pairs * 2 * QNR && block.len() >= pairs * 2 * MR, "block sizes");
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    // SAFETY: the panel (and the widened one) hold `pairs` rows of 16 values and `block` `pairs`
    // groups of 8. The last block of a product whose row count is not a multiple of four
    // computes only its rows (ViT-B/32's 50 tokens: 2 of the 13th block's 4).
    unsafe {
        use simd128::{dot_block as d, dot_block_widening as dw};
        match (weights, rows) {
            (Weights::Widening(p, w), 1) => dw::<1>(p, w, block, pairs, acc),
            (Weights::Widening(p, w), 2) => dw::<2>(p, w, block, pairs, acc),
            (Weights::Widening(p, w), 3) => dw::<3>(p, w, block, pairs, acc),
            (Weights::Widening(p, w), _) => dw::<MR>(p, w, block, pairs, acc),
            (Weights::Widened(w), 1) => d::<1>(w, block, pairs, acc),
            (Weights::Widened(w), 2) => d::<2>(w, block, pairs, acc),
            (Weights::Widened(w), 3) => d::<3>(w, block, pairs, acc),
            (Weights::Widened(w), _) => d::<MR>(w, block, pairs, acc),
        }
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let panel: &[i16] = match weights {
        // Elsewhere the first block widens the panel in a plain loop, then reads it as the
        // other blocks do (AVX2 and the portable loop below).
        Weights::Widening(panel, widened) => {
            for (w, &v) in widened.iter_mut().zip(panel) {
                *w = v as i16;
            }
            widened
        }
        Weights::Widened(widened) => widened,
    };
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present; sizes as above.
        unsafe { avx2::dot_block(panel, block, pairs, acc) };
        return;
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        let _ = rows;
        *acc = [[0; QNR]; MR];
        for j in 0..pairs {
            let wrow = &panel[j * 2 * QNR..(j + 1) * 2 * QNR];
            for (r, sums) in acc.iter_mut().enumerate() {
                let (a0, a1) = (block[(j * MR + r) * 2] as i32, block[(j * MR + r) * 2 + 1] as i32);
                for (c, sum) in sums.iter_mut().enumerate() {
                    *sum += a0 * wrow[2 * c] as i32 + a1 * wrow[2 * c + 1] as i32;
                }
            }
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128 {
    use super::{MR, QNR};
    use core::arch::wasm32::*;

    /// [`dot_block`] on the int8 panel, widening its weights to i16 as it loads them
    /// (`v128.load8x8_s`, a `vpmovsxbw` memory operand in V8) and storing them into `widened`.
    #[inline]
    pub unsafe fn dot_block_widening<const R: usize>(panel: &[i8], widened: &mut [i16], block: &[i16], pairs: usize, acc: &mut [[i32; QNR]; MR]) {
        let (mut w, mut out) = (panel.as_ptr(), widened.as_mut_ptr());
        steps::<R>(block, pairs, acc, || {
            let (w_lo, w_hi) = (i16x8_load_extend_i8x8(w), i16x8_load_extend_i8x8(w.add(8)));
            v128_store(out as *mut v128, w_lo);
            v128_store(out.add(8) as *mut v128, w_hi);
            (w, out) = (w.add(2 * QNR), out.add(2 * QNR));
            (w_lo, w_hi)
        });
    }

    /// The weights of columns 0-3 and of columns 4-7, two inputs each, as i16 (widened by the
    /// panel's first block). `R` inputs of the block (the first `R` of its [`MR`]).
    #[inline]
    pub unsafe fn dot_block<const R: usize>(panel: &[i16], block: &[i16], pairs: usize, acc: &mut [[i32; QNR]; MR]) {
        let mut w = panel.as_ptr();
        steps::<R>(block, pairs, acc, || {
            let step = (v128_load(w as *const v128), v128_load(w.add(8) as *const v128));
            w = w.add(2 * QNR);
            step
        });
    }

    /// The loop both kernels share: `weights` gives each step's two vectors of weights, and
    /// each input's pair is loaded broadcast to the four lanes (`v128.load32_splat`, which V8
    /// turns into a `vbroadcastss` memory operand; shuffling a loaded pair took six vector
    /// operations a step beside the eight products: 1.12-1.2x slower,
    /// benches/probes/qgemm_loads).
    #[inline(always)]
    unsafe fn steps<const R: usize>(block: &[i16], pairs: usize, acc: &mut [[i32; QNR]; MR], mut weights: impl FnMut() -> (v128, v128)) {
        let z = i32x4_splat(0);
        let mut lo = [z; R];
        let mut hi = [z; R];
        let mut a = block.as_ptr();
        for _ in 0..pairs {
            let (w_lo, w_hi) = weights();
            for r in 0..R {
                let ar = v128_load32_splat(a.add(r * 2) as *const u32);
                lo[r] = i32x4_add(lo[r], i32x4_dot_i16x8(ar, w_lo));
                hi[r] = i32x4_add(hi[r], i32x4_dot_i16x8(ar, w_hi));
            }
            a = a.add(2 * MR);
        }
        for r in 0..R {
            v128_store(acc[r].as_mut_ptr() as *mut v128, lo[r]);
            v128_store(acc[r].as_mut_ptr().add(4) as *mut v128, hi[r]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{MR, QNR};
    use core::arch::x86_64::*;

    #[target_feature(enable = "avx2")]
    pub unsafe fn dot_block(panel: &[i16], block: &[i16], pairs: usize, acc: &mut [[i32; QNR]; MR]) {
        let mut sums = [_mm256_setzero_si256(); MR];
        let (w, a) = (panel.as_ptr(), block.as_ptr());
        for j in 0..pairs {
            // Eight columns, two inputs each: sixteen i16.
            let wv = _mm256_loadu_si256(w.add(j * 16) as *const __m256i);
            for (r, sum) in sums.iter_mut().enumerate() {
                let pair = (a.add((j * MR + r) * 2) as *const i32).read_unaligned();
                *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(_mm256_set1_epi32(pair), wv));
            }
        }
        for r in 0..MR {
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

    #[test]
    fn a_range_of_outputs_is_those_columns_of_the_whole_product() {
        let (m, n, k) = (6, 21, 9);
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0).collect();
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 53 % 89) as f32 - 44.0) / 31.0).collect();
        let mut q = QuantLinear::zeros(n, k, true);
        q.set_rows_f32(0, &w, 1.0);
        q.set_bias(0, &(0..n).map(|i| i as f32).collect::<Vec<_>>(), 1.0);
        let mut all = vec![0.0f32; m * n];
        q.forward(&x, m, &mut all);
        // Whole panels (8..16, 16..21 the last, partial one), and a range off the panels (all).
        for range in [8..16, 16..21, 0..21, 3..9] {
            let mut out = vec![f32::NAN; m * n];
            q.forward_outputs(&x, m, range.clone(), &mut out);
            for (i, (&got, &want)) in out.iter().zip(&all).enumerate() {
                if range.contains(&(i % n)) {
                    assert_eq!(got, want, "{range:?} [{i}]");
                } else if range.start % QNR == 0 {
                    assert!(got.is_nan(), "{range:?} [{i}] written");
                }
            }
        }
    }

    #[test]
    fn the_column_layout_is_the_transposed_product_quantised_per_column() {
        // A 1x1 convolution's shape: 11 input channels, 13 pixels, 10 output channels.
        let (k, m, n) = (11, 13, 10);
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 29 % 97) as f32 - 48.0) / 13.0).collect();
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 41 % 83) as f32 - 41.0) / 23.0).collect();
        let b: Vec<f32> = (0..n).map(|i| 0.5 - i as f32 * 0.125).collect();
        let mut q = QuantLinear::zeros(n, k, true);
        q.set_rows_f32(0, &w, 1.0);
        q.set_bias(0, &b, 1.0);
        // Rows are pixels here; the column form takes the same values transposed.
        let mut rows_out = vec![f32::NAN; m * n];
        q.forward(&x, m, &mut rows_out);
        let columns: Vec<f32> = (0..k * m).map(|i| x[(i % m) * k + i / m]).collect();
        let mut columns_out = vec![f32::NAN; n * m];
        q.forward_columns(&columns, m, &mut columns_out);
        for p in 0..m {
            for o in 0..n {
                // The same integers and scales: the same value, bit for bit.
                assert_eq!(columns_out[o * m + p], rows_out[p * n + o], "pixel {p}, output {o}");
            }
        }
    }
}
