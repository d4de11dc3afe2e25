//! The report's charts as SVG (plotters' SVG backend: text as `<text>`, escaped by plotters;
//! no fonts or scripts): ranking quality along the text weight, and the best scores that the
//! "no confident match" threshold has to separate.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::coord::types::RangedCoordf32;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::EvalError;
use crate::search::eval::evaluation::{BestScores, Evaluation};

const WIDTH: u32 = 760;
const HEIGHT: u32 = 380;
const FONT: &str = "sans-serif";
const LABEL_SIZE: u32 = 15;

/// The series' colours; the page's legends use the same (`LEGEND_*`).
const TOP1: RGBColor = RGBColor(21, 101, 192);
const TOP5: RGBColor = RGBColor(0, 137, 123);
const MRR: RGBColor = RGBColor(142, 36, 170);
const RIGHT: RGBColor = RGBColor(46, 125, 50);
const WRONG: RGBColor = RGBColor(230, 81, 0);
const NOT_IN: RGBColor = RGBColor(117, 117, 117);
const TUNED: RGBColor = RGBColor(183, 28, 28);

/// A chart's legend for the page: (label, CSS colour) per series.
pub type Legend = Vec<(&'static str, String)>;

fn css(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

pub fn accuracy_legend() -> Legend {
    vec![("top-1", css(TOP1)), ("top-5", css(TOP5)), ("MRR", css(MRR)), ("catalog's text weight", css(BLACK)), ("tuned text weight", css(TUNED))]
}

pub fn scores_legend() -> Legend {
    vec![
        ("right product first", css(RIGHT)),
        ("wrong product first", css(WRONG)),
        ("product not in the catalog", css(NOT_IN)),
        ("threshold", css(BLACK)),
    ]
}

fn chart_error<E: std::fmt::Debug>(e: E) -> EvalError {
    EvalError::Chart(format!("{e:?}"))
}

/// Draws on a white SVG canvas and returns the SVG text.
fn svg(draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<(), EvalError>) -> Result<String, EvalError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        draw(&root)?;
        root.present().map_err(chart_error)?;
    }
    Ok(out)
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf32, RangedCoordf32>>;

/// A vertical dashed marker at `x` from 0 to `top`, labelled at its top: on its right in the
/// left half of the chart, on its left in the right half (so the label stays inside).
fn marker<DB: DrawingBackend>(chart: &mut Chart<DB>, x: f32, top: f32, label: &str, color: RGBColor) -> Result<(), EvalError> {
    let style = ShapeStyle { color: color.to_rgba(), filled: false, stroke_width: 2 };
    chart.draw_series(DashedLineSeries::new([(x, 0.0), (x, top)], 6, 4, style)).map_err(chart_error)?;
    let range = chart.x_range();
    let (anchor, text) = if x > (range.start + range.end) / 2.0 { (HPos::Right, format!("{label} ")) } else { (HPos::Left, format!(" {label}")) };
    let font = (FONT, LABEL_SIZE).into_font().color(&color).pos(Pos::new(anchor, VPos::Top));
    chart.draw_series(std::iter::once(Text::new(text, (x, top), font))).map_err(chart_error)?;
    Ok(())
}

/// The axes: light grid at the labels only, readable labels.
fn mesh<DB: DrawingBackend>(chart: &mut Chart<DB>, x: &str, y: &str, y_format: &dyn Fn(&f32) -> String) -> Result<(), EvalError> {
    chart
        .configure_mesh()
        .x_desc(x)
        .y_desc(y)
        .y_label_formatter(y_format)
        .x_labels(8)
        .y_labels(6)
        .bold_line_style(RGBColor(230, 230, 230))
        .light_line_style(TRANSPARENT)
        .label_style((FONT, LABEL_SIZE))
        .axis_desc_style((FONT, LABEL_SIZE + 1))
        .draw()
        .map_err(chart_error)
}

/// Top-1, top-5 and mean reciprocal rank against the text weight (the image weight is the rest
/// of the sum), with the catalog's and the tuned text weights marked ([`accuracy_legend`]).
pub fn accuracy_vs_text_weight(ev: &Evaluation, catalog_text: f32, sum: f32) -> Result<String, EvalError> {
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(52)
            .build_cartesian_2d(0f32..sum, 0f32..1.08f32)
            .map_err(chart_error)?;
        let x = format!("text weight (image weight = {} - text weight)", round3(sum));
        mesh(&mut chart, &x, "share of photos", &|y| format!("{:.0}%", y * 100.0))?;
        let series: [(RGBColor, fn(&crate::search::eval::metrics::RankMetrics) -> f32); 3] =
            [(TOP1, |m| m.top1), (TOP5, |m| m.top5), (MRR, |m| m.mrr)];
        for (color, value) in series {
            let points = ev.curve.iter().map(|p| (p.weights.text, value(&p.ranking)));
            chart.draw_series(LineSeries::new(points, color.stroke_width(3))).map_err(chart_error)?;
        }
        if (0.0..=sum).contains(&catalog_text) {
            marker(&mut chart, catalog_text, 1.08, &format!("catalog {}", round3(catalog_text)), BLACK)?;
        }
        if let Some(t) = &ev.tuned {
            let label = format!("tuned {}", round3(t.point.weights.text));
            marker(&mut chart, t.point.weights.text, 0.99, &label, TUNED)?;
        }
        Ok(())
    })
}

