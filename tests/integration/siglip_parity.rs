//! SigLIP on candle against transformers' `SiglipModel` (tests/fixtures/models/siglip2-base-narrow,
//! written by transformers 5, with its reference JSON): token ids identical, and
//! `get_image_features` / `get_text_features` with cosine >= 0.9999 and centred cosine >= 0.999.
//! The image tower on this crate's kernels ([`on_our_kernels`], the default engine) is held to the
//! same bounds, and to candle-transformers' on the same weights.
//! The image tower is fed the processor's own inputs (the reference pixel PNGs), so that tests the
//! model, not the resizing; `photos_through_the_squash_pipeline_match_transformers` then goes
//! from the photo files through the crate's decoding and squash + bicubic preprocessing.

#![cfg(not(target_arch = "wasm32"))]

use crate::common;

use std::path::PathBuf;

use clipmatch::imaging::decode::{decode_rgb, DecodeLimits};
use clipmatch::imaging::preprocess::{normalize, resize_and_crop};
use clipmatch::models::config::{Interpolation, PreprocessArithmetic, ResizeMode};
use clipmatch::models::siglip::tokenizer::SiglipTokenizer;
use clipmatch::PreprocessConfig;
use clipmatch::models::siglip::{Siglip, TEXT_LEN};
use common::{agreement, cosine, model_reference_pixels, ModelRefText};
use serde::Deserialize;

const FOLDER: &str = "tests/fixtures/models/siglip2-base-narrow";

#[derive(Deserialize)]
struct Reference {
    images: Vec<RefImage>,
    texts: Vec<ModelRefText>,
}

#[derive(Deserialize)]
struct RefImage {
    file: String,
    pixels: String,
    embedding: Vec<f32>,
}

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn reference() -> Reference {
    serde_json::from_slice(&read("tests/fixtures/models/reference/siglip2-base-narrow.json")).unwrap()
}

fn model() -> Siglip {
    let config = String::from_utf8(read(&format!("{FOLDER}/config.json"))).unwrap();
    Siglip::load(&config, &read(&format!("{FOLDER}/model.safetensors"))).unwrap()
}

fn tokenizer() -> SiglipTokenizer {
    let json = read(&format!("{FOLDER}/tokenizer.json"));
    let config = read(&format!("{FOLDER}/tokenizer_config.json"));
    SiglipTokenizer::from_bytes(&json, Some(&config)).unwrap()
}

/// The processor's input from the reference PNG: (level / 255 - 0.5) / 0.5, CHW.
fn pixel_values(png_rel: &str, size: usize) -> Vec<f32> {
    let img = model_reference_pixels(png_rel);
    assert_eq!((img.width() as usize, img.height() as usize), (size, size), "{png_rel}");
    let mut out = vec![0f32; 3 * size * size];
    for (x, y, px) in img.enumerate_pixels() {
        for c in 0..3 {
            out[c * size * size + y as usize * size + x as usize] = (px[c] as f32 / 255.0 - 0.5) / 0.5;
        }
    }
    out
}

/// Asserts the thresholds for every row and prints the worst figures.
fn assert_close(what: &str, names: &[&str], ours: &[Vec<f32>], reference: &[&[f32]]) {
    let (mut worst, mut worst_centred) = ((1.0f64, ""), (1.0f64, ""));
    for (name, (c, cc)) in names.iter().zip(agreement(ours, reference)) {
        if c < worst.0 {
            worst = (c, name);
        }
        if cc < worst_centred.0 {
            worst_centred = (cc, name);
        }
    }
    let short = |n: &str| n.chars().take(30).collect::<String>();
    println!(
        "{what}: worst 1 - cosine {:.1e} ({:?}), worst 1 - centred cosine {:.1e} ({:?})",
        1.0 - worst.0,
        short(worst.1),
        1.0 - worst_centred.0,
        short(worst_centred.1)
    );
    assert!(worst.0 >= 0.9999, "{what} {}: cosine {} < 0.9999", worst.1, worst.0);
    assert!(worst_centred.0 >= 0.999, "{what} {}: centred cosine {} < 0.999", worst_centred.1, worst_centred.0);
}

#[test]
fn token_ids_equal_transformers() {
    let tok = tokenizer();
    let reference = reference();
    assert_eq!(reference.texts.len(), 12);
    for t in &reference.texts {
        assert_eq!(tok.encode(&t.text).unwrap(), t.ids, "{:?}", t.text);
    }
}

