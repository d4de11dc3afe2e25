//! Product quantisation (Jégou, Douze and Schmid, 2011): a vector is cut into `subspaces`
//! equal parts and each part is stored as the index (one byte) of its nearest of `centroids`
//! centres, learnt per subspace by k-means. A query is compared with every stored vector
//! without decoding it ("asymmetric distance computation"): one table per query holds the dot
//! product of each of its parts with each centre, and a stored vector's score is the sum of
//! `subspaces` table entries.

use std::sync::Mutex;

use crate::error::CatalogError;
use crate::kernels::math::dot_in_order;
use crate::parallel;
use crate::search::synthetic::Rng;

/// Most centres a subspace may have: a code is one byte per subspace.
pub const MAX_CENTROIDS: usize = 256;

/// How a quantiser is trained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainingParams {
    pub subspaces: usize,
    pub centroids: usize,
    /// Lloyd iterations of k-means per subspace.
    pub iterations: usize,
    /// At most this many vectors (drawn with the seed) are used to learn the centres.
    pub sample: usize,
    pub seed: u64,
}

/// A trained product quantiser for `dim`-dimensional vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductQuantizer {
    dim: usize,
    subspaces: usize,
    centroids: usize,
    /// `subspaces x centroids x (dim / subspaces)`: subspace after subspace, centre after centre.
    codebook: Vec<f32>,
}

/// Squared distance between two slices of equal length.
fn distance2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The index of the centre (rows of `sub` values in `centres`) nearest to `x`; the first on ties.
fn nearest(centres: &[f32], sub: usize, x: &[f32]) -> usize {
    let mut best = (f32::INFINITY, 0);
    for (c, centre) in centres.chunks_exact(sub).enumerate() {
        let d = distance2(centre, x);
        if d < best.0 {
            best = (d, c);
        }
    }
    best.1
}

/// Checks the shape of a quantiser: `subspaces` divides `dim`, 1 to 256 centres.
fn check_shape(dim: usize, subspaces: usize, centroids: usize) -> Result<(), CatalogError> {
    shape_problem(dim, subspaces, centroids).map_or(Ok(()), |m| Err(CatalogError::Invalid(m)))
}

/// What is wrong with codes of `subspaces` subspaces of `centroids` centres for `dim`-dimensional
/// vectors, if anything.
pub(crate) fn shape_problem(dim: usize, subspaces: usize, centroids: usize) -> Option<String> {
    if dim == 0 || subspaces == 0 || !dim.is_multiple_of(subspaces) {
        return Some(format!(
            "compact codes need a number of subspaces that divides the embedding size {dim}; {subspaces} does not"
        ));
    }
    if !(1..=MAX_CENTROIDS).contains(&centroids) {
        return Some(format!("compact codes have 1 to {MAX_CENTROIDS} centroids per subspace, not {centroids}"));
    }
    None
}

/// k-means on `points` (rows of `sub` values), `k` centres, seeded: the initial centres are `k`
/// distinct points drawn with `rng`; an emptied centre moves to the point farthest from its own.
fn kmeans(points: &[f32], sub: usize, k: usize, iterations: usize, rng: &mut Rng) -> Vec<f32> {
    let n = points.len() / sub;
    let mut order: Vec<usize> = (0..n).collect();
    for i in 0..k.min(n) {
        let j = i + (rng.next_u64() % (n - i) as u64) as usize;
        order.swap(i, j);
    }
    let mut centres: Vec<f32> = (0..k).flat_map(|c| points[order[c % n] * sub..][..sub].iter().copied()).collect();
    let mut assigned = vec![0usize; n];
    for _ in 0..iterations {
        for (p, a) in assigned.iter_mut().enumerate() {
            *a = nearest(&centres, sub, &points[p * sub..(p + 1) * sub]);
        }
        let mut sums = vec![0f64; k * sub];
        let mut counts = vec![0usize; k];
        for (p, &a) in assigned.iter().enumerate() {
            counts[a] += 1;
            sums[a * sub..(a + 1) * sub].iter_mut().zip(&points[p * sub..(p + 1) * sub]).for_each(|(s, x)| *s += *x as f64);
        }
        for c in 0..k {
            if counts[c] > 0 {
                for (x, s) in centres[c * sub..(c + 1) * sub].iter_mut().zip(&sums[c * sub..(c + 1) * sub]) {
                    *x = (s / counts[c] as f64) as f32;
                }
            }
        }
        for c in (0..k).filter(|&c| counts[c] == 0) {
            let far = (0..n)
                .map(|p| (distance2(&points[p * sub..(p + 1) * sub], &centres[assigned[p] * sub..(assigned[p] + 1) * sub]), p))
                .fold((-1.0f32, 0), |m, x| if x.0 > m.0 { x } else { m })
                .1;
            let point = points[far * sub..(far + 1) * sub].to_vec();
            centres[c * sub..(c + 1) * sub].copy_from_slice(&point);
            assigned[far] = c;
        }
    }
    centres
}

