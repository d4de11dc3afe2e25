//! 4-bit weights, the smallest download an image tower comes in (`bundle --dtype int4`,
//! transformers.js's `q4`): each output channel's weights in blocks of [`BLOCK`] consecutive
//! values, each block an f16 scale and 4-bit integers in [-8, 7], `w ≈ scale * q`.
//!
//! In the safetensors file a weight of shape `[rows, d1, ...]` is two tensors:
//! - `<name>`, U8 of shape `[ceil(rows / 2), d1, ...]`: rows paired, row `2i` in the low four
//!   bits of each byte and row `2i + 1` in the high four (two's complement; zero past the last
//!   row), so every dimension but the first is the weight's own;
//! - `<name>_scale`, F16 of shape `[rows, ceil(d1 * ... / BLOCK)]`: the first dimension is the
//!   weight's row count.
//!
//! Each scale is chosen to minimise the block's squared error over a grid of candidates (both
//! signs, so the larger-magnitude end of a block can use -8), then refitted by least squares for
//! the integers chosen, which keeps more of the weights than mapping the largest magnitude to 7
//! or to -8 (onnxruntime's `MatMulNBits` rule; with the grid alone, 0.0066 of the weights'
//! energy lost against 0.0074 on ViT-B/32, `benches/quantised_fidelity.py`).
//!
//! The kernels do not compute in 4 bits: at load a weight becomes int8 with one scale per row
//! ([`Int4Weight::to_int8_rows`]) and runs on the int8 path, or f32 where a layer has no int8
//! kernel, so the download is what shrinks.

use half::f16;

use crate::models::safetensors_stream::TensorDtype;

/// Weights per block (one scale each).
pub const BLOCK: usize = 32;

/// Candidate scales per block: `largest magnitude / t` for `t` from 6 to 10 in quarter steps,
/// each with both signs.
const STEPS: std::ops::RangeInclusive<u32> = 24..=40;

/// A 4-bit weight as stored, with the shape it stands for.
#[derive(Debug, Clone)]
pub struct Int4Weight {
    /// The weight's own shape, `[rows, d1, ...]`.
    pub shape: Vec<usize>,
    /// Rows paired, as the file stores them (`[ceil(rows / 2), d1, ...]`).
    pub packed: Vec<u8>,
    /// `rows * blocks_per_row` scales.
    pub scales: Vec<f32>,
}

/// `[ceil(rows / 2), d1, ...]` for a weight of `shape`.
pub fn packed_shape(shape: &[usize]) -> Vec<usize> {
    let mut s = shape.to_vec();
    s[0] = s[0].div_ceil(2);
    s
}

/// `[rows, blocks per row]` for a weight of `shape`.
pub fn scales_shape(shape: &[usize]) -> Vec<usize> {
    vec![shape[0], inner(shape).div_ceil(BLOCK)]
}

/// Values per row.
fn inner(shape: &[usize]) -> usize {
    shape[1..].iter().product()
}

/// The weight's shape from the two stored shapes, if they belong together.
pub fn logical_shape(packed: &[usize], scales: &[usize]) -> Option<Vec<usize>> {
    if packed.len() < 2 || scales.len() != 2 || packed[0] != scales[0].div_ceil(2) {
        return None;
    }
    let mut shape = packed.to_vec();
    shape[0] = scales[0];
    (scales[1] == inner(&shape).div_ceil(BLOCK) && inner(&shape) > 0).then_some(shape)
}

/// The shape of the 4-bit weight `name` stored with shape `packed`, given its `<name>_scale`
/// tensor's type and shape; the error is one line naming both tensors.
pub fn check_stored(name: &str, packed: &[usize], scales: Option<(TensorDtype, &[usize])>) -> Result<Vec<usize>, String> {
    let shapes = scales.filter(|(dtype, _)| *dtype == TensorDtype::F16).map(|(_, s)| s);
    shapes.and_then(|s| logical_shape(packed, s)).ok_or_else(|| {
        format!(
            "{name} is 4-bit (U8) but {name}_scale (F16, [rows, blocks of {BLOCK}]) is missing or does not fit its shape {packed:?}"
        )
    })
}

