//! What goes into a catalog: a folder of images (names from file or folder names), or a
//! CSV/JSON list of image, name and optional description. Names and descriptions are checked
//! as each row is read ([`item_text`]); ids are made from names transliterated to ASCII.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clipmatch::search::catalog::Item;
use clipmatch::search::item_fields::ItemFields;
use clipmatch::search::{item_id, item_text};
use serde_json::{Map, Value};

use super::{json_list, shown};

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
    /// The list's other columns (`url`, `price`, ...), kept in the manifest.
    pub fields: ItemFields,
    /// The id is the list's own (its `id` column), not made from the name.
    pub explicit_id: bool,
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

/// Longest slug, in bytes: room is left under [`item_id::MAX_LEN`] for a `-<n>` suffix.
const MAX_SLUG: usize = 100;

/// A URL- and file-safe id from a name, transliterated to ASCII first ("Café" is "cafe", "Кофе"
/// "kofe"): lowercase ASCII letters, digits and dashes, starting with a letter or digit, at most
/// [`MAX_SLUG`] bytes (always a valid id).
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in deunicode::deunicode(name).chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= MAX_SLUG {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "item".into()
    } else {
        out
    }
}

/// Gives each item whose id is not fixed (`fixed[i]` false) a unique one: its slug if no other
/// item has that id (in any case), else the slug with the first free `-2`, `-3`... Fixed ids
/// (the list's own, or kept by an update) are never renamed: they are unique beforehand. So
/// `a, a, a-2` become `a, a-3, a-2`.
fn assign_ids(items: &mut [SourceItem], fixed: &[bool]) {
    let mut taken: HashSet<String> = items
        .iter()
        .zip(fixed)
        .filter(|(_, e)| **e)
        .map(|(item, _)| item_id::collision_key(&item.id))
        .collect();
    let mut renamed = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if !fixed[i] && !taken.insert(item_id::collision_key(&item.id)) {
            renamed.push(i);
        }
    }
    for i in renamed {
        let base = items[i].id.clone();
        let id = (2u64..)
            .map(|n| format!("{base}-{n}"))
            .find(|id| !taken.contains(&item_id::collision_key(id)))
            .expect("some suffix is free");
        taken.insert(item_id::collision_key(&id));
        items[i].id = id;
    }
}

/// For an update of `previous`: each item without an id of its own takes the id the catalog
/// gave an item of the same name (in turn, for a name given twice), so that ids stay as they
/// were, whatever the slugs of this version; the others get their slugs, made unique again.
/// An id the list now gives another item is not kept.
pub fn keep_ids(items: &mut [SourceItem], previous: &[Item]) {
    let mut by_name: HashMap<&str, std::collections::VecDeque<&str>> = HashMap::new();
    for item in previous {
        by_name.entry(item.name.as_str()).or_default().push_back(item.id.as_str());
    }
    let explicit: HashSet<String> =
        items.iter().filter(|i| i.explicit_id).map(|i| item_id::collision_key(&i.id)).collect();
    let mut fixed = Vec::with_capacity(items.len());
    for item in items.iter_mut() {
        if item.explicit_id {
            fixed.push(true);
            continue;
        }
        let kept = by_name
            .get_mut(item.name.as_str())
            .and_then(|ids| ids.pop_front())
            .filter(|id| !explicit.contains(&item_id::collision_key(id)));
        item.id = kept.map_or_else(|| slug(&item.name), str::to_string);
        fixed.push(kept.is_some());
    }
    assign_ids(items, &fixed);
}

/// What a folder walk found: image files, other files passed over, and links to folders,
/// which are not followed (a link to a parent folder would make the walk endless).
#[derive(Default)]
struct Walk {
    images: Vec<PathBuf>,
    ignored: usize,
    folder_links: usize,
}

fn walk(dir: &Path, out: &mut Walk) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| Some((e.path(), e.file_type().ok()?)))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (p, t) in entries {
        if t.is_dir() {
            walk(&p, out)?;
        } else if t.is_symlink() && p.is_dir() {
            out.folder_links += 1;
        } else if is_image_name(&p) {
            out.images.push(p);
        } else {
            out.ignored += 1;
        }
    }
    Ok(())
}

/// Every image under `dir` (recursively, sorted), and how many other files were passed over.
pub fn from_folder(dir: &Path, name_from: NameFrom) -> Result<(Vec<SourceItem>, usize)> {
    let mut found = Walk::default();
    walk(dir, &mut found)?;
    if found.folder_links > 0 {
        eprintln!("did not follow {} symbolic link(s) to folders under {}", found.folder_links, shown::path(dir));
    }
    let mut items: Vec<SourceItem> = found
        .images
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
                fields: ItemFields::default(),
                explicit_id: false,
            }
        })
        .collect();
    let explicit = vec![false; items.len()];
    assign_ids(&mut items, &explicit);
    Ok((items, found.ignored))
}

