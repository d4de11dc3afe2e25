//! `clipmatch eval` and `clipmatch tune` as a user runs them, on the committed tiny random
//! CLIP (its figures are meaningless, the machinery is real): the grocery catalog
//! (../shared/data/grocery-packages/iconic) against its labelled photos (photos/), the report
//! read back and parsed, the tuned manifest carried by `bundle`, and hostile inputs. Skipped
//! with a message where ../shared/data (CLIP's tokenizer, for `build`; the grocery data) is absent.

#![cfg(not(target_arch = "wasm32"))]

use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::shared_data;
use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_clipmatch");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// `clipmatch ARGS` with the tiny CLIP and CLIP's tokenizer; `None` when the tokenizer is absent.
fn clipmatch(args: &[&str]) -> Option<Output> {
    let tokenizer = shared_data().join("clip-vit-base-patch32/tokenizer.json");
    if !tokenizer.is_file() {
        eprintln!("skipped: {} is absent", tokenizer.display());
        return None;
    }
    let mut cmd = Command::new(EXE);
    cmd.args(args).env("CLIPMATCH_MODEL", fixture("tiny-clip")).env("CLIPMATCH_TOKENIZER", tokenizer);
    Some(cmd.env_remove("CLIPMATCH_CATALOG").env_remove("CLIPMATCH_ENGINE").output().expect("clipmatch runs"))
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "exit {:?}\nstdout:\n{}\nstderr:\n{}", o.status.code(), out(o), err(o));
    out(o)
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_file(p: &Path) -> Value {
    serde_json::from_slice(&fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The grocery catalog, built once for all tests of this file, and the photos folder.
struct Grocery {
    _dir: tempfile::TempDir,
    catalog: PathBuf,
    photos: PathBuf,
}

fn grocery() -> Option<&'static Grocery> {
    static GROCERY: OnceLock<Option<Grocery>> = OnceLock::new();
    GROCERY
        .get_or_init(|| {
            let data = shared_data().join("grocery-packages");
            if !data.join("photos").is_dir() {
                eprintln!("skipped: {} is absent", data.display());
                return None;
            }
            let dir = tempfile::tempdir().unwrap();
            let catalog = dir.path().join("grocery");
            ok(&clipmatch(&["build", s(&data.join("iconic")), "--name-from", "folder", "--out", s(&catalog)])?);
            Some(Grocery { _dir: dir, catalog, photos: data.join("photos") })
        })
        .as_ref()
}

/// A copy of a catalog folder (manifest, vectors, thumbnails).
fn copy_catalog(from: &Path, to: &Path) {
    fs::create_dir_all(to.join("thumbs")).unwrap();
    for name in ["catalog.json", "vectors.bin"] {
        fs::copy(from.join(name), to.join(name)).unwrap();
    }
    for e in fs::read_dir(from.join("thumbs")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join("thumbs").join(e.file_name())).unwrap();
    }
}

/// Every file under `dir`, by relative path.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().display().to_string(), fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// An HTML document read as a tree: its elements must nest properly (void elements aside);
/// gives every element's name and attributes, and the text between tags.
struct Html {
    elements: Vec<(String, BTreeMap<String, String>)>,
    text: String,
}

fn parse_html(doc: &str) -> Html {
    const VOID: [&str; 6] = ["meta", "img", "br", "link", "input", "hr"];
    let (mut elements, mut text, mut open) = (Vec::new(), String::new(), Vec::<String>::new());
    let mut rest = doc.strip_prefix("<!doctype html>").expect("starts with <!doctype html>");
    while let Some(lt) = rest.find('<') {
        text.push_str(&rest[..lt]);
        let gt = rest[lt..].find('>').expect("every tag closes") + lt;
        let tag = &rest[lt + 1..gt];
        rest = &rest[gt + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop().as_deref(), Some(name), "</{name}> closes the wrong element");
            continue;
        }
        let name: String = tag.chars().take_while(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
        let mut attrs = BTreeMap::new();
        let mut a = tag[name.len()..].trim();
        while !a.is_empty() {
            let key_end = a.find(|c: char| c == '=' || c.is_whitespace()).unwrap_or(a.len());
            let key = a[..key_end].to_string();
            a = a[key_end..].trim_start();
            let value = if let Some(v) = a.strip_prefix("=\"") {
                let end = v.find('"').expect("attribute values are quoted");
                a = v[end + 1..].trim_start();
                v[..end].to_string()
            } else {
                String::new()
            };
            attrs.insert(key, value);
        }
        if name == "style" {
            let end = rest.find("</style>").expect("style closes");
            rest = &rest[end + "</style>".len()..];
        } else if !VOID.contains(&name.as_str()) {
            open.push(name.clone());
        }
        elements.push((name, attrs));
    }
    text.push_str(rest);
    assert!(open.is_empty(), "unclosed elements: {open:?}");
    Html { elements, text }
}

