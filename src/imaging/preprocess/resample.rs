//! Pillow's separable antialiased resize (bicubic or bilinear) as `fast_image_resize` computes it
//! (horizontal pass, then vertical, each rounded to 8 bits), computing only a rectangle of the output: the
//! part a centre crop keeps. A 1 x 16384 photo resized to a shortest edge of 224 is 224 x 3,670,016
//! pixels in full; its kept 224 x 224 cost the same as any photo's.
//!
//! Pillow itself turns the weights into i32 with 22 fractional bits, the library (like
//! Pillow-SIMD) into i16 with as many as the call's largest weight allows, so the two differ by a
//! level on a few pixels. [`Quantisation`] chooses: the library's (the CLIP pipeline, unchanged)
//! or Pillow's (open_clip's; then every weight is applied here, no library call).
//!
//! Each output pixel's weights depend only on its position, with one exception: the library turns
//! its f64 weights into i16 with a precision chosen from the largest weight of the whole call. So
//! each pass first works out the i16 weights the full resize would use (a few numbers per output
//! pixel); when a library call on the kept part's source box yields exactly those weights, that
//! call (SIMD) does the work, otherwise the weights are applied here in the library's integer
//! arithmetic. Either way the kept pixels are bit for bit those of the full resize.

use std::ops::Range;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;

use crate::models::config::Interpolation;

/// How the f64 weights become integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantisation {
    /// fast_image_resize's: i16, fractional bits chosen from the call's largest weight.
    Library,
    /// Pillow's (`normalize_coeffs_8bpc`): i32 with 22 fractional bits.
    Pillow,
}
/// Fractional bits available to the i16 weights (the library's limit: 32 - 8 - 2).
const PRECISION_BITS: u8 = 22;

/// The filter and the integer weights of a resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resampling {
    pub filter: Interpolation,
    pub quantisation: Quantisation,
}

/// Half-width of the kernel, in source pixels at scale 1 (Pillow's `support`).
fn support(filter: Interpolation) -> f64 {
    match filter {
        Interpolation::Bicubic => 2.0,
        Interpolation::Bilinear => 1.0,
    }
}

/// The kernel's weight at distance `x`, written as the library evaluates it.
fn kernel(filter: Interpolation, x: f64) -> f64 {
    match filter {
        Interpolation::Bicubic => bicubic(x),
        Interpolation::Bilinear => bilinear(x),
    }
}

fn library_filter(filter: Interpolation) -> FilterType {
    match filter {
        Interpolation::Bicubic => FilterType::CatmullRom,
        Interpolation::Bilinear => FilterType::Bilinear,
    }
}

/// Pillow's bilinear (a triangle), written as the library evaluates it.
fn bilinear(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// Pillow's bicubic (Catmull-Rom, a = -0.5), written as the library evaluates it.
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.) * x - (A + 3.)) * x * x + 1.
    } else if x < 2.0 {
        (((x - 5.) * x + 8.) * x - 4.) * A
    } else {
        0.0
    }
}

/// The fixed-point weights of some outputs of one resampling call.
#[derive(Debug, PartialEq)]
struct Taps {
    /// Fractional bits of the weights.
    precision: u8,
    /// Per output: the first source pixel it reads and its weights, zero weights at either end
    /// left out (they add nothing).
    outputs: Vec<(u32, Vec<i32>)>,
}

impl Taps {
    /// Source pixels the outputs read.
    fn reads(&self) -> Range<u32> {
        let start = self.outputs.iter().map(|(s, _)| *s).min().unwrap_or(0);
        let end = self.outputs.iter().map(|(s, w)| s + w.len() as u32).max().unwrap_or(start);
        start..end.max(start)
    }

    fn initial(&self) -> i32 {
        1 << (self.precision - 1)
    }

    /// An 8-bit value from an accumulated sum, as the library's clip table gives it.
    #[inline]
    fn clip(&self, sum: i32) -> u8 {
        (sum >> self.precision).clamp(0, 255) as u8
    }
}

