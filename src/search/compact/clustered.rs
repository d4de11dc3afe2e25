//! A seeded generator of CLIP-like embeddings: unit vectors in clusters of varied size and
//! spread, every item with an image vector and a name vector that agree as CLIP's do (cosine
//! about 0.3, not identical), and "photos" of items (new image vectors of the same product).
//!
//! The model: each modality has its own common direction (CLIP's embeddings share a large
//! mean component, and image and text means differ: the "modality gap"); a product is a point
//! `z` near its cluster's centre; its image vector is `a * image_mean + b * z + c * noise` and
//! its name vector `a * text_mean + b * z + c * other_noise`, normalised. With independent unit
//! directions in many dimensions, cos(image, name) is about `b^2 / (a^2 + b^2 + c^2)`.
//!
//! Like CLIP's, the space is not isotropic: every random direction (centres, products' offsets,
//! noise) is drawn with a decaying spectrum (the standard deviation of the j-th axis is
//! `(j + 1)^-0.5`), then turned by a fixed random rotation (four Householder reflections), so
//! that no axis of the stored vectors is special.

use crate::search::synthetic::Rng;

/// The shape of a clustered catalog.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClusteredSpec {
    pub items: usize,
    pub dim: usize,
    pub clusters: usize,
    pub seed: u64,
}

/// Weights of the common direction, the product and the per-vector noise (squared: shares of
/// the vector's energy): cos(image, name) of an item is about `PRODUCT`.
const COMMON: f32 = 0.4;
const PRODUCT: f32 = 0.3;
const NOISE: f32 = 0.3;

/// A clustered catalog in the catalog file's layout (per item: image vector, then name vector),
/// and what is needed to draw photos of its items.
pub struct Clustered {
    pub dim: usize,
    /// `items x 2 x dim` values: image vector then name vector, item after item.
    pub values: Vec<f32>,
    /// The product point of each item (`items x dim`), for drawing photos.
    products: Vec<f32>,
    image_mean: Vec<f32>,
    space: Space,
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// `sum of w_k * v_k`, normalised.
fn mix(parts: &[(f32, &[f32])]) -> Vec<f32> {
    let mut out = vec![0.0f32; parts[0].1.len()];
    for (w, v) in parts {
        out.iter_mut().zip(*v).for_each(|(o, x)| *o += w * x);
    }
    normalised(out)
}

/// A photo: this much of its item's catalog image vector, and this much of a fresh view.
const PHOTO_LOOK: f32 = 0.75;
const PHOTO_FRESH: f32 = 0.66;

/// Axis j's standard deviation is `(j + 1)^-SPECTRUM`.
const SPECTRUM: f32 = 0.5;

/// Random directions in the generator's space: a decaying spectrum, then a fixed rotation.
struct Space {
    spectrum: Vec<f32>,
    reflections: Vec<Vec<f32>>,
}

impl Space {
    fn new(dim: usize, rng: &mut Rng) -> Self {
        let spectrum = (0..dim).map(|j| ((j + 1) as f32).powf(-SPECTRUM)).collect();
        Self { spectrum, reflections: (0..4).map(|_| rng.unit_vector(dim)).collect() }
    }

