//! OpenAI CLIP's image tower on candle ([`CandleVision`]) from a `model.safetensors` fed in
//! chunks: the header checked as this crate's loader checks it ([`super::check_tensors`]), then
//! each tensor converted as soon as it has arrived (an int8 or 4-bit linear weight once its
//! scales are in too, [`ScalePairs`]), straight into what the tower holds: f32 for float
//! tensors, packed int8 rows for quantised weights ([`Weight::from_int8`]). The file is never held
//! whole, nor a weight in two forms.

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use crate::models::candle_linear::Weight;
use super::candle_vision::CandleVision;
use super::vision::is_linear_weight;
use super::{check_tensors, expected_tensors, Towers};
use crate::error::ModelError;
use crate::models::clip::encoder::TensorValues;
use crate::models::config::ModelConfig;
use crate::models::quantised_tensors::ScalePairs;
use crate::models::safetensors_stream::{f32_values, push_to, SafetensorsStream, TensorDtype, TensorInfo, TensorSink};

fn engine(e: candle_core::Error) -> ModelError {
    ModelError::Engine(e.to_string())
}

/// The image tower being loaded.
pub struct CandleVisionLoader {
    config: ModelConfig,
    stream: SafetensorsStream,
    pairs: ScalePairs,
    /// The tensors still to come, with the shapes of the weights they hold (set by the header).
    wanted: HashMap<String, Vec<usize>>,
    weights: HashMap<String, Weight>,
}

impl CandleVisionLoader {
    pub fn new(config: ModelConfig) -> Self {
        Self {
            config,
            stream: SafetensorsStream::new(),
            pairs: ScalePairs::default(),
            wanted: HashMap::new(),
            weights: HashMap::new(),
        }
    }

    /// Tells the loader the file's length before it arrives ([`SafetensorsStream::with_file_len`]).
    pub fn with_file_len(mut self, len: usize) -> Self {
        self.stream = SafetensorsStream::with_file_len(len);
        self
    }

    /// Feeds the next bytes of `model.safetensors`.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), ModelError> {
        push_to(self, |l| &mut l.stream, chunk)
    }

    /// The tower, once the whole file has arrived.
    pub fn finish(self) -> Result<CandleVision, ModelError> {
        self.stream.finish()?;
        CandleVision::new(&self.config, self.weights).map_err(engine)
    }
}

impl TensorSink for CandleVisionLoader {
    fn header(&mut self, tensors: &[TensorInfo]) -> Result<(), ModelError> {
        check_tensors(tensors, &self.config, Some(Towers::VisionOnly))?;
        self.wanted = expected_tensors(&self.config, Towers::VisionOnly)
            .into_iter()
            .collect();
        Ok(())
    }

    fn tensor(&mut self, info: &TensorInfo, data: &[u8]) -> Result<(), ModelError> {
        let Self { pairs, wanted, weights, .. } = self;
        let is_wanted = wanted.contains_key(&info.name);
        let dtype = info.dtype.expect("checked with the header");
        if is_wanted && !matches!(dtype, TensorDtype::I8 | TensorDtype::U8) {
            // A float tensor's f32 values become the tensor's storage: never copied.
            let shape = wanted.remove(&info.name).expect("a wanted tensor");
            let tensor = Tensor::from_vec(f32_values(dtype, data)?, shape, &Device::Cpu).map_err(engine)?;
            weights.insert(info.name.clone(), Weight::Float(tensor));
            return Ok(());
        }
        let put = |name: &str, values: TensorValues| {
            let shape = wanted.remove(name).expect("a wanted tensor");
            let weight = match values {
                TensorValues::F32(values) => Tensor::from_slice(values, shape, &Device::Cpu).map(Weight::Float),
                TensorValues::Int8 { values, scales } => Weight::from_int8(values, scales, &shape),
            };
            weights.insert(name.to_string(), weight.map_err(engine)?);
            Ok(())
        };
        if is_wanted {
            return pairs.tower_tensor(info, data, put);
        }
        pairs.scales(info, data, is_linear_weight, put)?;
        Ok(())
    }
}
