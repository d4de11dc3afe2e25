//! SigLIP's SentencePiece tokenizer, configured as the model cards call the processor:
//! `padding="max_length", max_length=64, truncation=True`. SigLIP2's comes as a Hugging Face
//! `tokenizer.json`: texts are not lower-cased (transformers does not); the end-of-sequence token
//! stays last when a text is truncated; rows are right-padded with `<pad>`. SigLIP v1's comes as
//! `spiece.model` alone, for transformers' slow tokenizer ([`super::spiece_tokenizer`]).
//!
//! transformers 5 rebuilds the post-processor from `tokenizer_config.json`'s `add_bos_token` /
//! `add_eos_token` when either is present (the other then counts as false); otherwise the
//! post-processor of `tokenizer.json` is used as it is. This does the same.

use serde::Deserialize;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::spiece::SpieceModel;
use super::spiece_tokenizer::{SpieceSettings, SpieceTokenizer};
use crate::error::ModelError;

pub use crate::models::siglip::TEXT_LEN;

/// A special token in `tokenizer_config.json`: a plain string, or an object with `content`.
#[derive(Deserialize)]
#[serde(untagged)]
enum SpecialToken {
    Text(String),
    Added { content: String },
}

impl SpecialToken {
    fn content(self) -> String {
        match self {
            SpecialToken::Text(s) | SpecialToken::Added { content: s } => s,
        }
    }
}

/// The parts of `tokenizer_config.json` that change the ids.
#[derive(Deserialize, Default)]
struct TokenizerConfig {
    add_bos_token: Option<bool>,
    add_eos_token: Option<bool>,
    bos_token: Option<SpecialToken>,
    eos_token: Option<SpecialToken>,
    pad_token: Option<SpecialToken>,
    unk_token: Option<SpecialToken>,
    do_lower_case: Option<bool>,
}

fn read_config(json: Option<&[u8]>) -> Result<TokenizerConfig, ModelError> {
    match json {
        Some(json) => serde_json::from_slice(json)
            .map_err(|e| ModelError::Tokenizer(format!("tokenizer_config.json is not valid: {e}"))),
        None => Ok(TokenizerConfig::default()),
    }
}

pub struct SiglipTokenizer {
    inner: Inner,
}

enum Inner {
    /// SigLIP2: `tokenizer.json`.
    Json { tokenizer: Tokenizer, pad_id: u32 },
    /// SigLIP v1: `spiece.model`.
    Spiece(SpieceTokenizer),
}

