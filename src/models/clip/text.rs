//! The CLIP text encoder (causal transformer + text projection), run with this crate's own
//! kernels: the same function as `transformers`' `CLIPTextModel` followed by `text_projection`,
//! i.e. `get_text_features`, for checkpoints whose end-of-text token has the largest id (the
//! pooled token is the first position of the largest id, as `transformers` does for them).
//!
//! Because attention is causal, the pooled token never sees what comes after it: each text is run
//! only up to its end-of-text token, with no padding, and texts of different lengths share one
//! pass through the layers.

use crate::models::config::TextConfig;

use crate::models::clip::encoder::{Encoder, Expected, Linear, Mask, Norm, Precision, TensorValues};
use crate::error::ModelError;

const LAYERS_PREFIX: &str = "text_model.encoder.layers.";

/// Texts worth embedding in one call: products of a few hundred rows keep both cores busy,
/// and texts of different lengths cost nothing extra together (no padding).
pub const TEXT_BATCH: usize = 256;

/// The loaded text encoder, always at f32.
pub struct TextEncoder {
    vocab: usize,
    max_positions: usize,
    hidden: usize,
    token_embedding: Vec<f32>,
    position_embedding: Vec<f32>,
    encoder: Encoder,
    final_norm: Norm,
    projection: Linear,
}

/// A [`TextEncoder`] being filled tensor by tensor, in any order.
pub struct TextEncoderBuilder {
    encoder: TextEncoder,
    expected: Expected,
}

impl TextEncoderBuilder {
    /// An encoder of `cfg`'s shape with every weight zero; `expected` lists the tensor names
    /// that must arrive before [`Self::finish`].
    pub fn new(cfg: &TextConfig, projection_dim: usize, expected: impl IntoIterator<Item = String>) -> Self {
        let h = cfg.embed_dim;
        Self {
            encoder: TextEncoder {
                vocab: cfg.vocab_size,
                max_positions: cfg.max_position_embeddings,
                hidden: h,
                token_embedding: vec![0.0; cfg.vocab_size * h],
                position_embedding: vec![0.0; cfg.max_position_embeddings * h],
                encoder: Encoder::zeros(
                    Precision::F32,
                    cfg.num_hidden_layers,
                    h,
                    cfg.num_attention_heads,
                    cfg.intermediate_size,
                    Mask::Causal,
                ),
                final_norm: Norm::zeros(h),
                projection: Linear::zeros(Precision::F32, projection_dim, h, false),
            },
            expected: Expected::new(expected),
        }
    }

    /// Whether `name` is one of the encoder's tensors still to come.
    pub fn wants(&self, name: &str) -> bool {
        self.expected.wants(name)
    }

    /// Puts one tensor (shape already checked against the config) in its place.
    pub fn put(&mut self, name: &str, values: &[f32]) -> Result<(), ModelError> {
        self.expected.arrived(name)?;
        let e = &mut self.encoder;
        if let Some(rest) = name.strip_prefix(LAYERS_PREFIX) {
            return e.encoder.put(rest, TensorValues::F32(values));
        }
        let unknown = || ModelError::WeightsMismatch(format!("{name} is not a text tower tensor"));
        let dst = match name {
            "text_projection.weight" => return e.projection.set_rows(0, &TensorValues::F32(values), 1.0),
            "text_model.embeddings.token_embedding.weight" => &mut e.token_embedding,
            "text_model.embeddings.position_embedding.weight" => &mut e.position_embedding,
            _ => {
                let what = name.strip_prefix("text_model.final_layer_norm.").ok_or_else(unknown)?;
                e.final_norm.part(what).ok_or_else(unknown)?
            }
        };
        dst.copy_from_slice(values);
        Ok(())
    }

    /// The encoder, once every expected tensor has arrived.
    pub fn finish(self) -> Result<TextEncoder, ModelError> {
        self.expected.check_complete()?;
        Ok(self.encoder)
    }
}

/// The position `transformers` pools from: the first position of the largest id.
pub(crate) fn pooled_position(ids: &[u32]) -> usize {
    let mut best = 0;
    for (i, &id) in ids.iter().enumerate() {
        if id > ids[best] {
            best = i;
        }
    }
    best
}

impl TextEncoder {
    /// Bytes of weights held.
    pub fn weight_bytes(&self) -> usize {
        self.encoder.bytes()
            + (self.token_embedding.len() + self.position_embedding.len()) * 4
            + self.final_norm.bytes()
            + self.projection.bytes()
    }

    /// Raw text embeddings (`get_text_features`) of token id rows, each with its start and
    /// end-of-text tokens; rows may differ in length, and padding after the end-of-text token
    /// changes nothing.
    pub fn embed(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, ModelError> {
        let h = self.hidden;
        if let Some(row) = ids.iter().find(|r| r.is_empty() || r.len() > self.max_positions) {
            return Err(ModelError::InputSize(format!(
                "a text has {} tokens; the text tower takes 1 to {}",
                row.len(),
                self.max_positions
            )));
        }
        if let Some(&id) = ids.iter().flatten().find(|&&id| id as usize >= self.vocab) {
            return Err(ModelError::InputSize(format!(
                "token id {id} is outside the text tower's vocabulary of {}",
                self.vocab
            )));
        }
        // Only the tokens up to the pooled one matter (causal attention).
        let lens: Vec<usize> = ids.iter().map(|r| pooled_position(r) + 1).collect();
        let mut x = Vec::with_capacity(lens.iter().sum::<usize>() * h);
        for (row, &len) in ids.iter().zip(&lens) {
            for (pos, &id) in row[..len].iter().enumerate() {
                let token = &self.token_embedding[id as usize * h..][..h];
                let position = &self.position_embedding[pos * h..][..h];
                x.extend(token.iter().zip(position).map(|(t, p)| t + p));
            }
        }
        // Only the pooled (last) row of each text is read after the last layer.
        let last: Vec<usize> = lens.iter().map(|l| l - 1).collect();
        self.encoder.forward_keeping(&mut x, &lens, &last);
        let mut pooled = vec![0.0f32; ids.len() * h];
        let mut end = 0;
        for (dst, &len) in pooled.chunks_exact_mut(h).zip(&lens) {
            end += len;
            self.final_norm.apply(&x[(end - 1) * h..end * h], dst);
        }
        let d = self.projection.out_dim();
        let mut out = vec![0.0f32; ids.len() * d];
        self.projection.forward(&pooled, ids.len(), &mut out);
        Ok(out.chunks_exact(d).map(<[f32]>::to_vec).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::pooled_position;

    #[test]
    fn pools_at_the_first_largest_id() {
        assert_eq!(pooled_position(&[49406, 320, 49407, 49407, 49407]), 2);
        assert_eq!(pooled_position(&[49406, 49407]), 1);
        assert_eq!(pooled_position(&[5]), 0);
    }
}
