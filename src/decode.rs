//! Encoded photo bytes to an upright 8-bit RGB image, the way `PIL.Image.open` +
//! `ImageOps.exif_transpose` + transformers' `convert_to_rgb` see it: EXIF orientation applied,
//! alpha composited onto white, 16-bit channels scaled with `>> 8`, grayscale replicated.
//! Size limits are checked from the header, before any pixel memory is allocated.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use crate::error::ImageError;

/// Bounds on what a photo may be, checked before decoding.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Largest accepted file, in bytes.
    pub max_file_bytes: usize,
    /// Largest accepted width or height, in pixels.
    pub max_side: u32,
    /// Largest accepted width x height, in megapixels.
    pub max_megapixels: u32,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: 64 << 20,
            max_side: 16_384,
            max_megapixels: 64,
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

/// Decodes a photo into upright RGB, as the reference pipeline sees it.
pub fn decode_rgb(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, ImageError> {
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
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(corrupt(format, "the file ends before the image data does"));
    }
    // Dimensions from the header alone, before a decoder allocates anything.
    if let Ok(size) = imagesize::blob_size(bytes) {
        check_size(size.width as u64, size.height as u64, limits)?;
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut decode_limits = Limits::default();
    decode_limits.max_image_width = Some(limits.max_side);
    decode_limits.max_image_height = Some(limits.max_side);
    reader.limits(decode_limits);
    let mut decoder = reader.into_decoder().map_err(|e| corrupt(format, e))?;
    let (width, height) = decoder.dimensions();
    check_size(width as u64, height as u64, limits)?;
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| corrupt(format, e))?;
    img.apply_orientation(orientation);
    Ok(to_rgb(img))
}

fn check_size(width: u64, height: u64, limits: &DecodeLimits) -> Result<(), ImageError> {
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
            from_rgba(&mut p.as_raw().chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]))
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

/// Whether a JPEG stream reaches its end-of-image marker. The decoder fills a truncated scan
/// with grey instead of failing, so completeness is checked by walking the markers: segment
/// lengths skip embedded thumbnails, entropy-coded data is scanned for the next marker.
fn jpeg_is_complete(b: &[u8]) -> bool {
    let mut i = 2; // after SOI
    while i + 1 < b.len() {
        if b[i] != 0xFF {
            return false;
        }
        let marker = b[i + 1];
        match marker {
            0xFF => i += 1, // fill byte
            0xD9 => return true,
            0x01 | 0xD0..=0xD7 => i += 2,
            _ => {
                if i + 3 >= b.len() {
                    return false;
                }
                let len = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
                i += 2 + len;
                if marker == 0xDA {
                    // Entropy-coded data runs until a marker that is not a stuffed byte or RSTn.
                    while i + 1 < b.len() {
                        if b[i] == 0xFF && b[i + 1] != 0 && !(0xD0..=0xD7).contains(&b[i + 1]) {
                            break;
                        }
                        i += 1;
                    }
                }
            }
        }
    }
    false
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
