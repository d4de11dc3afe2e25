//! Fixtures shared by the native and the browser tests. Everything is compiled in with
//! `include_bytes!`, so the same tests run in Chromium, where there is no file system.

#![allow(dead_code)]

use serde::Deserialize;

#[cfg(not(target_arch = "wasm32"))]
pub mod cli;

pub const TINY_CONFIG: &str = include_str!("../fixtures/tiny-clip/config.json");
pub const TINY_PREPROCESSOR: &str = include_str!("../fixtures/tiny-clip/preprocessor_config.json");
pub const TINY_WEIGHTS: &[u8] = include_bytes!("../fixtures/tiny-clip/model.safetensors");
pub const TINY_VISION_F16_WEIGHTS: &[u8] = include_bytes!("../fixtures/tiny-clip-vision-f16/model.safetensors");
pub const REFERENCE_JSON: &str = include_str!("../fixtures/reference/reference.json");
pub const NATIVE_EMBEDDINGS_JSON: &str = include_str!("../fixtures/native_embeddings.json");

macro_rules! fixture_images {
    ($($file:literal => $pixels:literal),* $(,)?) => {
        /// (file as named in reference.json, image bytes, reference 8-bit crop as PNG bytes)
        pub const IMAGES: &[(&str, &[u8], &[u8])] = &[
            $((concat!("images/", $file),
               include_bytes!(concat!("../fixtures/images/", $file)),
               include_bytes!(concat!("../fixtures/reference/pixels/", $pixels))),)*
        ];
    };
}

fixture_images! {
    "photo.jpg" => "photo_jpg.png",
    "exif_rotated.jpg" => "exif_rotated_jpg.png",
    "alpha.png" => "alpha_png.png",
    "gray.png" => "gray_png.png",
    "deep16.png" => "deep16_png.png",
    "photo.webp" => "photo_webp.png",
    "lossless.webp" => "lossless_webp.png",
    "anim.gif" => "anim_gif.png",
    "wide.jpg" => "wide_jpg.png",
    "tall.png" => "tall_png.png",
    "small.png" => "small_png.png",
    "cmyk.jpg" => "cmyk_jpg.png",
}

#[derive(Deserialize)]
pub struct Reference {
    pub images: Vec<RefImage>,
    pub texts: Vec<RefText>,
    pub padded_batch: PaddedBatch,
}

#[derive(Deserialize)]
pub struct RefImage {
    pub file: String,
    pub pixels: String,
    pub upright_size: [u32; 2],
    pub embedding: Vec<f32>,
    pub embedding_vision_f16: Vec<f32>,
}

#[derive(Deserialize)]
pub struct RefText {
    pub text: String,
    pub ids: Vec<u32>,
    pub embedding: Vec<f32>,
}

#[derive(Deserialize)]
pub struct PaddedBatch {
    pub ids: Vec<Vec<u32>>,
    pub pad_id: u32,
}

pub fn reference() -> Reference {
    serde_json::from_str(REFERENCE_JSON).expect("reference.json parses")
}

/// The image bytes and the reference crop (PNG) of a fixture named as in reference.json.
pub fn image(file: &str) -> (&'static [u8], &'static [u8]) {
    IMAGES
        .iter()
        .find(|(f, _, _)| *f == file)
        .map(|(_, b, p)| (*b, *p))
        .unwrap_or_else(|| panic!("{file} is not compiled into the tests"))
}