/// The library's fixed-point precision for weights whose largest is `max_weight`: the most
/// fractional bits that keep it within an i16.
fn precision(max_weight: f64) -> u8 {
    let mut precision = 0u8;
    for p in 0..PRECISION_BITS {
        precision = p;
        if (max_weight * (1i32 << (p + 1)) as f64).round() as i32 >= 1 << 15 {
            break;
        }
    }
    precision
}

/// The resampling the library does for one call: the source box `[in0, in1)` of an axis of
/// `in_size` pixels into `out_size` pixels.
struct Call {
    filter: Interpolation,
    in_size: u32,
    in0: f64,
    scale: f64,
    radius: f64,
    recip: f64,
}

impl Call {
    fn new(filter: Interpolation, in_size: u32, in0: f64, in1: f64, out_size: u32) -> Self {
        let scale = (in1 - in0) / out_size as f64;
        let filter_scale = scale.max(1.0);
        Self { filter, in_size, in0, scale, radius: support(filter) * filter_scale, recip: 1.0 / filter_scale }
    }

    /// Output `out`'s first source pixel and f64 weights (into `weights`).
    fn weights(&self, out: u32, weights: &mut Vec<f64>) -> u32 {
        let in_center = self.in0 + (out as f64 + 0.5) * self.scale;
        let x_min = (in_center - self.radius).floor().max(0.) as u32;
        let x_max = (in_center + self.radius).ceil().min(self.in_size as f64) as u32;
        let center = in_center - 0.5;
        weights.clear();
        let mut sum = 0.0;
        for x in x_min..x_max {
            let w = kernel(self.filter, (x as f64 - center) * self.recip);
            weights.push(w);
            sum += w;
        }
        if sum != 0.0 {
            weights.iter_mut().for_each(|w| *w /= sum);
        }
        x_min
    }

    /// Output `out`'s largest weight.
    fn max_weight(&self, out: u32, scratch: &mut Vec<f64>) -> f64 {
        self.weights(out, scratch);
        scratch.iter().fold(0.0f64, |m, &w| m.max(w))
    }
}

/// The weights of outputs `keep` of a call of `out_size` outputs. The precision follows the
/// largest weight of all the call's outputs, so every output is weighed; only the kept ones
/// are stored.
fn taps(call: &Call, out_size: u32, keep: &Range<u32>, quantisation: Quantisation) -> Taps {
    let mut scratch = Vec::new();
    let precision = match quantisation {
        Quantisation::Library => {
            precision((0..out_size).map(|out| call.max_weight(out, &mut scratch)).fold(0.0f64, f64::max))
        }
        Quantisation::Pillow => PRECISION_BITS,
    };
    let unit = (1i32 << precision) as f64;
    let outputs = keep
        .clone()
        .map(|out| {
            let start = call.weights(out, &mut scratch);
            let q: Vec<i32> = scratch
                .iter()
                .map(|&v| match quantisation {
                    Quantisation::Library => (v * unit).round() as i16 as i32,
                    Quantisation::Pillow => (v * unit).round() as i32,
                })
                .collect();
            let first = q.iter().take_while(|&&v| v == 0).count();
            let last = q.len() - q.iter().rev().take_while(|&&v| v == 0).count();
            (start + first as u32, q[first..last.max(first)].to_vec())
        })
        .collect();
    Taps { precision, outputs }
}

/// A library call that computes the kept outputs with exactly the full resize's weights: it
/// resamples source box `[start, start + len)` into outputs `outputs` of the full resize
/// (the kept ones, and perhaps a few more whose larger weight sets the same precision).
struct LibraryCall {
    start: f64,
    len: f64,
    outputs: Range<u32>,
}

/// How one axis goes from `src` to `out` pixels when only outputs `keep` are wanted.
struct Axis {
    keep: Range<u32>,
    /// `None`: same size, the kept outputs are source pixels `keep`.
    taps: Option<Taps>,
    library: Option<LibraryCall>,
}

