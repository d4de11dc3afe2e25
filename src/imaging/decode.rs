//! Encoded photo bytes to an upright 8-bit RGB image, the way `PIL.Image.open` +
//! `ImageOps.exif_transpose` + transformers' `convert_to_rgb` see it: EXIF orientation applied,
//! alpha composited onto white, 16-bit channels scaled with `>> 8`, grayscale replicated.
//! Size limits are checked from the header, before any pixel memory is allocated.
//!
//! The limits, one set per build (the page's wasm memory also holds the model and never shrinks):
//! - a file of at most [`MAX_FILE_BYTES`];
//! - at most [`MAX_SIDE`] pixels a side and [`MAX_MEGAPIXELS`] megapixels;
//! - a long side at most [`MAX_ASPECT_RATIO`] times the short side;
//! - at most [`MAX_DECODE_BYTES`] allocated by the decoder: the decoded pixels, and for a GIF
//!   whose first frame is larger than its screen, that frame's own buffer too. An 8-bit RGBA
//!   image of the largest size fits; a 16-bit one that large does not and is refused;
//! - at most [`metadata::MAX_METADATA_BYTES`] of metadata (colour profile, text, EXIF, XMP)
//!   held by the decoder, outside that budget ([`metadata`] says how, for each format).
//!
//! Past the decoder, turning the pixels into upright RGB takes at most 6 more bytes a pixel
//! (8-bit RGBA is converted in place), and preprocessing only what the centre crop keeps.
//!
//! A search ([`decode_photo`]) decodes a JPEG whose short side is at least 2,048 pixels at a
//! reduced scale ([`reduced`]): the decoder then holds the reduced pixels (a 12- or 48-megapixel
//! phone photo: 2000x1500, 9 MB) and, for a progressive JPEG, 16 bytes a block of 8x8 pixels (18
//! MB at 48 megapixels), far within the limits. The limits stay as they are: any other photo (a
//! PNG, WebP or GIF, a CMYK JPEG, and every photo a catalog is built from) is still decoded at
//! full resolution within them.

use std::io::Cursor;

use image::codecs::png::PngDecoder;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use crate::error::ImageError;
use crate::imaging::metadata::{self, png_limits, png_metadata_too_large};
use crate::imaging::reduced;
use crate::imaging::structure::{gif_first_frame_size, jpeg_segments};

/// Largest photo file accepted, in bytes (64 MiB).
pub const MAX_FILE_BYTES: usize = 64 << 20;
/// Largest width or height accepted, in pixels.
pub const MAX_SIDE: u32 = 16_384;
/// Most the long side may be, in multiples of the short side: a centre crop of anything
/// thinner keeps under a twentieth of it.
pub const MAX_ASPECT_RATIO: u32 = 20;
/// Most bytes the decoder may allocate for one photo: 512 MiB natively.
#[cfg(not(target_arch = "wasm32"))]
pub const MAX_DECODE_BYTES: u64 = 512 << 20;
/// Most bytes the decoder may allocate for one photo: 192 MiB in the browser. A large JPEG
/// decoded at a reduced scale takes a small part of it; a PNG of [`MAX_MEGAPIXELS`] all of it.
#[cfg(target_arch = "wasm32")]
pub const MAX_DECODE_BYTES: u64 = 192 << 20;
/// Largest image accepted, in megapixels (natively): its 8-bit RGBA pixels fit [`MAX_DECODE_BYTES`].
#[cfg(not(target_arch = "wasm32"))]
pub const MAX_MEGAPIXELS: u32 = 64;
/// Largest image accepted, in megapixels (in the browser): its 8-bit RGBA pixels fit
/// [`MAX_DECODE_BYTES`]. It stays: a PNG, WebP, GIF or CMYK JPEG that large is still decoded at
/// full resolution (a JPEG decoded at a reduced scale would fit a larger one).
#[cfg(target_arch = "wasm32")]
pub const MAX_MEGAPIXELS: u32 = 50;

const _: () = assert!(MAX_MEGAPIXELS as u64 * 1_000_000 * 4 <= MAX_DECODE_BYTES);
const _: () = assert!((MAX_SIDE as u64).pow(2) >= MAX_MEGAPIXELS as u64 * 1_000_000);