impl ProductQuantizer {
    /// Learns the centres from `vectors` (rows of `dim` values): a seeded sample of at most
    /// `params.sample` rows, then k-means in each subspace (subspaces on parallel threads; the
    /// result does not depend on how many).
    pub fn train(vectors: &[f32], dim: usize, params: TrainingParams) -> Result<Self, CatalogError> {
        check_shape(dim, params.subspaces, params.centroids)?;
        let n = vectors.len() / dim;
        if n == 0 {
            return Err(CatalogError::Invalid("compact codes cannot be learnt from an empty catalog".into()));
        }
        let mut rng = Rng::new(params.seed);
        let mut rows: Vec<usize> = (0..n).collect();
        let take = params.sample.clamp(1, n);
        for i in 0..take {
            let j = i + (rng.next_u64() % (n - i) as u64) as usize;
            rows.swap(i, j);
        }
        rows.truncate(take);
        rows.sort_unstable();
        let (m, k) = (params.subspaces, params.centroids);
        let sub = dim / m;
        let seeds: Vec<u64> = (0..m).map(|_| rng.next_u64()).collect();
        let done: Mutex<Vec<(usize, Vec<f32>)>> = Mutex::new(Vec::with_capacity(m));
        parallel::for_each_chunk(m, usize::MAX, |range| {
            for s in range {
                let points: Vec<f32> = rows.iter().flat_map(|&r| vectors[r * dim + s * sub..][..sub].iter().copied()).collect();
                let centres = kmeans(&points, sub, k, params.iterations, &mut Rng::new(seeds[s]));
                done.lock().expect("no thread panicked").push((s, centres));
            }
        });
        let mut done = done.into_inner().expect("no thread panicked");
        done.sort_by_key(|(s, _)| *s);
        let codebook = done.into_iter().flat_map(|(_, c)| c).collect();
        Ok(Self { dim, subspaces: m, centroids: k, codebook })
    }

    /// A quantiser from its codebook (`subspaces x centroids x dim / subspaces` values).
    pub fn from_codebook(dim: usize, subspaces: usize, centroids: usize, codebook: Vec<f32>) -> Result<Self, CatalogError> {
        check_shape(dim, subspaces, centroids)?;
        if codebook.len() != dim * centroids {
            return Err(CatalogError::Invalid(format!("a codebook of {subspaces} x {centroids} centres of {dim} dims in all holds {} values, not {}", dim * centroids, codebook.len())));
        }
        if !codebook.iter().all(|x| x.is_finite()) {
            return Err(CatalogError::Invalid("the compact codebook holds NaN or an infinite value: the file is damaged".into()));
        }
        Ok(Self { dim, subspaces, centroids, codebook })
    }