/// The report's page parsed: no scripts, every picture a file of the report (charts SVG, the
/// others JPEG); returns the page's HTML and its parsed form.
fn check_report(dir: &Path) -> (String, Html) {
    let page = fs::read_to_string(dir.join("index.html")).unwrap();
    let html = parse_html(&page);
    assert!(!html.elements.iter().any(|(n, _)| n == "script"), "no scripts");
    let csp = html.elements.iter().find(|(n, a)| n == "meta" && a.get("http-equiv").is_some_and(|v| v == "Content-Security-Policy"));
    assert!(csp.expect("a CSP").1["content"].starts_with("default-src 'none'"));
    let mut charts = 0;
    for (_, a) in html.elements.iter().filter(|(n, _)| n == "img") {
        let src = &a["src"];
        assert!(!src.contains("..") && !src.starts_with('/'), "{src}");
        let bytes = fs::read(dir.join(src)).unwrap_or_else(|e| panic!("{src}: {e}"));
        if src.ends_with(".svg") {
            charts += 1;
            let svg = String::from_utf8(bytes).unwrap();
            assert!(svg.contains("<svg") && svg.contains("<text") && svg.trim_end().ends_with("</svg>"), "{src}");
        } else {
            assert_eq!(&bytes[..2], b"\xff\xd8", "{src} is a JPEG");
        }
        assert!(!a.get("alt").map_or(true, String::is_empty), "{src} has alt text");
    }
    assert!(charts >= 2, "charts present: {charts}");
    (page, html)
}

#[test]
fn eval_on_the_grocery_photos_prints_figures_and_writes_a_report() {
    let Some(g) = grocery() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("report");
    let Some(o) = clipmatch(&["eval", "--catalog", s(&g.catalog), "--photos", s(&g.photos), "--report", s(&report)]) else { return };
    let table = ok(&o);
    assert!(table.contains("100 photos: 100 of 20 catalog products (of 31 items), 0 of products not in the catalog"), "{table}");
    for row in ["image only", "name text only", "catalog's weights", "tuned (held out)"] {
        assert_eq!(table.lines().filter(|l| l.starts_with(row)).count(), 1, "{row}:\n{table}");
    }
    assert!(table.contains("report written to"), "{table}");

    let (_, html) = check_report(&report);
    assert_eq!(html.elements.iter().filter(|(n, a)| n == "img" && a["src"].ends_with(".svg")).count(), 3, "accuracy and two score charts");
    assert!(html.text.contains("Worst misses") && html.text.contains("Ranked first"), "misses shown");
    let marker = json_file(&report.join("report.json"));
    assert_eq!(marker["format"], "clipmatch-eval-report");
    assert_eq!(marker["evaluation"]["methods"].as_array().unwrap().len(), 4);

    // --json: the same figures; each photo named; the catalog's misses are what `query` says.
    let doc: Value = serde_json::from_str(&ok(&clipmatch(&["eval", "--catalog", s(&g.catalog), "--photos", s(&g.photos), "--json"]).unwrap())).unwrap();
    let ev = &doc["evaluation"];
    assert_eq!((ev["photos"].as_u64(), ev["products"].as_u64(), ev["catalog_items"].as_u64()), (Some(100), Some(20), Some(31)));
    assert_eq!(ev["methods"], marker["evaluation"]["methods"], "the same figures as the report's");
    assert_eq!(doc["photos"].as_array().unwrap().len(), 100);
    let misses = ev["misses"].as_array().unwrap();
    let top1 = ev["methods"][2]["ranking"]["top1"].as_f64().unwrap();
    assert_eq!(misses.len(), ((1.0 - top1) * 100.0).round() as usize, "one miss per photo not ranked first");
    for miss in misses.iter().take(2) {
        let label = doc["photos"][miss["photo"].as_u64().unwrap() as usize]["photo"].as_str().unwrap();
        let q: Value = serde_json::from_str(&ok(&clipmatch(&["query", s(&g.photos.join(label)), "--catalog", s(&g.catalog), "--json"]).unwrap())).unwrap();
        let first = &q["ranking"]["matches"][0];
        assert_eq!(first["id"], doc["items"][miss["best"].as_u64().unwrap() as usize]["id"], "{label}");
        assert!((first["score"].as_f64().unwrap() - miss["best_score"].as_f64().unwrap()).abs() < 1e-6, "{label}");
    }

    // The report folder is replaced as a whole; a folder that is not a report is not.
    ok(&clipmatch(&["eval", "--catalog", s(&g.catalog), "--photos", s(&g.photos), "--report", s(&report)]).unwrap());
    let precious = tmp.path().join("precious");
    fs::create_dir(&precious).unwrap();
    fs::write(precious.join("notes.txt"), "mine").unwrap();
    let o = clipmatch(&["eval", "--catalog", s(&g.catalog), "--photos", s(&g.photos), "--report", s(&precious)]).unwrap();
    assert!(!o.status.success() && err(&o).contains("is not a report folder"), "{}", err(&o));
    assert_eq!(fs::read_to_string(precious.join("notes.txt")).unwrap(), "mine");
    for inside in [g.catalog.join("report"), g.photos.join("report")] {
        let o = clipmatch(&["eval", "--catalog", s(&g.catalog), "--photos", s(&g.photos), "--report", s(&inside)]).unwrap();
        assert!(!o.status.success() && err(&o).contains("lies inside"), "{}", err(&o));
        assert!(!inside.exists());
    }
    let leftovers: Vec<_> = fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "no staging folders left: {leftovers:?}");
}

