//! A phone's photo costs a bounded amount of memory (issue "Phones first"): a 12- and a
//! 48-megapixel JPEG (baseline and progressive, 4:2:0, EXIF orientation 6), made here from the
//! shared grocery photos upscaled (with a little noise, as a sensor's), go through the search
//! session (decode, embed with the tiny CLIP, a region) within 64 MB of heap with their file's
//! bytes, counted by this binary's allocator; their reduced decode embeds within the parity
//! bounds of the full-resolution decode's embedding; and a region of a 48-megapixel photo is
//! searched.

#![cfg(not(target_arch = "wasm32"))]

mod common;

use clipmatch::digest::sha256_hex;
use clipmatch::imaging::crop::Region;
use clipmatch::imaging::decode::{decode_photo, decode_rgb, DecodeLimits};
use clipmatch::search::catalog::{Item, ModelInfo, RankingDefaults};
use clipmatch::search::ranking_options::RankingOverrides;
use clipmatch::search::session::SearchSession;
use clipmatch::{Catalog, ClipModel, Embedder, PreprocessConfig, Towers};
use common::*;
use image::RgbImage;

/// Natively; in the browser the crate's own allocator counts (`clipmatch::web::HeapCount`).
#[cfg(not(target_arch = "wasm32"))]
#[global_allocator]
static ALLOC: common::Counting = common::Counting;

/// Most one photo may take, its file's bytes included (what the page's wasm memory may grow by).
const MAX_PHOTO_MEMORY: usize = 64_000_000;

fn embedder() -> Embedder {
    let model = ClipModel::load(TINY_CONFIG, TINY_WEIGHTS, Some(Towers::VisionOnly)).unwrap();
    Embedder::new(
        model,
        PreprocessConfig::from_json(TINY_PREPROCESSOR).unwrap(),
        None,
    )
}

/// A session on the tiny CLIP with a catalog of the fixture photos.
fn loaded_session() -> SearchSession {
    let e = embedder();
    let vectors: Vec<Vec<f32>> = IMAGES
        .iter()
        .map(|(_, bytes, _)| e.embed_photo(bytes).unwrap())
        .collect();
    let pairs: Vec<(Vec<f32>, Vec<f32>)> = vectors.iter().map(|v| (v.clone(), v.clone())).collect();
    let items = IMAGES
        .iter()
        .map(|(file, _, _)| Item {
            id: file.replace(['/', '.'], "-"),
            name: file.to_string(),
            description: None,
            image: file.to_string(),
            thumbnail: None,
            fields: Default::default(),
        })
        .collect();
    let model = ModelInfo {
        name: "tiny".into(),
        weights_sha256: sha256_hex(TINY_WEIGHTS),
        equivalent_weights_sha256: vec![],
        embedding_dim: e.model.embedding_dim(),
    };
    let ranking = RankingDefaults {
        text_weight: 1.0,
        image_weight: 1.0,
        top_k: 4,
        min_score: 0.0,
        tuned: None,
    };
    let catalog = Catalog::new(model, e.preprocess.clone(), ranking, items, &pairs).unwrap();
    let mut s = SearchSession::new(e, sha256_hex(TINY_WEIGHTS));
    s.use_catalog(catalog).unwrap();
    s
}

/// The first `n` shared grocery photos (sorted), or `None` with a message when they are absent.
fn grocery_photos(n: usize) -> Option<Vec<RgbImage>> {
    let dir = shared_data().join("grocery-packages/photos");
    if !dir.is_dir() {
        eprintln!("skipped: {} is absent", dir.display());
        return None;
    }
    let mut files = Vec::new();
    for class in std::fs::read_dir(&dir).unwrap() {
        for product in std::fs::read_dir(class.unwrap().path()).unwrap() {
            for f in std::fs::read_dir(product.unwrap().path()).unwrap() {
                files.push(f.unwrap().path());
            }
        }
    }
    files.sort();
    // Every 15th, so that several classes are seen.
    let picked = files.iter().step_by(15).take(n);
    Some(
        picked
            .map(|f| decode_rgb(&std::fs::read(f).unwrap(), &DecodeLimits::default()).unwrap())
            .collect(),
    )
}

/// `src` upscaled to `width` x `height` (bicubic) with a little deterministic noise (up to 6
/// levels), as a phone's sensor leaves it.
fn phone_pixels(src: &RgbImage, width: u32, height: u32) -> RgbImage {
    use fast_image_resize::{
        images::Image, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer,
    };
    let from = Image::from_vec_u8(
        src.width(),
        src.height(),
        src.as_raw().clone(),
        PixelType::U8x3,
    )
    .unwrap();
    let mut to = Image::new(width, height, PixelType::U8x3);
    let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom));
    Resizer::new().resize(&from, &mut to, &opts).unwrap();
    let mut raw = to.into_vec();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for v in raw.iter_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *v = (*v as i32 + (state % 13) as i32 - 6).clamp(0, 255) as u8;
    }
    RgbImage::from_raw(width, height, raw).unwrap()
}

