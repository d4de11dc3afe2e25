//! The catalog tool as a user runs it: build (with bad files among good ones), query, embed,
//! inspect. Uses the committed tiny random CLIP; the tokenizer and the grocery data come from
//! ../shared/data (skipped with a message where absent).

#![cfg(not(target_arch = "wasm32"))]

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const EXE: &str = env!("CARGO_BIN_EXE_clipmatch");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn tokenizer() -> Option<PathBuf> {
    let p = shared_data().join("clip-vit-base-patch32/tokenizer.json");
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipped: {} is absent", p.display());
        None
    }
}

fn run(args: &[&str], tokenizer: &Path) -> Output {
    Command::new(EXE)
        .args(args)
        .env("CLIPMATCH_MODEL", fixtures().join("tiny-clip"))
        .env("CLIPMATCH_TOKENIZER", tokenizer)
        .env_remove("CLIPMATCH_CATALOG")
        .output()
        .expect("clipmatch runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A product folder with three good images and four bad files (and a non-image).
fn product_folder(dir: &Path) {
    for f in ["photo.jpg", "tall.png", "gray.png"] {
        fs::copy(fixtures().join("images").join(f), dir.join(f)).unwrap();
    }
    let photo = fs::read(fixtures().join("images/photo.jpg")).unwrap();
    fs::write(dir.join("empty.jpg"), b"").unwrap();
    fs::write(dir.join("truncated.jpg"), &photo[..photo.len() / 2]).unwrap();
    fs::write(dir.join("notes.jpg"), b"this is a text file\n").unwrap();
    fs::write(dir.join("bomb.png"), png_header(30_000, 30_000)).unwrap();
    fs::write(dir.join("readme.txt"), b"not an image").unwrap();
}

#[test]
fn build_skips_bad_files_with_one_line_reasons_then_query_and_inspect() {
    let Some(tok) = tokenizer() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("products");
    fs::create_dir(&src).unwrap();
    product_folder(&src);
    let out = tmp.path().join("catalog");
    let o = run(&["build", src.to_str().unwrap(), "--out", out.to_str().unwrap()], &tok);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "skips make a non-zero exit:\n{err}");
    for (file, why) in [
        ("empty.jpg", "empty (0 bytes)"),
        ("truncated.jpg", "corrupt or truncated"),
        ("notes.jpg", "not an image"),
        ("bomb.png", "30000x30000"),
    ] {
        let line = err
            .lines()
            .find(|l| l.starts_with("skipped ") && l.contains(file))
            .unwrap_or_else(|| panic!("no skip line for {file}:\n{err}"));
        assert!(line.contains(why), "{line}");
        assert!(err.lines().any(|l| l.trim_start().starts_with(&src.join(file).display().to_string()) && l.contains(why)), "summary lists {file}");
    }
    assert!(text(&o.stdout).contains("3 products"), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains("passed over 1 files"));
    let manifest: serde_json::Value = serde_json::from_slice(&fs::read(out.join("catalog.json")).unwrap()).unwrap();
    let names: Vec<&str> = manifest["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["gray", "photo", "tall"]);
    assert!(out.join("thumbs/photo.jpg").is_file());
    let leftovers: Vec<_> = fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "no staging folders left: {leftovers:?}");

    // --allow-skips exits 0; the catalog is replaced atomically.
    let o = run(&["build", src.to_str().unwrap(), "--out", out.to_str().unwrap(), "--allow-skips"], &tok);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));

    let o = run(&["inspect", out.to_str().unwrap()], &tok);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let s = text(&o.stdout);
    assert!(s.contains("items        3") && s.contains("check        ok"), "{s}");

    // A catalog item's own image, ranked on images only, is its own best match.
    let photo = src.join("tall.png");
    let o = run(
        &["query", photo.to_str().unwrap(), "--catalog", out.to_str().unwrap(), "--json", "--text-weight", "0", "--image-weight", "1"],
        &tok,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let top = &v["ranking"]["matches"][0];
    assert_eq!(top["name"], "tall");
    // Within the i8 catalog's rounding (1e-5 with --vector-dtype f32).
    assert!((top["image_similarity"].as_f64().unwrap() - 1.0).abs() < 0.01, "{top}");
    assert_eq!(v["ranking"]["matches"].as_array().unwrap().len(), 3);

    // The table shows the fused score and both components.
    let o = run(&["query", photo.to_str().unwrap(), "--catalog", out.to_str().unwrap()], &tok);
    let s = text(&o.stdout);
    assert!(s.contains("score") && s.contains("text 1.5x cos") && s.contains("image 0.5x cos"), "{s}");
    assert_eq!(s.lines().filter(|l| l.trim_start().starts_with(char::is_numeric)).count(), 3, "{s}");

    // A bad photo is a clear error naming the file.
    let o = run(&["query", src.join("notes.jpg").to_str().unwrap(), "--catalog", out.to_str().unwrap()], &tok);
    assert!(!o.status.success());
    let e = text(&o.stderr);
    assert!(e.contains("notes.jpg") && e.contains("not an image"), "{e}");
}