/// The 4-bit integer `v / scale` rounds to.
#[inline]
fn level(v: f32, inv: f32) -> i8 {
    (v * inv).round().clamp(-8.0, 7.0) as i8
}

/// The squared error of `block` stored with `scale`.
fn block_error(block: &[f32], scale: f32) -> f32 {
    let inv = 1.0 / scale;
    block.iter().map(|&v| (v - level(v, inv) as f32 * scale).powi(2)).sum()
}

/// The scale (as f16 will store it) with the least squared error for `block`: the best of the
/// grid, then the least-squares scale for the integers that one chose, if that is better still.
fn best_scale(block: &[f32]) -> f16 {
    let largest = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if largest == 0.0 {
        return f16::ZERO;
    }
    let consider = |best: &mut (f32, f16), scale: f16| {
        let s = scale.to_f32();
        if s != 0.0 && s.is_finite() {
            let err = block_error(block, s);
            if err < best.0 {
                *best = (err, scale);
            }
        }
    };
    let mut best = (f32::INFINITY, f16::ZERO);
    for step in STEPS {
        for sign in [1.0f32, -1.0] {
            consider(&mut best, f16::from_f32(sign * largest * 4.0 / step as f32));
        }
    }
    // For fixed integers q the error is least at scale Σ w q / Σ q².
    let s = best.1.to_f32();
    let (wq, qq) = block.iter().fold((0.0f32, 0.0f32), |(wq, qq), &v| {
        let q = level(v, 1.0 / s) as f32;
        (wq + v * q, qq + q * q)
    });
    if qq > 0.0 {
        consider(&mut best, f16::from_f32(wq / qq));
    }
    best.1
}

impl Int4Weight {
    /// `values` (`shape`, rows first) in blocks of [`BLOCK`] per row.
    pub fn quantize(values: &[f32], shape: &[usize]) -> Self {
        let (rows, k) = (shape[0], inner(shape));
        assert_eq!(values.len(), rows * k, "values and shape disagree");
        let blocks = k.div_ceil(BLOCK);
        let mut scales = Vec::with_capacity(rows * blocks);
        let mut packed = vec![0u8; rows.div_ceil(2) * k];
        for (r, row) in values.chunks_exact(k).enumerate() {
            let shift = if r % 2 == 0 { 0 } else { 4 };
            let dst = &mut packed[(r / 2) * k..(r / 2 + 1) * k];
            for (b, block) in row.chunks(BLOCK).enumerate() {
                let scale = best_scale(block).to_f32();
                scales.push(scale);
                let inv = if scale == 0.0 { 0.0 } else { 1.0 / scale };
                for (d, &v) in dst[b * BLOCK..].iter_mut().zip(block) {
                    *d |= ((level(v, inv) as u8) & 0x0f) << shift;
                }
            }
        }
        Self { shape: shape.to_vec(), packed, scales }
    }

    /// The stored tensors back, checked against each other: `packed` (U8) of `packed_shape`,
    /// `scales` (f32 values of the F16 tensor) of `scales_shape`.
    pub fn from_stored(
        name: &str,
        packed: Vec<u8>,
        packed_shape: &[usize],
        scales: Vec<f32>,
        scales_shape: &[usize],
    ) -> Result<Self, String> {
        let bad = || {
            format!(
                "{name} is 4-bit but its shape {packed_shape:?} and its scales' {scales_shape:?} do not belong together \
                 (want [ceil(rows/2), ...] and [rows, ceil(per row/{BLOCK})])"
            )
        };
        let shape = logical_shape(packed_shape, scales_shape).ok_or_else(bad)?;
        if packed.len() != packed_shape.iter().product::<usize>() || scales.len() != scales_shape.iter().product::<usize>() {
            return Err(bad());
        }
        if let Some(s) = scales.iter().find(|s| !s.is_finite()) {
            return Err(format!("{name} has a scale that is not a finite number ({s})"));
        }
        Ok(Self { shape, packed, scales })
    }

