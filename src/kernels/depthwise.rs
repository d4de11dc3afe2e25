//! Depthwise convolution, NCHW: a grouped convolution with one input channel per group, each
//! group giving `multiplier` output channels (FastViT's RepMixer 3x3, ConvMlp 7x7, positional
//! 7x7, and its stride-2 patch embeddings and final 3x3 with two outputs per channel).
//!
//! Each input plane is copied once, zero-padded, into a scratch plane whose rows are split into
//! `stride` phases (phase `f` holds padded columns `f, f + stride, ...`), so the inputs of `LANES`
//! neighbouring outputs are `LANES` adjacent values for any stride. Outputs are then computed
//! `BLOCK` vectors at a time (the vectors of one row, or of several rows of a narrow plane): one
//! broadcast weight per tap, one load and one multiply-add per vector, and `BLOCK` independent
//! sums in registers.

use super::conv_window;
use super::gemm::Kernel;
use super::simd::F32Simd;
use crate::parallel::DisjointWrites;

/// The shape of one depthwise convolution (dilation 1, the same stride and padding both ways).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepthwiseShape {
    pub batch: usize,
    /// Input channels (= groups).
    pub channels: usize,
    /// Output channels per input channel.
    pub multiplier: usize,
    pub height: usize,
    pub width: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride: usize,
    pub padding: usize,
}

impl DepthwiseShape {
    /// Whether the kernel fits the padded input and the stride is at least 1.
    pub fn is_valid(&self) -> bool {
        conv_window::fits(self.height, self.kernel_h, self.stride, self.padding)
            && conv_window::fits(self.width, self.kernel_w, self.stride, self.padding)
    }

    pub fn out_h(&self) -> usize {
        conv_window::outputs(self.height, self.kernel_h, self.stride, self.padding)
    }

    pub fn out_w(&self) -> usize {
        conv_window::outputs(self.width, self.kernel_w, self.stride, self.padding)
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.channels * self.multiplier
    }

    pub fn out_len(&self) -> usize {
        self.batch * self.out_channels() * self.out_h() * self.out_w()
    }

    /// Multiply-adds of the whole convolution.
    fn work(&self) -> usize {
        self.out_len() * self.kernel_h * self.kernel_w
    }
}

/// `out[b][c * multiplier + j] = input[b][c] ⋆ weights[c * multiplier + j]`: `input` is
/// `batch x channels x height x width`, `weights` `out_channels x kernel_h x kernel_w`, `out`
/// `batch x out_channels x out_h x out_w`, all contiguous. Planes are split across threads.
pub fn depthwise_conv2d(shape: &DepthwiseShape, input: &[f32], weights: &[f32], out: &mut [f32]) {
    assert!(shape.is_valid(), "depthwise convolution shape {shape:?}");
    let plane = shape.height * shape.width;
    assert_eq!(input.len(), shape.batch * shape.channels * plane, "depthwise input size");
    assert_eq!(weights.len(), shape.out_channels() * shape.kernel_h * shape.kernel_w, "depthwise weights size");
    assert_eq!(out.len(), shape.out_len(), "depthwise output size");
    let kernel = Kernel::detect();
    let out_plane = shape.out_h() * shape.out_w();
    let out = DisjointWrites::new(out);
    crate::parallel::for_each_chunk(shape.batch * shape.channels, shape.work(), |planes| {
        PLANE_SCRATCH.with(|cell| {
            let mut scratch = cell.take();
            for p in planes {
                let c = p % shape.channels;
                let first_out = p * shape.multiplier;
                let taps = &weights[c * shape.multiplier * shape.kernel_h * shape.kernel_w..]
                    [..shape.multiplier * shape.kernel_h * shape.kernel_w];
                // SAFETY: plane `p` alone writes output channels `first_out..first_out + multiplier`
                // of its image, which are `out_plane` values each, inside `out` (sizes asserted).
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(out.at(first_out * out_plane), shape.multiplier * out_plane)
                };
                convolve_plane(kernel, shape, &input[p * plane..][..plane], taps, dst, &mut scratch);
            }
            cell.set(scratch);
        })
    });
}

