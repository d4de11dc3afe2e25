//! Metadata bombs: photos whose colour profile, text, EXIF or XMP would take far more memory
//! than their pixels (a PNG colour profile that inflates to 256 MiB, megabytes of JPEG
//! segments, a WebP chunk that claims 2 GiB, a GIF's XMP). Each is made here, in code, around a
//! small image; decoding it adds less than 16 MB to the heap (counted by this binary's
//! allocator) over decoding the plain image, and either gives the plain image's pixels (the
//! EXIF orientation still applied) or fails with one line.

#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::io::Write;

use clipmatch::imaging::decode::{decode_rgb, DecodeLimits};
use clipmatch::ImageError;
use common::{peak_heap, serial};
use image::RgbImage;

/// Natively; in the browser the crate's own allocator counts (`clipmatch::web::HeapCount`).
#[cfg(not(target_arch = "wasm32"))]
#[global_allocator]
static ALLOC: common::Counting = common::Counting;

/// Most a bomb may add to the heap over its plain image.
const MAX_EXTRA_HEAP: usize = 16_000_000;

const WIDTH: u32 = 64;
const HEIGHT: u32 = 48;

fn picture() -> RgbImage {
    RgbImage::from_fn(WIDTH, HEIGHT, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x + y) * 2) as u8]))
}

fn encoded(format: image::ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    let img = image::DynamicImage::ImageRgb8(picture());
    let gif = format == image::ImageFormat::Gif;
    let img = if gif { image::DynamicImage::ImageRgba8(img.to_rgba8()) } else { img };
    img.write_to(&mut std::io::Cursor::new(&mut out), format).unwrap();
    out
}

/// Decodes `bytes`, asserting that it adds less than [`MAX_EXTRA_HEAP`] to the heap over
/// decoding `plain`, and that an error is one line.
fn decode_bounded(what: &str, bytes: &[u8], plain: &[u8]) -> Result<RgbImage, ImageError> {
    let limits = DecodeLimits::default();
    let (plain_result, plain_heap) = peak_heap(|| decode_rgb(plain, &limits));
    plain_result.unwrap();
    let (result, heap) = peak_heap(|| decode_rgb(bytes, &limits));
    eprintln!(
        "{what} ({} bytes): peak heap {:.1} MB (plain {:.1} MB): {:?}",
        bytes.len(),
        heap as f64 / 1e6,
        plain_heap as f64 / 1e6,
        result.as_ref().map(|i| i.dimensions()).map_err(|e| e.to_string())
    );
    assert!(heap < plain_heap + MAX_EXTRA_HEAP, "{what}: {heap} bytes of heap");
    if let Err(e) = &result {
        assert!(!e.to_string().contains('\n'), "{what}: {e}");
    }
    result
}

/// A zlib stream of `mib` MiB of zeros (about a thousandth of that).
fn zlib_zeros(mib: usize) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let block = vec![0u8; 1 << 20];
    for _ in 0..mib {
        z.write_all(&block).unwrap();
    }
    z.finish().unwrap()
}

/// An EXIF block (TIFF, big-endian) whose one tag is the orientation, `padding` bytes after it.
fn exif_with_orientation(orientation: u16, padding: usize) -> Vec<u8> {
    let mut t = b"MM\0\x2a\0\0\0\x08".to_vec();
    t.extend_from_slice(&1u16.to_be_bytes());
    t.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1]); // Orientation, SHORT, 1 value
    t.extend_from_slice(&orientation.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // value padding, no next IFD
    t.resize(t.len() + padding, 0);
    t
}

// ---- PNG ----

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = (data.len() as u32).to_be_bytes().to_vec();
    c.extend_from_slice(kind);
    c.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    c.extend_from_slice(&crc.finalize().to_be_bytes());
    c
}

/// `png` with `chunks` after its IHDR chunk (the 8-byte signature and 25 bytes of IHDR).
fn png_with(png: &[u8], chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut out = png[..33].to_vec();
    for c in chunks {
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&png[33..]);
    out
}

