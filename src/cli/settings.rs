//! Parsers of the numeric settings of several commands: each refuses, as its argument is read,
//! what the core's check refuses (the check a catalog holding the value would fail when read).

use clipmatch::error::SettingError;
use clipmatch::search::catalog::check_thumbnail_side;
use clipmatch::search::ranking_options::{check_min_score, check_top_k, check_weight};

fn parsed<T: std::str::FromStr>(s: &str, check: impl Fn(T) -> Result<T, SettingError>) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    let value = s.parse::<T>().map_err(|e| e.to_string())?;
    check(value).map_err(|e| e.to_string())
}

/// `--text-weight`.
pub fn text_weight(s: &str) -> Result<f32, String> {
    parsed(s, |w| check_weight("text", w))
}

/// `--image-weight`.
pub fn image_weight(s: &str) -> Result<f32, String> {
    parsed(s, |w| check_weight("image", w))
}

/// `--top-k`.
pub fn top_k(s: &str) -> Result<usize, String> {
    parsed(s, check_top_k)
}

/// `--min-score`.
pub fn min_score(s: &str) -> Result<f32, String> {
    parsed(s, check_min_score)
}

/// `--thumbnail-size`.
pub fn thumbnail_size(s: &str) -> Result<u32, String> {
    parsed(s, check_thumbnail_side)
}
