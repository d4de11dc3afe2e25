//! Token ids identical to transformers' CLIP tokenizer (truncation at 77, end-of-text padding).
//! Needs the real tokenizer.json from ../shared/data/clip-vit-base-patch32 (or
//! CLIPMATCH_TOKENIZER); skipped with a message where it is absent.

#![cfg(not(target_arch = "wasm32"))]

mod common;

use clipmatch::models::tokenizer::ClipTokenizer;

fn tokenizer() -> Option<ClipTokenizer> {
    let path = std::env::var_os("CLIPMATCH_TOKENIZER")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| common::shared_data().join("clip-vit-base-patch32/tokenizer.json"));
    match std::fs::read(&path) {
        Ok(json) => Some(ClipTokenizer::from_bytes(&json, 77).unwrap()),
        Err(_) => {
            eprintln!("skipped: {} is absent", path.display());
            None
        }
    }
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
