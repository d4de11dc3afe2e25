//! Bad photos get a clear error, natively and in the browser, and the next photo still works.

use crate::common;

use clipmatch::imaging::decode::{decode_rgb, DecodeLimits};
use clipmatch::ImageError;
use common::{image, png_header};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn decode(bytes: &[u8]) -> Result<(), ImageError> {
    decode_rgb(bytes, &DecodeLimits::default()).map(|_| ())
}

#[test]
fn zero_byte_file_is_refused() {
    let err = decode(&[]).unwrap_err();
    assert!(matches!(err, ImageError::Empty));
    assert_eq!(err.to_string(), "the file is empty (0 bytes)");
}

#[test]
fn text_file_named_jpg_is_refused() {
    let err = decode(b"name,price\nmilk,1.20\n").unwrap_err();
    assert!(matches!(err, ImageError::UnknownFormat), "{err}");
}

#[test]
fn truncated_jpeg_is_refused() {
    let (photo, _) = image("images/photo.jpg");
    for cut in [photo.len() / 2, photo.len() - 10, 600] {
        let err = decode(&photo[..cut]).unwrap_err();
        assert!(matches!(err, ImageError::Corrupt { .. }), "cut at {cut}: {err}");
        assert!(err.to_string().contains("JPEG"), "{err}");
    }
}

#[test]
fn truncated_png_and_webp_are_refused() {
    // A GIF cut after its first frame is still a whole first frame, so it is cut earlier.
    for (file, keep) in [("images/tall.png", 2), ("images/photo.webp", 2), ("images/anim.gif", 20)] {
        let (bytes, _) = image(file);
        let err = decode(&bytes[..bytes.len() / keep]).err();
        assert!(matches!(err, Some(ImageError::Corrupt { .. })), "{file}: {err:?}");
    }
}

#[test]
fn decompression_bomb_is_refused_from_its_header() {
    let bomb = png_header(30_000, 30_000);
    assert!(bomb.len() < 100);
    let err = decode(&bomb).unwrap_err();
    match &err {
        ImageError::TooLarge { width, height, .. } => assert_eq!((*width, *height), (30_000, 30_000)),
        other => panic!("expected TooLarge, got {other}"),
    }
    assert!(err.to_string().contains("30000x30000"), "{err}");
}

#[test]
fn oversized_file_is_refused() {
    let limits = DecodeLimits {
        max_file_bytes: 1000,
        ..DecodeLimits::default()
    };
    let (photo, _) = image("images/photo.jpg");
    let err = decode_rgb(photo, &limits).unwrap_err();
    assert!(matches!(err, ImageError::FileTooLarge { .. }), "{err}");
}

#[test]
fn other_formats_are_named() {
    let bmp = b"BM\x3a\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0";
    let err = decode(bmp).unwrap_err();
    assert!(err.to_string().contains("BMP"), "{err}");
}

#[test]
fn a_good_photo_decodes_after_bad_ones() {
    let _ = decode(&[]);
    let _ = decode(&png_header(30_000, 30_000));
    let (photo, _) = image("images/photo.jpg");
    let rgb = decode_rgb(photo, &DecodeLimits::default()).unwrap();
    assert_eq!(rgb.dimensions(), (640, 480));
}
