//! The work folder `.NAME.build` beside an output folder `NAME`: where every command that writes
//! `NAME` (build, tune, merge, bundle, eval --report) stages it, and what it locks while it does,
//! so that a second writer of the same path is refused in one line instead of silently undoing
//! the first one's work. The folder itself is locked (no lock file that a link could send
//! elsewhere) with `File::try_lock`; a folder replaced between opening and locking it (by a
//! command that finished and removed it) is opened again.
//!
//! Taking the lock also finishes what a stopped command left half done there (see
//! [`super::swap`]); commands that only read a folder do the same when nobody holds the lock
//! ([`settle`]), so that the next command of any kind finds the folder whole.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::output_dir;
use super::swap::{self, Recovered};

/// An output folder's work folder, locked by this process.
pub struct WorkDir {
    pub path: PathBuf,
    /// The real path of the output folder.
    pub target: PathBuf,
    /// Whether the work folder was removed (by a completed swap): it is not this process's to
    /// remove any more.
    pub gone: bool,
    _lock: File,
}

/// `.NAME.build` beside the real path `target`.
pub fn path_for(target: &Path) -> Option<PathBuf> {
    let name = target.file_name()?.to_string_lossy();
    Some(target.parent()?.join(format!(".{name}.build")))
}

/// Whether `file` (open) is what `path` names now.
fn is_same(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), fs::symlink_metadata(path)) {
            (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
    }
}

/// How taking a lock went.
enum Locked {
    Yes(File),
    /// Another process holds it.
    Busy,
    /// This file system cannot lock (some network ones).
    Unsupported(File, io::Error),
}

/// Opens the folder `work` and tries to lock it; `None` if it was replaced meanwhile.
fn try_lock(work: &Path) -> Result<Option<Locked>> {
    let file = match File::open(work) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", work.display())),
    };
    let unsupported = match file.try_lock() {
        Ok(()) => None,
        Err(fs::TryLockError::WouldBlock) => return Ok(Some(Locked::Busy)),
        Err(fs::TryLockError::Error(e)) => Some(e),
    };
    if !is_same(&file, work) {
        return Ok(None);
    }
    Ok(Some(match unsupported {
        None => Locked::Yes(file),
        Some(e) => Locked::Unsupported(file, e),
    }))
}

fn say(recovered: Recovered, target: &Path) {
    let t = target.display();
    match recovered {
        Recovered::Finished => eprintln!(
            "finished putting the new {t} in place (the command writing it was stopped midway)"
        ),
        Recovered::PutBack => eprintln!(
            "put the previous {t} back in place (the command replacing it was stopped midway)"
        ),
        Recovered::Tidied => {}
    }
}

/// Makes the folder `dir` if it is absent; refused if it is a link or a file.
pub fn own_folder(dir: &Path) -> Result<()> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        r => r.with_context(|| format!("cannot create the staging folder {}", dir.display()))?,
    }
    if !fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        let d = dir.display();
        bail!(
            "refusing to use {d}: it is not a folder this tool made (a link or a file); remove it"
        );
    }
    Ok(())
}

impl WorkDir {
    /// Takes (or makes) the work folder of `target` (as `check_target` resolved it), locked
    /// for this process, after finishing a swap a stopped command left there. Refused in one
    /// line if another command holds it, or if it is not a folder (a link or a file).
    pub fn lock(target: &Path, real: &Path) -> Result<Self> {
        let work = path_for(real).expect("an output folder has a parent and a name");
        for _ in 0..8 {
            own_folder(&work)?;
            let file = match try_lock(&work)? {
                None => continue,
                Some(Locked::Busy) => bail!(
                    "another clipmatch command is writing {} (it holds {}); wait for it to finish",
                    target.display(),
                    work.display()
                ),
                Some(Locked::Yes(f)) => f,
                // Go on, saying so.
                Some(Locked::Unsupported(f, e)) => {
                    eprintln!(
                        "cannot lock {} ({e}): make sure no other command writes {} meanwhile",
                        work.display(),
                        target.display()
                    );
                    f
                }
            };
            if let Some(r) = swap::recover(&work, real)? {
                say(r, target);
                if !work.exists() {
                    continue;
                }
            }
            return Ok(Self {
                path: work,
                target: real.to_path_buf(),
                gone: false,
                _lock: file,
            });
        }
        bail!(
            "cannot lock {}: it keeps being replaced by other commands; wait for them to finish",
            work.display()
        )
    }
}

impl Drop for WorkDir {
    /// Removes the work folder if this process left it empty (while still holding the lock).
    fn drop(&mut self) {
        if !self.gone {
            let _ = fs::remove_dir(&self.path);
        }
    }
}

/// Before a command reads the folder `dir`: finishes a swap into it that a stopped command
/// left half done, unless a command is writing it (its lock is held) or nothing was left.
pub fn settle(dir: &Path) -> Result<()> {
    let Ok(real) = output_dir::resolve(dir) else {
        return Ok(());
    };
    let Some(work) = path_for(&real) else {
        return Ok(());
    };
    if !fs::symlink_metadata(&work).is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    let Some(Locked::Yes(_lock)) = try_lock(&work)? else {
        return Ok(());
    };
    if let Some(r) = swap::recover(&work, &real)? {
        say(r, dir);
    }
    let _ = fs::remove_dir(&work);
    Ok(())
}
