//! A catalog's compact codes: ONE vector per item, its two vectors fused with the catalog's
//! ranking weights (`w_text * name + w_image * image`; a query's fused score is its dot product
//! with it, so every byte goes to what the ranking uses), coded by product quantisation in one
//! or two stages: a first code, then a code of what the first leaves (the residual). Stored as
//! one file (`compact.bin`): each stage's codebook (little-endian f16, subspace after subspace,
//! centre after centre), then per item its codes (first stage, then residual) in manifest order.

use half::f16;

use crate::error::CatalogError;
use crate::search::catalog::{Catalog, VectorKind};
use crate::search::compact::pq::{ProductQuantizer, TrainingParams};
use crate::search::rank::FusionWeights;

/// The shape of a compact file: what the manifest records beside its sha256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactShape {
    pub items: usize,
    pub dim: usize,
    /// Bytes of the first code (one per subspace).
    pub subspaces: usize,
    /// Bytes of the residual's code; 0: no second stage.
    pub residual_subspaces: usize,
    /// Centres per subspace, in both stages.
    pub centroids: usize,
}

impl CompactShape {
    /// Subspaces of each stage, in order.
    pub fn stages(&self) -> Vec<usize> {
        [self.subspaces, self.residual_subspaces].into_iter().filter(|&s| s > 0).collect()
    }

    /// Bytes of the file: a codebook of f16 per stage and the codes; `None` if unaddressable.
    pub fn file_size(&self) -> Option<usize> {
        let codebooks = self.dim.checked_mul(self.centroids)?.checked_mul(2 * self.stages().len())?;
        codebooks.checked_add(self.items.checked_mul(self.code_bytes())?)
    }

    /// Bytes of codes per item (both stages).
    pub fn code_bytes(&self) -> usize {
        self.subspaces + self.residual_subspaces
    }
}

/// The compact codes of a catalog's items.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactCodes {
    /// The weights the item vectors were fused with: the codes rank with these only.
    pub weights: FusionWeights,
    /// The first stage's quantiser, then the residual's (if any).
    pub stages: Vec<ProductQuantizer>,
    /// Per item: its code of each stage, `code_bytes` in all.
    codes: Vec<u8>,
}

/// Every item's fused vector `w_text * name + w_image * image`, from values in the catalog
/// file's layout (per item: image vector, then name vector).
pub fn fused_rows(values: &[f32], dim: usize, weights: FusionWeights) -> Vec<f32> {
    values
        .chunks_exact(VectorKind::ALL.len() * dim)
        .flat_map(|pair| {
            let (image, name) = pair.split_at(dim);
            image.iter().zip(name).map(|(v, t)| weights.text * t + weights.image * v)
        })
        .collect()
}

impl CompactCodes {
    /// Learns the quantisers from the items' fused vectors (from values in the catalog file's
    /// layout, f32: de-quantise i8 catalogs first) and encodes every item: the first stage
    /// with `params.subspaces` bytes, the residual with `residual_subspaces` (0: none).
    /// Deterministic for a given seed.
    pub fn build(values: &[f32], dim: usize, weights: FusionWeights, params: TrainingParams, residual_subspaces: usize) -> Result<Self, CatalogError> {
        if !(weights.text.is_finite() && weights.image.is_finite()) {
            return Err(CatalogError::Invalid("compact codes need finite ranking weights".into()));
        }
        if params.subspaces == 0 {
            return Err(CatalogError::Invalid("compact codes need a first code of at least one byte".into()));
        }
        let mut rows = fused_rows(values, dim, weights);
        let n = rows.len() / dim;
        let mut stages = Vec::new();
        let mut per_stage: Vec<Vec<u8>> = Vec::new();
        for (s, subspaces) in [params.subspaces, residual_subspaces].into_iter().enumerate().filter(|(_, m)| *m > 0) {
            let p = TrainingParams { subspaces, seed: params.seed.wrapping_add(s as u64), ..params };
            // The file stores the centres as f16: the codes are chosen against those very centres.
            let q = ProductQuantizer::train(&rows, dim, p)?.rounded_to_f16();
            let codes = q.encode(&rows);
            // What this stage leaves is what the next one codes.
            for (row, code) in rows.chunks_exact_mut(dim).zip(codes.chunks_exact(subspaces)) {
                row.iter_mut().zip(q.decode(code)).for_each(|(x, c)| *x -= c);
            }
            stages.push(q);
            per_stage.push(codes);
        }
        let codes = (0..n)
            .flat_map(|i| per_stage.iter().zip(&stages).flat_map(move |(c, q)| c[i * q.subspaces()..(i + 1) * q.subspaces()].iter().copied()))
            .collect();
        Ok(Self { weights, stages, codes })
    }