thread_local! {
    /// The padded plane and the padded output rows, reused from call to call.
    static PLANE_SCRATCH: std::cell::Cell<PlaneScratch> = std::cell::Cell::new(PlaneScratch::default());
}

#[derive(Default)]
struct PlaneScratch {
    padded: Vec<f32>,
    rows: Vec<f32>,
    offsets: Vec<usize>,
}

/// Vectors of outputs computed together (independent sums in registers).
const BLOCK: usize = 8;

/// Where the padded, phase-split plane puts things: `row_len` values a padded row (its `stride`
/// phases of `phase_len` each), and output vectors `out_w_padded / LANES` a row.
struct Geometry {
    phase_len: usize,
    row_len: usize,
    out_w_padded: usize,
}

impl Geometry {
    fn new(shape: &DepthwiseShape, lanes: usize) -> Self {
        let s = shape.stride;
        let out_w_padded = shape.out_w().div_ceil(lanes) * lanes;
        let padded_w = shape.width + 2 * shape.padding;
        // Long enough for the last vector's last tap, and for every padded column.
        let phase_len = (out_w_padded + (shape.kernel_w - 1) / s).max(padded_w.div_ceil(s));
        Self { phase_len, row_len: s * phase_len, out_w_padded }
    }

    /// Offset of tap (`ky`, `kx`) from the first input of an output vector.
    fn tap(&self, shape: &DepthwiseShape, ky: usize, kx: usize) -> usize {
        ky * self.row_len + (kx % shape.stride) * self.phase_len + kx / shape.stride
    }
}

