//! `--model` / `CLIPMATCH_MODEL` as a folder or a hub id (`owner/name`): a hub id names the folder
//! `scripts/download_model.sh` wrote (`models/<name>` under the working folder) or the snapshot the
//! Hugging Face cache holds (`huggingface-cli download owner/name`). Nothing is downloaded here.

use std::env;
use std::path::{Path, PathBuf};

/// The model folder `value` names: itself when it is a folder, else the folder of that hub id.
pub fn parse(value: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(value);
    if path.is_dir() || !is_hub_id(value) {
        return Ok(path);
    }
    let candidates = candidates(value);
    candidates.iter().find(|dir| dir.is_dir()).cloned().ok_or_else(|| {
        let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        format!(
            "{value} is not a folder; as a hub id it is not downloaded (looked in {}): run scripts/download_model.sh {value}",
            looked.join(", ")
        )
    })
}

/// `owner/name` with the characters the hub allows, and no path-like parts.
fn is_hub_id(value: &str) -> bool {
    let mut parts = value.split('/');
    let ok = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    matches!((parts.next(), parts.next(), parts.next()), (Some(owner), Some(name), None) if ok(owner) && ok(name))
}

/// Where a downloaded hub model may be: the download script's folder, then the Hugging Face
/// cache's snapshot that `refs/main` points to.
fn candidates(id: &str) -> Vec<PathBuf> {
    let (owner, name) = id.split_once('/').expect("a hub id has one '/'");
    let mut dirs = vec![Path::new("models").join(name)];
    if let Some(cache) = hf_cache() {
        let repo = cache.join(format!("models--{owner}--{name}"));
        let commit = std::fs::read_to_string(repo.join("refs").join("main")).unwrap_or_default();
        let commit = commit.trim();
        if commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()) {
            dirs.push(repo.join("snapshots").join(commit));
        } else {
            dirs.push(repo.join("snapshots").join("<refs/main>"));
        }
    }
    dirs
}

/// `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub` (huggingface_hub's order).
fn hf_cache() -> Option<PathBuf> {
    let var = |name| env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("HF_HUB_CACHE")
        .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
        .or_else(|| var("XDG_CACHE_HOME").map(|c| c.join("huggingface").join("hub")))
        .or_else(|| var("HOME").map(|h| h.join(".cache").join("huggingface").join("hub")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_are_owner_slash_name_only() {
        for id in ["timm/MobileCLIP2-S0-OpenCLIP", "openai/clip-vit-base-patch32", "a/b.c_d"] {
            assert!(is_hub_id(id), "{id}");
        }
        for not in ["/abs/path", "a/b/c", "./a", "../a/b", "a/", "/a", "a b/c", ".x/y", "name"] {
            assert!(!is_hub_id(not), "{not}");
        }
    }

    #[test]
    fn a_hub_id_resolves_to_the_hf_cache_snapshot_refs_main_names() {
        let cache = tempfile::tempdir().unwrap();
        let repo = cache.path().join("models--someone--tiny");
        let commit = "0123456789abcdef0123456789abcdef01234567";
        std::fs::create_dir_all(repo.join("snapshots").join(commit)).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs").join("main"), format!("{commit}\n")).unwrap();
        // The only test in this binary that sets HF_HUB_CACHE.
        env::set_var("HF_HUB_CACHE", cache.path());
        assert_eq!(parse("someone/tiny").unwrap(), repo.join("snapshots").join(commit));
        let err = parse("someone/absent").unwrap_err();
        assert!(err.contains("not downloaded") && err.contains("scripts/download_model.sh someone/absent"), "{err}");
        env::remove_var("HF_HUB_CACHE");
        // A folder is itself, even when it looks like a hub id.
        assert_eq!(parse(".").unwrap(), PathBuf::from("."));
    }
}