#[test]
fn image_features_match_transformers() {
    let m = model();
    let reference = reference();
    let s = m.image_size();
    let names: Vec<&str> = reference.images.iter().map(|i| i.file.as_str()).collect();
    // One batch of all images: batching must not change a row.
    let batch: Vec<f32> = reference.images.iter().flat_map(|i| pixel_values(&i.pixels, s)).collect();
    let ours = m.embed_images(&batch, reference.images.len()).unwrap();
    let refs: Vec<&[f32]> = reference.images.iter().map(|i| i.embedding.as_slice()).collect();
    assert_close("image", &names, &ours, &refs);
    let single = m.embed_images(&pixel_values(&reference.images[0].pixels, s), 1).unwrap();
    assert!(cosine(&single[0], &ours[0]) > 0.999999);
}

#[test]
fn text_features_match_transformers() {
    let m = model();
    let tok = tokenizer();
    let reference = reference();
    let texts: Vec<&str> = reference.texts.iter().map(|t| t.text.as_str()).collect();
    let ours = m.embed_texts(&tok.encode_batch(&texts).unwrap()).unwrap();
    let refs: Vec<&[f32]> = reference.texts.iter().map(|t| t.embedding.as_slice()).collect();
    assert_close("text", &texts, &ours, &refs);
}

/// SiglipImageProcessor's pipeline (preprocessor_config.json of the fixture): resize to
/// 224 x 224 bicubic, no crop, level / 255, mean = std = 0.5.
fn siglip_preprocess(arithmetic: PreprocessArithmetic) -> PreprocessConfig {
    PreprocessConfig {
        shortest_edge: 224,
        crop_height: 224,
        crop_width: 224,
        rescale_factor: 1.0 / 255.0,
        mean: [0.5; 3],
        std: [0.5; 3],
        interpolation: Interpolation::Bicubic,
        resize_mode: ResizeMode::Squash,
        arithmetic,
    }
}

#[test]
fn photos_through_the_squash_pipeline_match_transformers() {
    let m = model();
    let reference = reference();
    let mut ours = Vec::new();
    for arithmetic in [PreprocessArithmetic::Transformers, PreprocessArithmetic::Torchvision] {
        let cfg = siglip_preprocess(arithmetic);
        let (mut worst, mut over_1, mut values) = ((0u8, ""), 0usize, 0usize);
        ours.clear();
        for img in &reference.images {
            let photo = decode_rgb(&read(&format!("tests/fixtures/{}", img.file)), &DecodeLimits::default()).unwrap();
            let resized = resize_and_crop(&photo, &cfg);
            let want = model_reference_pixels(&img.pixels);
            let diffs: Vec<u8> = resized.as_raw().iter().zip(want.as_raw()).map(|(a, b)| a.abs_diff(*b)).collect();
            let max = diffs.iter().copied().max().unwrap();
            if max > worst.0 {
                worst = (max, img.file.as_str());
            }
            let image_over_1 = diffs.iter().filter(|&&d| d > 1).count();
            if image_over_1 > 0 {
                println!("  {arithmetic:?} {}: {image_over_1} values over 1 level, at most {max}", img.file);
            }
            over_1 += image_over_1;
            values += diffs.len();
            ours.push(m.embed_images(&normalize(&resized, &cfg), 1).unwrap().remove(0));
        }
        println!(
            "{arithmetic:?} pixels: worst level difference {} ({}); {over_1} of {values} values over 1 level",
            worst.0, worst.1
        );
        assert!(over_1 * 1000 < values, "{arithmetic:?}: {over_1} of {values} values over 1 level off");
    }
    let names: Vec<&str> = reference.images.iter().map(|i| i.file.as_str()).collect();
    let refs: Vec<&[f32]> = reference.images.iter().map(|i| i.embedding.as_slice()).collect();
    assert_close("photo (torchvision arithmetic = Pillow's weights)", &names, &ours, &refs);
}

/// SigLIP v1 (`google/siglip-base-patch16-224`): no tokenizer.json, only `spiece.model` (a
/// SentencePiece Unigram model, trained here as T5's is: Google's cannot be downloaded here) and
/// the slow tokenizer's `tokenizer_config.json`, against transformers' `SiglipTokenizer`
/// (lower-cased, punctuation removed, `</s>` appended and padded with) and `get_text_features`.
mod siglip_v1 {
    use super::*;

    const V1: &str = "tests/fixtures/models/siglip-base-narrow";

    fn reference() -> Vec<ModelRefText> {
        #[derive(Deserialize)]
        struct Texts {
            texts: Vec<ModelRefText>,
        }
        let r: Texts = serde_json::from_slice(&read("tests/fixtures/models/reference/siglip-base-narrow.json")).unwrap();
        r.texts
    }

    fn tokenizer() -> SiglipTokenizer {
        let config = read(&format!("{V1}/tokenizer_config.json"));
        SiglipTokenizer::from_file(&read(&format!("{V1}/spiece.model")), Some(&config)).unwrap()
    }

