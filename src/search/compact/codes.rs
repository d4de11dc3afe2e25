//! A catalog's compact codes: one product quantiser per vector kind (image, name), and per item
//! its image code then its name code, `subspaces` bytes each. Stored as one file
//! (`compact.bin`): the image codebook, the name codebook (little-endian f16, subspace after
//! subspace, centre after centre), then the codes, item after item in manifest order.

use half::f16;

use crate::error::CatalogError;
use crate::search::catalog::{Catalog, VectorKind};
use crate::search::compact::pq::{ProductQuantizer, TrainingParams};

/// The shape of a compact file: what the manifest records beside its sha256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactShape {
    pub items: usize,
    pub dim: usize,
    /// Per vector kind: bytes per code.
    pub subspaces: usize,
    pub centroids: usize,
}

impl CompactShape {
    /// Bytes of the file: two codebooks of f16 and two codes per item; `None` if unaddressable.
    pub fn file_size(&self) -> Option<usize> {
        let codebooks = self.dim.checked_mul(self.centroids)?.checked_mul(2 * 2)?;
        codebooks.checked_add(self.items.checked_mul(2 * self.subspaces)?)
    }

    /// Bytes of codes per item (both kinds).
    pub fn code_bytes(&self) -> usize {
        2 * self.subspaces
    }
}

/// The compact codes of a catalog's items.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactCodes {
    pub image: ProductQuantizer,
    pub text: ProductQuantizer,
    /// Per item: image code, then name code (`subspaces` bytes each).
    codes: Vec<u8>,
}

/// Every vector of `kind` from values in the catalog file's layout, as rows.
fn rows_of(values: &[f32], dim: usize, kind: VectorKind) -> Vec<f32> {
    values.chunks_exact(dim).skip(kind.index()).step_by(VectorKind::ALL.len()).flatten().copied().collect()
}

impl CompactCodes {
    /// Learns both quantisers from the vectors (the catalog file's layout, f32: de-quantise i8
    /// catalogs first) and encodes every item. Deterministic for a given seed.
    pub fn build(values: &[f32], dim: usize, params: TrainingParams) -> Result<Self, CatalogError> {
        let image_rows = rows_of(values, dim, VectorKind::Image);
        let text_rows = rows_of(values, dim, VectorKind::Name);
        // The file stores the centres as f16: the codes are chosen against those very centres.
        let image = ProductQuantizer::train(&image_rows, dim, params)?.rounded_to_f16();
        let text = ProductQuantizer::train(&text_rows, dim, TrainingParams { seed: params.seed.wrapping_add(1), ..params })?.rounded_to_f16();
        let (a, b) = (image.encode(&image_rows), text.encode(&text_rows));
        let m = params.subspaces;
        let codes = a.chunks_exact(m).zip(b.chunks_exact(m)).flat_map(|(x, y)| x.iter().chain(y).copied()).collect();
        Ok(Self { image, text, codes })
    }

    /// The codes of a catalog's stored vectors (de-quantised from i8: the vectors the exact
    /// re-ranking scores against).
    pub fn for_catalog(catalog: &Catalog, params: TrainingParams) -> Result<Self, CatalogError> {
        let values: Vec<f32> =
            (0..catalog.len()).flat_map(|i| VectorKind::ALL.map(|k| catalog.vector(i, k).into_owned())).flatten().collect();
        Self::build(&values, catalog.dim(), params)
    }

    pub fn shape(&self) -> CompactShape {
        CompactShape {
            items: self.len(),
            dim: self.image.dim(),
            subspaces: self.image.subspaces(),
            centroids: self.image.centroids(),
        }
    }

    pub fn len(&self) -> usize {
        self.codes.len() / (2 * self.image.subspaces())
    }

    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// Every item's codes: image code then name code, item after item.
    pub fn codes(&self) -> &[u8] {
        &self.codes
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.shape().file_size().unwrap_or(0));
        for q in [&self.image, &self.text] {
            q.codebook().iter().for_each(|&x| out.extend(f16::from_f32(x).to_le_bytes()));
        }
        out.extend_from_slice(&self.codes);
        out
    }

    /// Reads the file, refusing one of another size or with impossible values, in one line.
    pub fn from_bytes(shape: CompactShape, bytes: &[u8]) -> Result<Self, CatalogError> {
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
        let book = shape.dim * shape.centroids;
        let floats = |part: &[u8]| -> Vec<f32> { part.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect() };
        let image = ProductQuantizer::from_codebook(shape.dim, shape.subspaces, shape.centroids, floats(&bytes[..2 * book]))?;
        let text = ProductQuantizer::from_codebook(shape.dim, shape.subspaces, shape.centroids, floats(&bytes[2 * book..4 * book]))?;
        let codes = bytes[4 * book..].to_vec();
        if !image.codes_in_range(&codes) {
            return Err(CatalogError::Invalid(format!("the compact codes name centres beyond the {} each subspace has: the file is damaged", shape.centroids)));
        }
        Ok(Self { image, text, codes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::compact::clustered::{Clustered, ClusteredSpec};

    #[test]
    fn the_file_reads_back_and_damage_is_refused() {
        let c = Clustered::generate(ClusteredSpec { items: 300, dim: 32, clusters: 5, seed: 1 });
        let p = TrainingParams { subspaces: 4, centroids: 16, iterations: 4, sample: 300, seed: 1 };
        let codes = CompactCodes::build(&c.values, 32, p).unwrap();
        let bytes = codes.to_bytes();
        assert_eq!(bytes.len(), codes.shape().file_size().unwrap());
        assert_eq!(CompactCodes::from_bytes(codes.shape(), &bytes).unwrap(), codes);
        let e = CompactCodes::from_bytes(codes.shape(), &bytes[..bytes.len() - 1]).unwrap_err().to_string();
        assert!(e.contains("truncated") && !e.contains('\n'), "{e}");
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() = 200;
        assert!(CompactCodes::from_bytes(codes.shape(), &bad).unwrap_err().to_string().contains("damaged"));
        let mut nan = bytes;
        nan[0..2].copy_from_slice(&f16::NAN.to_le_bytes());
        assert!(CompactCodes::from_bytes(codes.shape(), &nan).unwrap_err().to_string().contains("NaN"));
    }
}
