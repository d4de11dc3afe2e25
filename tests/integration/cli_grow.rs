//! Catalogs that change and grow, as a user runs the tool: `build --update` (to another folder
//! and in place), builds killed with SIGKILL at several points and run again, checkpoints that
//! are damaged, cut short or made for another model or input list, and `build --shard i/n` in
//! four processes joined by `merge`; writers (`build --update`, `tune`, `bundle`) killed at each
//! rename of the swap that puts their output in place, and two writers of one catalog at once.
//! Uses the committed tiny random CLIP with the real tokenizer and the grocery photos from
//! ../shared/data (skipped with a message where absent).

#![cfg(not(target_arch = "wasm32"))]

use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::cli::{ok, refused, s, text};
use common::*;

const EXE: &str = env!("CARGO_BIN_EXE_clipmatch");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The tokenizer and the grocery photos, or `None` (and a message) where they are absent.
fn data() -> Option<(PathBuf, PathBuf)> {
    let tokenizer = shared_data().join("clip-vit-base-patch32/tokenizer.json");
    let grocery = shared_data().join("grocery-packages");
    if tokenizer.is_file() && grocery.join("photos").is_dir() {
        Some((tokenizer, grocery))
    } else {
        eprintln!("skipped: {} or {} is absent", tokenizer.display(), grocery.display());
        None
    }
}

fn command<S: AsRef<std::ffi::OsStr>>(args: &[S], tokenizer: &Path, model: &Path) -> Command {
    let mut c = Command::new(EXE);
    c.args(args)
        .env("CLIPMATCH_MODEL", model)
        .env("CLIPMATCH_TOKENIZER", tokenizer)
        .env_remove("CLIPMATCH_ENGINE")
        .stdin(Stdio::null());
    c
}

fn tiny() -> PathBuf {
    fixtures().join("tiny-clip")
}

fn run<S: AsRef<std::ffi::OsStr>>(args: &[S], tokenizer: &Path) -> Output {
    run_with(args, tokenizer, &tiny())
}

fn run_with<S: AsRef<std::ffi::OsStr>>(args: &[S], tokenizer: &Path, model: &Path) -> Output {
    command(args, tokenizer, model).output().expect("clipmatch runs")
}

/// Every file under `dir` with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().to_path_buf(), fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Two catalog (or shard) folders hold the same files, byte for byte.
fn assert_same(a: &Path, b: &Path) {
    let (fa, fb) = (files(a), files(b));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>(), "{} and {} hold other files", a.display(), b.display());
    for (name, bytes) in &fa {
        assert!(*bytes == fb[name], "{} differs between {} and {}", name.display(), a.display(), b.display());
    }
}

/// The names in `dir` (to check that nothing is left beside an output).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// Copies the `.jpg` files under `from` into `to`, keeping the folders.
fn copy_photos(from: &Path, to: &Path) {
    for e in fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_photos(&p, &dest);
        } else if p.extension().is_some_and(|x| x == "jpg") {
            fs::create_dir_all(to).unwrap();
            fs::copy(&p, dest).unwrap();
        }
    }
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(dir.join("catalog.json")).unwrap()).unwrap()
}

/// Each item's image vector bytes and thumbnail, by the sha256 of its image file.
fn kept_by_image(dir: &Path) -> BTreeMap<String, (Vec<u8>, Vec<u8>)> {
    let m = manifest(dir);
    let dim = m["model"]["embedding_dim"].as_u64().unwrap() as usize;
    let vectors = fs::read(dir.join("vectors.bin")).unwrap();
    let hashes = m["sources"]["image_sha256"].as_array().unwrap();
    m["items"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let thumb = fs::read(dir.join(item["thumbnail"].as_str().unwrap())).unwrap();
            (hashes[i].as_str().unwrap().to_string(), (vectors[2 * dim * i..2 * dim * i + dim].to_vec(), thumb))
        })
        .collect()
}