#[test]
fn a_png_colour_profile_bomb_is_not_inflated() {
    let _s = serial();
    let plain = encoded(image::ImageFormat::Png);
    let mut iccp = b"bomb\0\0".to_vec();
    iccp.extend_from_slice(&zlib_zeros(256));
    let bomb = png_with(&plain, &[png_chunk(b"iCCP", &iccp)]);
    assert!(bomb.len() < 1_000_000);
    let img = decode_bounded("PNG with an iCCP chunk of 256 MiB inflated", &bomb, &plain).unwrap();
    assert_eq!(img, picture());
}

#[test]
fn png_text_bombs_are_not_inflated() {
    let _s = serial();
    let plain = encoded(image::ImageFormat::Png);
    let zeros = zlib_zeros(256);
    let mut ztxt = b"Comment\0\0".to_vec();
    ztxt.extend_from_slice(&zeros);
    let mut itxt = b"XML:com.adobe.xmp\0\x01\0\0\0".to_vec();
    itxt.extend_from_slice(&zeros);
    for (what, chunk) in [("zTXt", png_chunk(b"zTXt", &ztxt)), ("iTXt", png_chunk(b"iTXt", &itxt))] {
        let bomb = png_with(&plain, &[chunk]);
        let what = format!("PNG with a {what} chunk of 256 MiB inflated");
        let img = decode_bounded(&what, &bomb, &plain).unwrap();
        assert_eq!(img, picture());
    }
}

#[test]
fn pngs_with_megabytes_of_text_or_exif_are_refused_in_one_line_or_decoded() {
    let _s = serial();
    let plain = encoded(image::ImageFormat::Png);
    let mut text = b"Comment\0".to_vec();
    text.resize(24 << 20, b'x');
    let many: Vec<Vec<u8>> = (0..24).map(|_| png_chunk(b"tEXt", &text[..(1 << 20)])).collect();
    let cases = [
        ("a 24 MiB tEXt chunk", vec![png_chunk(b"tEXt", &text)]),
        ("24 tEXt chunks of 1 MiB", many),
        ("a 24 MiB eXIf chunk", vec![png_chunk(b"eXIf", &exif_with_orientation(6, 24 << 20))]),
    ];
    for (what, chunks) in cases {
        let bomb = png_with(&plain, &chunks);
        match decode_bounded(&format!("PNG with {what}"), &bomb, &plain) {
            Ok(img) => assert_eq!(img.dimensions(), if what.contains("eXIf") { (HEIGHT, WIDTH) } else { (WIDTH, HEIGHT) }),
            Err(e) => assert!(matches!(e, ImageError::MetadataTooLarge { .. }), "{what}: {e}"),
        }
    }
}

// ---- JPEG ----

fn jpeg_segment(marker: u8, data: &[u8]) -> Vec<u8> {
    let mut s = vec![0xFF, marker];
    s.extend_from_slice(&(data.len() as u16 + 2).to_be_bytes());
    s.extend_from_slice(data);
    s
}

