//! Fused ranking: `score = w_text * cos(photo, name) + w_image * cos(photo, image)` over a
//! catalog of unit vectors, top k, each result carrying both components.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

use crate::search::catalog::{Catalog, Item, VectorScales, Vectors};
use crate::search::item_fields::ItemFields;
use crate::kernels::dot;
use crate::kernels::math::dot_in_order;

/// How much the name text and the product image count in the fused score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FusionWeights {
    pub text: f32,
    pub image: f32,
}

/// One ranked catalog item and why it scored what it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Match {
    /// Position of the item in the catalog.
    pub index: usize,
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<String>,
    /// The item's shop fields (`url`, `price`, ...), as the catalog holds them.
    #[serde(default, skip_serializing_if = "ItemFields::is_empty")]
    pub fields: ItemFields,
    /// The fused score.
    pub score: f32,
    /// cos(photo, item name text).
    pub text_similarity: f32,
    /// cos(photo, item image).
    pub image_similarity: f32,
    /// `weights.text * text_similarity`: the name's share of the score.
    pub text_contribution: f32,
    /// `weights.image * image_similarity`: the image's share of the score.
    pub image_contribution: f32,
}

/// The answer to one photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranking {
    pub matches: Vec<Match>,
    pub weights: FusionWeights,
    pub min_score: f32,
    /// False when the best score is under `min_score`: "no confident match".
    pub confident: bool,
    /// True when the answer comes from a big catalog's compact codes alone (the page, before
    /// the stored vectors have arrived): scores are estimates and the order may differ from
    /// the exact one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub codes_only: bool,
}

/// Candidates picked by the fast pass beyond k, so that the exact scores (the fast pass
/// rounds the query, or sums in another order) still choose the same top k.
const EXTRA_CANDIDATES: usize = 8;

/// Ranks the catalog against a unit query vector. Ties keep catalog order.
///
/// One pass over the stored vectors scores every item (for i8 catalogs with integer dot
/// products against the query rounded to i16, both weights folded into it); the best
/// `top_k + 8` are kept in a small heap, and only those get the exact breakdown (cosines
/// against the stored, de-quantised vectors), which orders the final top k.
pub fn rank(catalog: &Catalog, query: &[f32], weights: FusionWeights, top_k: usize, min_score: f32) -> Ranking {
    let k = top_k.min(catalog.len());
    let keep = if k == 0 { 0 } else { (k + EXTRA_CANDIDATES).min(catalog.len()) };
    let candidates = match catalog.vectors() {
        Vectors::F32(v) => fast_f32(v, catalog.dim(), query, weights, keep),
        // The offsets add the same amount to every item's score: the order needs only the rest.
        Vectors::I8 { values, scales, .. } => fast_i8(values, *scales, catalog.dim(), query, weights, keep),
    };
    exact_ranking(catalog, candidates, query, weights, k, min_score)
}

/// The exact stage of [`rank`]: the `candidates` scored against the stored (de-quantised)
/// vectors, best first (ties keep catalog order), the first `k` kept. Any first pass whose
/// candidates include the exact top k gets `rank`'s answer from it.
pub fn exact_ranking(catalog: &Catalog, candidates: Vec<usize>, query: &[f32], weights: FusionWeights, k: usize, min_score: f32) -> Ranking {
    let scored: Vec<(usize, f32, f32, f32)> = candidates
        .into_iter()
        .map(|i| {
            let t = dot_in_order(query, &catalog.name_vector(i));
            let m = dot_in_order(query, &catalog.image_vector(i));
            (i, weights.text * t + weights.image * m, t, m)
        })
        .collect();
    ranking_of(catalog.items(), scored, weights, k, min_score)
}

/// A ranking from scored items `(index, fused score, text similarity, image similarity)`: the
/// best `k` first (ties keep catalog order).
pub fn ranking_of(items: &[Item], mut scored: Vec<(usize, f32, f32, f32)>, weights: FusionWeights, k: usize, min_score: f32) -> Ranking {
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(k);
    let matches: Vec<Match> = scored
        .into_iter()
        .map(|(i, score, t, m)| {
            let item = &items[i];
            Match {
                index: i,
                id: item.id.clone(),
                name: item.name.clone(),
                thumbnail: item.thumbnail.clone(),
                fields: item.fields.clone(),
                score,
                text_similarity: t,
                image_similarity: m,
                text_contribution: weights.text * t,
                image_contribution: weights.image * m,
            }
        })
        .collect();
    let confident = matches.first().is_some_and(|m| m.score >= min_score);
    Ranking {
        matches,
        weights,
        min_score,
        confident,
        codes_only: false,
    }
}

