//! Reading a safetensors file as a stream of chunks, tensor by tensor: each tensor is handed on
//! as soon as its bytes have arrived, so a loader never holds the whole file (the page feeds the
//! downloaded weights in slices; the CLI feeds a memory-mapped file at once).
//!
//! The header is checked by [`crate::models::safetensors_header`], as candle's loader checks
//! it, before anything is built from it; when the file's length is known up front
//! ([`SafetensorsStream::with_file_len`]), the data must fill it exactly.

use crate::error::ModelError;
use crate::models::safetensors_header;
pub use crate::models::safetensors_header::TensorInfo;

/// Element type of a tensor in a safetensors file, of those this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorDtype {
    F32,
    F16,
    BF16,
    I8,
    /// Two 4-bit values a byte ([`crate::models::int4`]).
    U8,
}

impl TensorDtype {
    pub fn size(self) -> usize {
        match self {
            TensorDtype::F32 => 4,
            TensorDtype::F16 | TensorDtype::BF16 => 2,
            TensorDtype::I8 | TensorDtype::U8 => 1,
        }
    }

    /// The type of a tensor the `safetensors` crate read, if this crate reads that type.
    pub fn of(dtype: safetensors::Dtype) -> Option<Self> {
        Some(match dtype {
            safetensors::Dtype::F32 => TensorDtype::F32,
            safetensors::Dtype::F16 => TensorDtype::F16,
            safetensors::Dtype::BF16 => TensorDtype::BF16,
            safetensors::Dtype::I8 => TensorDtype::I8,
            safetensors::Dtype::U8 => TensorDtype::U8,
            _ => return None,
        })
    }
}

/// What a loader does with the stream: look at the header once, then take tensors in file order.
pub trait TensorSink {
    fn header(&mut self, tensors: &[TensorInfo]) -> Result<(), ModelError>;
    fn tensor(&mut self, info: &TensorInfo, data: &[u8]) -> Result<(), ModelError>;
}

/// Feeds `chunk` to the stream that `sink` holds (`stream` picks it out), `sink` taking the
/// tensors it completes: for loaders that own their stream.
pub fn push_to<S: TensorSink>(sink: &mut S, stream: fn(&mut S) -> &mut SafetensorsStream, chunk: &[u8]) -> Result<(), ModelError> {
    let mut taken = std::mem::take(stream(sink));
    let result = taken.push(chunk, sink);
    *stream(sink) = taken;
    result
}

/// f32 values of F32, F16 or BF16 little-endian data.
pub fn f32_values(dtype: TensorDtype, data: &[u8]) -> Result<Vec<f32>, ModelError> {
    Ok(match dtype {
        TensorDtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        TensorDtype::F16 => data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        TensorDtype::BF16 => data.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        TensorDtype::I8 | TensorDtype::U8 => {
            return Err(ModelError::Weights("int8 or 4-bit data is not a float tensor".into()))
        }
    })
}

enum State {
    /// Collecting the 8 length bytes and the JSON header.
    Header,
    /// In the data: `pos` bytes of it consumed, the next tensor is `tensors[next]`.
    Data { pos: usize, next: usize },
    Done,
}

/// A safetensors file arriving in chunks.
pub struct SafetensorsStream {
    state: State,
    /// Header bytes so far, then the bytes of the tensor being collected.
    buf: Vec<u8>,
    tensors: Vec<TensorInfo>,
    data_len: usize,
    tensors_header_bytes: usize,
    received: usize,
    /// The whole file's length, when known before it arrives.
    file_len: Option<usize>,
}

impl Default for SafetensorsStream {
    fn default() -> Self {
        Self::new()
    }
}

impl SafetensorsStream {
    pub fn new() -> Self {
        Self {
            state: State::Header,
            buf: Vec::new(),
            tensors: Vec::new(),
            data_len: 0,
            tensors_header_bytes: 0,
            received: 0,
            file_len: None,
        }
    }

    /// A stream of a file known to be `len` bytes long (a mapped file's length, or the size a
    /// download announces): a header describing more or less data is refused as soon as it is
    /// read, before a loader sizes anything from it.
    pub fn with_file_len(len: usize) -> Self {
        Self { file_len: Some(len), ..Self::new() }
    }

