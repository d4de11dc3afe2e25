//! SigLIP's text tower on candle: transformer without attention mask, pooled at the last
//! position, then the `head` Linear; its output is transformers' `get_text_features` (not
//! normalised) for ids padded as [`crate::models::siglip::tokenizer`] pads them.

use candle_core::{Device, Module, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::siglip;

use crate::error::ModelError;
use crate::models::clip::encoder_tensors;
use crate::models::siglip::engine_error;

/// Every tensor the text tower needs, with its shape, as transformers names them.
pub fn expected_tensors(cfg: &siglip::TextConfig) -> Vec<(String, Vec<usize>)> {
    let h = cfg.hidden_size;
    let mut out = vec![
        ("text_model.embeddings.token_embedding.weight".into(), vec![cfg.vocab_size, h]),
        (
            "text_model.embeddings.position_embedding.weight".into(),
            vec![cfg.max_position_embeddings, h],
        ),
    ];
    encoder_tensors("text_model", cfg.num_hidden_layers, h, cfg.intermediate_size, &mut out);
    for (name, shape) in [
        ("final_layer_norm.weight", vec![h]),
        ("final_layer_norm.bias", vec![h]),
        ("head.weight", vec![h, h]),
        ("head.bias", vec![h]),
    ] {
        out.push((format!("text_model.{name}"), shape));
    }
    out
}

/// The text tower, on the CPU.
pub struct TextTower {
    model: siglip::TextModel,
    vocab_size: usize,
    max_len: usize,
}

impl TextTower {
    pub fn load(cfg: &siglip::TextConfig, vb: VarBuilder) -> Result<Self, ModelError> {
        let model = siglip::TextModel::new(cfg, vb.pp("text_model")).map_err(engine_error)?;
        Ok(Self {
            model,
            vocab_size: cfg.vocab_size,
            max_len: cfg.max_position_embeddings,
        })
    }

    /// Unnormalised text embeddings of token id rows, all of one length (the tokenizer pads to
    /// 64; the length changes the embedding, since no attention mask is applied).
    pub fn embed(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, ModelError> {
        let Some(first) = ids.first() else {
            return Ok(Vec::new());
        };
        let len = first.len();
        if len == 0 || len > self.max_len || ids.iter().any(|row| row.len() != len) {
            return Err(ModelError::InputSize(format!(
                "token id rows must all have one length between 1 and {}",
                self.max_len
            )));
        }
        if let Some(&id) = ids.iter().flatten().find(|&&id| id as usize >= self.vocab_size) {
            return Err(ModelError::InputSize(format!(
                "token id {id} is outside the vocabulary of {}",
                self.vocab_size
            )));
        }
        let flat: Vec<u32> = ids.concat();
        let input = Tensor::from_vec(flat, (ids.len(), len), &Device::Cpu).map_err(engine_error)?;
        let out = self.model.forward(&input).map_err(engine_error)?;
        out.to_vec2::<f32>().map_err(engine_error)
    }
}
