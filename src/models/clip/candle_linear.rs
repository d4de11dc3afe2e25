//! A linear layer of OpenAI CLIP's image tower on candle, its weight held once: f32 (a float
//! bundle's, run by candle-nn's `Linear`), or an int8 bundle's int8 rows as candle's own
//! quantized tensor (GGML Q8_0: blocks of 32 int8 values with an f16 scale; every block of a
//! row takes the row's scale), run by candle's `QMatMul`, which quantises each block of 32
//! activations to int8 and sums the products in integers. A 4-bit weight arrives converted to
//! int8 rows ([`super::tower_tensors`]) and is held the same way.

use std::borrow::Cow;

use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{Device, Module, Result, Tensor};

/// Values in a Q8_0 block, and its bytes (an f16 scale, then the values).
const BLOCK: usize = 32;
const BLOCK_BYTES: usize = 2 + BLOCK;

/// A weight as loaded, before its layer is built.
pub enum Weight {
    /// f32 values in the stored shape.
    Float(Tensor),
    /// Q8_0 blocks, `rows x in_dim`.
    Quantised(QTensor),
}

impl Weight {
    /// int8 rows (`shape[0]` rows of the product of the other dimensions) and one scale per row:
    /// as Q8_0 blocks where each row is a whole number of blocks and every scale is a normal
    /// f16 (a subnormal one would lose its precision); otherwise dequantised to f32, the one case
    /// in which the int8 values are not what is held.
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
        let f16_scale = |s: f32| half::f16::from_f32(s);
        if in_dim % BLOCK != 0 || !scales.iter().all(|&s| f16_scale(s).is_normal()) {
            let dequantised = values
                .chunks_exact(in_dim)
                .zip(scales)
                .flat_map(|(row, &s)| row.iter().map(move |&q| q as f32 * s));
            return Ok(Weight::Float(
                Tensor::from_iter(dequantised, &Device::Cpu)?.reshape(shape)?,
            ));
        }
        let blocks = rows * in_dim / BLOCK;
        // u16 words give the blocks the 2-byte alignment of their f16 scale.
        let mut words = vec![0u16; blocks * BLOCK_BYTES / 2];
        // SAFETY: the same memory as bytes; u8 has no alignment or validity requirement.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 2)
        };
        let row_bytes = in_dim / BLOCK * BLOCK_BYTES;
        for ((row, &scale), out) in values
            .chunks_exact(in_dim)
            .zip(scales)
            .zip(bytes.chunks_exact_mut(row_bytes))
        {
            let d = f16_scale(scale).to_le_bytes();
            for (block, out) in row
                .chunks_exact(BLOCK)
                .zip(out.chunks_exact_mut(BLOCK_BYTES))
            {
                out[..2].copy_from_slice(&d);
                for (o, &q) in out[2..].iter_mut().zip(block) {
                    *o = q as u8;
                }
            }
        }
        let storage = QStorage::from_data(Cow::Borrowed(bytes), &Device::Cpu, GgmlDType::Q8_0)?;
        Ok(Weight::Quantised(QTensor::new(storage, (rows, in_dim))?))
    }

    /// Whether the int8 values are held (as Q8_0).
    pub fn is_quantised(&self) -> bool {
        matches!(self, Weight::Quantised(_))
    }
}

/// `x · Wᵀ + b` over the last dimension of `x`.
pub enum CandleLinear {
    Float(candle_nn::Linear),
    Q8_0 {
        weight: QMatMul,
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
                candle_nn::Linear::new(w.reshape((rows, ()))?, bias).into()
            }
            Weight::Quantised(q) => CandleLinear::Q8_0 {
                weight: QMatMul::from_qtensor(q)?,
                bias,
            },
        })
    }

    /// Whether it computes on int8 values.
    pub fn is_quantised(&self) -> bool {
        matches!(self, CandleLinear::Q8_0 { .. })
    }
}

impl From<candle_nn::Linear> for CandleLinear {
    fn from(linear: candle_nn::Linear) -> Self {
        CandleLinear::Float(linear)
    }
}

impl Module for CandleLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            CandleLinear::Float(linear) => linear.forward(x),
            CandleLinear::Q8_0 { weight, bias } => {
                let y = weight.forward(&x.contiguous()?)?;
                match bias {
                    Some(b) => y.broadcast_add(b),
                    None => Ok(y),
                }
            }
        }
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

    /// The Q8_0 blocks hold the int8 values themselves: dequantised, they are the values times
    /// the row's scale rounded to f16.
    #[test]
    fn int8_rows_become_q8_0_blocks_with_the_rows_scale() {
        let (rows, in_dim) = (5, 64);
        let (q, scales) = int8_rows(rows, in_dim);
        let Weight::Quantised(t) = Weight::from_int8(&q, &scales, &[rows, in_dim]).unwrap() else {
            panic!("not Q8_0")
        };
        assert_eq!(
            (t.dtype(), t.shape().dims()),
            (GgmlDType::Q8_0, &[rows, in_dim][..])
        );
        assert_eq!(
            t.storage_size_in_bytes(),
            rows * in_dim / BLOCK * BLOCK_BYTES
        );
        let got = t
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let f16_scales: Vec<f32> = scales
            .iter()
            .map(|&s| half::f16::from_f32(s).to_f32())
            .collect();
        assert_eq!(got, dequantised(&q, &f16_scales, in_dim));
    }

    /// The layer computes `x · Wᵀ + b` within the error of 8-bit activations, on 2-D and batched
    /// inputs and on a strided view; a width that is not whole blocks, or a scale f16 cannot
    /// hold, stays f32.
    #[test]
    fn a_q8_0_layer_computes_the_product_and_odd_weights_stay_f32() {
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
        let layer = CandleLinear::new(
            Weight::from_int8(&q, &scales, &[rows, in_dim]).unwrap(),
            Some(bias),
        )
        .unwrap();
        assert!(layer.is_quantised());
        let x = Tensor::from_vec(
            crate::kernels::test_values(2 * 7 * in_dim, 4),
            (2, 7, in_dim),
            &Device::Cpu,
        )
        .unwrap();
        for x in [x.clone(), x.get(1).unwrap(), x.transpose(0, 1).unwrap()] {
            let (got, want) = (layer.forward(&x).unwrap(), float.forward(&x).unwrap());
            assert_eq!(got.dims(), want.dims());
            let err = (&got - &want)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            let scale = want
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(err > 0.0 && err < 0.01 * scale, "{err} of {scale}");
        }
        let (q, scales) = int8_rows(4, 40);
        assert!(!Weight::from_int8(&q, &scales, &[4, 40])
            .unwrap()
            .is_quantised());
        let (q, mut scales) = int8_rows(4, 64);
        scales[2] = 1e-6;
        let Weight::Float(t) = Weight::from_int8(&q, &scales, &[4, 2, 32]).unwrap() else {
            panic!("quantised")
        };
        assert_eq!(t.dims(), [4, 2, 32]);
        assert_eq!(
            t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            dequantised(&q, &scales, 64)
        );
        assert!(Weight::from_int8(&q[1..], &scales, &[4, 64]).is_err());
    }
}
