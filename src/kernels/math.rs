//! The element-wise parts of a transformer layer, written as plain loops over fixed-size chunks
//! so they vectorise on every target: layer norm, residual add, quick-GELU, softmax, and an
//! `exp` that needs no library call (the browser build has no vector `exp`).

const LOG2_E: f32 = std::f32::consts::LOG2_E;
const LN_2_HI: f32 = 0.693_359_4;
const LN_2_LO: f32 = -2.121_944_4e-4;

/// `e^x` within 2 ulp for `x` in [-87, 88]; 0 below, +inf above. Branch-free, so loops over it
/// vectorise.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // Compare-and-select rather than `clamp`, and the integer `n` read from the float's bits
    // rather than cast (`as i32` saturates, which x86 has no vector instruction for): loops
    // over `exp` then vectorise with SSE/AVX2 too, with the same results.
    let x = if x < -87.336_54 { -87.336_54 } else { x };
    let x = if x > 88.722_83 { 88.722_83 } else { x };
    // n = round(x / ln 2), by the 1.5 * 2^23 trick (no rounding instruction needed): the sum's
    // last mantissa bits are n itself.
    const ROUND: f32 = 12_582_912.0;
    let shifted = x * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN_2_HI - n * LN_2_LO;
    // exp(r) on [-ln2/2, ln2/2]: degree-6 Taylor-like minimax (Cephes expf).
    let p = 1.987_569_1e-4f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 5.000_000_1e-1;
    let e = (p * r * r + r) + 1.0;
    // 2^n, split in two factors so n = -127 or 128 do not overflow the exponent field.
    let n = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let half = n >> 1;
    let a = f32::from_bits(((half + 127) as u32) << 23);
    let b = f32::from_bits(((n - half + 127) as u32) << 23);
    e * a * b
}

/// `x * sigmoid(1.702 x)`, CLIP's activation, in place.
pub fn quick_gelu(xs: &mut [f32]) {
    for x in xs.iter_mut() {
        *x /= 1.0 + exp(-1.702 * *x);
    }
}

/// `x * Φ(x)` (Φ the standard normal distribution function): the exact GELU, as PyTorch's
/// `gelu` and candle's `gelu_erf`, within 4e-7 · (1 + |x|) of it. Φ(x) = (1 + erf(x / √2)) / 2
/// with erf(z) = z · P(z²) / Q(z²) on |z| <= 3.92, a rational fit of degree 5 over 5 in z²
/// (least squares reweighted towards minimax, by `scripts/fit_erf.py`: |error| < 2e-8 in exact
/// arithmetic, < 4e-7 evaluated in f32) and ±1 beyond (erf(3.92) = 1 - 1.6e-8). No `exp` and
/// one division: about a third of the operations of an erfc-and-exp form, which matters because
/// FastViT runs GELU on every value of its MLPs. The negative side's `1 + erf` cancels, so there
/// the error is absolute (at most 2e-7 · |x|), not relative; Φ is kept at 0 or above, so the sign
/// is right. Branch-free (the conditions are selects): loops over it vectorise.
#[inline(always)]
pub fn gelu_erf(x: f32) -> f32 {
    const P: [f32; 6] = [1.128_379, 0.192_763_27, 0.053_060_398, 0.003_868_304, 2.874_802_4e-4, 2.034_753_8e-6];
    const Q: [f32; 6] = [1.0, 0.504_163_7, 0.115_084_305, 0.015_172_242, 0.001_188_112_4, 3.807_089_5e-5];
    const Z_MAX: f32 = 3.92;
    let z = x * std::f32::consts::FRAC_1_SQRT_2;
    let z = if z > Z_MAX { Z_MAX } else { z };
    let z = if z < -Z_MAX { -Z_MAX } else { z };
    let u = z * z;
    let p = ((((P[5] * u + P[4]) * u + P[3]) * u + P[2]) * u + P[1]) * u + P[0];
    let q = ((((Q[5] * u + Q[4]) * u + Q[3]) * u + Q[2]) * u + Q[1]) * u + Q[0];
    let phi = 0.5 + 0.5 * (z * p / q);
    let phi = if phi < 0.0 { 0.0 } else { phi };
    // Past the fit's range Φ is 0 or 1 to within 1.6e-8.
    let phi = if z >= Z_MAX { 1.0 } else { phi };
    let phi = if z <= -Z_MAX { 0.0 } else { phi };
    x * phi
}

