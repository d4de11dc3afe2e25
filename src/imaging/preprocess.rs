//! `CLIPImageProcessor` on the PIL path, or open_clip's eval transform (torchvision on a PIL
//! image): resize with Pillow's antialiased bicubic or bilinear (horizontal pass, then vertical,
//! each rounded to 8 bits), centre crop (or pad), rescale and normalise into a CHW float tensor.
//! Only the pixels the crop keeps are resized ([`resample`]), so a thin photo costs no more than
//! any other.

mod resample;

use std::ops::Range;

use image::RgbImage;

use crate::models::config::{PreprocessArithmetic, PreprocessConfig, ResizeMode};
pub use resample::{resize_region, Quantisation, Resampling};

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

/// open_clip's `ResizeKeepRatio(longest=1)`: the long side fits the crop, both sides rounded
/// (Python `round`, half to even). Returns (width, height).
pub fn longest_edge_size(width: u32, height: u32, crop_width: u32, crop_height: u32) -> (u32, u32) {
    let ratio = (height as f64 / crop_height as f64).max(width as f64 / crop_width as f64);
    let side = |x: u32| ((x as f64 / ratio).round_ties_even() as u32).max(1);
    (side(width), side(height))
}

/// The first pixel of a centred crop of `crop` pixels on an axis of `size` pixels (negative
/// when the crop is larger: the image is padded with black). transformers floors
/// `(size - crop) / 2`; torchvision rounds it half to even and pads `(crop - size) // 2` before.
fn crop_start(size: u32, crop: u32, arithmetic: PreprocessArithmetic) -> i64 {
    let d = size as i64 - crop as i64;
    match arithmetic {
        PreprocessArithmetic::Transformers => d.div_euclid(2),
        PreprocessArithmetic::Torchvision if d < 0 => -((-d) / 2),
        PreprocessArithmetic::Torchvision => {
            let half = d / 2;
            half + (d % 2 == 1 && half % 2 == 1) as i64
        }
    }
}

/// Where a centred crop of `crop` pixels falls on an axis of `size` pixels: its first pixel
/// and the pixels of the axis it keeps.
fn crop_span(size: u32, crop: u32, arithmetic: PreprocessArithmetic) -> (i64, Range<u32>) {
    let first = crop_start(size, crop, arithmetic);
    let kept = first.clamp(0, size as i64) as u32..(first + crop as i64).clamp(0, size as i64) as u32;
    (first, kept)
}

/// The size a photo is resized to and where the crop starts on it (negative: padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub resized: (u32, u32),
    pub crop_left_top: (i64, i64),
}

/// Where a `width` x `height` photo goes under `cfg`.
pub fn geometry(width: u32, height: u32, cfg: &PreprocessConfig) -> Geometry {
    let resized = match cfg.resize_mode {
        ResizeMode::Shortest => shortest_edge_size(width, height, cfg.shortest_edge),
        ResizeMode::Longest => longest_edge_size(width, height, cfg.crop_width, cfg.crop_height),
        ResizeMode::Squash => (cfg.crop_width, cfg.crop_height),
    };
    let left = crop_start(resized.0, cfg.crop_width, cfg.arithmetic);
    let top = crop_start(resized.1, cfg.crop_height, cfg.arithmetic);
    Geometry { resized, crop_left_top: (left, top) }
}

/// The resized and cropped 8-bit image the model sees: the same pixels as resizing the whole
/// photo and then cropping ([`center_crop`]), computing only the ones kept.
pub fn resize_and_crop(img: &RgbImage, cfg: &PreprocessConfig) -> RgbImage {
    let (w, h) = geometry(img.width(), img.height(), cfg).resized;
    let (left, xs) = crop_span(w, cfg.crop_width, cfg.arithmetic);
    let (top, ys) = crop_span(h, cfg.crop_height, cfg.arithmetic);
    // The CLIP pipeline keeps the library's weights (its embeddings stay bit-identical);
    // open_clip's is matched to Pillow's own.
    let quantisation = match cfg.arithmetic {
        PreprocessArithmetic::Transformers => Quantisation::Library,
        PreprocessArithmetic::Torchvision => Quantisation::Pillow,
    };
    let resampling = Resampling { filter: cfg.interpolation, quantisation };
    let kept = resize_region(img, resampling, (w, h), xs.clone(), ys.clone());
    if kept.dimensions() == (cfg.crop_width, cfg.crop_height) {
        return kept;
    }
    let mut out = RgbImage::new(cfg.crop_width, cfg.crop_height); // black where the photo is smaller
    image::imageops::replace(&mut out, &kept, xs.start as i64 - left, ys.start as i64 - top);
    out
}

