//! One evaluation of a catalog on labelled photos, every figure from the photos' similarities:
//! ranking quality for image only, name text only, the catalog's own weights and tuned ones
//! (held out); the threshold's precision and recall; ranking quality along the text weight;
//! the best scores the threshold has to separate; and the worst misses.

use serde::Serialize;

use crate::error::EvalError;
use crate::search::catalog::{RankingDefaults, TunedMetrics, TunedRanking, UtcSeconds};
use crate::search::eval::leave_out::outcomes;
use crate::search::eval::metrics::{RankMetrics, ThresholdMetrics};
use crate::search::eval::similarity::Similarities;
use crate::search::eval::tuning::{choose, cross_validate, curve, rank_metrics, OperatingPoint, TuneOptions};
use crate::search::rank::FusionWeights;

/// A way of scoring compared in the evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    ImageOnly,
    TextOnly,
    /// The catalog's weights and threshold.
    Catalog,
    /// Weights and threshold chosen by cross-validation; figures on held-out products.
    Tuned,
}

impl Method {
    pub fn label(self) -> &'static str {
        match self {
            Method::ImageOnly => "image only",
            Method::TextOnly => "name text only",
            Method::Catalog => "catalog's weights",
            Method::Tuned => "tuned (held out)",
        }
    }
}

/// The figures of one method.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MethodFigures {
    pub method: Method,
    pub weights: FusionWeights,
    /// Figures measured on products the choice never saw (the tuned method only).
    pub held_out: bool,
    pub ranking: RankMetrics,
    /// The threshold and what it does (none for image or text only: the catalog's threshold
    /// is on the fused score's scale). For the tuned method each fold used its own.
    pub min_score: Option<f32>,
    pub threshold: Option<ThresholdMetrics>,
}

/// Ranking quality at one text weight (the image weight is the rest of the sum).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CurvePoint {
    pub text_share: f32,
    pub weights: FusionWeights,
    pub ranking: RankMetrics,
}

/// The best scores a threshold has to separate, at some weights.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BestScores {
    pub weights: FusionWeights,
    pub min_score: f32,
    /// Photos of catalog products whose product ranked first.
    pub right: Vec<f32>,
    /// Photos of catalog products where another product ranked first.
    pub wrong: Vec<f32>,
    /// Photos whose product is not in the catalog (left out, or never in it).
    pub not_in_catalog: Vec<f32>,
}

/// A photo the catalog's weights get wrong.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Miss {
    pub photo: usize,
    /// The photo's product (`None`: not in the catalog), its place and score.
    pub truth: Option<usize>,
    pub truth_rank: Option<usize>,
    pub truth_score: Option<f32>,
    /// The item ranked first instead, its score, and whether that was a confident match.
    pub best: usize,
    pub best_score: f32,
    pub confident: bool,
}

/// The tuned choice: on all photos, and per fold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TunedChoice {
    pub point: OperatingPoint,
    pub folds: usize,
    pub per_fold: Vec<OperatingPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub photos: usize,
    pub in_catalog_photos: usize,
    pub not_in_catalog_photos: usize,
    /// Catalog products with photos, and all catalog items.
    pub products: usize,
    pub catalog_items: usize,
    pub confident_precision_target: f32,
    pub methods: Vec<MethodFigures>,
    /// Ranking quality from image only to text only, on all photos (not held out).
    pub curve: Vec<CurvePoint>,
    pub catalog_scores: BestScores,
    /// `None` when there are photos of fewer than two products (nothing to cross-validate).
    pub tuned: Option<TunedChoice>,
    pub tuned_scores: Option<BestScores>,
    /// Worst first: photos of catalog products by their product's place, then photos of
    /// unknown products that got a confident match.
    pub misses: Vec<Miss>,
}

/// The sum the tuned weights keep: the catalog's, or 2 (as 1.5 + 0.5) if that is not positive.
pub fn weight_sum_of(r: &RankingDefaults) -> f32 {
    let sum = r.text_weight + r.image_weight;
    if sum.is_finite() && sum > 0.0 {
        sum
    } else {
        2.0
    }
}

fn best_scores(sims: &Similarities, photos: &[usize], weights: FusionWeights, min_score: f32) -> BestScores {
    let mut s = BestScores { weights, min_score, right: Vec::new(), wrong: Vec::new(), not_in_catalog: Vec::new() };
    for o in outcomes(sims, photos, weights) {
        match (o.in_catalog, o.correct) {
            (true, true) => s.right.push(o.best),
            (true, false) => s.wrong.push(o.best),
            (false, _) => s.not_in_catalog.push(o.best),
        }
    }
    s
}

