//! An item's name and description: the shop's text, which the page shows and the tool prints.
//! Bounded in size (a name is embedded by the text tower, which reads only its first few dozen
//! tokens), and free of control characters: a name holds none, a description only line breaks
//! and tabs, as a CSV cell may (as field values, [`crate::search::item_fields`]). So no name
//! can retitle or clear a terminal.

use thiserror::Error;

use crate::search::item_id::quoted;

/// Longest name, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;
/// Longest description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 16 * 1024;

/// Why a name or a description is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TextError {
    #[error("its name is {0} bytes long; a name may have at most {MAX_NAME_BYTES}")]
    NameTooLong(usize),
    #[error("its name {0} holds control characters")]
    NameControl(String),
    #[error("its description is {0} bytes long; a description may have at most {MAX_DESCRIPTION_BYTES}")]
    DescriptionTooLong(usize),
    #[error("its description {0} holds control characters other than line breaks and tabs")]
    DescriptionControl(String),
}

/// True when `text` holds a control character; line breaks and tabs only count when
/// `breaks_allowed` is false.
pub fn holds_control(text: &str, breaks_allowed: bool) -> bool {
    text.chars().any(|c| c.is_control() && !(breaks_allowed && matches!(c, '\n' | '\r' | '\t')))
}

/// Refuses a name longer than [`MAX_NAME_BYTES`] or holding a control character.
pub fn check_name(name: &str) -> Result<(), TextError> {
    if name.len() > MAX_NAME_BYTES {
        return Err(TextError::NameTooLong(name.len()));
    }
    if holds_control(name, false) {
        return Err(TextError::NameControl(quoted(name)));
    }
    Ok(())
}

/// Refuses a description longer than [`MAX_DESCRIPTION_BYTES`] or holding a control character
/// other than a line break or a tab.
pub fn check_description(description: &str) -> Result<(), TextError> {
    if description.len() > MAX_DESCRIPTION_BYTES {
        return Err(TextError::DescriptionTooLong(description.len()));
    }
    if holds_control(description, true) {
        return Err(TextError::DescriptionControl(quoted(description)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_hold_no_control_characters_and_descriptions_only_breaks() {
        for name in ["Café Crème", "Oat milk 1 l", "咖啡", &"x".repeat(MAX_NAME_BYTES)] {
            assert_eq!(check_name(name), Ok(()), "{name}");
        }
        for name in ["\u{1b}]0;title\u{7}", "clear \u{1b}[2J", "a\u{1}b", "two\nlines", "tab\there", "c1 \u{9b}2J"] {
            let e = check_name(name).unwrap_err().to_string();
            assert!(e.contains("holds control characters") && !e.chars().any(char::is_control), "{e}");
        }
        assert_eq!(check_description("line one\r\nline two\tand a tab"), Ok(()));
        let e = check_description("a \u{1b}[2J b").unwrap_err().to_string();
        assert_eq!(e, "its description \"a \\u{1b}[2J b\" holds control characters other than line breaks and tabs");
    }

    #[test]
    fn names_and_descriptions_are_bounded() {
        let e = check_name(&"n".repeat(MAX_NAME_BYTES + 1)).unwrap_err();
        assert_eq!(e.to_string(), "its name is 1025 bytes long; a name may have at most 1024");
        assert_eq!(check_description(&"d".repeat(MAX_DESCRIPTION_BYTES)), Ok(()));
        let e = check_description(&"d".repeat(MAX_DESCRIPTION_BYTES + 1)).unwrap_err();
        assert_eq!(e, TextError::DescriptionTooLong(MAX_DESCRIPTION_BYTES + 1));
    }
}