/// Histograms of the best score for photos answered rightly, wrongly, and of products not in
/// the catalog, side by side in each bin, with the threshold marked ([`scores_legend`]).
pub fn best_scores(scores: &BestScores) -> Result<String, EvalError> {
    const BINS: usize = 24;
    let all = || scores.right.iter().chain(&scores.wrong).chain(&scores.not_in_catalog).copied();
    let lo = all().chain([scores.min_score]).fold(f32::INFINITY, f32::min);
    let hi = all().chain([scores.min_score]).fold(f32::NEG_INFINITY, f32::max);
    let pad = ((hi - lo) * 0.04).max(1e-3);
    let (lo, hi) = (lo - pad, hi + pad);
    let width = (hi - lo) / BINS as f32;
    let count = |v: &[f32]| {
        let mut c = [0usize; BINS];
        for &x in v {
            c[(((x - lo) / width) as usize).min(BINS - 1)] += 1;
        }
        c
    };
    let groups = [(RIGHT, count(&scores.right)), (WRONG, count(&scores.wrong)), (NOT_IN, count(&scores.not_in_catalog))];
    let most = groups.iter().flat_map(|g| g.1).max().unwrap_or(0).max(1);
    let top = (most as f32 * 1.12).ceil().max(most as f32 + 1.0);
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(52)
            .build_cartesian_2d(lo..hi, 0f32..top)
            .map_err(chart_error)?;
        // Counts are whole: ticks between them are left unlabelled.
        let whole = |y: &f32| if y.fract() == 0.0 { format!("{y:.0}") } else { String::new() };
        mesh(&mut chart, "best fused score of the photo", "photos", &whole)?;
        let bar = width / 3.0;
        for (g, (color, counts)) in groups.iter().enumerate() {
            let bars = counts.iter().enumerate().filter(|(_, &c)| c > 0).map(|(b, &c)| {
                let x0 = lo + b as f32 * width + g as f32 * bar;
                Rectangle::new([(x0, 0.0), (x0 + bar * 0.92, c as f32)], color.filled())
            });
            chart.draw_series(bars).map_err(chart_error)?;
        }
        marker(&mut chart, scores.min_score, top, &format!("threshold {}", round3(scores.min_score)), BLACK)?;
        Ok(())
    })
}

/// `x` to 3 decimals, without trailing zeros.
pub fn round3(x: f32) -> String {
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
}
