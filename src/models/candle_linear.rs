//! A linear layer of the towers this crate builds from candle pieces (OpenAI CLIP's
//! [`crate::models::clip::candle_vision`], MobileCLIP-B's ViT-MCi
//! [`crate::models::mobileclip::vit_mci`], MobileCLIP's text tower), its weight held once and
//! packed for this crate's products: f32 panels for the packed GEMM ([`PackedLinear`], run as
//! [`FloatProduct`]), or an int8 bundle's int8 rows with their per-row scales ([`QuantLinear`],
//! 12-bit activations a row, exact integer sums, run as [`Int8Product`]). Each is a candle
//! operation the layer holds and applies: nothing is looked up while it runs, and candle's own
//! matmul is not involved. A 4-bit weight arrives converted to int8 rows and is held the same way.
//!
//! candle's own quantized tensors (GGML Q8_0 blocks through `QMatMul`) would hold the same values
//! in 34 bytes a block of 32, but in Chromium their products made ViT-B/32's int8 tower 677 ms a
//! photo on one thread, against 145 ms for this product and 331 ms for the f32 tower (side by
//! side, load average under 1, 2026-12-07).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Device, Layout, Module, Result, Shape, Tensor};

use crate::kernels::gemm::PackedLinear;
use crate::kernels::qgemm::{QuantLinear, MAX_IN_DIM};

/// A weight as loaded, before its layer is built.
pub enum Weight {
    /// f32 values in the stored shape.
    Float(Tensor),
    /// int8 rows packed for the integer product.
    Quantised(Arc<QuantLinear>),
}

impl Weight {
    /// int8 rows (`shape[0]` rows of the product of the other dimensions) and one scale per row,
    /// packed for the integer product; dequantised to f32 where a row is wider than that product
    /// takes ([`MAX_IN_DIM`]), the one case in which the int8 values are not what is held.
    pub fn from_int8(values: &[i8], scales: &[f32], shape: &[usize]) -> Result<Self> {
        let rows = shape.first().copied().unwrap_or(0);
        let in_dim = shape.iter().skip(1).product::<usize>();
        if rows == 0 || values.len() != rows * in_dim || scales.len() != rows {
            candle_core::bail!(
                "int8 weight {shape:?}: {} values, {} scales",
                values.len(),
                scales.len()
            )
        }
        if in_dim > MAX_IN_DIM {
            let dequantised = values
                .chunks_exact(in_dim)
                .zip(scales)
                .flat_map(|(row, &s)| row.iter().map(move |&q| q as f32 * s));
            return Ok(Weight::Float(
                Tensor::from_iter(dequantised, &Device::Cpu)?.reshape(shape)?,
            ));
        }
        let mut packed = QuantLinear::zeros(rows, in_dim, false);
        packed.set_rows(0, values, scales);
        Ok(Weight::Quantised(Arc::new(packed)))
    }

    /// Whether the int8 values are held.
    pub fn is_quantised(&self) -> bool {
        matches!(self, Weight::Quantised(_))
    }
}

/// `x · Wᵀ + b` over the last dimension of `x`.
pub enum CandleLinear {
    /// f32 weights packed for the GEMM, the bias inside.
    Float(FloatProduct),
    Int8 {
        product: Int8Product,
        bias: Option<Tensor>,
    },
}

impl CandleLinear {
    /// The layer of `weight` (any shape whose first dimension is the outputs: a convolution's
    /// kernel is flattened to its rows) and `bias` (one value per output).
    pub fn new(weight: Weight, bias: Option<Tensor>) -> Result<Self> {
        Ok(match weight {
            Weight::Float(w) => {
                let rows = w.dim(0)?;
                let w = w.reshape((rows, ()))?.to_dtype(candle_core::DType::F32)?.contiguous()?;
                let in_dim = w.dim(1)?;
                let bias = match bias {
                    Some(b) => Some(b.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?),
                    None => None,
                };
                if bias.as_ref().is_some_and(|b| b.len() != rows) {
                    candle_core::bail!("a bias of {} values for {rows} outputs", bias.map_or(0, |b| b.len()))
                }
                // Packed from the tensor's own values, not a copy of them.
                let (storage, layout) = w.storage_and_layout();
                let (candle_core::Storage::Cpu(CpuStorage::F32(all)), Some((start, end))) = (&*storage, layout.contiguous_offsets()) else {
                    candle_core::bail!("a linear weight on the CPU, contiguous f32")
                };
                CandleLinear::Float(Product(Arc::new(PackedLinear::new(&all[start..end], rows, in_dim, bias))))
            }
            Weight::Quantised(q) => CandleLinear::Int8 {
                product: Product(q),
                bias,
            },
        })
    }

    /// Whether it computes on int8 values.
    pub fn is_quantised(&self) -> bool {
        matches!(self, CandleLinear::Int8 { .. })
    }
}

impl Module for CandleLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            CandleLinear::Float(product) => x.contiguous()?.apply_op1_no_bwd(product),
            CandleLinear::Int8 { product, bias } => {
                let y = x.contiguous()?.apply_op1_no_bwd(product)?;
                match bias {
                    Some(b) => y.broadcast_add(b),
                    None => Ok(y),
                }
            }
        }
    }
}

/// A weight held packed that multiplies rows: `out[m x out_dim] = x[m x in_dim] · Wᵀ (+ b)`.
pub trait RowProduct: Send + Sync {
    /// The candle operation's name.
    const NAME: &'static str;
    fn in_dim(&self) -> usize;
    fn out_dim(&self) -> usize;
    fn forward(&self, x: &[f32], m: usize, out: &mut [f32]);
}

