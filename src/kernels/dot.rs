//! Dot products of the ranking's fast pass, written so that they vectorise: i8 catalog values
//! against an i16 query with explicit simd128 on wasm32 (i32x4.dot_i16x8_s) and SSE2 on x86_64
//! (pmaddwd), f32 with independent accumulators that LLVM vectorises.

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub fn dot_i8_i16(v: &[i8], q: &[i16]) -> i32 {
    use core::arch::wasm32::*;
    let n = v.len().min(q.len());
    let body = n / 32 * 32;
    let (mut a0, mut a1, mut a2, mut a3) = (i32x4_splat(0), i32x4_splat(0), i32x4_splat(0), i32x4_splat(0));
    let mut i = 0;
    // SAFETY: every load reads 16 bytes inside v[..body] or q[..body] (i + 32 <= body <= n).
    unsafe {
        while i < body {
            let x0 = v128_load(v.as_ptr().add(i) as *const v128);
            let x1 = v128_load(v.as_ptr().add(i + 16) as *const v128);
            let qp = q.as_ptr().add(i);
            a0 = i32x4_add(a0, i32x4_dot_i16x8(i16x8_extend_low_i8x16(x0), v128_load(qp as *const v128)));
            a1 = i32x4_add(a1, i32x4_dot_i16x8(i16x8_extend_high_i8x16(x0), v128_load(qp.add(8) as *const v128)));
            a2 = i32x4_add(a2, i32x4_dot_i16x8(i16x8_extend_low_i8x16(x1), v128_load(qp.add(16) as *const v128)));
            a3 = i32x4_add(a3, i32x4_dot_i16x8(i16x8_extend_high_i8x16(x1), v128_load(qp.add(24) as *const v128)));
            i += 32;
        }
    }
    let s = i32x4_add(i32x4_add(a0, a1), i32x4_add(a2, a3));
    let mut sum = i32x4_extract_lane::<0>(s) + i32x4_extract_lane::<1>(s) + i32x4_extract_lane::<2>(s) + i32x4_extract_lane::<3>(s);
    for j in body..n {
        sum += v[j] as i32 * q[j] as i32;
    }
    sum
}

#[cfg(target_arch = "x86_64")]
pub fn dot_i8_i16(v: &[i8], q: &[i16]) -> i32 {
    use std::arch::x86_64::*;
    let n = v.len().min(q.len());
    let body = n / 16 * 16;
    let mut lanes = [0i32; 4];
    // SAFETY: SSE2 is part of x86_64; every load reads 16 bytes inside v[..body] or q[..body].
    unsafe {
        let (mut a0, mut a1) = (_mm_setzero_si128(), _mm_setzero_si128());
        let mut i = 0;
        while i < body {
            let x = _mm_loadu_si128(v.as_ptr().add(i) as *const __m128i);
            // i8 -> i16: each byte paired with itself, then shifted down with its sign.
            let lo = _mm_srai_epi16(_mm_unpacklo_epi8(x, x), 8);
            let hi = _mm_srai_epi16(_mm_unpackhi_epi8(x, x), 8);
            a0 = _mm_add_epi32(a0, _mm_madd_epi16(lo, _mm_loadu_si128(q.as_ptr().add(i) as *const __m128i)));
            a1 = _mm_add_epi32(a1, _mm_madd_epi16(hi, _mm_loadu_si128(q.as_ptr().add(i + 8) as *const __m128i)));
            i += 16;
        }
        _mm_storeu_si128(lanes.as_mut_ptr() as *mut __m128i, _mm_add_epi32(a0, a1));
    }
    lanes.iter().sum::<i32>() + v[body..n].iter().zip(&q[body..n]).map(|(&x, &y)| x as i32 * y as i32).sum::<i32>()
}

#[cfg(not(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128"))))]
pub fn dot_i8_i16(v: &[i8], q: &[i16]) -> i32 {
    v.iter().zip(q).map(|(&x, &y)| x as i32 * y as i32).sum()
}

/// Sum of `v[i] * q[i]` in sixteen independent lanes (the ranking's fast pass over f32 catalogs).
pub fn dot_f32_lanes16(v: &[f32], q: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (vc, qc) = (v.chunks_exact(16), q.chunks_exact(16));
    let tail: f32 = vc.remainder().iter().zip(qc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in vc.zip(qc) {
        for j in 0..16 {
            acc[j] += x[j] * y[j];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_i8_i16_is_the_exact_integer_sum_at_every_length() {
        let mut state = 12345u32;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        for n in 0..100 {
            let v: Vec<i8> = (0..n).map(|_| ((next() % 255) as i32 - 127) as i8).collect();
            let q: Vec<i16> = (0..n).map(|_| ((next() % 65535) as i32 - 32767) as i16).collect();
            let exact: i32 = v.iter().zip(&q).map(|(&x, &y)| x as i32 * y as i32).sum();
            assert_eq!(dot_i8_i16(&v, &q), exact, "length {n}");
        }
    }

    #[test]
    fn dot_f32_lanes16_matches_the_f64_sum() {
        for n in [0, 1, 15, 16, 17, 512, 513] {
            let v = crate::kernels::test_values(n, 1);
            let q = crate::kernels::test_values(n, 2);
            let exact: f64 = v.iter().zip(&q).map(|(&x, &y)| x as f64 * y as f64).sum();
            assert!((dot_f32_lanes16(&v, &q) as f64 - exact).abs() <= 1e-5 * (1.0 + n as f64), "length {n}");
        }
    }
}