    #[test]
    fn token_ids_equal_transformers_slow_tokenizer() {
        let tok = tokenizer();
        let texts = reference();
        assert!(texts.len() >= 30, "a varied list");
        for t in &texts {
            assert_eq!(tok.encode(&t.text).unwrap(), t.ids, "{:?}", t.text);
        }
        // What the list covers: case and punctuation gone, the end token kept at truncation.
        let ids = |text: &str| tok.encode(text).unwrap();
        assert_eq!(ids("Hello, World!"), ids("hello world"));
        let long = ids(&"word ".repeat(80));
        assert_eq!((long.len(), long[TEXT_LEN - 1]), (TEXT_LEN, 1));
        assert!(long[..TEXT_LEN - 1].iter().all(|&i| i != 1));
        assert_eq!(ids(""), vec![1; TEXT_LEN], "an empty text is </s> and padding (</s> too)");
    }

    #[test]
    fn text_features_match_transformers() {
        let config = String::from_utf8(read(&format!("{V1}/config.json"))).unwrap();
        let m = Siglip::load(&config, &read(&format!("{V1}/model.safetensors"))).unwrap();
        let texts = reference();
        let names: Vec<&str> = texts.iter().map(|t| t.text.as_str()).collect();
        let ours = m.embed_texts(&tokenizer().encode_batch(&names).unwrap()).unwrap();
        let refs: Vec<&[f32]> = texts.iter().map(|t| t.embedding.as_slice()).collect();
        assert_close("SigLIP v1 text", &names, &ours, &refs);
    }

    #[test]
    fn a_folder_with_spiece_model_embeds_texts_through_the_loader() {
        use clipmatch::models::folder::{load, FolderFiles, Layout};
        use clipmatch::Towers;
        let (config, pre) = (read(&format!("{V1}/config.json")), read(&format!("{V1}/preprocessor_config.json")));
        let (weights, spiece, tok_config) =
            (read(&format!("{V1}/model.safetensors")), read(&format!("{V1}/spiece.model")), read(&format!("{V1}/tokenizer_config.json")));
        let files = FolderFiles {
            config: std::str::from_utf8(&config).unwrap(),
            preprocessor: Some(std::str::from_utf8(&pre).unwrap()),
            weights: &weights,
            tokenizer: Some(&spiece),
            tokenizer_config: Some(&tok_config),
        };
        let e = load(Layout::HfSiglip, &files, Towers::VisionAndText, None).unwrap();
        let texts = reference();
        let got = e.model.embed_texts(&[texts[0].text.as_str()]).unwrap();
        assert!(cosine(&got[0], &texts[0].embedding) >= 0.9999);
        // A damaged file is refused in one line.
        let cut = FolderFiles { tokenizer: Some(&spiece[..spiece.len() / 2]), ..files };
        let err = load(Layout::HfSiglip, &cut, Towers::VisionAndText, None).err().unwrap().to_string();
        assert!(err.contains("spiece.model") && !err.contains('\n'), "{err}");
    }
}

/// The image tower on this crate's kernels (`OursSiglip`, the default engine): against
/// transformers' reference with the candle path's bounds, against candle-transformers' `siglip`
/// on the same weights (SigLIP2's and v1's fixtures), and an int8 export run in int8.
mod on_our_kernels {
    use super::*;
    use clipmatch::models::clip::encoder::Precision;
    use clipmatch::models::export::{min_cosine, ExportDtype};
    use clipmatch::models::model::Family;
    use clipmatch::models::siglip::config::SiglipConfig;
    use clipmatch::models::siglip::export::vision_tower;
    use clipmatch::models::siglip::ours::OursSiglip;
    use clipmatch::Towers;

    fn files(folder: &str) -> (String, Vec<u8>) {
        (
            String::from_utf8(read(&format!("{folder}/config.json"))).unwrap(),
            read(&format!("{folder}/model.safetensors")),
        )
    }

    fn ours(config: &str, weights: &[u8]) -> OursSiglip {
        OursSiglip::load(SiglipConfig::from_json(config).unwrap(), weights, Towers::VisionOnly).unwrap()
    }

