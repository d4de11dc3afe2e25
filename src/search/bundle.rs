//! The bundle format: one static folder holding everything the page needs (an image tower, a
//! catalog, its thumbnails) and `bundle.json`, which lists every file with its size and sha256,
//! says which files are the model's and the catalog's, and what the model is (its family, the
//! preprocessing its files resolve to, its embedding size, its weights' sha256). `clipmatch
//! bundle` writes it; the page reads it (www/bundle.js checks the same rules before fetching).
//! Every path it lists is a plain relative path inside the bundle folder.
//!
//! Version 2 added the model's description; version 1 bundles (no family: OpenAI CLIP, with a
//! `preprocessor_config.json`) are still read.

use serde::{Deserialize, Serialize};

use crate::error::BundleError;
use crate::models::config::PreprocessConfig;
use crate::models::model::Family;
use crate::search::catalog::{COMPACT_FILE, MANIFEST_FILE, MAX_EMBEDDING_DIM, PAGE_MANIFEST_FILE, VECTORS_FILE};

pub const BUNDLE_FILE: &str = "bundle.json";
pub const FORMAT: &str = "clipmatch-bundle";
/// The version written.
pub const VERSION: u32 = 2;
/// The oldest version read.
pub const OLDEST_VERSION: u32 = 1;
/// A file larger than this is refused (wasm32 memory is 4 GiB in all).
pub const MAX_FILE_BYTES: u64 = 1 << 31;
/// Longest path a bundle may list, in characters.
pub const MAX_PATH_CHARS: usize = 1024;

/// One file of the bundle folder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    /// Relative to the bundle folder, `/`-separated.
    pub path: String,
    pub bytes: u64,
    /// Lowercase hex.
    pub sha256: String,
}

impl FileEntry {
    /// The entry for a file at `path` holding `contents`.
    pub fn of(path: &str, contents: &[u8]) -> Self {
        Self {
            path: path.to_string(),
            bytes: contents.len() as u64,
            sha256: crate::digest::sha256_hex(contents),
        }
    }
}

/// The model: its files (paths in the bundle folder), how its weights are stored and, from
/// version 2, what it is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelFiles {
    /// [`Family::id`]: `openai-clip`, `mobileclip` or `siglip`. Absent in version 1 (OpenAI CLIP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// The config file: `config.json` (OpenAI CLIP, SigLIP) or `open_clip_config.json` (MobileCLIP).
    pub config: String,
    /// `preprocessor_config.json` (OpenAI CLIP, SigLIP; MobileCLIP's preprocessing is in its config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocessor: Option<String>,
    /// The weights (safetensors): the image tower alone.
    pub weights: String,
    /// Storage of the weights: `f16`, `f32` or `int8` (the export dtype's name).
    pub dtype: String,
    /// The preprocessing the config files resolve to, every field written (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "resolved")]
    pub preprocessing: Option<PreprocessConfig>,
    /// Dimension of the embeddings the image tower makes (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_dim: Option<usize>,
    /// sha256 of the weights file, as its entry in `files` (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_sha256: Option<String>,
    /// The weights' layout where it is not the checkpoint's own: `fastvit-fused/1` for a
    /// MobileCLIP FastViT tower written fused (`mobileclip::fastvit::names`), which the page runs
    /// on its package without candle. The weights file records it too; that is what the loader
    /// reads. Absent in older bundles (their FastViT towers have open_clip's names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
}

/// A [`PreprocessConfig`] written with every field, defaults included (the catalog's manifest
/// leaves CLIP's defaults out).
mod resolved {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::models::config::{Interpolation, PreprocessArithmetic, PreprocessConfig, ResizeMode};

