//! What `eval` and `tune` measure on: a catalog, the model that made it, and labelled photos
//! — a folder with one subfolder per item (its name is the item's id or name, as `build
//! --name-from folder` makes names; `--name-from file` takes file names, less a trailing photo
//! number) or a CSV `photo,item` whose empty item means "not in this catalog". The photos are
//! embedded once; unreadable photos and unknown items are skipped with a one-line reason and
//! counted, as `build` does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clipmatch::search::catalog::UtcSeconds;
use clipmatch::search::catalog_builder::SkipReason;
use clipmatch::search::eval::embed::{embed_photos, EmbedEvents};
use clipmatch::search::eval::evaluation::weight_sum_of;
use clipmatch::search::eval::{evaluate, Evaluation, ItemLookup, Similarities, TuneOptions, Truth};
use clipmatch::{Catalog, Towers};
use indicatif::ProgressBar;
use serde::Deserialize;

use super::build::progress_bar;
use super::sources::{self, NameFrom};
use super::{catalog_dir, files, model_dir, shown, ModelArgs};

/// The inputs `eval` and `tune` share.
#[derive(clap::Args)]
pub struct PhotoArgs {
    /// The catalog folder written by `clipmatch build`.
    #[arg(long, short, env = "CLIPMATCH_CATALOG")]
    pub catalog: PathBuf,
    /// Labelled photos: a folder with one subfolder per catalog item, named by the item's id or
    /// name (e.g. photos/Juice/Bravo-Apple-Juice/1.jpg), or a CSV with columns photo,item
    /// (paths relative to the CSV; an empty item: a product not in this catalog).
    #[arg(long, short)]
    pub photos: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// For a folder: the item is named by the folder holding each photo, or by the file name
    /// less a trailing number ("Bravo-Apple-Juice_003.jpg").
    #[arg(long, value_enum, default_value = "folder")]
    pub name_from: NameFrom,
    /// The precision asked of "confident match": the tuned threshold is the lowest at which
    /// confident matches name the right product at least this share of the time.
    #[arg(long, default_value_t = 0.9)]
    pub confident_precision: f32,
    /// Cross-validation folds over products (a product's photos are never on both sides).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..=100))]
    pub folds: u32,
    /// Photos embedded per model call.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub batch_size: u32,
    /// Exit 0 even if some photos were skipped (they are still listed).
    #[arg(long)]
    pub allow_skips: bool,
}

/// A photo and what it shows.
pub struct Labelled {
    pub path: PathBuf,
    /// The photo as given: its path under the folder, or as the CSV lists it.
    pub label: String,
    pub truth: Truth,
}

/// A photo left out, and why.
pub struct Skip {
    pub label: String,
    pub reason: String,
}

/// Everything measured: the photos embedded (in evaluation order), those skipped, and the
/// evaluation.
pub struct Measured {
    pub catalog: Catalog,
    pub model_name: String,
    pub photos: Vec<Labelled>,
    pub skipped: Vec<Skip>,
    pub options: TuneOptions,
    pub evaluation: Evaluation,
    pub when: UtcSeconds,
}

/// Folder or file name less a trailing photo number: `Bravo-Apple-Juice_003` is
/// `Bravo-Apple-Juice`, `Oat milk 2` is `Oat milk`.
fn without_number(stem: &str) -> &str {
    let trimmed = stem.trim_end_matches(|c: char| c.is_ascii_digit());
    match trimmed.strip_suffix(['_', '-', ' ']) {
        Some(rest) if trimmed.len() < stem.len() && !rest.is_empty() => rest,
        _ => stem,
    }
}

/// Photos under a folder, labelled by their folder's (or file's) name; unknown names skipped.
fn from_folder(dir: &Path, name_from: NameFrom, lookup: &ItemLookup, skipped: &mut Vec<Skip>) -> Result<(Vec<Labelled>, usize)> {
    let (found, ignored) = sources::from_folder(dir, name_from)?;
    let mut unknown: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut out = Vec::new();
    for s in found {
        let name = match name_from {
            NameFrom::Folder if s.path.parent() == Some(dir) => None,
            NameFrom::Folder => s.path.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()),
            NameFrom::File => s.path.file_stem().map(|n| without_number(&n.to_string_lossy()).to_string()),
        };
        let Some(name) = name else {
            skipped.push(Skip { label: s.label, reason: "not inside an item's folder".into() });
            continue;
        };
        match lookup.find(&name) {
            Ok(i) => out.push(Labelled { path: s.path, label: s.label, truth: Truth::Item(i) }),
            Err(e) => {
                let entry = unknown.entry(name).or_insert((0, e.to_string()));
                entry.0 += 1;
                skipped.push(Skip { label: s.label, reason: e.to_string() });
            }
        }
    }
    for (name, (n, why)) in unknown {
        eprintln!("{}", shown::text(&format!("skipped {n} photo(s) labelled {name:?}: {why}")));
    }
    Ok((out, ignored))
}

#[derive(Deserialize)]
struct Row {
    photo: String,
    #[serde(default)]
    item: Option<String>,
}

