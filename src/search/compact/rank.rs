//! Ranking with compact codes: a first pass scores every item from its codes with the fused
//! score (`w_text * ADC(name) + w_image * ADC(image)`, one lookup table per query and kind) and
//! keeps a short list; the short list is then re-ranked exactly from the catalog's stored
//! vectors with [`exact_ranking`], so the answer is `rank`'s whenever the short list holds the
//! exact top k. Without the stored vectors (the page, before they have arrived) the first
//! pass's own scores answer.

use crate::kernels::math::dot_in_order;
use crate::search::catalog::{Catalog, Item};
use crate::search::compact::codes::CompactCodes;
use crate::search::rank::{exact_ranking, ranking_of, FusionWeights, Ranking, Score, TopK};

/// The fused lookup table of a query: the image table times `w_image`, then the name table
/// times `w_text`, `subspaces x centroids` entries each, in the order of an item's codes.
fn fused_table(codes: &CompactCodes, query: &[f32], weights: FusionWeights) -> Vec<f32> {
    let mut t = codes.image.lookup_table(query, weights.image);
    t.extend(codes.text.lookup_table(query, weights.text));
    t
}

/// The `len` items with the best first-pass scores (ties keep catalog order), in no order.
pub fn shortlist(codes: &CompactCodes, query: &[f32], weights: FusionWeights, len: usize) -> Vec<usize> {
    let table = fused_table(codes, query, weights);
    let (k, per_item) = (codes.image.centroids(), 2 * codes.image.subspaces());
    let mut top = TopK::new(len.min(codes.len()));
    for (i, code) in codes.codes().chunks_exact(per_item).enumerate() {
        let mut s = 0.0f32;
        for (j, &c) in code.iter().enumerate() {
            s += table[j * k + c as usize];
        }
        top.offer(Score(s), i);
    }
    top.indices()
}

/// The exact top `k` from the short list of `shortlist_len` first-pass candidates, re-ranked
/// against the catalog's stored vectors exactly as [`crate::search::rank::rank`] scores them.
pub fn rank_compact(
    codes: &CompactCodes,
    catalog: &Catalog,
    query: &[f32],
    weights: FusionWeights,
    top_k: usize,
    min_score: f32,
    shortlist_len: usize,
) -> Ranking {
    let k = top_k.min(catalog.len());
    let candidates = shortlist(codes, query, weights, shortlist_len.max(k));
    exact_ranking(catalog, candidates, query, weights, k, min_score)
}

/// The first pass alone: the top `k` by the codes' scores, each similarity the query's dot
/// product with the item's decoded code (an estimate of the cosine).
pub fn rank_codes_only(
    codes: &CompactCodes,
    items: &[Item],
    query: &[f32],
    weights: FusionWeights,
    top_k: usize,
    min_score: f32,
) -> Ranking {
    let k = top_k.min(codes.len());
    let m = codes.image.subspaces();
    let scored = shortlist(codes, query, weights, k)
        .into_iter()
        .map(|i| {
            let code = &codes.codes()[2 * m * i..2 * m * (i + 1)];
            let image = dot_in_order(query, &codes.image.decode(&code[..m]));
            let text = dot_in_order(query, &codes.text.decode(&code[m..]));
            (i, weights.text * text + weights.image * image, text, image)
        })
        .collect();
    Ranking { codes_only: true, ..ranking_of(items, scored, weights, k, min_score) }
}

/// The share of `exact`'s matches that `approx` also returns (1 when `exact` is empty).
pub fn recall(exact: &Ranking, approx: &Ranking) -> f32 {
    if exact.matches.is_empty() {
        return 1.0;
    }
    let found = exact.matches.iter().filter(|m| approx.matches.iter().any(|a| a.index == m.index)).count();
    found as f32 / exact.matches.len() as f32
}