/// Bounds on what a photo may be, checked before decoding.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Largest accepted file, in bytes.
    pub max_file_bytes: usize,
    /// Largest accepted width or height, in pixels.
    pub max_side: u32,
    /// Largest accepted width x height, in megapixels.
    pub max_megapixels: u32,
    /// Largest accepted long side / short side.
    pub max_aspect_ratio: u32,
    /// Most bytes the decoder may allocate.
    pub max_decode_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: MAX_FILE_BYTES,
            max_side: MAX_SIDE,
            max_megapixels: MAX_MEGAPIXELS,
            max_aspect_ratio: MAX_ASPECT_RATIO,
            max_decode_bytes: MAX_DECODE_BYTES,
        }
    }
}

fn format_name(f: ImageFormat) -> &'static str {
    match f {
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Png => "PNG",
        ImageFormat::WebP => "WebP",
        ImageFormat::Gif => "GIF",
        ImageFormat::Bmp => "BMP",
        ImageFormat::Tiff => "TIFF",
        ImageFormat::Avif => "AVIF",
        ImageFormat::Ico => "ICO",
        _ => "this",
    }
}

fn corrupt(format: ImageFormat, reason: impl ToString) -> ImageError {
    ImageError::Corrupt {
        format: format_name(format).to_string(),
        reason: reason.to_string(),
    }
}

/// The decoder's error, saying so when it stopped at the memory limit.
fn decode_error(format: ImageFormat, limits: &DecodeLimits, e: image::ImageError) -> ImageError {
    match &e {
        image::ImageError::Limits(l) if matches!(l.kind(), image::error::LimitErrorKind::InsufficientMemory) => {
            ImageError::TooMuchMemory { max_mib: limits.max_decode_bytes >> 20 }
        }
        _ => corrupt(format, e),
    }
}

/// A photo as it is searched: its upright RGB pixels, at full resolution or, for a large JPEG,
/// at a reduced scale ([`reduced`]), and the upright size of the photo itself, the frame a
/// region is given in.
#[derive(Debug, Clone)]
pub struct DecodedPhoto {
    pub rgb: RgbImage,
    pub upright_size: (u32, u32),
}

impl DecodedPhoto {
    /// Whether the pixels are the photo's own, not a reduced copy.
    pub fn full_resolution(&self) -> bool {
        self.rgb.dimensions() == self.upright_size
    }
}

/// Decodes a photo to search it: a JPEG whose short side is at least twice
/// [`reduced::WORKING_SHORT_SIDE`] at a reduced scale, any other photo as [`decode_rgb`] does.
/// The limits are the same; the memory a large JPEG takes is its reduced pixels' (with a
/// progressive JPEG's coefficients: 3 bytes a pixel of the photo at 4:2:0).
pub fn decode_photo(bytes: &[u8], limits: &DecodeLimits) -> Result<DecodedPhoto, ImageError> {
    let format = checked_format(bytes, limits)?;
    if format == ImageFormat::Jpeg {
        if let Ok(size) = imagesize::blob_size(bytes) {
            let eighths = reduced::jpeg_scale_eighths(size.width as u32, size.height as u32);
            if eighths < 8 && reduced::reducible(bytes) {
                return decode_reduced_jpeg(bytes, eighths, limits);
            }
        }
    }
    let rgb = decode_checked(format, bytes, limits)?;
    Ok(DecodedPhoto { upright_size: rgb.dimensions(), rgb })
}

/// A large JPEG at `eighths` / 8 of each side, turned upright.
fn decode_reduced_jpeg(bytes: &[u8], eighths: u32, limits: &DecodeLimits) -> Result<DecodedPhoto, ImageError> {
    let bytes = metadata::within_budget(ImageFormat::Jpeg, bytes)?;
    let scaled = reduced::decode_scaled(&bytes, eighths, limits.max_decode_bytes)?;
    let (width, height) = scaled.full_size;
    check_size(width as u64, height as u64, limits)?;
    let turned = matches!(
        scaled.orientation,
        Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH
    );
    let mut upright = DynamicImage::ImageRgb8(scaled.rgb);
    upright.apply_orientation(scaled.orientation);
    Ok(DecodedPhoto {
        rgb: upright.into_rgb8(),
        upright_size: if turned { (height, width) } else { (width, height) },
    })
}

