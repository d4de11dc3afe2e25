//! The one check of a safetensors file's header, for both engines: this crate's streaming
//! loader ([`crate::models::safetensors_stream`]) and candle's, which reads whole files through
//! [`deserialize`]. What loads on one loads on the other, and a bad file is refused by both with
//! the same message.
//!
//! Format: 8 bytes little-endian header length, a JSON header naming each tensor's dtype, shape
//! and `[begin, end)` byte range in the data that follows, and optionally `__metadata__`, a map
//! of strings. The layout is the `safetensors` crate's own [`Metadata`] validation (what its
//! Python library and candle accept): tensors laid end to end from byte 0, no gap and no
//! overlap, each range as long as its shape and dtype make it. Before it, each entry is checked
//! on its own so that a refusal names the tensor and the figures (every dtype one of the
//! format's, every size computed with checked arithmetic, no range ending before it begins), and
//! no name may appear twice (a JSON map would keep the last). The data must then fill the file
//! exactly.

use std::collections::{HashMap, HashSet};

use safetensors::tensor::{Metadata, SafeTensorError};
use safetensors::SafeTensors;
use serde::Deserialize;

use crate::models::safetensors_stream::TensorDtype;

/// Largest header accepted (safetensors' own limit).
const MAX_HEADER_BYTES: usize = 100_000_000;

const METADATA_KEY: &str = "__metadata__";

/// The header's length from the file's first 8 bytes, checked against the format's limit and,
/// when known, the file's length.
pub fn header_len(first_8: [u8; 8], file_len: Option<usize>) -> Result<usize, String> {
    let n = u64::from_le_bytes(first_8);
    if n == 0 || n > MAX_HEADER_BYTES as u64 {
        return Err(format!("not a safetensors file (header length {n})"));
    }
    if let Some(len) = file_len.filter(|&len| n > len.saturating_sub(8) as u64) {
        return Err(format!(
            "not a safetensors file (a header of {n} bytes in a file of {len})"
        ));
    }
    Ok(n as usize)
}

/// The tensors a header describes (its JSON bytes), in file order, checked as the module says.
pub fn tensors(json: &[u8]) -> Result<Vec<TensorInfo>, String> {
    let bad = |why: String| format!("invalid safetensors header: {why}");
    let text = std::str::from_utf8(json).map_err(|e| bad(e.to_string()))?;
    let Entries(entries) = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let mut seen = HashSet::new();
    let mut metadata = None;
    let mut tensors = Vec::with_capacity(entries.len());
    for (name, value) in entries {
        if !seen.insert(name.clone()) {
            return Err(bad(format!("{name} appears twice")));
        }
        if name == METADATA_KEY {
            metadata = serde_json::from_value::<Option<HashMap<String, String>>>(value)
                .map_err(|e| bad(format!("{METADATA_KEY}: {e}")))?;
        } else {
            tensors.push(tensor_info(name, value).map_err(bad)?);
        }
    }
    tensors.sort_by_key(|t| (t.begin, t.end));
    let layout = tensors
        .iter()
        .map(|t| {
            let spec = safetensors::tensor::TensorInfo {
                dtype: t.format_dtype,
                shape: t.shape.clone(),
                data_offsets: (t.begin, t.end),
            };
            (t.name.clone(), spec)
        })
        .collect();
    Metadata::new(metadata, layout).map_err(|e| bad(layout_error(&tensors, e)))?;
    Ok(tensors)
}

/// Checks that the data `tensors` describe, after a header of `header_len` bytes (with its
/// 8-byte length), fills a file of `file_len` bytes exactly.
pub fn check_file_len(
    tensors: &[TensorInfo],
    header_len: usize,
    file_len: usize,
) -> Result<(), String> {
    let data_len = tensors.last().map_or(0, |t| t.end);
    if let Some(t) = tensors
        .iter()
        .rev()
        .find(|t| header_len.checked_add(t.end).is_none_or(|e| e > file_len))
    {
        return Err(format!(
            "invalid safetensors header: {}'s data ends at byte {} but the file has {file_len} bytes",
            t.name,
            header_len as u128 + t.end as u128
        ));
    }
    if header_len + data_len < file_len {
        return Err(format!(
            "the weights file is longer than its header says ({} bytes, the file has {file_len})",
            header_len + data_len
        ));
    }
    Ok(())
}

