//! `clipmatch tune`: chooses the catalog's text and image weights and its "no confident match"
//! threshold on labelled photos by cross-validation over products, and writes them with the
//! figures that justify them (`ranking.tuned`) into the catalog's manifest: in place, by the
//! same staged replace `build` uses (the whole folder is written anew beside it and swapped
//! in), or into a copy with `--out`.

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clipmatch::search::catalog::{MANIFEST_FILE, VECTORS_FILE};

use super::{catalog_dir, compact_codes, shown};
use super::eval::print_table;
use super::labelled_photos::{measure, PhotoArgs};
use super::output_dir::{Kind, StagedDir};

#[derive(clap::Args)]
pub struct TuneArgs {
    #[command(flatten)]
    input: PhotoArgs,
    /// Write the tuned catalog here instead of replacing the catalog folder (replaced
    /// atomically if it exists and is a catalog folder; it may not be, contain or lie inside an
    /// input).
    #[arg(long, short)]
    out: Option<PathBuf>,
}

pub fn run(args: TuneArgs) -> Result<ExitCode> {
    let input = &args.input;
    let mut inputs = vec![("labelled photos", input.photos.as_path()), ("model folder", input.model.model.as_path())];
    let target = match &args.out {
        Some(out) => {
            inputs.push(("catalog folder", input.catalog.as_path()));
            out
        }
        None => &input.catalog,
    };
    let staged = StagedDir::new(target, Kind::Catalog, &inputs)?;
    let mut m = measure(input)?;
    print_table(&m.evaluation);
    let Some(ranking) = m.evaluation.tuned_ranking(&m.catalog.manifest.ranking, m.when) else {
        bail!("nothing was tuned: tuning needs photos of at least 2 catalog products; the catalog is unchanged");
    };
    m.catalog.manifest.ranking = ranking;
    let root = staged.path();
    // Compact codes are fused with the ranking weights: new weights, new codes.
    m.catalog = compact_codes::keep(m.catalog, &input.catalog, root)?;
    fs::write(root.join(VECTORS_FILE), m.catalog.vectors_bytes())?;
    fs::write(root.join(MANIFEST_FILE), m.catalog.manifest_file()?)?;
    for item in m.catalog.items() {
        if let Some(t) = &item.thumbnail {
            let side = m.catalog.manifest.thumbnail_side();
            let bytes = catalog_dir::read_thumbnail(&input.catalog, t, side).with_context(|| format!("thumbnail of {:?}", item.id))?;
            let path = root.join(t);
            fs::create_dir_all(path.parent().expect("thumbs/<id>.jpg has a folder"))?;
            fs::write(path, bytes)?;
        }
    }
    staged.commit()?;
    let r = m.catalog.manifest.ranking;
    println!(
        "wrote {}: fused score = {:.3} x text + {:.3} x image, no confident match under {:.4} (ranking.tuned says how)",
        shown::path(&target.join(MANIFEST_FILE)),
        r.text_weight,
        r.image_weight,
        r.min_score
    );
    Ok(m.finish(input.allow_skips))
}
