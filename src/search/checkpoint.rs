//! A build's checkpoint: the embeddings it has computed so far, appended one record at a time
//! as the build goes, so that a build killed at any point resumes where it stopped.
//!
//! The file: [`MAGIC`], the header's length (u32, little-endian) and the header as JSON (the
//! build's [`Recipe`] and the digest of its input list), then records. A record is its body's
//! length (u32), the body, and the body's sha256 (32 bytes). A body is a kind byte, then
//! - `I`: the sha256 (hex) of a photo's file, its unit vector, the thumbnail file it was
//!   written to (`thumbs/<id>.jpg`, in the staging folder) and that thumbnail's sha256 (hex);
//! - `N`: a name (UTF-8) and its unit vector;
//! - `C`: nothing more: the records since the previous `C` are complete (a batch of photos
//!   embedded together, or of names).
//!
//! strings as a u32 length and bytes, vectors as a u32 length and f32 values (little-endian).
//! Reading stops at the first record that is cut short (the build was killed while writing it)
//! or damaged; the records up to the last `C` before it are used, and the file is to be cut
//! back to them before more are appended: a batch is reused whole or not at all, so the photos
//! embedded again are embedded in the same company as before (some engines' results depend on
//! the make-up of a batch). A header from another recipe, input list or batch size makes the
//! whole file unused.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::digest::{is_sha256_hex, sha256_hex};
use crate::error::CheckpointError;
use crate::search::build_recipe::Recipe;
use crate::search::item_id;

/// The file's first bytes.
pub const MAGIC: &[u8] = b"clipmatch-checkpoint 1\n";
/// Largest header or record body read (a record holds one vector and a few names).
const MAX_PART: usize = 16 << 20;
const IMAGE: u8 = b'I';
const NAME: u8 = b'N';
const COMMIT: u8 = b'C';

/// What a checkpoint is valid for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointHeader {
    pub recipe: Recipe,
    /// [`crate::search::build_recipe::inputs_sha256`] of the build's input list.
    pub inputs_sha256: String,
    /// Photos per vision tower call (batches are reused whole).
    pub batch_size: usize,
    /// For an update, the `vectors.sha256` of the catalog updated (what it reuses decides which
    /// photos a batch embeds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updating: Option<String>,
}

/// A checkpointed photo: its vector and where its thumbnail was written.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointedImage {
    pub vector: Vec<f32>,
    /// `thumbs/<id>.jpg`, relative to the staging folder.
    pub thumbnail_file: String,
    /// sha256 (hex) of that thumbnail, to be checked before it is reused.
    pub thumbnail_sha256: String,
}

/// The records read from a checkpoint.
#[derive(Debug, Default)]
pub struct Checkpoint {
    /// By the sha256 of the photo's file.
    pub images: HashMap<String, CheckpointedImage>,
    /// By the name's text.
    pub names: HashMap<String, Vec<f32>>,
    /// Bytes of the file that hold the header and the good records: the file is cut back to
    /// this length before more records are appended.
    pub valid_len: usize,
    /// Why reading stopped before the end of the file, if it did.
    pub stopped: Option<String>,
}

/// The file's start: magic and header.
pub fn header_bytes(header: &CheckpointHeader) -> Vec<u8> {
    let json = serde_json::to_vec(header).expect("header serialises");
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn put_vector(out: &mut Vec<u8>, v: &[f32]) {
    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
}

fn record(body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 36);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&hex_to_bytes(&sha256_hex(&body)));
    out
}

fn hex_to_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digits")).collect()
}

/// The record of a photo embedded by the build (see the module's doc).
pub fn image_record(sha256: &str, vector: &[f32], thumbnail_file: &str, thumbnail: &[u8]) -> Vec<u8> {
    let mut body = vec![IMAGE];
    put_bytes(&mut body, sha256.as_bytes());
    put_vector(&mut body, vector);
    put_bytes(&mut body, thumbnail_file.as_bytes());
    put_bytes(&mut body, sha256_hex(thumbnail).as_bytes());
    record(body)
}

/// The record that completes the records since the previous one (a batch).
pub fn commit_record() -> Vec<u8> {
    record(vec![COMMIT])
}

/// The record of a name embedded by the build.
pub fn name_record(name: &str, vector: &[f32]) -> Vec<u8> {
    let mut body = vec![NAME];
    put_bytes(&mut body, name.as_bytes());
    put_vector(&mut body, vector);
    record(body)
}

/// Reads little-endian parts from a byte slice; `None` when it runs out.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len())?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Some(out)
    }

    fn u32(&mut self) -> Option<usize> {
        self.take(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()?;
        self.take(n)
    }

    fn text(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }

    fn vector(&mut self, dim: usize) -> Option<Vec<f32>> {
        if self.u32()? != dim {
            return None;
        }
        let raw = self.take(dim.checked_mul(4)?)?;
        let v: Vec<f32> = raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        v.iter().all(|x| x.is_finite()).then_some(v)
    }

    fn done(&self) -> bool {
        self.at == self.bytes.len()
    }
}