/// A whole safetensors file (candle's path), checked as the module says before the
/// `safetensors` crate reads it.
pub fn deserialize(bytes: &[u8]) -> Result<SafeTensors<'_>, String> {
    let first_8 = bytes.get(..8).ok_or_else(|| {
        format!(
            "the file is {} bytes, too short for a safetensors header",
            bytes.len()
        )
    })?;
    let n = header_len(first_8.try_into().expect("8 bytes"), Some(bytes.len()))?;
    check_file_len(&tensors(&bytes[8..8 + n])?, 8 + n, bytes.len())?;
    SafeTensors::deserialize(bytes).map_err(|e| e.to_string())
}

/// Why the crate refused the layout, in words naming the tensors: the one out of place and the
/// one before it (`tensors` sorted as the crate sorts them).
fn layout_error(tensors: &[TensorInfo], e: SafeTensorError) -> String {
    let SafeTensorError::InvalidOffset(name) = &e else {
        return e.to_string();
    };
    let Some(i) = tensors.iter().position(|t| &t.name == name) else {
        return e.to_string();
    };
    let t = &tensors[i];
    match i.checked_sub(1).map(|p| &tensors[p]) {
        None => format!(
            "{name}, the first tensor, begins at byte {} of the data, not 0",
            t.begin
        ),
        Some(prev) if t.begin < prev.end => format!("{} and {name} overlap", prev.name),
        Some(prev) => format!(
            "{} bytes between {} (ending at byte {}) and {name} hold no tensor",
            t.begin - prev.end,
            prev.name,
            prev.end
        ),
    }
}

/// One tensor as the header describes it.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    /// `None`: a type this crate does not read (the tensor may still be ignored by the loader).
    pub dtype: Option<TensorDtype>,
    /// The type as the format names it.
    format_dtype: safetensors::Dtype,
    pub dtype_name: String,
    pub shape: Vec<usize>,
    /// Its byte range in the data after the header.
    pub(crate) begin: usize,
    pub(crate) end: usize,
}

impl TensorInfo {
    /// Number of values (the header's shape was checked to give one that fits).
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

#[derive(Deserialize)]
struct RawInfo {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (usize, usize),
}

/// The header's entries in file order, repeated names kept (a map would keep only the last).
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object of tensors")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// One entry of the header checked on its own: its dtype one of the format's, its byte range
/// in order and exactly as long as its shape and dtype make it.
fn tensor_info(name: String, value: serde_json::Value) -> Result<TensorInfo, String> {
    let info: RawInfo = serde_json::from_value(value).map_err(|e| format!("{name}: {e}"))?;
    let dtype: safetensors::Dtype =
        serde_json::from_value(serde_json::Value::String(info.dtype.clone())).map_err(|_| {
            format!(
                "{name}: unknown dtype {:?} (not one of the safetensors format's)",
                info.dtype
            )
        })?;
    let (begin, end) = info.data_offsets;
    if end < begin {
        return Err(format!(
            "{name}: its data ends (byte {end}) before it begins (byte {begin})"
        ));
    }
    let bytes = info
        .shape
        .iter()
        .try_fold(dtype.bitsize(), |acc, &d| acc.checked_mul(d))
        .filter(|b| b % 8 == 0)
        .map(|b| b / 8)
        .ok_or_else(|| {
            format!(
                "{name}: shape {:?} of {} is too large or not a whole number of bytes",
                info.shape, info.dtype
            )
        })?;
    if end - begin != bytes {
        return Err(format!(
            "{name}: a {}-byte range for shape {:?} of {} ({bytes} bytes)",
            end - begin,
            info.shape,
            info.dtype
        ));
    }
    Ok(TensorInfo {
        dtype: TensorDtype::of(dtype),
        format_dtype: dtype,
        dtype_name: info.dtype,
        shape: info.shape,
        begin,
        end,
        name,
    })
}
