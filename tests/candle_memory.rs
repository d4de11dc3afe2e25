//! OpenAI CLIP's image tower on candle (`?engine=candle`) holds an int8 bundle's weights once:
//! loaded as the page loads it (the weights streamed in slices), the heap it keeps is the int8
//! values packed for the integer product (a byte each, a scale a row) and the float tensors in f32, never a
//! dequantised f32 copy of the int8 weights nor the file; embedding images keeps nothing more.
//! Measured with a counting allocator (natively only: the browser's heap is measured by
//! benches/browser/bench.mjs).

#![cfg(not(target_arch = "wasm32"))]

mod common;

use clipmatch::models::embedder::Embedder;
use clipmatch::models::model::{Engine, Family};
use clipmatch::models::vision_loader::VisionLoader;
use common::*;
use safetensors::{Dtype, SafeTensors};

#[global_allocator]
static ALLOC: Counting = Counting;

/// `tests/fixtures/tiny-clip` exported at int8 (tests/integration/int8.rs keeps it current).
const INT8_WEIGHTS: &[u8] = include_bytes!("fixtures/tiny-clip-vision-int8/model.safetensors");

/// The file's int8 values and its float values, counted.
fn int8_and_float_values(file: &[u8]) -> (usize, usize) {
    let st = SafeTensors::deserialize(file).unwrap();
    let (mut int8, mut float) = (0, 0);
    for (name, view) in st.tensors() {
        let n = view.shape().iter().product::<usize>();
        match view.dtype() {
            Dtype::I8 => int8 += n,
            _ if name.ends_with("_scale") => {}
            _ => float += n,
        }
    }
    (int8, float)
}

/// A `family` image tower on candle, loaded as the page loads it (the weights in slices).
fn on_candle(family: Family, config: &str, preprocessor: Option<&str>, weights: &[u8]) -> Embedder {
    let mut loader = VisionLoader::new(family, Some(Engine::Candle), config, preprocessor, Some(weights.len())).unwrap();
    for slice in weights.chunks(4096) {
        loader.push(slice).unwrap();
    }
    loader.finish().unwrap()
}

/// On one thread: each thread of a pool sets up its own buffers the first time it takes part,
/// which on several threads may happen at any image.
#[test]
fn an_int8_tower_on_candle_holds_its_weights_once_and_keeps_nothing_per_image() {
    let _serial = serial();
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(held_once_and_nothing_per_image);
}

fn held_once_and_nothing_per_image() {
    let (int8, float) = int8_and_float_values(INT8_WEIGHTS);
    assert!(
        int8 > 10 * float,
        "the fixture is mostly int8 weights: {int8} vs {float}"
    );
    let pixels: Vec<f32> = (0..3 * 224 * 224)
        .map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0)
        .collect();
    let before = live_heap();
    let (embedder, load_peak) =
        peak_heap(|| on_candle(Family::OpenAiClip, TINY_CONFIG, Some(TINY_PREPROCESSOR), INT8_WEIGHTS));
    let held = live_heap() - before;
    // A byte per int8 value (and a scale a row); the float tensors are f32. A dequantised copy
    // would add 4 bytes per int8 value, the file 1.
    let weights = int8 + float * 4;
    eprintln!("int8 {int8} values, float {float}: held {held} bytes (weights {weights}), peak while loading {load_peak}");
    assert!(
        held < weights + int8 / 4,
        "held {held} bytes for {weights} bytes of weights"
    );
    // While loading: what is held, and a few copies of the weight in flight (its bytes, its
    // int8 rows, its packed rows); the patch embedding is most of this file.
    let largest = 32 * 3 * 32 * 32;
    assert!(
        load_peak < held + 4 * largest,
        "loading peaked at {load_peak} bytes for {held} held"
    );
    // The first image sets up what every image reuses (a thread's packing buffers, candle's
    // scratch buffer for the quantised activations); 20 more keep nothing.
    embedder
        .embed_pixels_raw(std::slice::from_ref(&pixels))
        .unwrap();
    let warm = live_heap() - before;
    let (_, query_peak) = peak_heap(|| {
        for _ in 0..20 {
            embedder
                .embed_pixels_raw(std::slice::from_ref(&pixels))
                .unwrap();
        }
    });
    let after = live_heap() - before;
    eprintln!("after one image {warm} bytes; after 20 more {after}; peak during them {query_peak} beyond that");
    assert!(
        after <= warm + 1024,
        "20 images left {} bytes behind",
        after - warm
    );
}

/// MobileCLIP-B's ViT-MCi on candle (the page runs it on candle only) holds an int8 bundle's
/// linear weights once, as int8, and its other tensors in f32: no dequantised copy, nor the file.
#[test]
fn a_vit_mci_int8_tower_on_candle_holds_its_linear_weights_once() {
    use clipmatch::models::export::ExportDtype;
    use clipmatch::models::mobileclip::export::vision_tower;
    let _serial = serial();
    let config = include_str!("fixtures/models/mobileclip-b-narrow/open_clip_config.json");
    let checkpoint = include_bytes!("fixtures/models/mobileclip-b-narrow/open_clip_model.safetensors");
    let bundle = vision_tower(config, checkpoint, ExportDtype::Int8).unwrap();
    let (int8, float) = int8_and_float_values(&bundle);
    let before = live_heap();
    let (embedder, load_peak) = peak_heap(|| on_candle(Family::MobileClip, config, None, &bundle));
    let held = live_heap() - before;
    let weights = int8 + float * 4;
    eprintln!("int8 {int8} values, float {float}: held {held} bytes (weights {weights}), peak while loading {load_peak}");
    assert!(held < weights + int8 / 4, "held {held} bytes for {weights} bytes of weights");
    drop(embedder);
}