/// Photos listed in a CSV `photo,item`; unknown items skipped.
fn from_csv(list: &Path, lookup: &ItemLookup, skipped: &mut Vec<Skip>) -> Result<Vec<Labelled>> {
    let base = list.parent().unwrap_or(Path::new("."));
    let mut reader = csv::Reader::from_path(list).with_context(|| format!("cannot read {}", list.display()))?;
    let headers = reader.headers().with_context(|| format!("{}: cannot read the header", list.display()))?.clone();
    if !(headers.iter().any(|h| h.trim() == "photo") && headers.iter().any(|h| h.trim() == "item")) {
        bail!("{}: the first line must name the columns photo,item (found {:?})", list.display(), headers.iter().collect::<Vec<_>>().join(","));
    }
    reader.set_headers(headers.iter().map(str::trim).collect());
    let mut out = Vec::new();
    for (i, row) in reader.deserialize::<Row>().enumerate() {
        let at = || format!("{}: row {}", list.display(), i + 2);
        let row = row.with_context(at)?;
        let photo = row.photo.trim();
        if photo.is_empty() {
            bail!("{} has no photo", at());
        }
        let item = row.item.as_deref().map(str::trim).unwrap_or("");
        let truth = if item.is_empty() {
            Truth::NotInCatalog
        } else {
            match lookup.find(item) {
                Ok(i) => Truth::Item(i),
                Err(e) => {
                    eprintln!("{}", shown::text(&format!("skipped {}: {photo}: {e}", at())));
                    skipped.push(Skip { label: photo.to_string(), reason: e.to_string() });
                    continue;
                }
            }
        };
        out.push(Labelled { path: base.join(photo), label: photo.to_string(), truth });
    }
    Ok(out)
}

/// Skips on the terminal as they happen, over a progress bar.
struct Terminal<'a> {
    photos: &'a [Labelled],
    bar: Option<ProgressBar>,
}

impl EmbedEvents for Terminal<'_> {
    fn progress(&mut self, done: usize, total: usize) {
        let bar = self.bar.get_or_insert_with(|| progress_bar(total, "photos"));
        bar.set_position(done as u64);
        if done == total {
            bar.finish_and_clear();
        }
    }

    fn skipped(&mut self, index: usize, reason: &SkipReason) {
        let line = shown::text(&format!("skipped {}: {reason}", self.photos[index].path.display())).into_owned();
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

pub fn now() -> UtcSeconds {
    UtcSeconds(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

/// Loads the catalog and the model (checked against each other), lists and embeds the photos,
/// and evaluates.
pub fn measure(args: &PhotoArgs) -> Result<Measured> {
    let catalog = catalog_dir::load(&args.catalog)?;
    let lookup = ItemLookup::new(catalog.items());
    let options = TuneOptions {
        confident_precision: args.confident_precision,
        folds: args.folds as usize,
        seed: 0,
        weight_sum: weight_sum_of(&catalog.manifest.ranking),
        steps: TuneOptions::STEPS,
    };
    options.check()?;
    let mut skipped = Vec::new();
    let (listed, ignored) = if args.photos.is_dir() {
        from_folder(&args.photos, args.name_from, &lookup, &mut skipped)?
    } else if args.photos.is_file() {
        (from_csv(&args.photos, &lookup, &mut skipped)?, 0)
    } else {
        bail!("{} is neither a folder of labelled photos nor a CSV list photo,item", args.photos.display());
    };
    if ignored > 0 {
        eprintln!("passed over {ignored} files that are not images by their extension");
    }
    if listed.is_empty() {
        bail!(
            "no labelled photos (.jpg, .jpeg, .png, .webp, .gif) of this catalog's items in {} ({} skipped)",
            args.photos.display(),
            skipped.len()
        );
    }

    let model = model_dir::load_hashed(&args.model, Towers::VisionOnly)?;
    let info = model.info();
    catalog
        .check_model(info.embedding_dim, Some(&info.weights_sha256), &model.embedder.preprocess)
        .with_context(|| format!("{} cannot be used with the model in {}", args.catalog.display(), args.model.model.display()))?;
    let max_bytes = model.embedder.limits.max_file_bytes as u64;
    let read = |i: usize| files::read_regular(&listed[i].path, max_bytes).map_err(|e| e.to_string());
    let mut terminal = Terminal { photos: &listed, bar: None };
    let vectors = embed_photos(&model.embedder, listed.len(), read, args.batch_size as usize, &mut terminal)?;

    let mut photos = Vec::with_capacity(listed.len());
    let mut embedded = Vec::with_capacity(listed.len());
    for (photo, vector) in listed.into_iter().zip(vectors) {
        match vector {
            Ok(v) => {
                embedded.push((photo.truth, v));
                photos.push(photo);
            }
            Err(reason) => skipped.push(Skip { label: photo.label, reason: reason.to_string() }),
        }
    }
    let sims = Similarities::new(&catalog, embedded)?;
    let evaluation = evaluate(&sims, &catalog.manifest.ranking, &options)?;
    Ok(Measured { catalog, model_name: info.name, photos, skipped, options, evaluation, when: now() })
}

impl Measured {
    /// The skips again at the end, and the exit status they call for.
    pub fn finish(&self, allow_skips: bool) -> std::process::ExitCode {
        if self.skipped.is_empty() {
            return std::process::ExitCode::SUCCESS;
        }
        eprintln!("skipped {} of {} photos:", self.skipped.len(), self.skipped.len() + self.photos.len());
        for s in &self.skipped {
            eprintln!("  {}", shown::text(&format!("{}: {}", s.label, s.reason)));
        }
        if allow_skips {
            std::process::ExitCode::SUCCESS
        } else {
            eprintln!("the figures leave them out; pass --allow-skips to exit 0 anyway");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn photo_numbers_come_off_file_names() {
        assert_eq!(without_number("Bravo-Apple-Juice_003"), "Bravo-Apple-Juice");
        assert_eq!(without_number("Oat milk 2"), "Oat milk");
        assert_eq!(without_number("Soap-12"), "Soap");
        assert_eq!(without_number("7up"), "7up");
        assert_eq!(without_number("Pepsi"), "Pepsi");
        assert_eq!(without_number("_12"), "_12");
        assert_eq!(without_number("1234"), "1234");
    }
}