#[test]
fn tune_records_the_operating_point_in_place_and_bundle_carries_it() {
    let Some(g) = grocery() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("catalog");
    copy_catalog(&g.catalog, &cat);
    let before = tree(&cat);
    let Some(o) = clipmatch(&["tune", "--catalog", s(&cat), "--photos", s(&g.photos), "--confident-precision", "0.8"]) else { return };
    let said = ok(&o);
    assert!(said.contains("tuned (held out)") && said.contains("ranking.tuned says how"), "{said}");
    let after = tree(&cat);
    // Only the manifest changed, and in it only `ranking`.
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>());
    for (name, bytes) in &before {
        if name != "catalog.json" {
            assert!(after[name] == *bytes, "{name} changed");
        }
    }
    let (mut old, mut new) = (json_file(&g.catalog.join("catalog.json")), json_file(&cat.join("catalog.json")));
    let ranking = new["ranking"].clone();
    old.as_object_mut().unwrap().remove("ranking");
    new.as_object_mut().unwrap().remove("ranking");
    assert_eq!(old, new);
    let t = &ranking["tuned"];
    assert_eq!((t["photos"].as_u64(), t["products"].as_u64(), t["folds"].as_u64()), (Some(100), Some(20), Some(5)));
    assert_eq!(t["not_in_catalog_photos"], 0);
    assert_eq!(t["confident_precision_target"].as_f64().map(|x| x as f32), Some(0.8));
    for k in ["text_weight", "image_weight", "min_score"] {
        assert_eq!(ranking[k], t[k], "{k}: the catalog uses what was tuned");
    }
    let sum = ranking["text_weight"].as_f64().unwrap() + ranking["image_weight"].as_f64().unwrap();
    assert!((sum - 2.0).abs() < 1e-5, "the weights keep their sum: {sum}");
    for side in ["held_out", "before"] {
        for k in ["top1", "top5", "mrr"] {
            assert!((0.0..=1.0).contains(&t[side][k].as_f64().unwrap()), "{side}.{k}");
        }
    }
    let when = t["when"].as_str().unwrap();
    assert!(when.len() == 20 && when.ends_with('Z') && when.starts_with("20"), "{when}");
    let inspect = ok(&clipmatch(&["inspect", s(&cat)]).unwrap());
    assert!(inspect.contains("check        ok"), "{inspect}");

    // Evaluated again, the catalog's row is the tuned weights.
    let doc: Value = serde_json::from_str(&ok(&clipmatch(&["eval", "--catalog", s(&cat), "--photos", s(&g.photos), "--json"]).unwrap())).unwrap();
    assert_eq!(doc["evaluation"]["methods"][2]["weights"]["text"], ranking["text_weight"]);

    // `bundle` copies the manifest: ranking.tuned arrives unchanged.
    let bundle = tmp.path().join("bundle");
    ok(&clipmatch(&["bundle", "--catalog", s(&cat), "--out", s(&bundle)]).unwrap());
    assert_eq!(json_file(&bundle.join("catalog.json"))["ranking"], ranking);

    // --out: a tuned copy; the source catalog is untouched.
    let copy = tmp.path().join("copy");
    ok(&clipmatch(&["tune", "--catalog", s(&g.catalog), "--photos", s(&g.photos), "--out", s(&copy)]).unwrap());
    assert!(json_file(&copy.join("catalog.json"))["ranking"]["tuned"].is_object());
    assert!(json_file(&g.catalog.join("catalog.json"))["ranking"].get("tuned").is_none(), "source untouched");
    assert_eq!(tree(&copy)["vectors.bin"], before["vectors.bin"]);
}

