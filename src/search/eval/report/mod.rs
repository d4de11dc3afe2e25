//! The static report of an evaluation (`clipmatch eval --report DIR`): `index.html`, its charts
//! as SVG files, thumbnails of the worst misses' photos and products, and `report.json` (the
//! figures, which also marks the folder as a report). Built in memory as (file, bytes): the
//! caller supplies the photos' and thumbnails' bytes and writes the files.

mod charts;
mod html;

use serde::Serialize;

use crate::error::EvalError;
use crate::imaging::decode::{decode_rgb, DecodeLimits};
use crate::imaging::thumbnail::thumbnail_jpeg;
use crate::search::catalog::{Item, UtcSeconds};
use crate::search::eval::evaluation::Evaluation;
use crate::search::eval::tuning::TuneOptions;

/// The format `report.json` names.
pub const FORMAT: &str = "clipmatch-eval-report";
/// The file that marks a folder as a report (a replaceable output folder).
pub const MARKER_FILE: &str = "report.json";
pub const PAGE_FILE: &str = "index.html";
const ACCURACY_CHART: &str = "charts/accuracy-vs-text-weight.svg";
const CATALOG_SCORES_CHART: &str = "charts/best-scores-catalog.svg";
const TUNED_SCORES_CHART: &str = "charts/best-scores-tuned.svg";
/// Worst misses shown with pictures.
pub const MISSES_SHOWN: usize = 12;
/// Longest side of the photos' thumbnails in the report.
const THUMBNAIL_SIDE: u32 = 320;

/// What the report says about its inputs (as the user named them).
pub struct ReportContext<'a> {
    pub catalog: &'a str,
    pub photos: &'a str,
    pub model: &'a str,
    pub when: UtcSeconds,
    /// The catalog's items, in catalog order.
    pub items: &'a [Item],
    /// Each evaluated photo's label (its path as given), in evaluation order.
    pub photo_labels: &'a [String],
    pub skipped: usize,
    pub options: &'a TuneOptions,
    pub catalog_text_weight: f32,
}

/// The pictures written for the misses shown, by photo and by item.
pub(crate) struct ImageFiles {
    photos: Vec<Option<String>>,
    items: Vec<Option<String>>,
}

impl ImageFiles {
    fn photo(&self, p: usize) -> Option<&str> {
        self.photos.get(p).and_then(|f| f.as_deref())
    }

    fn item(&self, i: usize) -> Option<&str> {
        self.items.get(i).and_then(|f| f.as_deref())
    }
}

/// The report's files. `photo(p)` gives evaluated photo `p`'s bytes (thumbnailed here) and
/// `thumbnail(i)` item `i`'s catalog thumbnail (a JPEG, copied); either may be `None`, and
/// the page then says what is missing. `figures` (a JSON object: the `--json` document) is
/// written as `report.json`, with `"format"` added.
pub fn build_report(
    ev: &Evaluation,
    ctx: &ReportContext,
    figures: &impl Serialize,
    photo: impl Fn(usize) -> Option<Vec<u8>>,
    thumbnail: impl Fn(usize) -> Option<Vec<u8>>,
) -> Result<Vec<(String, Vec<u8>)>, EvalError> {
    let mut files = Vec::new();
    let mut images = ImageFiles { photos: vec![None; ctx.photo_labels.len()], items: vec![None; ctx.items.len()] };
    let limits = DecodeLimits::default();
    for m in &ev.misses[..ev.misses.len().min(MISSES_SHOWN)] {
        if images.photos[m.photo].is_none() {
            let jpeg = photo(m.photo).and_then(|b| decode_rgb(&b, &limits).ok()).and_then(|rgb| thumbnail_jpeg(&rgb, THUMBNAIL_SIDE).ok());
            if let Some(jpeg) = jpeg {
                let name = format!("images/photo-{}.jpg", m.photo);
                images.photos[m.photo] = Some(name.clone());
                files.push((name, jpeg));
            }
        }
        for i in m.truth.into_iter().chain([m.best]) {
            if images.items[i].is_none() {
                if let Some(jpeg) = thumbnail(i) {
                    let name = format!("images/item-{i}.jpg");
                    images.items[i] = Some(name.clone());
                    files.push((name, jpeg));
                }
            }
        }
    }
    let sum = ctx.options.weight_sum;
    files.push((ACCURACY_CHART.into(), charts::accuracy_vs_text_weight(ev, ctx.catalog_text_weight, sum)?.into_bytes()));
    files.push((CATALOG_SCORES_CHART.into(), charts::best_scores(&ev.catalog_scores)?.into_bytes()));
    if let Some(tuned) = &ev.tuned_scores {
        files.push((TUNED_SCORES_CHART.into(), charts::best_scores(tuned)?.into_bytes()));
    }
    files.push((PAGE_FILE.into(), html::page(ev, ctx, &images).into_bytes()));
    #[derive(Serialize)]
    struct Marked<'a, T> {
        format: &'static str,
        #[serde(flatten)]
        figures: &'a T,
    }
    let marked = serde_json::to_vec_pretty(&Marked { format: FORMAT, figures }).map_err(|e| EvalError::Option(e.to_string()))?;
    files.push((MARKER_FILE.into(), marked));
    Ok(files)
}
