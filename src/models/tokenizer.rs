//! CLIP's byte-level BPE tokenizer from a Hugging Face `tokenizer.json`, configured as
//! `CLIPTokenizer(truncation=True, max_length=77)`: start and end tokens always kept,
//! batches padded with the end-of-text id; `<|startoftext|>` and `<|endoftext|>` typed in a
//! text are those tokens. Or as open_clip's `SimpleTokenizer` ([`ClipTokenizer::open_clip`]):
//! the same BPE on the words of the text as open_clip cleans and cuts it
//! ([`crate::models::open_clip_text`]), where `<start_of_text>` and `<end_of_text>` typed in a
//! text are the tokens and CLIP's markers are text; truncated keeping the end token, every text
//! padded with 0 to the context length.

use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::ModelError;
use crate::models::open_clip_text::{self, Piece};

pub const START_OF_TEXT: &str = "<|startoftext|>";
pub const END_OF_TEXT: &str = "<|endoftext|>";

pub struct ClipTokenizer {
    inner: Tokenizer,
    start_of_text_id: u32,
    end_of_text_id: u32,
    max_len: usize,
    padding: Padding,
    /// Texts cleaned and cut as open_clip does, and truncated here.
    open_clip: bool,
}

/// How [`ClipTokenizer::encode_batch`] pads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Padding {
    /// transformers: with the end-of-text id, to the batch's longest text.
    LongestWithEndOfText,
    /// open_clip: with this id, to `max_len`.
    FullWith(u32),
}

impl ClipTokenizer {
    /// Reads `tokenizer.json`; `max_len` is the text tower's `max_position_embeddings` (77).
    pub fn from_bytes(json: &[u8], max_len: usize) -> Result<Self, ModelError> {
        let bad = |m: String| ModelError::Tokenizer(m);
        let mut inner = Tokenizer::from_bytes(json).map_err(|e| bad(e.to_string()))?;
        let id = |token: &str| {
            let missing = || bad(format!("it has no {token} token, so it is not CLIP's"));
            inner.token_to_id(token).ok_or_else(missing)
        };
        let (start_of_text_id, end_of_text_id) = (id(START_OF_TEXT)?, id(END_OF_TEXT)?);
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
            start_of_text_id,
            end_of_text_id,
            max_len,
            padding: Padding::LongestWithEndOfText,
            open_clip: false,
        })
    }

    /// open_clip's tokenizer for a `context_length`: texts cleaned and cut into words as open_clip
    /// does, every text padded with 0 to the full length (the hub `tokenizer.json`'s own
    /// padding settings are ignored).
    pub fn open_clip(json: &[u8], context_length: usize) -> Result<Self, ModelError> {
        let t = Self::from_bytes(json, context_length)?;
        let mut t = Self { padding: Padding::FullWith(0), open_clip: true, ..t };
        t.inner.with_truncation(None).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(t)
    }

    pub fn end_of_text_id(&self) -> u32 {
        self.end_of_text_id
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Token ids of one text, with start and end tokens, at most `max_len` long.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        if self.open_clip {
            return self.encode_open_clip(text);
        }
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| ModelError::Tokenizer(format!("cannot tokenize {text:?}: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// `SimpleTokenizer.__call__` for one text: `[sot] + encode(text) + [eot]`, cut to `max_len`
    /// with the end token last.
    fn encode_open_clip(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let clean = open_clip_text::clean(text);
        let mut ids = vec![self.start_of_text_id];
        let mut words = Vec::new();
        for piece in open_clip_text::pieces(&clean) {
            let special = match piece {
                Piece::Word(word) => {
                    words.push(word);
                    continue;
                }
                Piece::StartOfText => self.start_of_text_id,
                Piece::EndOfText => self.end_of_text_id,
            };
            ids.extend(self.bpe(&words, text)?);
            words.clear();
            ids.push(special);
        }
        ids.extend(self.bpe(&words, text)?);
        ids.push(self.end_of_text_id);
        if ids.len() > self.max_len {
            ids.truncate(self.max_len);
            ids[self.max_len - 1] = self.end_of_text_id;
        }
        Ok(ids)
    }

    /// The BPE's ids of words already cut (no start or end token added).
    fn bpe(&self, words: &[&str], text: &str) -> Result<Vec<u32>, ModelError> {
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let enc = self
            .inner
            .encode(words, false)
            .map_err(|e| ModelError::Tokenizer(format!("cannot tokenize {text:?}: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Token ids of several texts, padded: with the end-of-text id to the longest
    /// ([`Self::from_bytes`]) or with 0 to `max_len` ([`Self::open_clip`]).
    pub fn encode_batch<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<u32>>, ModelError> {
        let mut ids = texts
            .iter()
            .map(|t| self.encode(t.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let (len, pad) = match self.padding {
            Padding::LongestWithEndOfText => (ids.iter().map(Vec::len).max().unwrap_or(0), self.end_of_text_id),
            Padding::FullWith(pad) => (self.max_len, pad),
        };
        for row in &mut ids {
            row.resize(len, pad);
        }
        Ok(ids)
    }
}
