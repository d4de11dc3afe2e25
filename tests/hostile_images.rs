//! Hostile photos through the entry point the CLI and the page use (`Embedder`): each is refused
//! with a one-line reason or embedded, within a second and 300 MB of heap (counted by this
//! binary's allocator), natively and in Chromium. Thin photos are refused by their aspect ratio
//! from the header; were they not, preprocessing alone would still stay small (it resizes only
//! what the centre crop keeps).

mod common;

use std::sync::OnceLock;

use clipmatch::imaging::decode::{decode_rgb, rgb_from_rgba, DecodeLimits, MAX_ASPECT_RATIO, MAX_DECODE_BYTES};
#[cfg(not(target_arch = "wasm32"))]
use clipmatch::imaging::thumbnail::thumbnail_jpeg;
use clipmatch::{ClipModel, Embedder, Error, ImageError, PreprocessConfig, Towers};
use common::{gradient_png, peak_heap, serial, timed, TINY_CONFIG, TINY_PREPROCESSOR, TINY_WEIGHTS};
use image::RgbImage;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// Natively; in the browser the crate's own allocator counts (`clipmatch::web::HeapCount`).
#[cfg(not(target_arch = "wasm32"))]
#[global_allocator]
static ALLOC: common::Counting = common::Counting;

const MAX_HEAP: usize = 300_000_000;
const MAX_SECONDS: f64 = 1.0;

fn embedder() -> &'static Embedder {
    static E: OnceLock<Embedder> = OnceLock::new();
    E.get_or_init(|| {
        let model = ClipModel::load(TINY_CONFIG, TINY_WEIGHTS, Some(Towers::VisionOnly)).unwrap();
        Embedder::new(model, PreprocessConfig::from_json(TINY_PREPROCESSOR).unwrap(), None)
    })
}

/// Embeds `bytes` as the page does, asserting the time and heap bounds; prints the figures.
fn embed_bounded(what: &str, bytes: &[u8]) -> Result<Vec<f32>, Error> {
    let e = embedder();
    let ((result, heap), time) = timed(|| peak_heap(|| e.embed_photo(bytes)));
    eprintln!("{what}: peak heap {:.1} MB, {time:?}", heap as f64 / 1e6);
    assert!(heap < MAX_HEAP, "{what}: {heap} bytes of heap");
    if let Some(t) = time {
        assert!(t.as_secs_f64() < MAX_SECONDS, "{what}: {t:?}");
    }
    result
}

fn thin_message(width: u32, height: u32) -> String {
    format!(
        "the image is {width}x{height} pixels, too thin to search: its long side may be at most 20 times its short side"
    )
}

#[test]
fn thin_photos_are_refused_quickly_with_their_size_in_the_reason() {
    let _s = serial();
    assert_eq!(MAX_ASPECT_RATIO, 20);
    for (w, h) in [(1, 16384), (16384, 1), (1, 9000), (12, 241)] {
        let png = gradient_png(w, h);
        let err = embed_bounded(&format!("{w}x{h} PNG"), &png).unwrap_err();
        assert!(matches!(err, Error::Image(ImageError::TooThin { .. })), "{w}x{h}: {err}");
        assert_eq!(err.to_string(), thin_message(w, h));
        assert!(!err.to_string().contains('\n'));
    }
}

#[test]
fn a_photo_at_the_aspect_ratio_limit_is_embedded() {
    let _s = serial();
    for (w, h) in [(12, 240), (240, 12), (1, 20)] {
        let v = embed_bounded(&format!("{w}x{h} PNG"), &gradient_png(w, h)).unwrap();
        assert_eq!(v.len(), embedder().model.embedding_dim());
        assert!(v.iter().all(|x| x.is_finite()));
    }
}

#[test]
fn thin_pixels_from_a_canvas_are_refused_too() {
    let _s = serial();
    let rgba = vec![200u8; 16384 * 4];
    let err = rgb_from_rgba(&rgba, 1, 16384, &DecodeLimits::default()).unwrap_err();
    assert_eq!(err.to_string(), thin_message(1, 16384));
    let err = rgb_from_rgba(&rgba, 16384, 1, &DecodeLimits::default()).unwrap_err();
    assert_eq!(err.to_string(), thin_message(16384, 1));
}

#[test]
fn preprocessing_a_thin_photo_keeps_to_the_crop_even_unrefused() {
    let _s = serial();
    let e = embedder();
    for (w, h) in [(1, 16384), (16384, 1), (1, 9000)] {
        let rgb = RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 251) as u8, (y % 241) as u8, 7]));
        let ((v, heap), time) = timed(|| peak_heap(|| e.embed_pixels(&[e.pixel_values_of(&rgb)]).unwrap()));
        eprintln!("{w}x{h} pixels preprocessed and embedded: peak heap {:.1} MB, {time:?}", heap as f64 / 1e6);
        assert!(heap < 30_000_000, "{w}x{h}: {heap} bytes");
        assert!(time.is_none_or(|t| t.as_secs_f64() < MAX_SECONDS), "{w}x{h}: {time:?}");
        assert!(v[0].iter().all(|x| x.is_finite()));
    }
}