/// The source changed: one photo replaced by another, one removed, one product renamed (its
/// folder), one product added.
fn change(src: &Path, grocery: &Path) {
    let photos: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> = files(src).into_keys().map(|p| src.join(p)).collect();
        v.sort();
        v
    };
    let other = grocery.join("photos/Juice/Bravo-Apple-Juice");
    let other = fs::read_dir(other).unwrap().next().unwrap().unwrap().path();
    fs::copy(&other, &photos[2]).unwrap();
    fs::remove_file(&photos[4]).unwrap();
    let folder = photos[6].parent().unwrap();
    fs::rename(folder, folder.with_file_name("Renamed-Product")).unwrap();
    fs::create_dir_all(src.join("New/Brand-New-Thing")).unwrap();
    fs::copy(&other, src.join("New/Brand-New-Thing/front.jpg")).unwrap();
}

/// A copy of the tiny model whose weights differ in one low bit of their last value.
fn other_model(root: &Path) -> PathBuf {
    let dir = root.join("other-model");
    fs::create_dir(&dir).unwrap();
    for f in fs::read_dir(tiny()).unwrap() {
        let f = f.unwrap();
        fs::copy(f.path(), dir.join(f.file_name())).unwrap();
    }
    let w = dir.join("model.safetensors");
    let mut bytes = fs::read(&w).unwrap();
    let n = bytes.len();
    bytes[n - 4] ^= 1;
    fs::write(&w, bytes).unwrap();
    dir
}

#[test]
fn updates_embed_only_what_changed_and_keep_the_rest_as_it_was() {
    let Some((tok, grocery)) = data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap();
    let src = root.join("products");
    copy_photos(&grocery.join("iconic"), &src);
    let cat = root.join("cat");
    let f32cat = root.join("cat-f32");
    let build = |out: &Path, extra: &[&str]| {
        let mut args = vec!["build", s(&src), "--name-from", "folder", "--out", s(out)];
        args.extend_from_slice(extra);
        ok(&run(&args, &tok))
    };
    build(&cat, &["--updatable"]);
    build(&f32cat, &["--updatable", "--vector-dtype", "f32"]);
    let plain = root.join("plain");
    build(&plain, &[]);
    assert!(manifest(&plain).get("sources").is_none(), "a build without --updatable records nothing new");
    let before = kept_by_image(&cat);
    let cat_files = files(&cat);

    change(&src, &grocery);
    let sources_before = files(&src);
    let upd = root.join("updated");
    let out = ok(&run(&["build", s(&src), "--name-from", "folder", "--update", s(&cat), "--out", s(&upd)], &tok));
    assert!(out.contains("built ") && out.contains("31 products"), "{out}");
    assert!(out.contains("embedded 2 images and 2 names; reused 29 images and 29 names"), "{out}");
    assert!(files(&cat) == cat_files, "the catalog updated into another folder is untouched");
    assert!(files(&src) == sources_before, "the sources are never modified");

    // Kept items: the same vector bytes and thumbnails; the i8 scales and offsets as before.
    let after = kept_by_image(&upd);
    let kept: Vec<&String> = after.keys().filter(|k| before.contains_key(*k)).collect();
    assert_eq!(kept.len(), 29);
    for k in kept {
        assert!(after[k] == before[k], "item with image {k} changed");
    }
    assert_eq!(manifest(&upd)["vectors"]["scales"], manifest(&cat)["vectors"]["scales"]);
    assert_eq!(manifest(&upd)["vectors"]["offsets"], manifest(&cat)["vectors"]["offsets"]);
    // The new items' vectors, clamped to the kept range, are of unit length all the same.
    assert!(ok(&run(&["inspect", s(&upd)], &tok)).contains("check        ok"));

    // In place: the same catalog as to another folder, and nothing left beside it.
    ok(&run(&["build", s(&src), "--name-from", "folder", "--update", s(&cat), "--out", s(&cat)], &tok));
    assert_same(&cat, &upd);
    assert_eq!(names(&root), ["cat", "cat-f32", "plain", "products", "updated"]);

    // f32: the update is the very catalog a full build of the changed source makes.
    ok(&run(&["build", s(&src), "--name-from", "folder", "--update", s(&f32cat), "--out", s(&f32cat)], &tok));
    let full = root.join("full-f32");
    build(&full, &["--updatable", "--vector-dtype", "f32"]);
    assert_same(&f32cat, &full);
}

