//! `CLIPImageProcessor` on the PIL path: resize the shortest edge with Pillow's antialiased
//! bicubic (horizontal pass, then vertical, each rounded to 8 bits), centre crop, rescale and
//! normalise into a CHW float tensor.

use fast_image_resize::{images::Image, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;

use crate::config::PreprocessConfig;

/// `transformers`' `get_resize_output_image_size(default_to_square=False)`: the short side
/// becomes `edge`, the long side `int(edge * long / short)`. Returns (width, height).
pub fn shortest_edge_size(width: u32, height: u32, edge: u32) -> (u32, u32) {
    let (short, long) = if width <= height { (width, height) } else { (height, width) };
    let new_long = (edge as f64 * long as f64 / short as f64) as u32;
    if width <= height {
        (edge, new_long)
    } else {
        (new_long, edge)
    }
}

fn resize_pass(src: &Image<'_>, width: u32, height: u32, resizer: &mut Resizer) -> Image<'static> {
    let mut dst = Image::new(width, height, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom));
    resizer
        .resize(src, &mut dst, &options)
        .expect("same pixel type and non-empty sizes");
    dst
}

/// Resizes like Pillow's `Image.resize(size, BICUBIC)`: a horizontal pass, then a vertical one.
pub fn resize_bicubic(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w0, h0) = img.dimensions();
    if (w0, h0) == (width, height) {
        return img.clone();
    }
    let src = Image::from_vec_u8(w0, h0, img.as_raw().clone(), PixelType::U8x3)
        .expect("buffer matches dimensions");
    let mut resizer = Resizer::new();
    let horizontal = if w0 != width {
        resize_pass(&src, width, h0, &mut resizer)
    } else {
        src
    };
    let both = if h0 != height {
        resize_pass(&horizontal, width, height, &mut resizer)
    } else {
        horizontal
    };
    RgbImage::from_raw(width, height, both.into_vec()).expect("buffer matches dimensions")
}

/// `transformers`' `center_crop`: top = (h - ch) // 2, left = (w - cw) // 2; pads with black
/// where the image is smaller than the crop.
pub fn center_crop(img: &RgbImage, crop_width: u32, crop_height: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let top = (h as i64 - crop_height as i64).div_euclid(2);
    let left = (w as i64 - crop_width as i64).div_euclid(2);
    RgbImage::from_fn(crop_width, crop_height, |x, y| {
        let (sx, sy) = (x as i64 + left, y as i64 + top);
        if sx >= 0 && sy >= 0 && sx < w as i64 && sy < h as i64 {
            *img.get_pixel(sx as u32, sy as u32)
        } else {
            image::Rgb([0, 0, 0])
        }
    })
}

/// The resized and cropped 8-bit image the model sees.
pub fn resize_and_crop(img: &RgbImage, cfg: &PreprocessConfig) -> RgbImage {
    let (w, h) = shortest_edge_size(img.width(), img.height(), cfg.shortest_edge);
    let resized = resize_bicubic(img, w, h);
    center_crop(&resized, cfg.crop_width, cfg.crop_height)
}

/// Rescales and normalises an 8-bit crop into CHW floats: `(v * rescale - mean) / std`.
pub fn normalize(crop: &RgbImage, cfg: &PreprocessConfig) -> Vec<f32> {
    let plane = (crop.width() * crop.height()) as usize;
    let mut out = vec![0f32; 3 * plane];
    // transformers rescales in float64 before casting to float32, then normalises in float32.
    let lut: Vec<[f32; 3]> = (0..256u32)
        .map(|v| {
            let scaled = (v as f64 * cfg.rescale_factor as f64) as f32;
            [0, 1, 2].map(|c| (scaled - cfg.mean[c]) / cfg.std[c])
        })
        .collect();
    for (i, px) in crop.as_raw().chunks_exact(3).enumerate() {
        for c in 0..3 {
            out[c * plane + i] = lut[px[c] as usize][c];
        }
    }
    out
}

/// Full preprocessing of an upright RGB photo into the model's CHW pixel values.
pub fn pixel_values(img: &RgbImage, cfg: &PreprocessConfig) -> Vec<f32> {
    normalize(&resize_and_crop(img, cfg), cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_edge_truncates_like_python_int() {
        assert_eq!(shortest_edge_size(640, 480, 224), (298, 224));
        assert_eq!(shortest_edge_size(480, 640, 224), (224, 298));
        assert_eq!(shortest_edge_size(900, 150, 224), (1344, 224));
        assert_eq!(shortest_edge_size(224, 224, 224), (224, 224));
    }

    #[test]
    fn crop_offsets_floor() {
        let img = RgbImage::from_fn(5, 4, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let c = center_crop(&img, 2, 2);
        // top = (4-2)//2 = 1, left = (5-2)//2 = 1
        assert_eq!(c.get_pixel(0, 0).0, [1, 1, 0]);
    }
}
