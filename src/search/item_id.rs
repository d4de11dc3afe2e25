//! Item ids. An id names its thumbnail file (`thumbs/<id>.jpg`) and appears in URLs, so it is
//! kept to characters that are safe in a file name on every system and in a URL path: ASCII
//! letters, digits, `-`, `_` and `.`. Ids are compared case-insensitively, since two thumbnails
//! whose names differ only in case are one file on macOS and Windows.

use thiserror::Error;

/// Longest id, in bytes.
pub const MAX_LEN: usize = 128;

/// The rule, as error messages state it.
pub const RULE: &str =
    "an id is 1 to 128 ASCII letters, digits, '-', '_' or '.', starts with a letter or digit and has no \"..\"";

/// Why an id is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("id {shown} is not allowed ({reason}): {RULE}")]
pub struct InvalidId {
    /// The id, quoted and escaped, shortened if long.
    pub shown: String,
    pub reason: String,
}

/// `id` quoted with control characters escaped, at most 40 characters of it.
pub fn quoted(id: &str) -> String {
    const SHOWN: usize = 40;
    if id.chars().count() <= SHOWN {
        format!("{id:?}")
    } else {
        let head: String = id.chars().take(SHOWN).collect();
        format!("{head:?}...")
    }
}

/// Checks `id` against [`RULE`].
pub fn check(id: &str) -> Result<(), InvalidId> {
    let fail = |reason: String| Err(InvalidId { shown: quoted(id), reason });
    let Some(first) = id.chars().next() else {
        return fail("it is empty".into());
    };
    if id.len() > MAX_LEN {
        return fail(format!("it is {} bytes long", id.len()));
    }
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        return fail(if c.is_control() {
            format!("it contains the control character U+{:04X}", c as u32)
        } else {
            format!("it contains {c:?}")
        });
    }
    if !first.is_ascii_alphanumeric() {
        return fail(format!("it starts with {first:?}"));
    }
    if id.contains("..") {
        return fail("it contains \"..\"".into());
    }
    Ok(())
}

/// The key under which ids collide: two ids with the same key name the same thumbnail on a
/// case-insensitive file system.
pub fn collision_key(id: &str) -> String {
    id.to_ascii_lowercase()
}

/// The thumbnail of item `id`, relative to the manifest: the only name the format allows.
pub fn thumbnail_file(id: &str) -> String {
    format!("thumbs/{id}.jpg")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_slugs_skus_and_dotted_ids() {
        for id in ["a", "bravo-apple-juice", "SKU_123", "12.5-oz", "A.b_c-9", &"x".repeat(MAX_LEN)] {
            assert_eq!(check(id), Ok(()), "{id}");
        }
    }

    #[test]
    fn refuses_what_could_leave_the_folder_or_break_a_url() {
        for (id, reason) in [
            ("", "it is empty"),
            ("../../victim", "it contains '/'"),
            ("a/b", "it contains '/'"),
            ("a\\b", "it contains '\\\\'"),
            ("a\0b", "it contains the control character U+0000"),
            ("a\nb", "it contains the control character U+000A"),
            (".hidden", "it starts with '.'"),
            ("-x", "it starts with '-'"),
            ("a..b", "it contains \"..\""),
            ("a b", "it contains ' '"),
            ("a#b", "it contains '#'"),
            ("café", "it contains 'é'"),
        ] {
            let e = check(id).unwrap_err();
            assert_eq!(e.reason, reason, "{id:?}");
            let msg = e.to_string();
            assert!(!msg.contains('\n') && !msg.contains('\0'), "one line: {msg}");
            assert!(msg.ends_with(RULE), "{msg}");
        }
        let long = "x".repeat(MAX_LEN + 1);
        let e = check(&long).unwrap_err();
        assert_eq!(e.reason, "it is 129 bytes long");
        assert!(e.shown.ends_with("...") && e.shown.len() < 50, "{}", e.shown);
    }

    #[test]
    fn ids_differing_in_case_collide() {
        assert_eq!(collision_key("Apple-Juice"), collision_key("apple-juice"));
        assert_ne!(collision_key("a-2"), collision_key("a-3"));
        assert_eq!(thumbnail_file("a-2"), "thumbs/a-2.jpg");
    }
}
