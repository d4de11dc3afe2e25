//! A SentencePiece model file (`spiece.model`, the protobuf `ModelProto` of sentencepiece's
//! `sentencepiece_model.proto`) read into what a Unigram tokenizer needs: the pieces with their
//! scores and types, the normaliser's precompiled character map, and the settings that change
//! how text is cut. Only what SigLIP v1's file (T5's `cc_en.32000`) uses is accepted: a Unigram
//! model, whitespace escaped to `▁` and a dummy prefix, extra whitespace removed, no user-defined
//! pieces, no digit splitting. Anything else is refused in one line; so is a file over
//! [`MAX_SPIECE_BYTES`].

use crate::error::ModelError;

/// Largest `spiece.model` read (T5's is 0.8 MB; Gemma's 256k-piece model is 4.2 MB).
pub const MAX_SPIECE_BYTES: usize = 16 << 20;
/// Most pieces accepted.
const MAX_PIECES: usize = 1 << 21;

/// What a piece is (`SentencePiece.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub piece: String,
    pub score: f32,
    pub kind: PieceType,
}

/// The parts of a SentencePiece model a Unigram tokenizer is built from.
#[derive(Debug, Clone)]
pub struct SpieceModel {
    pub pieces: Vec<Piece>,
    /// The normaliser's rules (`normalizer_spec.precompiled_charsmap`; empty for `identity`).
    pub precompiled_charsmap: Vec<u8>,
    pub unk_id: usize,
    pub byte_fallback: bool,
}

fn bad(message: String) -> ModelError {
    ModelError::Tokenizer(format!("spiece.model: {message}"))
}

/// One field's value as the wire format has it.
enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// Reads protobuf fields in order, checking every length against what is left.
struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Result<u64, ModelError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.buf.split_first().ok_or_else(|| bad("a number runs past the end of the file".into()))?;
            self.buf = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(bad("a number is longer than 10 bytes".into()))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], ModelError> {
        let n = usize::try_from(n).ok().filter(|&n| n <= self.buf.len());
        let n = n.ok_or_else(|| bad("a field runs past the end of the file".into()))?;
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// The next (field number, value), or `None` at the end.
    fn next_field(&mut self) -> Result<Option<(u64, Value<'a>)>, ModelError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let len = self.varint()?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                let b = self.take(4)?;
                Value::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            wire => return Err(bad(format!("field {} has wire type {wire}, which this format does not use", key >> 3))),
        };
        Ok(Some((key >> 3, value)))
    }
}

/// Calls `each` with every field of `message`.
fn for_each_field<'a>(
    message: &'a [u8],
    mut each: impl FnMut(u64, Value<'a>) -> Result<(), ModelError>,
) -> Result<(), ModelError> {
    let mut fields = Fields { buf: message };
    while let Some((number, value)) = fields.next_field()? {
        each(number, value)?;
    }
    Ok(())
}

fn text(bytes: &[u8], what: &str) -> Result<String, ModelError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| bad(format!("{what} is not UTF-8")))
}

