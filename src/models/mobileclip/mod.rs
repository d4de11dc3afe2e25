//! The MobileCLIP family on candle: an open_clip hub folder (`open_clip_config.json`,
//! `open_clip_model.safetensors`) whose image tower is timm's FastViT-MCi0/1/2 (MobileCLIP-S1,
//! -S2, MobileCLIP2-S0, -S2) or ViT-MCi (`vit_base_mci_224`: MobileCLIP-B, MobileCLIP2-B), or a
//! narrower model of those kinds, and whose text tower is open_clip's, causal or not. FastViT
//! and the text tower without a causal mask are candle-transformers' (`fastvit`,
//! `openclip::text_model`), built from the shapes in the file rather than its fixed 512-wide
//! presets; ViT-MCi and the causal text tower, which candle-transformers lacks, are this
//! module's on candle-nn ([`vit_mci`], [`text`], one [`block`]). The file's tensors are checked
//! first ([`tensors`]).

pub mod block;
pub mod config;
/// The image tower alone for the page (native only).
#[cfg(not(target_arch = "wasm32"))]
pub mod export;
pub mod fastvit;
pub mod tensors;
pub mod text;
pub mod vision;
pub mod vit_mci;

use candle_core::{Device, Tensor};
use candle_nn::{Func, VarBuilder};

use crate::error::ModelError;
use crate::kernels::candle_ops::Int8Weights;
use crate::models::candle_weights;
use crate::models::clip::Towers;
use crate::models::config::PreprocessConfig;
use crate::models::model::Engine;
use fastvit::FastVit;
use config::{OpenClipConfig, VisionKind, VisionSpec};
use tensors::{engine, Tensors};
use text::TextTower;
use vision::VisionShape;
use vit_mci::{VitMci, VitMciShape};

/// The layout a `family` image tower is exported in where it is not the checkpoint's own
/// (bundle.json's `model.layout`): MobileCLIP's FastViT towers are written fused.
pub fn exported_layout(family: crate::models::model::Family, config: &str) -> Option<&'static str> {
    let config = OpenClipConfig::from_json(config).ok().filter(|_| family == crate::models::model::Family::MobileClip)?;
    matches!(config.vision.kind, VisionKind::FastVit(_)).then_some(fastvit::names::LAYOUT)
}

const LOGIT_SCALE: &str = "logit_scale";

/// What the towers are called in messages.
const WHAT: &str = "MobileCLIP checkpoint of this shape";

/// The image tower's architecture and shape as read from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VisionArch {
    FastVit(VisionShape),
    VitMci(VitMciShape),
}

impl VisionArch {
    fn infer(t: &Tensors, spec: &VisionSpec) -> Result<Self, ModelError> {
        Ok(match spec.kind {
            VisionKind::FastVit(kind) => VisionArch::FastVit(VisionShape::infer(t, spec, kind)?),
            VisionKind::VitMci => VisionArch::VitMci(VitMciShape::infer(t, spec)?),
        })
    }

    pub fn embed_dim(&self) -> usize {
        match self {
            VisionArch::FastVit(s) => s.embed_dim,
            VisionArch::VitMci(s) => s.embed_dim,
        }
    }

    fn tensor_names(&self) -> std::collections::BTreeSet<String> {
        match self {
            VisionArch::FastVit(s) => s.tensor_names(),
            VisionArch::VitMci(s) => s.tensor_names(),
        }
    }

