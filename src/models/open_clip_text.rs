//! A text as open_clip's `SimpleTokenizer` (open_clip_torch 3.3.0, `tokenizer.py`) has it
//! before its byte-level BPE: cleaned by `_clean_lower` ([`clean`]), then cut into words by its
//! pattern, in which its own special tokens `<start_of_text>` and `<end_of_text>` are matched
//! as words ([`pieces`]). CLIP's `<|startoftext|>` typed in a text is ordinary text there.
//!
//! `_clean_lower` is ftfy's `fix_text`, HTML entities unescaped twice (`html.unescape`),
//! whitespace collapsed (`" ".join(text.split())`) and lower case. Of ftfy 6.3's `fix_text`,
//! the fixes that change text which is not mojibake are reproduced, in its order and repeated
//! until nothing changes, line by line: HTML entities ending in `;` unescaped (only while no
//! line so far holds a `<`), C1 controls read as Windows-1252, Latin ligatures split, full- and
//! half-width forms made normal width, curly quotes straightened, terminal escapes and control
//! characters removed, NFC. Line-break fixes are left out, as whitespace is collapsed after.
//! Not reproduced: ftfy's repair of mojibake (text decoded in the wrong encoding), its
//! all-caps entity names (`&EACUTE;`), and Python's entities without `;` (`&amp` alone).

use std::sync::LazyLock;

use regex::Regex;
use tokenizers::NormalizedString;

/// open_clip's special tokens, as typed in a text.
pub const START_OF_TEXT: &str = "<start_of_text>";
pub const END_OF_TEXT: &str = "<end_of_text>";

/// A piece of a cleaned text: a word for the BPE, or one of open_clip's special tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    Word(&'a str),
    StartOfText,
    EndOfText,
}

/// `SimpleTokenizer.pat`: its special tokens, then CLIP's pattern (the text is lower case).
static WORDS: LazyLock<Regex> = LazyLock::new(|| {
    let clip = r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";
    Regex::new(&format!("(?i){START_OF_TEXT}|{END_OF_TEXT}|{clip}")).expect("a valid pattern")
});

/// ftfy's `ANSI_RE`.
static TERMINAL_ESCAPE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\x1b\[(?:\d|;)*[a-zA-Z]").expect("a valid pattern"));

/// The words of a cleaned text, as `re.findall(self.pat, text)` gives them.
pub fn pieces(clean: &str) -> impl Iterator<Item = Piece<'_>> {
    WORDS.find_iter(clean).map(|m| match m.as_str() {
        START_OF_TEXT => Piece::StartOfText,
        END_OF_TEXT => Piece::EndOfText,
        word => Piece::Word(word),
    })
}

/// open_clip's `_clean_lower`: `whitespace_clean(basic_clean(text)).lower()`.
pub fn clean(text: &str) -> String {
    let fixed = fix_text(text);
    let unescaped =
        html_escape::decode_html_entities(&html_escape::decode_html_entities(&fixed)).into_owned();
    unescaped
        .split(is_python_space)
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Python's `str.isspace`: Unicode white space and the four information separators.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// ftfy's `fix_text`, line by line (see the module doc).
fn fix_text(text: &str) -> String {
    let mut unescape = true;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        unescape &= !line.contains('<');
        out.push_str(&fix_line(line, unescape));
    }
    out
}

/// ftfy's `fix_and_explain` on one line: its fixes in order until the text stops changing.
fn fix_line(line: &str, unescape: bool) -> String {
    let mut text = line.to_string();
    loop {
        let before = text.clone();
        if unescape {
            text = html_escape::decode_html_entities(&text).into_owned();
        }
        text = text.chars().fold(String::with_capacity(text.len()), push_fixed);
        text = TERMINAL_ESCAPE.replace_all(&text, "").into_owned();
        text.retain(|c| !is_control(c));
        let mut normalized = NormalizedString::from(text.as_str());
        normalized.nfc();
        text = normalized.get().to_string();
        if text == before {
            return text;
        }
    }
}