/// An EXIF block (TIFF, big-endian) whose one tag is the orientation.
fn exif_orientation(orientation: u16) -> Vec<u8> {
    let mut t = b"MM\0\x2a\0\0\0\x08".to_vec();
    t.extend_from_slice(&1u16.to_be_bytes());
    t.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1]); // Orientation, SHORT, 1 value
    t.extend_from_slice(&orientation.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    t
}

/// `pixels` as a phone writes them: JPEG quality 90, 4:2:0, EXIF orientation 6 (shown turned a
/// quarter clockwise), baseline or progressive.
fn phone_jpeg(pixels: &RgbImage, progressive: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 90);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    enc.set_progressive(progressive);
    enc.add_exif_metadata(&exif_orientation(6)).unwrap();
    enc.encode(
        pixels.as_raw(),
        pixels.width() as u16,
        pixels.height() as u16,
        jpeg_encoder::ColorType::Rgb,
    )
    .unwrap();
    out
}

const PHONE_SIZES: [(&str, u32, u32); 2] = [("12 MP", 4000, 3000), ("48 MP", 8000, 6000)];

#[test]
fn a_phone_photo_takes_at_most_64_mb_through_the_session() {
    let _guard = serial();
    let Some(photos) = grocery_photos(1) else {
        return;
    };
    let mut session = loaded_session();
    let overrides = RankingOverrides::default();
    for (size, width, height) in PHONE_SIZES {
        let pixels = phone_pixels(&photos[0], width, height);
        for progressive in [false, true] {
            let jpeg = phone_jpeg(&pixels, progressive);
            let kind = if progressive {
                "progressive"
            } else {
                "baseline"
            };
            let ((ranked, region), heap) = peak_heap(|| {
                let start = std::time::Instant::now();
                let ranked = session
                    .rank_photo(&jpeg, &overrides)
                    .map(|r| r.matches.len());
                let ms = start.elapsed().as_secs_f64() * 1e3;
                // A box around a quarter of the upright photo (6000x8000), then the whole again.
                let region = Region {
                    x: 1000 * width / 8000,
                    y: 2000 * width / 8000,
                    width: 3000 * width / 8000,
                    height: 3000 * width / 8000,
                };
                let region = session
                    .rank_region(region, &overrides)
                    .map(|r| r.matches.len());
                let whole = session
                    .rank_whole_photo(&overrides)
                    .map(|r| r.matches.len());
                eprintln!("{size} {kind}: decode + embed + rank {ms:.0} ms");
                (ranked.and(whole), region)
            });
            let total = heap + jpeg.len();
            eprintln!(
                "{size} {kind} ({:.1} MB file): peak heap {:.1} MB, with the file {:.1} MB; kept {:?} of {:?}",
                jpeg.len() as f64 / 1e6,
                heap as f64 / 1e6,
                total as f64 / 1e6,
                session.kept_size(),
                session.photo_size()
            );
            assert_eq!(ranked.unwrap(), 4, "{size} {kind}");
            assert_eq!(region.unwrap(), 4, "{size} {kind}: the region is searched");
            assert_eq!(
                session.photo_size(),
                Some((height, width)),
                "{size} {kind}: upright size"
            );
            assert!(
                total <= MAX_PHOTO_MEMORY,
                "{size} {kind}: {total} bytes with the file"
            );
        }
    }
}

