//! Choosing the weights and the threshold, and measuring the choice on products it never saw.
//!
//! Only the ratio of the two weights changes the order of results, so the choice is the text
//! weight's share of a fixed sum (the catalog's `text_weight + image_weight`, which keeps
//! scores, and so thresholds, on the scale the catalog already uses), on a grid from 0 (image
//! only) to 1 (name text only). The share ranking the most photos' products first wins (then
//! the best mean reciprocal rank; among equals, the middle of the widest run of them). The
//! threshold is then the lowest at which "confident match" is right a named share of the time
//! ([`threshold_for_precision`]), judged on every photo asked with its product in the catalog
//! and again with it left out ([`super::leave_out`]).

use serde::Serialize;

use crate::error::EvalError;
use crate::search::eval::folds::grouped_folds;
use crate::search::eval::labels::Truth;
use crate::search::eval::leave_out::{outcomes, outcomes_of};
use crate::search::eval::metrics::{threshold_for_precision, Outcome, RankMetrics, ThresholdMetrics};
use crate::search::eval::similarity::Similarities;
use crate::search::rank::FusionWeights;

/// What to choose and how to check it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TuneOptions {
    /// The share of confident matches that must name the right product (0 < target <= 1).
    pub confident_precision: f32,
    /// Cross-validation folds over products (at least 2; fewer when there are fewer products).
    pub folds: usize,
    /// Shuffles products into folds.
    pub seed: u64,
    /// The sum of the two weights (> 0).
    pub weight_sum: f32,
    /// Grid steps between image only and text only.
    pub steps: usize,
}

impl TuneOptions {
    /// Steps of 0.025 in the text weight's share.
    pub const STEPS: usize = 40;

    pub fn check(&self) -> Result<(), EvalError> {
        let p = self.confident_precision;
        if !(p > 0.0 && p <= 1.0) {
            return Err(EvalError::Option(format!("the confident precision must be above 0 and at most 1, not {p}")));
        }
        if self.folds < 2 {
            return Err(EvalError::Option(format!("cross-validation needs at least 2 folds, not {}", self.folds)));
        }
        if !(self.weight_sum.is_finite() && self.weight_sum > 0.0) || self.steps == 0 {
            return Err(EvalError::Option(format!("weights summing to {} on {} steps cannot be searched", self.weight_sum, self.steps)));
        }
        Ok(())
    }

    /// The weights at the `step`-th point of the grid.
    pub fn weights_at(&self, step: usize) -> FusionWeights {
        share_weights(step as f32 / self.steps as f32, self.weight_sum)
    }
}

/// `text_share` of `sum` for the name text, the rest for the image.
pub fn share_weights(text_share: f32, sum: f32) -> FusionWeights {
    FusionWeights { text: text_share * sum, image: (1.0 - text_share) * sum }
}

/// The weights and threshold chosen on some photos.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OperatingPoint {
    pub weights: FusionWeights,
    /// The text weight's share of the sum.
    pub text_share: f32,
    pub min_score: f32,
    /// Whether some threshold reached the precision asked for; if none did, the threshold is
    /// the one with the highest precision.
    pub target_met: bool,
}

/// The ranking figures of `photos` (those of catalog products) at weights `w`.
pub fn rank_metrics(sims: &Similarities, photos: &[usize], w: FusionWeights) -> RankMetrics {
    RankMetrics::of(photos.iter().filter_map(|&p| sims.judge(p, w).truth_rank.map(|(r, _)| r)))
}

/// The ranking figures at every point of the grid, on `photos`.
pub fn curve(sims: &Similarities, photos: &[usize], options: &TuneOptions) -> Vec<RankMetrics> {
    (0..=options.steps).map(|s| rank_metrics(sims, photos, options.weights_at(s))).collect()
}

