//! A JSON product list's entries: an array of objects, read as serde_json reads them but for
//! two things. A UTF-8 byte order mark before the array is passed over (editors on Windows
//! write one); and an object that gives a key twice is refused, naming its entry (serde_json
//! would keep the last value, so a `url` could change unseen).

use std::fmt;

use clipmatch::search::item_id::quoted;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The entries of the list `text`, each object's keys and values.
pub fn entries(text: &str) -> serde_json::Result<Vec<Map<String, Value>>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut de = serde_json::Deserializer::from_str(text);
    let entries = de.deserialize_seq(Entries)?;
    de.end()?;
    Ok(entries)
}

/// The array.
struct Entries;

impl<'de> Visitor<'de> for Entries {
    type Value = Vec<Map<String, Value>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(entry) = seq.next_element_seed(Entry(out.len() + 1))? {
            out.push(entry);
        }
        Ok(out)
    }
}

/// The object of entry `.0` (from 1).
struct Entry(usize);

impl<'de> DeserializeSeed<'de> for Entry {
    type Value = Map<String, Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Entry {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "entry {} to be an object", self.0)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("entry {} gives the key {} twice", self.0, quoted(&key))));
            }
            let value = map.next_value()?;
            out.insert(key, value);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_read_in_order_and_a_byte_order_mark_passed_over() {
        let list = r#"[{"image": "a.jpg", "name": "A", "price": 2}, {"name": "B", "image": "b.jpg"}]"#;
        let read = entries(list).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0]["price"], 2);
        assert_eq!(entries(&format!("\u{feff}{list}")).unwrap(), read);
        assert!(entries("[]").unwrap().is_empty());
    }

    #[test]
    fn a_key_given_twice_is_refused_naming_the_entry() {
        let e = entries(r#"[{"image": "a.jpg", "name": "A"}, {"url": "/good", "image": "b.jpg", "url": "/bad"}]"#)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("entry 2 gives the key \"url\" twice at line 1"), "{e}");
        let e = entries(r#"[{"name": "A"}, "b"]"#).unwrap_err().to_string();
        assert!(e.contains("expected entry 2 to be an object"), "{e}");
        assert!(entries(r#"{"name": "A"}"#).is_err());
        assert!(entries(r#"[{"name": "A"}] x"#).is_err());
    }
}
