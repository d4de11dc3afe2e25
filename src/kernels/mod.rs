//! Numeric kernels of the vision encoder: packed matrix products and element-wise maths.

pub mod gemm;
pub mod math;
pub mod qgemm;
pub mod simd;