#[test]
fn reduced_decodes_embed_within_the_parity_bounds_of_full_resolution() {
    let _guard = serial();
    let Some(photos) = grocery_photos(6) else {
        return;
    };
    let e = embedder();
    let limits = DecodeLimits::default();
    for (size, width, height) in PHONE_SIZES {
        for progressive in [false, true] {
            let kind = if progressive {
                "progressive"
            } else {
                "baseline"
            };
            // The photos side by side (each test here holds `serial()`, so nothing else runs).
            use rayon::prelude::*;
            let each: Vec<(String, Vec<f32>, Vec<f32>, i32)> = photos.par_iter().enumerate().map(|(i, photo)| {
                let jpeg = phone_jpeg(&phone_pixels(photo, width, height), progressive);
                let decoded = decode_photo(&jpeg, &limits).unwrap();
                assert!(!decoded.full_resolution(), "{size}: decoded reduced");
                let whole = decode_rgb(&jpeg, &limits).unwrap();
                assert_eq!(
                    decoded.upright_size,
                    whole.dimensions(),
                    "{size} {kind}: upright size"
                );
                let ours =
                    clipmatch::imaging::preprocess::resize_and_crop(&decoded.rgb, &e.preprocess);
                let theirs = clipmatch::imaging::preprocess::resize_and_crop(&whole, &e.preprocess);
                let levels = ours
                    .as_raw()
                    .iter()
                    .zip(theirs.as_raw())
                    .map(|(a, b)| (*a as i32 - *b as i32).abs())
                    .max()
                    .unwrap();
                (format!("{size} {kind} photo {i}"), e.embed_rgb(&decoded.rgb).unwrap(), e.embed_rgb(&whole).unwrap(), levels)
            }).collect();
            let worst_levels = each.iter().map(|p| p.3).max().unwrap_or(0);
            let (reduced, full): (Vec<(String, Vec<f32>)>, Vec<Vec<f32>>) = each.into_iter().map(|(name, ours, whole, _)| ((name, ours), whole)).unzip();
            let refs: Vec<&[f32]> = full.iter().map(Vec::as_slice).collect();
            for ((name, _), (c, cc)) in reduced.iter().zip(agreement(
                &reduced
                    .iter()
                    .map(|(_, v)| v.as_slice())
                    .collect::<Vec<_>>(),
                &refs,
            )) {
                eprintln!("{name}: cosine {c:.6}, centred {cc:.6}");
            }
            eprintln!("{size} {kind}: the model's input differs by at most {worst_levels} levels");
            assert_embeddings_match("reduced decode", &reduced, &refs);
        }
    }
}

#[test]
fn a_progressive_jpeg_decodes_reduced_to_the_same_pixels_as_its_baseline_twin() {
    // The same quantised coefficients, written in one scan or in many: the progressive decode
    // keeps only what the reduced IDCT reads (vendor/jpeg-decoder/PATCHES.md), so any
    // coefficient lost or refined wrongly would show here.
    let _guard = serial();
    let Some(photos) = grocery_photos(2) else { return };
    // Side by side (this test holds `serial()`, so nothing else runs).
    use rayon::prelude::*;
    let cases: Vec<_> = (0..photos.len()).flat_map(|i| [(4000, 3000), (8000, 6000), (16_000, 2048)].map(|s| (i, s))).collect();
    cases.par_iter().for_each(|&(i, (width, height))| {
        let pixels = phone_pixels(&photos[i], width, height);
        let baseline = decode_photo(&phone_jpeg(&pixels, false), &DecodeLimits::default()).unwrap();
        let progressive = decode_photo(&phone_jpeg(&pixels, true), &DecodeLimits::default()).unwrap();
        assert!(!baseline.full_resolution());
        assert!(baseline.rgb == progressive.rgb, "photo {i} at {width}x{height}: the pixels differ");
    });
}

#[test]
fn libjpeg_progressive_scans_decode_reduced_to_their_baseline_twins_pixels() {
    // Pillow's progressive JPEG refines bits (successive approximation), which jpeg-encoder's
    // above does not: the refinement of coefficients that are not kept is exercised here, at
    // every reduced scale.
    use clipmatch::imaging::reduced::decode_scaled;
    let baseline: &[u8] = include_bytes!("fixtures/images/large_baseline.jpg");
    let progressive: &[u8] = include_bytes!("fixtures/images/large_progressive.jpg");
    for eighths in [4, 2, 1] {
        let a = decode_scaled(baseline, eighths, 1 << 30).unwrap();
        let b = decode_scaled(progressive, eighths, 1 << 30).unwrap();
        assert_eq!(a.rgb.width(), 2048 * eighths / 8);
        assert!(a.rgb == b.rgb, "at {eighths}/8 the pixels differ");
    }
    // Through the session's decode: at 1/2, turned upright by EXIF orientation 8.
    let limits = DecodeLimits::default();
    let (a, b) = (decode_photo(baseline, &limits).unwrap(), decode_photo(progressive, &limits).unwrap());
    assert_eq!((a.rgb.dimensions(), a.upright_size), ((1024, 1024), (2048, 2048)));
    assert!(a.rgb == b.rgb);
    let full = decode_rgb(progressive, &limits).unwrap();
    let e = embedder();
    let c = cosine(&e.embed_rgb(&b.rgb).unwrap(), &e.embed_rgb(&full).unwrap());
    assert!(c >= 0.9999, "cosine to the full-resolution decode's embedding {c} < 0.9999");
}