fn convolve_plane(
    kernel: Kernel,
    shape: &DepthwiseShape,
    input: &[f32],
    taps: &[f32],
    out: &mut [f32],
    scratch: &mut PlaneScratch,
) {
    match kernel {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Avx2` exists only where AVX2 and FMA were detected.
        Kernel::Avx2(s) => unsafe { convolve_plane_avx2(s, shape, input, taps, out, scratch) },
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Kernel::Simd128 => convolve_plane_with(super::simd::Simd128, shape, input, taps, out, scratch),
        Kernel::Portable => convolve_plane_with(super::simd::Portable, shape, input, taps, out, scratch),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn convolve_plane_avx2(
    s: super::simd::Avx2,
    shape: &DepthwiseShape,
    input: &[f32],
    taps: &[f32],
    out: &mut [f32],
    scratch: &mut PlaneScratch,
) {
    convolve_plane_with(s, shape, input, taps, out, scratch)
}

/// One input plane into its `multiplier` output planes.
#[inline(always)]
fn convolve_plane_with<S: F32Simd>(
    s: S,
    shape: &DepthwiseShape,
    input: &[f32],
    taps: &[f32],
    out: &mut [f32],
    scratch: &mut PlaneScratch,
) {
    let g = Geometry::new(shape, S::LANES);
    let (kh, kw, stride) = (shape.kernel_h, shape.kernel_w, shape.stride);
    let (out_h, out_w) = (shape.out_h(), shape.out_w());
    let PlaneScratch { padded, rows, offsets } = scratch;
    fill_padded(shape, &g, input, padded);
    offsets.clear();
    offsets.extend((0..kh).flat_map(|ky| (0..kw).map(move |kx| (ky, kx))).map(|(ky, kx)| g.tap(shape, ky, kx)));
    // Outputs go straight to `out` when rows are whole vectors, else through padded rows.
    let direct = out_w == g.out_w_padded;
    let vectors_per_row = g.out_w_padded / S::LANES;
    let vectors = out_h * vectors_per_row;
    if !direct {
        rows.resize(out_h * g.out_w_padded, 0.0);
    }
    for (j, dst) in out.chunks_exact_mut(out_h * out_w).enumerate() {
        let w = &taps[j * kh * kw..][..kh * kw];
        let target: &mut [f32] = if direct { dst } else { rows };
        let mut v = 0;
        while v < vectors {
            let n = BLOCK.min(vectors - v);
            let mut src = [0usize; BLOCK];
            let mut at = [0usize; BLOCK];
            for i in 0..n {
                let (oy, ox) = ((v + i) / vectors_per_row, (v + i) % vectors_per_row * S::LANES);
                src[i] = oy * stride * g.row_len + ox;
                at[i] = oy * g.out_w_padded + ox;
            }
            // SAFETY: every load is inside `padded` (Geometry sizes each phase for the last
            // vector's last tap) and every store inside `target` (whole padded rows).
            unsafe {
                match n {
                    BLOCK => block::<S, BLOCK>(s, padded, &src, offsets, w, target, &at),
                    _ => {
                        for i in 0..n {
                            block::<S, 1>(s, padded, &src[i..], offsets, w, target, &at[i..]);
                        }
                    }
                }
            }
            v += n;
        }
        if !direct {
            for (d, r) in dst.chunks_exact_mut(out_w).zip(rows.chunks_exact(g.out_w_padded)) {
                d.copy_from_slice(&r[..out_w]);
            }
        }
    }
}

/// `N` output vectors: `out[at[i]..] = Σ_t w[t] · padded[src[i] + offsets[t]..]`.
///
/// # Safety
/// Every `src[i] + offsets[t] + LANES` is at most `padded.len()`, every `at[i] + LANES` at most
/// `out.len()`.
#[inline(always)]
unsafe fn block<S: F32Simd, const N: usize>(
    s: S,
    padded: &[f32],
    src: &[usize],
    offsets: &[usize],
    w: &[f32],
    out: &mut [f32],
    at: &[usize],
) {
    let base = padded.as_ptr();
    let mut acc = [s.zero(); N];
    for (&off, &wt) in offsets.iter().zip(w) {
        let wv = s.splat(wt);
        for i in 0..N {
            acc[i] = s.mul_add(wv, s.load(base.add(src[i] + off)), acc[i]);
        }
    }
    for i in 0..N {
        s.store(out.as_mut_ptr().add(at[i]), acc[i]);
    }
}

/// Copies `input` (one `height x width` plane) into `padded`: `height + 2 * padding` rows of
/// [`Geometry::row_len`], zero around the plane, each row's padded column `x` at phase
/// `x % stride`, index `x / stride`.
fn fill_padded(shape: &DepthwiseShape, g: &Geometry, input: &[f32], padded: &mut Vec<f32>) {
    let (p, stride) = (shape.padding, shape.stride);
    padded.clear();
    padded.resize((shape.height + 2 * p) * g.row_len, 0.0);
    for (y, row) in input.chunks_exact(shape.width).enumerate() {
        let dst = &mut padded[(y + p) * g.row_len..][..g.row_len];
        if stride == 1 {
            dst[p..p + shape.width].copy_from_slice(row);
        } else {
            for (x, &v) in row.iter().enumerate() {
                let px = x + p;
                dst[(px % stride) * g.phase_len + px / stride] = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_values as values;

    /// The definition, in f64.
    fn reference(shape: &DepthwiseShape, input: &[f32], weights: &[f32]) -> Vec<f32> {
        let (oh, ow) = (shape.out_h(), shape.out_w());
        let (h, w, p) = (shape.height as isize, shape.width as isize, shape.padding as isize);
        let mut out = Vec::with_capacity(shape.out_len());
        for b in 0..shape.batch {
            for oc in 0..shape.out_channels() {
                let c = oc / shape.multiplier;
                let plane = &input[(b * shape.channels + c) * (h * w) as usize..];
                let k = &weights[oc * shape.kernel_h * shape.kernel_w..];
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut sum = 0.0f64;
                        for ky in 0..shape.kernel_h {
                            for kx in 0..shape.kernel_w {
                                let iy = (oy * shape.stride + ky) as isize - p;
                                let ix = (ox * shape.stride + kx) as isize - p;
                                if (0..h).contains(&iy) && (0..w).contains(&ix) {
                                    sum += plane[(iy * w + ix) as usize] as f64
                                        * k[ky * shape.kernel_w + kx] as f64;
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

    fn check(shape: DepthwiseShape, kernel: Kernel) {
        let input = values(shape.batch * shape.channels * shape.height * shape.width, 7);
        let weights = values(shape.out_channels() * shape.kernel_h * shape.kernel_w, 8);
        let mut out = vec![f32::NAN; shape.out_len()];
        let mut scratch = PlaneScratch::default();
        let (plane, out_plane) = (shape.height * shape.width, shape.out_h() * shape.out_w());
        let per_kernel = shape.multiplier * shape.kernel_h * shape.kernel_w;
        for (p, dst) in out.chunks_exact_mut(shape.multiplier * out_plane).enumerate() {
            let c = p % shape.channels;
            let taps = &weights[c * per_kernel..][..per_kernel];
            convolve_plane(kernel, &shape, &input[p * plane..][..plane], taps, dst, &mut scratch);
        }
        let want = reference(&shape, &input, &weights);
        for (i, (got, want)) in out.iter().zip(&want).enumerate() {
            assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()), "{shape:?} [{i}]: {got} vs {want}");
        }
        // The threaded entry point computes the same.
        let mut again = vec![f32::NAN; shape.out_len()];
        depthwise_conv2d(&shape, &input, &weights, &mut again);
        if matches!(kernel, Kernel::Portable) {
            return;
        }
        assert_eq!(out, again, "{shape:?}: depthwise_conv2d differs from its planes");
    }

    fn shape(batch: usize, channels: usize, multiplier: usize, hw: (usize, usize), k: (usize, usize), stride: usize, padding: usize) -> DepthwiseShape {
        DepthwiseShape { batch, channels, multiplier, height: hw.0, width: hw.1, kernel_h: k.0, kernel_w: k.1, stride, padding }
    }

    #[test]
    fn matches_the_definition_on_odd_shapes() {
        let shapes = [
            // FastViT's: RepMixer 3x3, ConvMlp 7x7, stride-2 patch embedding with two outputs a channel.
            shape(2, 3, 1, (16, 16), (3, 3), 1, 1),
            shape(1, 2, 1, (8, 8), (7, 7), 1, 3),
            shape(1, 3, 2, (16, 16), (7, 7), 2, 3),
            shape(1, 3, 2, (16, 16), (3, 3), 2, 1),
            // Odd sides, rows that are not whole vectors, narrow planes, no padding, stride 3,
            // a kernel as large as the padded input, non-square kernels.
            shape(2, 5, 3, (13, 11), (3, 3), 1, 1),
            shape(1, 4, 1, (5, 3), (7, 7), 1, 3),
            shape(1, 2, 2, (9, 10), (3, 3), 1, 0),
            shape(1, 3, 1, (17, 23), (5, 5), 3, 2),
            shape(1, 1, 1, (1, 1), (3, 3), 1, 1),
            shape(3, 2, 1, (6, 35), (1, 5), 2, 0),
            shape(1, 2, 4, (4, 7), (4, 2), 1, 1),
        ];
        for kernel in [Kernel::detect(), Kernel::Portable] {
            for s in shapes {
                check(s, kernel);
            }
        }
    }

    #[test]
    fn many_planes_split_across_threads_match_one_by_one() {
        // Enough work for several threads (natively): the same as the single-thread planes.
        check(shape(2, 64, 1, (32, 32), (7, 7), 1, 3), Kernel::detect());
    }
}
