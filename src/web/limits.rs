//! The limits the page applies before it hands anything to the worker, read from the core so
//! they are written once.

use wasm_bindgen::prelude::*;

use crate::imaging::decode::MAX_FILE_BYTES;

/// Largest photo file the matcher accepts, in bytes: the page refuses a larger file before
/// reading it.
#[wasm_bindgen(js_name = maxPhotoBytes)]
pub fn max_photo_bytes() -> usize {
    MAX_FILE_BYTES
}
