//! The 8-bit vision tower (int8 weights per output channel, 12-bit activations per row, exact
//! integer sums) on the committed random-weight tiny CLIP: its fidelity to transformers' f32
//! features (and that of OpenAI CLIP on candle from the int8 export), the int8 export (`clipmatch::models::clip::export::vision_tower(.., ExportDtype::Int8)`) loading
//! to the same model as quantising at load, and a malformed int8 file being refused. The export
//! is native only (the wasm package writes no weight files): in Chromium the same tests load its
//! output committed as `tests/fixtures/tiny-clip-vision-int8`, which a native test keeps equal.
//! `benches/quantised_fidelity.py` measures the same on ViT-B/32 against onnxruntime's int8.

use crate::common;

use std::collections::HashMap;

#[cfg(not(target_arch = "wasm32"))]
use clipmatch::models::clip::export::{vision_tower, ExportDtype};
use clipmatch::models::clip::ModelLoader;
use clipmatch::models::clip::vision::{is_linear_weight, Precision};
use clipmatch::models::model::{Engine, Family};
use clipmatch::models::vision_loader::VisionLoader;
use clipmatch::{ClipModel, Embedder, ModelConfig, ModelError, PreprocessConfig, Towers};
use common::*;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// Centred cosine to transformers' f32 features that every fixture image must reach at int8.
/// Measured 2026-11-27 over the 12 fixture images: min 0.99902, mean 0.99971 (f32 is held to
/// 0.999 in tests/integration/parity.rs and includes the same decoding differences). The floor allows about
/// five times the measured shortfall (0.001), for float reordering across SIMD paths and wasm,
/// while a centred cosine is what a lost scale, bias or row would drop far below this.
const MIN_CENTRED_COSINE: f64 = 0.995;
/// Plain cosine floor: measured min 0.999949, floor at ten times the shortfall.
const MIN_COSINE: f64 = 0.9995;

/// `tests/fixtures/tiny-clip` exported with int8 linear weights (`clipmatch export`'s int8).
const INT8_FIXTURE: &[u8] = include_bytes!("../fixtures/tiny-clip-vision-int8/model.safetensors");

/// The int8 export of the tiny CLIP, made here.
#[cfg(not(target_arch = "wasm32"))]
fn int8_export() -> Vec<u8> {
    vision_tower(TINY_WEIGHTS, &config(), ExportDtype::Int8).unwrap()
}

