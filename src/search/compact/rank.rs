//! Ranking with compact codes: a first pass scores every item from its codes (the query's dot
//! product with the item's decoded fused vector: one lookup table per query, a sum of table
//! entries per item) and keeps a short list; natively the short list can then be re-ranked
//! exactly from the catalog's stored vectors with [`exact_ranking`], so that answer is
//! `rank`'s whenever the short list holds the exact top k. Without the stored vectors (the
//! page, before they have arrived) the first pass's own scores answer. The codes hold the items
//! fused with the weights they were made for ([`CompactCodes::weights`]): the first pass ranks
//! with those, whatever weights were asked for.

use crate::search::catalog::{Catalog, Item};
use crate::search::compact::codes::CompactCodes;
use crate::search::rank::{exact_ranking, ranking_of, FusionWeights, Ranking, Score, TopK};

/// A query's lookup table, one row of 256 entries per code byte (a byte indexes its row without
/// a bounds check; rows of fewer centres are padded with zeros, never picked by checked codes).
struct Table(Vec<[f32; 256]>);

impl Table {
    fn new(codes: &CompactCodes, query: &[f32]) -> Self {
        let k = codes.stages[0].centroids();
        let flat = codes.lookup_table(query);
        Self(flat.chunks_exact(k).map(|entries| std::array::from_fn(|c| entries.get(c).copied().unwrap_or(0.0))).collect())
    }

    /// An item's first-pass score: the sum of the entries its code bytes pick (four running
    /// sums, so that the additions do not wait on each other).
    #[inline]
    fn score(&self, code: &[u8]) -> f32 {
        let mut sums = [0.0f32; 4];
        let (bytes, rows) = (code.chunks_exact(4), self.0.chunks_exact(4));
        let (tail, tail_rows) = (bytes.remainder(), rows.remainder());
        for (b, r) in bytes.zip(rows) {
            for j in 0..4 {
                sums[j] += r[j][b[j] as usize];
            }
        }
        let rest: f32 = tail.iter().zip(tail_rows).map(|(&c, row)| row[c as usize]).sum();
        (sums[0] + sums[1]) + (sums[2] + sums[3]) + rest
    }
}

/// The `len` items with the best first-pass scores (ties keep catalog order), in no order.
fn first_pass(codes: &CompactCodes, table: &Table, len: usize) -> Vec<usize> {
    let mut top = TopK::new(len.min(codes.len()));
    for (i, code) in codes.codes().chunks_exact(codes.code_bytes()).enumerate() {
        top.offer(Score(table.score(code)), i);
    }
    top.indices()
}

/// The `len` items with the best first-pass scores (ties keep catalog order), in no order.
pub fn shortlist(codes: &CompactCodes, query: &[f32], len: usize) -> Vec<usize> {
    first_pass(codes, &Table::new(codes, query), len)
}

/// The exact top `k` from the short list of `shortlist_len` first-pass candidates, re-ranked
/// against the catalog's stored vectors exactly as [`crate::search::rank::rank`] scores them
/// with `weights` (the short list itself comes from the codes' weights).
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
    let candidates = shortlist(codes, query, shortlist_len.max(k));
    exact_ranking(catalog, candidates, query, weights, k, min_score)
}

/// The first pass alone: the top `k` by the codes' scores, with the codes' weights (the
/// ranking's `weights` say which). Each score estimates the fused score; a fused code cannot
/// tell the name's part from the image's, so the similarities and contributions are 0.
pub fn rank_codes_only(codes: &CompactCodes, items: &[Item], query: &[f32], top_k: usize, min_score: f32) -> Ranking {
    let k = top_k.min(codes.len());
    let table = Table::new(codes, query);
    let n = codes.code_bytes();
    let scored = first_pass(codes, &table, k).into_iter().map(|i| (i, table.score(&codes.codes()[i * n..(i + 1) * n]), 0.0, 0.0)).collect();
    Ranking { codes_only: true, ..ranking_of(items, scored, codes.weights, k, min_score) }
}

/// The share of `exact`'s matches that `approx` also returns (1 when `exact` is empty).
pub fn recall(exact: &Ranking, approx: &Ranking) -> f32 {
    if exact.matches.is_empty() {
        return 1.0;
    }
    let found = exact.matches.iter().filter(|m| approx.matches.iter().any(|a| a.index == m.index)).count();
    found as f32 / exact.matches.len() as f32
}