/// Each reference image decoded, preprocessed and embedded by `e`, named as in reference.json.
pub fn image_embeddings(e: &clipmatch::Embedder) -> Vec<(String, Vec<f32>)> {
    reference()
        .images
        .iter()
        .map(|img| {
            let (bytes, _) = image(&img.file);
            let px = e.pixel_values(bytes).unwrap_or_else(|err| panic!("{}: {err}", img.file));
            (img.file.clone(), e.embed_pixels_raw(&[px]).unwrap().remove(0))
        })
        .collect()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Cosine after subtracting `mean` from both: random-weight CLIP puts every input in nearly
/// the same direction, so plain cosine alone would pass a wrong resize, crop or normalisation.
pub fn centred_cosine(a: &[f32], b: &[f32], mean: &[f64]) -> f64 {
    let ca: Vec<f32> = a.iter().zip(mean).map(|(x, m)| (*x as f64 - m) as f32).collect();
    let cb: Vec<f32> = b.iter().zip(mean).map(|(x, m)| (*x as f64 - m) as f32).collect();
    cosine(&ca, &cb)
}

pub fn mean_of(rows: &[&[f32]]) -> Vec<f64> {
    let dim = rows[0].len();
    let mut m = vec![0f64; dim];
    for r in rows {
        for (acc, x) in m.iter_mut().zip(r.iter()) {
            *acc += *x as f64 / rows.len() as f64;
        }
    }
    m
}

/// Each row's (cosine, centred cosine) against its reference row; centred means both sides minus
/// the reference rows' mean (the one definition every parity test uses: an offset or a lost bias
/// on our side is not centred away).
pub fn agreement<O: AsRef<[f32]>>(ours: &[O], reference: &[&[f32]]) -> Vec<(f64, f64)> {
    assert_eq!(ours.len(), reference.len(), "as many rows as the reference");
    let mean = mean_of(reference);
    ours.iter().zip(reference).map(|(o, r)| (cosine(o.as_ref(), r), centred_cosine(o.as_ref(), r, &mean))).collect()
}

/// Asserts cosine >= 0.9999 and centred cosine >= 0.999 against the reference rows.
pub fn assert_embeddings_match(what: &str, ours: &[(String, Vec<f32>)], reference: &[&[f32]]) {
    let rows: Vec<&[f32]> = ours.iter().map(|(_, v)| v.as_slice()).collect();
    for ((name, _), (c, cc)) in ours.iter().zip(agreement(&rows, reference)) {
        assert!(c >= 0.9999, "{what} {name}: cosine {c} < 0.9999");
        assert!(cc >= 0.999, "{what} {name}: centred cosine {cc} < 0.999");
    }
}

/// `../shared/data` beside the checkout, or CLIPMATCH_SHARED_DATA.
#[cfg(not(target_arch = "wasm32"))]
pub fn shared_data() -> std::path::PathBuf {
    std::env::var_os("CLIPMATCH_SHARED_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
}

/// CLIP's tokenizer.json from the shared data (MobileCLIP's hub folders carry the same; the narrow
/// fixtures have none), or `None` with a message that `what` is skipped.
#[cfg(not(target_arch = "wasm32"))]
pub fn shared_clip_tokenizer(what: &str) -> Option<std::path::PathBuf> {
    let p = shared_data().join("clip-vit-base-patch32/tokenizer.json");
    if !p.is_file() {
        eprintln!("skipped {what}: {} is absent", p.display());
        return None;
    }
    Some(p)
}

/// The start of a baseline JPEG that declares `width` x `height` pixels: SOI and a SOF0 segment
/// (three components), as far as a header reader looks.
pub fn jpeg_header(width: u16, height: u16) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08];
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(&width.to_be_bytes());
    out.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    out
}

/// A PNG that declares `width` x `height` pixels: signature, a valid IHDR and an empty IDAT.
pub fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &[]);
    out
}


/// A global allocator counting live heap bytes and their peak, for tests that bound memory. A test
/// binary installs it natively (`#[global_allocator] static ALLOC: common::Counting =
/// common::Counting;` under `#[cfg(not(target_arch = "wasm32"))]`) and each of its tests holds [`serial`] so
/// that no other test allocates meanwhile. In the browser the crate's own allocator counts
/// (`clipmatch::web::HeapCount`).
pub struct Counting;

static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static PEAK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn counted(bytes: usize) {
    use std::sync::atomic::Ordering::Relaxed;
    let live = LIVE.fetch_add(bytes, Relaxed) + bytes;
    PEAK.fetch_max(live, Relaxed);
}

// SAFETY: every call is passed to `System` unchanged; only the counters are added.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let p = std::alloc::System.alloc(layout);
        if !p.is_null() {
            counted(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        let p = std::alloc::System.alloc_zeroed(layout);
        if !p.is_null() {
            counted(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        std::alloc::System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Counted as a new block alongside the old one, as a moving realloc holds both.
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        let p = std::alloc::System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            counted(new_size);
            LIVE.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        }
        p
    }
}

/// Held by each test of a binary that measures memory, so its measurements see only itself.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `f`'s result and the most heap it held at once beyond what was live when it started (with
/// [`Counting`] installed; 0 without).
pub fn peak_heap<T>(f: impl FnOnce() -> T) -> (T, usize) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::atomic::Ordering::Relaxed;
        let before = LIVE.load(Relaxed);
        PEAK.store(before, Relaxed);
        let out = f();
        (out, PEAK.load(Relaxed) - before)
    }
    #[cfg(target_arch = "wasm32")]
    {
        use clipmatch::web::HeapCount;
        let before = HeapCount::reset_peak();
        let out = f();
        (out, HeapCount::peak() - before)
    }
}

/// Heap bytes live now (with [`Counting`] installed; 0 without).
pub fn live_heap() -> usize {
    LIVE.load(std::sync::atomic::Ordering::Relaxed)
}

/// `f`'s result and how long it took (natively; `None` in the browser, which has no clock here).
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Option<std::time::Duration>) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let start = std::time::Instant::now();
        let out = f();
        (out, Some(start.elapsed()))
    }
    #[cfg(target_arch = "wasm32")]
    {
        (f(), None)
    }
}

/// A PNG of `width` x `height` pixels of a colour gradient.
pub fn gradient_png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 7 % 256) as u8, (y * 3 % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).expect("PNG encodes");
    out
}

/// A text of a model-family reference (`tests/fixtures/models/reference/*.json`): its token ids
/// and the reference library's raw text features.
#[derive(Deserialize)]
pub struct ModelRefText {
    pub text: String,
    pub ids: Vec<u32>,
    pub embedding: Vec<f32>,
}

/// The reference library's model input for one image (a PNG in
/// `tests/fixtures/models/reference/`, named by the reference JSON), as RGB. Native tests only.
pub fn model_reference_pixels(png: &str) -> image::RgbImage {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/reference").join(png);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    image::load_from_memory(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8()
}