    fn build(&self, vb: VarBuilder<'static>) -> Result<Func<'static>, candle_core::Error> {
        match self {
            VisionArch::FastVit(s) => s.build(vb),
            VisionArch::VitMci(s) => {
                let tower = VitMci::new(s, vb)?;
                Ok(Func::new(move |x| candle_core::Module::forward(&tower, x)))
            }
        }
    }
}

/// A loaded MobileCLIP model: the image tower, the text tower unless it was left out, its
/// preprocessing and embedding size.
pub struct MobileClip {
    config: OpenClipConfig,
    vision_arch: VisionArch,
    image: ImageTower,
    text: Option<TextTower>,
}

/// What runs the image tower.
enum ImageTower {
    /// candle-transformers' FastViT, or this module's ViT-MCi on candle-nn, with the 1x1
    /// convolutions and linear layers stored as int8 computed in int8.
    Candle { vision: Func<'static>, int8: Int8Weights },
    /// FastViT-MCi fused, on this crate's kernels ([`fastvit`]).
    Ours(FastVit),
}

/// The engine that runs a MobileCLIP image tower: `requested`, or by default this crate's
/// kernels for FastViT-MCi and candle for ViT-MCi (MobileCLIP-B), which only candle runs.
pub fn engine_for(spec: &VisionSpec, requested: Option<Engine>) -> Result<Engine, ModelError> {
    match (spec.kind, requested) {
        (VisionKind::FastVit(_), requested) => Ok(requested.unwrap_or(Engine::Ours)),
        (VisionKind::VitMci, None | Some(Engine::Candle)) => Ok(Engine::Candle),
        (VisionKind::VitMci, Some(Engine::Ours)) => {
            Err(ModelError::EngineCannotRun { family: "MobileCLIP-B's ViT-MCi image tower", engine: Engine::Ours.name() })
        }
    }
}

impl MobileClip {
    /// Loads `open_clip_config.json` (text) and `open_clip_model.safetensors` (bytes), both
    /// towers, on candle (the reference the tests hold this crate's FastViT to).
    pub fn load(config_json: &str, weights: &[u8]) -> Result<Self, ModelError> {
        Self::load_towers(config_json, weights, Towers::VisionAndText)
    }

    /// [`Self::load_on`] candle.
    pub fn load_towers(config_json: &str, weights: &[u8], towers: Towers) -> Result<Self, ModelError> {
        Self::load_on(config_json, weights, towers, Some(Engine::Candle))
    }

    /// Loads the towers asked for, the image tower on `engine` ([`engine_for`]; the text tower
    /// always runs on candle). [`Towers::VisionOnly`] reads a file of the image tower alone
    /// (`visual.*`, as `clipmatch bundle` exports it) or a whole checkpoint, ignoring its text
    /// tower; anything else in the file is refused.
    pub fn load_on(config_json: &str, weights: &[u8], towers: Towers, requested: Option<Engine>) -> Result<Self, ModelError> {
        // FastViT's depthwise convolutions, ViT-MCi's stem, exact GELU, products and element-wise
        // operations on this crate's kernels and thread pool.
        crate::kernels::candle_ops::install();
        let config = OpenClipConfig::from_json(config_json)?;
        let with_text = towers == Towers::VisionAndText;
        if engine_for(&config.vision, requested)? == Engine::Ours {
            let tower = FastVit::load(&config, weights)?;
            let text = match with_text {
                true => Some(Self::text_alone(&config, weights)?),
                false => None,
            };
            let vision_arch = VisionArch::FastVit(tower.shape());
            return Ok(Self { config, vision_arch, image: ImageTower::Ours(tower), text });
        }
        if let Ok((_, meta)) = safetensors::SafeTensors::read_metadata(weights) {
            if let Some(layout) = meta.metadata().as_ref().and_then(|m| m.get(fastvit::names::LAYOUT_KEY)) {
                return Err(tensors::bad(format!(
                    "the weights are fused (layout {:?}); candle reads open_clip's layout only: use the default engine",
                    layout.chars().take(40).collect::<String>()
                )));
            }
        }
        let mut tensors = Tensors::from_safetensors(weights)?;
        let text_names = text::tensor_names(&config.text);
        if !with_text {
            tensors.retain(|name| !text_names.contains(name) && name != LOGIT_SCALE);
        }
        let vision_arch = VisionArch::infer(&tensors, &config.vision)?;
        if vision_arch.embed_dim() != config.embed_dim {
            return Err(tensors::bad(format!(
                "the image tower embeds in {} dimensions, model_cfg.embed_dim is {}",
                vision_arch.embed_dim(),
                config.embed_dim
            )));
        }
        let mut expected = vision_arch.tensor_names();
        if with_text {
            text::check_depth(&tensors, &config.text)?;
            expected.extend(text_names);
            expected.insert(LOGIT_SCALE.into());
        }
        tensors.check_names(&expected, WHAT)?;
        let int8 = int8_layers(weights, &tensors)?;
        let (vb, requests) = tensors.var_builder();
        let vision = vision_arch.build(vb.clone());
        let text = with_text.then(|| TextTower::build(&config.text, config.embed_dim, vb.clone()));
        let logit_scale = with_text.then(|| vb.get((), LOGIT_SCALE).map(|_| ()));
        // A shape candle refused explains a failed build better than the build's own error.
        requests.check_shapes()?;
        let vision = vision.map_err(engine)?;
        let text = text.transpose().map_err(engine)?;
        logit_scale.transpose().map_err(engine)?;
        requests.check_all_read(expected.iter().map(String::as_str))?;
        Ok(Self { config, vision_arch, image: ImageTower::Candle { vision, int8 }, text })
    }

