//! Fused ranking: `score = w_text * cos(photo, name) + w_image * cos(photo, image)` over a
//! catalog of unit vectors, top k, each result carrying both components.

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;

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
}

#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Ranks the catalog against a unit query vector. Ties keep catalog order.
pub fn rank(catalog: &Catalog, query: &[f32], weights: FusionWeights, top_k: usize, min_score: f32) -> Ranking {
    let mut scored: Vec<(usize, f32, f32, f32)> = (0..catalog.len())
        .map(|i| {
            let t = dot(query, catalog.name_vector(i));
            let m = dot(query, catalog.image_vector(i));
            (i, weights.text * t + weights.image * m, t, m)
        })
        .collect();
    let by_score = |a: &(usize, f32, f32, f32), b: &(usize, f32, f32, f32)| {
        b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
    };
    let k = top_k.min(scored.len());
    if k < scored.len() && k > 0 {
        scored.select_nth_unstable_by(k - 1, by_score);
        scored.truncate(k);
    }
    scored.sort_by(by_score);
    scored.truncate(k);
    let matches: Vec<Match> = scored
        .into_iter()
        .map(|(i, score, t, m)| {
            let item = &catalog.items()[i];
            Match {
                index: i,
                id: item.id.clone(),
                name: item.name.clone(),
                thumbnail: item.thumbnail.clone(),
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
    }
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
            let q = catalog.image_vector(i);
            (0..n)
                .filter(|&j| j != i)
                .map(|j| weights.text * dot(q, catalog.name_vector(j)) + weights.image * dot(q, catalog.image_vector(j)))
                .fold(f32::NEG_INFINITY, f32::max)
        })
        .collect();
    best.sort_by(f32::total_cmp);
    best[n / 2]
}
