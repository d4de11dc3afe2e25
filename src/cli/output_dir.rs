//! Writing a catalog folder atomically: everything goes into a temporary sibling folder, which
//! replaces the destination by rename only once complete. An interrupted build leaves the old
//! catalog (or nothing), never half a catalog.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clipmatch::catalog::MANIFEST_FILE;

pub struct StagedDir {
    staging: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl StagedDir {
    /// Prepares a staging folder beside `target`. Refuses to later replace a folder that holds
    /// something other than a catalog.
    pub fn new(target: &Path) -> Result<Self> {
        if target.exists() {
            let is_catalog = target.join(MANIFEST_FILE).is_file();
            let is_empty = target.is_dir() && fs::read_dir(target)?.next().is_none();
            if !(is_catalog || is_empty) {
                bail!(
                    "refusing to replace {}: it exists and is not a catalog folder",
                    target.display()
                );
            }
        }
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "catalog".into());
        let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
        if staging.exists() {
            fs::remove_dir_all(&staging)?;
        }
        fs::create_dir_all(&staging).with_context(|| format!("cannot create {}", staging.display()))?;
        Ok(Self {
            staging,
            target: target.to_path_buf(),
            committed: false,
        })
    }

    /// Where to write the files.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// Swaps the staged folder in place of the target.
    pub fn commit(mut self) -> Result<()> {
        let old = self.staging.with_file_name(format!(
            "{}.old",
            self.staging.file_name().unwrap().to_string_lossy()
        ));
        let had_old = self.target.exists();
        if had_old {
            fs::rename(&self.target, &old)
                .with_context(|| format!("cannot move the old {} aside", self.target.display()))?;
        }
        if let Err(e) = fs::rename(&self.staging, &self.target) {
            if had_old {
                let _ = fs::rename(&old, &self.target);
            }
            return Err(e).with_context(|| format!("cannot move the new catalog to {}", self.target.display()));
        }
        self.committed = true;
        if had_old {
            let _ = fs::remove_dir_all(&old);
        }
        Ok(())
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}