    #[derive(Serialize)]
    struct Resolved<'a> {
        shortest_edge: u32,
        crop_height: u32,
        crop_width: u32,
        rescale_factor: f32,
        mean: &'a [f32; 3],
        std: &'a [f32; 3],
        interpolation: Interpolation,
        resize_mode: ResizeMode,
        arithmetic: PreprocessArithmetic,
    }

    pub fn serialize<S: Serializer>(p: &Option<PreprocessConfig>, s: S) -> Result<S::Ok, S::Error> {
        let Some(p) = p else { return s.serialize_none() };
        Resolved {
            shortest_edge: p.shortest_edge,
            crop_height: p.crop_height,
            crop_width: p.crop_width,
            rescale_factor: p.rescale_factor,
            mean: &p.mean,
            std: &p.std,
            interpolation: p.interpolation,
            resize_mode: p.resize_mode,
            arithmetic: p.arithmetic,
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PreprocessConfig>, D::Error> {
        Option::<PreprocessConfig>::deserialize(d)
    }
}

impl ModelFiles {
    /// The model's family (version 1 names none: OpenAI CLIP).
    pub fn family(&self) -> Result<Family, BundleError> {
        match &self.family {
            None => Ok(Family::OpenAiClip),
            Some(id) => Family::from_id(id).ok_or_else(|| BundleError::UnknownFamily(shown(id))),
        }
    }

    /// The description's checks: a known family; in version 2 every field present, the weights'
    /// sha256 the one `weights` lists; a preprocessor file where the family has one.
    fn check(&self, version: u32, weights: Option<&FileEntry>) -> Result<(), BundleError> {
        let family = self.family()?;
        if version >= 2 {
            let missing = [
                ("family", self.family.is_none()),
                ("preprocessing", self.preprocessing.is_none()),
                ("embedding_dim", self.embedding_dim.is_none()),
                ("weights_sha256", self.weights_sha256.is_none()),
            ];
            if let Some((field, _)) = missing.iter().find(|(_, absent)| *absent) {
                return Err(BundleError::MissingField(field));
            }
        }
        if let Some(dim) = self.embedding_dim.filter(|d| *d == 0 || *d > MAX_EMBEDDING_DIM) {
            return Err(BundleError::ImpossibleDimension(dim));
        }
        if let (Some(sha), Some(entry)) = (&self.weights_sha256, weights) {
            if *sha != entry.sha256 {
                return Err(BundleError::WeightsSha256 { path: shown(&entry.path) });
            }
        }
        if self.preprocessor.is_none() && family != Family::MobileClip {
            return Err(BundleError::NoPreprocessor(family.name()));
        }
        Ok(())
    }

    /// Refuses a loaded model that is not what this entry says: another family, embedding size
    /// or preprocessing.
    pub fn check_loaded(&self, family: Family, embedding_dim: usize, preprocess: &PreprocessConfig) -> Result<(), BundleError> {
        let disagrees = |what, bundle: String, model: String| Err(BundleError::ModelDisagrees { what, bundle, model });
        if self.family()? != family {
            return disagrees("family", self.family()?.id().into(), family.id().into());
        }
        if let Some(dim) = self.embedding_dim.filter(|d| *d != embedding_dim) {
            return disagrees("embedding size", dim.to_string(), embedding_dim.to_string());
        }
        if let Some(p) = self.preprocessing.as_ref().filter(|p| !p.same_as(preprocess)) {
            return disagrees("preprocessing", format!("{p:?}"), format!("{preprocess:?}"));
        }
        Ok(())
    }
}

/// `bundle.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bundle {
    pub format: String,
    pub version: u32,
    pub model: ModelFiles,
    /// The catalog's manifest.
    pub catalog: String,
    /// The catalog's vectors file.
    pub vectors: String,
    /// A big catalog's compact files, which the page ranks with before (and while) it
    /// downloads the vectors file; absent otherwise (and then not written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compact: Option<BundleCompact>,
    pub files: Vec<FileEntry>,
}