#[test]
fn updates_with_another_model_or_settings_are_refused_in_one_line() {
    let Some((tok, grocery)) = data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap();
    let src = root.join("products");
    copy_photos(&grocery.join("iconic/Juice"), &src);
    let (cat, plain) = (root.join("cat"), root.join("plain"));
    ok(&run(&["build", s(&src), "--out", s(&cat), "--updatable"], &tok));
    ok(&run(&["build", s(&src), "--out", s(&plain)], &tok));
    let other = other_model(&root);
    let snapshot = (files(&cat), names(&root));
    let update = |extra: &[&str]| {
        let mut args = vec!["build", s(&src), "--update", s(&cat), "--out", s(&cat)];
        args.extend_from_slice(extra);
        args.iter().map(|a| a.to_string()).collect::<Vec<String>>()
    };
    let cases: Vec<(Vec<String>, PathBuf, &str)> = vec![
        (update(&["--vector-dtype", "f32"]), tiny(), "the catalog stores i8 vectors, not f32; an update keeps the vector dtype"),
        (update(&["--thumbnail-size", "128"]), tiny(), "the catalog was built with 256 px thumbnails, not 128; an update must use the same model and settings"),
        (update(&["--engine", "candle"]), tiny(), "the catalog was built with the ours engine, not candle"),
        (update(&[]), other.clone(), "the catalog was built with another model (weights sha256"),
        (update(&["--shard", "0/2"]), tiny(), "--shard and --update do not go together"),
    ];
    for (a, model, needle) in &cases {
        let o = run_with(a, &tok, model);
        refused(&o, needle);
        assert!(text(&o.stderr).contains(&format!("cannot update {}", cat.display())) || needle.starts_with("--shard"));
    }
    let o = run(&["build", s(&src), "--update", s(&plain), "--out", s(&plain)], &tok);
    refused(&o, "does not record its images' sha256 (it was built without --updatable)");
    assert!((files(&cat), names(&root)) == snapshot, "refusals change nothing");
}

/// Complete records in a checkpoint file so far (see the core's `checkpoint` module).
fn checkpoint_records(path: &Path) -> usize {
    let Ok(b) = fs::read(path) else { return 0 };
    let magic = b"clipmatch-checkpoint 1\n".len();
    let u32_at = |at: usize| b.get(at..at + 4).map(|x| u32::from_le_bytes(x.try_into().unwrap()) as usize);
    let Some(header) = u32_at(magic) else { return 0 };
    let (mut at, mut n) = (magic + 4 + header, 0);
    while let Some(len) = u32_at(at) {
        at += 4 + len + 32;
        if at > b.len() {
            break;
        }
        n += 1;
    }
    n
}

