//! CLIP's byte-level BPE tokenizer from a Hugging Face `tokenizer.json`, configured as
//! `CLIPTokenizer(truncation=True, max_length=77)`: start and end tokens always kept,
//! batches padded with the end-of-text id.

use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::ModelError;

pub const END_OF_TEXT: &str = "<|endoftext|>";

pub struct ClipTokenizer {
    inner: Tokenizer,
    end_of_text_id: u32,
    max_len: usize,
}

impl ClipTokenizer {
    /// Reads `tokenizer.json`; `max_len` is the text tower's `max_position_embeddings` (77).
    pub fn from_bytes(json: &[u8], max_len: usize) -> Result<Self, ModelError> {
        let bad = |m: String| ModelError::Tokenizer(m);
        let mut inner = Tokenizer::from_bytes(json).map_err(|e| bad(e.to_string()))?;
        let end_of_text_id = inner
            .token_to_id(END_OF_TEXT)
            .ok_or_else(|| bad(format!("it has no {END_OF_TEXT} token, so it is not CLIP's")))?;
        inner
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| bad(e.to_string()))?;
        inner.with_padding(None);
        Ok(Self {
            inner,
            end_of_text_id,
            max_len,
        })
    }

    pub fn end_of_text_id(&self) -> u32 {
        self.end_of_text_id
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Token ids of one text, with start and end tokens, at most `max_len` long.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| ModelError::Tokenizer(format!("cannot tokenize {text:?}: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Token ids of several texts, each padded with the end-of-text id to the longest.
    pub fn encode_batch<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<u32>>, ModelError> {
        let mut ids = texts
            .iter()
            .map(|t| self.encode(t.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let longest = ids.iter().map(Vec::len).max().unwrap_or(0);
        for row in &mut ids {
            row.resize(longest, self.end_of_text_id);
        }
        Ok(ids)
    }
}
