//! How an exported image tower (f16, int8, int4) embeds and ranks against the folder's own f32 model,
//! for any supported family: the figures behind `clipmatch bundle`'s bounds
//! (`models::export::min_cosine`) and the layers MobileCLIP keeps in f16 at int8.
//!
//!     cargo run --release --example export_fidelity -- MODEL_DIR [PHOTOS] [DTYPES]
//!
//! Prints, per dtype: the cosine between the export's and the folder's embeddings of the fixture
//! images (tests/fixtures/images, min and mean; plain and centred on the folder's mean) and of
//! grocery photos, and, for PHOTOS grocery
//! photos (default 40, spread over the products) ranked on images alone against the 31 products'
//! iconic images embedded by the f32 model (as a catalog is built), how many top-5 rankings are
//! identical, how many top-1 answers change, and for the products that traded places the largest
//! gap between their f32 scores (against the largest change of any score: swaps within that
//! change are near-ties, as with i8 catalog vectors). DTYPES: comma-separated, default
//! f32,f16,int8,int4. Reads ../shared/data/grocery-packages (or
//! CLIPMATCH_SHARED_DATA); skips the grocery part where it is absent.

use std::path::{Path, PathBuf};

use clipmatch::kernels::math::dot;
use clipmatch::models::export::{vision_tower, ExportDtype};
use clipmatch::models::folder::{self, FolderFiles, Layout};
use clipmatch::models::vision_loader::VisionLoader;
use clipmatch::{Embedder, Towers};

fn files_under(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, suffix, out);
        } else if p.to_string_lossy().ends_with(suffix) {
            out.push(p);
        }
    }
}

fn embed_all(e: &Embedder, files: &[PathBuf]) -> Vec<Vec<f32>> {
    files.iter().map(|f| e.embed_photo(&std::fs::read(f).unwrap()).unwrap()).collect()
}

fn scores(catalog: &[Vec<f32>], query: &[f32]) -> Vec<f32> {
    catalog.iter().map(|v| dot(v, query)).collect()
}

/// Indices of the 5 highest scores.
fn top5(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order.truncate(5);
    order
}

/// The largest f32 score gap between two products of either top 5 that the export orders the
/// other way, if any.
fn largest_swapped_gap(f32_scores: &[f32], ours: &[f32]) -> Option<f32> {
    let mut shown = top5(f32_scores);
    shown.extend(top5(ours));
    let mut gap: Option<f32> = None;
    for &i in &shown {
        for &j in &shown {
            if (f32_scores[i] - f32_scores[j]) * (ours[i] - ours[j]) < 0.0 {
                gap = Some(gap.unwrap_or(0.0).max((f32_scores[i] - f32_scores[j]).abs()));
            }
        }
    }
    gap
}

/// Each row's cosine to its reference row after subtracting the references' mean from both:
/// random-weight towers put every input in nearly one direction, which plain cosine rewards.
fn centred_cosines(reference: &[Vec<f32>], ours: &[Vec<f32>]) -> Vec<f32> {
    let dim = reference[0].len();
    let mean: Vec<f32> = (0..dim).map(|i| reference.iter().map(|r| r[i]).sum::<f32>() / reference.len() as f32).collect();
    let centre = |v: &[f32]| -> Vec<f32> { v.iter().zip(&mean).map(|(x, m)| x - m).collect() };
    let unit = |v: Vec<f32>| -> Vec<f32> {
        let n = dot(&v, &v).sqrt();
        v.iter().map(|x| x / n).collect()
    };
    reference.iter().zip(ours).map(|(r, o)| dot(&unit(centre(r)), &unit(centre(o)))).collect()
}