/// A thumbnail file name the build could have written: `thumbs/<id>.jpg` with a valid id.
fn is_thumbnail_file(file: &str) -> bool {
    file.strip_prefix("thumbs/")
        .and_then(|f| f.strip_suffix(".jpg"))
        .is_some_and(|id| item_id::check(id).is_ok())
}

/// One record's body into `into` (a commit: `into` is complete); `false` if it is not a record
/// this build could have written.
fn read_body(body: &[u8], dim: usize, into: &mut Checkpoint) -> bool {
    let mut r = Reader { bytes: body, at: 0 };
    match r.take(1) {
        Some([COMMIT]) => r.done(),
        Some([IMAGE]) => {
            let (Some(sha), Some(vector), Some(file), Some(thumb)) = (r.text(), r.vector(dim), r.text(), r.text()) else {
                return false;
            };
            if !(r.done() && is_sha256_hex(sha) && is_sha256_hex(thumb) && is_thumbnail_file(file)) {
                return false;
            }
            let image = CheckpointedImage { vector, thumbnail_file: file.to_string(), thumbnail_sha256: thumb.to_string() };
            into.images.insert(sha.to_string(), image);
            true
        }
        Some([NAME]) => {
            let (Some(name), Some(vector)) = (r.text(), r.vector(dim)) else { return false };
            if !r.done() {
                return false;
            }
            into.names.insert(name.to_string(), vector);
            true
        }
        _ => false,
    }
}