impl Axis {
    fn plan(filter: Interpolation, quantisation: Quantisation, src: u32, out: u32, keep: Range<u32>, use_library: bool) -> Self {
        if src == out {
            return Self { keep, taps: None, library: None };
        }
        let call = Call::new(filter, src, 0.0, src as f64, out);
        let full = taps(&call, out, &keep, quantisation);
        let library = match quantisation {
            Quantisation::Library if use_library => library_call(&call, out, &keep, &full),
            _ => None,
        };
        Self { keep, taps: Some(full), library }
    }

    /// Source pixels the kept outputs read.
    fn reads(&self) -> Range<u32> {
        self.taps.as_ref().map_or(self.keep.clone(), Taps::reads)
    }

    fn len(&self) -> u32 {
        self.keep.end - self.keep.start
    }
}

/// The library call for outputs `keep` of resampling `src` pixels to `out` whose weights are
/// `full`'s, if there is one worth making: the outputs it computes are the kept ones, widened
/// if need be to the nearest one that sets the full resize's precision (edge outputs, whose
/// clipped kernels weigh more), up to four times as many (still cheaper than applying the
/// weights here).
fn library_call(full_call: &Call, out: u32, keep: &Range<u32>, full: &Taps) -> Option<LibraryCall> {
    let src = full_call.in_size;
    let n_keep = keep.end - keep.start;
    let max_extra = n_keep * 3 + 2;
    let mut scratch = Vec::new();
    // Whether output `o` alone would set the full call's precision (none sets a higher one).
    let mut sets_precision = |o: u32| {
        let m = full_call.max_weight(o, &mut scratch);
        full.precision == PRECISION_BITS - 1 || (m * (1i32 << (full.precision + 1)) as f64).round() as i32 >= 1 << 15
    };
    let outputs = if keep.clone().any(&mut sets_precision) {
        keep.clone()
    } else {
        // The nearest such output on either side, no further than the widening allows.
        let left = (keep.start.saturating_sub(max_extra)..keep.start).rev().find(|&o| sets_precision(o));
        let right = (keep.end..keep.end.saturating_add(max_extra).min(out)).find(|&o| sets_precision(o));
        match (left, right) {
            (Some(l), Some(r)) if keep.end - l <= r + 1 - keep.start => l..keep.end,
            (_, Some(r)) => keep.start..r + 1,
            (Some(l), None) => l..keep.end,
            (None, None) => return None,
        }
    };
    let n = outputs.end - outputs.start;
    let scale = src as f64 / out as f64;
    let start = if outputs.start == 0 { 0.0 } else { outputs.start as f64 * scale };
    let end = if outputs.end == out { src as f64 } else { (outputs.end as f64 * scale).min(src as f64) };
    let len = end - start;
    let inner = keep.start - outputs.start..keep.end - outputs.start;
    let same = start < src as f64 && len > 0.0 && taps(&Call::new(full_call.filter, src, start, start + len, n), n, &inner, Quantisation::Library) == *full;
    same.then_some(LibraryCall { start, len, outputs })
}

fn options(filter: Interpolation, left: f64, top: f64, width: f64, height: f64) -> ResizeOptions {
    ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(library_filter(filter)))
        .crop(left, top, width, height)
}

/// Pixels `xs` x `ys` of `img` resized to `width` x `height`, the same as resizing it whole
/// and cutting them out, without computing the rest.
pub fn resize_region(img: &RgbImage, resampling: Resampling, size: (u32, u32), xs: Range<u32>, ys: Range<u32>) -> RgbImage {
    resize_region_with(img, resampling, size, xs, ys, true)
}