    /// Total file size, once the header is in.
    pub fn expected_len(&self) -> Option<usize> {
        match self.state {
            State::Header => None,
            _ => Some(self.header_len() + self.data_len),
        }
    }

    fn header_len(&self) -> usize {
        8 + self.tensors_header_bytes
    }

    /// Feeds the next bytes of the file.
    pub fn push(&mut self, mut chunk: &[u8], sink: &mut dyn TensorSink) -> Result<(), ModelError> {
        self.received += chunk.len();
        while !chunk.is_empty() {
            match self.state {
                State::Header => {
                    let need = if self.buf.len() < 8 { 8 } else { 8 + self.declared_header_len()? };
                    let take = (need - self.buf.len()).min(chunk.len());
                    self.buf.extend_from_slice(&chunk[..take]);
                    chunk = &chunk[take..];
                    if self.buf.len() == 8 {
                        self.declared_header_len()?; // refuse a bad length before waiting for more
                    }
                    if self.buf.len() == need && need > 8 {
                        self.parse_header()?;
                        sink.header(&self.tensors)?;
                        self.buf.clear();
                        self.state = State::Data { pos: 0, next: 0 };
                        self.emit_empty(sink)?;
                    }
                }
                State::Data { pos, next } => {
                    // The header check leaves no gap: each tensor begins where the last ended.
                    let t = &self.tensors[next];
                    let want = t.end - pos;
                    let take = want.min(chunk.len());
                    if self.buf.is_empty() && take == t.end - t.begin {
                        // The whole tensor is in this chunk: no copy.
                        sink.tensor(t, &chunk[..take])?;
                    } else {
                        self.buf.extend_from_slice(&chunk[..take]);
                        if take == want {
                            sink.tensor(t, &self.buf)?;
                            self.buf.clear();
                        }
                    }
                    chunk = &chunk[take..];
                    let next = if take == want { next + 1 } else { next };
                    self.state = State::Data { pos: pos + take, next };
                    self.emit_empty(sink)?;
                }
                State::Done => {
                    return Err(ModelError::Weights(format!(
                        "the weights file is longer than its header says ({} bytes)",
                        self.header_len() + self.data_len
                    )))
                }
            }
        }
        Ok(())
    }

    /// Checks that the whole file arrived.
    pub fn finish(&self) -> Result<(), ModelError> {
        match self.state {
            State::Done => Ok(()),
            State::Header if self.received < 8 => Err(ModelError::Weights(format!(
                "the file is {} bytes, too short for a safetensors header",
                self.received
            ))),
            _ => Err(ModelError::Weights(format!(
                "the weights file is truncated: {} bytes of {}",
                self.received,
                self.expected_len().map_or_else(|| "more".to_string(), |n| n.to_string())
            ))),
        }
    }

    fn declared_header_len(&self) -> Result<usize, ModelError> {
        let first_8 = self.buf[..8].try_into().expect("8 bytes");
        safetensors_header::header_len(first_8, self.file_len).map_err(ModelError::Weights)
    }

    /// Hands on zero-length tensors at the current position and notes the end of the data.
    fn emit_empty(&mut self, sink: &mut dyn TensorSink) -> Result<(), ModelError> {
        while let State::Data { pos, next } = self.state {
            match self.tensors.get(next) {
                Some(t) if t.begin == t.end && t.begin <= pos => {
                    sink.tensor(t, &[])?;
                    self.state = State::Data { pos, next: next + 1 };
                }
                Some(_) => break,
                None => {
                    debug_assert_eq!(pos, self.data_len);
                    self.state = State::Done;
                }
            }
        }
        Ok(())
    }

    fn parse_header(&mut self) -> Result<(), ModelError> {
        let tensors = safetensors_header::tensors(&self.buf[8..]).map_err(ModelError::Weights)?;
        self.data_len = tensors.last().map_or(0, |t| t.end);
        self.tensors_header_bytes = self.buf.len() - 8;
        if self.header_len().checked_add(self.data_len).is_none() {
            return Err(ModelError::Weights(format!(
                "invalid safetensors header: its data would end past byte {}",
                usize::MAX
            )));
        }
        if let Some(len) = self.file_len {
            safetensors_header::check_file_len(&tensors, self.header_len(), len).map_err(ModelError::Weights)?;
        }
        self.tensors = tensors;
        Ok(())
    }
}
