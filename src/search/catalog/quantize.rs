//! Storing a catalog's vectors as i8: per vector kind, the catalog's mean vector is the offset
//! and each value's difference from it is stored in steps of one scale.

use super::format::{VectorDtype, VectorKind, VectorOffsets, VectorScales, LAYOUT_I8, VERSION};
use super::{Catalog, Vectors};
use crate::error::CatalogError;

/// How `to_i8` picks each vector kind's scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScaleRule {
    /// The largest |difference from the offset| maps to 127: nothing is clamped.
    MaxAbs,
    /// The clipping level (a fraction of the largest |difference|) with the least squared
    /// quantisation error over the catalog's values; the few differences above it are clamped.
    #[default]
    LeastError,
}

impl Catalog {
    /// The same catalog with its vectors stored as `dtype`: f32 vectors are quantised to i8
    /// (scales chosen from the data by `rule`), i8 stay as they are. i8 vectors are not turned
    /// back into f32: the precision is gone.
    pub fn with_dtype(self, dtype: VectorDtype, rule: ScaleRule) -> Result<Self, CatalogError> {
        match (&self.vectors, dtype) {
            (Vectors::F32(_), VectorDtype::I8) => Ok(self.to_i8(rule)),
            (Vectors::I8 { .. }, VectorDtype::F32) => Err(CatalogError::Invalid(
                "this catalog stores i8 vectors; f32 vectors need a catalog built with --vector-dtype f32".into(),
            )),
            _ => Ok(self),
        }
    }

    /// The catalog with i8 vectors: per vector kind, the mean vector of the catalog is the
    /// offset and each value's difference from it is stored in steps of one scale (chosen by
    /// `rule`), rounded to the nearest step and clamped to -127..=127. CLIP vectors share a
    /// large common direction, so the differences span a much smaller range than the values.
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
            choose_scale(residuals(values, d, kind, offsets.of(kind)), values.len() / VectorKind::ALL.len(), rule)
        };
        let scales = VectorScales { image: scale(VectorKind::Image), text: scale(VectorKind::Name) };
        self.quantised(values, scales, offsets)
    }

    /// The catalog with i8 vectors stored with the given `scales` and `offsets` (another
    /// catalog's, when items are added to it: the vectors it already holds keep their bytes,
    /// since an i8 value de-quantised and quantised again with the same scale and offset is
    /// the same value). i8 catalogs must have these very scales and offsets.
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
    /// offset in steps of its kind's scale, rounded and clamped to -127..=127.
    fn quantised(&self, values: &[f32], scales: VectorScales, offsets: VectorOffsets) -> Self {
        let d = self.dim();
        let q = values
            .chunks_exact(d)
            .enumerate()
            .flat_map(|(v, x)| {
                let kind = VectorKind::of_vector(v);
                let (s, m) = (scales.of(kind), offsets.of(kind));
                x.iter().zip(m).map(move |(x, m)| ((x - m) / s).round().clamp(-127.0, 127.0) as i8)
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

/// Every vector of `kind` in values laid out as in the vectors file (`d` values a vector).
fn of_kind(values: &[f32], d: usize, kind: VectorKind) -> impl Iterator<Item = &[f32]> + Clone {
    values.chunks_exact(d).skip(kind.index()).step_by(VectorKind::ALL.len())
}

/// The differences from `offsets` of every vector of `kind`.
fn residuals<'a>(values: &'a [f32], d: usize, kind: VectorKind, offsets: &'a [f32]) -> impl Iterator<Item = f32> + Clone + 'a {
    of_kind(values, d, kind).flat_map(move |v| v.iter().zip(offsets).map(|(x, m)| x - m))
}

/// The scale of one vector kind (`count` values): `max |x| / 127`, or for `LeastError` the
/// clipping level among 100 %, 95 %, ..., 40 % of that maximum whose rounding and clamping
/// lose the least (sum of squared errors, on at most about a million evenly spread values).
fn choose_scale(values: impl Iterator<Item = f32> + Clone, count: usize, rule: ScaleRule) -> f32 {
    let max = values.clone().fold(0.0f32, |m, x| m.max(x.abs()));
    if max == 0.0 || !max.is_finite() {
        return 1.0 / 127.0;
    }
    if rule == ScaleRule::MaxAbs {
        return max / 127.0;
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
    (0..=12)
        .map(|k| max * (1.0 - 0.05 * k as f32) / 127.0)
        .map(|s| (s, error(s)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(s, _)| s)
        .unwrap_or(max / 127.0)
}
