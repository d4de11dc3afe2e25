//! The small JPEG previews a catalog shows beside each result.

use fast_image_resize::{images::ImageRef, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;

use crate::error::ImageError;

/// JPEG quality of thumbnails.
const QUALITY: u8 = 85;

/// Size that fits `(width, height)` within `max_side`, keeping the aspect ratio, never enlarging
/// and never below one pixel a side (a 1 x 16384 photo gives 1 x 256).
pub fn fit_within(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let scale = (max_side as f64 / width.max(height) as f64).min(1.0);
    let side = |v: u32| ((v as f64 * scale).round() as u32).max(1);
    (side(width), side(height))
}

/// A JPEG of `rgb` with its longer side at most `max_side` pixels (bilinear, antialiased).
/// Memory: the thumbnail and, at most, one intermediate of the source's width by its height.
pub fn thumbnail_jpeg(rgb: &RgbImage, max_side: u32) -> Result<Vec<u8>, ImageError> {
    let (w, h) = rgb.dimensions();
    if w == 0 || h == 0 || max_side == 0 {
        return Err(ImageError::NoPixels);
    }
    let (tw, th) = fit_within(w, h, max_side);
    let small = if (tw, th) == (w, h) {
        rgb.clone()
    } else {
        let src = ImageRef::new(w, h, rgb.as_raw(), PixelType::U8x3).expect("buffer matches dimensions");
        let mut dst = RgbImage::new(tw, th);
        let mut dst_ref = fast_image_resize::images::Image::from_slice_u8(tw, th, &mut dst, PixelType::U8x3)
            .expect("buffer matches dimensions");
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        Resizer::new().resize(&src, &mut dst_ref, &options).expect("same pixel type and non-empty sizes");
        dst
    };
    let (sw, sh) = small.dimensions();
    let side = |v: u32| u16::try_from(v).map_err(|_| ImageError::Encode(format!("{v} pixels is too wide for JPEG")));
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, QUALITY)
        .encode(small.as_raw(), side(sw)?, side(sh)?, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| ImageError::Encode(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_the_longer_side_and_never_enlarges() {
        assert_eq!(fit_within(1000, 500, 256), (256, 128));
        assert_eq!(fit_within(300, 4000, 256), (19, 256));
        assert_eq!(fit_within(100, 50, 256), (100, 50));
        assert_eq!(fit_within(5000, 1, 256), (256, 1));
        assert_eq!(fit_within(1, 16384, 256), (1, 256));
        assert_eq!(fit_within(16384, 1, 256), (256, 1));
        assert_eq!(fit_within(3, 16384, 256), (1, 256));
    }

    #[test]
    fn thin_and_tiny_images_give_thumbnails_at_least_a_pixel_wide() {
        for (w, h, want) in [(1, 16384, (1, 256)), (16384, 1, (256, 1)), (2, 9000, (1, 256)), (1, 1, (1, 1))] {
            let rgb = RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
            let jpeg = thumbnail_jpeg(&rgb, 256).unwrap();
            let back = image::load_from_memory(&jpeg).unwrap();
            assert_eq!((back.width(), back.height()), want, "{w}x{h}");
        }
    }

    #[test]
    fn an_empty_image_has_no_thumbnail() {
        let err = thumbnail_jpeg(&RgbImage::new(0, 5), 256).unwrap_err();
        assert!(matches!(err, ImageError::NoPixels), "{err}");
    }

    #[test]
    fn thumbnail_is_a_jpeg_of_the_fitted_size_and_keeps_the_colour() {
        let rgb = RgbImage::from_fn(640, 480, |x, _| if x < 320 { image::Rgb([200, 30, 30]) } else { image::Rgb([20, 40, 220]) });
        let jpeg = thumbnail_jpeg(&rgb, 256).unwrap();
        let back = image::load_from_memory(&jpeg).unwrap().to_rgb8();
        assert_eq!(back.dimensions(), (256, 192));
        let left = back.get_pixel(60, 96);
        let right = back.get_pixel(200, 96);
        assert!(left[0] > 170 && left[2] < 60, "{left:?}");
        assert!(right[2] > 190 && right[0] < 50, "{right:?}");
    }
}
