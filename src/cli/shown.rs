//! What the terminal is given of text from outside the program (a catalog's or a list's names,
//! file names, messages quoting them): control characters written as escapes (`\u{1b}`, `\n`),
//! so that none can retitle or clear the terminal, or start a line of its own.

use std::borrow::Cow;
use std::path::Path;

/// `s` with each control character escaped; other text, any script, as it is.
pub fn text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let escaped = s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() });
    Cow::Owned(escaped.collect())
}

/// A path as [`text`] shows it.
pub fn path(p: &Path) -> String {
    text(&p.display().to_string()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_other_text_kept() {
        assert!(matches!(text("Café Crème 咖啡 \\ \"x\""), Cow::Borrowed(_)));
        assert_eq!(text("\u{1b}]0;title\u{7}"), "\\u{1b}]0;title\\u{7}");
        assert_eq!(text("a\u{1b}[2Jb\nc\u{9b}d\u{7f}"), "a\\u{1b}[2Jb\\nc\\u{9b}d\\u{7f}");
        assert_eq!(path(Path::new("/tmp/a\u{1}b.jpg")), "/tmp/a\\u{1}b.jpg");
    }
}
