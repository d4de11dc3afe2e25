//! An item's shop fields: every column of a product list beyond the ones the catalog itself uses
//! (`url`, `price`, `sku`, anything), kept as text in the manifest and carried by results. They
//! are the shop's data, untrusted: bounded in number and size, keys plain text, values text
//! (a JSON number or boolean is kept as its text); the page inserts them as text only and links
//! only `http:`, `https:` or relative URLs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Keys the catalog itself uses (columns of a list, or keys of an item in the manifest or a
/// result): not allowed as field keys, nor anything equal to one of them but for case.
pub const RESERVED: [&str; 6] = ["id", "name", "description", "image", "thumbnail", "fields"];
/// Most fields an item may have.
pub const MAX_FIELDS: usize = 32;
/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 64;
/// Longest value, in bytes (room for a long product URL).
pub const MAX_VALUE_BYTES: usize = 2048;

/// Why a field is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FieldError {
    #[error("has {0} fields; an item may have at most {MAX_FIELDS}")]
    TooMany(usize),
    #[error("field key {0} is longer than {MAX_KEY_BYTES} bytes")]
    KeyTooLong(String),
    #[error("field key {0} is empty or holds control characters")]
    BadKey(String),
    #[error("field {key} is named like the reserved {reserved:?} but for case: rename it")]
    LikeReserved { key: String, reserved: &'static str },
    #[error("field {key} is reserved by the catalog ({reserved})")]
    Reserved { key: String, reserved: String },
    #[error("field {0} is longer than {MAX_VALUE_BYTES} bytes")]
    ValueTooLong(String),
    #[error("field {0} holds control characters")]
    BadValue(String),
    #[error("field {0} is a JSON {1}; fields must be text, numbers or booleans (flatten it into keys of its own)")]
    Nested(String, &'static str),
}

/// An item's fields, by key (sorted, so manifests are deterministic). Empty for catalogs
/// written before fields existed, and then not written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemFields(BTreeMap<String, String>);

impl ItemFields {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Adds a field after checking key and value; an empty value (after trimming) is no field.
    pub fn insert(&mut self, key: &str, value: &str) -> Result<(), FieldError> {
        check_key(key)?;
        let value = value.trim();
        if value.is_empty() {
            return Ok(());
        }
        check_value(key, value)?;
        self.0.insert(key.to_string(), value.to_string());
        if self.0.len() > MAX_FIELDS {
            return Err(FieldError::TooMany(self.0.len()));
        }
        Ok(())
    }

    /// Adds a field from a JSON list's value: text as it is, a number or boolean as its JSON
    /// text, null as no field; an array or object is refused.
    pub fn insert_json(&mut self, key: &str, value: &serde_json::Value) -> Result<(), FieldError> {
        use serde_json::Value;
        match value {
            Value::Null => check_key(key),
            Value::String(s) => self.insert(key, s),
            Value::Number(n) => self.insert(key, &n.to_string()),
            Value::Bool(b) => self.insert(key, if *b { "true" } else { "false" }),
            Value::Array(_) => Err(FieldError::Nested(shown(key), "array")),
            Value::Object(_) => Err(FieldError::Nested(shown(key), "object")),
        }
    }

    /// The checks of [`ItemFields::insert`] on fields read from a manifest.
    pub fn check(&self) -> Result<(), FieldError> {
        if self.0.len() > MAX_FIELDS {
            return Err(FieldError::TooMany(self.0.len()));
        }
        for (k, v) in &self.0 {
            check_key(k)?;
            check_value(k, v)?;
        }
        Ok(())
    }
}

impl FromIterator<(String, String)> for ItemFields {
    /// Unchecked: for callers that made the fields themselves (tests, synthetic catalogs).
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// A key as messages show it: quoted, escaped, at most 40 characters.
fn shown(key: &str) -> String {
    crate::search::item_id::quoted(key)
}

fn check_key(key: &str) -> Result<(), FieldError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(FieldError::KeyTooLong(shown(key)));
    }
    if key.trim().is_empty() || key.chars().any(char::is_control) {
        return Err(FieldError::BadKey(shown(key)));
    }
    if let Some(&reserved) = RESERVED.iter().find(|r| r.eq_ignore_ascii_case(key)) {
        return Err(if reserved == key {
            FieldError::Reserved { key: shown(key), reserved: "a column of its own".into() }
        } else {
            FieldError::LikeReserved { key: shown(key), reserved }
        });
    }
    Ok(())
}

fn check_value(key: &str, value: &str) -> Result<(), FieldError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(FieldError::ValueTooLong(shown(key)));
    }
    // Line breaks and tabs are text a CSV cell may hold; other control characters are not.
    if crate::search::item_text::holds_control(value, true) {
        return Err(FieldError::BadValue(shown(key)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_text_and_odd_ones_refused_or_dropped() {
        let mut f = ItemFields::default();
        f.insert("url", " https://shop.example/p/1 ").unwrap();
        f.insert_json("price", &json!(12.5)).unwrap();
        f.insert_json("in_stock", &json!(true)).unwrap();
        f.insert_json("sku", &json!(null)).unwrap();
        f.insert("note", "   ").unwrap();
        assert_eq!(f.iter().collect::<Vec<_>>(), [("in_stock", "true"), ("price", "12.5"), ("url", "https://shop.example/p/1")]);
        let e = f.insert_json("tags", &json!(["a"])).unwrap_err().to_string();
        assert_eq!(e, "field \"tags\" is a JSON array; fields must be text, numbers or booleans (flatten it into keys of its own)");
        assert!(matches!(f.insert_json("x", &json!({"a": 1})), Err(FieldError::Nested(_, "object"))));
        assert!(matches!(f.insert("v", &"9".repeat(MAX_VALUE_BYTES + 1)), Err(FieldError::ValueTooLong(_))));
        assert!(matches!(f.insert("v", "a\u{0}b"), Err(FieldError::BadValue(_))));
        f.insert("multi", "line one\nline two").unwrap();
    }

    #[test]
    fn keys_are_bounded_and_reserved_ones_refused_in_any_case() {
        let mut f = ItemFields::default();
        assert!(matches!(f.insert("Name", "x"), Err(FieldError::LikeReserved { reserved: "name", .. })));
        assert!(matches!(f.insert("thumbnail", "x"), Err(FieldError::Reserved { .. })));
        assert!(matches!(f.insert(&"k".repeat(MAX_KEY_BYTES + 1), "x"), Err(FieldError::KeyTooLong(_))));
        assert!(matches!(f.insert(" ", "x"), Err(FieldError::BadKey(_))));
        assert!(matches!(f.insert("a\tb", "x"), Err(FieldError::BadKey(_))));
        for i in 0..MAX_FIELDS {
            f.insert(&format!("k{i}"), "v").unwrap();
        }
        assert_eq!(f.insert("one-more", "v"), Err(FieldError::TooMany(MAX_FIELDS + 1)));
    }

    #[test]
    fn fields_read_from_a_manifest_are_checked_as_when_built() {
        let ok: ItemFields = serde_json::from_str(r#"{"price":"3","url":"/p"}"#).unwrap();
        assert_eq!(ok.check(), Ok(()));
        let bad: ItemFields = serde_json::from_str(r#"{"ID":"3"}"#).unwrap();
        assert!(matches!(bad.check(), Err(FieldError::LikeReserved { .. })));
        assert_eq!(serde_json::to_string(&ok).unwrap(), r#"{"price":"3","url":"/p"}"#);
    }
}
