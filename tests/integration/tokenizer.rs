//! Token ids identical to transformers' CLIP tokenizer (truncation at 77, end-of-text padding)
//! on Hugging Face CLIP folders, and to open_clip's `SimpleTokenizer` on open_clip folders
//! (tests/fixtures/reference/tokenizer_parity.json, from scripts/make_tokenizer_fixtures.py).
//! Needs the real tokenizer.json from ../shared/data/clip-vit-base-patch32 (or
//! CLIPMATCH_TOKENIZER); skipped with a message where it is absent.

#![cfg(not(target_arch = "wasm32"))]

use crate::common;

use clipmatch::models::tokenizer::ClipTokenizer;
use serde::Deserialize;

fn tokenizer_json() -> Option<Vec<u8>> {
    let path = std::env::var_os("CLIPMATCH_TOKENIZER")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| common::shared_data().join("clip-vit-base-patch32/tokenizer.json"));
    let json = std::fs::read(&path);
    if json.is_err() {
        eprintln!("skipped: {} is absent", path.display());
    }
    json.ok()
}

fn tokenizer() -> Option<ClipTokenizer> {
    Some(ClipTokenizer::from_bytes(&tokenizer_json()?, 77).unwrap())
}

#[derive(Deserialize)]
struct Parity {
    open_clip: ParityTexts,
    transformers: ParityTexts,
}

#[derive(Deserialize)]
struct ParityTexts {
    texts: Vec<ParityText>,
}

#[derive(Deserialize)]
struct ParityText {
    text: String,
    ids: Vec<u32>,
}

fn parity() -> Parity {
    serde_json::from_str(include_str!("../fixtures/reference/tokenizer_parity.json")).unwrap()
}

/// The text: CLIP's markers typed in it.
const TYPED_MARKERS: &str = "<|startoftext|>special tokens typed as text<|endoftext|> after";

#[test]
fn open_clip_folders_tokenize_every_text_as_open_clip_does() {
    let Some(json) = tokenizer_json() else { return };
    let t = ClipTokenizer::open_clip(&json, 77).unwrap();
    let reference = parity().open_clip.texts;
    assert!(reference.iter().any(|r| r.text == TYPED_MARKERS));
    let texts: Vec<&str> = reference.iter().map(|r| r.text.as_str()).collect();
    let rows = t.encode_batch(&texts).unwrap();
    for (row, r) in rows.iter().zip(&reference) {
        assert_eq!(row, &r.ids, "{:?}", r.text);
    }
}

#[test]
fn hugging_face_folders_tokenize_every_text_as_transformers_does() {
    let Some(t) = tokenizer() else { return };
    let p = parity();
    for r in &p.transformers.texts {
        assert_eq!(t.encode(&r.text).unwrap(), r.ids, "{:?}", r.text);
    }
    // There, CLIP's markers typed in a text are the special tokens; in open_clip they are text.
    let hf = &p.transformers.texts.iter().find(|r| r.text == TYPED_MARKERS).unwrap().ids;
    let oc = &p.open_clip.texts.iter().find(|r| r.text == TYPED_MARKERS).unwrap().ids;
    assert_eq!(hf.iter().filter(|&&id| id == 49406).count(), 2, "{hf:?}");
    assert_eq!(oc.iter().filter(|&&id| id == 49406).count(), 1, "{oc:?}");
}

#[test]
fn ids_match_transformers() {
    let Some(t) = tokenizer() else { return };
    for r in common::reference().texts {
        assert_eq!(t.encode(&r.text).unwrap(), r.ids, "{:?}", r.text);
    }
}

#[test]
fn long_text_is_truncated_keeping_start_and_end_tokens() {
    let Some(t) = tokenizer() else { return };
    let long = "milk ".repeat(200);
    let ids = t.encode(&long).unwrap();
    assert_eq!(ids.len(), 77);
    assert_eq!(ids[0], 49406);
    assert_eq!(*ids.last().unwrap(), 49407);
    assert_eq!(t.encode("").unwrap(), vec![49406, 49407]);
}

#[test]
fn batch_is_padded_with_end_of_text() {
    let Some(t) = tokenizer() else { return };
    let r = common::reference();
    let texts: Vec<&str> = r.texts.iter().map(|x| x.text.as_str()).collect();
    assert_eq!(t.encode_batch(&texts).unwrap(), r.padded_batch.ids);
    assert_eq!(t.end_of_text_id(), r.padded_batch.pad_id);
}