/// `out` with what ftfy's `fix_c1_controls`, `fix_latin_ligatures`, `fix_character_width` and
/// `uncurl_quotes` make of `c` (a fix one of them makes for another shows on the next round).
fn push_fixed(mut out: String, c: char) -> String {
    match c {
        '\u{80}'..='\u{9f}' => out.push(windows_1252(c)),
        '\u{02bc}' | '\u{2018}'..='\u{201b}' => out.push('\''),
        '\u{201c}'..='\u{201f}' => out.push('"'),
        '\u{3000}' => out.push(' '),
        '\u{ff01}'..='\u{ffef}' => {
            let mut n = NormalizedString::from(c.to_string().as_str());
            n.nfkc();
            out.push_str(n.get());
        }
        _ => match LIGATURES.iter().find(|(l, _)| *l == c) {
            Some((_, letters)) => out.push_str(letters),
            None => out.push(c),
        },
    }
    out
}

/// ftfy's `LIGATURES`.
const LIGATURES: [(char, &str); 22] = [
    ('Ĳ', "IJ"),
    ('ĳ', "ij"),
    ('ŉ', "ʼn"),
    ('Ǳ', "DZ"),
    ('ǲ', "Dz"),
    ('ǳ', "dz"),
    ('Ǆ', "DŽ"),
    ('ǅ', "Dž"),
    ('ǆ', "dž"),
    ('Ǉ', "LJ"),
    ('ǈ', "Lj"),
    ('ǉ', "lj"),
    ('Ǌ', "NJ"),
    ('ǋ', "Nj"),
    ('ǌ', "nj"),
    ('ﬀ', "ff"),
    ('ﬁ', "fi"),
    ('ﬂ', "fl"),
    ('ﬃ', "ffi"),
    ('ﬄ', "ffl"),
    ('ﬅ', "ſt"),
    ('ﬆ', "st"),
];

/// A C1 control (U+0080 to U+009F) read as the Windows-1252 byte it is (ftfy's
/// "sloppy-windows-1252": the five bytes Windows-1252 leaves undefined stay as they are).
fn windows_1252(c: char) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}',
        '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
    ];
    HIGH[c as usize - 0x80]
}

/// ftfy's `CONTROL_CHARS`: the controls `remove_control_chars` deletes.
fn is_control(c: char) -> bool {
    matches!(
        c,
        '\0'..='\x08'
            | '\x0b'
            | '\x0e'..='\x1f'
            | '\x7f'
            | '\u{206a}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffc}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_follows_open_clip() {
        assert_eq!(
            clean("  Ben &amp;amp; Jerry’s\u{3000}ﬁne\x0bTAB  "),
            "ben & jerry's finetab"
        );
        assert_eq!(clean("x\u{85}y \x1b[31mred\x1b[0m ＡＢＣ"), "x…y red abc");
        // A `<` on a line stops ftfy's own unescaping from there on; open_clip's twice remains.
        assert_eq!(clean("<b> &amp;amp;amp;"), "<b> &amp;");
        assert_eq!(clean("&amp;amp;amp;\n<b>"), "& <b>");
    }

    #[test]
    fn only_open_clips_own_markers_are_special() {
        let text = clean("<|startoftext|>A<START_OF_TEXT>b!<end_of_text>");
        let got: Vec<Piece> = pieces(&text).collect();
        let want = [
            Piece::Word("<|"),
            Piece::Word("startoftext"),
            Piece::Word("|>"),
            Piece::Word("a"),
            Piece::StartOfText,
        ];
        assert_eq!(&got[..5], &want);
        assert_eq!(
            &got[5..],
            &[
                Piece::Word("b"),
                Piece::Word("!<"),
                Piece::Word("end"),
                Piece::Word("_"),
                Piece::Word("of"),
                Piece::Word("_"),
                Piece::Word("text"),
                Piece::Word(">")
            ]
        );
    }
}