/// Decodes a photo into upright RGB, as the reference pipeline sees it.
pub fn decode_rgb(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, ImageError> {
    let format = checked_format(bytes, limits)?;
    decode_checked(format, bytes, limits)
}

/// The photo's format, once the checks before any decoding pass: size of the file, format, a
/// JPEG's completeness, the size its header gives (and a GIF's first frame's).
fn checked_format(bytes: &[u8], limits: &DecodeLimits) -> Result<ImageFormat, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    if bytes.len() > limits.max_file_bytes {
        return Err(ImageError::FileTooLarge {
            bytes: bytes.len(),
            max_bytes: limits.max_file_bytes,
        });
    }
    let format = image::guess_format(bytes).map_err(|_| ImageError::UnknownFormat)?;
    if !matches!(
        format,
        ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP | ImageFormat::Gif
    ) {
        return Err(ImageError::UnsupportedFormat {
            format: format_name(format).to_string(),
        });
    }
    if format == ImageFormat::Jpeg && !jpeg_segments(bytes, |_, _| ()) {
        return Err(corrupt(format, "the file ends before the image data does"));
    }
    // Dimensions from the header alone, before a decoder allocates anything.
    if let Ok(size) = imagesize::blob_size(bytes) {
        check_size(size.width as u64, size.height as u64, limits)?;
    }
    if format == ImageFormat::Gif {
        // The decoder gives a first frame larger than the screen a buffer of its own.
        if let Some((width, height)) = gif_first_frame_size(bytes, |_, _| ()) {
            check_pixels(width as u64, height as u64, limits)?;
        }
    }
    Ok(format)
}

/// Decodes a checked photo at full resolution into upright RGB.
fn decode_checked(format: ImageFormat, bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, ImageError> {
    let bytes = metadata::within_budget(format, bytes)?;
    let mut budget = Limits::default();
    budget.max_image_width = Some(limits.max_side);
    budget.max_image_height = Some(limits.max_side);
    budget.max_alloc = Some(limits.max_decode_bytes);
    let mut decoder: Box<dyn ImageDecoder + '_> = if format == ImageFormat::Png {
        // Its chunks before the pixels are read here, within the metadata budget.
        let png = PngDecoder::with_limits(Cursor::new(&bytes[..]), png_limits(limits.max_side));
        Box::new(png.map_err(|e| match decode_error(format, limits, e) {
            ImageError::TooMuchMemory { .. } => png_metadata_too_large(),
            other => other,
        })?)
    } else {
        let mut reader = ImageReader::with_format(Cursor::new(&bytes[..]), format);
        reader.limits(budget.clone());
        Box::new(reader.into_decoder().map_err(|e| decode_error(format, limits, e))?)
    };
    let (width, height) = decoder.dimensions();
    check_size(width as u64, height as u64, limits)?;
    // The decoded pixels take their share of the budget first; the decoder's own buffers
    // (a GIF frame) must fit in what is left.
    budget.reserve(decoder.total_bytes()).map_err(|e| decode_error(format, limits, e))?;
    decoder.set_limits(budget).map_err(|e| decode_error(format, limits, e))?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let img = DynamicImage::from_decoder(decoder).map_err(|e| decode_error(format, limits, e))?;
    // Turned upright after the conversion, which frees the decoder's (larger) pixels first.
    let mut upright = DynamicImage::ImageRgb8(to_rgb(img));
    upright.apply_orientation(orientation);
    Ok(upright.into_rgb8())
}

/// Pixel-count and side limits, and the aspect ratio.
fn check_size(width: u64, height: u64, limits: &DecodeLimits) -> Result<(), ImageError> {
    check_pixels(width, height, limits)?;
    let (short, long) = (width.min(height), width.max(height));
    if long > short * limits.max_aspect_ratio as u64 {
        return Err(ImageError::TooThin {
            width: width as u32,
            height: height as u32,
            max_ratio: limits.max_aspect_ratio,
        });
    }
    Ok(())
}

fn check_pixels(width: u64, height: u64, limits: &DecodeLimits) -> Result<(), ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::NoPixels);
    }
    let max_pixels = limits.max_megapixels as u64 * 1_000_000;
    if width > limits.max_side as u64 || height > limits.max_side as u64 || width * height > max_pixels {
        return Err(ImageError::TooLarge {
            width: width.min(u32::MAX as u64) as u32,
            height: height.min(u32::MAX as u64) as u32,
            max_side: limits.max_side,
            max_megapixels: limits.max_megapixels,
        });
    }
    Ok(())
}

