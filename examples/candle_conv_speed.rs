//! Where candle's CPU time goes in FastViT-MCi0's shapes: a depthwise (grouped) convolution
//! against a dense one of the same output, and the exact GELU:
//! `RAYON_NUM_THREADS=1 cargo run --release --example candle_conv_speed`.

use std::time::Instant;

use candle_core::{Device, Tensor};

fn best_ms(mut f: impl FnMut() -> candle_core::Result<Tensor>) -> candle_core::Result<f64> {
    f()?;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(best)
}

fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    // (channels, side, kernel) of MCi0's stages at 256 px: RepMixer 3x3, ConvMlp 7x7.
    for (c, side, k) in [(64, 64, 3), (64, 64, 7), (256, 16, 7), (512, 8, 7)] {
        let x = Tensor::randn(0f32, 1., (1, c, side, side), &dev)?;
        let dw = Tensor::randn(0f32, 1., (c, 1, k, k), &dev)?;
        let dense = Tensor::randn(0f32, 1., (c, c, 1, 1), &dev)?;
        let depthwise = best_ms(|| x.conv2d(&dw, k / 2, 1, 1, c))?;
        let pointwise = best_ms(|| x.conv2d(&dense, 0, 1, 1, 1))?;
        let gelu = best_ms(|| x.gelu_erf())?;
        let flops_dw = (c * side * side * k * k * 2) as f64;
        let flops_pw = (c * c * side * side * 2) as f64;
        println!(
            "{c}ch {side}x{side}: depthwise {k}x{k} {depthwise:.2} ms ({:.2} GFLOP/s), dense 1x1 {pointwise:.2} ms ({:.1} GFLOP/s), gelu_erf {gelu:.2} ms",
            flops_dw / depthwise / 1e6,
            flops_pw / pointwise / 1e6
        );
    }
    Ok(())
}
