//! SigLIP and fixed-resolution SigLIP2 (Hugging Face `SiglipModel` folders): the image tower on
//! this crate's kernels ([`image_tower`], loaded streamed by [`loader`]; [`ours`] is the model the
//! default engine runs), and on candle-transformers' `siglip` (the `candle` engine, and the parity
//! reference): the image tower ([`vision`]), the text tower ([`text`], optional, as in a vision-only
//! export; the default engine runs it on candle too), the folder's SentencePiece tokenizer ([`tokenizer`]: SigLIP2's `tokenizer.json`, or
//! SigLIP v1's `spiece.model`, [`spiece`]). Every tensor is checked against
//! `config.json` before candle reads it, so a mismatched file is refused with the tensor's name.

pub mod config;
/// The image tower alone for the page (native only).
#[cfg(not(target_arch = "wasm32"))]
pub mod export;
pub mod image_tower;
pub mod loader;
pub mod ours;
/// SigLIP v1's `spiece.model` (native only, with the tokenizer).
#[cfg(not(target_arch = "wasm32"))]
pub mod spiece;
#[cfg(not(target_arch = "wasm32"))]
pub mod spiece_tokenizer;
pub mod text;
/// Text is embedded natively only (the `tokenizers` crate is not in the wasm package).
#[cfg(not(target_arch = "wasm32"))]
pub mod tokenizer;
pub mod vision;

use std::collections::HashMap;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use crate::error::ModelError;
use crate::models::candle_weights::{check_scales, f32_tensors, stored, weight_shape, SCALE_SUFFIX};
use crate::models::safetensors_header;
use crate::models::safetensors_stream::TensorDtype;
use crate::models::siglip::config::SiglipConfig;
use crate::models::siglip::text::TextTower;
use crate::models::siglip::vision::VisionTower;

/// Every text is padded (or truncated) to this many tokens, as SigLIP's model cards do
/// (here, not in [`tokenizer`], so that the wasm build, which has no tokenizer, checks configs too).
pub const TEXT_LEN: usize = 64;

/// Checks that each expected tensor is in the file with its shape and a dtype the candle
/// families read (F32, F16, BF16, I8 with its per-channel scales as the int8 export writes
/// them, or 4-bit as the int4 export does), naming the first that is not.
pub(crate) fn check_float_tensors(
    tensors: &HashMap<String, safetensors::tensor::TensorView<'_>>,
    expected: &[(String, Vec<usize>)],
) -> Result<(), ModelError> {
    for (name, shape) in expected {
        let Some(found) = tensors.get(name) else {
            return Err(ModelError::WeightsMismatch(format!("{name} is missing")));
        };
        let scale_view = tensors.get(&format!("{name}{SCALE_SUFFIX}"));
        let found_shape = weight_shape(name, found, scale_view).map_err(ModelError::WeightsMismatch)?;
        if found_shape != *shape {
            return Err(ModelError::WeightsMismatch(format!("{name} has shape {found_shape:?}, config.json implies {shape:?}")));
        }
        match TensorDtype::of(found.dtype()) {
            Some(TensorDtype::F32 | TensorDtype::F16 | TensorDtype::BF16 | TensorDtype::U8) => {}
            Some(TensorDtype::I8) => {
                check_scales(name, shape, scale_view.and_then(stored)).map_err(ModelError::WeightsMismatch)?;
            }
            None => {
                return Err(ModelError::Weights(format!(
                    "{name} is {:?}; only F32, F16 and BF16 weights (or I8 and 4-bit U8 with scales) are supported",
                    found.dtype()
                )))
            }
        }
    }
    Ok(())
}

pub(crate) fn engine_error(e: candle_core::Error) -> ModelError {
    ModelError::Engine(e.to_string())
}

/// A loaded SigLIP model on candle-transformers' code: the image tower, and the text tower when
/// the file has one, in f32 (an int8 or 4-bit export's weights dequantised: this engine is the
/// reference and `--engine candle`; the default engine computes on the int8 values,
/// [`ours`]).
pub struct Siglip {
    pub config: SiglipConfig,
    pub vision: VisionTower,
    pub text: Option<TextTower>,
}

