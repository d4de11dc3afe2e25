//! Dense convolution (one group), NCHW, as a matrix product on [`super::gemm`]'s packed
//! micro-kernel: `out[o][p] = Σ_r W[o][r] · cols[r][p]`, `r` running over (input channel, ky,
//! kx) and `p` over output pixels. For a 1x1 convolution with stride 1 and no padding (FastViT's
//! MLPs, most of its work) `cols` is the input plane itself; otherwise it is the input unrolled
//! (im2col) once per image, straight into the product's packed panels. The weights are the
//! kernel tensor as it is (`c_out x c_in·kh·kw`). Pixels are the product's columns, so its panels
//! split across threads.

use super::conv_window;
use super::gemm::{fill_panels_threaded, pack_panels_threaded, product_threaded, NR};

/// The shape of one dense convolution (dilation 1, the same stride and padding both ways).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenseConvShape {
    pub batch: usize,
    pub c_in: usize,
    pub c_out: usize,
    pub height: usize,
    pub width: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride: usize,
    pub padding: usize,
}

impl DenseConvShape {
    /// Whether the kernel fits the padded input, and every size and the stride is at least 1.
    pub fn is_valid(&self) -> bool {
        self.c_in >= 1
            && conv_window::fits(self.height, self.kernel_h, self.stride, self.padding)
            && conv_window::fits(self.width, self.kernel_w, self.stride, self.padding)
    }

    pub fn out_h(&self) -> usize {
        conv_window::outputs(self.height, self.kernel_h, self.stride, self.padding)
    }

    pub fn out_w(&self) -> usize {
        conv_window::outputs(self.width, self.kernel_w, self.stride, self.padding)
    }

    pub fn out_len(&self) -> usize {
        self.batch * self.c_out * self.out_h() * self.out_w()
    }

    /// Rows of the product: inputs per output value.
    fn depth(&self) -> usize {
        self.c_in * self.kernel_h * self.kernel_w
    }

    /// A 1x1 convolution with stride 1 and no padding: the input is the product's right side.
    fn is_pointwise(&self) -> bool {
        self.kernel_h == 1 && self.kernel_w == 1 && self.stride == 1 && self.padding == 0
    }
}

thread_local! {
    /// The packed panels and the padded output, reused from call to call.
    static CONV_SCRATCH: std::cell::Cell<ConvScratch> = std::cell::Cell::new(ConvScratch::default());
}

#[derive(Default)]
struct ConvScratch {
    panels: Vec<f32>,
    padded: Vec<f32>,
}

/// `out[b] = weights ⋆ input[b]`: `input` is `batch x c_in x height x width`, `weights`
/// `c_out x c_in x kernel_h x kernel_w`, `out` `batch x c_out x out_h x out_w`, all contiguous.
pub fn dense_conv2d(shape: &DenseConvShape, input: &[f32], weights: &[f32], out: &mut [f32]) {
    assert!(shape.is_valid(), "convolution shape {shape:?}");
    let plane = shape.c_in * shape.height * shape.width;
    let (depth, pixels) = (shape.depth(), shape.out_h() * shape.out_w());
    assert_eq!(input.len(), shape.batch * plane, "convolution input size");
    assert_eq!(weights.len(), shape.c_out * depth, "convolution weights size");
    assert_eq!(out.len(), shape.out_len(), "convolution output size");
    let padded_pixels = pixels.div_ceil(NR) * NR;
    let mut scratch = CONV_SCRATCH.with(|c| c.take());
    let ConvScratch { panels, padded } = &mut scratch;
    for (x, dst) in input.chunks_exact(plane).zip(out.chunks_exact_mut(shape.c_out * pixels)) {
        if shape.is_pointwise() {
            pack_panels_threaded(x, depth, pixels, pixels, panels);
        } else {
            pack_unrolled_threaded(shape, x, panels);
        }
        if padded_pixels == pixels {
            product_threaded(weights, shape.c_out, depth, depth, panels, None, dst, pixels);
        } else {
            // The product writes whole panels: rows of a width that is not a multiple of NR go
            // through padded rows.
            padded.resize(shape.c_out * padded_pixels, 0.0);
            product_threaded(weights, shape.c_out, depth, depth, panels, None, padded, padded_pixels);
            for (d, row) in dst.chunks_exact_mut(pixels).zip(padded.chunks_exact(padded_pixels)) {
                d.copy_from_slice(&row[..pixels]);
            }
        }
    }
    CONV_SCRATCH.with(|c| c.set(scratch));
}