/// [`gelu_erf`] of every value: `ys[i] = gelu_erf(xs[i])`.
pub fn gelu_erf_slice(xs: &[f32], ys: &mut [f32]) {
    assert_eq!(xs.len(), ys.len(), "gelu_erf_slice lengths");
    map_vectorised(xs, ys, gelu_erf)
}

/// `ys[i] = f(xs[i])`, `f` inlined into a loop that vectorises; natively with AVX2 and FMA where
/// the CPU has them (the plain build targets SSE2 only).
#[inline(always)]
fn map_vectorised(xs: &[f32], ys: &mut [f32], f: impl Fn(f32) -> f32) {
    #[cfg(target_arch = "x86_64")]
    if super::simd::Avx2::detect().is_some() {
        // SAFETY: AVX2 and FMA were detected.
        return unsafe { map_avx2(xs, ys, f) };
    }
    map_loop(xs, ys, f)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn map_avx2(xs: &[f32], ys: &mut [f32], f: impl Fn(f32) -> f32) {
    map_loop(xs, ys, f)
}

#[inline(always)]
fn map_loop(xs: &[f32], ys: &mut [f32], f: impl Fn(f32) -> f32) {
    for (y, &x) in ys.iter_mut().zip(xs) {
        *y = f(x);
    }
}

/// The tanh approximation of GELU, `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))` (PyTorch's
/// `gelu(approximate="tanh")`, SigLIP's `gelu_pytorch_tanh`, candle's `gelu`), of every value, as
/// `x / (1 + e^(-2u))` with `u` the tanh's argument: the same function, with this module's
/// vectorised [`exp`] in place of a scalar `tanh` per value (libm's `tanhf` and `expm1f` were a
/// fifth of a SigLIP2 forward pass in the browser). For large negative `x` it is the more exact
/// of the two: `1 + tanh(u)` cancels there, the quotient does not.
pub fn gelu_tanh_slice(xs: &[f32], ys: &mut [f32]) {
    assert_eq!(xs.len(), ys.len(), "gelu_tanh_slice lengths");
    map_vectorised(xs, ys, |x| {
        const TWO_SQRT_2_OVER_PI: f32 = 2.0 * 0.797_884_6;
        let two_u = TWO_SQRT_2_OVER_PI * x * (1.0 + 0.044_715 * x * x);
        x / (1.0 + exp(-two_u))
    })
}

/// Sum of `a[i] * b[i]`, in eight independent lanes so it vectorises.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ar.iter().zip(br).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// Sum of `a[i] * b[i]` in index order, one accumulator: the ranking's exact scores, whose
/// rounding is part of built catalogs' thresholds ([`dot`]'s eight lanes round differently).
#[inline]
pub fn dot_in_order(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Scales a vector to unit length (a zero vector stays zero).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// `y += x`
pub fn add_assign(y: &mut [f32], x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += x;
    }
}

fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let c = xs.chunks_exact(8);
    let tail: f32 = c.remainder().iter().sum();
    for x in c {
        for i in 0..8 {
            acc[i] += x[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Layer norm of each `weight.len()`-wide row of `x` into `out` (biased variance, as PyTorch).
pub fn layer_norm(x: &[f32], weight: &[f32], bias: &[f32], eps: f32, out: &mut [f32]) {
    let d = weight.len();
    for (row, dst) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let mean = sum(row) / d as f32;
        for (o, v) in dst.iter_mut().zip(row) {
            *o = v - mean;
        }
        let var = dot(dst, dst) / d as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((o, w), b) in dst.iter_mut().zip(weight).zip(bias) {
            *o = *o * inv * w + b;
        }
    }
}

/// The largest value (NaNs ignored; -inf for none), in eight lanes of compare-and-select so it
/// vectorises (`f32::max` is a library call per value in wasm).
fn max(xs: &[f32]) -> f32 {
    let pick = |m: f32, v: f32| if v > m { v } else { m };
    let mut acc = [f32::NEG_INFINITY; 8];
    let c = xs.chunks_exact(8);
    let tail = c.remainder().iter().fold(f32::NEG_INFINITY, |m, &v| pick(m, v));
    for x in c {
        for i in 0..8 {
            acc[i] = pick(acc[i], x[i]);
        }
    }
    acc.into_iter().fold(tail, pick)
}

/// Softmax of one row, in place.
pub fn softmax(row: &mut [f32]) {
    let max = max(row);
    for v in row.iter_mut() {
        *v = exp(*v - max);
    }
    let inv = 1.0 / sum(row);
    for v in row.iter_mut() {
        *v *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l2_normalize_gives_unit_length_and_leaves_zero_alone() {
        let mut v = [3.0f32, -4.0];
        l2_normalize(&mut v);
        assert_eq!(v, [0.6, -0.8]);
        let mut big = crate::kernels::test_values(513, 3);
        l2_normalize(&mut big);
        assert!((dot_in_order(&big, &big) - 1.0).abs() < 1e-5);
        let mut zero = [0.0f32; 4];
        l2_normalize(&mut zero);
        assert_eq!(zero, [0.0; 4]);
    }

    #[test]
    fn dot_in_order_is_the_left_to_right_sum() {
        let (a, b) = (crate::kernels::test_values(37, 1), crate::kernels::test_values(37, 2));
        let mut sum = 0.0f32;
        for (x, y) in a.iter().zip(&b) {
            sum += x * y;
        }
        assert_eq!(dot_in_order(&a, &b).to_bits(), sum.to_bits());
    }

    #[test]
    fn exp_is_within_two_ulp_of_std() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp(x), x.exp());
            assert!((got - want).abs() <= 2.5 * f32::EPSILON * want, "exp({x}) = {got}, std says {want}");
            x += 0.0137;
        }
        assert_eq!(exp(-200.0), 0.0f32.max(exp(-200.0)));
        assert!(exp(-200.0) < 1e-37);
        assert!(exp(100.0) > 1e38);
    }

    /// Φ(x) in f64 from the complementary error function's continued fraction (|x| large) or
    /// its Taylor series (|x| small), independent of the approximation under test.
    fn phi_f64(x: f64) -> f64 {
        let z = x.abs() / std::f64::consts::SQRT_2;
        let erfc = if z < 2.0 {
            // erf(z) = 2/√π Σ (-1)^n z^(2n+1) / (n! (2n+1))
            let (mut term, mut sum, mut n) = (z, z, 0.0f64);
            while term.abs() > 1e-17 {
                n += 1.0;
                term *= -z * z / n;
                sum += term / (2.0 * n + 1.0);
            }
            1.0 - 2.0 / std::f64::consts::PI.sqrt() * sum
        } else {
            // Lentz's continued fraction: erfc(z) = e^-z² / √π · 1/(z + 1/2/(z + 1/(z + 3/2/(z + ...))))
            let mut f = z;
            for k in (1..200).rev() {
                f = z + (k as f64 / 2.0) / f;
            }
            (-z * z).exp() / std::f64::consts::PI.sqrt() / f
        };
        if x >= 0.0 { 1.0 - erfc / 2.0 } else { erfc / 2.0 }
    }

    #[test]
    fn gelu_erf_is_close_to_its_definition() {
        let mut worst = 0.0f64;
        let mut x = -12.0f32;
        while x < 12.0 {
            let want = x as f64 * phi_f64(x as f64);
            let got = gelu_erf(x) as f64;
            let err = (got - want).abs() / (1.0 + (x as f64).abs());
            worst = worst.max(err);
            assert!(err <= 4e-7, "gelu_erf({x}) = {got}, want {want}");
            x += 0.000_713;
        }
        assert!(worst > 1e-9, "the check compares something: worst error {worst}");
        assert_eq!(gelu_erf(0.0), 0.0);
        assert_eq!(gelu_erf(-100.0), 0.0);
        assert!((-40..-10).all(|x| gelu_erf(x as f32) == 0.0 || gelu_erf(x as f32).is_normal()), "no subnormals");
        assert_eq!(gelu_erf(100.0), 100.0);
        // The negative side never turns positive (Φ >= 0), and far out is within its bound.
        assert!((0..12_000).map(|i| -(i as f32) * 0.001).all(|x| gelu_erf(x) <= 0.0));
        let (far, want) = (gelu_erf(-6.0) as f64, -6.0 * phi_f64(-6.0));
        assert!((far - want).abs() <= 2e-7 * 6.0, "{far} vs {want}");
        assert!(gelu_erf(f32::NAN).is_nan());
    }

    #[test]
    fn gelu_tanh_is_the_tanh_formula() {
        // Against the formula in f64, with a tolerance relative to the value and to x (the
        // formula's own f32 evaluation cancels for negative x).
        let xs: Vec<f32> = (0..20_001).map(|i| -12.0 + i as f32 * 0.0012).chain([-90.0, -40.0, 40.0, 90.0, 0.0]).collect();
        let mut ys = vec![0.0f32; xs.len()];
        gelu_tanh_slice(&xs, &mut ys);
        for (&x, &y) in xs.iter().zip(&ys) {
            let x64 = x as f64;
            let want = 0.5 * x64 * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x64 + 0.044715 * x64.powi(3))).tanh());
            assert!((y as f64 - want).abs() <= 4e-7 * want.abs() + 1e-7 * x64.abs().min(1.0) + 1e-30, "gelu_tanh({x}) = {y}, want {want}");
        }
        let mut nan = [0.0f32];
        gelu_tanh_slice(&[f32::NAN], &mut nan);
        assert!(nan[0].is_nan());
    }

    #[test]
    fn gelu_erf_slice_matches_the_scalar_function() {
        let xs: Vec<f32> = crate::kernels::test_values(1003, 9).iter().map(|v| v * 7.0).collect();
        let mut ys = vec![f32::NAN; xs.len()];
        gelu_erf_slice(&xs, &mut ys);
        for (x, y) in xs.iter().zip(&ys) {
            let want = gelu_erf(*x);
            assert!((y - want).abs() <= 2.0 * f32::EPSILON * (1.0 + want.abs()), "{x}: {y} vs {want}");
        }
    }

    #[test]
    fn max_matches_a_plain_fold() {
        for len in [0, 1, 7, 8, 9, 50, 67] {
            let xs: Vec<f32> = (0..len).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.7).collect();
            assert_eq!(max(&xs), xs.iter().copied().fold(f32::NEG_INFINITY, f32::max), "len {len}");
        }
        assert_eq!(max(&[1.0, f32::NAN, 3.0, -2.0]), 3.0);
    }

    #[test]
    fn softmax_and_layer_norm_match_their_definitions() {
        let mut row = [1.0f32, 2.0, -3.0, 0.5, 10.0];
        let denom: f32 = row.iter().map(|v| v.exp()).sum();
        let want: Vec<f32> = row.iter().map(|v| v.exp() / denom).collect();
        softmax(&mut row);
        for (g, w) in row.iter().zip(&want) {
            assert!((g - w).abs() < 1e-6);
        }
        let x: Vec<f32> = (0..20).map(|i| (i as f32 * 0.7).sin() * 3.0).collect();
        let (w, b) = (vec![2.0f32; 10], vec![0.5f32; 10]);
        let mut out = vec![0.0; 20];
        layer_norm(&x, &w, &b, 1e-5, &mut out);
        for (r, o) in x.chunks(10).zip(out.chunks(10)) {
            let mean = r.iter().sum::<f32>() / 10.0;
            let var = r.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 10.0;
            for (v, o) in r.iter().zip(o) {
                assert!((o - ((v - mean) / (var + 1e-5).sqrt() * 2.0 + 0.5)).abs() < 1e-5);
            }
        }
    }
}
