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
use crate::models::clip::Towers;
use crate::models::config::PreprocessConfig;
use crate::models::model::Engine;
use fastvit::FastVit;
use config::{OpenClipConfig, VisionKind, VisionSpec};
use tensors::{engine, Linears, Tensors};
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

    /// The tower on candle and its linear layers that compute on int8 values.
    fn build(&self, vb: VarBuilder<'static>, linears: &mut Linears) -> Result<(Func<'static>, usize), candle_core::Error> {
        match self {
            VisionArch::FastVit(s) => Ok((s.build(vb)?, 0)),
            VisionArch::VitMci(s) => {
                let tower = VitMci::new(s, vb, linears)?;
                let quantised = tower.quantised_layers();
                Ok((Func::new(move |x| candle_core::Module::forward(&tower, x)), quantised))
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
    /// candle-transformers' FastViT (an int8 or 4-bit file's weights dequantised: on candle it
    /// is the reference and `--engine candle`), or this module's ViT-MCi on candle-nn, whose
    /// linear layers hold an int8 file's weights as int8 and compute on them.
    Candle { vision: Func<'static>, int8_linear_layers: usize },
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
        // ViT-MCi's linear weights (2-D, in the image tower) stay int8 where the file has them so.
        let vit_mci = config.vision.kind == VisionKind::VitMci;
        let keep_int8 = |name: &str, shape: &[usize]| vit_mci && name.starts_with("visual.") && shape.len() == 2;
        let mut tensors = Tensors::from_safetensors_keeping(weights, keep_int8)?;
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
        let (vb, mut linears, requests) = tensors.var_builder();
        let vision = vision_arch.build(vb.clone(), &mut linears);
        let text = with_text.then(|| TextTower::build(&config.text, config.embed_dim, vb.clone()));
        let logit_scale = with_text.then(|| vb.get((), LOGIT_SCALE).map(|_| ()));
        // A shape candle refused explains a failed build better than the build's own error.
        requests.check_shapes()?;
        let (vision, int8_linear_layers) = vision.map_err(engine)?;
        let text = text.transpose().map_err(engine)?;
        logit_scale.transpose().map_err(engine)?;
        requests.check_all_read(expected.iter().map(String::as_str))?;
        Ok(Self { config, vision_arch, image: ImageTower::Candle { vision, int8_linear_layers }, text })
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
        let (vb, _, requests) = tensors.var_builder();
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

    /// The image tower's 1x1 convolutions that run in int8 (an int8 export's on this crate's
    /// kernels; none otherwise).
    pub fn int8_convolutions(&self) -> usize {
        match &self.image {
            ImageTower::Candle { .. } => 0,
            ImageTower::Ours(tower) => tower.int8_convolutions(),
        }
    }

    /// The image tower's linear layers that run in int8 (FastViT's attention, ViT-MCi's blocks).
    pub fn int8_linear_layers(&self) -> usize {
        match &self.image {
            ImageTower::Candle { int8_linear_layers, .. } => *int8_linear_layers,
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
        let vision = match &self.image {
            ImageTower::Ours(tower) => return tower.embed_images(pixel_values, n),
            ImageTower::Candle { vision, .. } => vision,
        };
        // The whole batch in one forward pass (the patched candle-core folds a batch into a
        // matmul's rows only where that is right: vendor/candle-core/PATCHES.md, 1).
        Tensor::from_slice(pixel_values, (n, 3, side, side), &Device::Cpu)
            .and_then(|input| input.apply(vision)?.to_vec2())
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

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::kernels::test_cosine as cosine;
    use crate::models::export::ExportDtype;

    fn folder(name: &str) -> (String, Vec<u8>) {
        let dir = format!("{}/tests/fixtures/models/{name}", env!("CARGO_MANIFEST_DIR"));
        let config = std::fs::read_to_string(format!("{dir}/open_clip_config.json")).unwrap();
        (config, std::fs::read(format!("{dir}/open_clip_model.safetensors")).unwrap())
    }

    fn embedding(model: &MobileClip, seed: u32) -> Vec<f32> {
        let side = model.image_size();
        model.embed_images(&crate::kernels::test_values(3 * side * side, seed), 1).unwrap().remove(0)
    }

    /// On candle, FastViT (candle-transformers') runs an int8 export on its dequantised weights:
    /// nothing in int8, close to f16.
    #[test]
    fn fastvit_on_candle_runs_an_int8_export_dequantised() {
        let (config, weights) = folder("mobileclip2-s0-narrow");
        let tower = |dtype| MobileClip::load_towers(&config, &export::open_clip_form(&weights, dtype).unwrap(), Towers::VisionOnly).unwrap();
        let (f16, int8) = (tower(ExportDtype::F16), tower(ExportDtype::Int8));
        assert_eq!((int8.int8_convolutions(), int8.int8_linear_layers()), (0, 0));
        let c = cosine(&embedding(&int8, 9), &embedding(&f16, 9));
        assert!(c > 0.999 && c < 1.0 - 1e-9, "int8 vs f16: cosine {c}");
    }

    /// ViT-MCi (MobileCLIP-B) holds an int8 or 4-bit export's linear weights as int8 (four a
    /// block, and the head) and computes on them, close to the checkpoint's f32; a float export's
    /// none.
    #[test]
    fn vit_mci_holds_an_int8_exports_linear_layers_as_int8() {
        let (config, weights) = folder("mobileclip-b-narrow");
        let full = MobileClip::load_towers(&config, &weights, Towers::VisionOnly).unwrap();
        let VisionArch::VitMci(shape) = full.vision_arch() else { panic!("the fixture is a ViT-MCi") };
        let want = embedding(&full, 9);
        assert_eq!(full.int8_linear_layers(), 0);
        for (dtype, layers) in [(ExportDtype::F16, 0), (ExportDtype::Int8, 4 * shape.depth + 1), (ExportDtype::Int4, 4 * shape.depth + 1)] {
            let tower = export::vision_tower(&config, &weights, dtype).unwrap();
            let model = MobileClip::load_towers(&config, &tower, Towers::VisionOnly).unwrap();
            assert_eq!(model.int8_linear_layers(), layers, "{}", dtype.name());
            let c = cosine(&embedding(&model, 9), &want);
            assert!(c > 0.995, "{} vs f32: cosine {c}", dtype.name());
        }
    }
}
