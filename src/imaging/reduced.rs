//! A large JPEG decoded at a reduced scale, the way its DCT allows (the `jpeg-decoder` crate's
//! scaled IDCT: 1/2, 1/4 or 1/8 of each side), so that neither the decoder nor what is kept of
//! the photo ever holds its full-resolution pixels. A 48-megapixel phone photo (8000x6000) is
//! decoded at 1/4, to 2000x1500: 9 MB of RGB instead of 144 MB.
//!
//! The scale keeps the short side at least [`WORKING_SHORT_SIDE`] pixels: several times what a
//! model's resize keeps (224 to 384 pixels), so that the whole photo and any region of a quarter
//! of it or more are still resized down. Photos whose short side is under twice that are decoded
//! at full resolution, exactly as before ([`crate::imaging::decode`]).
//!
//! The crate's own architecture-specific code is off (`platform_independent`): the page and the
//! native tool decode the same pixels.

use image::metadata::Orientation;
use image::RgbImage;
use jpeg_decoder::{Decoder, PixelFormat};

use crate::error::ImageError;

/// Fewest pixels the short side of a JPEG decoded at a reduced scale keeps.
pub const WORKING_SHORT_SIDE: u32 = 1024;

/// The scale a `width` x `height` JPEG is decoded at, in eighths of each side: 8 (full
/// resolution) unless 4, 2 or 1 still keeps the short side at least [`WORKING_SHORT_SIDE`]; the
/// smallest that does.
pub fn jpeg_scale_eighths(width: u32, height: u32) -> u32 {
    let short = width.min(height) as u64;
    [1, 2, 4]
        .into_iter()
        .find(|&e| short * e as u64 / 8 >= WORKING_SHORT_SIDE as u64)
        .unwrap_or(8)
}

/// A side of `len` pixels at `eighths` / 8, rounded up (as the decoder's scaled IDCT gives it).
pub fn scaled_side(len: u32, eighths: u32) -> u32 {
    (len as u64 * eighths as u64).div_ceil(8) as u32
}

fn corrupt(e: jpeg_decoder::Error) -> ImageError {
    ImageError::Corrupt {
        format: "JPEG".into(),
        reason: e.to_string(),
    }
}

/// Whether this JPEG can be decoded at a reduced scale here: 8-bit, one (grey) or three
/// (YCbCr or RGB) components. CMYK, 12-bit and lossless JPEGs are decoded at full resolution.
pub fn reducible(bytes: &[u8]) -> bool {
    let mut decoder = Decoder::new(bytes);
    decoder.read_info().is_ok()
        && decoder
            .info()
            .is_some_and(|i| matches!(i.pixel_format, PixelFormat::L8 | PixelFormat::RGB24))
}

/// A JPEG decoded at a reduced scale, as stored (not turned upright).
pub struct ScaledJpeg {
    pub rgb: RgbImage,
    /// The JPEG's own width and height.
    pub full_size: (u32, u32),
    /// Its EXIF orientation: the last EXIF segment's, as the full-resolution decoder reads it.
    pub orientation: Orientation,
}

/// Decodes a JPEG at `eighths` / 8 of each side, the decoder allocating at most
/// `max_decode_bytes` for the decoded pixels.
pub fn decode_scaled(
    bytes: &[u8],
    eighths: u32,
    max_decode_bytes: u64,
) -> Result<ScaledJpeg, ImageError> {
    let mut decoder = Decoder::new(bytes);
    decoder.set_max_decoding_buffer_size(max_decode_bytes.min(usize::MAX as u64) as usize);
    decoder.read_info().map_err(corrupt)?;
    let info = decoder.info().expect("read above");
    let (width, height) = (info.width as u32, info.height as u32);
    let wanted = (scaled_side(width, eighths), scaled_side(height, eighths));
    let (w, h) = decoder
        .scale(wanted.0 as u16, wanted.1 as u16)
        .map_err(corrupt)?;
    let (w, h) = (w as u32, h as u32);
    let pixels = decoder.decode().map_err(corrupt)?;
    let rgb = match decoder.info().expect("decoded").pixel_format {
        PixelFormat::RGB24 => pixels,
        PixelFormat::L8 => {
            let mut rgb = Vec::with_capacity(pixels.len() * 3);
            rgb.extend(pixels.iter().flat_map(|&v| [v, v, v]));
            rgb
        }
        other => {
            return Err(ImageError::Corrupt {
                format: "JPEG".into(),
                reason: format!("{other:?} is not reduced"),
            });
        }
    };
    if rgb.len() as u64 != w as u64 * h as u64 * 3 {
        return Err(ImageError::Corrupt {
            format: "JPEG".into(),
            reason: format!("the decoder gave {} bytes for {w}x{h}", rgb.len()),
        });
    }
    let orientation = decoder
        .exif_data()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    Ok(ScaledJpeg {
        rgb: RgbImage::from_raw(w, h, rgb).expect("size checked"),
        full_size: (width, height),
        orientation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_photos_keep_a_short_side_of_at_least_1024_pixels() {
        assert_eq!(jpeg_scale_eighths(8000, 6000), 2); // 48 MP: 2000x1500
        assert_eq!(jpeg_scale_eighths(4000, 3000), 4); // 12 MP: 2000x1500
        assert_eq!(jpeg_scale_eighths(3000, 4000), 4);
        assert_eq!(jpeg_scale_eighths(4096, 2048), 4);
        assert_eq!(jpeg_scale_eighths(4096, 2047), 8); // under twice 1024: full resolution
        assert_eq!(jpeg_scale_eighths(640, 480), 8);
        assert_eq!(jpeg_scale_eighths(16384, 16384), 1);
        assert_eq!(
            (
                scaled_side(4031, 4),
                scaled_side(6000, 2),
                scaled_side(1, 1)
            ),
            (2016, 1500, 1)
        );
    }
}