/// One row of a list: the columns the catalog uses, and the shop's others as fields.
struct ListRow {
    image: String,
    name: String,
    description: Option<String>,
    id: Option<String>,
    fields: ItemFields,
}

impl ListRow {
    /// A row from its columns by name (a CSV row's cells, or a JSON list's object).
    fn from_columns(mut columns: Map<String, Value>) -> Result<Self> {
        let mut text = |key: &str, required: bool| -> Result<Option<String>> {
            match columns.remove(key) {
                Some(Value::String(s)) => Ok(Some(s)),
                None | Some(Value::Null) if !required => Ok(None),
                None | Some(Value::Null) => bail!("has no {key:?}"),
                Some(other) => bail!("{key:?} must be text, not {other}"),
            }
        };
        let image = text("image", true)?.expect("required");
        let name = text("name", true)?.expect("required");
        item_text::check_name(name.trim())?;
        let description = text("description", false)?;
        description.as_deref().map(item_text::check_description).transpose()?;
        let id = text("id", false)?;
        let mut fields = ItemFields::default();
        for (key, value) in &columns {
            fields.insert_json(key, value)?;
        }
        Ok(Self { image, name, description, id, fields })
    }
}

/// How a list's rows are numbered in messages.
#[derive(Clone, Copy)]
enum ListFormat {
    /// By line, counting the header: the first product is row 2.
    Csv,
    /// By position in the array, from 1.
    Json,
}

impl ListFormat {
    fn row(self, i: usize) -> String {
        match self {
            ListFormat::Csv => format!("row {}", i + 2),
            ListFormat::Json => format!("entry {}", i + 1),
        }
    }
}

/// The list's rows as items. An explicit id must be valid ([`item_id::RULE`]) and unique, also
/// ignoring case; rows without one get their name's slug, made unique by [`assign_ids`].
fn from_rows(rows: Vec<ListRow>, base: &Path, list: &Path, format: ListFormat) -> Result<Vec<SourceItem>> {
    let mut items = Vec::with_capacity(rows.len());
    let mut explicit = Vec::with_capacity(rows.len());
    let mut explicit_rows: HashMap<String, (usize, String)> = HashMap::new();
    for (i, row) in rows.into_iter().enumerate() {
        let at = || format!("{}: {}", list.display(), format.row(i));
        if row.name.trim().is_empty() {
            bail!("{} has an empty name", at());
        }
        let id = row.id.filter(|s| !s.trim().is_empty());
        if let Some(id) = &id {
            item_id::check(id).with_context(at)?;
            if let Some((j, other)) = explicit_rows.insert(item_id::collision_key(id), (i, id.clone())) {
                if *id == other {
                    bail!("{} has id {id:?}, as does {}: ids must be unique", at(), format.row(j));
                }
                bail!(
                    "{} has id {id:?} and {} has {other:?}: ids must differ in more than case (their thumbnails would be one file on macOS and Windows)",
                    at(),
                    format.row(j)
                );
            }
        }
        let id_given = id.is_some();
        explicit.push(id_given);
        let description = row.description.filter(|d| !d.trim().is_empty());
        items.push(SourceItem {
            id: id.unwrap_or_else(|| slug(&row.name)),
            name: row.name.trim().to_string(),
            description,
            path: base.join(&row.image),
            label: row.image,
            fields: row.fields,
            explicit_id: id_given,
        });
    }
    assign_ids(&mut items, &explicit);
    Ok(items)
}

