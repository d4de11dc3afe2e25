//! Storing a catalog's vectors as i8: per vector kind, the catalog's mean vector is the offset
//! and each value's difference from it is stored in steps of one scale, chosen so that every
//! stored vector passes the length check every reader applies ([`I8_LENGTH_TOLERANCE`]).

use super::format::{VectorDtype, VectorKind, VectorOffsets, VectorScales, LAYOUT_I8, VERSION};
use super::{Catalog, Vectors};
use crate::error::CatalogError;

/// Most a stored i8 vector's length may differ from 1: rounding moves it a little, clamping
/// more. Readers refuse more ([`Catalog::vector_problems`]), so `to_i8` never stores more.
pub const I8_LENGTH_TOLERANCE: f32 = 0.05;

/// How `to_i8` picks each vector kind's scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScaleRule {
    /// The largest |difference from the offset| maps to 127: nothing is clamped.
    MaxAbs,
    /// The clipping level (a fraction of the largest |difference|) with the least squared
    /// quantisation error over the catalog's values, among those that keep every stored vector
    /// within [`I8_LENGTH_TOLERANCE`] of unit length; the few differences above it are clamped.
    #[default]
    LeastError,
}

/// A value stored as i8: its difference from `offset` in steps of `scale`, rounded and clamped.
fn quantise(x: f32, scale: f32, offset: f32) -> i8 {
    ((x - offset) / scale).round().clamp(-127.0, 127.0) as i8
}

/// The value an i8 `q` stands for.
pub(super) fn dequantise(q: i8, scale: f32, offset: f32) -> f32 {
    offset + q as f32 * scale
}