#[test]
fn a_catalog_from_another_model_is_refused() {
    let Some(tok) = tokenizer() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("p");
    fs::create_dir(&src).unwrap();
    fs::copy(fixtures().join("images/photo.jpg"), src.join("a.jpg")).unwrap();
    let out = tmp.path().join("c");
    let o = run(&["build", src.to_str().unwrap(), "--out", out.to_str().unwrap()], &tok);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = Command::new(EXE)
        .args(["query", src.join("a.jpg").to_str().unwrap(), "--catalog", out.to_str().unwrap()])
        .env("CLIPMATCH_MODEL", fixtures().join("tiny-clip-vision-f16"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("not with the loaded model"), "{}", text(&o.stderr));
}

#[test]
fn build_refuses_to_overwrite_a_folder_that_is_not_a_catalog() {
    let Some(tok) = tokenizer() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("p");
    fs::create_dir(&src).unwrap();
    fs::copy(fixtures().join("images/photo.jpg"), src.join("a.jpg")).unwrap();
    let out = tmp.path().join("precious");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("thesis.txt"), b"do not delete").unwrap();
    let o = run(&["build", src.to_str().unwrap(), "--out", out.to_str().unwrap()], &tok);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("not a catalog folder"));
    assert!(out.join("thesis.txt").is_file());
}

#[test]
fn build_from_a_csv_list_with_descriptions() {
    let Some(tok) = tokenizer() else { return };
    let tmp = tempfile::tempdir().unwrap();
    fs::copy(fixtures().join("images/photo.jpg"), tmp.path().join("a.jpg")).unwrap();
    fs::copy(fixtures().join("images/small.png"), tmp.path().join("b.png")).unwrap();
    let list = tmp.path().join("products.csv");
    fs::write(&list, "image,name,description\na.jpg,Absolut Citron,\"Vodka, lemon\"\nb.png,Oatly Oat Milk,\n").unwrap();
    let out = tmp.path().join("c");
    let o = run(&["build", list.to_str().unwrap(), "--out", out.to_str().unwrap(), "--min-score", "0.25"], &tok);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let m: serde_json::Value = serde_json::from_slice(&fs::read(out.join("catalog.json")).unwrap()).unwrap();
    assert_eq!(m["items"][0]["id"], "absolut-citron");
    assert_eq!(m["items"][0]["description"], "Vodka, lemon");
    assert_eq!(m["items"][1]["image"], "b.png");
    assert!((m["ranking"]["min_score"].as_f64().unwrap() - 0.25).abs() < 1e-6);
}

