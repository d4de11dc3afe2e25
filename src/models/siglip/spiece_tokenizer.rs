//! SigLIP v1's tokenizer (`google/siglip-base-patch16-224`: `spiece.model`, no
//! `tokenizer.json`) as transformers' slow `SiglipTokenizer` applies it, called as the model card
//! says (`padding="max_length", max_length=64, truncation=True`):
//!
//! 1. the literal special tokens in the text (`</s>`, `<unk>`) are cut out and become their ids;
//! 2. every other part is canonicalised (`canonicalize_text`: lower-cased when `do_lower_case`,
//!    which is the default; Python's `string.punctuation` removed; whitespace runs made one space;
//!    stripped);
//! 3. and cut into pieces by the `tokenizers` crate: sentencepiece's normaliser (the model's
//!    precompiled character map; whitespace stripped and collapsed), `▁` for spaces and in front
//!    of the text's first part only (transformers puts it there; the parts after a special token
//!    get none), then the Unigram model;
//! 4. `</s>` is appended (unless the ids already end with it) after truncating to 63, and the row
//!    is padded with the pad token (`</s>` too) to 64.
//!
//! Checked against transformers on the fixture's texts (tests/integration/siglip_parity.rs). One known
//! difference: transformers encodes each part after the first as `<unk>` + part and drops the
//! pieces of `<unk>`; where `>` is not in the vocabulary and the part starts with a character that
//! is not either, sentencepiece fuses the two into one unknown piece and transformers drops it with
//! the prefix. Only a literal special token followed at once by an unknown character hits this.

use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::replace::ReplacePattern;
use tokenizers::normalizers::{Precompiled, Replace, Sequence, Strip};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::{NormalizerWrapper, Tokenizer};

use super::spiece::{PieceType, SpieceModel};
use crate::error::ModelError;
use crate::models::siglip::TEXT_LEN;

/// The special tokens and casing `tokenizer_config.json` sets (transformers' defaults otherwise).
pub struct SpieceSettings {
    pub do_lower_case: bool,
    pub eos_token: String,
    pub unk_token: String,
    pub pad_token: String,
}

impl Default for SpieceSettings {
    fn default() -> Self {
        Self { do_lower_case: true, eos_token: "</s>".into(), unk_token: "<unk>".into(), pad_token: "</s>".into() }
    }
}

pub struct SpieceTokenizer {
    /// `▁` in front of the first word (the text's first part).
    first: Tokenizer,
    /// No `▁` in front (the parts after a special token).
    rest: Tokenizer,
    do_lower_case: bool,
    /// Literal special tokens in the text and their ids.
    specials: Vec<(String, u32)>,
    eos_id: u32,
    pad_id: u32,
    /// The id of the piece `▁`, dropped where it would stand alone before a special token.
    meta_id: Option<u32>,
}

fn bad(message: String) -> ModelError {
    ModelError::Tokenizer(message)
}

fn tokenizer(model: &SpieceModel, prepend: PrependScheme) -> Result<Tokenizer, ModelError> {
    let vocab = model.pieces.iter().map(|p| (p.piece.clone(), f64::from(p.score))).collect();
    let unigram = Unigram::from(vocab, Some(model.unk_id), model.byte_fallback).map_err(|e| bad(format!("spiece.model: {e}")))?;
    let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
    if !model.precompiled_charsmap.is_empty() {
        let map = Precompiled::from(&model.precompiled_charsmap).map_err(|e| bad(format!("spiece.model: its character map: {e}")))?;
        normalizers.push(map.into());
    }
    normalizers.push(Strip::new(true, true).into());
    let spaces = Replace::new(ReplacePattern::Regex(" {2,}".into()), " ").map_err(|e| bad(e.to_string()))?;
    normalizers.push(spaces.into());
    let mut t = Tokenizer::new(unigram);
    t.with_normalizer(Some(Sequence::new(normalizers))).map_err(|e| bad(e.to_string()))?;
    t.with_pre_tokenizer(Some(Metaspace::new('\u{2581}', prepend, true)));
    Ok(t)
}