    pub fn rows(&self) -> usize {
        self.shape[0]
    }

    /// The f16 scales as the file stores them.
    pub fn scales_f16(&self) -> Vec<f16> {
        self.scales.iter().map(|&s| f16::from_f32(s)).collect()
    }

    /// Row `r` as stored: the bytes holding it, the shift of its nibble in them, its scales.
    fn row(&self, r: usize) -> (&[u8], u32, &[f32]) {
        let (k, blocks) = (inner(&self.shape), inner(&self.shape).div_ceil(BLOCK));
        let shift = if r % 2 == 0 { 0 } else { 4 };
        (&self.packed[(r / 2) * k..(r / 2 + 1) * k], shift, &self.scales[r * blocks..(r + 1) * blocks])
    }

    /// The values, `[rows, per row]` in row order.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.rows() * inner(&self.shape));
        for r in 0..self.rows() {
            let (src, shift, scales) = self.row(r);
            out.extend(src.iter().enumerate().map(|(i, &b)| nibble_level(b >> shift) as f32 * scales[i / BLOCK]));
        }
        out
    }

    /// int8 with one scale per row, as [`crate::kernels::qgemm`] and the int8 1x1 convolutions
    /// take them: the row's scale is its largest magnitude / 127 (as `qgemm::quantize_rows` sets it),
    /// and each block's sixteen 4-bit levels map to int8 through a table, so no weight passes
    /// through f32 (a ViT-B/32 loads in a fraction of the time of dequantising, and without an
    /// f32 copy of the largest weight). The int8 step is about 20 times finer than the 4-bit
    /// step of the block that holds the row's largest magnitude; the fidelity figures
    /// (`examples/export_fidelity.rs`) measure what it adds to the 4-bit error.
    pub fn to_int8_rows(&self) -> (Vec<i8>, Vec<f32>) {
        let (rows, k) = (self.rows(), inner(&self.shape));
        let mut values = vec![0i8; rows * k];
        let mut row_scales = Vec::with_capacity(rows);
        for (r, dst) in values.chunks_exact_mut(k.max(1)).enumerate().take(rows) {
            let (src, shift, scales) = self.row(r);
            // The row's largest magnitude: per block, its scale times its largest level.
            let largest = src
                .chunks(BLOCK)
                .zip(scales)
                .fold(0.0f32, |m, (block, s)| m.max(largest_level(block, shift) as f32 * s.abs()));
            let row_scale = if largest > 0.0 { largest / 127.0 } else { 1.0 };
            row_scales.push(row_scale);
            for ((block, s), out) in src.chunks(BLOCK).zip(scales).zip(dst.chunks_mut(BLOCK)) {
                map_levels(block, shift, &level_table(s / row_scale), out);
            }
        }
        (values, row_scales)
    }
}

/// The level a 4-bit two's complement nibble (the low four bits of `n`) stands for.
#[inline]
fn nibble_level(n: u8) -> i8 {
    ((n << 4) as i8) >> 4
}

/// The int8 value of each nibble value 0..16 of a block whose level step is `step` int8 steps:
/// `level * step` rounded half to even (`f32.nearest` in wasm, where `round` is a call).
fn level_table(step: f32) -> [i8; 16] {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        use core::arch::wasm32::*;
        const LEVELS: [f32; 16] = [0., 1., 2., 3., 4., 5., 6., 7., -8., -7., -6., -5., -4., -3., -2., -1.];
        // SAFETY: four 16-byte loads inside LEVELS.
        unsafe {
            let q = |i: usize| {
                let v = f32x4_mul(v128_load(LEVELS.as_ptr().add(4 * i) as *const v128), f32x4_splat(step));
                i32x4_trunc_sat_f32x4(f32x4_nearest(v))
            };
            let wide = i8x16_narrow_i16x8(i16x8_narrow_i32x4(q(0), q(1)), i16x8_narrow_i32x4(q(2), q(3)));
            return std::mem::transmute::<v128, [i8; 16]>(i8x16_max(wide, i8x16_splat(-127)));
        }
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    std::array::from_fn(|i| (nibble_level(i as u8) as f32 * step).round_ties_even().clamp(-127.0, 127.0) as i8)
}

