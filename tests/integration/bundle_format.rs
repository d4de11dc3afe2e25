//! A bundle written by `clipmatch bundle` (committed tiny CLIP) is read back through the core's
//! `Bundle::from_json`: every file it lists is there with its size and sha256, nothing else is,
//! and bundle.json's bytes are what the core type writes. Building the catalog needs the real
//! tokenizer from ../shared/data (skipped with a message where absent).

#![cfg(not(target_arch = "wasm32"))]

use crate::common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use clipmatch::digest::sha256_hex;
use clipmatch::error::BundleError;
use clipmatch::search::bundle::{Bundle, BUNDLE_FILE};

const EXE: &str = env!("CARGO_BIN_EXE_clipmatch");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn clipmatch(args: &[&str], tokenizer: &Path) {
    let out = Command::new(EXE)
        .args(args)
        .env("CLIPMATCH_MODEL", fixtures().join("tiny-clip"))
        .env("CLIPMATCH_TOKENIZER", tokenizer)
        .env_remove("CLIPMATCH_CATALOG")
        .output()
        .expect("clipmatch runs");
    assert!(out.status.success(), "clipmatch {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Every file under `dir`, as `/`-separated paths relative to it.
fn files_under(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = format!("{prefix}{}", e.file_name().to_str().unwrap());
        if e.file_type().unwrap().is_dir() {
            files_under(&e.path(), &format!("{name}/"), out);
        } else {
            out.insert(name);
        }
    }
}

#[test]
fn a_written_bundle_reads_back_through_the_core_type() {
    let tokenizer = common::shared_data().join("clip-vit-base-patch32/tokenizer.json");
    if !tokenizer.is_file() {
        eprintln!("skipped: {} is absent", tokenizer.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (products, catalog, bundle_dir) = (tmp.path().join("products"), tmp.path().join("cat"), tmp.path().join("bundle"));
    fs::create_dir(&products).unwrap();
    for f in ["photo.jpg", "tall.png", "gray.png"] {
        fs::copy(fixtures().join("images").join(f), products.join(f)).unwrap();
    }
    let s = |p: &Path| p.to_str().unwrap().to_string();
    clipmatch(&["build", &s(&products), "--out", &s(&catalog)], &tokenizer);
    clipmatch(&["bundle", "--catalog", &s(&catalog), "--out", &s(&bundle_dir), "--dtype", "int8"], &tokenizer);

    let json = fs::read(bundle_dir.join(BUNDLE_FILE)).unwrap();
    let bundle = Bundle::from_json(&json).unwrap();
    assert_eq!(bundle.to_json().as_bytes(), json.as_slice(), "bundle.json is what the core type writes");
    assert_eq!(bundle.model.dtype, "int8");
    assert_eq!((bundle.catalog.as_str(), bundle.vectors.as_str()), ("catalog.json", "vectors.bin"));

    let mut on_disk = BTreeSet::new();
    files_under(&bundle_dir, "", &mut on_disk);
    on_disk.remove(BUNDLE_FILE);
    let listed: BTreeSet<String> = bundle.files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(listed, on_disk);
    assert_eq!(listed.iter().filter(|p| p.starts_with("thumbs/")).count(), 3);
    for f in &bundle.files {
        let bytes = fs::read(bundle_dir.join(&f.path)).unwrap();
        assert_eq!((bytes.len() as u64, sha256_hex(&bytes)), (f.bytes, f.sha256.clone()), "{}", f.path);
    }
    let catalog = clipmatch::Catalog::from_parts(
        &fs::read(bundle_dir.join(&bundle.catalog)).unwrap(),
        &fs::read(bundle_dir.join(&bundle.vectors)).unwrap(),
    )
    .unwrap();
    assert_eq!(catalog.len(), 3);

    // The same file, made hostile, is refused with the problem named.
    let mut hostile: serde_json::Value = serde_json::from_slice(&json).unwrap();
    hostile["files"][0]["path"] = "../../etc/passwd".into();
    let err = Bundle::from_json(hostile.to_string().as_bytes()).unwrap_err();
    assert_eq!(err, BundleError::BadPath { path: "../../etc/passwd".into(), problem: "leaves its folder or has an empty part" });
}
