//! Item fields, as a shop uses them: a product list's extra columns (`url`, `price`, `sku`, ...)
//! kept by `build` in the manifest, carried by `query --json`, shown by `inspect`, kept through
//! `build --update` and `build --shard` + `merge`; odd values refused in one line; catalogs
//! written before fields existed still read. Uses the committed tiny random CLIP with the real
//! tokenizer and the grocery photos from ../shared/data (skipped with a message where absent).

#![cfg(not(target_arch = "wasm32"))]

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::cli::{ok, refused, s};
use common::*;

const EXE: &str = env!("CARGO_BIN_EXE_clipmatch");

fn data() -> Option<(PathBuf, PathBuf)> {
    let tokenizer = shared_data().join("clip-vit-base-patch32/tokenizer.json");
    let iconic = shared_data().join("grocery-packages/iconic");
    if tokenizer.is_file() && iconic.is_dir() {
        Some((tokenizer, iconic))
    } else {
        eprintln!("skipped: {} or {} is absent", tokenizer.display(), iconic.display());
        None
    }
}

fn run(args: &[&str], tokenizer: &Path) -> Output {
    Command::new(EXE)
        .args(args)
        .env("CLIPMATCH_MODEL", Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip"))
        .env("CLIPMATCH_TOKENIZER", tokenizer)
        .env_remove("CLIPMATCH_ENGINE")
        .stdin(Stdio::null())
        .output()
        .expect("clipmatch runs")
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(dir.join("catalog.json")).unwrap()).unwrap()
}

/// Six products' photos copied beside a list, and their relative paths.
fn photos(iconic: &Path, to: &Path) -> Vec<String> {
    let mut found: Vec<PathBuf> = Vec::new();
    for group in ["Juice", "Milk"] {
        for product in fs::read_dir(iconic.join(group)).unwrap() {
            let p = product.unwrap().path();
            let jpg = fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()).find(|f| f.extension().is_some_and(|x| x == "jpg"));
            found.extend(jpg);
        }
    }
    found.sort();
    found.truncate(6);
    fs::create_dir_all(to.join("img")).unwrap();
    found
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let rel = format!("img/{i}.jpg");
            fs::copy(p, to.join(&rel)).unwrap();
            rel
        })
        .collect()
}

/// A CSV list: image, name, url, price, sku (the last two left empty for some rows), and a
/// column whose cells hold a comma and a quote.
fn csv_list(images: &[String], price_of_first: &str) -> String {
    let mut out = String::from("image,name,url,price,sku,note\n");
    for (i, image) in images.iter().enumerate() {
        let price = if i == 0 { price_of_first.to_string() } else { format!("{}.99", i + 1) };
        let sku = if i % 2 == 0 { format!("SKU-{i}") } else { String::new() };
        out += &format!("{image},Product {i},https://shop.example/p/{i},{price},{sku},\"a, \"\"quoted\"\" note\"\n");
    }
    out
}

#[test]
fn list_columns_become_item_fields_kept_through_updates_shards_and_queries() {
    let Some((tok, iconic)) = data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap();
    let images = photos(&iconic, &root);
    let list = root.join("list.csv");
    fs::write(&list, csv_list(&images, "1.99")).unwrap();
    let catalog = root.join("catalog");
    ok(&run(&["build", s(&list), "--updatable", "--out", s(&catalog)], &tok));

    let m = manifest(&catalog);
    let first = &m["items"][0];
    assert_eq!(first["fields"], serde_json::json!({"url": "https://shop.example/p/0", "price": "1.99", "sku": "SKU-0", "note": "a, \"quoted\" note"}));
    assert_eq!(m["items"][1]["fields"].get("sku"), None, "an empty cell is no field");

    let photo = root.join(&images[2]);
    let out = ok(&run(&["query", s(&photo), "--catalog", s(&catalog), "--json", "-k", "6"], &tok));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let matches = json["ranking"]["matches"].as_array().unwrap();
    assert_eq!(matches.len(), 6);
    for m in matches {
        let i: usize = m["id"].as_str().unwrap().trim_start_matches("product-").parse().unwrap();
        assert_eq!(m["fields"]["url"], format!("https://shop.example/p/{i}"), "{m}");
    }

    let shown = ok(&run(&["inspect", s(&catalog)], &tok));
    assert!(shown.contains("fields       \"note\": 6 of 6 items"), "{shown}");
    assert!(shown.contains("\"sku\": 3 of 6 items (e.g. \"SKU-0\")"), "{shown}");

    // An update that changes only a price: the field changes, every vector is reused.
    fs::write(&list, csv_list(&images, "0.99")).unwrap();
    let updated = root.join("updated");
    let o = ok(&run(&["build", s(&list), "--update", s(&catalog), "--out", s(&updated)], &tok));
    assert!(o.contains("embedded 0 images and 0 names; reused 6 images and 6 names"), "{o}");
    assert_eq!(manifest(&updated)["items"][0]["fields"]["price"], "0.99");
    assert_eq!(fs::read(updated.join("vectors.bin")).unwrap(), fs::read(catalog.join("vectors.bin")).unwrap());

    // Two shards merged: the fields of both halves, as the unsharded build has them.
    let whole = root.join("whole");
    ok(&run(&["build", s(&list), "--updatable", "--batch-size", "2", "--out", s(&whole)], &tok));
    let (a, b) = (root.join("shard-0"), root.join("shard-1"));
    ok(&run(&["build", s(&list), "--updatable", "--batch-size", "2", "--shard", "0/2", "--out", s(&a)], &tok));
    ok(&run(&["build", s(&list), "--updatable", "--batch-size", "2", "--shard", "1/2", "--out", s(&b)], &tok));
    let merged = root.join("merged");
    ok(&run(&["merge", s(&b), s(&a), "--out", s(&merged)], &tok));
    assert_eq!(fs::read(merged.join("catalog.json")).unwrap(), fs::read(whole.join("catalog.json")).unwrap());
    assert_eq!(manifest(&merged)["items"][5]["fields"]["url"], "https://shop.example/p/5");
}

