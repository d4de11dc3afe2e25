//! The weights file fed in slices (as the page does) builds the same model as the whole file,
//! whatever the slice size, and a truncated or overlong file is refused, saying so.

use crate::common;

use clipmatch::models::clip::ModelLoader;
use clipmatch::{ClipModel, ModelConfig, ModelError, Towers};
use common::{TINY_CONFIG, TINY_WEIGHTS};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn pixels(seed: usize, n: usize) -> Vec<f32> {
    (0..n).map(|i| (((i + seed) * 7919) % 1000) as f32 / 500.0 - 1.0).collect()
}

fn load_in_slices(bytes: &[u8], slice: usize) -> Result<ClipModel, ModelError> {
    let mut loader = ModelLoader::new(ModelConfig::from_json(TINY_CONFIG)?, Some(Towers::VisionOnly));
    for part in bytes.chunks(slice) {
        loader.push(part)?;
    }
    loader.finish()
}

#[test]
fn slices_of_any_size_give_the_same_embeddings_as_the_whole_file() {
    let whole = ClipModel::load(TINY_CONFIG, TINY_WEIGHTS, Some(Towers::VisionOnly)).unwrap();
    let s = whole.vision.image_size();
    let px = pixels(3, 2 * 3 * s * s);
    let want = whole.vision.embed(&px, 2).unwrap();
    // 1 byte at a time splits the header length, the header and every tensor.
    for slice in [1, 7, 4096, 1 << 20] {
        let model = load_in_slices(TINY_WEIGHTS, slice).unwrap();
        assert_eq!(model.vision.embed(&px, 2).unwrap(), want, "slices of {slice} bytes");
    }
}

#[test]
fn a_truncated_file_is_refused_with_how_much_arrived() {
    let cut = &TINY_WEIGHTS[..TINY_WEIGHTS.len() - 10];
    let err = load_in_slices(cut, 4096).err().unwrap();
    assert!(err.to_string().contains("truncated"), "{err}");
    assert!(err.to_string().contains(&format!("{} bytes of {}", cut.len(), TINY_WEIGHTS.len())), "{err}");
    let err = load_in_slices(&TINY_WEIGHTS[..5], 4096).err().unwrap();
    assert!(err.to_string().contains("too short"), "{err}");
    let err = load_in_slices(&[], 4096).err().unwrap();
    assert!(err.to_string().contains("too short"), "{err}");
}

#[test]
fn bytes_past_the_end_and_a_bad_header_are_refused() {
    let mut long = TINY_WEIGHTS.to_vec();
    long.extend_from_slice(b"extra");
    let err = load_in_slices(&long, 4096).err().unwrap();
    assert!(err.to_string().contains("longer than its header says"), "{err}");
    let mut bad = TINY_WEIGHTS.to_vec();
    bad[8] = b'!'; // the header's opening brace
    let err = load_in_slices(&bad, 4096).err().unwrap();
    assert!(err.to_string().contains("invalid safetensors header"), "{err}");
    let err = load_in_slices(&u64::MAX.to_le_bytes(), 4096).err().unwrap();
    assert!(err.to_string().contains("not a safetensors file"), "{err}");
}