/// Rescales and normalises an 8-bit crop into CHW floats: `(v * rescale - mean) / std`.
pub fn normalize(crop: &RgbImage, cfg: &PreprocessConfig) -> Vec<f32> {
    let plane = (crop.width() * crop.height()) as usize;
    let mut out = vec![0f32; 3 * plane];
    let lut: Vec<[f32; 3]> = (0..256u32)
        .map(|v| {
            let scaled = match cfg.arithmetic {
                // transformers rescales in float64 before casting to float32, then normalises in float32.
                PreprocessArithmetic::Transformers => (v as f64 * cfg.rescale_factor as f64) as f32,
                // torchvision's ToTensor divides by 255 in float32.
                PreprocessArithmetic::Torchvision => v as f32 / 255.0,
            };
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

/// The full resize the kept region is checked against: the whole photo through a horizontal
/// pass, then a vertical one (the way this module resized before it cut the work to the crop).
#[cfg(test)]
pub(crate) fn resize_full(
    img: &RgbImage,
    filter: crate::models::config::Interpolation,
    width: u32,
    height: u32,
) -> RgbImage {
    use crate::models::config::Interpolation;
    use fast_image_resize::{images::Image, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
    let filter = match filter {
        Interpolation::Bicubic => FilterType::CatmullRom,
        Interpolation::Bilinear => FilterType::Bilinear,
    };
    let (w0, h0) = img.dimensions();
    if (w0, h0) == (width, height) {
        return img.clone();
    }
    let pass = |src: &Image<'_>, w: u32, h: u32| {
        let mut dst = Image::new(w, h, PixelType::U8x3);
        let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter));
        Resizer::new().resize(src, &mut dst, &opts).unwrap();
        dst
    };
    let src = Image::from_vec_u8(w0, h0, img.as_raw().clone(), PixelType::U8x3).unwrap();
    let horizontal = if w0 != width { pass(&src, width, h0) } else { src };
    let both = if h0 != height { pass(&horizontal, width, height) } else { horizontal };
    RgbImage::from_raw(width, height, both.into_vec()).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::synthetic::Rng;

    fn clip_config() -> PreprocessConfig {
        PreprocessConfig::from_json(include_str!("../../tests/fixtures/tiny-clip/preprocessor_config.json")).unwrap()
    }

    /// The old path: resize the whole photo, then crop.
    fn reference(img: &RgbImage, cfg: &PreprocessConfig) -> RgbImage {
        let (w, h) = shortest_edge_size(img.width(), img.height(), cfg.shortest_edge);
        center_crop(&resize_full(img, cfg.interpolation, w, h), cfg.crop_width, cfg.crop_height)
    }

    #[test]
    fn fixture_photos_crop_exactly_as_the_full_resize() {
        let cfg = clip_config();
        let files: [&[u8]; 12] = [
            include_bytes!("../../tests/fixtures/images/photo.jpg"),
            include_bytes!("../../tests/fixtures/images/exif_rotated.jpg"),
            include_bytes!("../../tests/fixtures/images/alpha.png"),
            include_bytes!("../../tests/fixtures/images/gray.png"),
            include_bytes!("../../tests/fixtures/images/deep16.png"),
            include_bytes!("../../tests/fixtures/images/photo.webp"),
            include_bytes!("../../tests/fixtures/images/lossless.webp"),
            include_bytes!("../../tests/fixtures/images/anim.gif"),
            include_bytes!("../../tests/fixtures/images/wide.jpg"),
            include_bytes!("../../tests/fixtures/images/tall.png"),
            include_bytes!("../../tests/fixtures/images/small.png"),
            include_bytes!("../../tests/fixtures/images/cmyk.jpg"),
        ];
        for (i, bytes) in files.iter().enumerate() {
            let rgb = crate::imaging::decode::decode_rgb(bytes, &crate::imaging::decode::DecodeLimits::default()).unwrap();
            assert!(resize_and_crop(&rgb, &cfg) == reference(&rgb, &cfg), "fixture {i}");
        }
    }

    #[test]
    fn random_sizes_crop_exactly_as_the_full_resize() {
        let cfg = clip_config();
        let mut rng = Rng::new(20240901);
        for i in 0..50 {
            // Every fifth image is smaller than the crop on at least one side.
            let side = |rng: &mut Rng| 1 + (rng.next_u64() % if i % 5 == 0 { 224 } else { 1200 }) as u32;
            let (w, h) = (side(&mut rng), side(&mut rng));
            let img = resample::tests::noise(&mut rng, w, h);
            assert!(resize_and_crop(&img, &cfg) == reference(&img, &cfg), "{w}x{h}");
        }
    }

    #[test]
    fn thin_photos_crop_exactly_as_the_full_resize() {
        let cfg = clip_config();
        let mut rng = Rng::new(5);
        for (w, h) in [(1, 1), (1, 2000), (2000, 1), (3, 1500), (1200, 7), (224, 225), (225, 224)] {
            let img = resample::tests::noise(&mut rng, w, h);
            assert!(resize_and_crop(&img, &cfg) == reference(&img, &cfg), "{w}x{h}");
        }
    }

    #[test]
    fn shortest_edge_truncates_like_python_int() {
        assert_eq!(shortest_edge_size(640, 480, 224), (298, 224));
        assert_eq!(shortest_edge_size(480, 640, 224), (224, 298));
        assert_eq!(shortest_edge_size(900, 150, 224), (1344, 224));
        assert_eq!(shortest_edge_size(224, 224, 224), (224, 224));
    }

    #[test]
    fn torchvision_crop_offsets_round_half_to_even_and_pad_floored() {
        let tv = PreprocessArithmetic::Torchvision;
        // int(round(d / 2)): 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 3.5 -> 4; even d exact.
        let starts: Vec<i64> = (0..9).map(|d| crop_start(256 + d, 256, tv)).collect();
        assert_eq!(starts, [0, 0, 1, 2, 2, 2, 3, 4, 4]);
        // Smaller than the crop: padded by (crop - size) // 2 before.
        assert_eq!(crop_start(200, 256, tv), -28);
        assert_eq!(crop_start(201, 256, tv), -27);
        assert_eq!(crop_start(201, 256, PreprocessArithmetic::Transformers), -28);
    }

    #[test]
    fn longest_mode_fits_the_long_side_with_rounded_sizes() {
        assert_eq!(longest_edge_size(640, 480, 256, 256), (256, 192));
        assert_eq!(longest_edge_size(203, 200, 256, 256), (256, 252));
        // 300 * 256 / 700 = 109.71 -> 110
        assert_eq!(longest_edge_size(300, 700, 256, 256), (110, 256));
        let cfg = PreprocessConfig {
            resize_mode: ResizeMode::Longest,
            arithmetic: PreprocessArithmetic::Torchvision,
            ..PreprocessConfig::default()
        };
        let g = geometry(300, 700, &cfg);
        assert_eq!(g, Geometry { resized: (96, 224), crop_left_top: (-64, 0) });
        let img = RgbImage::from_pixel(300, 700, image::Rgb([200, 100, 50]));
        let out = resize_and_crop(&img, &cfg);
        assert_eq!((out.get_pixel(63, 100).0, out.get_pixel(64, 100).0), ([0, 0, 0], [200, 100, 50]));
        assert_eq!((out.get_pixel(159, 100).0, out.get_pixel(160, 100).0), ([200, 100, 50], [0, 0, 0]));
    }

    #[test]
    fn squash_resizes_to_the_crop_without_cropping() {
        let cfg = PreprocessConfig { resize_mode: ResizeMode::Squash, ..PreprocessConfig::default() };
        assert_eq!(geometry(900, 150, &cfg), Geometry { resized: (224, 224), crop_left_top: (0, 0) });
    }

    #[test]
    fn clip_configs_serialise_as_before() {
        let json = serde_json::to_string(&clip_config()).unwrap();
        assert!(!json.contains("interpolation") && !json.contains("resize_mode") && !json.contains("arithmetic"), "{json}");
        let open_clip = PreprocessConfig { interpolation: crate::models::config::Interpolation::Bilinear, ..clip_config() };
        let back: PreprocessConfig = serde_json::from_str(&serde_json::to_string(&open_clip).unwrap()).unwrap();
        assert_eq!(back, open_clip);
        assert!(!open_clip.same_as(&clip_config()));
    }

    #[test]
    fn crop_offsets_floor() {
        let img = RgbImage::from_fn(5, 4, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let c = center_crop(&img, 2, 2);
        // top = (4-2)//2 = 1, left = (5-2)//2 = 1
        assert_eq!(c.get_pixel(0, 0).0, [1, 1, 0]);
    }
}
