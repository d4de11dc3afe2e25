//! The two engines agree on OpenAI CLIP: this crate's kernels and candle (the image tower built
//! from candle and candle-nn pieces, the text tower candle-transformers' `clip`) give the same raw
//! image and text features (cosine >= 0.99999) from the same weights bytes, in batches and one by
//! one; and the candle engine's image tower equals candle-transformers' `ClipVisionTransformer`
//! on float weights, and stays within int8 rounding of it on int8 ones. The tiny-clip test has no file access (the fixture is compiled
//! in), so `wasm-pack test` runs it in Chromium too; the ViT-B/32 test reads models/ natively.

use crate::common;

use clipmatch::models::clip::candle_engine::CandleClip;
use clipmatch::{ClipModel, Embedder, ModelConfig, PreprocessConfig, Towers};
use common::*;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const AGREEMENT: f64 = 0.99999;
/// The candle engine's int8 tower (12-bit activations a row, as this crate's) against
/// candle-transformers on the same weights in f32: measured 1 - cosine 3.5e-7 over the 12 fixture
/// images (2026-12-07); the floor at ten times that, as tests/integration/int8.rs sets its own.
const INT8_VS_F32_FLOOR: f64 = 0.999996;

/// Worst cosine between matching rows, asserting the bound.
fn assert_agree(what: &str, ours: &[Vec<f32>], theirs: &[Vec<f32>]) -> f64 {
    assert_eq!(ours.len(), theirs.len(), "{what}: row count");
    let mut worst = 1.0f64;
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert_eq!(a.len(), b.len(), "{what} row {i}: length");
        let c = cosine(a, b);
        assert!(c >= AGREEMENT, "{what} row {i}: cosine {c} < {AGREEMENT}");
        worst = worst.min(c);
    }
    println!("{what}: worst 1 - cosine {:.1e} over {} rows", 1.0 - worst, ours.len());
    worst
}

/// Pixel values of the fixture photos through our decoding and `preprocess`.
fn fixture_pixels(preprocess: PreprocessConfig, count: usize) -> Vec<Vec<f32>> {
    let model = ClipModel::load(TINY_CONFIG, TINY_WEIGHTS, Some(Towers::VisionOnly)).unwrap();
    let e = Embedder::new(model, preprocess, None);
    IMAGES.iter().take(count).map(|(_, bytes, _)| e.pixel_values(bytes).unwrap()).collect()
}

/// Both engines on the same bytes: images in one batch and one at a time, and token id rows.
fn compare(config_json: &str, weights: &[u8], pixels: &[Vec<f32>], ids: &[Vec<u32>], what: &str) {
    let ours = ClipModel::load(config_json, weights, Some(Towers::VisionAndText)).unwrap();
    let config = ModelConfig::from_json(config_json).unwrap();
    let candle = CandleClip::load(&config, weights, Towers::VisionAndText).unwrap();
    let flat: Vec<f32> = pixels.concat();
    let ours_images = ours.vision.embed(&flat, pixels.len()).unwrap();
    let candle_batch = candle.embed_images(&flat, pixels.len()).unwrap();
    let candle_single: Vec<Vec<f32>> = pixels.iter().map(|px| candle.embed_images(px, 1).unwrap().remove(0)).collect();
    assert_agree(&format!("{what} images, candle batch of {}", pixels.len()), &ours_images, &candle_batch);
    assert_agree(&format!("{what} images, candle one by one"), &ours_images, &candle_single);
    // candle-core 0.11.1 mis-batches some matmuls (task D); CLIP's layout must not be one of them.
    let batch_vs_single = candle_batch.iter().zip(&candle_single).map(|(a, b)| cosine(a, b)).fold(1.0, f64::min);
    assert!(batch_vs_single >= 0.999999, "{what}: candle batch vs single cosine {batch_vs_single}");
    let ours_texts = ours.text().unwrap().embed(ids).unwrap();
    let candle_texts = candle.embed_texts(ids).unwrap();
    assert_agree(&format!("{what} texts"), &ours_texts, &candle_texts);
    // Images differ from each other (the comparison is not between constants).
    assert!(cosine(&ours_images[0], &ours_images[1]) < 0.99999, "{what}: images embed alike");
}