/// The largest magnitude of the levels in the nibbles at `shift` of `bytes`.
fn largest_level(bytes: &[u8], shift: u32) -> u8 {
    // |level| of each nibble value 0..16 (0..7, then 8 for -8 down to 1 for -1).
    const MAGNITUDE: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 7, 6, 5, 4, 3, 2, 1];
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if bytes.len() % 16 == 0 {
        use core::arch::wasm32::*;
        // SAFETY: whole 16-byte loads inside `bytes`; the table is 16 bytes.
        unsafe {
            let magnitude = v128_load(MAGNITUDE.as_ptr() as *const v128);
            let mut m = u8x16_splat(0);
            for chunk in bytes.chunks_exact(16) {
                let v = u8x16_shr(v128_load(chunk.as_ptr() as *const v128), shift);
                m = u8x16_max(m, i8x16_swizzle(magnitude, v128_and(v, u8x16_splat(0x0f))));
            }
            let lanes: [u8; 16] = std::mem::transmute(m);
            return lanes.into_iter().max().unwrap_or(0);
        }
    }
    bytes.iter().map(|&b| MAGNITUDE[((b >> shift) & 0x0f) as usize]).max().unwrap_or(0)
}

/// `out[i] = table[nibble at shift of bytes[i]]`.
fn map_levels(bytes: &[u8], shift: u32, table: &[i8; 16], out: &mut [i8]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if bytes.len() % 16 == 0 && out.len() == bytes.len() {
        use core::arch::wasm32::*;
        // SAFETY: whole 16-byte loads and stores inside `bytes` and `out`; the table is 16 bytes.
        unsafe {
            let t = v128_load(table.as_ptr() as *const v128);
            for (chunk, dst) in bytes.chunks_exact(16).zip(out.chunks_exact_mut(16)) {
                let v = u8x16_shr(v128_load(chunk.as_ptr() as *const v128), shift);
                v128_store(dst.as_mut_ptr() as *mut v128, i8x16_swizzle(t, v128_and(v, u8x16_splat(0x0f))));
            }
            return;
        }
    }
    for (d, &b) in out.iter_mut().zip(bytes) {
        *d = table[((b >> shift) & 0x0f) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(rows: usize, k: usize) -> Vec<f32> {
        (0..rows * k).map(|i| ((i * 7919 % 1009) as f32 / 1009.0 - 0.5) * (1.0 + (i / k) as f32 * 0.3)).collect()
    }

    #[test]
    fn a_weight_comes_back_within_half_a_step_of_each_block() {
        // Odd rows (the last byte row half empty) and a last block shorter than 32.
        let (rows, k) = (5, 70);
        let w = weights(rows, k);
        let q = Int4Weight::quantize(&w, &[rows, k]);
        assert_eq!(q.packed.len(), 3 * k);
        assert_eq!(q.scales.len(), rows * 3);
        let back = q.dequantize();
        for r in 0..rows {
            for c in 0..k {
                let s = q.scales[r * 3 + c / BLOCK].abs();
                let block = &w[r * k + c / BLOCK * BLOCK..r * k + ((c / BLOCK + 1) * BLOCK).min(k)];
                let largest = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                // Within half a step, or clipped by at most what the grid allows.
                let err = (back[r * k + c] - w[r * k + c]).abs();
                assert!(err <= s * 0.5 + 1e-6 || err <= largest - 7.0 * s + 1e-6, "row {r} col {c}: {err} (step {s})");
            }
        }
        // The high nibbles past the last row are zero.
        assert!(q.packed[2 * k..].iter().all(|b| b >> 4 == 0));
    }

    #[test]
    fn the_searched_scale_beats_mapping_the_largest_to_seven() {
        let (rows, k) = (16, 256);
        let w: Vec<f32> = (0..rows * k).map(|i| ((i as f32 * 0.618).sin() * 3.0).powi(3) / 27.0).collect();
        let q = Int4Weight::quantize(&w, &[rows, k]);
        let searched: f32 = q.dequantize().iter().zip(&w).map(|(a, b)| (a - b).powi(2)).sum();
        let naive: f32 = w
            .chunks(BLOCK)
            .flat_map(|b| {
                let s = f16::from_f32(b.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 7.0).to_f32();
                b.iter().map(move |v| (v - (v / s).round().clamp(-8.0, 7.0) * s).powi(2))
            })
            .sum();
        assert!(searched < naive * 0.95, "searched {searched} vs largest-to-7 {naive}");
    }

    #[test]
    fn shapes_round_trip_and_mismatches_are_refused() {
        let shape = [768, 3, 32, 32];
        assert_eq!(packed_shape(&shape), vec![384, 3, 32, 32]);
        assert_eq!(scales_shape(&shape), vec![768, 96]);
        assert_eq!(logical_shape(&packed_shape(&shape), &scales_shape(&shape)), Some(shape.to_vec()));
        assert_eq!(logical_shape(&[3, 8], &[5, 1]), Some(vec![5, 8]));
        assert_eq!(logical_shape(&[3, 8], &[7, 1]), None, "rows");
        assert_eq!(logical_shape(&[3, 64], &[5, 1]), None, "blocks");
        assert_eq!(logical_shape(&[3], &[5, 1]), None, "one dimension");
        let err = Int4Weight::from_stored("w", vec![0; 24], &[3, 8], vec![1.0; 7], &[7, 1]).unwrap_err();
        assert!(err.contains("w is 4-bit") && !err.contains('\n'), "{err}");
        let nan = Int4Weight::from_stored("w", vec![0; 24], &[3, 8], vec![f32::NAN; 5], &[5, 1]).unwrap_err();
        assert!(nan.contains("not a finite number"), "{nan}");
        assert!(Int4Weight::from_stored("w", vec![0; 23], &[3, 8], vec![1.0; 5], &[5, 1]).is_err(), "short data");
    }

    #[test]
    fn int8_rows_are_what_quantising_the_4bit_values_gives() {
        let (rows, k) = (7, 100);
        let q = Int4Weight::quantize(&weights(rows, k), &[rows, k]);
        let (v, s) = q.to_int8_rows();
        let (want_v, want_s) = crate::kernels::qgemm::quantize_rows(&q.dequantize(), k);
        // The same scales; the integers equal but where f32 rounding sits on a half.
        for (a, b) in s.iter().zip(&want_s) {
            assert!((a - b).abs() <= a.abs() * 1e-6, "{a} vs {b}");
        }
        let off = v.iter().zip(&want_v).filter(|(a, b)| (**a as i32 - **b as i32).abs() > 1).count();
        assert_eq!(off, 0);
        assert!(v.iter().zip(&want_v).filter(|(a, b)| a != b).count() <= rows * k / 100);
    }

    #[test]
    fn int8_rows_stay_close_to_the_4bit_values() {
        let (rows, k) = (6, 96);
        let q = Int4Weight::quantize(&weights(rows, k), &[rows, k]);
        let exact = q.dequantize();
        let (v, s) = q.to_int8_rows();
        for r in 0..rows {
            let largest = exact[r * k..(r + 1) * k].iter().fold(0.0f32, |m, x| m.max(x.abs()));
            for c in 0..k {
                let err = (v[r * k + c] as f32 * s[r] - exact[r * k + c]).abs();
                assert!(err <= largest / 254.0 + 1e-6, "row {r} col {c}: {err}");
            }
        }
    }
}