/// Python's `str.isspace` (what `re`'s `\s` and `str.strip` take): Unicode white space and the
/// four separators U+001C..U+001F.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `SiglipTokenizer.canonicalize_text`.
pub fn canonicalize(text: &str, lower: bool) -> String {
    let text = if lower { text.to_lowercase() } else { text.to_string() };
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars().filter(|c| !c.is_ascii_punctuation()) {
        if is_python_space(c) {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.push(c);
    }
    out
}

/// A part of the text: literal special token, or text between them.
enum Part<'a> {
    Special(u32),
    Text(&'a str),
}

impl SpieceTokenizer {
    pub fn new(model: &SpieceModel, settings: SpieceSettings) -> Result<Self, ModelError> {
        let id = |token: &str| {
            model
                .id_of(token)
                .filter(|&i| model.pieces[i as usize].kind != PieceType::Normal)
                .ok_or_else(|| bad(format!("spiece.model has no special piece {token:?}, so it is not SigLIP's")))
        };
        let (eos_id, pad_id) = (id(&settings.eos_token)?, id(&settings.pad_token)?);
        let mut specials = Vec::new();
        for token in [&settings.eos_token, &settings.unk_token, &settings.pad_token] {
            if !specials.iter().any(|(t, _)| t == token) {
                specials.push((token.clone(), id(token)?));
            }
        }
        // Longest first, so that one special token inside another is not matched.
        specials.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
        Ok(Self {
            first: tokenizer(model, PrependScheme::Always)?,
            rest: tokenizer(model, PrependScheme::Never)?,
            do_lower_case: settings.do_lower_case,
            specials,
            eos_id,
            pad_id,
            meta_id: model.id_of("\u{2581}"),
        })
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    fn parts<'a>(&self, text: &'a str) -> Vec<Part<'a>> {
        let mut parts = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < text.len() {
            match self.specials.iter().find(|(t, _)| text[i..].starts_with(t.as_str())) {
                Some((t, id)) => {
                    parts.push(Part::Text(&text[start..i]));
                    parts.push(Part::Special(*id));
                    i += t.len();
                    start = i;
                }
                None => i += text[i..].chars().next().map_or(1, char::len_utf8),
            }
        }
        parts.push(Part::Text(&text[start..]));
        parts
    }

    /// The ids of one text, [`TEXT_LEN`] of them.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        // transformers replaces a literal `▁` in the text by a space before anything else.
        let text = text.replace('\u{2581}', " ");
        let mut ids: Vec<u32> = Vec::new();
        let mut first_special = None;
        for (k, part) in self.parts(&text).into_iter().enumerate() {
            match part {
                Part::Special(id) => {
                    first_special.get_or_insert(ids.len());
                    ids.push(id);
                }
                Part::Text(t) => {
                    let canonical = canonicalize(t, self.do_lower_case);
                    if canonical.is_empty() {
                        continue;
                    }
                    let cutter = if k == 0 { &self.first } else { &self.rest };
                    let enc = cutter
                        .encode(canonical.as_str(), false)
                        .map_err(|e| bad(format!("cannot tokenize {canonical:?}: {e}")))?;
                    ids.extend_from_slice(enc.get_ids());
                }
            }
        }
        if first_special == Some(1) && ids.first() == self.meta_id.as_ref() {
            ids.remove(0);
        }
        ids.truncate(TEXT_LEN - 1);
        if ids.last() != Some(&self.eos_id) {
            ids.push(self.eos_id);
        }
        ids.resize(TEXT_LEN, self.pad_id);
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalises_as_siglip_tokenizer_does() {
        assert_eq!(canonicalize("  Hello,\tWORLD!\n(ok) ", true), "hello world ok");
        assert_eq!(canonicalize("Crème–Brûlée 50%", true), "crème–brûlée 50");
        assert_eq!(canonicalize("ΟΔΥΣΣΕΥΣ", true), "οδυσσευς");
        assert_eq!(canonicalize("a\u{1f}b\u{a0}c", false), "a b c");
        assert_eq!(canonicalize("!!!", true), "");
    }
}