/// The int8 export of the tiny CLIP: in wasm, the committed copy.
#[cfg(target_arch = "wasm32")]
fn int8_export() -> Vec<u8> {
    INT8_FIXTURE.to_vec()
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn the_committed_int8_fixture_is_the_export_of_today() {
    assert!(
        int8_export() == INT8_FIXTURE,
        "tests/fixtures/tiny-clip-vision-int8 is stale: cargo run --release --example export_vision -- \
         tests/fixtures/tiny-clip int8 tests/fixtures/tiny-clip-vision-int8/model.safetensors"
    );
}

fn config() -> ModelConfig {
    ModelConfig::from_json(TINY_CONFIG).unwrap()
}

/// The tiny config with `heads` vision attention heads (the weights' shapes do not change).
fn config_with_heads(heads: usize) -> ModelConfig {
    let mut v: serde_json::Value = serde_json::from_str(TINY_CONFIG).unwrap();
    v["vision_config"]["num_attention_heads"] = heads.into();
    ModelConfig::from_json(&v.to_string()).unwrap()
}

fn load(weights: &[u8], precision: Option<Precision>) -> Result<ClipModel, ModelError> {
    load_with(config(), weights, precision)
}

fn load_with(config: ModelConfig, weights: &[u8], precision: Option<Precision>) -> Result<ClipModel, ModelError> {
    let mut loader = ModelLoader::new(config, Some(Towers::VisionOnly));
    if let Some(p) = precision {
        loader = loader.with_precision(p);
    }
    // In uneven chunks, as the page streams it.
    for chunk in weights.chunks(7919) {
        loader.push(chunk)?;
    }
    loader.finish()
}

/// The fixture images' embeddings by `model` ([`common::image_embeddings`]).
fn image_embeddings(model: ClipModel) -> Vec<(String, Vec<f32>)> {
    common::image_embeddings(&Embedder::new(model, PreprocessConfig::from_json(TINY_PREPROCESSOR).unwrap(), None))
}

/// Rewrites a safetensors file: `f` maps each (name, dtype, shape, bytes) to zero or one tensor.
fn rewrite(
    weights: &[u8],
    f: impl Fn(&str, Dtype, &[usize], &[u8]) -> Option<(Dtype, Vec<u8>)>,
) -> Vec<u8> {
    let st = SafeTensors::deserialize(weights).unwrap();
    let kept: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .filter_map(|(name, v)| {
            f(&name, v.dtype(), v.shape(), v.data()).map(|(d, bytes)| (name, d, v.shape().to_vec(), bytes))
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = kept
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, None::<HashMap<String, String>>).unwrap()
}

fn f32s(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

#[test]
fn int8_image_embeddings_stay_close_to_transformers_f32() {
    let model = load(TINY_WEIGHTS, Some(Precision::Int8)).unwrap();
    let f32_bytes = load(TINY_WEIGHTS, None).unwrap().vision.weight_bytes();
    assert!(model.vision.weight_bytes() * 3 < f32_bytes, "int8 holds a quarter of f32's linear weights");
    assert_close_to_transformers("int8", &image_embeddings(model));
}

/// OpenAI CLIP on candle (`?engine=candle`) from the int8 export, streamed as the page loads it
/// (its linear layers held as int8, run by the same integer product as a candle operation),
/// held to the same bounds.
#[test]
fn int8_image_embeddings_on_candle_stay_close_to_transformers_f32() {
    let mut loader = VisionLoader::new(Family::OpenAiClip, Some(Engine::Candle), TINY_CONFIG, Some(TINY_PREPROCESSOR), Some(INT8_FIXTURE.len())).unwrap();
    for chunk in INT8_FIXTURE.chunks(7919) {
        loader.push(chunk).unwrap();
    }
    assert_close_to_transformers("int8 on candle", &common::image_embeddings(&loader.finish().unwrap()));
}

/// Every fixture image's embedding in `ours` within [`MIN_COSINE`] and [`MIN_CENTRED_COSINE`]
/// of transformers' f32 features.
fn assert_close_to_transformers(what: &str, ours: &[(String, Vec<f32>)]) {
    let r = reference();
    let refs: Vec<&[f32]> = r.images.iter().map(|i| i.embedding.as_slice()).collect();
    let mean = mean_of(&refs);
    let mut failures = Vec::new();
    let (mut worst_c, mut worst_cc, mut sum_cc) = (1f64, 1f64, 0f64);
    for ((name, o), reference) in ours.iter().zip(&refs) {
        let c = cosine(o, reference);
        let cc = centred_cosine(o, reference, &mean);
        worst_c = worst_c.min(c);
        worst_cc = worst_cc.min(cc);
        sum_cc += cc;
        if c < MIN_COSINE || cc < MIN_CENTRED_COSINE {
            failures.push(format!("{name}: cosine {c:.6}, centred cosine {cc:.5}"));
        }
    }
    eprintln!(
        "{what} vs transformers f32 over {} images: cosine min {worst_c:.6}, centred cosine min {worst_cc:.5}, mean {:.5}",
        ours.len(),
        sum_cc / ours.len() as f64
    );
    assert!(
        failures.is_empty(),
        "{what} embeddings under cosine {MIN_COSINE} or centred cosine {MIN_CENTRED_COSINE}:\n{}",
        failures.join("\n")
    );
}

/// `tiny-clip`'s f32 vision tensors with everything but the linear layers' weights rounded
/// through f16, as the int8 export stores them.
fn f16_rounded_tiny() -> Vec<u8> {
    rewrite(TINY_WEIGHTS, |name, dtype, _, data| {
        if !name.starts_with("vision_model.") && !name.starts_with("visual_projection.") {
            return None;
        }
        assert_eq!(dtype, Dtype::F32);
        if is_linear_weight(name) {
            return Some((Dtype::F32, data.to_vec()));
        }
        Some((Dtype::F32, f32s(data).flat_map(|v| half::f16::from_f32(v).to_f32().to_le_bytes()).collect()))
    })
}

/// Largest difference of `a` and `b`, relative to b's largest component, over every image.
fn max_relative_diff(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> f32 {
    a.iter()
        .zip(b)
        .map(|((_, x), (_, y))| {
            let scale = y.iter().fold(0f32, |m, v| m.max(v.abs()));
            x.iter().zip(y).fold(0f32, |m, (p, q)| m.max((p - q).abs())) / scale
        })
        .fold(0f32, f32::max)
}

/// The exported file holds the int8 values and scales `quantize_rows` makes at load, and every
/// other tensor as f16; loaded without `with_precision`, it is int8. Against load-time
/// quantisation of an f32 file whose other tensors went through f16 the same way, it is the
/// same model: the same integers, and the same floats when the attention scale `head_dim^-0.5`
/// (folded into q's weight scales at load, after export's quantisation but before load-time's)
/// is a power of two, as for every OpenAI CLIP (head_dim 64). tiny-clip's head_dim is 8: the
/// integers still agree, but q's scales differ in their last bit, which flips the rounding of a
/// few 12-bit activations downstream (measured: 3.5e-4 relative; with 2 heads, head_dim 16,
/// the embeddings are bit for bit equal).
#[test]
fn int8_export_loads_as_int8_and_equals_quantising_at_load() {
    let export = int8_export();
    let st = SafeTensors::deserialize(&export).unwrap();
    let fc1 = st.tensor("vision_model.encoder.layers.0.mlp.fc1.weight").unwrap();
    assert_eq!(fc1.dtype(), Dtype::I8);
    assert_eq!(st.tensor("vision_model.encoder.layers.0.mlp.fc1.weight_scale").unwrap().dtype(), Dtype::F32);
    assert_eq!(st.tensor("vision_model.pre_layrnorm.weight").unwrap().dtype(), Dtype::F16);
    #[cfg(not(target_arch = "wasm32"))]
    {
        let f32_export = vision_tower(TINY_WEIGHTS, &config(), ExportDtype::F32).unwrap();
        assert!(export.len() * 3 < f32_export.len(), "{} vs {} bytes", export.len(), f32_export.len());
    }

    let rounded = f16_rounded_tiny();
    // Power-of-two attention scale (2 heads of 16): equal to float rounding.
    let two_heads = || config_with_heads(2);
    let a = load_with(two_heads(), &export, None).unwrap();
    let b = load_with(two_heads(), &rounded, Some(Precision::Int8)).unwrap();
    assert_eq!(a.vision.weight_bytes(), b.vision.weight_bytes(), "both hold int8 weights");
    let exact = max_relative_diff(&image_embeddings(a), &image_embeddings(b));
    assert!(exact <= 1e-6, "2 heads: the int8 export and load-time int8 differ by {exact} (relative)");

    // tiny-clip as it is (4 heads of 8).
    let from_export = image_embeddings(load(&export, None).unwrap());
    let near = max_relative_diff(&from_export, &image_embeddings(load(&rounded, Some(Precision::Int8)).unwrap()));
    assert!(near <= 2e-3, "4 heads: the int8 export and load-time int8 differ by {near} (relative)");

    // Quantising the untouched f32 file differs also by the f16 rounding of biases, norms and
    // embeddings: close, not equal.
    let plain = image_embeddings(load(TINY_WEIGHTS, Some(Precision::Int8)).unwrap());
    let mean = mean_of(&plain.iter().map(|(_, v)| v.as_slice()).collect::<Vec<_>>());
    let worst_plain =
        from_export.iter().zip(&plain).map(|((_, a), (_, b))| centred_cosine(a, b, &mean)).fold(1f64, f64::min);
    eprintln!(
        "int8 export vs load-time int8: max relative diff {exact:e} (2 heads), {near:e} (4 heads); \
         centred cosine to int8 of the f32 file min {worst_plain:.6}"
    );
    assert!(worst_plain >= 0.999, "the int8 export strays from load-time int8 of the f32 file: {worst_plain}");
}

#[test]
fn int8_weight_without_its_scale_is_refused() {
    let export = int8_export();
    let missing = "vision_model.encoder.layers.1.self_attn.k_proj.weight_scale";
    let broken = rewrite(&export, |name, dtype, _, data| (name != missing).then(|| (dtype, data.to_vec())));
    for precision in [None, Some(Precision::Int8)] {
        let err = load(&broken, precision).err().expect("an int8 weight without its scale must not load");
        let msg = err.to_string();
        assert!(msg.contains(missing) && msg.contains("missing"), "unclear error: {msg}");
    }
    // And int8 weights cannot be widened back to f32 at load.
    let err = load(&export, Some(Precision::F32)).err().expect("int8 weights at f32 precision");
    assert!(err.to_string().contains("int8"), "{err}");
}