/// A folder of labelled photos with problems: a photo outside any item's folder, a folder no
/// item is named, a truncated photo, a text file named .jpg.
#[test]
fn hostile_labelled_photos_are_skipped_and_counted_or_refused_in_one_line() {
    let Some(g) = grocery() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    let real = g.photos.join("Juice/Bravo-Apple-Juice/Bravo-Apple-Juice_001.jpg");
    let other = g.photos.join("Milk/Arla-Standard-Milk/Arla-Standard-Milk_001.jpg");
    for (dir, name, from) in [
        ("Juice/Bravo-Apple-Juice", "a.jpg", &real),
        ("arla-standard-milk", "b.jpg", &other),
        ("Unknown-Soda", "c.jpg", &real),
        ("", "loose.jpg", &real),
    ] {
        fs::create_dir_all(photos.join(dir)).unwrap();
        fs::copy(from, photos.join(dir).join(name)).unwrap();
    }
    let bytes = fs::read(&real).unwrap();
    fs::write(photos.join("Juice/Bravo-Apple-Juice/truncated.jpg"), &bytes[..bytes.len() / 3]).unwrap();
    fs::write(photos.join("arla-standard-milk/notes.jpg"), "not a photo").unwrap();
    let Some(o) = clipmatch(&["eval", "--catalog", s(&g.catalog), "--photos", s(&photos)]) else { return };
    assert_eq!(o.status.code(), Some(2), "skips make a non-zero exit\n{}", err(&o));
    let e = err(&o);
    assert!(e.contains("skipped 1 photo(s) labelled \"Unknown-Soda\": no catalog item has the id or name \"Unknown-Soda\""), "{e}");
    assert!(e.contains("truncated.jpg: the JPEG data is corrupt or truncated"), "{e}");
    assert!(e.contains("notes.jpg: not an image"), "{e}");
    assert!(e.contains("skipped 4 of 6 photos:") && e.contains("loose.jpg: not inside an item's folder"), "{e}");
    assert!(out(&o).contains("2 photos: 2 of 2 catalog products"), "{}", out(&o));
    let o = clipmatch(&["eval", "--catalog", s(&g.catalog), "--photos", s(&photos), "--allow-skips"]).unwrap();
    assert_eq!(o.status.code(), Some(0));

    // A CSV: by id, by name, not in the catalog (empty item), an unknown item.
    let list = tmp.path().join("labels.csv");
    let rows = "photo,item\nphotos/Juice/Bravo-Apple-Juice/a.jpg,bravo-apple-juice\nphotos/arla-standard-milk/b.jpg, Arla Standard Milk \nphotos/Unknown-Soda/c.jpg,\nphotos/loose.jpg,Nope\n";
    fs::write(&list, rows).unwrap();
    let o = clipmatch(&["eval", "--catalog", s(&g.catalog), "--photos", s(&list), "--json"]).unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("row 5: photos/loose.jpg: no catalog item has the id or name \"Nope\""), "{}", err(&o));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    let ev = &doc["evaluation"];
    assert_eq!((ev["in_catalog_photos"].as_u64(), ev["not_in_catalog_photos"].as_u64()), (Some(2), Some(1)));
    assert_eq!(doc["photos"][1]["item"], "arla-standard-milk");
    assert_eq!(doc["photos"][2]["item"], Value::Null);
    assert_eq!(doc["skipped"][0]["photo"], "photos/loose.jpg");

    // One-line refusals.
    let refused = |args: &[&str], says: &str| {
        let o = clipmatch(args).unwrap();
        let e = err(&o);
        assert_eq!(o.status.code(), Some(1), "{e}");
        assert!(e.starts_with("error: ") && e.contains(says), "expected {says:?} in:\n{e}");
        assert_eq!(e.trim_end().lines().count(), 1, "one line:\n{e}");
    };
    let cat = s(&g.catalog);
    let bad = |name: &str, content: &str| {
        let p = tmp.path().join(name);
        fs::write(&p, content).unwrap();
        p
    };
    let header = bad("header.csv", "image,product\na.jpg,x\n");
    refused(&["eval", "--catalog", cat, "--photos", s(&header)], "the first line must name the columns photo,item");
    let ragged = bad("ragged.csv", "photo,item\nphotos/loose.jpg,bravo-apple-juice,extra\n");
    refused(&["eval", "--catalog", cat, "--photos", s(&ragged)], "row 2");
    let no_photo = bad("nophoto.csv", "photo,item\n ,bravo-apple-juice\n");
    refused(&["eval", "--catalog", cat, "--photos", s(&no_photo)], "row 2 has no photo");
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    refused(&["eval", "--catalog", cat, "--photos", s(&empty)], "no labelled photos");
    refused(&["eval", "--catalog", cat, "--photos", s(&tmp.path().join("absent"))], "is neither a folder of labelled photos nor a CSV");
    refused(&["eval", "--catalog", cat, "--photos", s(&photos), "--confident-precision", "1.5"], "must be above 0 and at most 1");
    let o = Command::new(EXE)
        .args(["eval", "--catalog", cat, "--photos", s(&photos)])
        .env("CLIPMATCH_MODEL", fixture("tiny-clip-vision-f16"))
        .output()
        .unwrap();
    assert!(err(&o).contains("cannot be used with the model") && err(&o).contains("not with the loaded model"), "{}", err(&o));

    // tune with photos of one product: refused, the catalog untouched.
    let one = tmp.path().join("one");
    fs::create_dir_all(one.join("bravo-apple-juice")).unwrap();
    fs::copy(&real, one.join("bravo-apple-juice/a.jpg")).unwrap();
    let cat_copy = tmp.path().join("cat");
    copy_catalog(&g.catalog, &cat_copy);
    let before = tree(&cat_copy);
    refused(&["tune", "--catalog", s(&cat_copy), "--photos", s(&one)], "tuning needs photos of at least 2 catalog products");
    assert!(tree(&cat_copy) == before, "catalog untouched");
}