/// The `keep` best of a stream of `(score, index)`, better = higher score, then lower index.
pub(crate) struct TopK<S: Ord> {
    keep: usize,
    heap: BinaryHeap<Reverse<(S, Reverse<usize>)>>,
}

impl<S: Ord + Copy> TopK<S> {
    pub(crate) fn new(keep: usize) -> Self {
        Self {
            keep,
            heap: BinaryHeap::with_capacity(keep + 1),
        }
    }

    #[inline]
    pub(crate) fn offer(&mut self, score: S, index: usize) {
        if self.heap.len() < self.keep {
            self.heap.push(Reverse((score, Reverse(index))));
        } else if let Some(mut worst) = self.heap.peek_mut() {
            // Indices arrive in increasing order: an equal score never displaces an earlier item.
            if score > worst.0 .0 {
                *worst = Reverse((score, Reverse(index)));
            }
        }
    }

    pub(crate) fn indices(self) -> Vec<usize> {
        self.heap.into_iter().map(|Reverse((_, Reverse(i)))| i).collect()
    }
}

/// An f32 that sorts with `total_cmp`.
#[derive(Clone, Copy, PartialEq)]
pub(crate) struct Score(pub(crate) f32);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The fused query in the file's layout: `weights.image * q` then `weights.text * q`, so one
/// dot product over an item's `2 x dim` stored values is its fused score.
fn fused_query(query: &[f32], a: f32, b: f32) -> impl Iterator<Item = f32> + '_ {
    query.iter().map(move |x| a * x).chain(query.iter().map(move |x| b * x))
}

fn fast_f32(values: &[f32], dim: usize, query: &[f32], weights: FusionWeights, keep: usize) -> Vec<usize> {
    let q: Vec<f32> = fused_query(query, weights.image, weights.text).collect();
    let mut top = TopK::new(keep);
    for (i, item) in values.chunks_exact(2 * dim).enumerate() {
        top.offer(Score(dot::dot_f32_lanes16(item, &q)), i);
    }
    top.indices()
}

/// The largest |value| of the i16 query such that no i32 sum over `len` products with i8 values
/// (|q| <= 127) can overflow.
fn query_range(len: usize) -> f32 {
    (i32::MAX as usize / (127 * len.max(1))).min(16383) as f32
}

fn fast_i8(values: &[i8], scales: VectorScales, dim: usize, query: &[f32], weights: FusionWeights, keep: usize) -> Vec<usize> {
    let (a, b) = (weights.image * scales.image, weights.text * scales.text);
    let max = fused_query(query, a, b).fold(0.0f32, |m, x| m.max(x.abs()));
    let unit = if max > 0.0 && max.is_finite() { max / query_range(2 * dim) } else { 1.0 };
    let q: Vec<i16> = fused_query(query, a, b).map(|x| (x / unit).round() as i16).collect();
    let mut top = TopK::new(keep);
    for (i, item) in values.chunks_exact(2 * dim).enumerate() {
        top.offer(dot::dot_i8_i16(item, &q), i);
    }
    top.indices()
}

/// A starting "no confident match" threshold for a catalog: each item's own image is used as
/// a query against the other items, as if that product were missing from the catalog, and the
/// median of those best scores is returned. Photos of listed products usually score above it,
/// photos of unlisted ones below; it is a heuristic, to be tuned with real photos.
pub fn leave_one_out_threshold(catalog: &Catalog, weights: FusionWeights) -> f32 {
    let n = catalog.len();
    if n < 2 {
        return 0.0;
    }
    let mut best: Vec<f32> = (0..n)
        .map(|i| {
            // Scored exactly as a photo would be, against the stored vectors.
            let r = rank(catalog, &catalog.image_vector(i), weights, 2, 0.0);
            r.matches.iter().find(|m| m.index != i).map_or(f32::NEG_INFINITY, |m| m.score)
        })
        .collect();
    best.sort_by(f32::total_cmp);
    best[n / 2]
}
