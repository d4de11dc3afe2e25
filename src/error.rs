//! Typed errors of the core. The wasm shell turns them into `JsError`, the CLI into messages.

use thiserror::Error;

/// Why a photo could not be turned into model input.
#[derive(Debug, Error)]
pub enum ImageError {
    #[error("the file is empty (0 bytes)")]
    Empty,
    #[error("not an image this app reads (JPEG, PNG, WebP or GIF)")]
    UnknownFormat,
    #[error("{format} images are not supported (use JPEG, PNG, WebP or GIF)")]
    UnsupportedFormat { format: String },
    #[error("the image is {width}x{height} pixels, over the limit of {max_side} pixels a side or {max_megapixels} megapixels")]
    TooLarge {
        width: u32,
        height: u32,
        max_side: u32,
        max_megapixels: u32,
    },
    #[error("the image is {width}x{height} pixels, too thin to search: its long side may be at most {max_ratio} times its short side")]
    TooThin { width: u32, height: u32, max_ratio: u32 },
    #[error("decoding the image needs more than the {max_mib} MiB of memory a photo may take")]
    TooMuchMemory { max_mib: u64 },
    #[error("the image's {what} takes more than the {max_mib} MiB of metadata a photo may carry")]
    MetadataTooLarge { what: &'static str, max_mib: usize },
    #[error("the file is {bytes} bytes, over the limit of {max_bytes} bytes")]
    FileTooLarge { bytes: usize, max_bytes: usize },
    #[error("the {format} data is corrupt or truncated: {reason}")]
    Corrupt { format: String, reason: String },
    #[error("the image has no pixels")]
    NoPixels,
    #[error("cannot encode the thumbnail: {0}")]
    Encode(String),
}

/// Why a model could not be loaded or run.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error("config.json is not a CLIP config: {0}")]
    Config(String),
    #[error("preprocessor_config.json is invalid: {0}")]
    Preprocessor(String),
    #[error("model.safetensors could not be read: {0}")]
    Weights(String),
    #[error("model.safetensors does not match config.json: {0}")]
    WeightsMismatch(String),
    #[error("the tokenizer could not be read: {0}")]
    Tokenizer(String),
    #[error("the model input has the wrong size: {0}")]
    InputSize(String),
    #[error("this model has no text tower (it was exported vision-only)")]
    NoTextTower,
    #[error("open_clip_config.json: {0}")]
    OpenClipConfig(String),
    #[error("open_clip_model.safetensors: {0}")]
    OpenClipWeights(String),
    #[error("the model failed to run: {0}")]
    Engine(String),
    #[error("this model is not supported: {0}")]
    UnsupportedModel(String),
    #[error("unknown engine {0:?}: the engines are \"ours\" (OpenAI CLIP, SigLIP, MobileCLIP's FastViT towers) and \"candle\"")]
    UnknownEngine(String),
    #[error("{family} runs on candle only; the engine {engine:?} cannot run it")]
    EngineCannotRun { family: &'static str, engine: &'static str },
    #[error("{0} on candle needs the wasm package built with candle (pkg/candle/); this one runs OpenAI CLIP on its own kernels only")]
    NoCandleInPackage(&'static str),
}

/// Why a catalog could not be loaded or written.
#[derive(Debug, Error)]
pub enum CatalogError {
    #[error("the catalog manifest is not valid JSON for this format: {0}")]
    Manifest(String),
    #[error("the catalog is format {found:?} version {version}; this app reads {expected:?} versions 1 to {supported}")]
    UnsupportedVersion {
        found: String,
        version: u32,
        expected: &'static str,
        supported: u32,
    },
    #[error("the catalog's vectors file is {found} bytes, expected {expected} ({items} items x 2 vectors x {dim} dims x {dtype_bytes} bytes): {hint}")]
    VectorsSize {
        found: usize,
        expected: usize,
        items: usize,
        dim: usize,
        dtype_bytes: usize,
        hint: &'static str,
    },
    #[error("unsupported vector dtype {0:?} (this app reads \"i8\" and \"f32\")")]
    UnsupportedDtype(String),
    #[error("the catalog was built with {catalog_dim}-dimensional embeddings but the model makes {model_dim}-dimensional ones")]
    DimensionMismatch { catalog_dim: usize, model_dim: usize },
    #[error("the catalog was built with model {catalog_model:?} (weights sha256 {catalog_sha}), not with the loaded model (weights sha256 {model_sha})")]
    ModelMismatch {
        catalog_model: String,
        catalog_sha: String,
        model_sha: String,
    },
    #[error("the catalog's preprocessing ({catalog}) differs from the model's ({model})")]
    PreprocessMismatch { catalog: String, model: String },
    #[error("item {item:?}'s {kind} vector holds NaN or an infinite value: the vectors file is damaged")]
    NonFiniteVector { item: String, kind: &'static str },
    #[error("invalid catalog: {0}")]
    Invalid(String),
    #[error("{what} {} MB, over the {} MiB ({} MB) a catalog's manifest may take{hint}", megabytes(.bytes), .max >> 20, megabytes(.max))]
    ManifestTooLarge { what: &'static str, bytes: u64, max: u64, hint: &'static str },
    #[error("the thumbnail is {found}; this catalog's thumbnails are JPEGs of at most {max_side} pixels a side")]
    Thumbnail { found: String, max_side: u32 },
}

/// Bytes as megabytes, for messages: one decimal.
fn megabytes(bytes: &u64) -> String {
    format!("{:.1}", *bytes as f64 / 1e6)
}

/// Why a `bundle.json` was refused.
#[derive(Debug, Error, PartialEq)]
pub enum BundleError {
    #[error("bundle.json is not valid JSON for this format: {0}")]
    Json(String),
    #[error("bundle.json is format {found:?} version {version}; this app reads {expected:?} versions {oldest} to {supported}")]
    UnsupportedVersion {
        found: String,
        version: u64,
        expected: &'static str,
        oldest: u32,
        supported: u32,
    },
    #[error("bundle.json lists a file that {problem} ({path:?})")]
    BadPath { path: String, problem: &'static str },
    #[error("bundle.json lists {0:?} twice")]
    ListedTwice(String),
    #[error("bundle.json gives {path:?} an impossible size ({bytes} bytes; the most a file may have is {max})")]
    ImpossibleSize { path: String, bytes: u64, max: u64 },
    #[error("bundle.json gives {0:?} no valid sha256 (64 lowercase hex digits)")]
    BadSha256(String),
    #[error("bundle.json names {path:?} as its {role} but does not list it among its files")]
    NotListed { path: String, role: &'static str },
    #[error("bundle.json names the model family {0:?}; this app runs \"openai-clip\", \"mobileclip\" and \"siglip\"")]
    UnknownFamily(String),
    #[error("bundle.json (version 2) does not give the model's {0}")]
    MissingField(&'static str),
    #[error("bundle.json gives the model an impossible embedding size ({0})")]
    ImpossibleDimension(usize),
    #[error("bundle.json's model.weights_sha256 is not the sha256 it lists for {path:?}")]
    WeightsSha256 { path: String },
    #[error("bundle.json names no preprocessor config, which a {0} model needs")]
    NoPreprocessor(&'static str),
    #[error("bundle.json says the model's {what} is {bundle}, but its files make {model}")]
    ModelDisagrees { what: &'static str, bundle: String, model: String },
    #[error("the weights' sha256 is {found}, not the {listed} bundle.json lists")]
    WeightsChanged { found: String, listed: String },
}

/// Why a region of a photo (`clipmatch query --crop`, the box drawn on the page) was refused.
#[derive(Debug, Error, PartialEq)]
pub enum RegionError {
    #[error("a region is x,y,width,height in whole pixels of the upright photo (e.g. 10,20,200,150), not {0:?}")]
    Syntax(String),
    #[error("the region {region} (x,y,width,height) reaches past the photo, which is {width}x{height} pixels upright")]
    Outside { region: crate::imaging::crop::Region, width: u32, height: u32 },
    #[error("the region is {width}x{height} pixels, too small: each side must be at least {min_side} pixels")]
    TooSmall { width: u32, height: u32, min_side: u32 },
    #[error("the region is {width}x{height} pixels, too thin to search: its long side may be at most {max_ratio} times its short side")]
    TooThin { width: u32, height: u32, max_ratio: u32 },
}

/// Why a setting (of a ranking, or a build) is refused, before any work is done with it; a
/// catalog holding one is refused as it is read.
#[derive(Debug, Error, PartialEq)]
pub enum SettingError {
    #[error("the {which} weight must be a number from 0 to {max}, not {value}")]
    Weight { which: &'static str, value: f32, max: f32 },
    #[error("the number of results (top_k) must be at least 1, not 0")]
    TopK,
    #[error("the threshold (min_score) must be a number from -{max} to {max}, not {value}")]
    MinScore { value: f32, max: f32 },
    #[error("the thumbnail size must be 1 to {max} pixels, not {value}")]
    ThumbnailSide { value: u32, max: u32 },
    #[error("{0}")]
    Compact(String),
}

/// Why a search session cannot do what was asked yet.
#[derive(Debug, Error)]
pub enum SessionError {
    #[error("no catalog is loaded")]
    NoCatalog,
    #[error("no photo has been ranked yet")]
    NoQuery,
}

/// Why labelled photos could not be evaluated or tuned on.
#[derive(Debug, Error, PartialEq)]
pub enum EvalError {
    #[error("the catalog has no items")]
    EmptyCatalog,
    #[error("none of the {photos} labelled photos shows a product of the catalog; label photos with the catalog's item ids or names")]
    NoPhotosOfCatalogItems { photos: usize },
    #[error("tuning needs photos of at least 2 catalog products (kept apart across folds); these show {products}")]
    TooFewProducts { products: usize },
    #[error("a photo embedding has {photo} values but the catalog's have {catalog}")]
    Dimension { photo: usize, catalog: usize },
    #[error("a photo is labelled with item {index} of a catalog of {items}")]
    NoSuchItem { index: usize, items: usize },
    #[error("{0}")]
    Option(String),
    #[error("cannot draw the report's charts: {0}")]
    Chart(String),
}

/// Why a catalog could not be built. `E`: the caller's own failure while taking a thumbnail.
#[derive(Debug, Error)]
pub enum BuildError<E: std::error::Error + 'static> {
    #[error("the vision model failed")]
    Vision(#[source] Error),
    #[error("the text model failed")]
    Text(#[source] Error),
    #[error("none of the {total} images could be read; no catalog was written")]
    NoImageRead { total: usize },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Setting(#[from] SettingError),
    #[error(transparent)]
    Output(E),
}

/// Why a catalog cannot be updated with the model and settings of this build.
#[derive(Debug, Error, PartialEq)]
pub enum UpdateError {
    #[error("the catalog does not record its images' sha256 (it was built without --updatable): build it once with --updatable, then update it")]
    NotUpdatable,
    #[error("the catalog was built with {0}; an update must use the same model and settings (build anew without --update to change them)")]
    Recipe(String),
    #[error("the catalog stores {catalog} vectors, not {asked}; an update keeps the vector dtype (build anew without --update to change it)")]
    Dtype { catalog: &'static str, asked: &'static str },
}

/// Why a checkpoint of an interrupted build is not used.
#[derive(Debug, Error, PartialEq)]
pub enum CheckpointError {
    #[error("it is not a checkpoint this version writes ({0})")]
    NotACheckpoint(String),
    #[error("it was made with {0}")]
    Recipe(String),
    #[error("it was made from another input list")]
    Inputs,
    #[error("it was made with batches of {found} photos, not {expected}")]
    BatchSize { found: usize, expected: usize },
    #[error("it was made updating another catalog, or building one anew")]
    Updating,
}

/// Why shards of a build were refused.
#[derive(Debug, Error, PartialEq)]
pub enum ShardError {
    #[error("it is not a shard folder this version reads ({0})")]
    Format(String),
    #[error("it is damaged: {0}")]
    Damaged(String),
    #[error("{0}")]
    Mismatch(String),
    #[error("shard {index}/{count} is given twice: {first} and {second}")]
    Duplicate { index: usize, count: usize, first: String, second: String },
    #[error("missing: shard {missing} (a build in {count} shards needs shards 0 to {last}, each once)", last = count - 1)]
    Missing { missing: String, count: usize },
    #[error("no shards given")]
    None,
}

/// Any failure of the core.
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Region(#[from] RegionError),
    #[error(transparent)]
    Setting(#[from] SettingError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
