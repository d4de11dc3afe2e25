//! `--compact` as a user runs it: `build --compact` writes compact.bin and records it (`inspect`
//! shows it); `build --update` keeps the codes (the same bytes), `tune` learns them again for
//! its weights; `--shard` refuses them; a damaged or cut compact.bin makes the catalog refused
//! in one line; `bundle` carries page-catalog.json.gz (and no thumbnails) only from
//! `--compact-min-items` items on. The committed tiny random CLIP (16 dims) on the grocery
//! products (skipped where ../shared/data is absent).

#![cfg(not(target_arch = "wasm32"))]

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn run(args: &[&str], tokenizer: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clipmatch"))
        .args(args)
        .env("CLIPMATCH_MODEL", Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip"))
        .env("CLIPMATCH_TOKENIZER", tokenizer)
        .env_remove("CLIPMATCH_CATALOG")
        .output()
        .expect("clipmatch runs")
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn refused(o: Output) -> String {
    assert!(!o.status.success());
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(dir.join("catalog.json")).unwrap()).unwrap()
}

#[test]
fn compact_codes_are_written_kept_and_checked() {
    let Some(tokenizer) = shared_clip_tokenizer("the --compact CLI test") else { return };
    let iconic = shared_data().join("grocery-packages/iconic");
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| -> PathBuf { tmp.path().join(name) };
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let build = ["build", &s(&iconic), "--name-from", "folder", "--updatable", "--compact", "--compact-bytes", "8", "--compact-residual-bytes", "4", "--out", &s(&dir("c"))];
    ok(run(&build, &tokenizer));
    let codes = fs::read(dir("c").join("compact.bin")).unwrap();
    let m = manifest(&dir("c"));
    assert_eq!((m["compact"]["subspaces"].as_u64(), m["compact"]["residual_subspaces"].as_u64()), (Some(8), Some(4)));
    assert_eq!(m["compact"]["codes"]["bytes"], codes.len());
    assert_eq!((&m["compact"]["text_weight"], &m["compact"]["image_weight"]), (&m["ranking"]["text_weight"], &m["ranking"]["image_weight"]));
    // 2 codebooks (first stage, residual) of 256 centres x 16 dims in f16, then 8 + 4 bytes for each of 31 items.
    assert_eq!(codes.len(), 2 * 256 * 16 * 2 + 31 * 12);
    let shown = ok(run(&["inspect", &s(&dir("c"))], &tokenizer));
    let line = shown.lines().find(|l| l.starts_with("compact")).unwrap_or_default();
    assert!(line.contains("compact.bin (0.02 MB") && line.contains("8 + 4 (residual) bytes an item") && line.contains("from 10000 items"), "{shown}");

    // An update with nothing new keeps the same codes.
    ok(run(&["build", &s(&iconic), "--name-from", "folder", "--update", &s(&dir("c")), "--out", &s(&dir("u"))], &tokenizer));
    assert_eq!(fs::read(dir("u").join("compact.bin")).unwrap(), codes);
    // tune chooses other weights: the codes, fused with the weights, are learnt again for them.
    let photos = shared_data().join("grocery-packages/photos");
    ok(run(&["tune", "--catalog", &s(&dir("c")), "--photos", &s(&photos), "--out", &s(&dir("t"))], &tokenizer));
    let t = manifest(&dir("t"));
    assert_ne!(t["ranking"]["text_weight"], m["ranking"]["text_weight"], "the test expects tune to move the weights");
    assert_eq!((&t["compact"]["text_weight"], &t["compact"]["image_weight"]), (&t["ranking"]["text_weight"], &t["ranking"]["image_weight"]));
    let tuned = fs::read(dir("t").join("compact.bin")).unwrap();
    assert_ne!(tuned, codes);
    assert_eq!((tuned.len(), t["compact"]["subspaces"].as_u64()), (codes.len(), Some(8)));
    ok(run(&["inspect", &s(&dir("t"))], &tokenizer));

    let e = refused(run(&["build", &s(&iconic), "--shard", "0/2", "--compact", "--out", &s(&dir("s"))], &tokenizer));
    assert!(e.contains("--shard and --compact do not go together"), "{e}");

    // The default threshold (10,000 items) keeps a 31-item catalog on the exact path, thumbnails and all.
    ok(run(&["bundle", "--catalog", &s(&dir("c")), "--out", &s(&dir("b"))], &tokenizer));
    assert!(!dir("b").join("page-catalog.json.gz").exists());
    assert!(!fs::read_to_string(dir("b").join("bundle.json")).unwrap().contains("compact"));
    assert!(dir("b").join("thumbs").is_dir());
    // Over it, the bundle carries the gzipped page catalog and the codes, and no thumbnails
    // (the page never fetches them): its catalog.json names none, and still reads as a catalog.
    let small = ["build", &s(&iconic), "--name-from", "folder", "--compact", "--compact-bytes", "8", "--compact-min-items", "1", "--out", &s(&dir("c1"))];
    ok(run(&small, &tokenizer));
    ok(run(&["bundle", "--catalog", &s(&dir("c1")), "--out", &s(&dir("b1"))], &tokenizer));
    let bundle: serde_json::Value = serde_json::from_slice(&fs::read(dir("b1").join("bundle.json")).unwrap()).unwrap();
    assert_eq!(bundle["compact"], serde_json::json!({"manifest": "page-catalog.json.gz", "codes": "compact.bin"}));
    assert!(!dir("b1").join("thumbs").exists());
    assert!(!bundle["files"].as_array().unwrap().iter().any(|f| f["path"].as_str().unwrap().starts_with("thumbs/")));
    assert!(manifest(&dir("b1"))["items"].as_array().unwrap().iter().all(|i| i.get("thumbnail").is_none()));
    let page = fs::read(dir("b1").join("page-catalog.json.gz")).unwrap();
    let mut json = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&page[..]), &mut json).unwrap();
    let page: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!((page["format"].as_str(), page["ids"].as_array().map(Vec::len)), (Some("clipmatch-page-catalog"), Some(31)));
    ok(run(&["inspect", &s(&dir("b1"))], &tokenizer));

    // A damaged or cut compact.bin: the catalog is refused in one line.
    let mut damaged = codes.clone();
    damaged[100] ^= 1;
    for (bytes, words) in [(damaged, "sha256"), (codes[..codes.len() - 1].to_vec(), "truncated")] {
        fs::write(dir("c").join("compact.bin"), bytes).unwrap();
        let e = refused(run(&["inspect", &s(&dir("c"))], &tokenizer));
        assert!(e.contains(words) && e.lines().count() == 1, "{e}");
    }
}