/// Packs one image unrolled (im2col) straight into the product's panels, without the unrolled
/// matrix itself (for FastViT's stem, `27 x 128²` values: 1.8 MB less memory): row `(c, ky, kx)`
/// holds, for every output pixel, the input value that tap multiplies (zero in the padding).
fn pack_unrolled_threaded(shape: &DenseConvShape, x: &[f32], panels: &mut Vec<f32>) {
    let (ow, s, p) = (shape.out_w(), shape.stride, shape.padding);
    let (h, w, kh, kw) = (shape.height, shape.width, shape.kernel_h, shape.kernel_w);
    let pixels = shape.out_h() * ow;
    fill_panels_threaded(panels, shape.depth(), pixels, |panel_index, cols, panel| {
        let first = panel_index * NR;
        for (tap, dst) in panel.chunks_exact_mut(NR).enumerate() {
            let (c, ky, kx) = (tap / (kh * kw), tap / kw % kh, tap % kw);
            let plane = &x[c * h * w..][..h * w];
            for (j, d) in dst[..cols].iter_mut().enumerate() {
                let (oy, ox) = ((first + j) / ow, (first + j) % ow);
                let (iy, ix) = ((oy * s + ky).wrapping_sub(p), (ox * s + kx).wrapping_sub(p));
                *d = if iy < h && ix < w { plane[iy * w + ix] } else { 0.0 };
            }
            dst[cols..].fill(0.0);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_values as values;

    /// The definition, in f64.
    fn reference(shape: &DenseConvShape, input: &[f32], weights: &[f32]) -> Vec<f32> {
        let (oh, ow) = (shape.out_h(), shape.out_w());
        let (h, w, p) = (shape.height as isize, shape.width as isize, shape.padding as isize);
        let (kh, kw) = (shape.kernel_h, shape.kernel_w);
        let mut out = Vec::with_capacity(shape.out_len());
        for b in 0..shape.batch {
            for o in 0..shape.c_out {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut sum = 0.0f64;
                        for c in 0..shape.c_in {
                            let plane = &input[(b * shape.c_in + c) * (h * w) as usize..];
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy = (oy * shape.stride + ky) as isize - p;
                                    let ix = (ox * shape.stride + kx) as isize - p;
                                    if (0..h).contains(&iy) && (0..w).contains(&ix) {
                                        let wv = weights[((o * shape.c_in + c) * kh + ky) * kw + kx];
                                        sum += plane[(iy * w + ix) as usize] as f64 * wv as f64;
                                    }
                                }
                            }
                        }
                        out.push(sum as f32);
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_definition_on_odd_shapes() {
        let shape = |batch, c_in, c_out, hw: (usize, usize), k: (usize, usize), stride, padding| DenseConvShape {
            batch, c_in, c_out, height: hw.0, width: hw.1, kernel_h: k.0, kernel_w: k.1, stride, padding,
        };
        for s in [
            // FastViT's pointwise MLP and its stem (3 -> c, 3x3, stride 2); a ViT patch embedding.
            shape(2, 8, 24, (8, 8), (1, 1), 1, 0),
            shape(1, 3, 16, (15, 17), (3, 3), 2, 1),
            shape(2, 3, 8, (32, 32), (16, 16), 16, 0),
            // Pixels not a multiple of a panel, one output channel, a 1x1 with stride or padding,
            // enough work for several threads.
            shape(3, 5, 7, (5, 3), (1, 1), 1, 0),
            shape(1, 4, 1, (9, 9), (3, 3), 1, 1),
            shape(1, 6, 5, (10, 11), (1, 1), 2, 1),
            shape(2, 64, 96, (32, 32), (1, 1), 1, 0),
            shape(1, 2, 3, (4, 6), (2, 5), 3, 2),
        ] {
            let input = values(s.batch * s.c_in * s.height * s.width, 11);
            let weights = values(s.c_out * s.depth(), 12);
            let mut out = vec![f32::NAN; s.out_len()];
            dense_conv2d(&s, &input, &weights, &mut out);
            let want = reference(&s, &input, &weights);
            for (i, (got, want)) in out.iter().zip(&want).enumerate() {
                assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "{s:?} [{i}]: {got} vs {want}");
            }
        }
    }
}