#[test]
fn engines_agree_on_tiny_clip() {
    let r = reference();
    let mut ids: Vec<Vec<u32>> = r.texts.iter().map(|t| t.ids.clone()).collect();
    ids.extend(r.padded_batch.ids.iter().cloned());
    let pixels = fixture_pixels(PreprocessConfig::from_json(TINY_PREPROCESSOR).unwrap(), IMAGES.len());
    compare(TINY_CONFIG, TINY_WEIGHTS, &pixels, &ids, "tiny-clip");
}

#[test]
fn candle_refuses_a_missing_tower_wrong_inputs_and_mismatched_weights() {
    let config = ModelConfig::from_json(TINY_CONFIG).unwrap();
    let e = CandleClip::load(&config, TINY_VISION_F16_WEIGHTS, Towers::VisionAndText).err().expect("no text tower");
    assert!(e.to_string().contains("text_model.") && e.to_string().contains("missing"), "{e}");
    let candle = CandleClip::load(&config, TINY_VISION_F16_WEIGHTS, Towers::VisionOnly).unwrap();
    assert!(candle.embed_texts(&[vec![49406, 49407]]).is_err());
    assert!(candle.embed_images(&[0.0; 7], 1).is_err());
    let mut wrong = ModelConfig::from_json(TINY_CONFIG).unwrap();
    wrong.projection_dim += 1;
    let e = CandleClip::load(&wrong, TINY_WEIGHTS, Towers::VisionOnly).err().expect("shape mismatch");
    assert!(e.to_string().contains("visual_projection.weight has shape"), "{e}");
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn engines_agree_on_random_vit_b32() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/clip-b32-random");
    let (Ok(config), Ok(weights), Ok(preprocess), Ok(tokenizer)) = (
        std::fs::read_to_string(dir.join("config.json")),
        std::fs::read(dir.join("model.safetensors")),
        std::fs::read_to_string(dir.join("preprocessor_config.json")),
        std::fs::read(dir.join("tokenizer.json")),
    ) else {
        eprintln!("skipped: {} is absent", dir.display());
        return;
    };
    let tokenizer = clipmatch::models::tokenizer::ClipTokenizer::from_bytes(&tokenizer, 77).unwrap();
    let ids = tokenizer.encode_batch(&["Oatly Natural Oatghurt", "a photo of a carton of milk", ""]).unwrap();
    let pixels = fixture_pixels(PreprocessConfig::from_json(&preprocess).unwrap(), 3);
    compare(&config, &weights, &pixels, &ids, "clip-b32-random");
}

/// `tests/fixtures/tiny-clip` exported at int8 (tests/integration/int8.rs keeps it current).
const TINY_VISION_INT8_WEIGHTS: &[u8] = include_bytes!("../fixtures/tiny-clip-vision-int8/model.safetensors");

/// candle-transformers' CLIP image tower and visual projection on `weights` (dequantised to f32
/// where int8), the reference of the candle engine's own tower: `n` images of `pixels`.
fn candle_transformers_images(config: &ModelConfig, weights: &[u8], pixels: &[f32], n: usize) -> Vec<Vec<f32>> {
    use candle_core::{DType, Device, Module, Tensor};
    use candle_transformers::models::clip::{text_model::Activation, vision_model};
    let tensors = clipmatch::models::candle_weights::f32_tensors(weights, |_| false, clipmatch::ModelError::Weights).unwrap();
    let vb = candle_nn::VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let v = &config.vision;
    let cfg = vision_model::ClipVisionConfig {
        embed_dim: v.embed_dim,
        activation: Activation::QuickGelu,
        intermediate_size: v.intermediate_size,
        num_hidden_layers: v.num_hidden_layers,
        num_attention_heads: v.num_attention_heads,
        projection_dim: config.projection_dim,
        num_channels: v.num_channels,
        image_size: v.image_size,
        patch_size: v.patch_size,
    };
    let tower = vision_model::ClipVisionTransformer::new(vb.pp("vision_model"), &cfg).unwrap();
    let projection = candle_nn::linear_no_bias(v.embed_dim, config.projection_dim, vb.pp("visual_projection")).unwrap();
    let input = Tensor::from_slice(pixels, (n, v.num_channels, v.image_size, v.image_size), &Device::Cpu).unwrap();
    tower.forward(&input).unwrap().apply(&projection).unwrap().to_vec2().unwrap()
}