/// [`resize_region`]; `use_library: false` applies every weight here (for tests of that path).
fn resize_region_with(
    img: &RgbImage,
    resampling: Resampling,
    (width, height): (u32, u32),
    xs: Range<u32>,
    ys: Range<u32>,
    use_library: bool,
) -> RgbImage {
    let Resampling { filter, quantisation } = resampling;
    let (w0, h0) = img.dimensions();
    let h = Axis::plan(filter, quantisation, w0, width, xs, use_library);
    let v = Axis::plan(filter, quantisation, h0, height, ys, use_library);
    let (nx, ny) = (h.len(), v.len());
    if nx == 0 || ny == 0 {
        return RgbImage::new(nx, ny);
    }
    let rows = v.reads();
    // The horizontal pass's result, full height (the vertical pass indexes source rows as the
    // full resize does) but only the rows the kept outputs read are filled.
    let stride = nx as usize * 3;
    let mut mid = vec![0u8; stride * h0 as usize];
    horizontal(img, filter, &h, rows.clone(), &mut mid[rows.start as usize * stride..rows.end as usize * stride]);
    let out = vertical(filter, &mid, nx, h0, &v);
    RgbImage::from_raw(nx, ny, out).expect("buffer matches dimensions")
}

/// The kept columns of source rows `rows` into `dst` (those rows only).
fn horizontal(img: &RgbImage, filter: Interpolation, axis: &Axis, rows: Range<u32>, dst: &mut [u8]) {
    let (w0, h0) = img.dimensions();
    let src_stride = w0 as usize * 3;
    let rows_src = &img.as_raw()[rows.start as usize * src_stride..rows.end as usize * src_stride];
    let nx = axis.len();
    let Some(taps) = &axis.taps else {
        let (a, b) = (axis.keep.start as usize * 3, axis.keep.end as usize * 3);
        for (d, s) in dst.chunks_exact_mut(nx as usize * 3).zip(rows_src.chunks_exact(src_stride)) {
            d.copy_from_slice(&s[a..b]);
        }
        return;
    };
    if let Some(call) = &axis.library {
        let src = ImageRef::new(w0, h0, img.as_raw(), PixelType::U8x3).expect("buffer matches dimensions");
        let (n, height) = (call.outputs.end - call.outputs.start, rows.end - rows.start);
        let opts = options(filter, call.start, rows.start as f64, call.len, height as f64);
        if n == nx {
            let mut out = Image::from_slice_u8(nx, height, dst, PixelType::U8x3).expect("buffer matches dimensions");
            if Resizer::new().resize(&src, &mut out, &opts).is_ok() {
                return;
            }
        } else {
            let mut out = Image::new(n, height, PixelType::U8x3);
            if Resizer::new().resize(&src, &mut out, &opts).is_ok() {
                let skip = (axis.keep.start - call.outputs.start) as usize * 3;
                for (d, s) in dst.chunks_exact_mut(nx as usize * 3).zip(out.buffer().chunks_exact(n as usize * 3)) {
                    d.copy_from_slice(&s[skip..skip + nx as usize * 3]);
                }
                return;
            }
        }
    }
    let initial = taps.initial();
    for (d, s) in dst.chunks_exact_mut(nx as usize * 3).zip(rows_src.chunks_exact(src_stride)) {
        for ((start, weights), px) in taps.outputs.iter().zip(d.chunks_exact_mut(3)) {
            let mut acc = [initial; 3];
            let from = &s[*start as usize * 3..];
            for (&w, sp) in weights.iter().zip(from.chunks_exact(3)) {
                for c in 0..3 {
                    acc[c] += sp[c] as i32 * w;
                }
            }
            for c in 0..3 {
                px[c] = taps.clip(acc[c]);
            }
        }
    }
}