/// Starts `args` and kills it with SIGKILL once its checkpoint (in `work`) holds `records`
/// complete records; fails if the build ended first.
fn kill_after<S: AsRef<std::ffi::OsStr>>(args: &[S], tok: &Path, model: &Path, work: &Path, records: usize) {
    let mut child: Child = command(args, tok, model).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    let checkpoint = work.join("checkpoint.bin");
    loop {
        let header_written = fs::metadata(&checkpoint).is_ok_and(|m| m.len() > 24);
        if header_written && checkpoint_records(&checkpoint) >= records {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the build ended before {records} records were checkpointed");
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint after 120 s");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "killed by a signal, not finished");
}

#[test]
fn a_build_killed_at_any_point_resumes_to_the_same_catalog() {
    let Some((tok, grocery)) = data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap();
    let photos = grocery.join("photos");
    let sources_before = files(&photos);
    let reference = root.join("reference");
    let args = |out: &Path| vec!["build".to_string(), s(&photos).into(), "--name-from".into(), "folder".into(), "--batch-size".into(), "2".into(), "--updatable".into(), "--out".into(), s(out).into()];
    ok(&run(&args(&reference), &tok));

    let out = root.join("cat");
    let work = root.join(".cat.build");
    // Killed right after the checkpoint's header, after 1, and after 40 records; each time run
    // again: the catalog is never there before the end, and the end is the same catalog.
    for records in [0, 1, 40] {
        kill_after(&args(&out), &tok, &tiny(), &work, records);
        assert!(!out.exists(), "nothing is put in place before the build is complete");
        let o = run(&args(&out), &tok);
        ok(&o);
        let err = text(&o.stderr);
        if records > 0 {
            let line = err.lines().find(|l| l.starts_with("resuming the interrupted build")).unwrap_or_else(|| panic!("{err}"));
            let reused: usize = line.split(": ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
            // Batches of 2 photos: two image records and a commit record each.
            assert!(reused >= 2 * (records / 3), "{line}");
        }
        assert_same(&out, &reference);
        assert_eq!(names(&root), ["cat", "reference"], "the work folder is removed at the end");
        fs::remove_dir_all(&out).unwrap();
    }

    // Killed twice in a row: the second run resumes from the first's records and adds its own.
    kill_after(&args(&out), &tok, &tiny(), &work, 20);
    kill_after(&args(&out), &tok, &tiny(), &work, 50);
    // While the work folder is locked (as a running build holds it; here the test holds it, so
    // the check cannot race with a build that is about to finish), a build into it is refused
    // and touches nothing; once it is free, the build resumes and completes.
    let holder = fs::File::open(&work).unwrap();
    holder.try_lock().unwrap();
    let before = files(&work);
    refused(&run(&args(&out), &tok), "another clipmatch command is writing");
    assert!(files(&work) == before, "a refused build changes nothing in the work folder");
    drop(holder);
    ok(&run(&args(&out), &tok));
    assert_same(&out, &reference);
    assert!(files(&photos) == sources_before, "the sources are never modified");
}

#[test]
fn damaged_cut_or_foreign_checkpoints_are_cut_back_or_set_aside_in_one_line() {
    let Some((tok, grocery)) = data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap();
    let src = root.join("photos");
    copy_photos(&grocery.join("photos"), &src);
    let build = |out: &Path| vec!["build".to_string(), s(&src).into(), "--batch-size".into(), "2".into(), "--out".into(), s(out).into()];
    let reference = root.join("reference");
    ok(&run(&build(&reference), &tok));
    let (out, work) = (root.join("cat"), root.join(".cat.build"));
    let checkpoint = work.join("checkpoint.bin");
    let resumed_line = |o: &Output| -> String {
        let err = text(&o.stderr);
        err.lines().find(|l| l.contains("checkpoint") || l.starts_with("resuming")).unwrap_or_else(|| panic!("no line about the checkpoint:\n{err}")).to_string()
    };

    // A byte flipped in the middle: the records before it are used, the rest embedded again.
    kill_after(&build(&out), &tok, &tiny(), &work, 30);
    let mut bytes = fs::read(&checkpoint).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    fs::write(&checkpoint, &bytes).unwrap();
    let o = run(&build(&out), &tok);
    ok(&o);
    let line = resumed_line(&o);
    assert!(line.contains("is damaged") && line.contains("from there on it is embedded again"), "{line}");
    assert_same(&out, &reference);
    fs::remove_dir_all(&out).unwrap();

    // Cut in the middle of a record.
    kill_after(&build(&out), &tok, &tiny(), &work, 30);
    let len = fs::metadata(&checkpoint).unwrap().len();
    fs::OpenOptions::new().write(true).open(&checkpoint).unwrap().set_len(len - 100).unwrap();
    let o = run(&build(&out), &tok);
    ok(&o);
    assert!(resumed_line(&o).contains("is cut short"), "{}", resumed_line(&o));
    assert_same(&out, &reference);
    fs::remove_dir_all(&out).unwrap();

    // Not a checkpoint at all.
    kill_after(&build(&out), &tok, &tiny(), &work, 5);
    fs::write(&checkpoint, b"PK\x03\x04 not a checkpoint").unwrap();
    let o = run(&build(&out), &tok);
    ok(&o);
    assert!(resumed_line(&o).contains("ignoring the checkpoint") && resumed_line(&o).contains("it is not a checkpoint this version writes"));
    assert_same(&out, &reference);
    fs::remove_dir_all(&out).unwrap();

    // Made with another model: set aside; the catalog is the other model's own.
    let other = other_model(&root);
    let other_reference = root.join("other-reference");
    ok(&run_with(&build(&other_reference), &tok, &other));
    kill_after(&build(&out), &tok, &tiny(), &work, 30);
    let o = run_with(&build(&out), &tok, &other);
    ok(&o);
    let line = resumed_line(&o);
    assert!(line.starts_with("ignoring the checkpoint") && line.contains("it was made with another model"), "{line}");
    assert_same(&out, &other_reference);
    fs::remove_dir_all(&out).unwrap();

    // Made from another input list (a photo gone since): set aside.
    kill_after(&build(&out), &tok, &tiny(), &work, 30);
    let gone = files(&src).into_keys().next().unwrap();
    fs::remove_file(src.join(&gone)).unwrap();
    let smaller_reference = root.join("smaller-reference");
    ok(&run(&build(&smaller_reference), &tok));
    let o = run(&build(&out), &tok);
    ok(&o);
    let line = resumed_line(&o);
    assert!(line.contains("it was made from another input list; starting afresh"), "{line}");
    assert_same(&out, &smaller_reference);
}

#[test]
fn a_killed_in_place_update_leaves_the_catalog_as_it_was_then_resumes() {
    let Some((tok, grocery)) = data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap();
    let src = root.join("photos");
    copy_photos(&grocery.join("iconic"), &src);
    let cat = root.join("cat");
    ok(&run(&["build", s(&src), "--out", s(&cat), "--updatable"], &tok));
    let before = files(&cat);
    // Most of the source replaced: the update has much to embed.
    copy_photos(&grocery.join("photos"), &src);
    let expected = root.join("expected");
    ok(&run(&["build", s(&src), "--update", s(&cat), "--out", s(&expected)], &tok));
    let update = ["build", s(&src), "--batch-size", "2", "--update", s(&cat), "--out", s(&cat)];
    kill_after(&update, &tok, &tiny(), &root.join(".cat.build"), 20);
    assert!(files(&cat) == before, "the catalog in place is untouched until the update is complete");
    ok(&run(&update, &tok));
    assert_same(&cat, &expected);
}

#[test]
fn four_shard_processes_merged_equal_the_unsharded_build() {
    let Some((tok, grocery)) = data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap();
    let src = root.join("photos");
    copy_photos(&grocery.join("photos"), &src);
    copy_photos(&grocery.join("iconic"), &src);
    let photo = fs::read(fixtures().join("images/photo.jpg")).unwrap();
    fs::write(src.join("Juice/truncated.jpg"), &photo[..photo.len() / 2]).unwrap();
    let (whole, shard) = (root.join("whole"), |i: usize| root.join(format!("shard-{i}")));
    // With this crate's kernels at the default batch size, and on candle (whose image embeddings
    // depend on a batch's make-up: the shards cut the inputs at batch boundaries).
    for (engine, batch) in [("candle", "5"), ("ours", "16")] {
        let common = ["--name-from", "folder", "--updatable", "--engine", engine, "--batch-size", batch];
        let mut args = vec!["build", s(&src), "--out", s(&whole)];
        args.extend(common);
        let o = run(&args, &tok);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
        let spec: Vec<String> = (0..4).map(|i| format!("{i}/4")).collect();
        let outs: Vec<PathBuf> = (0..4).map(shard).collect();
        let children: Vec<Child> = (0..4)
            .map(|i| {
                let mut args = vec!["build", s(&src), "--shard", &spec[i], "--out", s(&outs[i]), "--allow-skips"];
                args.extend(common);
                command(&args, &tok, &tiny()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
            })
            .collect();
        for child in children {
            ok(&child.wait_with_output().unwrap());
        }
        let merged = root.join(format!("merged-{engine}"));
        let o = run(&["merge", s(&outs[3]), s(&outs[1]), s(&outs[0]), s(&outs[2]), "--out", s(&merged), "--allow-skips"], &tok);
        ok(&o);
        assert_same(&merged, &whole);
    }
    let merged = root.join("merged");
    let (s0, s1, s2, s3) = (shard(0), shard(1), shard(2), shard(3));
    let o = run(&["merge", s(&s2), s(&s0), s(&s3), s(&s1), "--out", s(&merged)], &tok);
    assert_eq!(o.status.code(), Some(2), "the shards' skip makes a non-zero exit without --allow-skips: {}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("Juice/truncated.jpg: the JPEG data is corrupt or truncated"), "{err}");
    assert!(text(&o.stdout).contains("merged 4 shards"), "{}", text(&o.stdout));
    assert_same(&merged, &whole);

    // A shard of another split, one left out, one given twice: refused, the catalog untouched.
    let odd = root.join("odd");
    ok(&run(&["build", s(&src), "--name-from", "folder", "--updatable", "--engine", "ours", "--shard", "1/3", "--out", s(&odd), "--allow-skips"], &tok));
    refused(&run(&["merge", s(&s0), s(&odd), s(&s2), s(&s3), "--out", s(&merged)], &tok), "split the inputs in different numbers of shards");
    refused(&run(&["merge", s(&s0), s(&s1), s(&s3), "--out", s(&merged)], &tok), "missing: shard 2 (a build in 4 shards needs shards 0 to 3, each once)");
    refused(&run(&["merge", s(&s0), s(&s1), s(&s1), s(&s2), s(&s3), "--out", s(&merged)], &tok), "is given twice");
    assert_same(&merged, &whole);
}

#[test]
fn a_killed_build_on_candle_resumes_to_the_same_catalog() {
    let Some((tok, grocery)) = data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap();
    let photos = grocery.join("photos");
    let args = |out: &Path| -> Vec<String> {
        ["build", s(&photos), "--engine", "candle", "--batch-size", "3", "--out", s(out)].iter().map(|a| a.to_string()).collect()
    };
    let reference = root.join("reference");
    ok(&run(&args(&reference), &tok));
    // Batches of 3 photos (3 image records and a commit): 9 records end within the third batch,
    // which is then embedded again whole, in the same company as in the uninterrupted build.
    let out = root.join("cat");
    kill_after(&args(&out), &tok, &tiny(), &root.join(".cat.build"), 9);
    let o = run(&args(&out), &tok);
    ok(&o);
    assert!(text(&o.stderr).contains("resuming the interrupted build"), "{}", text(&o.stderr));
    assert_same(&out, &reference);
}

/// A library for `LD_PRELOAD` that SIGKILLs the process at a chosen rename
/// (tests/fixtures/preload/kill_at_rename.rs), built once with rustc; `None` (and a message)
/// where it cannot be.
fn kill_at_rename() -> Option<&'static Path> {
    static LIB: OnceLock<Option<PathBuf>> = OnceLock::new();
    LIB.get_or_init(|| {
        if !cfg!(all(target_os = "linux", target_env = "gnu")) {
            eprintln!("skipped: killing at a rename needs LD_PRELOAD and glibc");
            return None;
        }
        let lib = Path::new(env!("CARGO_TARGET_TMPDIR")).join("libkill_at_rename.so");
        let rustc = std::env::var_os("RUSTC").unwrap_or("rustc".into());
        let built = Command::new(rustc)
            .args(["--edition", "2021", "--crate-type", "cdylib", "-o"])
            .arg(&lib)
            .arg(fixtures().join("preload/kill_at_rename.rs"))
            .status()
            .is_ok_and(|s| s.success());
        if !built {
            eprintln!("skipped: rustc could not build {}", lib.display());
        }
        built.then_some(lib)
    })
    .as_deref()
}

/// Runs `args` killed by SIGKILL just before (`when` = `KILL_AT_RENAME`) or just after
/// (`KILL_AFTER_RENAME`) its `n`-th rename.
fn kill_at<S: AsRef<std::ffi::OsStr>>(args: &[S], tok: &Path, lib: &Path, when: &str, n: u32) {
    use std::os::unix::process::ExitStatusExt;
    let o = command(args, tok, &tiny()).env("LD_PRELOAD", lib).env(when, n.to_string()).output().unwrap();
    assert_eq!(o.status.signal(), Some(9), "{when}={n}: killed, not finished:\n{}", text(&o.stderr));
}

/// A copy of the folder `from` (files and folders).
fn copy_dir(from: &Path, to: &Path) {
    for (rel, bytes) in files(from) {
        fs::create_dir_all(to.join(&rel).parent().unwrap()).unwrap();
        fs::write(to.join(rel), bytes).unwrap();
    }
}

#[test]
fn a_swap_killed_at_each_rename_is_finished_by_the_next_command_of_any_kind() {
    let Some((tok, grocery)) = data() else { return };
    let Some(lib) = kill_at_rename() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap();
    let src = root.join("photos");
    copy_photos(&grocery.join("iconic"), &src);
    let old = root.join("old");
    // f32 vectors: `inspect`, a next command below, checks every vector's length, which an i8
    // update's clamped values fail today (issue 25, row 9).
    ok(&run(&["build", s(&src), "--name-from", "folder", "--updatable", "--vector-dtype", "f32", "--out", s(&old)], &tok));
    copy_photos(&grocery.join("photos"), &src);
    let expected = root.join("expected");
    ok(&run(&["build", s(&src), "--name-from", "folder", "--update", s(&old), "--out", s(&expected)], &tok));

    let (cat, work) = (root.join("cat"), root.join(".cat.build"));
    let update = ["build", s(&src), "--name-from", "folder", "--update", s(&cat), "--out", s(&cat)];
    let photo = fixtures().join("images/photo.jpg");
    let inspect = vec!["inspect", s(&cat)];
    let query = vec!["query", s(&photo), "--catalog", s(&cat)];
    // An in-place update killed before it moves the old catalog aside, between its two renames
    // (the old catalog aside, the new one not yet in place) and after them: the journal says
    // what to finish, and the next command, whichever it is, finishes it.
    for (when, n, next) in [("KILL_AT_RENAME", 1, inspect), ("KILL_AT_RENAME", 2, update.to_vec()), ("KILL_AFTER_RENAME", 2, query)] {
        if cat.exists() {
            fs::remove_dir_all(&cat).unwrap();
        }
        copy_dir(&old, &cat);
        kill_at(&update, &tok, lib, when, n);
        assert!(work.join("swap.json").is_file(), "{when}={n}: the journal is written before the first rename");
        match (when, n) {
            ("KILL_AT_RENAME", 1) => assert_same(&cat, &old),
            ("KILL_AT_RENAME", 2) => assert!(!cat.exists() && work.join("old").is_dir() && work.join("out").is_dir()),
            _ => assert_same(&cat, &expected),
        }
        let o = run(&next, &tok);
        ok(&o);
        assert!(text(&o.stderr).contains(&format!("finished putting the new {} in place", cat.display())), "{}", text(&o.stderr));
        assert_same(&cat, &expected);
        assert_eq!(names(&root), ["cat", "expected", "old", "photos"], "{when}={n}: nothing is left beside it");
    }

    // `tune` in place, killed between its renames: `eval` finds the tuned catalog in place.
    let photos = grocery.join("photos");
    kill_at(&["tune", "--catalog", s(&cat), "--photos", s(&photos)], &tok, lib, "KILL_AT_RENAME", 2);
    assert!(!cat.exists());
    ok(&run(&["eval", "--catalog", s(&cat), "--photos", s(&photos)], &tok));
    assert!(manifest(&cat)["ranking"]["tuned"].is_object(), "the tuned catalog is in place");

    // `bundle` over an existing bundle, killed between its renames: the next bundle finishes
    // the swap, then replaces it with the same files; nothing is left beside it.
    let bundle = root.join("bundle");
    ok(&run(&["bundle", "--catalog", s(&cat), "--out", s(&bundle)], &tok));
    let first = files(&bundle);
    kill_at(&["bundle", "--catalog", s(&cat), "--out", s(&bundle)], &tok, lib, "KILL_AT_RENAME", 2);
    assert!(!bundle.exists() && root.join(".bundle.build/swap.json").is_file());
    ok(&run(&["bundle", "--catalog", s(&cat), "--out", s(&bundle)], &tok));
    assert!(files(&bundle) == first, "the same bundle");
    assert_eq!(names(&root), ["bundle", "cat", "expected", "old", "photos"]);
}

#[test]
fn a_second_writer_of_a_catalog_is_refused_in_one_line_and_nothing_is_lost() {
    let Some((tok, grocery)) = data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap();
    let (src, photos) = (root.join("products"), grocery.join("photos"));
    copy_photos(&grocery.join("iconic"), &src);
    let cat = root.join("cat");
    ok(&run(&["build", s(&src), "--name-from", "folder", "--updatable", "--out", s(&cat)], &tok));
    copy_photos(&photos, &src);
    let expected = root.join("expected");
    ok(&run(&["build", s(&src), "--name-from", "folder", "--update", s(&cat), "--out", s(&expected)], &tok));
    let busy = format!("another clipmatch command is writing {}", cat.display());

    // `tune` while an in-place update of the same catalog runs (two processes): refused.
    let work = root.join(".cat.build");
    let update = ["build", s(&src), "--name-from", "folder", "--batch-size", "2", "--update", s(&cat), "--out", s(&cat)];
    let mut child = command(&update, &tok, &tiny()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    while checkpoint_records(&work.join("checkpoint.bin")) < 3 {
        assert!(child.try_wait().unwrap().is_none(), "the update ended before the test could run tune beside it");
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint after 120 s");
        std::thread::sleep(Duration::from_millis(1));
    }
    refused(&run(&["tune", "--catalog", s(&cat), "--photos", s(&photos)], &tok), &busy);
    ok(&child.wait_with_output().unwrap());
    assert_same(&cat, &expected);
    assert!(manifest(&cat)["ranking"].get("tuned").is_none());

    // Every writer of a catalog (or bundle) takes the same lock: while it is held (here by the
    // test, so the check cannot race), each is refused in one line and changes nothing.
    let shard = root.join("shard");
    ok(&run(&["build", s(&src), "--name-from", "folder", "--updatable", "--shard", "0/1", "--out", s(&shard)], &tok));
    fs::create_dir(&work).unwrap();
    let holder = fs::File::open(&work).unwrap();
    holder.try_lock().unwrap();
    let bundle = root.join("bundle");
    let bundle_work = root.join(".bundle.build");
    fs::create_dir(&bundle_work).unwrap();
    let bundle_holder = fs::File::open(&bundle_work).unwrap();
    bundle_holder.try_lock().unwrap();
    let before = (files(&root), names(&root));
    let writers: [Vec<&str>; 6] = [
        vec!["tune", "--catalog", s(&cat), "--photos", s(&photos)],
        vec!["tune", "--catalog", s(&expected), "--photos", s(&photos), "--out", s(&cat)],
        update.to_vec(),
        vec!["build", s(&src), "--name-from", "folder", "--out", s(&cat)],
        vec!["merge", s(&shard), "--out", s(&cat)],
        vec!["bundle", "--catalog", s(&cat), "--out", s(&bundle)],
    ];
    for args in &writers {
        let o = run(args, &tok);
        if args[0] == "bundle" {
            refused(&o, &format!("another clipmatch command is writing {}", bundle.display()));
        } else {
            refused(&o, &busy);
        }
    }
    assert!((files(&root), names(&root)) == before, "refused writers change nothing");
    drop((holder, bundle_holder));
    ok(&run(&["tune", "--catalog", s(&cat), "--photos", s(&photos)], &tok));
    assert!(manifest(&cat)["ranking"]["tuned"].is_object());
}