    /// The text tower of a whole checkpoint on candle, its tensors checked (the image tower's
    /// are read by [`FastVit::load`]).
    fn text_alone(config: &OpenClipConfig, weights: &[u8]) -> Result<TextTower, ModelError> {
        let mut tensors = Tensors::from_safetensors(weights)?;
        let mut expected = text::tensor_names(&config.text);
        expected.insert(LOGIT_SCALE.into());
        tensors.retain(|name| expected.contains(name));
        text::check_depth(&tensors, &config.text)?;
        tensors.check_names(&expected, WHAT)?;
        let (vb, requests) = tensors.var_builder();
        let text = TextTower::build(&config.text, config.embed_dim, vb.clone());
        let logit_scale = vb.get((), LOGIT_SCALE).map(|_| ());
        requests.check_shapes()?;
        let text = text.map_err(engine)?;
        logit_scale.map_err(engine)?;
        requests.check_all_read(expected.iter().map(String::as_str))?;
        Ok(text)
    }

    /// What runs the image tower.
    pub fn engine(&self) -> Engine {
        match self.image {
            ImageTower::Candle { .. } => Engine::Candle,
            ImageTower::Ours(_) => Engine::Ours,
        }
    }

    /// The preprocessing the folder asks for.
    pub fn preprocess(&self) -> &PreprocessConfig {
        &self.config.preprocess
    }

    pub fn embedding_dim(&self) -> usize {
        self.config.embed_dim
    }

    /// The image side the tower takes (square).
    pub fn image_size(&self) -> usize {
        self.config.vision.image_size as usize
    }

    /// Token ids per text (every text is padded to it).
    pub fn context_length(&self) -> usize {
        self.config.text.context_length
    }

    /// The image tower's 1x1 convolutions that run in int8 (an int8 export's; none otherwise).
    pub fn int8_convolutions(&self) -> usize {
        match &self.image {
            ImageTower::Candle { int8, .. } => int8.convolutions(),
            ImageTower::Ours(tower) => tower.int8_convolutions(),
        }
    }

    /// The image tower's linear layers that run in int8 (FastViT's attention, ViT-MCi's blocks).
    pub fn int8_linear_layers(&self) -> usize {
        match &self.image {
            ImageTower::Candle { int8, .. } => int8.linear_layers(),
            ImageTower::Ours(tower) => tower.int8_linear_layers(),
        }
    }

    /// The image tower's architecture and shape as read from the file.
    pub fn vision_arch(&self) -> &VisionArch {
        &self.vision_arch
    }

    /// Raw (unnormalised) image embeddings of `n` images given as NCHW pixel values.
    pub fn embed_images(&self, pixel_values: &[f32], n: usize) -> Result<Vec<Vec<f32>>, ModelError> {
        let side = self.image_size();
        if n == 0 || pixel_values.len() != n * 3 * side * side {
            return Err(ModelError::InputSize(format!(
                "{} pixel values for {n} images of 3x{side}x{side}",
                pixel_values.len()
            )));
        }
        let (vision, int8) = match &self.image {
            ImageTower::Ours(tower) => return tower.embed_images(pixel_values, n),
            ImageTower::Candle { vision, int8 } => (vision, int8),
        };
        // The whole batch in one forward pass (the patched candle-core folds a batch into a
        // matmul's rows only where that is right: vendor/candle-core/PATCHES.md, 1).
        Tensor::from_slice(pixel_values, (n, 3, side, side), &Device::Cpu)
            .and_then(|input| int8.run(|| input.apply(vision))?.to_vec2())
            .map_err(engine)
    }