/// `compact` in bundle.json: the page's manifest and the compact codes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BundleCompact {
    /// [`PAGE_MANIFEST_FILE`]: the catalog's manifest less what the page does not need; gzipped
    /// when its name ends in `.gz` (the page decompresses it: static hosts do not all compress,
    /// and its ids and names shrink about 5 times).
    pub manifest: String,
    /// [`COMPACT_FILE`].
    pub codes: String,
}

impl Default for BundleCompact {
    fn default() -> Self {
        Self { manifest: format!("{PAGE_MANIFEST_FILE}.gz"), codes: COMPACT_FILE.into() }
    }
}

impl Bundle {
    /// A bundle of this format and version whose catalog sits at the folder's top
    /// ([`MANIFEST_FILE`], [`VECTORS_FILE`]).
    pub fn new(model: ModelFiles, files: Vec<FileEntry>) -> Self {
        Self {
            format: FORMAT.into(),
            version: VERSION,
            model,
            catalog: MANIFEST_FILE.into(),
            vectors: VECTORS_FILE.into(),
            compact: None,
            files,
        }
    }

    /// Reads and checks a `bundle.json`: this format, version 1 or 2; every file a plain relative
    /// path inside the folder (no `..`, `.` or empty parts, no leading `/`, `\`, `:`, `?`, `#`,
    /// control characters or percent-encoded separators), listed once, with a size of at most
    /// [`MAX_FILE_BYTES`] and a sha256 of 64 lowercase hex digits; the model and catalog files it
    /// names listed among them; the model a known family, described in full (version 2).
    pub fn from_json(json: &[u8]) -> Result<Self, BundleError> {
        let head: serde_json::Value = serde_json::from_slice(json).map_err(|e| BundleError::Json(e.to_string()))?;
        let format = head.get("format").and_then(|v| v.as_str()).unwrap_or("");
        let version = head.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
        if format != FORMAT || !(u64::from(OLDEST_VERSION)..=u64::from(VERSION)).contains(&version) {
            return Err(BundleError::UnsupportedVersion {
                found: format.to_string(),
                version,
                expected: FORMAT,
                oldest: OLDEST_VERSION,
                supported: VERSION,
            });
        }
        let bundle: Bundle = serde_json::from_value(head).map_err(|e| BundleError::Json(e.to_string()))?;
        bundle.check()?;
        Ok(bundle)
    }

    /// The checks of [`Bundle::from_json`] past format and version.
    pub fn check(&self) -> Result<(), BundleError> {
        let mut listed = std::collections::HashSet::new();
        for f in &self.files {
            if let Some(problem) = path_problem(&f.path) {
                return Err(BundleError::BadPath { path: shown(&f.path), problem });
            }
            if !listed.insert(f.path.as_str()) {
                return Err(BundleError::ListedTwice(shown(&f.path)));
            }
            if f.bytes > MAX_FILE_BYTES {
                return Err(BundleError::ImpossibleSize { path: shown(&f.path), bytes: f.bytes, max: MAX_FILE_BYTES });
            }
            if !is_sha256_hex(&f.sha256) {
                return Err(BundleError::BadSha256(shown(&f.path)));
            }
        }
        for (path, role) in self.named_files() {
            if !listed.contains(path) {
                return Err(BundleError::NotListed { path: shown(path), role });
            }
        }
        self.model.check(self.version, self.file(&self.model.weights))
    }

    /// The files bundle.json names for a purpose, with that purpose.
    fn named_files(&self) -> Vec<(&str, &'static str)> {
        let mut named = vec![(self.model.config.as_str(), "model config")];
        named.extend(self.model.preprocessor.as_deref().map(|p| (p, "model preprocessor config")));
        named.extend([
            (self.model.weights.as_str(), "model weights"),
            (self.catalog.as_str(), "catalog manifest"),
            (self.vectors.as_str(), "catalog vectors"),
        ]);
        if let Some(c) = &self.compact {
            named.extend([(c.manifest.as_str(), "compact catalog manifest"), (c.codes.as_str(), "compact codes")]);
        }
        named
    }