    /// The reference images' pixel values, one batch.
    fn batch(reference: &Reference, s: usize) -> Vec<f32> {
        reference.images.iter().flat_map(|i| pixel_values(&i.pixels, s)).collect()
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn image_features_match_transformers() {
        let (config, weights) = files(FOLDER);
        let m = ours(&config, &weights);
        assert_eq!(m.vision.precision(), Precision::F32);
        let reference = reference();
        let s = m.image_size();
        let names: Vec<&str> = reference.images.iter().map(|i| i.file.as_str()).collect();
        let ours = m.embed_images(&batch(&reference, s), reference.images.len()).unwrap();
        let refs: Vec<&[f32]> = reference.images.iter().map(|i| i.embedding.as_slice()).collect();
        assert_close("image on our kernels", &names, &ours, &refs);
    }

    #[test]
    fn a_batch_embeds_each_image_as_alone() {
        let (config, weights) = files(FOLDER);
        let m = ours(&config, &weights);
        let reference = reference();
        let s = m.image_size();
        let all = m.embed_images(&batch(&reference, s), reference.images.len()).unwrap();
        for (i, img) in reference.images.iter().enumerate().take(3) {
            let alone = m.embed_images(&pixel_values(&img.pixels, s), 1).unwrap().remove(0);
            let scale = alone.iter().map(|x| x.abs()).fold(0.0, f32::max);
            assert!(max_abs_diff(&alone, &all[i]) <= 1e-6 * scale, "{}: {}", img.file, max_abs_diff(&alone, &all[i]));
        }
    }

    /// Pixel values in [-1, 1], different for each image.
    fn pixels(n: usize, s: usize) -> Vec<f32> {
        (0..n * 3 * s * s).map(|i| ((i * 37 + i / 997) % 255) as f32 / 127.5 - 1.0).collect()
    }

    #[test]
    fn image_features_match_candle_transformers_on_the_same_weights() {
        for folder in [FOLDER, "tests/fixtures/models/siglip-base-narrow"] {
            let (config, weights) = files(folder);
            let candle = Siglip::load(&config, &weights).unwrap();
            let m = ours(&config, &weights);
            let s = m.image_size();
            let px = pixels(2, s);
            let (a, b) = (m.embed_images(&px, 2).unwrap(), candle.embed_images(&px, 2).unwrap());
            for (x, y) in a.iter().zip(&b) {
                let scale = y.iter().map(|v| v.abs()).fold(0.0, f32::max);
                println!(
                    "{folder}: cosine to candle 1 - {:.1e}, max abs diff {:.1e} of {scale:.2}",
                    1.0 - cosine(x, y),
                    max_abs_diff(x, y)
                );
                assert!(cosine(x, y) >= 0.999999, "{folder}: cosine {}", cosine(x, y));
                assert!(max_abs_diff(x, y) <= 1e-4 * scale, "{folder}: {}", max_abs_diff(x, y));
            }
        }
    }

    /// The narrow fixtures' activations are far larger than the norms' epsilon (1e-6), so a tower
    /// ignoring the config's value would still pass the tests above. With the vision config's
    /// `layer_norm_eps` at 0.5 the outputs move well away from the fixture's, and our tower
    /// must move with candle-transformers', which reads the same field.
    #[test]
    fn the_vision_configs_norm_epsilon_is_the_one_used() {
        let (config, weights) = files(FOLDER);
        let mut edited: serde_json::Value = serde_json::from_str(&config).unwrap();
        edited["vision_config"]["layer_norm_eps"] = 0.5.into();
        let edited = edited.to_string();
        let px = pixels(2, ours(&config, &weights).image_size());
        let usual = ours(&config, &weights).embed_images(&px, 2).unwrap();
        let ours_wide = ours(&edited, &weights).embed_images(&px, 2).unwrap();
        let candle_wide = Siglip::load(&edited, &weights).unwrap().embed_images(&px, 2).unwrap();
        for ((u, o), c) in usual.iter().zip(&ours_wide).zip(&candle_wide) {
            println!("eps 0.5: cosine to eps 1e-6 {:.4}, to candle 1 - {:.1e}", cosine(u, o), 1.0 - cosine(o, c));
            assert!(cosine(u, o) < 0.9999, "the epsilon changed nothing: cosine {}", cosine(u, o));
            assert!(cosine(o, c) >= 0.999999, "cosine to candle-transformers {}", cosine(o, c));
        }
    }

    #[test]
    fn an_int8_export_runs_in_int8_within_the_int8_bound() {
        let (config, weights) = files(FOLDER);
        let f32_model = ours(&config, &weights);
        let int8 = ours(&config, &vision_tower(&config, &weights, ExportDtype::Int8).unwrap());
        assert_eq!(int8.vision.precision(), Precision::Int8);
        // The weights held once, as int8: well under half of the f32 tower's bytes.
        let (f32_bytes, int8_bytes) = (f32_model.vision.weight_bytes(), int8.vision.weight_bytes());
        println!("weights held: f32 {f32_bytes} B, int8 {int8_bytes} B");
        assert!(int8_bytes * 2 < f32_bytes, "int8 {int8_bytes} B vs f32 {f32_bytes} B");
        let reference = reference();
        let s = int8.image_size();
        let got = int8.embed_images(&batch(&reference, s), reference.images.len()).unwrap();
        let bound = min_cosine(Family::Siglip, ExportDtype::Int8);
        let worst = got.iter().zip(&reference.images).map(|(g, r)| cosine(g, &r.embedding)).fold(1.0, f64::min);
        println!("int8 on our kernels: worst cosine to transformers {worst:.6} (bound {bound})");
        assert!(worst >= bound && worst < 0.999999, "int8: cosine {worst}");
    }
}
