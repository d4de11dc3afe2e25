//! `clipmatch eval`: how well a catalog finds the products in labelled photos: a table on
//! stdout (or `--json`), and with `--report DIR` a static HTML report with charts.

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clipmatch::search::eval::report::{build_report, ReportContext};
use clipmatch::search::eval::Evaluation;
use serde::Serialize;

use super::catalog_dir;
use super::{files, shown};
use super::labelled_photos::{measure, Measured, PhotoArgs};
use super::output_dir::{Kind, StagedDir};

#[derive(clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    input: PhotoArgs,
    /// Print the figures as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write a static HTML report with charts into this folder (replaced atomically if it
    /// exists and is a report folder; it may not be, contain or lie inside an input).
    #[arg(long)]
    report: Option<PathBuf>,
}

fn pct(x: Option<f32>) -> String {
    x.map_or_else(|| "-".into(), |x| format!("{:.1}%", x * 100.0))
}

/// The figures as a table, and what the tuned choice is.
pub fn print_table(ev: &Evaluation) {
    println!(
        "{} photos: {} of {} catalog products (of {} items), {} of products not in the catalog",
        ev.photos, ev.in_catalog_photos, ev.products, ev.catalog_items, ev.not_in_catalog_photos
    );
    println!(
        "{:<18} {:>15} {:>6} {:>6} {:>6} {:>9}   {:>9} {:>7}   {:>9} {:>7}",
        "", "text / image", "top-1", "top-5", "MRR", "threshold", "confident", "", "not in", ""
    );
    println!(
        "{:<18} {:>15} {:>6} {:>6} {:>6} {:>9}   {:>9} {:>7}   {:>9} {:>7}",
        "scoring", "weights", "", "", "", "", "precision", "recall", "precision", "recall"
    );
    for m in &ev.methods {
        let t = m.threshold;
        println!(
            "{:<18} {:>15} {:>6} {:>6} {:>6.3} {:>9}   {:>9} {:>7}   {:>9} {:>7}",
            m.method.label(),
            format!("{:.3} / {:.3}", m.weights.text, m.weights.image),
            pct(Some(m.ranking.top1)),
            pct(Some(m.ranking.top5)),
            m.ranking.mrr,
            m.min_score.map_or_else(|| "-".into(), |s| format!("{s:.4}")),
            pct(t.and_then(|t| t.confident_precision)),
            pct(t.and_then(|t| t.confident_recall)),
            pct(t.and_then(|t| t.not_in_catalog_precision)),
            pct(t.and_then(|t| t.not_in_catalog_recall)),
        );
    }
    println!("(threshold figures: each photo asked with its product in the catalog and again with it left out)");
    match &ev.tuned {
        Some(t) => {
            let p = t.point;
            println!(
                "tuned on all photos: text {:.3}, image {:.3}, threshold {:.4} for confident matches right {} of the time{}; \
                 the tuned row is measured on products held out of the choice ({} folds)",
                p.weights.text,
                p.weights.image,
                p.min_score,
                pct(Some(ev.confident_precision_target)),
                if p.target_met { "" } else { " (not reached on these photos: the closest threshold)" },
                t.folds
            );
        }
        None => println!("not tuned: tuning needs photos of at least 2 catalog products"),
    }
}

/// A photo as the JSON names it.
#[derive(Serialize)]
struct PhotoEntry<'a> {
    photo: &'a str,
    item: Option<&'a str>,
}

/// A skipped photo and why.
#[derive(Serialize)]
struct SkipEntry<'a> {
    photo: &'a str,
    reason: &'a str,
}

/// An item as the JSON names it.
#[derive(Serialize)]
struct ItemEntry<'a> {
    id: &'a str,
    name: &'a str,
}

/// The figures as one JSON document, with photos and items named (the evaluation refers to them
/// by position). Serialised as is, so f32 figures read as they were computed (0.55, not
/// 0.550000011920929).
#[derive(Serialize)]
pub struct Document<'a> {
    catalog: String,
    photos_source: String,
    model: &'a str,
    when: String,
    items: Vec<ItemEntry<'a>>,
    photos: Vec<PhotoEntry<'a>>,
    skipped: Vec<SkipEntry<'a>>,
    evaluation: &'a Evaluation,
}

pub fn document<'a>(m: &'a Measured, args: &PhotoArgs) -> Document<'a> {
    let items = m.catalog.items();
    Document {
        catalog: args.catalog.display().to_string(),
        photos_source: args.photos.display().to_string(),
        model: &m.model_name,
        when: m.when.to_string(),
        items: items.iter().map(|i| ItemEntry { id: &i.id, name: &i.name }).collect(),
        photos: m.photos.iter().map(|p| PhotoEntry { photo: &p.label, item: p.truth.item().map(|i| items[i].id.as_str()) }).collect(),
        skipped: m.skipped.iter().map(|s| SkipEntry { photo: &s.label, reason: &s.reason }).collect(),
        evaluation: &m.evaluation,
    }
}

pub fn run(args: EvalArgs) -> Result<ExitCode> {
    let input = &args.input;
    let staged = match &args.report {
        Some(dir) => Some(StagedDir::new(
            dir,
            Kind::Report,
            &[("catalog folder", &input.catalog), ("labelled photos", &input.photos), ("model folder", &input.model.model)],
        )?),
        None => None,
    };
    let m = measure(input)?;
    let doc = document(&m, input);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_table(&m.evaluation);
    }
    if let (Some(staged), Some(dir)) = (staged, &args.report) {
        let labels: Vec<String> = m.photos.iter().map(|p| p.label.clone()).collect();
        let catalog_text = m.catalog.manifest.ranking.text_weight;
        let ctx = ReportContext {
            catalog: &input.catalog.display().to_string(),
            photos: &input.photos.display().to_string(),
            model: &m.model_name,
            when: m.when,
            items: m.catalog.items(),
            photo_labels: &labels,
            skipped: m.skipped.len(),
            options: &m.options,
            catalog_text_weight: catalog_text,
        };
        let max = 64 << 20;
        let photo = |p: usize| files::read_regular(&m.photos[p].path, max).ok();
        let thumbnail = |i: usize| {
            let t = m.catalog.items()[i].thumbnail.as_ref()?;
            catalog_dir::read_thumbnail(&input.catalog, t, m.catalog.manifest.thumbnail_side()).ok()
        };
        let written = build_report(&m.evaluation, &ctx, &doc, photo, thumbnail)?;
        for (name, bytes) in &written {
            let path = staged.path().join(name);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        }
        staged.commit()?;
        let report = dir.join(clipmatch::search::eval::report::PAGE_FILE);
        if args.json {
            eprintln!("report written to {}", shown::path(&report));
        } else {
            println!("report written to {}", shown::path(&report));
        }
    }
    Ok(m.finish(input.allow_skips))
}