    /// The codes of a catalog's stored vectors (de-quantised from i8: the vectors the exact
    /// ranking scores against), fused with the catalog's ranking weights.
    pub fn for_catalog(catalog: &Catalog, params: TrainingParams, residual_subspaces: usize) -> Result<Self, CatalogError> {
        let values: Vec<f32> =
            (0..catalog.len()).flat_map(|i| VectorKind::ALL.map(|k| catalog.vector(i, k).into_owned())).flatten().collect();
        let r = &catalog.manifest.ranking;
        let weights = FusionWeights { text: r.text_weight, image: r.image_weight };
        Self::build(&values, catalog.dim(), weights, params, residual_subspaces)
    }

    pub fn shape(&self) -> CompactShape {
        let first = &self.stages[0];
        CompactShape {
            items: self.len(),
            dim: first.dim(),
            subspaces: first.subspaces(),
            residual_subspaces: self.stages.get(1).map_or(0, |q| q.subspaces()),
            centroids: first.centroids(),
        }
    }

    /// Bytes of codes per item (all stages).
    pub fn code_bytes(&self) -> usize {
        self.stages.iter().map(|q| q.subspaces()).sum()
    }

    pub fn len(&self) -> usize {
        self.codes.len() / self.code_bytes()
    }

    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// Every item's codes (each stage's in order), item after item.
    pub fn codes(&self) -> &[u8] {
        &self.codes
    }

    /// The fused vector item `i`'s codes stand for: the sum of each stage's decoded code.
    pub fn decode(&self, i: usize) -> Vec<f32> {
        let mut code = &self.codes[i * self.code_bytes()..(i + 1) * self.code_bytes()];
        let mut out = vec![0.0f32; self.stages[0].dim()];
        for q in &self.stages {
            let (mine, rest) = code.split_at(q.subspaces());
            out.iter_mut().zip(q.decode(mine)).for_each(|(o, x)| *o += x);
            code = rest;
        }
        out
    }