#[test]
fn embed_output_matches_transformers() {
    let Some(tok) = tokenizer() else { return };
    let r = reference();
    let mut args: Vec<String> = vec!["embed".into(), "--image".into()];
    for img in &r.images {
        args.push(fixtures().join(&img.file).display().to_string());
    }
    let broken = tempfile::NamedTempFile::new().unwrap();
    args.push(broken.path().display().to_string());
    args.push("--text".into());
    args.extend(r.texts.iter().map(|t| t.text.clone()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(&argv, &tok);
    assert_eq!(o.status.code(), Some(2), "an unreadable image makes a non-zero exit");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let key = broken.path().display().to_string();
    assert!(v["errors"][&key].as_str().unwrap().contains("empty"));
    let vec_of = |x: &serde_json::Value| -> Vec<f32> { x.as_array().unwrap().iter().map(|f| f.as_f64().unwrap() as f32).collect() };
    let ours: Vec<(String, Vec<f32>)> = r
        .images
        .iter()
        .map(|i| (i.file.clone(), vec_of(&v["images"][fixtures().join(&i.file).display().to_string()])))
        .collect();
    let refs: Vec<&[f32]> = r.images.iter().map(|i| i.embedding.as_slice()).collect();
    assert_embeddings_match("embed --image", &ours, &refs);
    let ours: Vec<(String, Vec<f32>)> = r.texts.iter().map(|t| (t.text.clone(), vec_of(&v["texts"][&t.text]))).collect();
    let refs: Vec<&[f32]> = r.texts.iter().map(|t| t.embedding.as_slice()).collect();
    assert_embeddings_match("embed --text", &ours, &refs);
}

#[test]
fn grocery_catalog_from_folder_names() {
    let Some(tok) = tokenizer() else { return };
    let iconic = shared_data().join("grocery-packages/iconic");
    let photos = shared_data().join("grocery-packages/photos");
    if !iconic.is_dir() {
        eprintln!("skipped: {} is absent", iconic.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("grocery");
    let o = run(&["build", iconic.to_str().unwrap(), "--out", out.to_str().unwrap(), "--name-from", "folder"], &tok);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let m: serde_json::Value = serde_json::from_slice(&fs::read(out.join("catalog.json")).unwrap()).unwrap();
    let items = m["items"].as_array().unwrap();
    assert_eq!(items.len(), 31);
    assert!(items.iter().any(|i| i["name"] == "Oatly Natural Oatghurt"));
    let photo = photos.join("Oatghurt/Oatly-Natural-Oatghurt/Oatly-Natural-Oatghurt_001.jpg");
    let o = run(&["query", photo.to_str().unwrap(), "--catalog", out.to_str().unwrap()], &tok);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let s = text(&o.stdout);
    assert_eq!(s.lines().filter(|l| l.trim_start().starts_with(char::is_numeric)).count(), 5, "{s}");
}

#[test]
fn query_crop_ranks_the_region_as_pillows_crop_of_it_and_refuses_bad_regions_in_one_line() {
    let Some(tok) = tokenizer() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("products");
    fs::create_dir(&src).unwrap();
    for f in ["photo.jpg", "tall.png", "gray.png", "lossless.webp"] {
        fs::copy(fixtures().join("images").join(f), src.join(f)).unwrap();
    }
    let out = tmp.path().join("catalog");
    let o = run(&["build", src.to_str().unwrap(), "--out", out.to_str().unwrap(), "--vector-dtype", "f32"], &tok);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let query = |photo: &Path, extra: &[&str]| {
        let mut args = vec!["query", photo.to_str().unwrap(), "--catalog", out.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        run(&args, &tok)
    };
    let json = |o: &Output| -> serde_json::Value {
        assert!(o.status.success(), "{}", text(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    // gray.png is lossless: Pillow's crop of it (tests/fixtures/crops) has the very same pixels.
    let photo = fixtures().join("images/gray.png");
    let cropped = json(&query(&photo, &["--crop", "100,40,90,250"]));
    assert_eq!(cropped["crop"], serde_json::json!({"x": 100, "y": 40, "width": 90, "height": 250}));
    let pillow = json(&query(&fixtures().join("crops/gray_100_40_90_250.png"), &[]));
    assert_eq!(cropped["ranking"], pillow["ranking"]);
    let whole = json(&query(&photo, &[]));
    assert_eq!(whole["crop"], serde_json::Value::Null);
    assert_ne!(whole["ranking"], cropped["ranking"]);

    for (crop, expected) in [
        ("0,0,5,5", "the region is 5x5 pixels, too small: each side must be at least 8 pixels"),
        ("200,0,90,100", "the region 200,0,90,100 (x,y,width,height) reaches past the photo, which is 256x320 pixels upright"),
        ("1,2,3", "a region is x,y,width,height in whole pixels of the upright photo (e.g. 10,20,200,150), not \"1,2,3\""),
    ] {
        let o = query(&photo, &["--crop", crop]);
        assert!(!o.status.success(), "{crop}");
        let e = text(&o.stderr);
        // The reason on the first line (clap adds a hint to try --help after its own errors).
        assert!(e.lines().next().unwrap().contains(expected), "{crop}: {e}");
    }
}

/// A refusal before any work: a failing exit, the reason on stderr's first line (clap adds a
/// hint to try --help after its own errors), nothing written to `out`.
fn refused_early(o: &Output, expected: &str, out: &Path) {
    let e = text(&o.stderr);
    assert!(!o.status.success(), "should be refused ({expected}):\n{}", text(&o.stdout));
    assert!(e.lines().next().unwrap_or_default().contains(expected), "{expected:?} is not on the first line of:\n{e}");
    assert!(!out.exists(), "{} was written", out.display());
}

#[test]
fn non_finite_or_out_of_range_settings_are_refused_before_embedding() {
    let Some(tok) = tokenizer() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("p");
    fs::create_dir(&src).unwrap();
    for f in ["photo.jpg", "tall.png"] {
        fs::copy(fixtures().join("images").join(f), src.join(f)).unwrap();
    }
    let (src_s, out) = (src.to_str().unwrap(), tmp.path().join("c"));
    let build = |extra: &[&str]| {
        let mut args = vec!["build", src_s, "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        run(&args, &tok)
    };
    for (extra, expected) in [
        (&["--min-score", "NaN"][..], "the threshold (min_score) must be a number from -2000 to 2000, not NaN"),
        (&["--min-score", "inf"], "not inf"),
        (&["--text-weight", "3e38", "--image-weight", "3e38"], "the text weight must be a number from 0 to 1000"),
        (&["--image-weight=-0.5"], "the image weight must be a number from 0 to 1000, not -0.5"),
        (&["--thumbnail-size", "0"], "the thumbnail size must be 1 to 1024 pixels, not 0"),
        (&["--top-k", "0"], "the number of results (top_k) must be at least 1, not 0"),
        (&["--compact", "--compact-bytes", "7"], "--compact: compact codes need a number of subspaces that divides the embedding size 16; 7 does not"),
        (&["--compact", "--compact-bytes", "8", "--compact-residual-bytes", "3"], "the embedding size 16; 3 does not"),
    ] {
        refused_early(&build(extra), expected, &out);
    }

    let o = build(&["--top-k", "2", "--text-weight", "1000", "--image-weight", "0"]);
    assert!(o.status.success(), "the bounds themselves are settings: {}", text(&o.stderr));
    let photo = src.join("photo.jpg");
    let query = |extra: &[&str]| {
        let mut args = vec!["query", photo.to_str().unwrap(), "--catalog", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        run(&args, &tok)
    };
    let o = query(&[]);
    assert!(o.status.success() && !text(&o.stdout).contains("NaN"), "{}", text(&o.stdout));
    let nothing = tmp.path().join("nothing");
    for (extra, expected) in [
        (&["-k", "0"][..], "the number of results (top_k) must be at least 1, not 0"),
        (&["--min-score", "NaN"], "not NaN"),
        (&["--text-weight", "inf"], "the text weight must be a number from 0 to 1000, not inf"),
    ] {
        refused_early(&query(extra), expected, &nothing);
    }

    // A catalog holding such settings is refused by the reader, with the same words.
    let manifest = out.join("catalog.json");
    let good: serde_json::Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    for (key, value, expected) in [
        ("top_k", serde_json::json!(0), "invalid catalog: ranking: the number of results (top_k) must be at least 1, not 0"),
        ("text_weight", serde_json::json!(3e38), "invalid catalog: ranking: the text weight must be a number from 0 to 1000"),
        ("min_score", serde_json::json!(1e30), "invalid catalog: ranking: the threshold (min_score) must be a number"),
    ] {
        let mut m = good.clone();
        m["ranking"][key] = value;
        fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
        let o = run(&["inspect", out.to_str().unwrap()], &tok);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
        assert!(text(&o.stderr).contains(expected), "{}", text(&o.stderr));
    }
}

#[test]
fn names_with_control_characters_are_refused_at_build_and_escaped_when_printed() {
    let Some(tok) = tokenizer() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("p");
    fs::create_dir(&src).unwrap();
    fs::copy(fixtures().join("images/photo.jpg"), src.join("photo.jpg")).unwrap();
    fs::copy(fixtures().join("images/tall.png"), src.join("tall.png")).unwrap();
    let out = tmp.path().join("c");
    let no_control = |s: &str| !s.chars().any(|c| c.is_control() && c != '\n');

    // A list's name or description holding terminal escapes: refused, naming the row.
    let list = src.join("list.csv");
    for (rows, expected) in [
        ("photo.jpg,\"\u{1b}]0;owned\u{7}\",\n", "list.csv: row 2: its name \"\\u{1b}]0;owned\\u{7}\" holds control characters"),
        ("photo.jpg,ok,\"clear \u{1b}[2J\"\n", "list.csv: row 2: its description \"clear \\u{1b}[2J\" holds control characters"),
        ("tall.png,Tall,\nphoto.jpg,\"two\nlines\",\n", "list.csv: row 3: its name \"two\\nlines\" holds control characters"),
    ] {
        fs::write(&list, format!("image,name,description\n{rows}")).unwrap();
        let o = run(&["build", list.to_str().unwrap(), "--out", out.to_str().unwrap()], &tok);
        let e = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{e}");
        assert_eq!(e.trim_end().lines().count(), 1, "{e}");
        assert!(e.contains(expected) && no_control(&e), "{expected:?} is not in {e:?}");
    }
    fs::remove_file(&list).unwrap();

    // A file name used as the name: the build is refused in one line, the file named escaped.
    for (file, shown) in [("a\u{1}b.jpg", "a\\u{1}b.jpg"), ("x\u{1b}[2J.jpg", "x\\u{1b}[2J.jpg"), ("two\nlines.jpg", "two\\nlines.jpg")] {
        fs::copy(fixtures().join("images/photo.jpg"), src.join(file)).unwrap();
        let o = run(&["build", src.to_str().unwrap(), "--out", out.to_str().unwrap()], &tok);
        let e = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{e}");
        assert_eq!(e.trim_end().lines().count(), 1, "{e}");
        assert!(e.contains(shown) && e.contains("holds control characters") && no_control(&e), "{e:?}");
        fs::remove_file(src.join(file)).unwrap();
    }

    // A catalog whose names were edited to hold escapes (or written by an older version): every
    // output shows them escaped.
    let o = run(&["build", src.to_str().unwrap(), "--out", out.to_str().unwrap()], &tok);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let manifest = out.join("catalog.json");
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    m["items"][0]["name"] = "\u{1b}]0;owned\u{7}\u{1b}[2J".into();
    m["items"][1]["name"] = "line\nbreak\u{9b}".into();
    m["model"]["name"] = "model\u{1b}[2J".into();
    fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    let photo = src.join("photo.jpg");
    let o = run(&["query", photo.to_str().unwrap(), "--catalog", out.to_str().unwrap()], &tok);
    let shown = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(no_control(&shown), "{shown:?}");
    assert!(shown.contains("\\u{1b}]0;owned\\u{7}\\u{1b}[2J") && shown.contains("line\\nbreak\\u{9b}"), "{shown}");
    let o = run(&["inspect", out.to_str().unwrap()], &tok);
    let shown = text(&o.stdout);
    assert!(no_control(&shown) && shown.contains("model\\u{1b}[2J"), "{shown:?}");
}