/// The length of a vector, as the reader's check computes it.
pub(super) fn length(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

impl Catalog {
    /// The same catalog with its vectors stored as `dtype`: f32 vectors are quantised to i8
    /// (scales chosen from the data by `rule`), i8 stay as they are. i8 vectors are not turned
    /// back into f32: the precision is gone. Vectors that no scale can store within
    /// [`I8_LENGTH_TOLERANCE`] of unit length are refused.
    pub fn with_dtype(self, dtype: VectorDtype, rule: ScaleRule) -> Result<Self, CatalogError> {
        match (&self.vectors, dtype) {
            (Vectors::F32(_), VectorDtype::I8) => self.to_i8(rule).checked_lengths(),
            (Vectors::I8 { .. }, VectorDtype::F32) => Err(CatalogError::Invalid(
                "this catalog stores i8 vectors; f32 vectors need a catalog built with --vector-dtype f32".into(),
            )),
            _ => Ok(self),
        }
    }

    /// The catalog, if every stored vector passes the readers' length check
    /// ([`Catalog::vector_problems`]); refused otherwise, naming the first that does not.
    fn checked_lengths(self) -> Result<Self, CatalogError> {
        match self.vector_problems().into_iter().next() {
            None => Ok(self),
            Some(p) => Err(CatalogError::Invalid(format!(
                "{p}: no i8 scale stores it within {I8_LENGTH_TOLERANCE} of unit length; store the vectors as f32 (--vector-dtype f32)"
            ))),
        }
    }

    /// The catalog with i8 vectors: per vector kind, the mean vector of the catalog is the
    /// offset and each value's difference from it is stored in steps of one scale (chosen by
    /// `rule`), rounded to the nearest step and clamped to -127..=127. CLIP vectors share a
    /// large common direction, so the differences span a much smaller range than the values.
    /// Clamping shortens a vector with an outlying value: the scale is the best one by `rule`
    /// that keeps every vector within [`I8_LENGTH_TOLERANCE`] of unit length when rounded and
    /// clamped (the largest difference mapped to 127, clamping nothing, when none does).
    pub fn to_i8(&self, rule: ScaleRule) -> Self {
        let Vectors::F32(values) = &self.vectors else {
            return self.clone();
        };
        let d = self.dim();
        let mean = |kind: VectorKind| -> Vec<f32> {
            let mut sum = vec![0f64; d];
            for v in of_kind(values, d, kind) {
                sum.iter_mut().zip(v).for_each(|(s, x)| *s += *x as f64);
            }
            sum.iter().map(|s| (s / self.len().max(1) as f64) as f32).collect()
        };
        let offsets = VectorOffsets { image: mean(VectorKind::Image), text: mean(VectorKind::Name) };
        let scale = |kind: VectorKind| {
            let offsets = offsets.of(kind);
            let candidates = candidate_scales(residuals(values, d, kind, offsets), values.len() / VectorKind::ALL.len(), rule);
            let fits = |s: f32| of_kind(values, d, kind).all(|v| stored_length_fits(v, s, offsets));
            let clamping_nothing = candidates.iter().copied().fold(0.0, f32::max);
            candidates.iter().copied().find(|&s| fits(s)).unwrap_or(clamping_nothing)
        };
        let scales = VectorScales { image: scale(VectorKind::Image), text: scale(VectorKind::Name) };
        self.quantised(values, scales, offsets)
    }

    /// The catalog with i8 vectors stored with the given `scales` and `offsets` (another
    /// catalog's, when items are added to it: the vectors it already holds keep their bytes,
    /// since an i8 value de-quantised and quantised again with the same scale and offset is
    /// the same value; a new one beyond their range is clamped, and stretched back to unit
    /// length if clamping shortened it too much). i8 catalogs must have these very scales and
    /// offsets.
    pub fn to_i8_with(&self, scales: VectorScales, offsets: VectorOffsets) -> Result<Self, CatalogError> {
        let d = self.dim();
        let sane = |s: f32| s.is_finite() && s > 0.0;
        if !(sane(scales.image) && sane(scales.text)) || offsets.image.len() != d || offsets.text.len() != d {
            return Err(CatalogError::Invalid(format!("i8 storage needs positive scales and {d} offsets per vector kind")));
        }
        match &self.vectors {
            Vectors::F32(values) => Ok(self.quantised(values, scales, offsets)),
            Vectors::I8 { scales: s, offsets: o, .. } if *s == scales && *o == offsets => Ok(self.clone()),
            Vectors::I8 { .. } => Err(CatalogError::Invalid("these i8 vectors are stored with other scales or offsets".into())),
        }
    }

    /// `values` (the file's layout) stored as i8: per value, its difference from its kind's
    /// offset in steps of its kind's scale, rounded and clamped to -127..=127 ([`stored_vector`]).
    fn quantised(&self, values: &[f32], scales: VectorScales, offsets: VectorOffsets) -> Self {
        let d = self.dim();
        let q = values
            .chunks_exact(d)
            .enumerate()
            .flat_map(|(v, x)| {
                let kind = VectorKind::of_vector(v);
                stored_vector(x, scales.of(kind), offsets.of(kind))
            })
            .collect();
        let mut manifest = self.manifest.clone();
        manifest.version = VERSION;
        manifest.vectors.dtype = VectorDtype::I8.name().into();
        manifest.vectors.layout = LAYOUT_I8.into();
        manifest.vectors.scales = Some(scales);
        manifest.vectors.offsets = Some(offsets.clone());
        let mut out = Self {
            manifest,
            vectors: Vectors::I8 { values: q, scales, offsets },
        };
        out.manifest.vectors.sha256 = out.vectors_sha256();
        out
    }
}

/// `v` stored with `scale` and `offsets`: each value rounded and clamped. When clamping takes it
/// out of unit length by more than the tolerance (a catalog updated with the scales it had, and
/// a new vector beyond their range), it is `t v` instead, for the stretch `t` nearest 1 that
/// brings it within half the tolerance (the values not clamped keep their proportions; a clamped
/// vector's direction is off either way); as it is if no stretch does.
fn stored_vector(v: &[f32], scale: f32, offsets: &[f32]) -> Vec<i8> {
    let at = |t: f32| -> Vec<i8> { v.iter().zip(offsets).map(|(&x, &m)| quantise(t * x, scale, m)).collect() };
    let off = |q: &[i8]| stored_length(q, scale, offsets) - 1.0;
    let plain = at(1.0);
    let first = off(&plain);
    if first.abs() <= I8_LENGTH_TOLERANCE {
        return plain;
    }
    let grow = first < 0.0;
    // Stretched (or shrunk) as far as within half the tolerance of unit length, or further.
    let reached = |t: f32| {
        let o = off(&at(t));
        if grow {
            o >= -I8_LENGTH_TOLERANCE / 2.0
        } else {
            o <= I8_LENGTH_TOLERANCE / 2.0
        }
    };
    let Some(mut far) = (1..=30).map(|k| if grow { 2f32.powi(k) } else { 0.5f32.powi(k) }).find(|&t| reached(t)) else {
        return plain;
    };
    let mut near = 1.0f32;
    for _ in 0..30 {
        let mid = (near + far) / 2.0;
        if reached(mid) {
            far = mid;
        } else {
            near = mid;
        }
    }
    let stretched = at(far);
    if off(&stretched).abs() <= I8_LENGTH_TOLERANCE { stretched } else { plain }
}

/// The length of the vector `q` stands for, as the reader computes it.
fn stored_length(q: &[i8], scale: f32, offsets: &[f32]) -> f32 {
    length(&q.iter().zip(offsets).map(|(&q, &m)| dequantise(q, scale, m)).collect::<Vec<f32>>())
}

/// Does `v` stored with `scale` and `offsets`, rounded and clamped, keep its length within the
/// tolerance?
fn stored_length_fits(v: &[f32], scale: f32, offsets: &[f32]) -> bool {
    let q: Vec<i8> = v.iter().zip(offsets).map(|(&x, &m)| quantise(x, scale, m)).collect();
    (stored_length(&q, scale, offsets) - 1.0).abs() <= I8_LENGTH_TOLERANCE
}

/// Every vector of `kind` in values laid out as in the vectors file (`d` values a vector).
fn of_kind(values: &[f32], d: usize, kind: VectorKind) -> impl Iterator<Item = &[f32]> + Clone {
    values.chunks_exact(d).skip(kind.index()).step_by(VectorKind::ALL.len())
}

/// The differences from `offsets` of every vector of `kind`.
fn residuals<'a>(values: &'a [f32], d: usize, kind: VectorKind, offsets: &'a [f32]) -> impl Iterator<Item = f32> + Clone + 'a {
    of_kind(values, d, kind).flat_map(move |v| v.iter().zip(offsets).map(|(x, m)| x - m))
}

/// The scales `rule` allows for one vector kind (`count` values), best first: `max |x| / 127`
/// alone, or for `LeastError` the clipping levels 100 %, 95 %, ..., 40 % of that maximum, by how
/// little their rounding and clamping lose (sum of squared errors, on at most about a million
/// evenly spread values; the first of equals first). The largest is the 100 % level.
fn candidate_scales(values: impl Iterator<Item = f32> + Clone, count: usize, rule: ScaleRule) -> Vec<f32> {
    let max = values.clone().fold(0.0f32, |m, x| m.max(x.abs()));
    if max == 0.0 || !max.is_finite() {
        return vec![1.0 / 127.0];
    }
    if rule == ScaleRule::MaxAbs {
        return vec![max / 127.0];
    }
    let sample: Vec<f32> = values.step_by((count / (1 << 20)).max(1)).collect();
    let error = |s: f32| -> f64 {
        sample
            .iter()
            .map(|&x| {
                let e = x - (x / s).round().clamp(-127.0, 127.0) * s;
                (e * e) as f64
            })
            .sum()
    };
    let mut levels: Vec<(f32, f64)> = (0..=12).map(|k| max * (1.0 - 0.05 * k as f32) / 127.0).map(|s| (s, error(s))).collect();
    levels.sort_by(|a, b| a.1.total_cmp(&b.1));
    levels.into_iter().map(|(s, _)| s).collect()
}
