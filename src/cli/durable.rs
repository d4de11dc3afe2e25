//! Making what was written survive a power cut: every file and folder of a finished output is
//! synced to the disk (`fsync`) before it is swapped in place, and the folders that hold the
//! swap's renames after them (see [`super::swap`]). Every sync goes through [`sync`], which in
//! the unit tests also records what it synced, in order.

use std::fs::{self, File};
use std::path::Path;

use anyhow::{Context, Result};

/// Syncs the file or folder `path` (a folder's entries: names created, removed or renamed in it).
pub fn sync(path: &Path) -> Result<()> {
    // Windows cannot open a folder as a file to sync it.
    if cfg!(not(unix)) && path.is_dir() {
        return Ok(());
    }
    File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {} to the disk", path.display()))?;
    #[cfg(test)]
    record::synced(path);
    Ok(())
}

/// Syncs every file and folder under `dir`, then `dir` itself (links are not followed: an
/// output holds none).
pub fn sync_tree(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        let t = entry.file_type()?;
        if t.is_dir() {
            sync_tree(&entry.path())?;
        } else if t.is_file() {
            sync(&entry.path())?;
        }
    }
    sync(dir)
}

#[cfg(test)]
pub mod record {
    use std::cell::RefCell;
    use std::path::{Path, PathBuf};

    thread_local! {
        static SYNCED: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn synced(path: &Path) {
        SYNCED.with(|s| s.borrow_mut().push(path.to_path_buf()));
    }

    /// What this thread synced since the last call, in order.
    pub fn take() -> Vec<PathBuf> {
        SYNCED.with(|s| std::mem::take(&mut *s.borrow_mut()))
    }
}
