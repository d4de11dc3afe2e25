//! Builds SigLIP's image tower on this crate's kernels ([`ImageTower`]) from a `model.safetensors`
//! fed in chunks: the header is checked against `config.json` first (every tower tensor there
//! with its shape and a type this crate reads, no extra layers), then each tower tensor is packed
//! as soon as it has arrived, so neither the file nor a float copy of an int8 weight is ever
//! held. The text tower's tensors, if the file has them, are passed over.

use crate::error::ModelError;
use crate::models::clip::encoder::Precision;
use crate::models::quantised_tensors::{check_expected, stores_quantised, ScalePairs};
use crate::models::safetensors_stream::{SafetensorsStream, TensorInfo, TensorSink};
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
        let mut stream = std::mem::take(&mut self.stream);
        let result = stream.push(chunk, self);
        self.stream = stream;
        result
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
