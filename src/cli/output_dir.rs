//! Writing an output folder atomically: everything goes into a staging folder in the output's
//! work folder `.NAME.build` beside it, which replaces the destination only once complete (and is
//! removed if the command fails). The path always holds the old folder or the new one, never
//! half of one or nothing, wherever the command is stopped: see [`super::swap`] for the journaled
//! swap and how the next command finishes it. Every command writing `NAME` holds the lock of
//! `.NAME.build` while it reads what it replaces and writes (see [`super::work_dir`]): a second
//! one is refused in one line.
//!
//! Before anything is written the destination is checked: it may not be, contain or lie inside
//! a folder the command reads (the source, the catalog, the model), nor be a link to nothing, and
//! an existing folder is replaced only if it is empty or carries the marker of what is written (a
//! `catalog.json` of format `clipmatch-catalog` for `build` and `tune`, a `bundle.json` of format
//! `clipmatch-bundle` for `bundle`, a `report.json` of format `clipmatch-eval-report` for `eval
//! --report`, a `shard.json` of format `clipmatch-shard` for `build --shard`).
//!
//! `build` stages resumably ([`StagedDir::resumable`]): in `.NAME.build/out`, a name that does not
//! depend on the process, so that a build killed at any point finds its staged folder and
//! checkpoint again; the whole `.NAME.build` folder is removed once the output is in place (or the
//! command fails). The other commands stage in `.NAME.build/staged`, which a stopped one leaves
//! for the next writer to remove.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use clipmatch::search::bundle::{BUNDLE_FILE, FORMAT as BUNDLE_FORMAT};
use clipmatch::search::catalog::{FORMAT, MANIFEST_FILE};
use clipmatch::search::eval::report::{FORMAT as REPORT_FORMAT, MARKER_FILE as REPORT_FILE};
use clipmatch::search::shard::{FORMAT as SHARD_FORMAT, MANIFEST_FILE as SHARD_FILE};
use serde::Deserialize;

use super::files;
use super::swap::{self, Swap};
use super::work_dir::{self, WorkDir};

/// What an output folder holds, and so which existing folder it may replace.
#[derive(Clone, Copy)]
pub enum Kind {
    Catalog,
    Bundle,
    Report,
    Shard,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Catalog => "catalog",
            Kind::Bundle => "bundle",
            Kind::Report => "report",
            Kind::Shard => "shard",
        }
    }

    fn marker(self) -> (&'static str, &'static str) {
        match self {
            Kind::Catalog => (MANIFEST_FILE, FORMAT),
            Kind::Bundle => (BUNDLE_FILE, BUNDLE_FORMAT),
            Kind::Report => (REPORT_FILE, REPORT_FORMAT),
            Kind::Shard => (SHARD_FILE, SHARD_FORMAT),
        }
    }

    /// Whether `dir` holds this kind's marker file, a regular file naming the format.
    fn marks(self, dir: &Path) -> bool {
        #[derive(Deserialize)]
        struct Head {
            format: String,
        }
        let (file, format) = self.marker();
        let is_file = fs::symlink_metadata(dir.join(file)).is_ok_and(|m| m.is_file());
        is_file
            && files::read_regular(&dir.join(file), super::catalog_dir::MAX_MANIFEST_BYTES)
                .ok()
                .and_then(|b| serde_json::from_slice::<Head>(&b).ok())
                .is_some_and(|h| h.format == format)
    }
}

/// Writes `bytes` as the regular file `name` inside `dir`, replacing a file of that name but
/// never writing through a link (a staged folder left by a killed command is reused).
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(name);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e).with_context(|| format!("cannot replace {}", path.display())),
        _ => {}
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    io::Write::write_all(&mut file, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// `path` made absolute with every link resolved, also when it does not exist yet: its nearest
/// existing ancestor is canonicalised and the rest appended (`..` in the rest removes the
/// component before it: names that do not exist yet are not links). A link to nothing on the
/// way is refused: what is written through it would not be where it is read.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    let abs = std::env::current_dir().context("cannot tell the current folder")?.join(path);
    let mut rest = Vec::new();
    let mut base = abs.as_path();
    let mut real = loop {
        match fs::canonicalize(base) {
            Ok(p) => break p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Ok(to) = fs::read_link(base) {
                    bail!("{} is a link to {}, which does not exist", base.display(), to.display());
                }
                let mut c = base.components();
                match c.next_back() {
                    Some(last) => rest.push(last),
                    None => return Err(e).with_context(|| format!("cannot resolve {}", path.display())),
                }
                base = c.as_path();
            }
            Err(e) => return Err(e).with_context(|| format!("cannot resolve {}", path.display())),
        }
    };
    for c in rest.into_iter().rev() {
        match c {
            Component::ParentDir => {
                real.pop();
            }
            Component::Normal(n) => real.push(n),
            _ => {}
        }
    }
    Ok(real)
}

/// Refuses an output folder `out` that is, contains or lies inside `what` at `read`.
fn keep_clear(out: &Path, real_out: &Path, what: &str, read: &Path) -> Result<()> {
    let real = resolve(read)?;
    let (o, r) = (out.display(), read.display());
    if real == real_out {
        bail!("refusing to write {o}: it is the {what} {r}; choose another output folder");
    }
    if real_out.starts_with(&real) {
        bail!("refusing to write {o}: it lies inside the {what} {r}; choose a folder outside it");
    }
    if real.starts_with(real_out) {
        bail!("refusing to write {o}: it contains the {what} {r}, which replacing it would delete; choose another output folder");
    }
    Ok(())
}