/// The grid step whose weights rank best on `photos`: most products first, then the best mean
/// reciprocal rank; among equal steps the middle of the widest run of neighbours.
fn best_step(curve: &[RankMetrics]) -> usize {
    let key = |m: &RankMetrics| (m.top1, m.mrr);
    let best = curve.iter().map(key).fold((f32::MIN, f32::MIN), |a, b| if b > a { b } else { a });
    let (mut widest, mut run_start) = ((0, 0), None);
    for (i, m) in curve.iter().enumerate() {
        match (key(m) == best, run_start) {
            (true, None) => run_start = Some(i),
            (false, Some(s)) => {
                if i - s > widest.1 - widest.0 {
                    widest = (s, i);
                }
                run_start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = run_start {
        if curve.len() - s > widest.1 - widest.0 {
            widest = (s, curve.len());
        }
    }
    (widest.0 + widest.1 - 1) / 2
}

/// The threshold for `target` on `outcomes`; where none reaches it, the one with the highest
/// precision (the lowest such).
fn choose_threshold(outcomes: &[Outcome], target: f32) -> (f32, bool) {
    if let Some(t) = threshold_for_precision(outcomes, target) {
        return (t, true);
    }
    let best = outcomes
        .iter()
        .map(|o| o.best)
        .filter_map(|t| ThresholdMetrics::at(outcomes, t).confident_precision.map(|p| (p, t)))
        .fold(None::<(f32, f32)>, |acc, (p, t)| match acc {
            Some((bp, bt)) if bp > p || (bp == p && bt <= t) => Some((bp, bt)),
            _ => Some((p, t)),
        });
    (best.map_or(0.0, |(_, t)| t), false)
}

/// Chooses weights and threshold on `photos`. `photos` must hold a photo of a catalog product.
pub fn choose(sims: &Similarities, photos: &[usize], options: &TuneOptions) -> OperatingPoint {
    let step = best_step(&curve(sims, photos, options));
    let weights = options.weights_at(step);
    let (min_score, target_met) = choose_threshold(&outcomes(sims, photos, weights), options.confident_precision);
    OperatingPoint { weights, text_share: step as f32 / options.steps as f32, min_score, target_met }
}

/// The choice measured on products it did not see: for each fold, weights and threshold are
/// chosen on the other folds' photos and used on this fold's; the figures pool all folds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CrossValidation {
    pub folds: usize,
    /// What each fold's choice was (on the other folds' photos).
    pub chosen: Vec<OperatingPoint>,
    pub ranking: RankMetrics,
    pub threshold: ThresholdMetrics,
}

/// The folds of `sims`'s photos: products kept whole, photos of products not in the catalog
/// each their own group.
pub fn folds_of(sims: &Similarities, options: &TuneOptions) -> Vec<Vec<usize>> {
    let groups: Vec<usize> = (0..sims.len())
        .map(|p| match sims.truth(p) {
            Truth::Item(i) => i,
            Truth::NotInCatalog => sims.items() + p,
        })
        .collect();
    let items = sims.items();
    grouped_folds(&groups, |g| g < items, options.folds, options.seed)
}

/// Cross-validates [`choose`] over products (see [`folds_of`]); needs photos of at least two
/// catalog products.
pub fn cross_validate(sims: &Similarities, options: &TuneOptions) -> Result<CrossValidation, EvalError> {
    options.check()?;
    let mut products: Vec<usize> = sims.in_catalog().filter_map(|p| sims.truth(p).item()).collect();
    products.sort_unstable();
    products.dedup();
    if products.len() < 2 {
        return Err(EvalError::TooFewProducts { products: products.len() });
    }
    let folds = folds_of(sims, options);
    let mut chosen = Vec::with_capacity(folds.len());
    let (mut ranks, mut decisions) = (Vec::new(), Vec::new());
    for (f, held_out) in folds.iter().enumerate() {
        let train: Vec<usize> = folds.iter().enumerate().filter(|(g, _)| *g != f).flat_map(|(_, fold)| fold.iter().copied()).collect();
        let point = choose(sims, &train, options);
        for &p in held_out {
            let j = sims.judge(p, point.weights);
            ranks.extend(j.truth_rank.map(|(r, _)| r));
            decisions.extend(outcomes_of(&j).map(|o| (o, o.best >= point.min_score)));
        }
        chosen.push(point);
    }
    Ok(CrossValidation { folds: folds.len(), chosen, ranking: RankMetrics::of(ranks), threshold: ThresholdMetrics::of(decisions) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(top1: f32, mrr: f32) -> RankMetrics {
        RankMetrics { photos: 1, top1, top5: 1.0, mrr }
    }

    #[test]
    fn the_best_step_is_the_middle_of_the_widest_best_run() {
        assert_eq!(best_step(&[m(0.5, 0.6), m(0.7, 0.8), m(0.6, 0.9)]), 1);
        // Equal top-1: the better mean reciprocal rank.
        assert_eq!(best_step(&[m(0.7, 0.8), m(0.7, 0.85), m(0.6, 0.9)]), 1);
        // Runs of 2 and 3 best steps: the middle of the 3.
        let c = [m(1.0, 1.0), m(1.0, 1.0), m(0.5, 0.5), m(1.0, 1.0), m(1.0, 1.0), m(1.0, 1.0)];
        assert_eq!(best_step(&c), 4);
        assert_eq!(best_step(&[m(1.0, 1.0); 4]), 1);
    }

    #[test]
    fn an_unreachable_precision_falls_back_to_the_most_precise_threshold() {
        let o = |best, correct| Outcome { best, in_catalog: correct, correct };
        // 0.9 wrong, 0.8 right, 0.7 wrong: at best 1/2 (at 0.8).
        let (t, met) = choose_threshold(&[o(0.9, false), o(0.8, true), o(0.7, false)], 0.9);
        assert_eq!((t, met), (0.8, false));
    }
}
