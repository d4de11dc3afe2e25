//! Where `clipmatch eval`'s time goes: embedding the labelled photos once (read, decode,
//! preprocess, the vision tower in batches of 16: the core call `eval` makes) against all that
//! is computed from the vectors afterwards (similarities to the catalog; the four scorings;
//! every product left out; 5-fold cross-validated tuning over 41 weightings; the report's
//! charts, thumbnails and page). Each is timed over `--runs` runs (default 5); medians printed.
//!
//!     cargo run --release --example eval_phases -- MODEL_DIR CATALOG_DIR PHOTOS_DIR [--runs 5]
//!
//! PHOTOS_DIR holds one folder per catalog item (named by its id or name), as `eval` reads it.
//! The model is OpenAI CLIP on this crate's kernels (vision tower only, as `eval` loads it).

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    clipmatch::native_process::configure(); // as the CLI does
    use std::fs;
    use std::path::PathBuf;
    use std::time::Instant;

    use clipmatch::search::catalog::UtcSeconds;
    use clipmatch::search::eval::embed::{embed_photos, EmbedEvents};
    use clipmatch::search::eval::evaluation::weight_sum_of;
    use clipmatch::search::eval::report::{build_report, ReportContext};
    use clipmatch::search::eval::{evaluate, ItemLookup, Similarities, TuneOptions, Truth};
    use clipmatch::{Catalog, ClipModel, Embedder, PreprocessConfig, Towers};

    struct Quiet;
    impl EmbedEvents for Quiet {}

    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model_dir, catalog_dir, photos_dir] = [0, 1, 2].map(|i| PathBuf::from(args.get(i).expect("MODEL_DIR CATALOG_DIR PHOTOS_DIR")));
    let runs: usize = args.iter().position(|a| a == "--runs").map_or(5, |i| args[i + 1].parse().expect("runs"));

    let catalog = Catalog::from_parts(&fs::read(catalog_dir.join("catalog.json")).unwrap(), &fs::read(catalog_dir.join("vectors.bin")).unwrap())
        .expect("catalog");
    let lookup = ItemLookup::new(catalog.items());
    let mut photos: Vec<(PathBuf, Truth)> = Vec::new();
    let mut folders = vec![photos_dir.clone()];
    while let Some(dir) = folders.pop() {
        for entry in fs::read_dir(&dir).expect("photos folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("jpg")) {
                let folder = dir.file_name().unwrap().to_string_lossy();
                if let Ok(i) = lookup.find(&folder) {
                    photos.push((path, Truth::Item(i)));
                }
            }
        }
    }
    photos.sort_by(|a, b| a.0.cmp(&b.0));

    let t = Instant::now();
    let config = fs::read_to_string(model_dir.join("config.json")).expect("config.json");
    let preprocess = fs::read_to_string(model_dir.join("preprocessor_config.json")).expect("preprocessor_config.json");
    let weights = fs::read(model_dir.join("model.safetensors")).expect("model.safetensors");
    let model = ClipModel::load(&config, &weights, Some(Towers::VisionOnly)).expect("model");
    let embedder = Embedder::new(model, PreprocessConfig::from_json(&preprocess).expect("preprocessing"), None);
    let load = t.elapsed().as_secs_f64();

    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut embed_s, mut evaluate_s, mut report_s) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        let read = |i: usize| fs::read(&photos[i].0).map_err(|e| e.to_string());
        let vectors = embed_photos(&embedder, photos.len(), read, 16, &mut Quiet).expect("embedding");
        embed_s.push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let embedded = photos.iter().zip(vectors).map(|((_, truth), v)| (*truth, v.expect("every photo reads"))).collect();
        let sims = Similarities::new(&catalog, embedded).expect("similarities");
        let ranking = &catalog.manifest.ranking;
        let options = TuneOptions { confident_precision: 0.9, folds: 5, seed: 0, weight_sum: weight_sum_of(ranking), steps: TuneOptions::STEPS };
        let ev = evaluate(&sims, ranking, &options).expect("evaluation");
        evaluate_s.push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let labels: Vec<String> = photos.iter().map(|(p, _)| p.display().to_string()).collect();
        let ctx = ReportContext {
            catalog: "catalog",
            photos: "photos",
            model: "model",
            when: UtcSeconds(0),
            items: catalog.items(),
            photo_labels: &labels,
            skipped: 0,
            options: &options,
            catalog_text_weight: ranking.text_weight,
        };
        let thumbnail = |i: usize| fs::read(catalog_dir.join(catalog.items()[i].thumbnail.as_ref()?)).ok();
        let files = build_report(&ev, &ctx, &ev, |p| fs::read(&photos[p].0).ok(), thumbnail).expect("report");
        report_s.push(t.elapsed().as_secs_f64());
        assert!(files.len() > 4);
    }
    let (e, v, r) = (median(embed_s), median(evaluate_s), median(report_s));
    println!("{} photos of {} catalog items, {runs} runs, medians; model load {load:.2} s (once)", photos.len(), catalog.len());
    println!("embedding the photos     {:>9.3} s", e);
    println!("evaluating and tuning    {:>9.1} ms", v * 1e3);
    println!("the report               {:>9.1} ms", r * 1e3);
    println!("eval / embedding         {:>9.3}x (with the report; model load excluded on both sides)", (e + v + r) / e);
}

#[cfg(target_arch = "wasm32")]
fn main() {}
