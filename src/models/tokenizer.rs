//! CLIP's byte-level BPE tokenizer from a Hugging Face `tokenizer.json`, configured as
//! `CLIPTokenizer(truncation=True, max_length=77)`: start and end tokens always kept,
//! batches padded with the end-of-text id. Or as open_clip's `SimpleTokenizer` uses the same
//! BPE ([`ClipTokenizer::open_clip`]): HTML entities unescaped twice first, every text padded
//! with 0 to the context length. (open_clip's `ftfy.fix_text`, which repairs mojibake, is not
//! reproduced.)

use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::ModelError;

pub const END_OF_TEXT: &str = "<|endoftext|>";

pub struct ClipTokenizer {
    inner: Tokenizer,
    end_of_text_id: u32,
    max_len: usize,
    padding: Padding,
    unescape_html: bool,
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
            padding: Padding::LongestWithEndOfText,
            unescape_html: false,
        })
    }

    /// open_clip's tokenizer for a `context_length`: HTML entities unescaped twice
    /// (`html.unescape(html.unescape(text))`), every text padded with 0 to the full length
    /// (the hub `tokenizer.json`'s own padding settings are ignored).
    pub fn open_clip(json: &[u8], context_length: usize) -> Result<Self, ModelError> {
        Ok(Self { padding: Padding::FullWith(0), unescape_html: true, ..Self::from_bytes(json, context_length)? })
    }

    pub fn end_of_text_id(&self) -> u32 {
        self.end_of_text_id
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Token ids of one text, with start and end tokens, at most `max_len` long.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let unescaped;
        let text = if self.unescape_html {
            unescaped = html_escape::decode_html_entities(&html_escape::decode_html_entities(text)).into_owned();
            unescaped.as_str()
        } else {
            text
        };
        let enc = self
            .inner
            .encode(text, true)
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
