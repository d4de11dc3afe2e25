//! The report's page: a static HTML file (no scripts; a Content-Security-Policy that allows
//! none) with the figures table, the charts and the worst misses. Every text that comes from
//! the catalog, the photos or the command line is escaped.

use std::fmt::Write;

use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

use super::charts::{accuracy_legend, round3, scores_legend, Legend};
use super::{ReportContext, ACCURACY_CHART, CATALOG_SCORES_CHART, TUNED_SCORES_CHART};
use crate::search::eval::evaluation::{Evaluation, Method, MethodFigures, Miss};
use crate::search::rank::FusionWeights;

fn pct(x: Option<f32>) -> String {
    x.map_or_else(|| "–".into(), |x| format!("{:.0}%", x * 100.0))
}

fn shows(n: usize) -> &'static str {
    if n == 1 { "shows" } else { "show" }
}

fn weights(w: FusionWeights) -> String {
    format!("{} / {}", round3(w.text), round3(w.image))
}

fn row(out: &mut String, m: &MethodFigures) {
    let t = m.threshold;
    let _ = write!(
        out,
        "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
        m.method.label(),
        weights(m.weights),
        pct(Some(m.ranking.top1)),
        pct(Some(m.ranking.top5)),
        format!("{:.3}", m.ranking.mrr),
        m.min_score.map_or_else(|| "–".into(), round3),
        pct(t.and_then(|t| t.confident_precision)),
        pct(t.and_then(|t| t.confident_recall)),
        pct(t.and_then(|t| t.not_in_catalog_precision)),
        pct(t.and_then(|t| t.not_in_catalog_recall)),
    );
}