/// A CSV with a header (columns image, name, optional description and id, and any others: the
/// item's fields) or a JSON array of such objects. Image paths are relative to the list's folder.
pub fn from_list(list: &Path) -> Result<Vec<SourceItem>> {
    let base = list.parent().unwrap_or(Path::new("."));
    let ext = list.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let format = match ext.as_str() {
        "csv" => ListFormat::Csv,
        "json" => ListFormat::Json,
        _ => bail!("{}: a list must be a .csv or .json file", list.display()),
    };
    // Each row is checked as it is read, before the list is held in more forms than one.
    let row = |i: usize, columns: Map<String, Value>| ListRow::from_columns(columns).with_context(|| format!("{}: {}", list.display(), format.row(i)));
    let rows: Vec<ListRow> = match format {
        ListFormat::Csv => {
            let mut reader = csv::Reader::from_path(list).with_context(|| format!("cannot read {}", list.display()))?;
            let headers: Vec<String> = reader.headers().with_context(|| format!("{}: row 1", list.display()))?.iter().map(|h| h.trim().to_string()).collect();
            let mut seen = HashSet::new();
            if let Some(twice) = headers.iter().find(|h| !seen.insert(h.as_str())) {
                bail!("{}: the header names the column {twice:?} twice", list.display());
            }
            reader
                .records()
                .enumerate()
                .map(|(i, r)| {
                    let record = r.with_context(|| format!("{}: row {}", list.display(), i + 2))?;
                    row(i, headers.iter().cloned().zip(record.iter().map(|cell| Value::String(cell.to_string()))).collect())
                })
                .collect::<Result<_>>()?
        }
        ListFormat::Json => {
            let text = fs::read_to_string(list).with_context(|| format!("cannot read {}", list.display()))?;
            let entries = json_list::entries(&text).with_context(|| {
                format!("{}: expected a JSON array of {{\"image\", \"name\", \"description\"?, ...}} objects", list.display())
            })?;
            drop(text);
            entries.into_iter().enumerate().map(|(i, c)| row(i, c)).collect::<Result<_>>()?
        }
    };
    from_rows(rows, base, list, format)
}

/// A folder or a list, whichever `source` is.
pub fn load(source: &Path, name_from: NameFrom) -> Result<(Vec<SourceItem>, usize)> {
    if source.is_dir() {
        let (items, ignored) = from_folder(source, name_from)?;
        for item in &items {
            item_text::check_name(&item.name)
                .with_context(|| format!("{} cannot be a product until renamed", item.path.display()))?;
        }
        Ok((items, ignored))
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
        assert_eq!(slug("Crème Fraîche 2x!"), "creme-fraiche-2x");
        assert_eq!(slug("Café Crème"), "cafe-creme");
        assert_eq!(slug("Молоко"), "moloko");
        assert_ne!(slug("咖啡"), "item");
        assert_eq!(slug("!!!"), "item");
        let long = slug(&"Ab ".repeat(200));
        assert!(long.len() <= MAX_SLUG && item_id::check(&long).is_ok(), "{long}");
        for name in ["../../victim", ".hidden", "a\0b", "-x-", "Crème"] {
            assert!(item_id::check(&slug(name)).is_ok(), "{name:?} -> {}", slug(name));
        }
    }

    fn rows(list: &[(&str, Option<&str>)]) -> Vec<ListRow> {
        list.iter()
            .map(|(name, id)| ListRow {
                image: format!("{name}.jpg"),
                name: name.to_string(),
                description: None,
                id: id.map(str::to_string),
                fields: ItemFields::default(),
            })
            .collect()
    }

    fn ids(list: &[(&str, Option<&str>)]) -> Result<Vec<String>> {
        let items = from_rows(rows(list), Path::new("."), Path::new("list.csv"), ListFormat::Csv)?;
        Ok(items.into_iter().map(|i| i.id).collect())
    }

    #[test]
    fn derived_ids_are_unique_ignoring_case_and_explicit_ones_kept() {
        assert_eq!(ids(&[("a", None), ("a", None), ("a 2", None)]).unwrap(), ["a", "a-3", "a-2"]);
        assert_eq!(ids(&[("a", None), ("a", None), ("a", None)]).unwrap(), ["a", "a-2", "a-3"]);
        assert_eq!(ids(&[("x", None), ("y", Some("A")), ("z", Some("x-2"))]).unwrap(), ["x", "A", "x-2"]);
        assert_eq!(ids(&[("a", None), ("b", Some("A"))]).unwrap(), ["a-2", "A"]);
        let v = ids(&[("x", Some("X")), ("x", None), ("x", None), ("x 2", None)]).unwrap();
        let keys: HashSet<String> = v.iter().map(|i| item_id::collision_key(i)).collect();
        assert_eq!(keys.len(), v.len(), "{v:?}");
        assert_eq!(v[0], "X");
    }

    #[test]
    fn explicit_ids_are_checked_naming_the_row() {
        let e = format!("{:#}", ids(&[("a", None), ("b", Some("../../victim"))]).unwrap_err());
        assert!(e.starts_with("list.csv: row 3: id \"../../victim\" is not allowed (it contains '/')"), "{e}");
        let e = format!("{:#}", ids(&[("a", Some("Soap")), ("b", Some("soap"))]).unwrap_err());
        assert!(e.contains("row 3 has id \"soap\" and row 2 has \"Soap\": ids must differ in more than case"), "{e}");
        let e = format!("{:#}", ids(&[("a", Some("k")), ("b", Some("k"))]).unwrap_err());
        assert!(e.contains("row 3 has id \"k\", as does row 2: ids must be unique"), "{e}");
        assert_eq!(ids(&[("a", Some(""))]).unwrap(), ["a"]);
    }
}
