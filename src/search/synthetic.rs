//! Synthetic catalogs of random unit vectors, seeded: for timing the ranking at sizes no test
//! data reaches (natively and in the browser's worker), stored exactly as real catalogs are.

use crate::search::catalog::{Catalog, Item, ModelInfo, RankingDefaults, ScaleRule, VectorDtype};
use crate::models::config::PreprocessConfig;
use crate::error::CatalogError;

/// SplitMix64: small, fast and good enough for benchmark data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    pub fn unit_open(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// A direction drawn uniformly on the sphere (normalised Gaussian, Box-Muller).
    pub fn unit_vector(&mut self, dim: usize) -> Vec<f32> {
        let mut v = Vec::with_capacity(dim + 1);
        while v.len() < dim {
            let (r, t) = ((-2.0 * self.unit_open().ln()).sqrt(), std::f64::consts::TAU * self.unit_open());
            v.push((r * t.cos()) as f32);
            v.push((r * t.sin()) as f32);
        }
        v.truncate(dim);
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        v
    }
}

/// A catalog of `items` products with random unit image and name vectors of `dim` values,
/// quantised like a built catalog when `dtype` is i8. Items are named "item-0", "item-1", ...
pub fn catalog(items: usize, dim: usize, seed: u64, dtype: VectorDtype) -> Result<Catalog, CatalogError> {
    let mut rng = Rng::new(seed);
    let mut values = Vec::with_capacity(items * 2 * dim);
    for _ in 0..2 * items {
        values.extend(rng.unit_vector(dim));
    }
    let list = (0..items)
        .map(|i| Item {
            id: format!("item-{i}"),
            name: format!("Item {i}"),
            description: None,
            image: format!("item-{i}.jpg"),
            thumbnail: None,
            fields: Default::default(),
        })
        .collect();
    let model = ModelInfo {
        name: "synthetic".into(),
        weights_sha256: String::new(),
        equivalent_weights_sha256: Vec::new(),
        embedding_dim: dim,
    };
    Catalog::from_f32(model, PreprocessConfig::default(), RankingDefaults::default(), list, values)?
        .with_dtype(dtype, ScaleRule::default())
}