    /// The same quantiser with its centres rounded to f16 (as files store them).
    pub fn rounded_to_f16(mut self) -> Self {
        self.codebook.iter_mut().for_each(|x| *x = half::f16::from_f32(*x).to_f32());
        self
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn subspaces(&self) -> usize {
        self.subspaces
    }

    pub fn centroids(&self) -> usize {
        self.centroids
    }

    pub fn codebook(&self) -> &[f32] {
        &self.codebook
    }

    fn sub(&self) -> usize {
        self.dim / self.subspaces
    }

    /// The centres of subspace `s`, `sub` values each.
    fn centres(&self, s: usize) -> &[f32] {
        let len = self.centroids * self.sub();
        &self.codebook[s * len..(s + 1) * len]
    }

    /// The code of one vector: per subspace, its nearest centre.
    pub fn encode_one(&self, v: &[f32]) -> Vec<u8> {
        let sub = self.sub();
        (0..self.subspaces).map(|s| nearest(self.centres(s), sub, &v[s * sub..(s + 1) * sub]) as u8).collect()
    }

    /// The codes of rows of `dim` values, `subspaces` bytes each, in order (rows on parallel threads).
    pub fn encode(&self, vectors: &[f32]) -> Vec<u8> {
        let n = vectors.len() / self.dim;
        let parts: Mutex<Vec<(usize, Vec<u8>)>> = Mutex::new(Vec::new());
        parallel::for_each_chunk(n, n * self.dim * self.centroids, |range| {
            let start = range.start;
            let codes: Vec<u8> = range.flat_map(|r| self.encode_one(&vectors[r * self.dim..(r + 1) * self.dim])).collect();
            parts.lock().expect("no thread panicked").push((start, codes));
        });
        let mut parts = parts.into_inner().expect("no thread panicked");
        parts.sort_by_key(|(start, _)| *start);
        parts.into_iter().flat_map(|(_, c)| c).collect()
    }

    /// The vector a code stands for: its centres side by side.
    pub fn decode(&self, code: &[u8]) -> Vec<f32> {
        let sub = self.sub();
        code.iter().enumerate().flat_map(|(s, &c)| self.centres(s)[c as usize * sub..(c as usize + 1) * sub].iter().copied()).collect()
    }

    /// The query's table: `subspaces x centroids` entries, each the dot product of the query's
    /// part with a centre, times `weight`. `sum over s of table[s * centroids + code[s]]` is then
    /// `weight * dot(query, decode(code))` up to rounding.
    pub fn lookup_table(&self, query: &[f32], weight: f32) -> Vec<f32> {
        let sub = self.sub();
        (0..self.subspaces)
            .flat_map(|s| {
                let part = &query[s * sub..(s + 1) * sub];
                self.centres(s).chunks_exact(sub).map(move |c| weight * dot_in_order(part, c))
            })
            .collect()
    }

    /// Is every byte of `codes` a centre this quantiser has?
    pub fn codes_in_range(&self, codes: &[u8]) -> bool {
        self.centroids == MAX_CENTROIDS || codes.iter().all(|&c| (c as usize) < self.centroids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::compact::clustered::{Clustered, ClusteredSpec};

    fn images(c: &Clustered) -> Vec<f32> {
        c.values.chunks_exact(c.dim).step_by(2).flatten().copied().collect()
    }

    const PARAMS: TrainingParams = TrainingParams { subspaces: 16, centroids: 64, iterations: 8, sample: 1500, seed: 3 };

    #[test]
    fn codes_decode_close_to_the_vectors_and_adc_equals_the_decoded_dot_products() {
        let c = Clustered::generate(ClusteredSpec { items: 2000, dim: 128, clusters: 40, seed: 1 });
        let data = images(&c);
        let pq = ProductQuantizer::train(&data, 128, PARAMS).unwrap();
        let codes = pq.encode(&data);
        assert_eq!(codes.len(), 2000 * 16);
        // Relative squared error of the reconstruction, against a one-centre (mean) code: a
        // trained codebook must do much better than the mean.
        let mean: Vec<f32> = (0..128).map(|j| data.chunks_exact(128).map(|v| v[j]).sum::<f32>() / 2000.0).collect();
        let (mut err, mut base) = (0.0f64, 0.0f64);
        for (v, code) in data.chunks_exact(128).zip(codes.chunks_exact(16)) {
            err += distance2(v, &pq.decode(code)) as f64;
            base += distance2(v, &mean) as f64;
        }
        assert!(err < 0.55 * base, "PQ error {err} vs mean's {base}");
        assert!(err / 2000.0 < 0.3, "mean squared error per unit vector {}", err / 2000.0);
        let q = c.photo(5, &mut Rng::new(9));
        let table = pq.lookup_table(&q, 0.7);
        for code in codes.chunks_exact(16).take(200) {
            let adc: f32 = code.iter().enumerate().map(|(s, &k)| table[s * 64 + k as usize]).sum();
            let exact = 0.7 * dot_in_order(&q, &pq.decode(code));
            assert!((adc - exact).abs() < 1e-5, "{adc} vs {exact}");
        }
    }

    #[test]
    fn training_is_deterministic_and_shapes_are_checked() {
        let c = Clustered::generate(ClusteredSpec { items: 600, dim: 64, clusters: 10, seed: 2 });
        let data = images(&c);
        let p = TrainingParams { subspaces: 8, centroids: 32, sample: 500, ..PARAMS };
        let a = ProductQuantizer::train(&data, 64, p).unwrap();
        let b = ProductQuantizer::train(&data, 64, p).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.encode(&data), b.encode(&data));
        let other = ProductQuantizer::train(&data, 64, TrainingParams { seed: 4, ..p }).unwrap();
        assert_ne!(a.codebook(), other.codebook());
        assert!(ProductQuantizer::train(&data, 64, TrainingParams { subspaces: 7, ..p }).is_err());
        assert!(ProductQuantizer::train(&data, 64, TrainingParams { centroids: 257, ..p }).is_err());
        let mut bad = a.codebook().to_vec();
        bad[3] = f32::NAN;
        assert!(ProductQuantizer::from_codebook(64, 8, 32, bad).is_err());
        assert!(!a.codes_in_range(&[0, 32]));
    }
}
