//! The figures: how well the right product ranks (top-1, top-5, mean reciprocal rank), and how
//! well a "no confident match" threshold separates right answers from wrong ones.

use serde::Serialize;

/// Ranking quality over photos of catalog products.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct RankMetrics {
    /// Photos counted.
    pub photos: usize,
    /// Share of photos whose product ranked first.
    pub top1: f32,
    /// Share of photos whose product ranked in the first five.
    pub top5: f32,
    /// Mean of 1 / (the product's place): 1 when always first, 0.5 when always second.
    pub mrr: f32,
}

impl RankMetrics {
    /// From the places (1 = first) of each photo's product; all zero for no photos.
    pub fn of(ranks: impl IntoIterator<Item = usize>) -> Self {
        let (mut n, mut top1, mut top5, mut rr) = (0usize, 0usize, 0usize, 0f64);
        for r in ranks {
            assert!(r >= 1, "places count from 1");
            n += 1;
            top1 += usize::from(r == 1);
            top5 += usize::from(r <= 5);
            rr += 1.0 / r as f64;
        }
        let share = |k: usize| if n == 0 { 0.0 } else { k as f32 / n as f32 };
        RankMetrics { photos: n, top1: share(top1), top5: share(top5), mrr: if n == 0 { 0.0 } else { (rr / n as f64) as f32 } }
    }
}

/// One query as the threshold sees it: its best score, and whether the item ranked first is
/// the photo's product.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    pub best: f32,
    /// The photo's product is in the catalog (as asked).
    pub in_catalog: bool,
    /// The item ranked first is the photo's product (never, when it is not in the catalog).
    pub correct: bool,
}

/// What a threshold does to a set of queries: "confident match" at or above it, "no confident
/// match" below.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct ThresholdMetrics {
    /// Queries whose product is in the catalog, and whose product is not.
    pub in_catalog: usize,
    pub not_in_catalog: usize,
    /// Confident matches, and those that named the right product.
    pub confident: usize,
    pub confident_correct: usize,
    /// "No confident match" answers to queries whose product is not in the catalog.
    pub rejected_not_in_catalog: usize,
    /// `confident_correct / confident`: how often a confident match is right.
    pub confident_precision: Option<f32>,
    /// `confident_correct / in_catalog`: how many photos of catalog products get a right,
    /// confident answer.
    pub confident_recall: Option<f32>,
    /// Of the "no confident match" answers, the share whose product is really not in the catalog.
    pub not_in_catalog_precision: Option<f32>,
    /// Of the queries whose product is not in the catalog, the share answered "no confident match".
    pub not_in_catalog_recall: Option<f32>,
}

fn ratio(a: usize, b: usize) -> Option<f32> {
    (b > 0).then(|| a as f32 / b as f32)
}

impl ThresholdMetrics {
    /// From each query and whether it was a confident match.
    pub fn of(decisions: impl IntoIterator<Item = (Outcome, bool)>) -> Self {
        let mut m = ThresholdMetrics::default();
        let mut rejected = 0;
        for (o, confident) in decisions {
            m.in_catalog += usize::from(o.in_catalog);
            m.not_in_catalog += usize::from(!o.in_catalog);
            m.confident += usize::from(confident);
            m.confident_correct += usize::from(confident && o.correct);
            rejected += usize::from(!confident);
            m.rejected_not_in_catalog += usize::from(!confident && !o.in_catalog);
        }
        m.confident_precision = ratio(m.confident_correct, m.confident);
        m.confident_recall = ratio(m.confident_correct, m.in_catalog);
        m.not_in_catalog_precision = ratio(m.rejected_not_in_catalog, rejected);
        m.not_in_catalog_recall = ratio(m.rejected_not_in_catalog, m.not_in_catalog);
        m
    }

    /// With `min_score` as the threshold: confident where the best score is at least it.
    pub fn at(outcomes: &[Outcome], min_score: f32) -> Self {
        Self::of(outcomes.iter().map(|&o| (o, o.best >= min_score)))
    }
}