/// The kept rows of `mid` (`nx` pixels wide, `h0` rows).
fn vertical(filter: Interpolation, mid: &[u8], nx: u32, h0: u32, axis: &Axis) -> Vec<u8> {
    let stride = nx as usize * 3;
    let ny = axis.len();
    let Some(taps) = &axis.taps else {
        return mid[axis.keep.start as usize * stride..axis.keep.end as usize * stride].to_vec();
    };
    if let Some(call) = &axis.library {
        let src = ImageRef::new(nx, h0, mid, PixelType::U8x3).expect("buffer matches dimensions");
        let n = call.outputs.end - call.outputs.start;
        let mut dst = Image::new(nx, n, PixelType::U8x3);
        if Resizer::new().resize(&src, &mut dst, &options(filter, 0.0, call.start, nx as f64, call.len)).is_ok() {
            let skip = (axis.keep.start - call.outputs.start) as usize * stride;
            let mut out = dst.into_vec();
            out.truncate(skip + ny as usize * stride);
            out.drain(..skip);
            return out;
        }
    }
    let mut out = vec![0u8; stride * ny as usize];
    let mut acc = vec![0i32; stride];
    for ((start, weights), row) in taps.outputs.iter().zip(out.chunks_exact_mut(stride)) {
        acc.fill(taps.initial());
        for (k, &w) in weights.iter().enumerate() {
            let y = *start as usize + k;
            for (a, &s) in acc.iter_mut().zip(&mid[y * stride..(y + 1) * stride]) {
                *a += s as i32 * w;
            }
        }
        for (d, &a) in row.iter_mut().zip(&acc) {
            *d = taps.clip(a);
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::imaging::preprocess::resize_full;
    use crate::search::synthetic::Rng;

    pub(crate) fn noise(rng: &mut Rng, w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |_, _| {
            let v = rng.next_u64();
            image::Rgb([v as u8, (v >> 8) as u8, (v >> 16) as u8])
        })
    }

    fn check(img: &RgbImage, width: u32, height: u32, xs: Range<u32>, ys: Range<u32>) {
        for filter in [Interpolation::Bicubic, Interpolation::Bilinear] {
            let full = resize_full(img, filter, width, height);
            let want =
                image::imageops::crop_imm(&full, xs.start, ys.start, xs.end - xs.start, ys.end - ys.start).to_image();
            for library in [true, false] {
                let resampling = Resampling { filter, quantisation: Quantisation::Library };
                let got = resize_region_with(img, resampling, (width, height), xs.clone(), ys.clone(), library);
                assert!(
                    got == want,
                    "{}x{} to {width}x{height}, kept {xs:?} x {ys:?}, {filter:?}, library {library}",
                    img.width(),
                    img.height()
                );
            }
        }
    }

    #[test]
    fn random_regions_match_the_full_resize() {
        let mut rng = Rng::new(7);
        for _ in 0..60 {
            let (w0, h0) = (1 + rng.next_u64() as u32 % 300, 1 + rng.next_u64() as u32 % 300);
            let (w, h) = (1 + rng.next_u64() as u32 % 400, 1 + rng.next_u64() as u32 % 400);
            let x0 = rng.next_u64() as u32 % w;
            let x1 = x0 + 1 + rng.next_u64() as u32 % (w - x0);
            let y0 = rng.next_u64() as u32 % h;
            let y1 = y0 + 1 + rng.next_u64() as u32 % (h - y0);
            check(&noise(&mut rng, w0, h0), w, h, x0..x1, y0..y1);
        }
    }

    #[test]
    fn a_call_is_widened_to_reach_the_full_resize_precision_or_not_made() {
        // 4626 -> 566: the kept outputs' largest weight is in another power of two than the
        // edge outputs'; the call is widened to output 0, which sets the precision.
        let keep = 171..395;
        let axis = Axis::plan(Interpolation::Bicubic, Quantisation::Library, 4626, 566, keep.clone(), true);
        let call = axis.library.as_ref().expect("a library call");
        assert_eq!(call.outputs, 0..395);
        // 2153 -> 17224: the nearest such output is too far; the weights are applied here.
        assert!(Axis::plan(Interpolation::Bicubic, Quantisation::Library, 2153, 17224, 8500..8724, true).library.is_none());
        let mut rng = Rng::new(11);
        check(&noise(&mut rng, 4626, 3), 566, 3, keep, 0..3);
        check(&noise(&mut rng, 2153, 2), 17224, 2, 8500..8724, 0..2);
        check(&noise(&mut rng, 2, 2153), 2, 17224, 0..2, 8500..8724);
    }

    #[test]
    fn same_size_axes_are_copied() {
        let mut rng = Rng::new(3);
        let img = noise(&mut rng, 40, 30);
        check(&img, 40, 30, 5..20, 0..30);
        check(&img, 40, 77, 0..40, 10..50);
        check(&img, 13, 30, 2..9, 3..4);
    }

}