#[test]
fn json_lists_keep_numbers_as_text_and_odd_values_are_refused_in_one_line() {
    let Some((tok, iconic)) = data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap();
    let images = photos(&iconic, &root);
    let list = root.join("list.json");
    let write = |extra: serde_json::Value| {
        let mut rows: Vec<serde_json::Value> = images.iter().enumerate().map(|(i, im)| serde_json::json!({"image": im, "name": format!("P {i}")})).collect();
        for (k, v) in extra.as_object().unwrap() {
            rows[1][k] = v.clone();
        }
        fs::write(&list, serde_json::to_vec(&rows).unwrap()).unwrap();
    };
    let out = root.join("catalog");
    write(serde_json::json!({"price": 12.5, "in_stock": true, "sku": null, "url": "/p/1"}));
    ok(&run(&["build", s(&list), "--out", s(&out)], &tok));
    assert_eq!(manifest(&out)["items"][1]["fields"], serde_json::json!({"price": "12.5", "in_stock": "true", "url": "/p/1"}));
    assert_eq!(manifest(&out)["items"][0].get("fields"), None, "no fields, no key: such manifests are written as before");

    write(serde_json::json!({"tags": ["a", "b"]}));
    refused(&run(&["build", s(&list), "--out", s(&out)], &tok), "list.json: entry 2: field \"tags\" is a JSON array; fields must be text, numbers or booleans");
    write(serde_json::json!({"Name": "x"}));
    refused(&run(&["build", s(&list), "--out", s(&out)], &tok), "entry 2: field \"Name\" is named like the reserved \"name\" but for case");
    write(serde_json::json!({"thumbnail": "x"}));
    refused(&run(&["build", s(&list), "--out", s(&out)], &tok), "entry 2: field \"thumbnail\" is reserved by the catalog");
    write(serde_json::json!({"url": "x".repeat(3000)}));
    refused(&run(&["build", s(&list), "--out", s(&out)], &tok), "entry 2: field \"url\" is longer than 2048 bytes");
    write(serde_json::json!({"name": 7}));
    refused(&run(&["build", s(&list), "--out", s(&out)], &tok), "entry 2: \"name\" must be text, not 7");
    let csv = root.join("twice.csv");
    fs::write(&csv, format!("image,name,sku,sku\n{},a,1,2\n", images[0])).unwrap();
    refused(&run(&["build", s(&csv), "--out", s(&out)], &tok), "twice.csv: the header names the column \"sku\" twice");

    // A manifest whose fields break the rules (edited by hand) is refused on reading.
    write(serde_json::json!({"sku": "A"}));
    ok(&run(&["build", s(&list), "--out", s(&out)], &tok));
    let mut m = manifest(&out);
    m["items"][1]["fields"]["ID"] = "x".into();
    fs::write(out.join("catalog.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    refused(&run(&["inspect", s(&out)], &tok), "item \"p-1\": field \"ID\" is named like the reserved \"id\" but for case");
}

#[test]
fn lists_with_a_byte_order_mark_are_read_and_keys_given_twice_refused() {
    let Some((tok, iconic)) = data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap();
    let images = photos(&iconic, &root);
    let out = root.join("catalog");
    let rows: Vec<serde_json::Value> = images.iter().enumerate().map(|(i, im)| serde_json::json!({"image": im, "name": format!("P {i}")})).collect();
    let json = root.join("list.json");
    fs::write(&json, format!("\u{feff}{}", serde_json::to_string_pretty(&rows).unwrap())).unwrap();
    ok(&run(&["build", s(&json), "--out", s(&out)], &tok));
    let plain = fs::read(out.join("catalog.json")).unwrap();
    let csv = root.join("list.csv");
    let lines: Vec<String> = images.iter().enumerate().map(|(i, im)| format!("{im},P {i}\n")).collect();
    fs::write(&csv, format!("\u{feff}image,name\n{}", lines.concat())).unwrap();
    ok(&run(&["build", s(&csv), "--out", s(&out)], &tok));
    assert_eq!(fs::read(out.join("catalog.json")).unwrap(), plain, "the same catalog from either list");

    // A key given twice (the last would win silently, so a url could flip): refused, naming the entry.
    let twice = format!(
        "[{{\"image\": {:?}, \"name\": \"A\"}},\n {{\"image\": {:?}, \"url\": \"https://shop.example/good\", \"name\": \"B\", \"url\": \"https://evil.example/\"}}]",
        images[0], images[1]
    );
    fs::write(&json, twice).unwrap();
    refused(&run(&["build", s(&json), "--out", s(&out)], &tok), "list.json: expected a JSON array of {\"image\", \"name\", \"description\"?, ...} objects: entry 2 gives the key \"url\" twice at line 2");
    fs::write(&json, format!("[{{\"image\": {:?}, \"name\": \"A\", \"name\": \"B\"}}]", images[0])).unwrap();
    refused(&run(&["build", s(&json), "--out", s(&out)], &tok), "entry 1 gives the key \"name\" twice");
}

#[test]
fn long_names_and_descriptions_are_refused_as_the_list_is_read() {
    let Some((tok, iconic)) = data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap();
    let images = photos(&iconic, &root);
    let out = root.join("catalog");
    let list = root.join("list.csv");
    let write = |name: &str, description: &str| {
        fs::write(&list, format!("image,name,description\n{},A,\n{},{name},{description}\n", images[0], images[1])).unwrap();
    };
    write(&"n".repeat(1024), &"d".repeat(16 * 1024));
    ok(&run(&["build", s(&list), "--out", s(&out)], &tok));
    write(&"n".repeat(1025), "");
    refused(&run(&["build", s(&list), "--out", s(&out)], &tok), "list.csv: row 3: its name is 1025 bytes long; a name may have at most 1024");
    write("B", &"d".repeat(16 * 1024 + 1));
    refused(&run(&["build", s(&list), "--out", s(&out)], &tok), "list.csv: row 3: its description is 16385 bytes long; a description may have at most 16384");
    // A 20 MB name is refused as its row is read, in a moment and in little memory.
    write(&"n".repeat(20 << 20), "");
    let started = std::time::Instant::now();
    refused(&run(&["build", s(&list), "--out", s(&out)], &tok), "list.csv: row 3: its name is 20971520 bytes long");
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
    let json = root.join("list.json");
    let rows = serde_json::json!([{"image": images[0], "name": "A"}, {"image": images[1], "name": "B", "description": "d".repeat(16 * 1024 + 1)}]);
    fs::write(&json, rows.to_string()).unwrap();
    refused(&run(&["build", s(&json), "--out", s(&out)], &tok), "list.json: entry 2: its description is 16385 bytes long");
}

#[test]
fn ids_are_transliterated_names_and_an_update_keeps_the_ids_it_finds() {
    let Some((tok, iconic)) = data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap();
    let images = photos(&iconic, &root);
    let names = ["Café Crème", "Молоко 1 л", "咖啡", "Crème Brûlée", "Jus d'orange", "Ñandú"];
    let list = root.join("list.json");
    let rows: Vec<serde_json::Value> = images.iter().zip(names).map(|(im, n)| serde_json::json!({"image": im, "name": n})).collect();
    fs::write(&list, serde_json::to_vec(&rows).unwrap()).unwrap();
    let catalog = root.join("catalog");
    ok(&run(&["build", s(&list), "--updatable", "--out", s(&catalog)], &tok));
    let ids: Vec<String> = manifest(&catalog)["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids[0], "cafe-creme");
    assert_eq!(ids[1], "moloko-1-l");
    assert!(ids[2] != "item" && !ids[2].starts_with("item-"), "{ids:?}");
    assert_eq!(&ids[3..], ["creme-brulee", "jus-d-orange", "nandu"]);

    // A catalog made by an older version (its ids slugged otherwise): an update keeps its ids;
    // a product new to the list gets the new kind.
    let mut m = manifest(&catalog);
    for (item, old) in m["items"].as_array_mut().unwrap().iter_mut().zip(["caf-cr-me", "item", "item-2"]) {
        let id = item["id"].as_str().unwrap().to_string();
        fs::rename(catalog.join(format!("thumbs/{id}.jpg")), catalog.join(format!("thumbs/{old}.jpg"))).unwrap();
        item["id"] = old.into();
        item["thumbnail"] = format!("thumbs/{old}.jpg").into();
    }
    fs::write(catalog.join("catalog.json"), serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let mut rows = rows;
    rows.swap(0, 1);
    rows.push(serde_json::json!({"image": images[0], "name": "Café au lait"}));
    fs::write(&list, serde_json::to_vec(&rows).unwrap()).unwrap();
    let updated = root.join("updated");
    ok(&run(&["build", s(&list), "--update", s(&catalog), "--out", s(&updated)], &tok));
    let u = manifest(&updated);
    let ids: Vec<&str> = u["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["item", "caf-cr-me", "item-2", "creme-brulee", "jus-d-orange", "nandu", "cafe-au-lait"]);
    assert_eq!(fs::read(updated.join("thumbs/caf-cr-me.jpg")).unwrap(), fs::read(catalog.join("thumbs/caf-cr-me.jpg")).unwrap());
    ok(&run(&["inspect", s(&updated)], &tok));
}

#[test]
fn a_bundle_holds_no_local_path() {
    let Some((tok, iconic)) = data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap();
    let source = root.join("home-of-a-shopkeeper");
    let images = photos(&iconic, &source);
    // The list names its images by absolute paths, and has descriptions the page does not show.
    let list = root.join("list.csv");
    let lines: Vec<String> = images.iter().enumerate().map(|(i, im)| format!("{},Product {i},About {i},/p/{i}\n", source.join(im).display())).collect();
    fs::write(&list, format!("image,name,description,url\n{}", lines.concat())).unwrap();
    let catalog = root.join("catalog");
    ok(&run(&["build", s(&list), "--updatable", "--out", s(&catalog)], &tok));
    assert!(fs::read_to_string(catalog.join("catalog.json")).unwrap().contains(s(&source)), "the catalog keeps the paths for `build --update`");
    let bundle = root.join("bundle");
    ok(&run(&["bundle", "--catalog", s(&catalog), "--out", s(&bundle)], &tok));

    let needle = s(&source).as_bytes();
    let mut files = vec![bundle.clone()];
    let mut seen = 0;
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let bytes = fs::read(&p).unwrap();
        assert!(!bytes.windows(needle.len()).any(|w| w == needle), "{} holds {}", p.display(), source.display());
        seen += 1;
    }
    assert!(seen > 6, "{seen} files");
    let m = manifest(&bundle);
    let first = &m["items"][0];
    assert_eq!((first.get("image"), first.get("description"), m.get("sources")), (None, None, None), "{m}");
    assert_eq!((&first["name"], &first["fields"]["url"], &first["thumbnail"]), (&"Product 0".into(), &"/p/0".into(), &"thumbs/product-0.jpg".into()));
    ok(&run(&["inspect", s(&bundle)], &tok));
}

/// A list within every field limit whose catalog.json would still be larger than the limit every
/// reader applies (1,200 rows of 30 fields of 2,000 bytes) is refused before any model runs (the
/// tokenizer named here does not even exist), in one line naming the figure; nothing is written.
#[test]
fn a_list_whose_catalog_would_be_too_large_to_read_is_refused_before_embedding() {
    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("big.csv");
    let keys: Vec<String> = (0..30).map(|k| format!("f{k}")).collect();
    let cells = vec!["v".repeat(2000); 30].join(",");
    let rows: Vec<String> = (0..1200).map(|i| format!("img/{i}.jpg,Product {i},{cells}")).collect();
    fs::write(&list, format!("image,name,{}\n{}\n", keys.join(","), rows.join("\n"))).unwrap();
    let out = tmp.path().join("catalog");
    let o = run(&["build", s(&list), "--out", s(&out)], &tmp.path().join("no-tokenizer.json"));
    refused(&o, "big.csv: this list's catalog.json would take at least 72.9 MB, over the 64 MiB (67.1 MB) a catalog's manifest may take: shorten");
    assert!(!out.exists());
}
