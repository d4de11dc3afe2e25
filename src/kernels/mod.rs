//! Numeric kernels: packed matrix products and element-wise maths of the encoders, the
//! ranking's dot products, and the operations candle's models get from this crate
//! ([`candle_ops`]: convolutions, exact GELU).

pub mod attention;
pub mod candle_ops;
pub mod conv_window;
pub mod dense_conv;
pub mod depthwise;
pub mod dot;
pub mod gemm;
pub mod math;
pub mod qgemm;
pub mod simd;
pub mod thread_probe;

/// Deterministic values in [-1, 1] for the kernels' tests.
#[cfg(test)]
pub(crate) fn test_values(len: usize, seed: u32) -> Vec<f32> {
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

/// The cosine of two vectors, summed in f64, for the tests that compare embeddings.
#[cfg(test)]
#[cfg_attr(target_arch = "wasm32", allow(dead_code))] // its tests are native only
pub(crate) fn test_cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| *p as f64 * *q as f64).sum::<f64>();
    dot(a, b) / (dot(a, a) * dot(b, b)).sqrt()
}