    /// The listed file at `path`.
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.path == path)
    }

    /// The model's weights file as listed (a checked bundle lists it).
    pub fn weights_file(&self) -> Result<&FileEntry, BundleError> {
        self.file(&self.model.weights)
            .ok_or_else(|| BundleError::NotListed { path: shown(&self.model.weights), role: "model weights" })
    }

    /// Bytes of all listed files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    /// `bundle.json` as written: pretty JSON, fields in declaration order.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("bundle serialises")
    }
}

/// At most the first 80 characters of a path, for messages (a hostile path may be long).
fn shown(path: &str) -> String {
    path.chars().take(80).collect()
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Why `path` is not a plain relative path inside the bundle folder, or `None`.
fn path_problem(path: &str) -> Option<&'static str> {
    // Percent-encoded dots, slashes and backslashes could become `..` or separators on a server.
    let encoded_separator = ["%2e", "%2f", "%5c"].iter().any(|e| path.to_ascii_lowercase().contains(e));
    if path.is_empty() || path.chars().count() > MAX_PATH_CHARS {
        Some("is not a file name")
    } else if path.starts_with('/') || path.contains(['\\', ':']) || path.chars().any(|c| c.is_ascii_control()) {
        Some("is not a relative path")
    } else if path.contains(['?', '#']) || encoded_separator {
        Some("is not a plain file path")
    } else if path.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        Some("leaves its folder or has an empty part")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn sample() -> serde_json::Value {
        let files: Vec<serde_json::Value> =
            ["model/config.json", "model/preprocessor_config.json", "model/model.safetensors", "catalog.json", "vectors.bin", "thumbs/a.jpg"]
                .iter()
                .map(|p| serde_json::json!({ "path": p, "bytes": 10, "sha256": SHA }))
                .collect();
        serde_json::json!({
            "format": "clipmatch-bundle",
            "version": 1,
            "model": {
                "config": "model/config.json",
                "preprocessor": "model/preprocessor_config.json",
                "weights": "model/model.safetensors",
                "dtype": "f16"
            },
            "catalog": "catalog.json",
            "vectors": "vectors.bin",
            "files": files
        })
    }

    fn read(edit: impl FnOnce(&mut serde_json::Value)) -> Result<Bundle, BundleError> {
        let mut v = sample();
        edit(&mut v);
        Bundle::from_json(v.to_string().as_bytes())
    }

    #[test]
    fn a_sound_bundle_is_read_and_written_back_unchanged() {
        let b = read(|_| ()).unwrap();
        assert_eq!(b.files.len(), 6);
        assert_eq!(b.file("thumbs/a.jpg").map(|f| f.bytes), Some(10));
        assert_eq!(b.total_bytes(), 60);
        let written: serde_json::Value = serde_json::from_str(&b.to_json()).unwrap();
        assert_eq!(written, sample());
        let json = b.to_json();
        let keys: Vec<&str> = json.lines().filter(|l| l.starts_with("  \"")).map(|l| l.trim().split('"').nth(1).unwrap()).collect();
        assert_eq!(keys, ["format", "version", "model", "catalog", "vectors", "files"], "field order of bundle.json");
    }

    #[test]
    fn another_format_or_version_is_refused() {
        for (edit, found, version) in [
            (Box::new(|v: &mut serde_json::Value| v["version"] = 3.into()) as Box<dyn FnOnce(&mut serde_json::Value)>, "clipmatch-bundle", 3),
            (Box::new(|v| v["version"] = 0.into()), "clipmatch-bundle", 0),
            (Box::new(|v| v["format"] = "clipmatch-catalog".into()), "clipmatch-catalog", 1),
            (Box::new(|v| v["version"] = "1".into()), "clipmatch-bundle", 0),
            (Box::new(|v| *v = serde_json::json!([1, 2])), "", 0),
        ] {
            match read(edit) {
                Err(BundleError::UnsupportedVersion { found: f, version: n, .. }) => assert_eq!((f.as_str(), n), (found, version)),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(Bundle::from_json(b"{\"format\": "), Err(BundleError::Json(_))));
        assert!(matches!(read(|v| v["files"] = "all".into()), Err(BundleError::Json(_))));
        assert!(matches!(read(|v| v["model"].as_object_mut().unwrap().remove("weights").map(drop).unwrap()), Err(BundleError::Json(_))));
    }

    /// The sample as version 2 of `family`: described in full.
    fn version_2(v: &mut serde_json::Value, family: &str) {
        v["version"] = 2.into();
        v["model"]["family"] = family.into();
        v["model"]["preprocessing"] = serde_json::to_value(PreprocessConfig::default()).unwrap();
        v["model"]["embedding_dim"] = 512.into();
        v["model"]["weights_sha256"] = SHA.into();
    }

    #[test]
    fn version_2_says_what_the_model_is_and_is_checked() {
        let b = read(|v| version_2(v, "siglip")).unwrap();
        assert_eq!((b.model.family().unwrap(), b.model.embedding_dim), (Family::Siglip, Some(512)));
        assert_eq!(b.model.preprocessing, Some(PreprocessConfig::default()));
        let written: serde_json::Value = serde_json::from_str(&b.to_json()).unwrap();
        assert_eq!(written["model"]["preprocessing"]["resize_mode"], "shortest", "every preprocessing field is written");
        assert_eq!(Bundle::from_json(b.to_json().as_bytes()).unwrap(), b);
        // Version 1 names no family: OpenAI CLIP.
        assert_eq!(read(|_| ()).unwrap().model.family().unwrap(), Family::OpenAiClip);

        assert_eq!(read(|v| { version_2(v, "dinov2") }).unwrap_err(), BundleError::UnknownFamily("dinov2".into()));
        for field in ["family", "preprocessing", "embedding_dim", "weights_sha256"] {
            let e = read(|v| {
                version_2(v, "siglip");
                v["model"].as_object_mut().unwrap().remove(field);
            });
            assert_eq!(e.unwrap_err(), BundleError::MissingField(field));
        }
        let e = read(|v| {
            version_2(v, "siglip");
            v["model"]["weights_sha256"] = SHA.replace('0', "1").into();
        });
        assert_eq!(e.unwrap_err(), BundleError::WeightsSha256 { path: "model/model.safetensors".into() });
        let e = read(|v| v["model"]["embedding_dim"] = 0.into()).unwrap_err();
        assert_eq!(e, BundleError::ImpossibleDimension(0));
        // MobileCLIP's preprocessing is in its config; the others need a preprocessor file.
        let no_preprocessor = |family: &'static str| {
            read(move |v| {
                version_2(v, family);
                v["model"].as_object_mut().unwrap().remove("preprocessor");
            })
        };
        assert!(no_preprocessor("mobileclip").is_ok());
        assert_eq!(no_preprocessor("openai-clip").unwrap_err(), BundleError::NoPreprocessor("OpenAI CLIP"));
    }

    #[test]
    fn a_loaded_model_must_be_what_the_bundle_says() {
        let b = read(|v| version_2(v, "mobileclip")).unwrap();
        let p = PreprocessConfig::default();
        assert!(b.model.check_loaded(Family::MobileClip, 512, &p).is_ok());
        let e = b.model.check_loaded(Family::Siglip, 512, &p).unwrap_err();
        assert_eq!(e.to_string(), "bundle.json says the model's family is mobileclip, but its files make siglip");
        assert!(matches!(b.model.check_loaded(Family::MobileClip, 32, &p), Err(BundleError::ModelDisagrees { what: "embedding size", .. })));
        let other = PreprocessConfig { resize_mode: crate::models::config::ResizeMode::Squash, ..p };
        assert!(matches!(b.model.check_loaded(Family::MobileClip, 512, &other), Err(BundleError::ModelDisagrees { what: "preprocessing", .. })));
    }

    #[test]
    fn paths_that_leave_the_folder_or_are_not_plain_are_refused() {
        for (path, problem) in [
            ("", "is not a file name"),
            (&"a".repeat(1025) as &str, "is not a file name"),
            ("/etc/passwd", "is not a relative path"),
            ("thumbs\\a.jpg", "is not a relative path"),
            ("https://other.example/x.jpg", "is not a relative path"),
            ("c:x.jpg", "is not a relative path"),
            ("thumbs/a\n.jpg", "is not a relative path"),
            ("thumbs/a.jpg?x=1", "is not a plain file path"),
            ("thumbs/a.jpg#top", "is not a plain file path"),
            ("%2E%2E/x.jpg", "is not a plain file path"),
            ("thumbs%2fa.jpg", "is not a plain file path"),
            ("../outside.jpg", "leaves its folder or has an empty part"),
            ("thumbs/../../x", "leaves its folder or has an empty part"),
            ("./catalog.json", "leaves its folder or has an empty part"),
            ("thumbs//a.jpg", "leaves its folder or has an empty part"),
            ("thumbs/", "leaves its folder or has an empty part"),
        ] {
            let err = read(|v| v["files"][5]["path"] = path.into()).unwrap_err();
            assert_eq!(err, BundleError::BadPath { path: shown(path), problem }, "{path:?}");
        }
        assert_eq!(read(|v| v["files"][5]["path"] = "thumbs/ä b.jpg".into()).map(|b| b.files.len()), Ok(6));
    }

    #[test]
    fn repeated_files_impossible_sizes_and_bad_hashes_are_refused() {
        let err = read(|v| v["files"][5]["path"] = "vectors.bin".into()).unwrap_err();
        assert_eq!(err, BundleError::ListedTwice("vectors.bin".into()));
        let err = read(|v| v["files"][5]["bytes"] = (MAX_FILE_BYTES + 1).into()).unwrap_err();
        assert!(matches!(err, BundleError::ImpossibleSize { bytes, .. } if bytes == MAX_FILE_BYTES + 1), "{err}");
        assert!(read(|v| v["files"][5]["bytes"] = MAX_FILE_BYTES.into()).is_ok());
        for bytes in [serde_json::json!(-1), serde_json::json!(1.5), serde_json::json!("10")] {
            assert!(matches!(read(|v| v["files"][5]["bytes"] = bytes), Err(BundleError::Json(_))));
        }
        for sha in [&SHA[..63], &SHA.to_uppercase(), &format!("{}g", &SHA[..63]), ""] {
            let err = read(|v| v["files"][5]["sha256"] = sha.into()).unwrap_err();
            assert_eq!(err, BundleError::BadSha256("thumbs/a.jpg".into()), "{sha:?}");
        }
    }

    #[test]
    fn named_files_must_be_listed() {
        let err = read(|v| v["model"]["weights"] = "model/other.safetensors".into()).unwrap_err();
        assert_eq!(err, BundleError::NotListed { path: "model/other.safetensors".into(), role: "model weights" });
        let err = read(|v| v["vectors"] = "../vectors.bin".into()).unwrap_err();
        assert_eq!(err, BundleError::NotListed { path: "../vectors.bin".into(), role: "catalog vectors" });
        let err = read(|v| {
            v["files"].as_array_mut().unwrap().remove(0);
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "bundle.json names \"model/config.json\" as its model config but does not list it among its files");
    }

    #[test]
    fn long_hostile_paths_are_shown_shortened() {
        let long = format!("../{}", "x".repeat(500));
        let err = read(|v| v["files"][5]["path"] = long.as_str().into()).unwrap_err();
        assert!(err.to_string().len() < 200, "{err}");
    }
}