fn piece(message: &[u8]) -> Result<Piece, ModelError> {
    let mut p = Piece { piece: String::new(), score: 0.0, kind: PieceType::Normal };
    for_each_field(message, |number, value| {
        match (number, value) {
            (1, Value::Bytes(b)) => p.piece = text(b, "a piece")?,
            (2, Value::Fixed32(bits)) => p.score = f32::from_bits(bits),
            (3, Value::Varint(t)) => {
                p.kind = match t {
                    1 => PieceType::Normal,
                    2 => PieceType::Unknown,
                    3 => PieceType::Control,
                    4 => PieceType::UserDefined,
                    5 => PieceType::Unused,
                    6 => PieceType::Byte,
                    other => return Err(bad(format!("piece type {other} is not one of sentencepiece's"))),
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    if p.piece.is_empty() || !p.score.is_finite() {
        return Err(bad("a piece is empty or has no finite score".into()));
    }
    Ok(p)
}

/// `TrainerSpec` / `NormalizerSpec` settings that decide how text is cut, at sentencepiece's defaults.
struct Settings {
    model_type: u64,
    unk_id: i64,
    byte_fallback: bool,
    split_by_whitespace: bool,
    treat_whitespace_as_suffix: bool,
    split_digits: bool,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
    precompiled_charsmap: Vec<u8>,
}

impl SpieceModel {
    /// Parses `spiece.model` and refuses what this tokenizer does not reproduce.
    pub fn parse(bytes: &[u8]) -> Result<Self, ModelError> {
        if bytes.len() > MAX_SPIECE_BYTES {
            return Err(bad(format!("{} bytes; a SentencePiece model over {MAX_SPIECE_BYTES} bytes is refused", bytes.len())));
        }
        let mut pieces = Vec::new();
        let mut s = Settings {
            model_type: 1,
            unk_id: 0,
            byte_fallback: false,
            split_by_whitespace: true,
            treat_whitespace_as_suffix: false,
            split_digits: false,
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            escape_whitespaces: true,
            precompiled_charsmap: Vec::new(),
        };
        for_each_field(bytes, |number, value| {
            match (number, value) {
                (1, Value::Bytes(b)) => {
                    if pieces.len() == MAX_PIECES {
                        return Err(bad(format!("more than {MAX_PIECES} pieces")));
                    }
                    pieces.push(piece(b)?);
                }
                (2, Value::Bytes(b)) => for_each_field(b, |n, v| {
                    match (n, v) {
                        (3, Value::Varint(t)) => s.model_type = t,
                        (22, Value::Varint(v)) => s.split_by_whitespace = v != 0,
                        (24, Value::Varint(v)) => s.treat_whitespace_as_suffix = v != 0,
                        (25, Value::Varint(v)) => s.split_digits = v != 0,
                        (35, Value::Varint(v)) => s.byte_fallback = v != 0,
                        (40, Value::Varint(v)) => s.unk_id = v as i64,
                        _ => {}
                    }
                    Ok(())
                })?,
                (3, Value::Bytes(b)) => for_each_field(b, |n, v| {
                    match (n, v) {
                        (2, Value::Bytes(map)) => s.precompiled_charsmap = map.to_vec(),
                        (3, Value::Varint(v)) => s.add_dummy_prefix = v != 0,
                        (4, Value::Varint(v)) => s.remove_extra_whitespaces = v != 0,
                        (5, Value::Varint(v)) => s.escape_whitespaces = v != 0,
                        _ => {}
                    }
                    Ok(())
                })?,
                _ => {}
            }
            Ok(())
        })?;
        Self::check(pieces, s)
    }

    fn check(pieces: Vec<Piece>, s: Settings) -> Result<Self, ModelError> {
        if s.model_type != 1 {
            return Err(bad(format!("model type {} is not Unigram (1), which SigLIP's is", s.model_type)));
        }
        let unsupported = [
            (!s.add_dummy_prefix, "add_dummy_prefix false"),
            (!s.remove_extra_whitespaces, "remove_extra_whitespaces false"),
            (!s.escape_whitespaces, "escape_whitespaces false"),
            (!s.split_by_whitespace, "split_by_whitespace false"),
            (s.treat_whitespace_as_suffix, "treat_whitespace_as_suffix"),
            (s.split_digits, "split_digits"),
        ];
        if let Some((_, what)) = unsupported.iter().find(|(on, _)| *on) {
            return Err(bad(format!("{what} is not supported (SigLIP's model has sentencepiece's defaults)")));
        }
        if let Some(p) = pieces.iter().find(|p| p.kind == PieceType::UserDefined) {
            return Err(bad(format!("user-defined piece {:?} is not supported", p.piece)));
        }
        let unk_id = usize::try_from(s.unk_id)
            .ok()
            .filter(|&id| pieces.get(id).is_some_and(|p| p.kind == PieceType::Unknown))
            .ok_or_else(|| bad(format!("unk_id {} is not an unknown piece of the {} pieces", s.unk_id, pieces.len())))?;
        Ok(Self { pieces, precompiled_charsmap: s.precompiled_charsmap, unk_id, byte_fallback: s.byte_fallback })
    }

    /// The id of `piece`, if the model has it.
    pub fn id_of(&self, piece: &str) -> Option<u32> {
        self.pieces.iter().position(|p| p.piece == piece).map(|i| i as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A protobuf field: key, then the value as given.
    fn field(number: u64, wire: u64, value: &[u8]) -> Vec<u8> {
        let mut out = varint(number << 3 | wire);
        if wire == 2 {
            out.extend(varint(value.len() as u64));
        }
        out.extend_from_slice(value);
        out
    }

    fn varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    fn piece_field(text: &str, score: f32, kind: u64) -> Vec<u8> {
        let mut p = field(1, 2, text.as_bytes());
        p.extend(field(2, 5, &score.to_le_bytes()));
        p.extend(field(3, 0, &varint(kind)));
        field(1, 2, &p)
    }

    fn model(extra_trainer: &[u8]) -> Vec<u8> {
        let mut m = piece_field("<pad>", 0.0, 3);
        m.extend(piece_field("</s>", 0.0, 3));
        m.extend(piece_field("<unk>", 0.0, 2));
        m.extend(piece_field("\u{2581}a", -1.5, 1));
        let mut trainer = field(40, 0, &varint(2));
        trainer.extend_from_slice(extra_trainer);
        m.extend(field(2, 2, &trainer));
        m
    }

    #[test]
    fn reads_pieces_scores_types_and_the_unknown_piece() {
        let m = SpieceModel::parse(&model(&[])).unwrap();
        assert_eq!(m.pieces.len(), 4);
        assert_eq!(m.pieces[3], Piece { piece: "\u{2581}a".into(), score: -1.5, kind: PieceType::Normal });
        assert_eq!((m.unk_id, m.id_of("</s>"), m.id_of("zz")), (2, Some(1), None));
    }

    #[test]
    fn refuses_damaged_and_unsupported_files_in_one_line() {
        let good = model(&[]);
        for cut in [1, 7, good.len() - 1] {
            let e = SpieceModel::parse(&good[..cut]).unwrap_err().to_string();
            assert!(e.contains("spiece.model: ") && !e.contains('\n'), "{e}");
        }
        let bpe = model(&field(3, 0, &varint(2)));
        assert!(SpieceModel::parse(&bpe).unwrap_err().to_string().contains("not Unigram"));
        let digits = model(&field(25, 0, &varint(1)));
        assert!(SpieceModel::parse(&digits).unwrap_err().to_string().contains("split_digits"));
        let wrong_unk = model(&field(40, 0, &varint(3)));
        assert!(SpieceModel::parse(&wrong_unk).unwrap_err().to_string().contains("unk_id 3"));
        let huge = vec![0u8; MAX_SPIECE_BYTES + 1];
        assert!(SpieceModel::parse(&huge).unwrap_err().to_string().contains("is refused"));
        assert!(SpieceModel::parse(b"{\"not\": \"protobuf\"}").is_err());
    }
}