    /// The query's table for a first pass: each stage's table side by side, `code_bytes x
    /// centroids` entries in the order of an item's code bytes; an item's score (its decoded
    /// fused vector's dot product with the query) is the sum of the entries its bytes pick.
    pub fn lookup_table(&self, query: &[f32]) -> Vec<f32> {
        self.stages.iter().flat_map(|q| q.lookup_table(query, 1.0)).collect()
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.shape().file_size().unwrap_or(0));
        for q in &self.stages {
            q.codebook().iter().for_each(|&x| out.extend(f16::from_f32(x).to_le_bytes()));
        }
        out.extend_from_slice(&self.codes);
        out
    }

    /// Reads the file, refusing one of another size or with impossible values, in one line.
    pub fn from_bytes(shape: CompactShape, weights: FusionWeights, bytes: &[u8]) -> Result<Self, CatalogError> {
        if shape.subspaces == 0 {
            return Err(CatalogError::Invalid("compact codes need a first code of at least one byte".into()));
        }
        let expected = shape.file_size().ok_or_else(|| CatalogError::Invalid("the compact codes' shape is more than this machine can address".into()))?;
        if bytes.len() != expected {
            return Err(CatalogError::Invalid(format!(
                "the compact codes file is {} bytes, expected {expected} ({} items x {} bytes + codebooks): {}",
                bytes.len(),
                shape.items,
                shape.code_bytes(),
                if bytes.len() < expected { "it is truncated" } else { "it belongs to another catalog" }
            )));
        }
        let book = 2 * shape.dim * shape.centroids;
        let floats = |part: &[u8]| -> Vec<f32> { part.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect() };
        let stages = shape
            .stages()
            .into_iter()
            .enumerate()
            .map(|(s, m)| ProductQuantizer::from_codebook(shape.dim, m, shape.centroids, floats(&bytes[s * book..(s + 1) * book])))
            .collect::<Result<Vec<_>, _>>()?;
        let codes = bytes[stages.len() * book..].to_vec();
        if !stages[0].codes_in_range(&codes) {
            return Err(CatalogError::Invalid(format!("the compact codes name centres beyond the {} each subspace has: the file is damaged", shape.centroids)));
        }
        Ok(Self { weights, stages, codes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::math::dot_in_order;
    use crate::search::compact::clustered::{Clustered, ClusteredSpec};

    const WEIGHTS: FusionWeights = FusionWeights { text: 1.5, image: 0.5 };

    #[test]
    fn the_file_reads_back_and_damage_is_refused() {
        let c = Clustered::generate(ClusteredSpec { items: 300, dim: 32, clusters: 5, seed: 1 });
        let p = TrainingParams { subspaces: 4, centroids: 16, iterations: 4, sample: 300, seed: 1 };
        let codes = CompactCodes::build(&c.values, 32, WEIGHTS, p, 2).unwrap();
        assert_eq!(codes.code_bytes(), 6);
        assert!(CompactCodes::build(&c.values, 32, WEIGHTS, TrainingParams { subspaces: 0, ..p }, 2).is_err());
        let bytes = codes.to_bytes();
        assert_eq!(bytes.len(), codes.shape().file_size().unwrap());
        assert_eq!(CompactCodes::from_bytes(codes.shape(), WEIGHTS, &bytes).unwrap(), codes);
        let e = CompactCodes::from_bytes(codes.shape(), WEIGHTS, &bytes[..bytes.len() - 1]).unwrap_err().to_string();
        assert!(e.contains("truncated") && !e.contains('\n'), "{e}");
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() = 200;
        assert!(CompactCodes::from_bytes(codes.shape(), WEIGHTS, &bad).unwrap_err().to_string().contains("damaged"));
        let mut nan = bytes;
        nan[0..2].copy_from_slice(&f16::NAN.to_le_bytes());
        assert!(CompactCodes::from_bytes(codes.shape(), WEIGHTS, &nan).unwrap_err().to_string().contains("NaN"));
    }

    #[test]
    fn the_residual_stage_brings_the_codes_closer_to_the_fused_vectors_and_the_table_scores_them() {
        let c = Clustered::generate(ClusteredSpec { items: 1500, dim: 64, clusters: 20, seed: 2 });
        let p = TrainingParams { subspaces: 8, centroids: 64, iterations: 6, sample: 1500, seed: 3 };
        let fused = fused_rows(&c.values, 64, WEIGHTS);
        let error = |codes: &CompactCodes| -> f32 {
            (0..1500).map(|i| fused[i * 64..(i + 1) * 64].iter().zip(codes.decode(i)).map(|(a, b)| (a - b) * (a - b)).sum::<f32>()).sum()
        };
        let one = CompactCodes::build(&c.values, 64, WEIGHTS, p, 0).unwrap();
        let two = CompactCodes::build(&c.values, 64, WEIGHTS, p, 8).unwrap();
        assert_eq!((one.stages.len(), two.stages.len()), (1, 2));
        assert!(error(&two) < 0.8 * error(&one), "{} vs {}", error(&two), error(&one));
        let q = c.photo(7, &mut crate::search::synthetic::Rng::new(4));
        let table = two.lookup_table(&q);
        for i in 0..50 {
            let code = &two.codes()[i * 16..(i + 1) * 16];
            let adc: f32 = code.iter().enumerate().map(|(j, &k)| table[j * 64 + k as usize]).sum();
            assert!((adc - dot_in_order(&q, &two.decode(i))).abs() < 1e-4);
        }
    }
}