    /// A random unit direction.
    fn direction(&self, rng: &mut Rng) -> Vec<f32> {
        let mut v: Vec<f32> = rng.unit_vector(self.spectrum.len()).iter().zip(&self.spectrum).map(|(x, s)| x * s).collect();
        for h in &self.reflections {
            let d = 2.0 * h.iter().zip(&v).map(|(a, b)| a * b).sum::<f32>();
            v.iter_mut().zip(h).for_each(|(x, h)| *x -= d * h);
        }
        normalised(v)
    }
}

impl Clustered {
    /// Draws the catalog. Cluster sizes follow a Zipf-like law (a few big clusters, many small
    /// ones), and each cluster's spread is drawn between 0.35 and 1.1 (how far its products sit
    /// from its centre, relative to the centre's unit length).
    pub fn generate(spec: ClusteredSpec) -> Self {
        let ClusteredSpec { items, dim, clusters, seed } = spec;
        let clusters = clusters.max(1);
        let mut rng = Rng::new(seed);
        let space = Space::new(dim, &mut rng);
        let image_mean = rng.unit_vector(dim);
        let text_mean = rng.unit_vector(dim);
        let centres: Vec<Vec<f32>> = (0..clusters).map(|_| space.direction(&mut rng)).collect();
        let spreads: Vec<f32> = (0..clusters).map(|_| 0.35 + 0.75 * rng.unit_open() as f32).collect();
        // Zipf weights 1 / (rank + 1)^0.8, as cumulative shares to draw clusters from.
        let weights: Vec<f64> = (0..clusters).map(|k| 1.0 / ((k + 1) as f64).powf(0.8)).collect();
        let total: f64 = weights.iter().sum();
        let cumulative: Vec<f64> = weights.iter().scan(0.0, |s, w| { *s += w / total; Some(*s) }).collect();
        let (a, b, c) = (COMMON.sqrt(), PRODUCT.sqrt(), NOISE.sqrt());
        let mut values = Vec::with_capacity(items * 2 * dim);
        let mut products = Vec::with_capacity(items * dim);
        for _ in 0..items {
            let u = rng.unit_open();
            let k = cumulative.partition_point(|&p| p < u).min(clusters - 1);
            let z = mix(&[(1.0, &centres[k]), (spreads[k], &space.direction(&mut rng))]);
            values.extend(mix(&[(a, &image_mean), (b, &z), (c, &space.direction(&mut rng))]));
            values.extend(mix(&[(a, &text_mean), (b, &z), (c, &space.direction(&mut rng))]));
            products.extend(z);
        }
        Self { dim, values, products, image_mean, space }
    }

    pub fn items(&self) -> usize {
        self.products.len() / self.dim
    }

    /// A new photo of item `i`: mostly the item's own look (its catalog image vector), partly
    /// a fresh view of its product (other image noise); cosine with the item's image vector
    /// about 0.9, with other products of its cluster about 0.7.
    pub fn photo(&self, i: usize, rng: &mut Rng) -> Vec<f32> {
        let d = self.dim;
        let z = &self.products[i * d..(i + 1) * d];
        let (a, b, c) = (COMMON.sqrt(), PRODUCT.sqrt(), NOISE.sqrt());
        let fresh = mix(&[(a, &self.image_mean), (b, z), (c, &self.space.direction(rng))]);
        mix(&[(PHOTO_LOOK, &self.values[2 * i * d..(2 * i + 1) * d]), (PHOTO_FRESH, &fresh)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::math::dot_in_order;

    #[test]
    fn vectors_are_unit_clustered_and_image_and_name_agree_as_clip() {
        let c = Clustered::generate(ClusteredSpec { items: 400, dim: 256, clusters: 20, seed: 7 });
        let d = c.dim;
        let image = |i: usize| &c.values[2 * i * d..(2 * i + 1) * d];
        let name = |i: usize| &c.values[(2 * i + 1) * d..(2 * i + 2) * d];
        for i in 0..c.items() {
            assert!((dot_in_order(image(i), image(i)) - 1.0).abs() < 1e-4);
        }
        let pairs: f32 = (0..c.items()).map(|i| dot_in_order(image(i), name(i))).sum::<f32>() / c.items() as f32;
        assert!((0.22..0.38).contains(&pairs), "mean cos(image, name) = {pairs}");
        // Items' images share the common direction, and neighbours are much closer than that.
        let cross: f32 = (0..100).map(|i| dot_in_order(image(i), image(i + 100))).sum::<f32>() / 100.0;
        assert!((0.3..0.6).contains(&cross), "mean cos(image, other image) = {cross}");
        let nearest = (1..c.items()).map(|j| dot_in_order(image(0), image(j))).fold(f32::MIN, f32::max);
        assert!(nearest > cross + 0.1, "nearest {nearest} vs mean {cross}");
        let photo = c.photo(0, &mut Rng::new(1));
        assert!(dot_in_order(&photo, image(0)) > 0.85, "{}", dot_in_order(&photo, image(0)));
        // The same seed gives the same bytes.
        let again = Clustered::generate(ClusteredSpec { items: 400, dim: 256, clusters: 20, seed: 7 });
        assert_eq!(again.values, c.values);
    }
}
