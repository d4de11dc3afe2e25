//! Which catalog item a labelled photo shows. A label (the name of the photo's folder, or a
//! list's `item` column) is an item's id or its name; names compare as `build` makes them from
//! folder names: ignoring case, with `-`, `_` and runs of spaces read as one space, so the
//! folder `Bravo-Apple-Juice` is the item named "Bravo Apple Juice" (id `bravo-apple-juice`).

use std::collections::HashMap;

use crate::search::catalog::Item;
use crate::search::item_id::collision_key;

/// What a labelled photo shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    /// The catalog item at this position.
    Item(usize),
    /// A product the catalog does not hold: the right answer is "no confident match".
    NotInCatalog,
}

impl Truth {
    pub fn item(self) -> Option<usize> {
        match self {
            Truth::Item(i) => Some(i),
            Truth::NotInCatalog => None,
        }
    }
}

/// Why a label names no single item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("no catalog item has the id or name {0:?}")]
    Unknown(String),
    #[error("{label:?} is the name of several catalog items ({ids}); label these photos by id")]
    Ambiguous { label: String, ids: String },
}

/// A catalog's items by id and by name.
pub struct ItemLookup {
    by_id: HashMap<String, usize>,
    by_name: HashMap<String, Vec<usize>>,
    ids: Vec<String>,
}

/// A name as compared: lowercase words split at spaces, `-` and `_`, joined by one space.
fn name_key(name: &str) -> String {
    let lower = name.to_lowercase();
    lower.split(|c: char| c.is_whitespace() || c == '-' || c == '_').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
}

impl ItemLookup {
    pub fn new(items: &[Item]) -> Self {
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            by_name.entry(name_key(&item.name)).or_default().push(i);
        }
        ItemLookup {
            by_id: items.iter().enumerate().map(|(i, item)| (collision_key(&item.id), i)).collect(),
            by_name,
            ids: items.iter().map(|item| item.id.clone()).collect(),
        }
    }

    /// The item `label` names: the one with that id (ignoring case), else the one with that
    /// name. A name several items share is refused.
    pub fn find(&self, label: &str) -> Result<usize, LabelError> {
        let label = label.trim();
        if let Some(&i) = self.by_id.get(&collision_key(label)) {
            return Ok(i);
        }
        match self.by_name.get(&name_key(label)).map(Vec::as_slice) {
            Some(&[i]) => Ok(i),
            Some(several) if !several.is_empty() => Err(LabelError::Ambiguous {
                label: label.to_string(),
                ids: several.iter().map(|&i| self.ids[i].as_str()).collect::<Vec<_>>().join(", "),
            }),
            _ => Err(LabelError::Unknown(label.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, name: &str) -> Item {
        Item { id: id.into(), name: name.into(), description: None, image: format!("{id}.jpg"), thumbnail: None, fields: Default::default() }
    }

    #[test]
    fn labels_name_items_by_id_or_by_name_as_folders_spell_them() {
        let items = [
            item("bravo-apple-juice", "Bravo Apple Juice"),
            item("oat", "Oatly  Oat_Milk"),
            item("x1", "Twin"),
            item("x2", "twin"),
        ];
        let look = ItemLookup::new(&items);
        assert_eq!(look.find("bravo-apple-juice"), Ok(0));
        assert_eq!(look.find("Bravo-Apple-Juice"), Ok(0));
        assert_eq!(look.find(" Bravo Apple Juice "), Ok(0));
        assert_eq!(look.find("OAT"), Ok(1));
        assert_eq!(look.find("oatly-oat-milk"), Ok(1));
        assert_eq!(look.find("X2"), Ok(3));
        assert_eq!(look.find("Bravo Apple"), Err(LabelError::Unknown("Bravo Apple".into())));
        let e = look.find("TWIN").unwrap_err();
        assert_eq!(e.to_string(), "\"TWIN\" is the name of several catalog items (x1, x2); label these photos by id");
    }
}
