//! The bundle format: one static folder holding everything the page needs (a vision tower, a
//! catalog, its thumbnails) and `bundle.json`, which lists every file with its size and sha256
//! and says which files are the model's and the catalog's. `clipmatch bundle` writes it; the
//! page reads it. Every path it lists is a plain relative path inside the bundle folder.

use serde::{Deserialize, Serialize};

use crate::error::BundleError;
use crate::search::catalog::{MANIFEST_FILE, VECTORS_FILE};

pub const BUNDLE_FILE: &str = "bundle.json";
pub const FORMAT: &str = "clipmatch-bundle";
pub const VERSION: u32 = 1;
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

/// The model's files (paths in the bundle folder) and how its weights are stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelFiles {
    /// `config.json` of the model.
    pub config: String,
    /// `preprocessor_config.json` of the model.
    pub preprocessor: String,
    /// The weights (safetensors).
    pub weights: String,
    /// Storage of the weights: `f16`, `f32` or `int8` (the export dtype's name).
    pub dtype: String,
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
    pub files: Vec<FileEntry>,
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
            files,
        }
    }

    /// Reads and checks a `bundle.json`: this format and version; every file a plain relative
    /// path inside the folder (no `..`, `.` or empty parts, no leading `/`, `\`, `:`, `?`, `#`,
    /// control characters or percent-encoded separators), listed once, with a size of at most
    /// [`MAX_FILE_BYTES`] and a sha256 of 64 lowercase hex digits; and the model and catalog
    /// files it names listed among them.
    pub fn from_json(json: &[u8]) -> Result<Self, BundleError> {
        let head: serde_json::Value = serde_json::from_slice(json).map_err(|e| BundleError::Json(e.to_string()))?;
        let format = head.get("format").and_then(|v| v.as_str()).unwrap_or("");
        let version = head.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
        if format != FORMAT || version != u64::from(VERSION) {
            return Err(BundleError::UnsupportedVersion {
                found: format.to_string(),
                version,
                expected: FORMAT,
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
        Ok(())
    }

    /// The files bundle.json names for a purpose, with that purpose.
    fn named_files(&self) -> [(&str, &'static str); 5] {
        [
            (&self.model.config, "model config"),
            (&self.model.preprocessor, "model preprocessor config"),
            (&self.model.weights, "model weights"),
            (&self.catalog, "catalog manifest"),
            (&self.vectors, "catalog vectors"),
        ]
    }

    /// The listed file at `path`.
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.path == path)
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
            (Box::new(|v: &mut serde_json::Value| v["version"] = 2.into()) as Box<dyn FnOnce(&mut serde_json::Value)>, "clipmatch-bundle", 2),
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
