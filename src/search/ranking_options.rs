//! How a ranking is asked for: the catalog's defaults ([`RankingDefaults`]) with the caller's
//! overrides on top, resolved in one place into what [`rank`](crate::search::rank::rank) takes;
//! and the one check of ranking settings, made on what a command is given and on what a catalog
//! holds.

use crate::error::SettingError;
use crate::search::catalog::RankingDefaults;
use crate::search::rank::FusionWeights;

/// Largest weight of the name or the image: fused scores stay far inside f32 (the page's sliders
/// go to 3).
pub const MAX_WEIGHT: f32 = 1000.0;
/// Largest threshold either way: a fused score is at most the sum of the weights.
pub const MAX_MIN_SCORE: f32 = 2.0 * MAX_WEIGHT;

/// `value` if it is a weight ([`MAX_WEIGHT`]); `which`: "text" or "image", for the message.
pub fn check_weight(which: &'static str, value: f32) -> Result<f32, SettingError> {
    if (0.0..=MAX_WEIGHT).contains(&value) {
        Ok(value)
    } else {
        Err(SettingError::Weight { which, value, max: MAX_WEIGHT })
    }
}

/// `k` if it is a number of results: at least 1.
pub fn check_top_k(k: usize) -> Result<usize, SettingError> {
    if k >= 1 {
        Ok(k)
    } else {
        Err(SettingError::TopK)
    }
}

/// `value` if it is a threshold ([`MAX_MIN_SCORE`]).
pub fn check_min_score(value: f32) -> Result<f32, SettingError> {
    if (-MAX_MIN_SCORE..=MAX_MIN_SCORE).contains(&value) {
        Ok(value)
    } else {
        Err(SettingError::MinScore { value, max: MAX_MIN_SCORE })
    }
}

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
    /// Refuses a value given that [`RankingOptions::check`] would refuse.
    pub fn check(&self) -> Result<(), SettingError> {
        self.text_weight.map(|w| check_weight("text", w)).transpose()?;
        self.image_weight.map(|w| check_weight("image", w)).transpose()?;
        self.top_k.map(check_top_k).transpose()?;
        self.min_score.map(check_min_score).transpose()?;
        Ok(())
    }

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

impl RankingOptions {
    /// Refuses weights that are not numbers from 0 to [`MAX_WEIGHT`], no results, and a
    /// threshold that is not a number within [`MAX_MIN_SCORE`] either way.
    pub fn check(&self) -> Result<(), SettingError> {
        check_weight("text", self.weights.text)?;
        check_weight("image", self.weights.image)?;
        check_top_k(self.top_k)?;
        check_min_score(self.min_score)?;
        Ok(())
    }
}

impl From<&RankingDefaults> for RankingOptions {
    fn from(r: &RankingDefaults) -> Self {
        RankingOverrides::default().resolve(r)
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

    #[test]
    fn non_finite_or_out_of_range_settings_are_refused() {
        assert_eq!(RankingOptions::from(&CATALOG).check(), Ok(()));
        let edges = RankingOverrides { text_weight: Some(0.0), image_weight: Some(MAX_WEIGHT), top_k: Some(1), min_score: Some(-MAX_MIN_SCORE) };
        assert_eq!(edges.check(), Ok(()));
        assert_eq!(edges.resolve(&CATALOG).check(), Ok(()));
        for (bad, message) in [
            (RankingOverrides { min_score: Some(f32::NAN), ..Default::default() }, "the threshold (min_score) must be a number from -2000 to 2000, not NaN"),
            (RankingOverrides { min_score: Some(f32::INFINITY), ..Default::default() }, "not inf"),
            (RankingOverrides { text_weight: Some(3e38), ..Default::default() }, "the text weight must be a number from 0 to 1000, not 300000000000000000000000000000000000000"),
            (RankingOverrides { image_weight: Some(-0.5), ..Default::default() }, "the image weight must be a number from 0 to 1000, not -0.5"),
            (RankingOverrides { image_weight: Some(f32::NAN), ..Default::default() }, "not NaN"),
            (RankingOverrides { top_k: Some(0), ..Default::default() }, "the number of results (top_k) must be at least 1, not 0"),
        ] {
            let e = bad.check().unwrap_err().to_string();
            assert!(e.contains(message), "{e}");
            assert_eq!(bad.resolve(&CATALOG).check().unwrap_err().to_string(), e);
        }
    }
}
