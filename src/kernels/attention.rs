//! Softmax attention of one head, as two small matrix products on the packed micro-kernel of
//! [`super::gemm`] with a softmax between them, instead of one dot product per pair of tokens.

use super::gemm::{pack_panels, pack_panels_transposed, product_packed, Kernel, NR};
use super::math::softmax;

/// Work buffers of [`attention_head`], reused from head to head.
#[derive(Default)]
pub struct AttentionScratch {
    /// Keys, transposed and packed.
    keys: Vec<f32>,
    /// Values, packed.
    values: Vec<f32>,
    /// `t` rows of scores, then of weights, `NR`-padded.
    scores: Vec<f32>,
    /// The output, `NR`-padded, when the head size is not a multiple of `NR`.
    padded: Vec<f32>,
    /// Packed rows of the left-hand side of each product.
    rows: Vec<f32>,
}

/// The query rows [`attention_head`] computes: `rows` rows of `d` in `q`, `ld` apart (`q` already
/// scaled by `d^-0.5`), that stand at positions `first..first + rows` of the sequence (what a
/// causal row may see). All of a sequence's rows, or only those a caller reads afterwards (the
/// last layer of a tower that reads one row of each image).
#[derive(Clone, Copy)]
pub struct Queries<'a> {
    pub q: &'a [f32],
    pub ld: usize,
    pub rows: usize,
    pub first: usize,
}

/// `out[i] = softmax(q_i · Kᵀ) · V` for the query rows `queries` of one head: `k` and `v` hold
/// the sequence's `t` rows of `d`, row `j` at `j * ld..` (`ld >= d`; they and the queries may be
/// views into the same rows of q|k|v); `out` gets query row `i`'s at `i * ldo..` (`ldo >= d`; only
/// the `d` columns of each row are written). `causal`: the row at position `p` attends to rows
/// `0..=p` only.
#[allow(clippy::too_many_arguments)]
pub fn attention_head(
    queries: Queries,
    k: &[f32],
    v: &[f32],
    ld: usize,
    t: usize,
    d: usize,
    out: &mut [f32],
    ldo: usize,
    causal: bool,
    scratch: &mut AttentionScratch,
) {
    let Queries { q, ld: ldq, rows: tq, first } = queries;
    if t == 0 || tq == 0 {
        return;
    }
    let need = |rows: usize, ld: usize| (rows - 1) * ld + d;
    assert!(ld >= d && k.len() >= need(t, ld) && v.len() >= need(t, ld), "attention key and value sizes");
    assert!(ldq >= d && q.len() >= need(tq, ldq) && first + tq <= t, "attention query sizes");
    assert!(ldo >= d && out.len() >= need(tq, ldo), "attention output size");
    let AttentionScratch { keys, values, scores, padded, rows } = scratch;
    let kernel = Kernel::detect();
    // Scores: q · Kᵀ, the keys as the product's packed right-hand side (t columns).
    let ts = t.div_ceil(NR) * NR;
    pack_panels_transposed(k, t, d, ld, keys);
    scores.resize(tq * ts, 0.0);
    product_packed(kernel, q, tq, d, ldq, keys, scores, ts, rows);
    for (i, row) in scores.chunks_exact_mut(ts).enumerate() {
        let seen = if causal { first + i + 1 } else { t };
        softmax(&mut row[..seen]);
        row[seen..t].fill(0.0);
    }
    // Weighted values: weights · V (t inputs, d columns).
    pack_panels(v, t, d, ld, values);
    if d % NR == 0 {
        product_packed(kernel, scores, tq, t, ts, values, &mut out[..need(tq, ldo)], ldo, rows);
    } else {
        let dp = d.div_ceil(NR) * NR;
        padded.resize(tq * dp, 0.0);
        product_packed(kernel, scores, tq, t, ts, values, padded, dp, rows);
        for (dst, src) in out.chunks_mut(ldo).zip(padded.chunks_exact(dp)) {
            dst[..d].copy_from_slice(&src[..d]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_values as values;

    /// Plain f64 attention of one head.
    fn reference(q: &[f32], k: &[f32], v: &[f32], t: usize, d: usize, ld: usize, causal: bool) -> Vec<f64> {
        let mut out = vec![0.0f64; t * d];
        for i in 0..t {
            let seen = if causal { i + 1 } else { t };
            let s: Vec<f64> = (0..seen)
                .map(|j| (0..d).map(|c| q[i * ld + c] as f64 * k[j * ld + c] as f64).sum())
                .collect();
            let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            for c in 0..d {
                out[i * d + c] = (0..seen).map(|j| e[j] / sum * v[j * ld + c] as f64).sum();
            }
        }
        out
    }

    #[test]
    fn some_query_rows_attend_as_in_the_whole_head() {
        let mut scratch = AttentionScratch::default();
        let (t, d, ld) = (50, 64, 3 * 64);
        let qkv = values(t * ld, 7);
        let (q, k, v) = (&qkv[..], &qkv[d..], &qkv[2 * d..]);
        for causal in [false, true] {
            let mut all = vec![0.0f32; t * d];
            attention_head(Queries { q, ld, rows: t, first: 0 }, k, v, ld, t, d, &mut all, d, causal, &mut scratch);
            for (first, rows) in [(0, 1), (49, 1), (3, 5)] {
                // The query rows copied out alone, as the last layer has them.
                let alone: Vec<f32> = (first..first + rows).flat_map(|r| q[r * ld..r * ld + d].to_vec()).collect();
                let mut out = vec![f32::NAN; rows * d];
                attention_head(Queries { q: &alone, ld: d, rows, first }, k, v, ld, t, d, &mut out, d, causal, &mut scratch);
                for (i, row) in out.chunks_exact(d).enumerate() {
                    let want = &all[(first + i) * d..(first + i + 1) * d];
                    let diff = row.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                    assert!(diff <= 1e-6, "causal={causal} rows {first}+{i}: {diff}");
                }
            }
        }
    }

    #[test]
    fn matches_plain_attention() {
        // ViT-B/32's head (50 tokens of 64), sizes off the panel width, one token, a strided layout
        // (q, k, v of one head inside rows of q|k|v for all heads, as the model holds them).
        let mut scratch = AttentionScratch::default();
        let shapes = [(50, 64, 64, 64), (7, 5, 5, 5), (1, 8, 8, 8), (13, 24, 3 * 4 * 24, 4 * 24), (50, 64, 2304, 64), (9, 12, 12, 13)];
        for (&(t, d, ld, ldo), causal) in shapes.iter().flat_map(|s| [(s, false), (s, true)]) {
            let qkv = values(t * ld + 2 * d, t as u32 * 31 + d as u32);
            let (q, k, v) = (&qkv[..], &qkv[d..], &qkv[2 * d..]);
            let q: Vec<f32> = q.iter().map(|x| x * 2.0).collect(); // sharper weights than uniform
            let mut out = vec![f32::NAN; (t - 1) * ldo + d];
            attention_head(Queries { q: &q, ld, rows: t, first: 0 }, k, v, ld, t, d, &mut out, ldo, causal, &mut scratch);
            let want = reference(&q, k, v, t, d, ld, causal);
            for i in 0..t {
                for c in 0..ldo.min(out.len() - i * ldo) {
                    let got = out[i * ldo + c];
                    if c >= d {
                        assert!(got.is_nan(), "t={t} d={d}: column {c} past the head written");
                        continue;
                    }
                    let want = want[i * d + c];
                    assert!((got as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()), "t={t} d={d} causal={causal} [{i}][{c}]: {got} vs {want}");
                }
            }
        }
    }
}