/// The checkpoint in `bytes`, if it was made for `expected` (the same recipe, compared with
/// [`Recipe::difference`], and the same input list); its good records, and why reading
/// stopped early if it did.
pub fn read(bytes: &[u8], expected: &CheckpointHeader) -> Result<Checkpoint, CheckpointError> {
    let not = |why: &str| CheckpointError::NotACheckpoint(why.to_string());
    if !bytes.starts_with(MAGIC) {
        return Err(not("it does not start as one"));
    }
    let mut r = Reader { bytes, at: MAGIC.len() };
    let json = r.bytes().filter(|j| j.len() <= MAX_PART).ok_or_else(|| not("its header is cut short"))?;
    let header: CheckpointHeader = serde_json::from_slice(json).map_err(|e| not(&format!("its header is not valid: {e}")))?;
    if let Some(diff) = expected.recipe.difference(&header.recipe) {
        return Err(CheckpointError::Recipe(diff));
    }
    if header.inputs_sha256 != expected.inputs_sha256 {
        return Err(CheckpointError::Inputs);
    }
    if header.batch_size != expected.batch_size {
        return Err(CheckpointError::BatchSize { found: header.batch_size, expected: expected.batch_size });
    }
    if header.updating != expected.updating {
        return Err(CheckpointError::Updating);
    }
    let dim = expected.recipe.model.embedding_dim;
    let mut out = Checkpoint { valid_len: r.at, ..Checkpoint::default() };
    // Records since the last commit.
    let mut pending = Checkpoint::default();
    let mut count = 0;
    while !r.done() {
        count += 1;
        let Some(len) = r.u32() else {
            out.stopped = Some(format!("record {count} is cut short"));
            break;
        };
        if len > MAX_PART {
            out.stopped = Some(format!("record {count} is damaged (it claims {len} bytes)"));
            break;
        }
        let (Some(body), Some(sum)) = (r.take(len), r.take(32)) else {
            out.stopped = Some(format!("record {count} is cut short"));
            break;
        };
        if hex_to_bytes(&sha256_hex(body)) != sum {
            out.stopped = Some(format!("record {count} is damaged (its checksum does not match)"));
            break;
        }
        if !read_body(body, dim, &mut pending) {
            out.stopped = Some(format!("record {count} is damaged (it is not a record of this build)"));
            break;
        }
        if body == [COMMIT] {
            out.images.extend(std::mem::take(&mut pending.images));
            out.names.extend(std::mem::take(&mut pending.names));
            out.valid_len = r.at;
        }
    }
    let unfinished = pending.images.len() + pending.names.len();
    if out.stopped.is_none() && unfinished > 0 {
        out.stopped = Some(format!("its last batch ({unfinished} records) is incomplete"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::config::PreprocessConfig;
    use crate::search::catalog::ModelInfo;

    fn header() -> CheckpointHeader {
        CheckpointHeader {
            recipe: Recipe {
                model: ModelInfo { name: "m".into(), weights_sha256: "ab".repeat(32), equivalent_weights_sha256: vec![], embedding_dim: 3 },
                preprocessing: PreprocessConfig::default(),
                engine: "ours".into(),
                thumbnail_side: 256,
            },
            inputs_sha256: "cd".repeat(32),
            batch_size: 2,
            updating: None,
        }
    }

    /// A checkpoint of three batches (two photos; a name; a photo), and where each batch ends.
    fn file() -> (Vec<u8>, Vec<usize>) {
        let mut bytes = header_bytes(&header());
        let mut ends = vec![bytes.len()];
        bytes.extend(image_record(&"01".repeat(32), &[0.6, 0.8, 0.0], "thumbs/a.jpg", b"jpeg a"));
        bytes.extend(image_record(&"03".repeat(32), &[0.0, 0.8, 0.6], "thumbs/c.jpg", b"jpeg c"));
        bytes.extend(commit_record());
        ends.push(bytes.len());
        bytes.extend(name_record("Oat milk", &[0.0, 1.0, 0.0]));
        bytes.extend(commit_record());
        ends.push(bytes.len());
        bytes.extend(image_record(&"02".repeat(32), &[1.0, 0.0, 0.0], "thumbs/b.jpg", b"jpeg b"));
        bytes.extend(commit_record());
        ends.push(bytes.len());
        (bytes, ends)
    }

    /// Entries in the first `batches` batches of [`file`].
    const ENTRIES: [usize; 4] = [0, 2, 3, 4];

    #[test]
    fn records_read_back() {
        let (bytes, ends) = file();
        let c = read(&bytes, &header()).unwrap();
        assert_eq!((c.valid_len, c.stopped.as_deref()), (*ends.last().unwrap(), None));
        let a = &c.images[&"01".repeat(32)];
        assert_eq!((a.vector.as_slice(), a.thumbnail_file.as_str()), ([0.6f32, 0.8, 0.0].as_slice(), "thumbs/a.jpg"));
        assert_eq!(a.thumbnail_sha256, sha256_hex(b"jpeg a"));
        assert_eq!(c.names["Oat milk"], [0.0, 1.0, 0.0]);
        assert_eq!(c.images.len(), 3);
    }

    #[test]
    fn a_file_cut_anywhere_keeps_the_whole_batches_before_the_cut() {
        let (bytes, ends) = file();
        for cut in ends[0]..bytes.len() {
            let c = read(&bytes[..cut], &header()).unwrap();
            let whole = ends.iter().filter(|&&e| e <= cut).count() - 1;
            assert_eq!(c.images.len() + c.names.len(), ENTRIES[whole], "cut at {cut}");
            assert_eq!(c.valid_len, ends[whole], "cut at {cut}");
            assert_eq!(c.stopped.is_some(), !ends.contains(&cut), "cut at {cut}");
        }
        for cut in 0..ends[0] {
            assert!(matches!(read(&bytes[..cut], &header()), Err(CheckpointError::NotACheckpoint(_))), "cut at {cut}");
        }
    }

    #[test]
    fn a_flipped_byte_stops_reading_at_its_batch() {
        let (bytes, ends) = file();
        for at in ends[0]..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x20;
            let c = read(&damaged, &header()).unwrap();
            let record = ends.iter().filter(|&&e| e <= at).count() - 1;
            assert_eq!(c.valid_len, ends[record], "byte {at}");
            assert!(c.stopped.is_some(), "byte {at}");
        }
    }

    #[test]
    fn records_the_build_could_not_have_written_are_refused_even_with_a_good_checksum() {
        let h = header();
        let mut bytes = header_bytes(&h);
        let good = bytes.len();
        bytes.extend(image_record(&"01".repeat(32), &[0.6, 0.8, 0.0], "../outside.jpg", b"x"));
        bytes.extend(commit_record());
        let c = read(&bytes, &h).unwrap();
        assert_eq!((c.valid_len, c.images.len()), (good, 0));
        for bad in [image_record("not a sha", &[1.0, 0.0, 0.0], "thumbs/a.jpg", b"x"), name_record("n", &[1.0, 0.0]), name_record("n", &[f32::NAN, 0.0, 0.0])] {
            let mut bytes = header_bytes(&h);
            bytes.extend(bad);
            let c = read(&bytes, &h).unwrap();
            assert_eq!(c.stopped.as_deref(), Some("record 1 is damaged (it is not a record of this build)"));
        }
    }

    #[test]
    fn another_recipe_or_input_list_is_refused() {
        let (bytes, _) = file();
        let mut other = header();
        other.recipe.model.weights_sha256 = "ef".repeat(32);
        assert!(matches!(read(&bytes, &other), Err(CheckpointError::Recipe(d)) if d.starts_with("another model")));
        let mut other = header();
        other.recipe.model.embedding_dim = 4;
        assert!(matches!(read(&bytes, &other), Err(CheckpointError::Recipe(_))));
        let mut other = header();
        other.inputs_sha256 = "00".repeat(32);
        assert_eq!(read(&bytes, &other).unwrap_err(), CheckpointError::Inputs);
        let other = CheckpointHeader { batch_size: 16, ..header() };
        assert_eq!(read(&bytes, &other).unwrap_err().to_string(), "it was made with batches of 2 photos, not 16");
        let other = CheckpointHeader { updating: Some("ef".repeat(32)), ..header() };
        assert_eq!(read(&bytes, &other).unwrap_err(), CheckpointError::Updating);
        assert!(matches!(read(b"PK\x03\x04 a zip", &header()), Err(CheckpointError::NotACheckpoint(_))));
    }
}