fn misses(sims: &Similarities, w: FusionWeights, min_score: f32) -> Vec<Miss> {
    let mut out: Vec<Miss> = (0..sims.len())
        .map(|p| {
            let j = sims.judge(p, w);
            Miss {
                photo: p,
                truth: j.truth.item(),
                truth_rank: j.truth_rank.map(|(r, _)| r),
                truth_score: j.truth_rank.map(|(_, s)| s),
                best: j.best.0,
                best_score: j.best.1,
                confident: j.best.1 >= min_score,
            }
        })
        .filter(|m| m.truth_rank.map_or(m.confident, |r| r > 1))
        .collect();
    // How far the wrong answer is ahead (for unknown products: how high it scored).
    let gap = |m: &Miss| m.best_score - m.truth_score.unwrap_or(0.0);
    out.sort_by(|a, b| {
        (a.truth.is_none(), std::cmp::Reverse(a.truth_rank))
            .cmp(&(b.truth.is_none(), std::cmp::Reverse(b.truth_rank)))
            .then(gap(b).total_cmp(&gap(a)))
            .then(a.photo.cmp(&b.photo))
    });
    out
}

/// Evaluates `catalog`'s ranking (its weights and threshold) on `sims`, and tunes with
/// `options` where photos of two or more products allow it.
pub fn evaluate(sims: &Similarities, catalog: &RankingDefaults, options: &TuneOptions) -> Result<Evaluation, EvalError> {
    options.check()?;
    if sims.items() == 0 {
        return Err(EvalError::EmptyCatalog);
    }
    let all: Vec<usize> = (0..sims.len()).collect();
    let in_catalog: Vec<usize> = sims.in_catalog().collect();
    if in_catalog.is_empty() {
        return Err(EvalError::NoPhotosOfCatalogItems { photos: sims.len() });
    }
    let mut products: Vec<usize> = in_catalog.iter().filter_map(|&p| sims.truth(p).item()).collect();
    products.sort_unstable();
    products.dedup();

    let fixed = |method, weights: FusionWeights, min_score: Option<f32>| MethodFigures {
        method,
        weights,
        held_out: false,
        ranking: rank_metrics(sims, &in_catalog, weights),
        min_score,
        threshold: min_score.map(|t| ThresholdMetrics::at(&outcomes(sims, &all, weights), t)),
    };
    let sum = options.weight_sum;
    let own = FusionWeights { text: catalog.text_weight, image: catalog.image_weight };
    let mut methods = vec![
        fixed(Method::ImageOnly, FusionWeights { text: 0.0, image: sum }, None),
        fixed(Method::TextOnly, FusionWeights { text: sum, image: 0.0 }, None),
        fixed(Method::Catalog, own, Some(catalog.min_score)),
    ];
    let validated = match cross_validate(sims, options) {
        Ok(cv) => Some(cv),
        Err(EvalError::TooFewProducts { .. }) => None,
        Err(e) => return Err(e),
    };
    let (tuned, tuned_scores) = match validated {
        Some(cv) => {
            let point = choose(sims, &all, options);
            methods.push(MethodFigures {
                method: Method::Tuned,
                weights: point.weights,
                held_out: true,
                ranking: cv.ranking,
                min_score: Some(point.min_score),
                threshold: Some(cv.threshold),
            });
            let scores = best_scores(sims, &all, point.weights, point.min_score);
            (Some(TunedChoice { point, folds: cv.folds, per_fold: cv.chosen }), Some(scores))
        }
        None => (None, None),
    };
    let curve = curve(sims, &in_catalog, options)
        .into_iter()
        .enumerate()
        .map(|(s, ranking)| CurvePoint { text_share: s as f32 / options.steps as f32, weights: options.weights_at(s), ranking })
        .collect();
    Ok(Evaluation {
        photos: sims.len(),
        in_catalog_photos: in_catalog.len(),
        not_in_catalog_photos: sims.len() - in_catalog.len(),
        products: products.len(),
        catalog_items: sims.items(),
        confident_precision_target: options.confident_precision,
        methods,
        curve,
        catalog_scores: best_scores(sims, &all, own, catalog.min_score),
        tuned,
        tuned_scores,
        misses: misses(sims, own, catalog.min_score),
    })
}

impl Evaluation {
    pub fn method(&self, method: Method) -> Option<&MethodFigures> {
        self.methods.iter().find(|m| m.method == method)
    }

    /// `current` with the tuned weights and threshold, and `tuned` saying where they came from;
    /// `None` when nothing was tuned.
    pub fn tuned_ranking(&self, current: &RankingDefaults, when: UtcSeconds) -> Option<RankingDefaults> {
        let choice = self.tuned.as_ref()?;
        let figures = |m: Method| {
            let f = self.method(m).expect("both methods are measured when tuned");
            let t = f.threshold.unwrap_or_default();
            TunedMetrics {
                top1: f.ranking.top1,
                top5: f.ranking.top5,
                mrr: f.ranking.mrr,
                confident_precision: t.confident_precision,
                confident_recall: t.confident_recall,
            }
        };
        let p = choice.point;
        Some(RankingDefaults {
            text_weight: p.weights.text,
            image_weight: p.weights.image,
            min_score: p.min_score,
            top_k: current.top_k,
            tuned: Some(TunedRanking {
                when,
                photos: self.photos,
                not_in_catalog_photos: self.not_in_catalog_photos,
                products: self.products,
                folds: choice.folds,
                confident_precision_target: self.confident_precision_target,
                text_weight: p.weights.text,
                image_weight: p.weights.image,
                min_score: p.min_score,
                held_out: figures(Method::Tuned),
                before: figures(Method::Catalog),
            }),
        })
    }
}