/// RGBA pixels (a canvas's `getImageData`) to RGB, alpha composited onto white.
pub fn rgb_from_rgba(rgba: &[u8], width: u32, height: u32, limits: &DecodeLimits) -> Result<RgbImage, ImageError> {
    check_size(width as u64, height as u64, limits)?;
    if rgba.len() as u64 != width as u64 * height as u64 * 4 {
        return Err(ImageError::Corrupt {
            format: "RGBA".into(),
            reason: format!("{} bytes is not {width}x{height}x4", rgba.len()),
        });
    }
    let out = rgba
        .chunks_exact(4)
        .flat_map(|c| [over_white(c[0], c[3]), over_white(c[1], c[3]), over_white(c[2], c[3])])
        .collect();
    Ok(RgbImage::from_raw(width, height, out).expect("buffer size matches"))
}

/// PIL's `alpha_composite` of a pixel over opaque white, in its own fixed-point arithmetic.
#[inline]
fn over_white(c: u8, a: u8) -> u8 {
    if a == 255 {
        return c;
    }
    let coef1 = a as u32 * 128;
    let coef2 = (255 - a as u32) * 128;
    let tmp = c as u32 * coef1 + 255 * coef2 + (0x80 << 7);
    ((((tmp >> 8) + tmp) >> 8) >> 7) as u8
}

/// To 8-bit RGB as transformers' `convert_to_rgb` on a Pillow image does.
fn to_rgb(img: DynamicImage) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let from_rgba = |px: &mut dyn Iterator<Item = [u8; 4]>| {
        let mut out = Vec::with_capacity(w as usize * h as usize * 3);
        for [r, g, b, a] in px {
            out.extend_from_slice(&[over_white(r, a), over_white(g, a), over_white(b, a)]);
        }
        RgbImage::from_raw(w, h, out).expect("buffer size matches")
    };
    let hi = |v: u16| (v >> 8) as u8;
    match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        DynamicImage::ImageLuma8(g) => {
            let out = g.as_raw().iter().flat_map(|&v| [v, v, v]).collect();
            RgbImage::from_raw(w, h, out).expect("buffer size matches")
        }
        DynamicImage::ImageRgb16(p) => {
            let out = p.as_raw().iter().map(|&v| hi(v)).collect();
            RgbImage::from_raw(w, h, out).expect("buffer size matches")
        }
        DynamicImage::ImageLuma16(p) => {
            let out = p.as_raw().iter().flat_map(|&v| [hi(v); 3]).collect();
            RgbImage::from_raw(w, h, out).expect("buffer size matches")
        }
        DynamicImage::ImageRgba8(p) => {
            // In place: pixel i's three bytes land before pixel i + 1's four.
            let mut buf = p.into_raw();
            let n = w as usize * h as usize;
            for i in 0..n {
                let [r, g, b, a] = [buf[4 * i], buf[4 * i + 1], buf[4 * i + 2], buf[4 * i + 3]];
                buf[3 * i..3 * i + 3].copy_from_slice(&[over_white(r, a), over_white(g, a), over_white(b, a)]);
            }
            buf.truncate(3 * n);
            RgbImage::from_raw(w, h, buf).expect("buffer size matches")
        }
        DynamicImage::ImageLumaA8(p) => {
            from_rgba(&mut p.as_raw().chunks_exact(2).map(|c| [c[0], c[0], c[0], c[1]]))
        }
        DynamicImage::ImageRgba16(p) => from_rgba(
            &mut p.as_raw().chunks_exact(4).map(|c| [hi(c[0]), hi(c[1]), hi(c[2]), hi(c[3])]),
        ),
        DynamicImage::ImageLumaA16(p) => from_rgba(
            &mut p.as_raw().chunks_exact(2).map(|c| [hi(c[0]), hi(c[0]), hi(c[0]), hi(c[1])]),
        ),
        other => {
            let rgba = other.to_rgba8();
            from_rgba(&mut rgba.as_raw().chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_white_matches_pillow_endpoints() {
        assert_eq!(over_white(10, 0), 255);
        assert_eq!(over_white(10, 255), 10);
        // Pillow: alpha_composite(white, (0,0,0,128)) gives 127.
        assert_eq!(over_white(0, 128), 127);
    }

    #[test]
    fn empty_and_garbage_are_refused() {
        let l = DecodeLimits::default();
        assert!(matches!(decode_rgb(&[], &l), Err(ImageError::Empty)));
        assert!(matches!(
            decode_rgb(b"hello, this is text", &l),
            Err(ImageError::UnknownFormat)
        ));
    }
}