impl RowProduct for PackedLinear {
    const NAME: &'static str = "clipmatch-f32-linear";
    fn in_dim(&self) -> usize {
        PackedLinear::in_dim(self)
    }
    fn out_dim(&self) -> usize {
        PackedLinear::out_dim(self)
    }
    fn forward(&self, x: &[f32], m: usize, out: &mut [f32]) {
        PackedLinear::forward(self, x, m, out)
    }
}

impl RowProduct for QuantLinear {
    const NAME: &'static str = "clipmatch-int8-linear";
    fn in_dim(&self) -> usize {
        QuantLinear::in_dim(self)
    }
    fn out_dim(&self) -> usize {
        QuantLinear::out_dim(self)
    }
    fn forward(&self, x: &[f32], m: usize, out: &mut [f32]) {
        QuantLinear::forward(self, x, m, out)
    }
}

/// A [`RowProduct`] on each row of a contiguous f32 tensor's last dimension, as a candle
/// operation (forward only).
pub struct Product<W>(Arc<W>);

/// f32 weights packed for the GEMM ([`PackedLinear`]), the bias inside.
pub type FloatProduct = Product<PackedLinear>;
/// int8 rows packed for the integer product ([`QuantLinear`]).
pub type Int8Product = Product<QuantLinear>;

impl<W: RowProduct> CustomOp1 for Product<W> {
    fn name(&self) -> &'static str {
        W::NAME
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (in_dim, out_dim) = (self.0.in_dim(), self.0.out_dim());
        let x = crate::kernels::candle_ops::contiguous_f32(name, storage, layout)?;
        let mut dims = layout.shape().dims().to_vec();
        if dims.last() != Some(&in_dim) {
            candle_core::bail!("{name}: input {dims:?} for {in_dim} inputs")
        }
        *dims.last_mut().expect("checked") = out_dim;
        let rows = x.len() / in_dim;
        let mut out = vec![0.0f32; rows * out_dim];
        self.0.forward(x, rows, &mut out);
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int8_rows(rows: usize, in_dim: usize) -> (Vec<i8>, Vec<f32>) {
        let q = (0..rows * in_dim)
            .map(|i| ((i * 37 % 255) as i32 - 127) as i8)
            .collect();
        let scales = (0..rows).map(|r| 0.001 + r as f32 * 0.0003).collect();
        (q, scales)
    }

    fn dequantised(q: &[i8], scales: &[f32], in_dim: usize) -> Vec<f32> {
        q.iter()
            .enumerate()
            .map(|(i, &v)| v as f32 * scales[i / in_dim])
            .collect()
    }

    /// The layer is the integer product on the file's int8 values plus the bias, on 2-D and
    /// batched inputs and a strided view; within 8-bit rounding of the f32 product.
    #[test]
    fn an_int8_layer_is_the_integer_product_on_the_int8_values() {
        let (rows, in_dim) = (24, 96);
        let (q, scales) = int8_rows(rows, in_dim);
        let w = Tensor::from_vec(
            dequantised(&q, &scales, in_dim),
            (rows, in_dim),
            &Device::Cpu,
        )
        .unwrap();
        let bias =
            Tensor::from_vec(crate::kernels::test_values(rows, 3), rows, &Device::Cpu).unwrap();
        let float = candle_nn::Linear::new(w, Some(bias.clone()));
        // A convolution's kernel shape, flattened to its rows.
        let layer = CandleLinear::new(
            Weight::from_int8(&q, &scales, &[rows, 3, 32]).unwrap(),
            Some(bias.clone()),
        )
        .unwrap();
        assert!(layer.is_quantised());
        let mut reference = QuantLinear::zeros(rows, in_dim, false);
        reference.set_rows(0, &q, &scales);
        let b = bias.to_vec1::<f32>().unwrap();
        let x = Tensor::from_vec(
            crate::kernels::test_values(2 * 7 * in_dim, 4),
            (2, 7, in_dim),
            &Device::Cpu,
        )
        .unwrap();
        for x in [x.clone(), x.get(1).unwrap(), x.transpose(0, 1).unwrap()] {
            let (got, want) = (layer.forward(&x).unwrap(), float.forward(&x).unwrap());
            assert_eq!(got.dims(), want.dims());
            let x_rows = x
                .flatten_to(x.rank() - 2)
                .unwrap()
                .contiguous()
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let mut exact = vec![0.0f32; x_rows.len() / in_dim * rows];
            reference.forward(&x_rows, x_rows.len() / in_dim, &mut exact);
            let got_values = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for (i, (&g, &e)) in got_values.iter().zip(&exact).enumerate() {
                assert_eq!(g, e + b[i % rows], "value {i}");
            }
            let max_abs = |t: &Tensor| t.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            let (err, scale) = (max_abs(&(&got - &want).unwrap()), max_abs(&want));
            assert!(err > 0.0 && err < 0.01 * scale, "{err} of {scale}");
        }
    }

    /// Rows wider than the integer product takes stay f32; values that do not fit the shape
    /// are refused.
    #[test]
    fn too_wide_rows_stay_f32_and_mismatched_values_are_refused() {
        let in_dim = MAX_IN_DIM + 2;
        let (q, scales) = int8_rows(2, in_dim);
        let Weight::Float(t) = Weight::from_int8(&q, &scales, &[2, in_dim]).unwrap() else {
            panic!("quantised")
        };
        assert_eq!(
            t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            dequantised(&q, &scales, in_dim)
        );
        let (q, scales) = int8_rows(4, 64);
        assert!(Weight::from_int8(&q, &scales, &[4, 64])
            .unwrap()
            .is_quantised());
        assert!(Weight::from_int8(&q[1..], &scales, &[4, 64]).is_err());
        assert!(Weight::from_int8(&q, &scales[1..], &[4, 64]).is_err());
    }
}