    /// Raw (unnormalised) text embeddings of token id rows, each `context_length` long
    /// (without a causal mask the padding is attended, so its length matters).
    pub fn embed_texts(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, ModelError> {
        let (len, vocab) = (self.context_length(), self.config.text.vocab_size);
        if ids.is_empty() || ids.iter().any(|row| row.len() != len) {
            return Err(ModelError::InputSize(format!("every text must be {len} token ids")));
        }
        if let Some(id) = ids.iter().flatten().find(|&&id| id as usize >= vocab) {
            return Err(ModelError::InputSize(format!("token id {id} is outside the vocabulary of {vocab}")));
        }
        let text = self.text.as_ref().ok_or(ModelError::NoTextTower)?;
        let flat: Vec<u32> = ids.concat();
        let input = Tensor::from_vec(flat, (ids.len(), len), &Device::Cpu).map_err(engine)?;
        text.forward(&input).and_then(|out| out.to_vec2()).map_err(engine)
    }
}

/// The image tower's int8 (or 4-bit) 1x1 convolution kernels (an int8 bundle's MLPs, most of
/// FastViT's work) and linear weights (its attention; ViT-MCi's blocks), for candle to compute in
/// int8 rather than on their dequantised copies.
fn int8_layers(weights: &[u8], tensors: &Tensors) -> Result<Int8Weights, ModelError> {
    let pointwise = |shape: &[usize]| shape.len() == 4 && shape[2] == 1 && shape[3] == 1;
    let wanted = |name: &str, shape: &[usize]| name.starts_with("visual.") && (pointwise(shape) || shape.len() == 2);
    candle_weights::int8_layers(weights, wanted, |name| tensors.get(name), tensors::bad)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::kernels::test_cosine as cosine;
    use crate::models::export::ExportDtype;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/models/mobileclip2-s0-narrow");

    fn tower(dtype: ExportDtype) -> MobileClip {
        let config = std::fs::read_to_string(format!("{DIR}/open_clip_config.json")).unwrap();
        let weights = std::fs::read(format!("{DIR}/open_clip_model.safetensors")).unwrap();
        let exported = export::open_clip_form(&weights, dtype).unwrap();
        MobileClip::load_towers(&config, &exported, Towers::VisionOnly).unwrap()
    }

    #[test]
    fn an_int8_export_runs_its_mlps_in_int8() {
        let f16 = tower(ExportDtype::F16);
        let int8 = tower(ExportDtype::Int8);
        // At least the two 1x1 convolutions (fc1, fc2) of every block's MLP (also the
        // squeeze-excite ones, and the 1x1 branches that FastViT folds with their BatchNorm).
        let VisionArch::FastVit(shape) = int8.vision_arch() else { panic!("the fixture is a FastViT") };
        let blocks: usize = shape.depths.iter().sum();
        assert_eq!(f16.int8_convolutions(), 0);
        assert!(int8.int8_convolutions() >= 2 * blocks, "{} of {blocks} blocks", int8.int8_convolutions());
        // And the linear layers: qkv and proj of the fixture's two attention blocks, the head.
        assert_eq!(f16.int8_linear_layers(), 0);
        assert_eq!(int8.int8_linear_layers(), 5);
        let side = int8.image_size();
        let pixels = crate::kernels::test_values(3 * side * side, 9);
        let with_int8 = int8.embed_images(&pixels, 1).unwrap().remove(0);
        // The same tower on the dequantised copies: what int8 exports ran before.
        let input = Tensor::from_slice(&pixels, (1, 3, side, side), &Device::Cpu).unwrap();
        let ImageTower::Candle { vision, .. } = &int8.image else { panic!("on candle") };
        let dequantised = input.apply(vision).unwrap().to_vec2::<f32>().unwrap().remove(0);
        let c = cosine(&with_int8, &dequantised);
        assert!(c > 0.9999 && c < 1.0 - 1e-9, "int8 products vs dequantised f32: cosine {c}");
    }
}
