//! How a ranking is asked for: the catalog's defaults ([`RankingDefaults`]) with the caller's
//! overrides on top, resolved in one place into what [`rank`](crate::search::rank::rank) takes.

use crate::search::catalog::RankingDefaults;
use crate::search::rank::FusionWeights;

/// What the caller asks for instead of the catalog's defaults; `None` keeps the default.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RankingOverrides {
    pub text_weight: Option<f32>,
    pub image_weight: Option<f32>,
    pub top_k: Option<usize>,
    pub min_score: Option<f32>,
}

/// A ranking's settings once defaults and overrides are resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankingOptions {
    pub weights: FusionWeights,
    pub top_k: usize,
    /// Below this best fused score the answer is "no confident match".
    pub min_score: f32,
}

impl RankingOverrides {
    /// `defaults`, with each value the caller gave in its place.
    pub fn resolve(&self, defaults: &RankingDefaults) -> RankingOptions {
        RankingOptions {
            weights: FusionWeights {
                text: self.text_weight.unwrap_or(defaults.text_weight),
                image: self.image_weight.unwrap_or(defaults.image_weight),
            },
            top_k: self.top_k.unwrap_or(defaults.top_k),
            min_score: self.min_score.unwrap_or(defaults.min_score),
        }
    }
}

impl From<RankingOptions> for RankingDefaults {
    fn from(o: RankingOptions) -> Self {
        RankingDefaults {
            text_weight: o.weights.text,
            image_weight: o.weights.image,
            top_k: o.top_k,
            min_score: o.min_score,
            tuned: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG: RankingDefaults = RankingDefaults { text_weight: 2.0, image_weight: 0.25, top_k: 7, min_score: 0.3, tuned: None };

    #[test]
    fn no_overrides_keep_the_catalogs_defaults() {
        let o = RankingOverrides::default().resolve(&CATALOG);
        assert_eq!(o.weights, FusionWeights { text: 2.0, image: 0.25 });
        assert_eq!((o.top_k, o.min_score), (7, 0.3));
        assert_eq!(RankingDefaults::from(o), CATALOG);
    }

    #[test]
    fn each_override_replaces_only_its_own_value() {
        let text = RankingOverrides { text_weight: Some(0.0), ..Default::default() }.resolve(&CATALOG);
        assert_eq!(text.weights, FusionWeights { text: 0.0, image: 0.25 });
        let image = RankingOverrides { image_weight: Some(1.0), ..Default::default() }.resolve(&CATALOG);
        assert_eq!(image.weights, FusionWeights { text: 2.0, image: 1.0 });
        let k = RankingOverrides { top_k: Some(1), ..Default::default() }.resolve(&CATALOG);
        assert_eq!((k.top_k, k.min_score), (1, 0.3));
        let min = RankingOverrides { min_score: Some(-1.0), ..Default::default() }.resolve(&CATALOG);
        assert_eq!((min.top_k, min.min_score), (7, -1.0));
    }
}