/// Names and paths in the report are text, never markup: an item named like HTML, a photo file
/// and a catalog folder with markup characters in their names.
#[test]
fn the_report_escapes_what_it_shows() {
    let Some(g) = grocery() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let photo = g.photos.join("Juice/Bravo-Apple-Juice/Bravo-Apple-Juice_001.jpg");
    fs::copy(&photo, tmp.path().join("p.jpg")).unwrap();
    fs::copy(g.photos.join("Milk/Arla-Standard-Milk/Arla-Standard-Milk_001.jpg"), tmp.path().join("q.jpg")).unwrap();
    let list = tmp.path().join("products.csv");
    fs::write(&list, "image,name,id\np.jpg,\"<img src=x onerror=alert(1)>\",evil\nq.jpg,\"Tom & \"\"Jerry's\"\" <b>milk</b>\",tom\n").unwrap();
    let cat = tmp.path().join("c<i>\"&'");
    let Some(o) = clipmatch(&["build", s(&list), "--out", s(&cat), "--min-score=-10"]) else { return };
    ok(&o);
    fs::copy(&photo, tmp.path().join("a<b>&c.jpg")).unwrap();
    let labels = tmp.path().join("labels.csv");
    fs::write(&labels, "photo,item\np.jpg,evil\nq.jpg,tom\na<b>&c.jpg,\n").unwrap();
    let report = tmp.path().join("report");
    ok(&clipmatch(&["eval", "--catalog", s(&cat), "--photos", s(&labels), "--report", s(&report)]).unwrap());
    let (page, html) = check_report(&report);
    // The photo of a product not in the catalog is a confident match (threshold -10): a miss
    // shown with its file name and the item ranked first.
    assert!(page.contains("a&lt;b&gt;&amp;c.jpg"), "photo name escaped");
    assert!(!page.contains("a<b>&c") && !page.contains("<img src=x") && !page.contains("<b>milk"), "nothing unescaped");
    assert!(html.text.contains("c&lt;i&gt;\"&amp;'") || html.text.contains("c&lt;i&gt;&quot;&amp;'"), "catalog path escaped");
    let shown = html.text.contains("&lt;img src=x onerror=alert(1)&gt;") || html.text.contains("Tom &amp; \"Jerry's\" &lt;b&gt;milk&lt;/b&gt;");
    assert!(shown, "the item ranked first is named, escaped");
    for (_, a) in html.elements.iter().filter(|(n, _)| n == "img") {
        assert!(a["src"].starts_with("images/") || a["src"].starts_with("charts/"), "{a:?}");
    }
}