/// The candle engine's image tower (candle and candle-nn pieces, int8 weights held as int8) against
/// candle-transformers' `ClipVisionTransformer` on the same weights: equal on float files; on
/// the int8 export, where candle-transformers runs the dequantised weights in f32 and the
/// engine quantises each row of activations to 12 bits, within that rounding.
#[test]
fn candles_image_tower_matches_candle_transformers_clip() {
    let config = ModelConfig::from_json(TINY_CONFIG).unwrap();
    let pixels = fixture_pixels(PreprocessConfig::from_json(TINY_PREPROCESSOR).unwrap(), IMAGES.len());
    let flat: Vec<f32> = pixels.concat();
    let layers = 6 * config.vision.num_hidden_layers + 2;
    // (file, linear layers in int8, cosine floor)
    let cases = [
        ("f32", TINY_WEIGHTS, 0, 0.999999),
        ("f16", TINY_VISION_F16_WEIGHTS, 0, 0.999999),
        ("int8", TINY_VISION_INT8_WEIGHTS, layers, INT8_VS_F32_FLOOR),
    ];
    for (what, weights, quantised, floor) in cases {
        let candle = CandleClip::load(&config, weights, Towers::VisionOnly).unwrap();
        assert_eq!(candle.quantised_layers(), quantised, "{what}: linear layers held as int8");
        let got = candle.embed_images(&flat, pixels.len()).unwrap();
        let want = candle_transformers_images(&config, weights, &flat, pixels.len());
        let worst = got.iter().zip(&want).map(|(a, b)| cosine(a, b)).fold(1.0, f64::min);
        println!("{what}: candle engine vs candle-transformers, worst 1 - cosine {:.1e}", 1.0 - worst);
        assert!(worst >= floor, "{what}: cosine {worst} < {floor}");
    }
}

/// candle's own rayon work inside a forward pass held by this crate's team
/// (`parallel::with_team`, as `Embedder` runs every image tower): candle-nn's LayerNorm splits its
/// rows with rayon's `par_chunks`, which from the leader (not a pool thread) waits for a pool
/// thread to take it. As many callers as the pool has threads hold a team each at once, so that
/// their helpers outnumber the pool's threads; each then runs candle's tower. A helper that kept
/// its pool thread while its leader waited on rayon left none to run the LayerNorm: every caller
/// hung. Each must finish within a minute (a hang fails here instead of stopping the binary).
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn candle_forward_passes_held_in_teams_on_every_thread_at_once_finish() {
    use clipmatch::parallel::{for_each_chunk, threads, with_team};
    use std::sync::{mpsc, Arc, Barrier};
    use std::time::{Duration, Instant};

    let callers = threads().max(2);
    let config = ModelConfig::from_json(TINY_CONFIG).unwrap();
    let candle = Arc::new(CandleClip::load(&config, TINY_WEIGHTS, Towers::VisionOnly).unwrap());
    let pixels = Arc::new(fixture_pixels(PreprocessConfig::from_json(TINY_PREPROCESSOR).unwrap(), 2).concat());
    let expected = candle.embed_images(&pixels, 2).unwrap();
    let barrier = Arc::new(Barrier::new(callers));
    let (done, finished) = mpsc::channel();
    for _ in 0..callers {
        let (candle, pixels, barrier, done) = (candle.clone(), pixels.clone(), barrier.clone(), done.clone());
        std::thread::spawn(move || {
            let out = with_team(|| {
                // A step of the team's own first, so that its helpers are taken from the pool.
                for_each_chunk(64, usize::MAX, |_| {
                    let start = Instant::now();
                    while start.elapsed() < Duration::from_micros(500) {
                        std::hint::spin_loop();
                    }
                });
                barrier.wait();
                (0..3).map(|_| candle.embed_images(&pixels, 2).unwrap()).collect::<Vec<_>>()
            });
            let _ = done.send(out);
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for caller in 0..callers {
        let left = deadline.saturating_duration_since(Instant::now());
        let outs = finished.recv_timeout(left).unwrap_or_else(|_| {
            panic!("{} of {callers} candle forward passes in teams did not finish in 60 s (deadlock)", callers - caller)
        });
        assert!(outs.iter().all(|out| *out == expected), "a forward pass in a team embeds differently");
    }
}