const STYLE: &str = "
:root { color-scheme: light; --line: #ddd; --muted: #555; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #1a1a1a; background: #fafafa; }
main { max-width: 1040px; margin: 0 auto; padding: 24px 16px 48px; }
h1 { font-size: 1.6rem; margin: 0 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 1.2rem; margin: 32px 0 8px; }
.meta, .note { color: var(--muted); font-size: .92rem; overflow-wrap: anywhere; }
.summary { font-size: 1.05rem; }
.table-wrap { overflow-x: auto; background: #fff; border: 1px solid var(--line); border-radius: 6px; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; font-variant-numeric: tabular-nums; }
th, td { padding: 6px 10px; text-align: right; white-space: nowrap; border-bottom: 1px solid var(--line); }
th[scope=row], thead th:first-child { text-align: left; }
thead th { font-weight: 600; background: #f0f0f0; vertical-align: bottom; }
tbody tr:last-child th, tbody tr:last-child td { border-bottom: 0; }
figure.chart { margin: 12px 0; background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
.scroll { overflow-x: auto; }
figure.chart img { display: block; width: 100%; min-width: 560px; height: auto; }
.legend { margin: 4px 8px 0; font-size: .9rem; display: flex; flex-wrap: wrap; gap: 4px 16px; }
.legend i { display: inline-block; width: 14px; height: 14px; border-radius: 2px; margin-right: 6px; vertical-align: -2px; }
.hint { display: none; color: var(--muted); font-size: .85rem; margin: 4px 0 0; }
thead tr:first-child th { border-bottom: 0; padding-bottom: 0; }
thead th.group { text-align: center; }
figcaption { color: var(--muted); font-size: .92rem; padding: 4px 8px 0; }
.misses { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 12px; }
.miss { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px; overflow-wrap: anywhere; }
.miss .photo { width: 100%; height: 200px; object-fit: contain; background: #eee; border-radius: 4px; }
.miss .label { font-size: .85rem; color: var(--muted); margin: 4px 0 8px; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 8px; }
.pair div { font-size: .88rem; }
.pair img { width: 100%; height: 110px; object-fit: contain; background: #eee; border-radius: 4px; }
.tag { display: block; font-weight: 600; }
.bad { color: #b71c1c; }
@media (max-width: 640px) {
  main { padding: 16px 12px 32px; }
  h1 { font-size: 1.3rem; }
  th, td { padding: 5px 7px; font-size: .85rem; }
  .hint { display: block; }
}
";

fn legend(items: &Legend) -> String {
    let keys: String = items
        .iter()
        .map(|(label, color)| format!("<span><i style=\"background:{}\"></i>{}</span>", attr(color), text(label)))
        .collect();
    format!("<p class=\"legend\">{keys}</p>")
}

fn image(src: Option<&str>, class: &str, alt: &str) -> String {
    match src {
        Some(src) => format!("<img class=\"{class}\" src=\"{}\" alt=\"{}\">", attr(src), attr(alt)),
        None => format!("<div class=\"{class}\" role=\"img\" aria-label=\"{}\"></div>", attr(alt)),
    }
}

fn miss_card(out: &mut String, m: &Miss, ctx: &ReportContext, files: &super::ImageFiles) {
    let item = |i: usize| &ctx.items[i];
    let label = &ctx.photo_labels[m.photo];
    let _ = write!(out, "<article class=\"miss\">{}", image(files.photo(m.photo), "photo", &format!("photo {label}")));
    let _ = write!(out, "<p class=\"label\">{}</p><div class=\"pair\">", text(label));
    match (m.truth, m.truth_rank, m.truth_score) {
        (Some(t), Some(r), Some(s)) => {
            let name = &item(t).name;
            let _ = write!(
                out,
                "<div><span class=\"tag\">It is</span>{}{} <br>place {r} of {}, score {}</div>",
                image(files.item(t), "", name),
                text(name),
                ctx.items.len(),
                round3(s)
            );
        }
        _ => {
            let _ = write!(out, "<div><span class=\"tag\">It is</span>a product not in the catalog</div>");
        }
    }
    let best = item(m.best);
    let confident = if m.confident { "confident match" } else { "below the threshold" };
    let _ = write!(
        out,
        "<div><span class=\"tag bad\">Ranked first</span>{}{} <br>score {} ({confident})</div></div></article>\n",
        image(files.item(m.best), "", &best.name),
        text(&best.name),
        round3(m.best_score)
    );
}

/// The page.
pub fn page(ev: &Evaluation, ctx: &ReportContext, files: &super::ImageFiles) -> String {
    let mut out = String::new();
    let title = format!("Search quality of {}", ctx.catalog);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src 'self'; style-src 'unsafe-inline'\">\
         <title>{}</title><style>{STYLE}</style></head>\n<body><main>\n<h1>{}</h1>\n",
        text(&title),
        text(&title)
    );
    let _ = write!(
        out,
        "<p class=\"meta\">{} labelled photos from {}: {} {} {} of the catalog's {} items, {} {} products not in the \
         catalog; {} skipped. Model {}, {}.</p>\n",
        ev.photos,
        text(ctx.photos),
        ev.in_catalog_photos,
        shows(ev.in_catalog_photos),
        ev.products,
        ev.catalog_items,
        ev.not_in_catalog_photos,
        shows(ev.not_in_catalog_photos),
        ctx.skipped,
        text(ctx.model),
        ctx.when
    );

    let catalog = ev.method(Method::Catalog).expect("always measured");
    let _ = write!(
        out,
        "<h2>Summary</h2>\n<p class=\"summary\">With the catalog's weights (text {}, image {}) the right product is first for \
         {} of the photos and in the first five for {}.",
        round3(catalog.weights.text),
        round3(catalog.weights.image),
        pct(Some(catalog.ranking.top1)),
        pct(Some(catalog.ranking.top5))
    );
    match (ev.method(Method::Tuned), &ev.tuned) {
        (Some(tuned), Some(choice)) => {
            let _ = write!(
                out,
                " Weights chosen on these photos (text {}, image {}) put it first for {} of the photos of products they were \
                 not chosen on ({}-fold cross-validation over products).",
                round3(choice.point.weights.text),
                round3(choice.point.weights.image),
                pct(Some(tuned.ranking.top1)),
                choice.folds
            );
            let target = pct(Some(ev.confident_precision_target));
            let threshold = round3(choice.point.min_score);
            let _ = if choice.point.target_met {
                write!(out, " For confident matches to be right {target} of the time the threshold is {threshold}.</p>\n")
            } else {
                write!(out, " No threshold makes confident matches right {target} of the time on these photos; {threshold} comes closest.</p>\n")
            };
        }
        _ => out.push_str(" Tuning needs photos of at least two catalog products.</p>\n"),
    }
    out.push_str(
        "<div class=\"table-wrap\"><table>\n<thead><tr><th></th><th>weights</th><th class=\"group\" colspan=\"3\">ranking</th><th></th>\
         <th class=\"group\" colspan=\"2\">confident match</th><th class=\"group\" colspan=\"2\">not in catalog</th></tr>\n\
         <tr><th>scoring</th><th>text / image</th><th>top-1</th><th>top-5</th><th>MRR</th><th>threshold</th><th>precision</th>\
         <th>recall</th><th>precision</th><th>recall</th></tr></thead>\n<tbody>\n",
    );
    for m in &ev.methods {
        row(&mut out, m);
    }
    out.push_str(
        "</tbody></table></div>\n<p class=\"hint\">The table and the charts scroll sideways.</p>\n<p class=\"note\">Top-1 and top-5: the share of photos of catalog products whose product \
         ranks first, or in the first five; MRR: the mean of 1 / its place. For the threshold every such photo is asked \
         twice: with its product in the catalog, and with its product left out (then the right answer is \"no confident \
         match\"); photos of products not in the catalog are asked once. Confident match precision: of the answers at or \
         above the threshold, the share that name the right product; recall: the share of photos of catalog products \
         answered rightly and confidently. Not in catalog precision: of the answers under the threshold, the share whose \
         product is really missing; recall: the share of missing products answered \"no confident match\". The tuned row \
         is measured on products held out of each choice; the others on all photos.</p>\n",
    );

    let _ = write!(
        out,
        "<h2>Ranking against the text weight</h2>\n<figure class=\"chart\"><div class=\"scroll\"><img src=\"{ACCURACY_CHART}\" \
         alt=\"Top-1, top-5 and MRR against the text weight\"></div>{}<figcaption>All photos of catalog products, each weighting \
         in turn (the weights keep their sum, so only their balance changes). A wide plateau means the choice matters \
         little; a peak far from the catalog's marker means other weights would do better.</figcaption></figure>\n",
        legend(&accuracy_legend())
    );
    out.push_str("<h2>Best scores and the threshold</h2>\n");
    let _ = write!(
        out,
        "<figure class=\"chart\"><div class=\"scroll\"><img src=\"{CATALOG_SCORES_CHART}\" \
         alt=\"Histogram of best scores at the catalog's weights\"></div>{}<figcaption>At the catalog's weights ({}) and threshold. Photos right of the line get a confident match: green \
         bars there are right answers, orange and grey ones wrong answers. The less the colours overlap, the better a \
         threshold can separate them.</figcaption></figure>\n",
        legend(&scores_legend()),
        weights(catalog.weights)
    );
    if let (Some(choice), Some(_)) = (&ev.tuned, &ev.tuned_scores) {
        let _ = write!(
            out,
            "<figure class=\"chart\"><div class=\"scroll\"><img src=\"{TUNED_SCORES_CHART}\" \
             alt=\"Histogram of best scores at the tuned weights\"></div>{}<figcaption>At the tuned weights ({}) and \
             threshold, on all photos.</figcaption></figure>\n",
            legend(&scores_legend()),
            weights(choice.point.weights)
        );
    }

    let shown = ev.misses.len().min(super::MISSES_SHOWN);
    let _ = write!(
        out,
        "<h2>Worst misses</h2>\n<p class=\"note\">At the catalog's weights: photos whose product ranked lowest, then photos \
         of products not in the catalog that got a confident match ({shown} of {}).</p>\n<div class=\"misses\">\n",
        ev.misses.len()
    );
    if shown == 0 {
        out.push_str("<p>None: every photo's product ranked first.</p>\n");
    }
    for m in &ev.misses[..shown] {
        miss_card(&mut out, m, ctx, files);
    }
    out.push_str("</div>\n</main></body></html>\n");
    out
}
