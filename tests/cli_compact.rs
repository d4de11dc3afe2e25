//! `--compact` as a user runs it: `build --compact` writes compact.bin and records it; `tune` and
//! `build --update` keep the codes (the same bytes); `--shard` refuses them; a damaged or cut
//! compact.bin makes the catalog refused in one line; `bundle` carries page-catalog.json only
//! from `--compact-min-items` items on. The committed tiny random CLIP (16 dims) on the grocery
//! products (skipped where ../shared/data is absent).

#![cfg(not(target_arch = "wasm32"))]

mod common;

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
    let build = ["build", &s(&iconic), "--name-from", "folder", "--updatable", "--compact", "--compact-bytes", "8", "--out", &s(&dir("c"))];
    ok(run(&build, &tokenizer));
    let codes = fs::read(dir("c").join("compact.bin")).unwrap();
    let m = manifest(&dir("c"));
    assert_eq!(m["compact"]["subspaces"], 8);
    assert_eq!(m["compact"]["codes"]["bytes"], codes.len());
    // 2 codebooks of 256 centres x 16 dims in f16, then 2 x 8 bytes for each of 31 items.
    assert_eq!(codes.len(), 2 * 256 * 16 * 2 + 31 * 16);

    // An update with nothing new, and tune, keep the same codes.
    ok(run(&["build", &s(&iconic), "--name-from", "folder", "--update", &s(&dir("c")), "--out", &s(&dir("u"))], &tokenizer));
    assert_eq!(fs::read(dir("u").join("compact.bin")).unwrap(), codes);
    let photos = shared_data().join("grocery-packages/photos");
    ok(run(&["tune", "--catalog", &s(&dir("c")), "--photos", &s(&photos), "--out", &s(&dir("t"))], &tokenizer));
    assert_eq!(fs::read(dir("t").join("compact.bin")).unwrap(), codes);
    assert_eq!(manifest(&dir("t"))["compact"], m["compact"]);

    let e = refused(run(&["build", &s(&iconic), "--shard", "0/2", "--compact", "--out", &s(&dir("s"))], &tokenizer));
    assert!(e.contains("--shard and --compact do not go together"), "{e}");

    // The default threshold (10,000 items) keeps a 31-item catalog on the exact path.
    ok(run(&["bundle", "--catalog", &s(&dir("c")), "--out", &s(&dir("b"))], &tokenizer));
    assert!(!dir("b").join("page-catalog.json").exists());
    assert!(!fs::read_to_string(dir("b").join("bundle.json")).unwrap().contains("compact"));

    // A damaged or cut compact.bin: the catalog is refused in one line.
    let mut damaged = codes.clone();
    damaged[100] ^= 1;
    for (bytes, words) in [(damaged, "sha256"), (codes[..codes.len() - 1].to_vec(), "truncated")] {
        fs::write(dir("c").join("compact.bin"), bytes).unwrap();
        let e = refused(run(&["inspect", &s(&dir("c"))], &tokenizer));
        assert!(e.contains(words) && e.lines().count() == 1, "{e}");
    }
}