fn stats(cos: &[f32]) -> String {
    let min = cos.iter().copied().fold(f32::INFINITY, f32::min);
    let mean = cos.iter().sum::<f32>() / cos.len() as f32;
    format!("min {min:.6}, mean {mean:.6}")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(args.first().expect("usage: export_fidelity MODEL_DIR [PHOTOS]"));
    let photos: usize = args.get(1).map(|n| n.parse().expect("PHOTOS is a number")).unwrap_or(40);
    let dtypes: Vec<ExportDtype> = args
        .get(2)
        .map(|list| list.split(',').map(|d| ExportDtype::parse(d).expect("f32, f16, int8 or int4")).collect())
        .unwrap_or(ExportDtype::ALL.to_vec());
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let layout = Layout::detect(dir.join("open_clip_config.json").exists(), read("config.json").as_deref()).unwrap();
    let config = read(layout.config_file()).unwrap();
    let preprocessor = layout.preprocessor_file().and_then(|f| read(f));
    let weights = std::fs::read(dir.join(layout.weights_file())).unwrap();
    let files = FolderFiles { config: &config, preprocessor: preprocessor.as_deref(), weights: &weights, tokenizer: None, tokenizer_config: None };
    let reference = folder::load(layout, &files, Towers::VisionOnly, None).unwrap();
    let family = layout.family();
    println!("{} ({})", dir.display(), family.name());

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut fixtures = Vec::new();
    files_under(&root.join("tests/fixtures/images"), "", &mut fixtures);
    // The fixture photos, not the script beside them nor the photo memory tests' 2048 px JPEGs.
    let is_photo = |p: &PathBuf| {
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        !name.starts_with("large_") && [".png", ".jpg", ".webp", ".gif"].iter().any(|s| name.ends_with(s))
    };
    fixtures.retain(is_photo);
    fixtures.sort();
    let shared = std::env::var_os("CLIPMATCH_SHARED_DATA").map(PathBuf::from).unwrap_or_else(|| root.join("../shared/data"));
    let grocery = shared.join("grocery-packages");
    let (mut iconic, mut all_photos) = (Vec::new(), Vec::new());
    files_under(&grocery.join("iconic"), "_Iconic.jpg", &mut iconic);
    files_under(&grocery.join("photos"), ".jpg", &mut all_photos);
    iconic.sort();
    all_photos.sort();
    let step = (all_photos.len() / photos.max(1)).max(1);
    let queries: Vec<PathBuf> = all_photos.iter().step_by(step).take(photos).cloned().collect();

    let ref_fixtures = embed_all(&reference, &fixtures);
    let catalog = embed_all(&reference, &iconic);
    let ref_queries = embed_all(&reference, &queries);
    for dtype in dtypes {
        let bytes = vision_tower(family, &config, &weights, dtype).unwrap();
        let exported = VisionLoader::load(family, None, &config, preprocessor.as_deref(), &bytes).unwrap();
        let cos = |a: &[Vec<f32>], b: &[Vec<f32>]| a.iter().zip(b).map(|(x, y)| dot(x, y)).collect::<Vec<f32>>();
        let exported_fixtures = embed_all(&exported, &fixtures);
        let fixture_cos = cos(&ref_fixtures, &exported_fixtures);
        let centred = centred_cosines(&ref_fixtures, &exported_fixtures);
        print!(
            "{:>4} ({:.1} MB): fixture images cosine {}, centred {}",
            dtype.name(),
            bytes.len() as f64 / 1e6,
            stats(&fixture_cos),
            stats(&centred)
        );
        if queries.is_empty() || iconic.is_empty() {
            println!("; grocery photos skipped ({} is absent)", grocery.display());
            continue;
        }
        let ours = embed_all(&exported, &queries);
        let (mut same_top5, mut top1_changed, mut swapped_gap, mut moved) = (0, 0, 0.0f32, 0.0f32);
        for (r, q) in ref_queries.iter().zip(&ours) {
            let (a, b) = (scores(&catalog, r), scores(&catalog, q));
            same_top5 += usize::from(top5(&a) == top5(&b));
            top1_changed += usize::from(top5(&a)[0] != top5(&b)[0]);
            swapped_gap = swapped_gap.max(largest_swapped_gap(&a, &b).unwrap_or(0.0));
            moved = a.iter().zip(&b).fold(moved, |m, (x, y)| m.max((x - y).abs()));
        }
        println!(
            "; {} grocery photos: cosine {}, top-5 identical {same_top5}/{}, top-1 changed {top1_changed}, \
             swapped products' f32 gap up to {swapped_gap:.5} (scores moved up to {moved:.5})",
            queries.len(),
            stats(&cos(&ref_queries, &ours)),
            queries.len()
        );
    }
}
