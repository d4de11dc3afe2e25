//! Builds SigLIP's image tower on this crate's kernels ([`ImageTower`]) from a `model.safetensors`
//! fed in chunks: the header is checked against `config.json` first (every tower tensor there
//! with its shape and a type this crate reads, no extra layers), then each tower tensor is packed
//! as soon as it has arrived, so neither the file nor a float copy of an int8 weight is ever
//! held. The text tower's tensors, if the file has them, are passed over.

use crate::error::ModelError;
use crate::models::clip::encoder::Precision;
use crate::models::quantised_tensors::{check_expected, stores_quantised, ScalePairs};
use crate::models::safetensors_stream::{push_to, SafetensorsStream, TensorInfo, TensorSink};
use crate::models::siglip::config::SiglipConfig;
use crate::models::siglip::image_tower::{is_linear_weight, ImageTower, ImageTowerBuilder};
use crate::models::siglip::vision::expected_tensors;

/// The image tower being loaded from slices of its weights file ([`Self::push`]).
pub struct ImageTowerLoader {
    config: SiglipConfig,
    stream: SafetensorsStream,
    /// Quantised weights and their scales, each waiting for the other.
    pairs: ScalePairs,
    /// Set once the header has been read and checked.
    tower: Option<ImageTowerBuilder>,
}

impl ImageTowerLoader {
    pub fn new(config: SiglipConfig) -> Self {
        Self { config, stream: SafetensorsStream::new(), pairs: ScalePairs::default(), tower: None }
    }

    /// Tells the loader the file's length before it arrives: a header whose data would not fill
    /// exactly that many bytes is refused before any tensor buffer is allocated from it.
    pub fn with_file_len(self, len: usize) -> Self {
        Self { stream: SafetensorsStream::with_file_len(len), ..self }
    }

    /// Feeds the next bytes of `model.safetensors`.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), ModelError> {
        push_to(self, |l| &mut l.stream, chunk)
    }

    /// The tower, once the whole file has arrived.
    pub fn finish(self) -> Result<ImageTower, ModelError> {
        self.stream.finish()?;
        self.tower.expect("the header created the tower").finish()
    }

    /// The tower from the whole file at once.
    pub fn load(config: SiglipConfig, weights: &[u8]) -> Result<ImageTower, ModelError> {
        let mut loader = Self::new(config).with_file_len(weights.len());
        loader.push(weights)?;
        loader.finish()
    }
}

impl TensorSink for ImageTowerLoader {
    fn header(&mut self, tensors: &[TensorInfo]) -> Result<(), ModelError> {
        let v = &self.config.candle.vision_config;
        let extra = format!("vision_model.encoder.layers.{}.", v.num_hidden_layers);
        if tensors.iter().any(|t| t.name.starts_with(&extra)) {
            return Err(ModelError::WeightsMismatch(format!(
                "the file has more than the {} vision_model layers config.json declares",
                v.num_hidden_layers
            )));
        }
        // Compared before the names are listed, so that an absurd layer count lists nothing.
        if v.num_hidden_layers.saturating_mul(16) > tensors.len() {
            return Err(ModelError::WeightsMismatch(format!(
                "the file has {} tensors, fewer than config.json's {} vision layers need",
                tensors.len(),
                v.num_hidden_layers
            )));
        }
        let expected = expected_tensors(v);
        check_expected(tensors, &expected, is_linear_weight)?;
        let precision = match stores_quantised(tensors, is_linear_weight) {
            true => Precision::Int8,
            false => Precision::F32,
        };
        self.tower = Some(ImageTowerBuilder::new(v, precision, expected.into_iter().map(|(n, _)| n))?);
        Ok(())
    }

    fn tensor(&mut self, info: &TensorInfo, data: &[u8]) -> Result<(), ModelError> {
        let tower = self.tower.as_mut().expect("the header comes first");
        if tower.wants(&info.name) {
            return self.pairs.tower_tensor(info, data, |name, values| tower.put(name, values));
        }
        self.pairs.scales(info, data, is_linear_weight, |name, values| tower.put(name, values))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::siglip::tests::{rewritten, CONFIG, WEIGHTS};

    fn config() -> SiglipConfig {
        SiglipConfig::from_json(CONFIG).unwrap()
    }

    fn refusal(weights: &[u8]) -> String {
        let e = ImageTowerLoader::load(config(), weights).err().expect("refused").to_string();
        assert!(!e.contains('\n'), "{e}");
        e
    }

    #[test]
    fn slices_of_any_size_load_the_same_tower() {
        let whole = ImageTowerLoader::load(config(), WEIGHTS).unwrap();
        let mut loader = ImageTowerLoader::new(config()).with_file_len(WEIGHTS.len());
        for slice in WEIGHTS.chunks(1000) {
            loader.push(slice).unwrap();
        }
        let sliced = loader.finish().unwrap();
        let px: Vec<f32> = (0..3 * 224 * 224).map(|i| ((i * 31) % 255) as f32 / 127.5 - 1.0).collect();
        assert_eq!(whole.embed(&px, 1).unwrap(), sliced.embed(&px, 1).unwrap());
        assert!(matches!(whole.embed(&px[1..], 1), Err(ModelError::InputSize(_))));
    }

    #[test]
    fn a_damaged_file_is_refused_naming_the_tensor() {
        let e = refusal(&rewritten(|n, s| (n != "vision_model.head.probe").then_some(s)));
        assert!(e.contains("1 tensors are missing, e.g. vision_model.head.probe"), "{e}");
        let e = refusal(&rewritten(|n, s| {
            Some(if n == "vision_model.head.attention.in_proj_weight" { vec![96, 16] } else { s })
        }));
        assert!(e.contains("vision_model.head.attention.in_proj_weight has shape [96, 16]"), "{e}");
        let e = refusal(b"not a safetensors file");
        assert!(e.contains("safetensors"), "{e}");
    }

    #[test]
    fn a_file_with_more_layers_than_the_config_is_refused() {
        let config = CONFIG.replace("\"num_hidden_layers\": 2,\n    \"patch_size\"", "\"num_hidden_layers\": 1,\n    \"patch_size\"");
        assert_ne!(config, CONFIG);
        let e = ImageTowerLoader::load(SiglipConfig::from_json(&config).unwrap(), WEIGHTS).err().unwrap().to_string();
        assert!(e.contains("more than the 1 vision_model layers"), "{e}");
    }

    #[test]
    fn the_text_tower_is_passed_over() {
        let vision_only = rewritten(|n, s| (!n.starts_with("text_model.")).then_some(s));
        assert!(ImageTowerLoader::load(config(), &vision_only).is_ok());
    }
}
