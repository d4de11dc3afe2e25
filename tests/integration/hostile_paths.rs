//! Hostile paths: ids that name files outside the output folder, catalog folders whose manifest
//! or links point elsewhere (or at devices and FIFOs), output folders that overlap what a
//! command reads. Each is refused with a one-line reason, nothing is written outside the
//! output folder (the whole temporary root is compared before and after, contents included),
//! and the source catalog stays byte-identical. Uses the committed tiny CLIP (copied, since
//! some cases aim `--out` at the model folder); building a catalog needs the real tokenizer
//! from ../shared/data (those tests are skipped with a message where it is absent).

#![cfg(not(target_arch = "wasm32"))]

use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_clipmatch");
/// A command that takes longer is taken to hang (e.g. reading a FIFO or /dev/zero).
const TIMEOUT: Duration = Duration::from_secs(60);

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn tokenizer() -> Option<PathBuf> {
    let p = common::shared_data().join("clip-vit-base-patch32/tokenizer.json");
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipped: {} is absent", p.display());
        None
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// A file tree: every path under the root with what it is (contents for files).
#[derive(Debug, PartialEq)]
enum Node {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
    Other,
}

fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Node>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let t = fs::symlink_metadata(&p).unwrap().file_type();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if t.is_dir() {
                out.insert(rel, Node::Dir);
                walk(root, &p, out);
            } else if t.is_file() {
                out.insert(rel, Node::File(fs::read(&p).unwrap()));
            } else if t.is_symlink() {
                out.insert(rel, Node::Link(fs::read_link(&p).unwrap()));
            } else {
                out.insert(rel, Node::Other);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A temporary root holding a copy of the tiny model; commands run with it as the model.
struct Lab {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    model: PathBuf,
    tokenizer: Option<PathBuf>,
}

impl Lab {
    fn new(tokenizer: Option<PathBuf>) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap();
        let model = root.join("model");
        fs::create_dir(&model).unwrap();
        for f in fs::read_dir(fixtures().join("tiny-clip")).unwrap() {
            let f = f.unwrap();
            fs::copy(f.path(), model.join(f.file_name())).unwrap();
        }
        Self { _tmp: tmp, root, model, tokenizer }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Runs clipmatch (arguments relative to nothing: pass absolute paths), failing the test if
    /// it does not finish within [`TIMEOUT`].
    fn run(&self, args: &[&str]) -> Run {
        let out = tempfile::tempdir().unwrap();
        let (so, se) = (out.path().join("stdout"), out.path().join("stderr"));
        let mut cmd = Command::new(EXE);
        cmd.args(args)
            .current_dir(&self.root)
            .env("CLIPMATCH_MODEL", &self.model)
            .env_remove("CLIPMATCH_CATALOG")
            .env_remove("CLIPMATCH_TOKENIZER")
            .stdin(Stdio::null())
            .stdout(fs::File::create(&so).unwrap())
            .stderr(fs::File::create(&se).unwrap());
        if let Some(t) = &self.tokenizer {
            cmd.env("CLIPMATCH_TOKENIZER", t);
        }
        let mut child = cmd.spawn().expect("clipmatch runs");
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > TIMEOUT {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!("clipmatch {args:?} did not finish within {TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Run {
            code: status.code(),
            stdout: fs::read_to_string(so).unwrap(),
            stderr: fs::read_to_string(se).unwrap(),
        }
    }

    /// Runs a command that must be refused: exit 1, one line on stderr that contains each of
    /// `needles`, and no change anywhere under the root.
    fn refused(&self, args: &[&str], needles: &[&str]) -> String {
        let before = snapshot(&self.root);
        let r = self.run(args);
        let err = r.stderr.trim_end().to_string();
        assert_eq!(r.code, Some(1), "{args:?} should fail:\nstdout {}\nstderr {err}", r.stdout);
        assert_eq!(err.lines().count(), 1, "{args:?}: one line on stderr, got:\n{err}");
        for n in needles {
            assert!(err.contains(n), "{args:?}: {n:?} is not in:\n{err}");
        }
        let after = snapshot(&self.root);
        assert!(before == after, "{args:?} changed files under the root: {:?}", changes(&before, &after));
        err
    }

    /// Runs a command that must succeed, writing nothing outside `out`.
    fn succeeds(&self, args: &[&str], out: &Path) -> Run {
        let before = snapshot(&self.root);
        let r = self.run(args);
        assert_eq!(r.code, Some(0), "{args:?}:\n{}", r.stderr);
        let after = snapshot(&self.root);
        let rel_out = out.strip_prefix(&self.root).unwrap();
        let outside = |m: &BTreeMap<PathBuf, Node>| -> Vec<(PathBuf, bool)> {
            m.iter()
                .filter(|(p, _)| !p.starts_with(rel_out))
                .map(|(p, n)| (p.clone(), matches!(n, Node::Dir)))
                .collect()
        };
        assert_eq!(outside(&before), outside(&after), "{args:?} wrote outside {}", out.display());
        for (p, n) in before.iter().filter(|(p, _)| !p.starts_with(rel_out)) {
            assert!(after.get(p) == Some(n), "{args:?} changed {}", p.display());
        }
        r
    }

    /// A folder of three product photos.
    fn products(&self, name: &str) -> PathBuf {
        let dir = self.p(name);
        fs::create_dir(&dir).unwrap();
        for (f, to) in [("photo.jpg", "absolut-citron.jpg"), ("tall.png", "oat-milk.png"), ("small.png", "rye-bread.png")] {
            fs::copy(fixtures().join("images").join(f), dir.join(to)).unwrap();
        }
        dir
    }

    /// A catalog of [`Lab::products`], built by clipmatch.
    fn catalog(&self, name: &str) -> PathBuf {
        let src = self.products(&format!("{name}-products"));
        let out = self.p(name);
        let r = self.run(&["build", s(&src), "--out", s(&out)]);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        out
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn changes(before: &BTreeMap<PathBuf, Node>, after: &BTreeMap<PathBuf, Node>) -> Vec<String> {
    let mut out = Vec::new();
    for (p, n) in after {
        match before.get(p) {
            None => out.push(format!("added {}", p.display())),
            Some(m) if m != n => out.push(format!("changed {}", p.display())),
            _ => {}
        }
    }
    out.extend(before.keys().filter(|p| !after.contains_key(*p)).map(|p| format!("removed {}", p.display())));
    out
}

fn mkfifo(p: &Path) -> bool {
    let ok = Command::new("mkfifo").arg(p).status().is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped the FIFO case: mkfifo is not available");
    }
    ok
}

fn edit_manifest(cat: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let path = cat.join("catalog.json");
    let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    f(&mut v);
    fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// A lab with a catalog "cat" built in it, if the tokenizer is there to build one.
fn lab_with_catalog() -> Option<(Lab, PathBuf)> {
    let lab = Lab::new(Some(tokenizer()?));
    let cat = lab.catalog("cat");
    Some((lab, cat))
}

const RULE: &str = "an id is 1 to 128 ASCII letters, digits, '-', '_' or '.', starts with a letter or digit and has no \"..\"";

#[test]
fn hostile_ids_in_a_list_are_refused_before_the_model_loads() {
    // No model at all: the ids are refused before it would be loaded.
    let mut lab = Lab::new(None);
    lab.model = lab.p("no-such-model");
    fs::copy(fixtures().join("images/photo.jpg"), lab.p("a.jpg")).unwrap();
    let list = lab.p("list.json");
    let out = lab.p("out");
    let long = "x".repeat(129);
    for (id, reason) in [
        ("../../victim", "(it contains '/')"),
        ("a/b", "(it contains '/')"),
        ("a\\b", "(it contains '\\\\')"),
        (".hidden", "(it starts with '.')"),
        ("a\u{0}b", "(it contains the control character U+0000)"),
        ("a\nb", "(it contains the control character U+000A)"),
        ("a..b", "(it contains \"..\")"),
        ("a b", "(it contains ' ')"),
        (long.as_str(), "(it is 129 bytes long)"),
    ] {
        let rows = serde_json::json!([{"image": "a.jpg", "name": "A"}, {"image": "a.jpg", "name": "B", "id": id}]);
        fs::write(&list, rows.to_string()).unwrap();
        let err = lab.refused(&["build", s(&list), "--out", s(&out)], &["entry 2: id ", reason, RULE]);
        assert!(!err.contains('\0'));
    }
    for (rows, needle) in [
        (r#"[{"image":"a.jpg","name":"x","id":"Soap"},{"image":"a.jpg","name":"y","id":"soap"}]"#,
         r#"entry 2 has id "soap" and entry 1 has "Soap": ids must differ in more than case"#),
        (r#"[{"image":"a.jpg","name":"x","id":"a"},{"image":"a.jpg","name":"y","id":"a"}]"#,
         r#"entry 2 has id "a", as does entry 1: ids must be unique"#),
    ] {
        fs::write(&list, rows).unwrap();
        lab.refused(&["build", s(&list), "--out", s(&out)], &[needle]);
    }
    // A CSV names the row by its line.
    let csv = lab.p("list.csv");
    fs::write(&csv, "image,name,id\na.jpg,A,\na.jpg,B,../../victim\n").unwrap();
    lab.refused(&["build", s(&csv), "--out", s(&out)], &["list.csv: row 3: id \"../../victim\" is not allowed"]);
    assert!(!lab.root.parent().unwrap().join("victim.jpg").exists());
}

#[test]
fn derived_ids_are_unique_ignoring_case() {
    let Some(tok) = tokenizer() else { return };
    let lab = Lab::new(Some(tok));
    fs::copy(fixtures().join("images/photo.jpg"), lab.p("a.jpg")).unwrap();
    let list = lab.p("list.csv");
    fs::write(&list, "image,name,id\na.jpg,a,\na.jpg,a,\na.jpg,a-2,\na.jpg,A,\na.jpg,Other,B\na.jpg,b,\n").unwrap();
    let out = lab.p("cat");
    lab.succeeds(&["build", s(&list), "--out", s(&out)], &out);
    let m: serde_json::Value = serde_json::from_slice(&fs::read(out.join("catalog.json")).unwrap()).unwrap();
    let ids: Vec<&str> = m["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a", "a-3", "a-2", "a-4", "B", "b-2"]);
    let mut thumbs: Vec<String> =
        fs::read_dir(out.join("thumbs")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    thumbs.sort();
    assert_eq!(thumbs, ["B.jpg", "a-2.jpg", "a-3.jpg", "a-4.jpg", "a.jpg", "b-2.jpg"]);
}

#[test]
fn a_tampered_manifest_is_refused_by_inspect_query_and_bundle() {
    let Some((lab, cat)) = lab_with_catalog() else { return };
    fs::copy(fixtures().join("images/photo.jpg"), lab.p("outside.jpg")).unwrap();
    let photo = lab.p("cat-products/oat-milk.png");
    let bundle = lab.p("bundle");
    let original = fs::read(cat.join("catalog.json")).unwrap();
    type Edit = fn(&mut serde_json::Value);
    let cases: [(Edit, &str); 6] = [
        (|m| m["items"][0]["thumbnail"] = "/etc/passwd".into(), r#"thumbnail is "/etc/passwd"; it must be "thumbs/absolut-citron.jpg" or absent"#),
        (|m| m["items"][0]["thumbnail"] = "../outside.jpg".into(), r#"thumbnail is "../outside.jpg"; it must be"#),
        (|m| m["items"][1]["thumbnail"] = "thumbs/absolut-citron.jpg".into(), r#"item "oat-milk": thumbnail is "thumbs/absolut-citron.jpg""#),
        (|m| m["items"][0]["id"] = "../../victim".into(), r#"item 1: id "../../victim" is not allowed (it contains '/')"#),
        (|m| m["vectors"]["file"] = "/dev/zero".into(), r#"vectors.file is "/dev/zero"; it must be "vectors.bin""#),
        (|m| m["vectors"]["file"] = "../x".into(), r#"vectors.file is "../x"; it must be "vectors.bin""#),
    ];
    for (edit, needle) in cases {
        edit_manifest(&cat, edit);
        for args in [
            vec!["inspect", s(&cat)],
            vec!["query", s(&photo), "--catalog", s(&cat)],
            vec!["bundle", "--catalog", s(&cat), "--out", s(&bundle)],
        ] {
            lab.refused(&args, &["cannot load the catalog in", "invalid catalog: ", needle]);
        }
        fs::write(cat.join("catalog.json"), &original).unwrap();
    }
    // Ids equal but for case would share a thumbnail on macOS and Windows.
    edit_manifest(&cat, |m| {
        m["items"][1]["id"] = "Absolut-Citron".into();
        m["items"][1]["thumbnail"] = "thumbs/Absolut-Citron.jpg".into();
    });
    lab.refused(&["inspect", s(&cat)], &[r#"item ids "absolut-citron" and "Absolut-Citron" differ only in case"#]);
}

#[cfg(unix)]
#[test]
fn links_fifos_devices_and_oversized_files_in_a_catalog_folder_are_not_read() {
    use std::os::unix::fs::symlink;
    let Some((lab, cat)) = lab_with_catalog() else { return };
    let photo = lab.p("cat-products/oat-milk.png");
    let bundle = lab.p("bundle");
    let secret = lab.p("secret.jpg");
    fs::copy(fixtures().join("images/photo.jpg"), &secret).unwrap();
    let thumb = cat.join("thumbs/oat-milk.jpg");
    let thumb_bytes = fs::read(&thumb).unwrap();

    // A thumbnail linked to a private file outside the folder is not copied into a bundle.
    fs::remove_file(&thumb).unwrap();
    symlink(&secret, &thumb).unwrap();
    lab.refused(&["bundle", "--catalog", s(&cat), "--out", s(&bundle)], &["thumbs/oat-milk.jpg leads outside the catalog folder"]);
    let r = lab.run(&["inspect", s(&cat)]);
    assert_eq!(r.code, Some(2), "{}", r.stdout);
    assert!(r.stdout.contains("thumbnail thumbs/oat-milk.jpg: ") && r.stdout.contains("leads outside the catalog folder"), "{}", r.stdout);
    fs::remove_file(&thumb).unwrap();

    // A thumbnail over the cap (4 MiB).
    fs::write(&thumb, vec![0u8; (4 << 20) + 1]).unwrap();
    lab.refused(&["bundle", "--catalog", s(&cat), "--out", s(&bundle)], &["the file is 4194305 bytes, over the limit of 4194304 bytes"]);
    fs::write(&thumb, &thumb_bytes).unwrap();

    let vectors = cat.join("vectors.bin");
    let vector_bytes = fs::read(&vectors).unwrap();
    let commands = |cat: &Path| -> Vec<Vec<String>> {
        let c = s(cat).to_string();
        vec![
            vec!["inspect".into(), c.clone()],
            vec!["query".into(), s(&photo).into(), "--catalog".into(), c.clone()],
            vec!["bundle".into(), "--catalog".into(), c, "--out".into(), s(&bundle).into()],
        ]
    };
    let refused_by_all = |needles: &[&str]| {
        for args in commands(&cat) {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            lab.refused(&args, needles);
        }
    };
    // vectors.bin linked to /dev/zero, or to a file outside.
    fs::remove_file(&vectors).unwrap();
    symlink("/dev/zero", &vectors).unwrap();
    refused_by_all(&["vectors.bin leads outside the catalog folder (to /dev/zero)"]);
    fs::remove_file(&vectors).unwrap();
    // One byte more than the manifest implies, found from the size before reading.
    let mut longer = vector_bytes.clone();
    longer.push(0);
    fs::write(&vectors, &longer).unwrap();
    let n = vector_bytes.len();
    refused_by_all(&[&format!("vectors.bin is {} bytes, expected {n} (3 items x 2 vectors x", n + 1), "belongs to another catalog"]);
    fs::remove_file(&vectors).unwrap();
    // FIFOs inside the folder, which a plain read would wait on forever.
    if mkfifo(&vectors) {
        refused_by_all(&["vectors.bin: not a regular file (it is a FIFO); only regular files are read"]);
        fs::remove_file(&vectors).unwrap();
        fs::write(&vectors, &vector_bytes).unwrap();
        let manifest = cat.join("catalog.json");
        let manifest_bytes = fs::read(&manifest).unwrap();
        fs::remove_file(&manifest).unwrap();
        assert!(mkfifo(&manifest));
        refused_by_all(&["catalog.json: not a regular file (it is a FIFO)"]);
        fs::remove_file(&manifest).unwrap();
        fs::write(&manifest, manifest_bytes).unwrap();
    }
    fs::write(&vectors, &vector_bytes).unwrap();
    // The catalog folder itself may be a link (the user named it).
    let link = lab.p("cat-link");
    symlink(&cat, &link).unwrap();
    let r = lab.run(&["inspect", s(&link)]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("check        ok"), "{}", r.stdout);
}

/// A thumbnail is read only as a JPEG of at most the catalog's thumbnail size a side (by its
/// header): a 16384 x 16384 PNG or JPEG put in a catalog is a problem `inspect` reports, and
/// `bundle` refuses to carry to the page, in one line; so is a JPEG larger than the size an
/// updatable catalog records.
#[test]
fn thumbnails_other_than_small_jpegs_are_reported_and_not_bundled() {
    let Some((lab, cat)) = lab_with_catalog() else { return };
    let thumb = cat.join("thumbs/oat-milk.jpg");
    let bundle = lab.p("bundle");
    let inspect = |cat: &Path, needle: &str| {
        let r = lab.run(&["inspect", s(cat)]);
        assert_eq!(r.code, Some(2), "{}{}", r.stdout, r.stderr);
        assert!(r.stdout.contains(needle), "{needle:?} is not in:\n{}", r.stdout);
    };
    let largest = "this catalog's thumbnails are JPEGs of at most 1024 pixels a side";
    fs::write(&thumb, common::png_header(16384, 16384)).unwrap();
    let png = format!("thumbs/oat-milk.jpg: the thumbnail is a PNG image, not a JPEG; {largest}");
    inspect(&cat, &png);
    lab.refused(&["bundle", "--catalog", s(&cat), "--out", s(&bundle)], &[&png]);
    fs::write(&thumb, common::jpeg_header(16384, 16384)).unwrap();
    let jpeg = format!("thumbs/oat-milk.jpg: the thumbnail is a 16384x16384 JPEG; {largest}");
    inspect(&cat, &jpeg);
    lab.refused(&["bundle", "--catalog", s(&cat), "--out", s(&bundle)], &[&jpeg]);
    assert!(!bundle.exists());

    // An updatable catalog records its size (256 by default).
    let src = lab.p("cat-products");
    let updatable = lab.p("updatable");
    let r = lab.run(&["build", s(&src), "--updatable", "--out", s(&updatable)]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    fs::write(updatable.join("thumbs/rye-bread.jpg"), common::jpeg_header(300, 200)).unwrap();
    inspect(&updatable, "thumbs/rye-bread.jpg: the thumbnail is a 300x200 JPEG; this catalog's thumbnails are JPEGs of at most 256 pixels a side");
    // Nor does `build` write thumbnails larger than a catalog may have.
    let big = lab.p("big");
    let r = lab.run(&["build", s(&src), "--thumbnail-size", "2048", "--out", s(&big)]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("the thumbnail size must be 1 to 1024 pixels, not 2048"), "{}", r.stderr);
    assert!(!big.exists());
}

#[test]
fn bundle_out_may_not_overlap_the_catalog_or_model_nor_replace_other_folders() {
    let Some((lab, cat)) = lab_with_catalog() else { return };
    let other_catalog = lab.catalog("other");
    let precious = lab.p("precious");
    fs::create_dir(&precious).unwrap();
    fs::write(precious.join("thesis.txt"), b"do not delete").unwrap();
    let fake = lab.p("fake");
    fs::create_dir(&fake).unwrap();
    fs::write(fake.join("bundle.json"), br#"{"format": "something-else"}"#).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&cat, lab.p("cat-link")).unwrap();
    let model = lab.model.clone();
    let bundle = |out: &Path| -> Vec<String> {
        ["bundle", "--catalog", s(&cat), "--out", s(out)].map(String::from).to_vec()
    };
    let mut cases: Vec<(PathBuf, &str)> = vec![
        (cat.clone(), "it is the catalog folder"),
        (lab.p("new/../cat"), "it is the catalog folder"),
        (cat.join("sub"), "it lies inside the catalog folder"),
        (cat.join("thumbs"), "it lies inside the catalog folder"),
        (lab.root.clone(), "it contains the catalog folder"),
        (model.clone(), "it is the model folder"),
        (model.join("sub"), "it lies inside the model folder"),
        (precious.clone(), r#"it is not a bundle folder (no bundle.json of format "clipmatch-bundle") and not empty"#),
        (other_catalog.clone(), "it is not a bundle folder"),
        (fake.clone(), "it is not a bundle folder"),
        (lab.p("precious/thesis.txt"), "it exists and is not a folder"),
    ];
    if cfg!(unix) {
        cases.push((lab.p("cat-link"), "it is the catalog folder"));
    }
    for (out, needle) in &cases {
        let args = bundle(out);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = lab.refused(&args, &["refusing to ", needle]);
        assert!(err.starts_with("error: refusing to "), "{err}");
    }
    // Relative paths too (commands run in the root).
    lab.refused(&["bundle", "--catalog", "cat", "--out", "cat"], &["refusing to write cat: it is the catalog folder cat"]);
    lab.refused(&["bundle", "--catalog", "./cat/", "--out", "cat/sub"], &["it lies inside the catalog folder"]);

    // A new folder, an existing bundle and an empty folder are written, and nothing else.
    let out = lab.p("bundle");
    lab.succeeds(&bundle(&out).iter().map(String::as_str).collect::<Vec<_>>(), &out);
    assert!(out.join("bundle.json").is_file() && out.join("thumbs/oat-milk.jpg").is_file());
    lab.succeeds(&bundle(&out).iter().map(String::as_str).collect::<Vec<_>>(), &out);
    let empty = lab.p("empty");
    fs::create_dir(&empty).unwrap();
    lab.succeeds(&bundle(&empty).iter().map(String::as_str).collect::<Vec<_>>(), &empty);
    assert!(empty.join("bundle.json").is_file());
}

#[test]
fn build_out_may_not_overlap_its_source_or_model_nor_replace_other_folders() {
    // Refused before the model loads: no tokenizer needed.
    let lab = Lab::new(None);
    let src = lab.products("src");
    let list = lab.p("list.csv");
    fs::write(&list, "image,name\nsrc/oat-milk.png,Oat Milk\n").unwrap();
    let precious = lab.p("precious");
    fs::create_dir(&precious).unwrap();
    fs::write(precious.join("notes.txt"), b"keep").unwrap();
    let foreign = lab.p("foreign");
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("catalog.json"), br#"{"format": "some-other-tool", "items": []}"#).unwrap();
    for (source, out, needle) in [
        (&src, src.clone(), "it is the source folder"),
        (&src, src.join("catalog"), "it lies inside the source folder"),
        (&src, lab.root.clone(), "it contains the source folder"),
        (&src, lab.model.clone(), "it is the model folder"),
        (&src, lab.model.join("catalog"), "it lies inside the model folder"),
        (&list, lab.root.clone(), "it contains the source list"),
        (&src, precious.clone(), r#"it is not a catalog folder (no catalog.json of format "clipmatch-catalog") and not empty"#),
        (&src, foreign.clone(), "it is not a catalog folder"),
    ] {
        lab.refused(&["build", s(source), "--out", s(&out)], &["refusing to ", needle]);
    }
    lab.refused(&["build", "src", "--out", "src/../src/x"], &["refusing to write src/../src/x: it lies inside the source folder src"]);
    lab.refused(
        &["build", s(&src), "--out", s(&precious), "--tokenizer", s(&precious.join("notes.txt"))],
        &["it contains the tokenizer"],
    );
}

#[cfg(unix)]
#[test]
fn a_link_to_nothing_as_out_is_refused_before_the_model_is_opened() {
    // The model is an empty folder, which cannot load: the refusal names the link, so it came
    // before the model was even opened (and so before any embedding).
    let lab = Lab::new(None);
    let src = lab.products("src");
    let no_model = lab.p("no-model");
    fs::create_dir(&no_model).unwrap();
    let link = lab.p("cat");
    std::os::unix::fs::symlink(lab.p("gone"), &link).unwrap();
    let needles = ["refusing to write", "cat is a link to", "gone, which does not exist"];
    for out in [link.clone(), link.join("inside")] {
        lab.refused(&["build", s(&src), "--out", s(&out), "--model", s(&no_model)], &needles);
        lab.refused(&["merge", s(&lab.p("shard")), "--out", s(&out)], &needles);
    }
}

#[test]
fn photos_that_are_devices_or_fifos_are_refused_without_hanging() {
    let lab = Lab::new(tokenizer());
    let good = lab.p("good.jpg");
    fs::copy(fixtures().join("images/photo.jpg"), &good).unwrap();
    let fifo = lab.p("photo.jpg");
    let has_fifo = cfg!(unix) && mkfifo(&fifo);
    let mut args = vec!["embed", "--image", "/dev/zero", s(&good)];
    if has_fifo {
        args.push(s(&fifo));
    }
    let r = lab.run(&args);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["errors"]["/dev/zero"], "not a regular file (it is a device); only regular files are read");
    assert!(v["images"][s(&good)].is_array());
    if has_fifo {
        assert_eq!(v["errors"][s(&fifo)], "not a regular file (it is a FIFO); only regular files are read");
    }
    let Some(_) = &lab.tokenizer else { return };
    let cat = lab.catalog("cat");
    lab.refused(&["query", "/dev/zero", "--catalog", s(&cat)], &["/dev/zero: not a regular file (it is a device)"]);
    if has_fifo {
        lab.refused(&["query", s(&fifo), "--catalog", s(&cat)], &["photo.jpg: not a regular file (it is a FIFO)"]);
    }
    lab.refused(&["query", s(&lab.root), "--catalog", s(&cat)], &["not a regular file (it is a folder)"]);
}

/// The core refuses these manifests itself, so the page (which loads catalogs through the same
/// `Catalog::from_parts`) never sees them either.
#[test]
fn the_core_refuses_manifests_that_name_other_files() {
    use clipmatch::search::catalog::VectorDtype;
    let catalog = clipmatch::search::synthetic::catalog(3, 8, 7, VectorDtype::I8).unwrap();
    let vectors = catalog.vectors_bytes();
    let manifest: serde_json::Value = serde_json::from_str(&catalog.manifest_json()).unwrap();
    let load = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut m = manifest.clone();
        edit(&mut m);
        clipmatch::Catalog::from_parts(m.to_string().as_bytes(), &vectors).map(|_| ()).map_err(|e| e.to_string())
    };
    assert_eq!(load(&|_| ()), Ok(()));
    assert_eq!(load(&|m| m["items"][2]["thumbnail"] = "thumbs/item-2.jpg".into()), Ok(()));
    for (edit, message) in [
        (
            &(|m: &mut serde_json::Value| m["items"][1]["id"] = "../../victim".into()) as &dyn Fn(&mut serde_json::Value),
            format!("invalid catalog: item 2: id \"../../victim\" is not allowed (it contains '/'): {RULE}"),
        ),
        (&|m| m["items"][0]["id"] = "".into(), format!("invalid catalog: item 1: id \"\" is not allowed (it is empty): {RULE}")),
        (&|m| m["items"][0]["id"] = "ITEM-1".into(), "invalid catalog: item ids \"ITEM-1\" and \"item-1\" differ only in case (their thumbnails would be one file on macOS and Windows)".into()),
        (&|m| m["items"][0]["id"] = "item-1".into(), "invalid catalog: item id \"item-1\" appears twice".into()),
        (&|m| m["items"][0]["thumbnail"] = "/etc/passwd".into(), "invalid catalog: item \"item-0\": thumbnail is \"/etc/passwd\"; it must be \"thumbs/item-0.jpg\" or absent".into()),
        (&|m| m["items"][0]["thumbnail"] = "thumbs/../../x.jpg".into(), "invalid catalog: item \"item-0\": thumbnail is \"thumbs/../../x.jpg\"; it must be \"thumbs/item-0.jpg\" or absent".into()),
        (&|m| m["vectors"]["file"] = "/dev/zero".into(), "invalid catalog: vectors.file is \"/dev/zero\"; it must be \"vectors.bin\"".into()),
    ] {
        assert_eq!(load(edit), Err(message));
    }
}

/// A FIFO named like an image is skipped with its reason, and a link to a parent folder is not
/// followed (it would make the walk endless).
#[cfg(unix)]
#[test]
fn a_source_folder_with_a_fifo_and_a_link_loop_builds_without_hanging() {
    let Some(tok) = tokenizer() else { return };
    let lab = Lab::new(Some(tok));
    let src = lab.products("src");
    fs::create_dir(src.join("more")).unwrap();
    std::os::unix::fs::symlink("..", src.join("more/loop")).unwrap();
    let fifo = src.join("waits.jpg");
    if !mkfifo(&fifo) {
        return;
    }
    let out = lab.p("cat");
    let before = snapshot(&lab.root);
    let r = lab.run(&["build", s(&src), "--out", s(&out)]);
    assert_eq!(r.code, Some(2), "the skip makes a non-zero exit:\n{}", r.stderr);
    let skip = format!("skipped {}: not a regular file (it is a FIFO); only regular files are read", fifo.display());
    assert!(r.stderr.lines().any(|l| l == skip), "{}", r.stderr);
    assert!(r.stderr.contains("did not follow 1 symbolic link(s) to folders under"), "{}", r.stderr);
    assert!(r.stdout.contains("3 products"), "{}", r.stdout);
    let after = snapshot(&lab.root);
    let added: Vec<_> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    assert!(added.iter().all(|p| p.starts_with("cat")), "{added:?}");
    assert!(before.iter().all(|(p, n)| after.get(p) == Some(n)));
}

#[test]
fn model_files_that_are_devices_fifos_or_oversized_are_refused_without_hanging() {
    let lab = Lab::new(None);
    let photo = lab.p("good.jpg");
    fs::copy(fixtures().join("images/photo.jpg"), &photo).unwrap();
    let weights = lab.model.join("model.safetensors");
    fs::remove_file(&weights).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &weights).unwrap();
    lab.refused(&["embed", "--image", s(&photo)], &["model.safetensors", "not a regular file (it is a device)"]);
    fs::remove_file(&weights).unwrap();
    fs::copy(fixtures().join("tiny-clip/model.safetensors"), &weights).unwrap();

    let config = lab.model.join("config.json");
    let original = fs::read(&config).unwrap();
    fs::remove_file(&config).unwrap();
    if mkfifo(&config) {
        lab.refused(&["embed", "--image", s(&photo)], &["config.json", "not a regular file (it is a FIFO)"]);
        fs::remove_file(&config).unwrap();
    }
    let mut big = original.clone();
    big.resize(2 << 20, b' ');
    fs::write(&config, &big).unwrap();
    lab.refused(&["embed", "--image", s(&photo)], &["config.json", "over the limit of 1048576 bytes"]);
    fs::write(&config, &original).unwrap();
    let r = lab.run(&["embed", "--image", s(&photo)]);
    assert_eq!(r.code, Some(0), "the restored model loads: {}", r.stderr);
}

#[test]
fn links_left_in_a_build_work_folder_are_never_followed() {
    let Some(tok) = tokenizer() else { return };
    let lab = Lab::new(Some(tok));
    let src = lab.products("src");
    let outside = lab.p("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("absolut-citron.jpg"), b"precious").unwrap();
    fs::write(outside.join("file"), b"also precious").unwrap();
    let (cat, work) = (lab.p("cat"), lab.p(".cat.build"));

    // The work folder, or its staging folder, is a link: refused, nothing written.
    std::os::unix::fs::symlink(&outside, &work).unwrap();
    lab.refused(&["build", s(&src), "--out", s(&cat)], &["refusing to use", ".cat.build: it is not a folder this tool made"]);
    fs::remove_file(&work).unwrap();
    fs::create_dir(&work).unwrap();
    std::os::unix::fs::symlink(&outside, work.join("out")).unwrap();
    lab.refused(&["build", s(&src), "--out", s(&cat)], &["refusing to use", "out: it is not a folder this tool made"]);
    fs::remove_file(work.join("out")).unwrap();

    // Its thumbnails folder and its checkpoint are links (as if left by a killed build): they
    // are removed, not followed, and the build writes only its own files.
    fs::create_dir(work.join("out")).unwrap();
    std::os::unix::fs::symlink(&outside, work.join("out/thumbs")).unwrap();
    std::os::unix::fs::symlink(outside.join("file"), work.join("checkpoint.bin")).unwrap();
    let before = snapshot(&outside);
    let r = lab.run(&["build", s(&src), "--out", s(&cat)]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(snapshot(&outside) == before, "a link in the work folder was followed: {:?}", changes(&before, &snapshot(&outside)));
    assert!(!work.exists(), "the work folder is removed once the catalog is in place");
    let thumbs: Vec<String> = fs::read_dir(cat.join("thumbs")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(thumbs.len(), 3, "{thumbs:?}");
    assert!(fs::symlink_metadata(cat.join("thumbs")).unwrap().is_dir());
}

#[test]
fn damaged_or_foreign_shard_folders_are_refused_in_one_line() {
    let Some(tok) = tokenizer() else { return };
    let lab = Lab::new(Some(tok));
    let src = lab.products("src");
    let shard = |i: usize| lab.p(&format!("shard-{i}"));
    for i in 0..2 {
        let spec = format!("{i}/2");
        let r = lab.run(&["build", s(&src), "--batch-size", "1", "--shard", &spec, "--out", s(&shard(i))]);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
    }
    let (s0, s1, out) = (shard(0), shard(1), lab.p("merged"));
    let merge = ["merge", s(&s0), s(&s1), "--out", s(&out)];

    // A thumbnail changed.
    let thumb = s0.join("thumbs/absolut-citron.jpg");
    let original = fs::read(&thumb).unwrap();
    fs::write(&thumb, b"\xff\xd8 not the thumbnail").unwrap();
    lab.refused(&merge, &["thumbs/absolut-citron.jpg does not match the sha256 in its shard.json: the shard is damaged"]);
    fs::write(&thumb, &original).unwrap();

    // The vectors file a link out of the folder; then cut short.
    let vectors = s1.join("vectors.f32");
    let bytes = fs::read(&vectors).unwrap();
    fs::write(lab.p("elsewhere.f32"), &bytes).unwrap();
    fs::remove_file(&vectors).unwrap();
    std::os::unix::fs::symlink(lab.p("elsewhere.f32"), &vectors).unwrap();
    lab.refused(&merge, &["cannot use the shard folder", "leads outside"]);
    fs::remove_file(&vectors).unwrap();
    fs::write(&vectors, &bytes[..bytes.len() - 1]).unwrap();
    lab.refused(&merge, &["cannot use the shard folder", "the shard is damaged"]);
    fs::write(&vectors, &bytes).unwrap();

    // shard.json cut short, or a catalog's manifest in its place.
    let manifest = s0.join("shard.json");
    let json = fs::read(&manifest).unwrap();
    fs::write(&manifest, &json[..json.len() / 2]).unwrap();
    lab.refused(&merge, &["cannot use the shard folder", "it is not a shard folder this version reads"]);
    fs::write(&manifest, &json).unwrap();

    // A shard of another input list (a product more).
    fs::copy(fixtures().join("images/gray.png"), src.join("zz-extra.png")).unwrap();
    let other = lab.p("other-1");
    let r = lab.run(&["build", s(&src), "--batch-size", "1", "--shard", "1/2", "--out", s(&other)]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    lab.refused(&["merge", s(&s0), s(&other), "--out", s(&out)], &["were made from different input lists"]);

    // The output may not be a shard folder; a shard build may not replace a catalog folder.
    lab.refused(&["merge", s(&s0), s(&s1), "--out", s(&s1)], &["refusing to write", "it is the shard folder"]);
    let r = lab.run(&merge);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    lab.refused(&["build", s(&src), "--shard", "0/2", "--out", s(&out)], &["refusing to replace", "not a shard folder"]);
}