impl Siglip {
    /// Loads from `config.json` text and `model.safetensors` bytes (f32, f16 or bf16, or an int8 or
    /// 4-bit export dequantised; run in f32).
    pub fn load(config_json: &str, weights: &[u8]) -> Result<Self, ModelError> {
        let config = SiglipConfig::from_json(config_json)?;
        let has_text = check_tensors(weights, &config)?;
        let tensors = f32_tensors(weights, |_| false, ModelError::Weights)?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let vision = VisionTower::load(&config.candle.vision_config, vb.clone())?;
        let text = match has_text {
            true => Some(TextTower::load(&config.candle.text_config, vb)?),
            false => None,
        };
        Ok(Self { config, vision, text })
    }

    /// Dimension of the joint embedding space.
    pub fn embedding_dim(&self) -> usize {
        self.config.embedding_dim()
    }

    /// Side of the square image the image tower takes.
    pub fn image_size(&self) -> usize {
        self.vision.image_size()
    }

    /// transformers' `get_image_features` of `n` NCHW images (pixels already normalised).
    pub fn embed_images(&self, pixel_values: &[f32], n: usize) -> Result<Vec<Vec<f32>>, ModelError> {
        self.vision.embed(pixel_values, n)
    }

    /// transformers' `get_text_features` of token id rows.
    pub fn embed_texts(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, ModelError> {
        self.text.as_ref().ok_or(ModelError::NoTextTower)?.embed(ids)
    }
}

/// Checks the file's header against `config.json` (names, shapes, float dtypes, no extra layers)
/// and says whether it holds the text tower.
fn check_tensors(weights: &[u8], config: &SiglipConfig) -> Result<bool, ModelError> {
    let file = safetensors_header::deserialize(weights).map_err(ModelError::Weights)?;
    let tensors: HashMap<String, _> = file.tensors().into_iter().collect();
    let has_text = tensors.keys().any(|n| n.starts_with("text_model."));
    let (v, t) = (&config.candle.vision_config, &config.candle.text_config);
    let towers = [("vision_model", v.num_hidden_layers), ("text_model", t.num_hidden_layers)];
    for (prefix, layers) in towers {
        let extra = format!("{prefix}.encoder.layers.{layers}.");
        if tensors.keys().any(|n| n.starts_with(&extra)) {
            return Err(ModelError::WeightsMismatch(format!(
                "the file has more than the {layers} {prefix} layers config.json declares"
            )));
        }
    }
    // Compared before the names are listed, so that an absurd layer count lists nothing.
    let layers = v.num_hidden_layers.saturating_add(if has_text { t.num_hidden_layers } else { 0 });
    if layers.saturating_mul(16) > tensors.len() {
        return Err(ModelError::WeightsMismatch(format!(
            "the file has {} tensors, fewer than config.json's {layers} layers need",
            tensors.len()
        )));
    }
    let mut expected = vision::expected_tensors(v);
    if has_text {
        expected.extend(text::expected_tensors(t));
    }
    check_float_tensors(&tensors, &expected)?;
    Ok(has_text)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const CONFIG: &str = include_str!("../../../tests/fixtures/models/siglip2-base-narrow/config.json");
    pub(super) const WEIGHTS: &[u8] =
        include_bytes!("../../../tests/fixtures/models/siglip2-base-narrow/model.safetensors");

    /// A safetensors file of (name, dtype, shape, data).
    fn serialized(tensors: &[(String, safetensors::Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
        let views = tensors.iter().map(|(n, dtype, shape, data)| {
            (n.clone(), safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).unwrap())
        });
        safetensors::serialize(views.collect::<Vec<_>>(), None).unwrap()
    }

    /// The fixture's tensors as zeros, after `edit` may drop (None) or reshape some.
    pub(super) fn rewritten(edit: impl Fn(&str, Vec<usize>) -> Option<Vec<usize>>) -> Vec<u8> {
        let file = safetensors::SafeTensors::deserialize(WEIGHTS).unwrap();
        let mut out = Vec::new();
        for (name, view) in file.tensors() {
            let Some(shape) = edit(&name, view.shape().to_vec()) else { continue };
            let n: usize = shape.iter().product();
            out.push((name, safetensors::Dtype::F32, shape, vec![0u8; n * 4]));
        }
        serialized(&out)
    }

    #[test]
    fn f16_weights_run_in_f32_close_to_the_f32_file() {
        let file = safetensors::SafeTensors::deserialize(WEIGHTS).unwrap();
        let mut halves = Vec::new();
        for (name, view) in file.tensors() {
            let data: Vec<u8> = view
                .data()
                .chunks_exact(4)
                .flat_map(|b| half::f16::from_f32(f32::from_le_bytes(b.try_into().unwrap())).to_le_bytes())
                .collect();
            halves.push((name, safetensors::Dtype::F16, view.shape().to_vec(), data));
        }
        let f32_model = Siglip::load(CONFIG, WEIGHTS).unwrap();
        let f16_model = Siglip::load(CONFIG, &serialized(&halves)).unwrap();
        let s = f32_model.image_size();
        let px: Vec<f32> = (0..3 * s * s).map(|i| ((i * 37) % 255) as f32 / 127.5 - 1.0).collect();
        let (a, b) = (&f32_model.embed_images(&px, 1).unwrap()[0], &f16_model.embed_images(&px, 1).unwrap()[0]);
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let cos = dot / (a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt());
        assert!(cos > 0.999 && a != b, "cosine {cos}");
    }

    fn refusal(weights: &[u8]) -> String {
        Siglip::load(CONFIG, weights).err().expect("refused").to_string()
    }

    #[test]
    fn the_fixture_loads_with_both_towers() {
        let m = Siglip::load(CONFIG, WEIGHTS).unwrap();
        assert_eq!((m.embedding_dim(), m.image_size()), (32, 224));
        let out = m.embed_texts(&[vec![5, 6, 1], vec![7, 8, 1]]).unwrap();
        assert_eq!((out.len(), out[0].len()), (2, 32));
        assert_ne!(out[0], out[1]);
    }

    #[test]
    fn a_damaged_file_is_refused_naming_the_tensor() {
        let e = refusal(&rewritten(|n, s| (n != "vision_model.head.probe").then_some(s)));
        assert!(e.contains("vision_model.head.probe is missing"), "{e}");
        let e = refusal(&rewritten(|n, s| {
            Some(if n == "text_model.encoder.layers.1.mlp.fc1.weight" { vec![64, 32] } else { s })
        }));
        assert!(e.contains("text_model.encoder.layers.1.mlp.fc1.weight has shape [64, 32]"), "{e}");
        let e = refusal(b"not a safetensors file");
        assert!(e.contains("model.safetensors could not be read"), "{e}");
    }

    #[test]
    fn a_file_with_more_layers_than_the_config_is_refused() {
        let config = CONFIG.replacen("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1", 1);
        let e = Siglip::load(&config, WEIGHTS).err().unwrap().to_string();
        assert!(e.contains("more than the 1 text_model layers"), "{e}");
    }

    #[test]
    fn a_vision_only_file_embeds_images_but_not_texts() {
        let weights = rewritten(|n, s| (!n.starts_with("text_model.")).then_some(s));
        let m = Siglip::load(CONFIG, &weights).unwrap();
        let s = m.image_size();
        assert_eq!(m.embed_images(&vec![0.0; 3 * s * s], 1).unwrap()[0].len(), 32);
        assert!(matches!(m.embed_texts(&[vec![1]]), Err(ModelError::NoTextTower)));
        assert!(matches!(m.embed_images(&[0.0; 5], 1), Err(ModelError::InputSize(_))));
    }
    /// An int8 export's image tower runs on its dequantised weights, close to f32.
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn an_int8_export_runs_close_to_f32() {
        use crate::models::export::ExportDtype;
        let f32_model = Siglip::load(CONFIG, WEIGHTS).unwrap();
        let int8 = Siglip::load(CONFIG, &export::vision_tower(CONFIG, WEIGHTS, ExportDtype::Int8).unwrap()).unwrap();
        let s = int8.image_size();
        let px: Vec<f32> = (0..3 * s * s).map(|i| ((i * 53) % 255) as f32 / 127.5 - 1.0).collect();
        let want = &f32_model.embed_images(&px, 1).unwrap()[0];
        let got = &int8.embed_images(&px, 1).unwrap()[0];
        let cos = crate::kernels::test_cosine;
        assert!(got != want && cos(got, want) > 0.999, "int8 vs f32: cosine {}", cos(got, want));
    }
}