/// Thumbnails are made natively only (catalog building): the wasm package has no JPEG encoder.
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn thumbnails_of_thin_photos_are_small_and_quick() {
    let _s = serial();
    for (w, h, want) in [(1, 16384, (1, 256)), (16384, 1, (256, 1))] {
        let rgb = RgbImage::from_pixel(w, h, image::Rgb([10, 200, 30]));
        let (jpeg, heap) = peak_heap(|| thumbnail_jpeg(&rgb, 256).unwrap());
        assert!(heap < 5_000_000, "{w}x{h}: {heap} bytes");
        let back = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((back.width(), back.height()), want);
    }
}

#[test]
fn a_phone_sized_jpeg_is_embedded_within_the_bounds() {
    let _s = serial();
    let (w, h) = (4032, 3024);
    let img = RgbImage::from_fn(w, h, |x, y| {
        let n = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) >> 24;
        image::Rgb([(x / 16) as u8 ^ n as u8, (y / 12) as u8, ((x + y) / 28) as u8])
    });
    let mut jpeg = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
    drop(img);
    let e = embedder();
    let ((v, heap), time) = timed(|| peak_heap(|| e.embed_photo(&jpeg).unwrap()));
    eprintln!("{w}x{h} JPEG ({} bytes): peak heap {:.1} MB, {time:?}", jpeg.len(), heap as f64 / 1e6);
    assert!(heap < MAX_HEAP, "{heap} bytes");
    // Decoding 12 megapixels takes about 0.1 s in a release build; allow for slow machines.
    assert!(time.is_none_or(|t| t.as_secs_f64() < 5.0), "{time:?}");
    assert_eq!(v.len(), e.model.embedding_dim());
}

/// A GIF whose 1 x 1 screen holds a first frame of `width` x `height` (one pixel of data).
fn gif_with_large_frame(width: u16, height: u16) -> Vec<u8> {
    let mut g = b"GIF89a".to_vec();
    g.extend_from_slice(&[1, 0, 1, 0, 0x80, 0, 0]); // 1 x 1 screen, 2-colour global table
    g.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
    g.push(0x2C);
    g.extend_from_slice(&[0, 0, 0, 0]);
    g.extend_from_slice(&width.to_le_bytes());
    g.extend_from_slice(&height.to_le_bytes());
    g.push(0);
    g.extend_from_slice(&[2, 2, 0x44, 0x01, 0, 0x3B]); // LZW: clear, pixel 0, end; trailer
    g
}

#[test]
fn a_gif_frame_larger_than_its_screen_is_held_to_the_limits() {
    let _s = serial();
    // Over the pixel limits: refused from the file's first bytes.
    let huge = gif_with_large_frame(16_385, 16_385);
    assert!(huge.len() < 50);
    let (err, heap) = peak_heap(|| decode_rgb(&huge, &DecodeLimits::default()).unwrap_err());
    assert!(matches!(err, ImageError::TooLarge { width: 16_385, height: 16_385, .. }), "{err}");
    assert!(heap < 1_000_000, "{heap} bytes");
    // Within them but over the memory a photo may take: refused before the frame's buffer.
    let limits = DecodeLimits { max_decode_bytes: 64 << 20, ..DecodeLimits::default() };
    let big = gif_with_large_frame(5000, 5000); // 100 MB as RGBA
    let (err, heap) = peak_heap(|| decode_rgb(&big, &limits).unwrap_err());
    assert_eq!(err.to_string(), "decoding the image needs more than the 64 MiB of memory a photo may take");
    assert!(heap < 1_000_000, "{heap} bytes");
    // Within both: whatever the frame's data, nothing past the decode limit is allocated.
    let (result, heap) = peak_heap(|| decode_rgb(&gif_with_large_frame(4000, 4000), &DecodeLimits::default()));
    eprintln!("1x1 GIF with a 4000x4000 frame: {:?}, peak heap {:.1} MB", result.as_ref().map(|i| i.dimensions()), heap as f64 / 1e6);
    assert!((heap as u64) < MAX_DECODE_BYTES, "{heap} bytes");
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn the_cli_refuses_a_thin_photo_with_one_line() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let thin = dir.path().join("thin.png");
    std::fs::write(&thin, gradient_png(1, 16384)).unwrap();
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip");
    let (out, time) = timed(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_clipmatch"))
            .args(["embed", "--model"])
            .arg(&model)
            .arg("--image")
            .arg(&thin)
            .output()
            .unwrap()
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].ends_with(&thin_message(1, 16384)), "{stderr}");
    assert!(lines[0].contains("too thin"), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["images"].as_object().unwrap().len(), 0);
    assert!(time.unwrap().as_secs_f64() < 5.0, "{time:?}");
}
