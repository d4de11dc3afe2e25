//! What goes into a catalog: a folder of images (names from file or folder names), or a
//! CSV/JSON list of image, name and optional description.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// One product to embed.
#[derive(Debug, Clone)]
pub struct SourceItem {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// The file to read.
    pub path: PathBuf,
    /// The image as given (relative path from the list or the folder), kept in the manifest.
    pub label: String,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum NameFrom {
    /// "Absolut Citron.jpg" is named "Absolut Citron".
    File,
    /// "Juice/Bravo-Apple-Juice/front.jpg" is named "Bravo Apple Juice".
    Folder,
}

const IMAGE_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "webp", "gif"];

fn is_image_name(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// A file or folder name as a product name: slugs like "Bravo-Apple-Juice" or "oat_milk"
/// read as words; names that already have spaces are kept as they are.
pub fn display_name(stem: &str) -> String {
    let stem = stem.trim();
    if stem.contains(' ') {
        return stem.to_string();
    }
    stem.split(['-', '_']).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
}

/// A URL- and file-safe id from a name: lowercase ASCII letters, digits and dashes.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "item".into()
    } else {
        out
    }
}

/// Makes ids unique by suffixing -2, -3... in order of appearance.
fn dedupe_ids(items: &mut [SourceItem]) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for item in items.iter_mut() {
        let n = seen.entry(item.id.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            item.id = format!("{}-{}", item.id, n);
        }
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, ignored: &mut usize) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out, ignored)?;
        } else if is_image_name(&p) {
            out.push(p);
        } else {
            *ignored += 1;
        }
    }
    Ok(())
}

/// Every image under `dir` (recursively, sorted), and how many other files were passed over.
pub fn from_folder(dir: &Path, name_from: NameFrom) -> Result<(Vec<SourceItem>, usize)> {
    let mut files = Vec::new();
    let mut ignored = 0;
    walk(dir, &mut files, &mut ignored)?;
    let mut items: Vec<SourceItem> = files
        .into_iter()
        .map(|path| {
            let stem = match name_from {
                NameFrom::File => path.file_stem(),
                NameFrom::Folder => path.parent().and_then(|p| p.file_name()),
            }
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
            let name = display_name(&stem);
            let label = path.strip_prefix(dir).unwrap_or(&path).display().to_string();
            SourceItem {
                id: slug(&name),
                name,
                description: None,
                path,
                label,
            }
        })
        .collect();
    dedupe_ids(&mut items);
    Ok((items, ignored))
}

#[derive(Deserialize)]
struct ListRow {
    image: String,
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

fn from_rows(rows: Vec<ListRow>, base: &Path, list: &Path) -> Result<Vec<SourceItem>> {
    let mut items = Vec::with_capacity(rows.len());
    for (i, row) in rows.into_iter().enumerate() {
        if row.name.trim().is_empty() {
            bail!("{}: entry {} has an empty name", list.display(), i + 1);
        }
        let description = row.description.filter(|d| !d.trim().is_empty());
        items.push(SourceItem {
            id: row.id.filter(|s| !s.is_empty()).unwrap_or_else(|| slug(&row.name)),
            name: row.name.trim().to_string(),
            description,
            path: base.join(&row.image),
            label: row.image,
        });
    }
    dedupe_ids(&mut items);
    Ok(items)
}

/// A CSV with a header (columns image, name, optional description and id) or a JSON array of
/// such objects. Image paths are relative to the list's folder.
pub fn from_list(list: &Path) -> Result<Vec<SourceItem>> {
    let base = list.parent().unwrap_or(Path::new("."));
    let ext = list.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let rows: Vec<ListRow> = match ext.as_str() {
        "csv" => {
            let mut reader = csv::Reader::from_path(list).with_context(|| format!("cannot read {}", list.display()))?;
            reader
                .deserialize()
                .enumerate()
                .map(|(i, r)| r.with_context(|| format!("{}: row {}", list.display(), i + 2)))
                .collect::<Result<_>>()?
        }
        "json" => {
            let text = fs::read_to_string(list).with_context(|| format!("cannot read {}", list.display()))?;
            serde_json::from_str(&text).with_context(|| {
                format!("{}: expected a JSON array of {{\"image\", \"name\", \"description\"?}} objects", list.display())
            })?
        }
        _ => bail!("{}: a list must be a .csv or .json file", list.display()),
    };
    from_rows(rows, base, list)
}

/// A folder or a list, whichever `source` is.
pub fn load(source: &Path, name_from: NameFrom) -> Result<(Vec<SourceItem>, usize)> {
    if source.is_dir() {
        from_folder(source, name_from)
    } else if source.is_file() {
        Ok((from_list(source)?, 0))
    } else {
        bail!("{} is neither a folder of images nor a CSV/JSON list", source.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_slugs() {
        assert_eq!(display_name("Bravo-Apple-Juice"), "Bravo Apple Juice");
        assert_eq!(display_name("Absolut Citron"), "Absolut Citron");
        assert_eq!(display_name("oat_milk"), "oat milk");
        assert_eq!(slug("Crème Fraîche 2x!"), "cr-me-fra-che-2x");
        assert_eq!(slug("!!!"), "item");
    }
}