pub struct StagedDir {
    staging: PathBuf,
    committed: bool,
    /// The output's work folder, locked: the staging folder is in it.
    work: WorkDir,
    /// `build`'s: the staging folder and the checkpoint beside it outlive a killed command.
    resumable: bool,
    /// Leave the work folder if the command fails.
    keep_work: bool,
}

/// Checks `target` (see the module's doc; `inputs` are what the command reads, as
/// `(what, path)`) and makes sure its parent exists; its real path, parent and name.
pub fn check_target(target: &Path, kind: Kind, inputs: &[(&str, &Path)]) -> Result<(PathBuf, PathBuf, String)> {
    let real = resolve(target).with_context(|| format!("refusing to write {}", target.display()))?;
    for (what, read) in inputs {
        keep_clear(target, &real, what, read)?;
    }
    let noun = kind.noun();
    if let Ok(meta) = fs::metadata(&real) {
        if !meta.is_dir() {
            bail!("refusing to replace {}: it exists and is not a folder", target.display());
        }
        let is_empty = fs::read_dir(&real)?.next().is_none();
        if !(is_empty || kind.marks(&real)) {
            let (file, format) = kind.marker();
            bail!(
                "refusing to replace {}: it is not a {noun} folder (no {file} of format {format:?}) and not empty; choose a new or empty folder",
                target.display()
            );
        }
    }
    let (Some(parent), Some(name)) = (real.parent(), real.file_name()) else {
        bail!("refusing to write {}: choose a folder that has a parent", target.display());
    };
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let name = name.to_string_lossy().into_owned();
    Ok((parent.to_path_buf(), real, name))
}

/// Checks `target` (see [`check_target`]), then takes the lock of its work folder (finishing
/// what a stopped command left there) and checks it again: what a writer reads of the folder it
/// replaces, after this, no other writer changes meanwhile.
pub fn claim(target: &Path, kind: Kind, inputs: &[(&str, &Path)]) -> Result<WorkDir> {
    let (_, real, _) = check_target(target, kind, inputs)?;
    let work = WorkDir::lock(target, &real)?;
    check_target(target, kind, inputs)?;
    Ok(work)
}

impl StagedDir {
    /// Checks `target` (see the module's doc; `inputs` are what the command reads, as
    /// `(what, path)`), takes its work folder's lock, then makes a new staging folder in it.
    pub fn new(target: &Path, kind: Kind, inputs: &[(&str, &Path)]) -> Result<Self> {
        let work = claim(target, kind, inputs)?;
        let staging = work.path.join(swap::STAGE);
        // Left by a command stopped before its commit point: never to be used.
        if let Ok(m) = fs::symlink_metadata(&staging) {
            files::remove(&staging, m.file_type())?;
        }
        work_dir::own_folder(&staging)?;
        Ok(Self { staging, committed: false, work, resumable: false, keep_work: false })
    }

    /// In the work folder [`claim`] took, the resumable staging folder `out`: what a killed
    /// command left there is still there.
    pub fn resumable(work: WorkDir) -> Result<Self> {
        let staging = work.path.join(swap::BUILD_STAGE);
        work_dir::own_folder(&staging)?;
        Ok(Self { staging, committed: false, work, resumable: true, keep_work: false })
    }

    /// The work folder around the staging folder (where a build's checkpoint goes).
    pub fn work_dir(&self) -> &Path {
        &self.work.path
    }

    /// Keeps a resumable stage's work folder if the command fails from now on: it holds work
    /// that running the command again will reuse.
    pub fn keep_on_failure(&mut self) {
        self.keep_work = self.resumable;
    }

    /// Where to write the files.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// Swaps the staged folder in place of the target (see [`super::swap`]).
    pub fn commit(mut self) -> Result<()> {
        let swap = Swap {
            work: self.work.path.clone(),
            staged: if self.resumable { swap::BUILD_STAGE } else { swap::STAGE },
            target: self.work.target.clone(),
            remove_work: self.resumable,
        };
        let result = swap.run();
        self.committed = result.is_ok() || swap.new_is_in_place();
        self.work.gone = result.is_ok();
        result.with_context(|| format!("cannot put the new folder in place of {}", self.work.target.display()))
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if self.committed || self.keep_work {
            return;
        }
        if self.resumable {
            self.work.gone = fs::remove_dir_all(&self.work.path).is_ok();
        } else {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_paths_that_do_not_exist_yet() {
        let tmp = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap();
        fs::create_dir(root.join("cat")).unwrap();
        assert_eq!(resolve(&root.join("cat/new/deeper")).unwrap(), root.join("cat/new/deeper"));
        assert_eq!(resolve(&root.join("new/../cat")).unwrap(), root.join("cat"));
        assert_eq!(resolve(&root.join("cat/./x/..")).unwrap(), root.join("cat"));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(root.join("cat"), root.join("link")).unwrap();
            assert_eq!(resolve(&root.join("link/new")).unwrap(), root.join("cat/new"));
        }
    }
}