/// The threshold for a named precision of "confident match": the lowest one at which the
/// confident matches among `outcomes` are right at least `target` of the time (the lowest
/// gives the most confident matches), placed halfway between the last best score it admits and
/// the next lower one. `None` when no threshold reaches `target`.
pub fn threshold_for_precision(outcomes: &[Outcome], target: f32) -> Option<f32> {
    let mut sorted: Vec<&Outcome> = outcomes.iter().collect();
    sorted.sort_by(|a, b| b.best.total_cmp(&a.best));
    let (mut confident, mut correct) = (0usize, 0usize);
    let mut chosen = None;
    let mut at = 0;
    while at < sorted.len() {
        // All queries with this best score are admitted together.
        let v = sorted[at].best;
        while at < sorted.len() && sorted[at].best == v {
            confident += 1;
            correct += usize::from(sorted[at].correct);
            at += 1;
        }
        // As a precision is reported: the f32 ratio.
        if correct as f32 / confident as f32 >= target {
            let below = sorted.get(at).map(|o| o.best);
            chosen = Some(match below {
                Some(b) if (v + b) / 2.0 > b => (v + b) / 2.0,
                _ => v,
            });
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(best: f32, in_catalog: bool, correct: bool) -> Outcome {
        Outcome { best, in_catalog, correct }
    }

    #[test]
    fn rank_metrics_by_hand() {
        // Places 1, 2, 7, 1: top-1 2/4, top-5 3/4, MRR (1 + 1/2 + 1/7 + 1) / 4.
        let m = RankMetrics::of([1, 2, 7, 1]);
        assert_eq!((m.photos, m.top1, m.top5), (4, 0.5, 0.75));
        assert!((m.mrr - (1.0 + 0.5 + 1.0 / 7.0 + 1.0) / 4.0).abs() < 1e-7, "{}", m.mrr);
        assert_eq!(RankMetrics::of([]), RankMetrics::default());
    }

    #[test]
    fn threshold_metrics_by_hand() {
        let outcomes = [
            o(0.9, true, true),
            o(0.8, true, false),
            o(0.7, false, false),
            o(0.6, true, true),
            o(0.5, false, false),
        ];
        // At 0.65: confident 0.9 (right), 0.8 (wrong), 0.7 (not in catalog); rejected 0.6, 0.5.
        let m = ThresholdMetrics::at(&outcomes, 0.65);
        assert_eq!((m.in_catalog, m.not_in_catalog, m.confident, m.confident_correct, m.rejected_not_in_catalog), (3, 2, 3, 1, 1));
        assert_eq!(m.confident_precision, Some(1.0 / 3.0));
        assert_eq!(m.confident_recall, Some(1.0 / 3.0));
        assert_eq!(m.not_in_catalog_precision, Some(0.5));
        assert_eq!(m.not_in_catalog_recall, Some(0.5));
        // Above every score: nothing confident, so no precision; every rejection counted.
        let none = ThresholdMetrics::at(&outcomes, 1.0);
        assert_eq!((none.confident_precision, none.confident_recall, none.not_in_catalog_recall), (None, Some(0.0), Some(1.0)));
        // The threshold is inclusive, as in `rank`: a best score equal to it is confident.
        assert_eq!(ThresholdMetrics::at(&outcomes, 0.9).confident, 1);
    }

    #[test]
    fn the_lowest_threshold_that_reaches_the_precision() {
        let outcomes = [
            o(0.875, true, true),
            o(0.75, true, true),
            o(0.625, false, false),
            o(0.5, true, true),
            o(0.5, true, true),
            o(0.25, false, false),
        ];
        // Admitting down to 0.5 gives 4 right of 5 (0.8); down to 0.75, 2 of 2.
        assert_eq!(threshold_for_precision(&outcomes, 0.8), Some(0.375));
        assert_eq!(threshold_for_precision(&outcomes, 0.81), Some(0.6875));
        assert_eq!(threshold_for_precision(&outcomes, 1.0), Some(0.6875));
        // Everything admitted: the lowest score itself.
        assert_eq!(threshold_for_precision(&outcomes, 0.5), Some(0.25));
        assert_eq!(threshold_for_precision(&[o(0.9, false, false)], 0.5), None);
        assert_eq!(threshold_for_precision(&[], 0.5), None);
    }
}