/// `jpeg` with `segments` right after its start-of-image marker.
fn jpeg_with(jpeg: &[u8], segments: &[Vec<u8>]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    for s in segments {
        out.extend_from_slice(s);
    }
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// The largest APP1 EXIF segment, turning the image a quarter (orientation 6).
fn jpeg_exif_segment() -> Vec<u8> {
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend_from_slice(&exif_with_orientation(6, 0));
    exif.resize(65_533, 0);
    jpeg_segment(0xE1, &exif)
}

#[test]
fn jpegs_with_megabytes_of_metadata_segments_decode_within_the_bound_and_keep_their_orientation() {
    let _s = serial();
    let plain = jpeg_with(&encoded(image::ImageFormat::Jpeg), &[jpeg_exif_segment()]);
    let upright = decode_rgb(&plain, &DecodeLimits::default()).unwrap();
    assert_eq!(upright.dimensions(), (HEIGHT, WIDTH));
    let full = 65_533;
    let xmp = {
        let mut d = b"http://ns.adobe.com/xap/1.0/\0".to_vec();
        d.resize(full, b' ');
        jpeg_segment(0xE1, &d)
    };
    let icc = |seq: u8| {
        let mut d = b"ICC_PROFILE\0".to_vec();
        d.extend_from_slice(&[seq, 255]);
        d.resize(full, 0);
        jpeg_segment(0xE2, &d)
    };
    // Extended XMP: one 24 MB block in parts, each naming its offset, as Google's depth photos.
    let part = full - 35 - 40;
    let parts = 380;
    let extended = |i: usize| {
        let mut d = b"http://ns.adobe.com/xmp/extension/\0".to_vec();
        d.extend_from_slice(&[b'A'; 32]);
        d.extend_from_slice(&((part * parts) as u32).to_be_bytes());
        d.extend_from_slice(&((part * i) as u32).to_be_bytes());
        d.resize(full, b'x');
        jpeg_segment(0xE1, &d)
    };
    let cases: [(&str, Vec<Vec<u8>>); 5] = [
        ("380 EXIF segments", (0..380).map(|_| jpeg_exif_segment()).collect()),
        ("380 XMP segments", (0..380).map(|_| xmp.clone()).collect()),
        ("an ICC profile of 255 segments", (1..=255).map(icc).collect()),
        ("an extended XMP block of 24 MB", (0..parts).map(extended).collect()),
        ("380 comments", (0..380).map(|_| jpeg_segment(0xFE, &vec![b'c'; full])).collect()),
    ];
    for (what, mut segments) in cases {
        segments.push(jpeg_exif_segment());
        let bomb = jpeg_with(&encoded(image::ImageFormat::Jpeg), &segments);
        assert!(bomb.len() > 16_000_000);
        let img = decode_bounded(&format!("JPEG with {what}"), &bomb, &plain).unwrap();
        assert_eq!(img, upright, "{what}");
    }
}

#[test]
fn a_jpeg_segment_longer_than_the_file_is_refused_in_one_line() {
    let _s = serial();
    let plain = encoded(image::ImageFormat::Jpeg);
    let mut bomb = plain[..2].to_vec();
    bomb.extend_from_slice(&[0xFF, 0xE1, 0xFF, 0xFF]);
    bomb.extend_from_slice(b"Exif\0\0");
    bomb.extend_from_slice(&exif_with_orientation(6, 100));
    let err = decode_bounded("JPEG whose EXIF segment runs past its end", &bomb, &plain).unwrap_err();
    assert!(matches!(err, ImageError::Corrupt { .. }), "{err}");
}

// ---- WebP ----

fn riff_chunk(kind: &[u8; 4], declared_len: u32, data: &[u8]) -> Vec<u8> {
    let mut c = kind.to_vec();
    c.extend_from_slice(&declared_len.to_le_bytes());
    c.extend_from_slice(data);
    if data.len() % 2 == 1 {
        c.push(0);
    }
    c
}

/// An extended (VP8X) WebP of the lossless picture with `before` chunks ahead of its image data
/// and `after` chunks behind it; `flags` are VP8X's (0x20 ICC, 0x08 EXIF, 0x04 XMP).
fn webp_with(flags: u8, before: &[Vec<u8>], after: &[Vec<u8>]) -> Vec<u8> {
    let lossless = encoded(image::ImageFormat::WebP);
    assert_eq!(&lossless[12..16], b"VP8L");
    let mut vp8x = vec![flags, 0, 0, 0];
    vp8x.extend_from_slice(&(WIDTH - 1).to_le_bytes()[..3]);
    vp8x.extend_from_slice(&(HEIGHT - 1).to_le_bytes()[..3]);
    let mut body = b"WEBP".to_vec();
    body.extend_from_slice(&riff_chunk(b"VP8X", 10, &vp8x));
    before.iter().for_each(|c| body.extend_from_slice(c));
    body.extend_from_slice(&lossless[12..]);
    after.iter().for_each(|c| body.extend_from_slice(c));
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

#[test]
fn webp_chunk_bombs_are_not_read_or_are_refused_in_one_line() {
    let _s = serial();
    let exif = exif_with_orientation(6, 0);
    let plain = webp_with(0x08, &[], &[riff_chunk(b"EXIF", exif.len() as u32, &exif)]);
    let upright = decode_rgb(&plain, &DecodeLimits::default()).unwrap();
    assert_eq!(upright.dimensions(), (HEIGHT, WIDTH));
    let exif_chunk = riff_chunk(b"EXIF", exif.len() as u32, &exif);
    let big = vec![0u8; 24 << 20];
    let big_exif = exif_with_orientation(6, 24 << 20);
    let cases = [
        ("a 24 MiB ICCP chunk", webp_with(0x28, &[riff_chunk(b"ICCP", big.len() as u32, &big)], &[exif_chunk.clone()])),
        ("an ICCP chunk claiming 2 GiB", webp_with(0x28, &[], &[exif_chunk.clone(), riff_chunk(b"ICCP", 2 << 30, &[1; 64])])),
        ("a 24 MiB XMP chunk", webp_with(0x0C, &[], &[exif_chunk.clone(), riff_chunk(b"XMP ", big.len() as u32, &big)])),
        ("an EXIF chunk claiming 2 GiB", webp_with(0x08, &[], &[riff_chunk(b"EXIF", 2 << 30, &exif)])),
        ("a 24 MiB EXIF chunk", webp_with(0x08, &[], &[riff_chunk(b"EXIF", big_exif.len() as u32, &big_exif)])),
    ];
    for (what, bomb) in cases {
        match decode_bounded(&format!("WebP with {what}"), &bomb, &plain) {
            Ok(img) => assert_eq!(img, upright, "{what}"),
            Err(e) => assert!(
                matches!(e, ImageError::MetadataTooLarge { .. } | ImageError::Corrupt { .. }),
                "{what}: {e}"
            ),
        }
    }
}

// ---- GIF ----

/// An extension block: introducer, `label`, then `data` in sub-blocks of 255 bytes.
fn gif_extension(label: u8, first: &[u8], data: &[u8]) -> Vec<u8> {
    let mut e = vec![0x21, label];
    if !first.is_empty() {
        e.push(first.len() as u8);
        e.extend_from_slice(first);
    }
    for block in data.chunks(255) {
        e.push(block.len() as u8);
        e.extend_from_slice(block);
    }
    e.push(0);
    e
}

/// `gif` with `blocks` right after its screen descriptor and global colour table.
fn gif_with(gif: &[u8], blocks: &[Vec<u8>]) -> Vec<u8> {
    let flags = gif[10];
    let at = 13 + if flags & 0x80 != 0 { 3 << ((flags & 7) + 1) } else { 0 };
    let mut out = gif[..at].to_vec();
    blocks.iter().for_each(|b| out.extend_from_slice(b));
    out.extend_from_slice(&gif[at..]);
    out
}

#[test]
fn gif_metadata_extensions_decode_within_the_bound() {
    let _s = serial();
    let plain = encoded(image::ImageFormat::Gif);
    let picture = decode_rgb(&plain, &DecodeLimits::default()).unwrap();
    let data = vec![b'x'; 24 << 20];
    let cases = [
        ("24 MB of XMP", gif_extension(0xFF, b"XMP DataXMP", &data)),
        ("a 24 MB ICC profile", gif_extension(0xFF, b"ICCRGBG1012", &data)),
        ("a 24 MB comment", gif_extension(0xFE, b"", &data)),
        ("a 24 MB unknown application extension", gif_extension(0xFF, b"SOMEAPP1.00", &data)),
    ];
    for (what, block) in cases {
        let bomb = gif_with(&plain, &[block]);
        let img = decode_bounded(&format!("GIF with {what}"), &bomb, &plain).unwrap();
        assert_eq!(img, picture, "{what}");
    }
}