impl SiglipTokenizer {
    /// The folder's tokenizer file, whichever it is: `tokenizer.json` (JSON) or `spiece.model`
    /// (protobuf, which cannot start with `{`), with `tokenizer_config.json` when there is one.
    pub fn from_file(bytes: &[u8], tokenizer_config_json: Option<&[u8]>) -> Result<Self, ModelError> {
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Self::from_bytes(bytes, tokenizer_config_json),
            _ => Self::from_spiece(bytes, tokenizer_config_json),
        }
    }

    /// Reads SigLIP v1's `spiece.model` and, when the folder has it, `tokenizer_config.json`.
    pub fn from_spiece(spiece_model: &[u8], tokenizer_config_json: Option<&[u8]>) -> Result<Self, ModelError> {
        let config = read_config(tokenizer_config_json)?;
        let defaults = SpieceSettings::default();
        let settings = SpieceSettings {
            do_lower_case: config.do_lower_case.unwrap_or(defaults.do_lower_case),
            eos_token: config.eos_token.map_or(defaults.eos_token, SpecialToken::content),
            unk_token: config.unk_token.map_or(defaults.unk_token, SpecialToken::content),
            pad_token: config.pad_token.map_or(defaults.pad_token, SpecialToken::content),
        };
        let tokenizer = SpieceTokenizer::new(&SpieceModel::parse(spiece_model)?, settings)?;
        Ok(Self { inner: Inner::Spiece(tokenizer) })
    }

    /// Reads `tokenizer.json` and, when the folder has it, `tokenizer_config.json`.
    pub fn from_bytes(tokenizer_json: &[u8], tokenizer_config_json: Option<&[u8]>) -> Result<Self, ModelError> {
        let bad = |m: String| ModelError::Tokenizer(m);
        let config = read_config(tokenizer_config_json)?;
        let mut inner = Tokenizer::from_bytes(tokenizer_json).map_err(|e| bad(e.to_string()))?;
        let id_of = |inner: &Tokenizer, token: &str| {
            inner
                .token_to_id(token)
                .ok_or_else(|| bad(format!("it has no {token} token, so it is not SigLIP's")))
        };
        let pad = config.pad_token.map_or_else(|| "<pad>".to_string(), SpecialToken::content);
        let pad_id = id_of(&inner, &pad)?;
        if config.add_bos_token.is_some() || config.add_eos_token.is_some() {
            let mut specials = Vec::new();
            if config.add_bos_token == Some(true) {
                let bos = config.bos_token.map_or_else(|| "<bos>".to_string(), SpecialToken::content);
                specials.push((bos.clone(), id_of(&inner, &bos)?));
            }
            let bos_part = specials.first().map(|(t, _)| format!("{t}:0 ")).unwrap_or_default();
            let mut eos_part = String::new();
            if config.add_eos_token == Some(true) {
                let eos = config.eos_token.map_or_else(|| "<eos>".to_string(), SpecialToken::content);
                eos_part = format!(" {eos}:0");
                specials.push((eos.clone(), id_of(&inner, &eos)?));
            }
            let template = TemplateProcessing::builder()
                .try_single(format!("{bos_part}$A:0{eos_part}"))
                .map_err(|e| bad(format!("cannot build the post-processor: {e}")))?
                .special_tokens(specials)
                .build()
                .map_err(|e| bad(format!("cannot build the post-processor: {e}")))?;
            inner.with_post_processor(Some(template));
        }
        inner
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: TEXT_LEN,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| bad(e.to_string()))?;
        inner.with_padding(None);
        Ok(Self { inner: Inner::Json { tokenizer: inner, pad_id } })
    }

    pub fn pad_id(&self) -> u32 {
        match &self.inner {
            Inner::Json { pad_id, .. } => *pad_id,
            Inner::Spiece(t) => t.pad_id(),
        }
    }

    /// The ids of one text: special tokens added, truncated to [`TEXT_LEN`] (special tokens
    /// kept), right-padded with the pad token to [`TEXT_LEN`].
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let (tokenizer, pad_id) = match &self.inner {
            Inner::Json { tokenizer, pad_id } => (tokenizer, *pad_id),
            Inner::Spiece(t) => return t.encode(text),
        };
        let enc = tokenizer
            .encode(text, true)
            .map_err(|e| ModelError::Tokenizer(format!("cannot tokenize {text:?}: {e}")))?;
        let mut ids = enc.get_ids().to_vec();
        ids.resize(TEXT_LEN, pad_id);
        Ok(ids)
    }

    pub fn encode_batch<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<u32>>, ModelError> {
        texts.iter().map(|t| self.encode(t.as_ref())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKENIZER: &[u8] = include_bytes!("../../../tests/fixtures/models/siglip2-base-narrow/tokenizer.json");
    const CONFIG: &[u8] = include_bytes!("../../../tests/fixtures/models/siglip2-base-narrow/tokenizer_config.json");

    fn with_flags(flags: &str) -> SiglipTokenizer {
        let config = String::from_utf8(CONFIG.to_vec()).unwrap().replacen('{', &format!("{{{flags},"), 1);
        SiglipTokenizer::from_bytes(TOKENIZER, Some(config.as_bytes())).unwrap()
    }

    fn unpadded(ids: &[u32]) -> &[u32] {
        let end = ids.iter().rposition(|&i| i != 0).map_or(0, |p| p + 1);
        &ids[..end]
    }

    #[test]
    fn the_config_flags_rebuild_the_special_tokens() {
        let plain = SiglipTokenizer::from_bytes(TOKENIZER, Some(CONFIG)).unwrap();
        let ids = plain.encode("a photo of milk").unwrap();
        let body = &unpadded(&ids)[..unpadded(&ids).len() - 1];
        assert_eq!(*unpadded(&ids).last().unwrap(), 1, "tokenizer.json's post-processor appends <eos>");

        // Google's SigLIP2 tokenizer_config.json: the same ids.
        let google = with_flags(r#""add_bos_token": false, "add_eos_token": true"#);
        assert_eq!(google.encode("a photo of milk").unwrap(), ids);

        let bos_only = with_flags(r#""add_bos_token": true"#);
        let got = bos_only.encode("a photo of milk").unwrap();
        assert_eq!(unpadded(&got)[0], 2);
        assert_eq!(&unpadded(&got)[1..], body);

        let neither = with_flags(r#""add_eos_token": false"#);
        assert_eq!(unpadded(&neither.encode("a photo of milk").unwrap()), body);
    }

    #[test]
    fn long_texts_keep_the_end_token_and_every_row_is_padded() {
        let tok = SiglipTokenizer::from_bytes(TOKENIZER, None).unwrap();
        let long = "milk ".repeat(200);
        let rows = tok.encode_batch(&["", long.as_str()]).unwrap();
        assert_eq!(rows[0][0], 1);
        assert!(rows[0][1..].iter().all(|&i| i == tok.pad_id()));
        assert_eq!(rows[1].len(), TEXT_LEN);
        assert_eq!(rows[1][TEXT_LEN - 1], 1);
        assert!(rows[1][..TEXT_LEN - 1].iter().all(|&i| i != 1 && i != 0));
    }

    #[test]
    fn a_tokenizer_without_a_pad_token_is_refused() {
        let config = br#"{"pad_token": "<nothing-like-this>"}"#;
        let err = SiglipTokenizer::from_bytes(TOKENIZER, Some(config)).err().unwrap().to_string();
        assert!(err.contains("<nothing-like-this>"), "{err}");
    }
}
