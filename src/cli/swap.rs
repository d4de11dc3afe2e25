//! Putting a finished output folder in place of the old one so that its path holds the old or
//! the new version, never nothing and never half of one, wherever a command is killed (or the
//! power is cut), and so that the next command that reads or writes the path finishes the swap.
//!
//! An output `NAME` is staged in its work folder `.NAME.build` beside it (see
//! [`super::work_dir`]): in `out/` for `build` ([`BUILD_STAGE`]), `staged/` for the other
//! commands ([`STAGE`]). The swap runs [`STEPS`] in order; after each one the disk is in a
//! state the next command recognises by what `.NAME.build` holds:
//!
//! | after           | on disk                                     | the next command   |
//! |-----------------|---------------------------------------------|--------------------|
//! | (writing)       | the staged folder, no journal               | never uses it      |
//! | `SyncStaged`    | all of it synced; no journal                | same               |
//! | `WriteJournal`  | `swap.json`, synced, naming the staged one  | finishes the swap  |
//! | `MoveOldAside`  | `NAME` moved to `.NAME.build/old` (if any)  | finishes the swap  |
//! | `MoveNewIn`     | the staged folder is `NAME`                 | finishes the swap  |
//! | `SyncFolders`   | both renames synced (parent, work folder)   | finishes the swap  |
//! | `RemoveOld`     | `old` removed                               | finishes the swap  |
//! | `ClearWork`     | `build`: its checkpoint removed             | finishes the swap  |
//! | `RemoveJournal` | no journal                                  | nothing to do      |
//! | `RemoveWork`    | the work folder removed if empty            | nothing to do      |
//!
//! So the journal `swap.json` is the commit point: without it the old `NAME` is untouched and a
//! staged folder is never used; with it the swap is finished forwards, from `MoveOldAside` while
//! the staged folder is still there (moving `NAME` aside only if it is still in place) and from
//! `SyncFolders` once it is gone. Without a journal, an `old` folder (or `out.old`, left by
//! versions before the journal) is put back if `NAME` is missing, else removed. A journal that
//! cannot be read was cut short while being written, before any rename: it is removed.
//! Recovery runs under the work folder's lock (see [`super::work_dir`]), never beside a live swap.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{durable, files};

/// The staged folder of `build` (resumable: its checkpoint lies beside it in the work folder).
pub const BUILD_STAGE: &str = "out";
/// The staged folder of the other commands.
pub const STAGE: &str = "staged";
/// The journal: present from the commit point until the swap is complete.
pub const JOURNAL: &str = "swap.json";
/// Where the folder replaced waits until the new one is in place.
const OLD: &str = "old";
/// Where versions before the journal moved the folder replaced (`build` only).
const LEGACY_OLD: &str = "out.old";
const FORMAT: &str = "clipmatch-swap";

#[derive(Serialize, Deserialize)]
struct Journal {
    format: String,
    /// [`BUILD_STAGE`] or [`STAGE`].
    staged: String,
    /// Whether all else in the work folder goes once the swap is complete (`build`'s checkpoint).
    remove_work: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    SyncStaged,
    WriteJournal,
    MoveOldAside,
    MoveNewIn,
    SyncFolders,
    RemoveOld,
    ClearWork,
    RemoveJournal,
    RemoveWork,
}

pub const STEPS: [Step; 9] = [
    Step::SyncStaged,
    Step::WriteJournal,
    Step::MoveOldAside,
    Step::MoveNewIn,
    Step::SyncFolders,
    Step::RemoveOld,
    Step::ClearWork,
    Step::RemoveJournal,
    Step::RemoveWork,
];

/// What [`recover`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Recovered {
    /// Finished a swap stopped after its commit point: the new version is in place.
    Finished,
    /// Put the old version back (a swap stopped by a version before the journal).
    PutBack,
    /// Removed what a swap stopped after putting the new version in place left behind.
    Tidied,
}

/// One output folder's swap: `work/staged` in place of `target` (a real path, beside `work`).
pub struct Swap {
    pub work: PathBuf,
    pub staged: &'static str,
    pub target: PathBuf,
    pub remove_work: bool,
}

fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// The outcome of removing `path`: done if it is not there (any more).
fn gone(removed: io::Result<()>, path: &Path) -> Result<()> {
    match removed {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to)
        .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))
}

impl Swap {
    fn staged_path(&self) -> PathBuf {
        self.work.join(self.staged)
    }

    fn old(&self) -> PathBuf {
        self.work.join(OLD)
    }

    fn parent(&self) -> &Path {
        self.target.parent().expect("an output folder has a parent")
    }

    /// Runs every step: the staged folder replaces the target. A failure before the new
    /// folder is in place puts the old one back and removes the journal; after it, the
    /// journal stays and the next command finishes the swap.
    pub fn run(&self) -> Result<()> {
        let new_in = STEPS
            .iter()
            .position(|s| *s == Step::MoveNewIn)
            .expect("a step");
        for (i, step) in STEPS.iter().enumerate() {
            if let Err(e) = self.step(*step) {
                if i <= new_in {
                    self.roll_back();
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Whether the new folder is in place (the steps from `MoveNewIn` on have started).
    pub fn new_is_in_place(&self) -> bool {
        !exists(&self.staged_path()) && exists(&self.target)
    }

    fn roll_back(&self) {
        if !exists(&self.target)
            && exists(&self.old())
            && fs::rename(self.old(), &self.target).is_err()
        {
            return; // The journal stays: the next command finishes the swap.
        }
        let _ = fs::remove_file(self.work.join(JOURNAL));
    }

    pub fn step(&self, step: Step) -> Result<()> {
        match step {
            Step::SyncStaged => durable::sync_tree(&self.staged_path()),
            Step::WriteJournal => {
                if exists(&self.old()) {
                    bail!(
                        "cannot replace {}: {} is in the way; remove it",
                        self.target.display(),
                        self.old().display()
                    );
                }
                let journal = Journal {
                    format: FORMAT.into(),
                    staged: self.staged.into(),
                    remove_work: self.remove_work,
                };
                let json = serde_json::to_vec(&journal).expect("a journal serialises");
                super::output_dir::write_file(&self.work, JOURNAL, &json)?;
                durable::sync(&self.work.join(JOURNAL))?;
                durable::sync(&self.work)
            }
            Step::MoveOldAside => {
                if !exists(&self.target) {
                    return Ok(());
                }
                if exists(&self.old()) {
                    bail!(
                        "cannot finish replacing {}: both it and {} exist; keep one, remove the other",
                        self.target.display(),
                        self.old().display()
                    );
                }
                rename(&self.target, &self.old())
                    .with_context(|| format!("cannot move the old {} aside", self.target.display()))
            }
            Step::MoveNewIn => rename(&self.staged_path(), &self.target),
            Step::SyncFolders => {
                durable::sync(self.parent())?;
                durable::sync(&self.work)
            }
            Step::RemoveOld => gone(fs::remove_dir_all(self.old()), &self.old()),
            Step::RemoveJournal => gone(
                fs::remove_file(self.work.join(JOURNAL)),
                &self.work.join(JOURNAL),
            ),
            // `build`'s checkpoint is of no use once its output is in place.
            Step::ClearWork if self.remove_work => {
                for entry in fs::read_dir(&self.work)
                    .with_context(|| format!("cannot list {}", self.work.display()))?
                {
                    let entry = entry?;
                    if entry.file_name() != JOURNAL {
                        files::remove(&entry.path(), entry.file_type()?)?;
                    }
                }
                Ok(())
            }
            Step::ClearWork => Ok(()),
            // What is left there is another command's (a killed build's, to resume): kept.
            Step::RemoveWork => {
                let _ = fs::remove_dir(&self.work);
                Ok(())
            }
        }
    }

    /// Runs the steps from `from` on.
    fn finish_from(&self, from: Step) -> Result<()> {
        let at = STEPS.iter().position(|s| *s == from).expect("a step");
        STEPS[at..].iter().try_for_each(|s| self.step(*s))
    }
}

/// The journal in `work`, if there is one that can be read; one that cannot is removed (see
/// the module's doc).
fn journal(work: &Path) -> Result<Option<Journal>> {
    let path = work.join(JOURNAL);
    let Ok(meta) = fs::symlink_metadata(&path) else {
        return Ok(None);
    };
    let read = meta
        .is_file()
        .then(|| files::read_regular(&path, 4096).ok())
        .flatten();
    let valid =
        |j: &Journal| j.format == FORMAT && [BUILD_STAGE, STAGE].contains(&j.staged.as_str());
    match read
        .and_then(|b| serde_json::from_slice::<Journal>(&b).ok())
        .filter(valid)
    {
        Some(j) => Ok(Some(j)),
        None => {
            fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
            Ok(None)
        }
    }
}

/// Finishes or undoes a swap into `target` (a real path) that a stopped command left in `work`
/// (see the module's doc); `None` if there was none. The caller holds the work folder's lock.
pub fn recover(work: &Path, target: &Path) -> Result<Option<Recovered>> {
    let staged_of = |name: &str| {
        if name == BUILD_STAGE {
            BUILD_STAGE
        } else {
            STAGE
        }
    };
    if let Some(j) = journal(work)? {
        let swap = Swap {
            work: work.to_path_buf(),
            staged: staged_of(&j.staged),
            target: target.to_path_buf(),
            remove_work: j.remove_work,
        };
        let from = if exists(&swap.staged_path()) {
            Step::MoveOldAside
        } else {
            Step::SyncFolders
        };
        if from == Step::SyncFolders && !exists(target) && exists(&swap.old()) {
            // The new version is gone (removed by hand?): the old one is better than nothing.
            rename(&swap.old(), target)?;
        }
        let finished = swap.finish_from(from);
        return finished
            .map(|()| Some(Recovered::Finished))
            .with_context(|| format!("cannot finish replacing {}", target.display()));
    }
    for old in [OLD, LEGACY_OLD].map(|n| work.join(n)) {
        if !exists(&old) {
            continue;
        }
        if exists(target) {
            fs::remove_dir_all(&old).with_context(|| format!("cannot remove {}", old.display()))?;
            return Ok(Some(Recovered::Tidied));
        }
        rename(&old, target)?;
        durable::sync(target.parent().expect("an output folder has a parent"))?;
        return Ok(Some(Recovered::PutBack));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Every file under `dir` with its bytes, and every folder (as `None`).
    fn tree(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
            for e in fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                let rel = p.strip_prefix(root).unwrap().to_path_buf();
                if p.is_dir() {
                    out.insert(rel, None);
                    walk(root, &p, out);
                } else {
                    out.insert(rel, Some(fs::read(&p).unwrap()));
                }
            }
        }
        let mut out = BTreeMap::new();
        if dir.exists() {
            walk(dir, dir, &mut out);
        }
        out
    }

    fn write_catalog(dir: &Path, what: &str) {
        fs::create_dir_all(dir.join("thumbs")).unwrap();
        fs::write(dir.join("catalog.json"), format!("{{\"{what}\": 1}}")).unwrap();
        fs::write(dir.join("thumbs/a.jpg"), what).unwrap();
    }

    /// A work folder holding a staged "new" catalog (and a checkpoint for `build`) beside
    /// `cat`, which holds an "old" catalog if `had_old`.
    fn lab(root: &Path, staged: &'static str, had_old: bool) -> Swap {
        let (target, work) = (root.join("cat"), root.join(".cat.build"));
        if had_old {
            write_catalog(&target, "old");
        }
        write_catalog(&work.join(staged), "new");
        if staged == BUILD_STAGE {
            fs::write(work.join("checkpoint.bin"), b"records").unwrap();
        }
        Swap {
            work,
            staged,
            target,
            remove_work: staged == BUILD_STAGE,
        }
    }

    #[test]
    fn a_swap_stopped_after_any_step_is_recovered_to_the_old_or_the_new_folder() {
        let committed = STEPS.iter().position(|s| *s == Step::WriteJournal).unwrap() + 1;
        for staged in [BUILD_STAGE, STAGE] {
            for had_old in [true, false] {
                for k in 0..=STEPS.len() {
                    let tmp = tempfile::tempdir().unwrap();
                    let swap = lab(tmp.path(), staged, had_old);
                    let (old, new) = (tree(&swap.target), tree(&swap.staged_path()));
                    for step in &STEPS[..k] {
                        swap.step(*step).unwrap();
                    }
                    let case = format!("{staged}, had_old {had_old}, stopped after {k} steps");
                    // Never nothing: the path holds a version, or the journal says where one is.
                    let journaled = swap.work.join(JOURNAL).is_file();
                    assert!(
                        swap.target.exists()
                            || (journaled && (swap.old().exists() || swap.staged_path().exists()))
                            || (!had_old && k < committed),
                        "{case}"
                    );
                    let did = recover(&swap.work, &swap.target).unwrap();
                    if k < committed {
                        assert_eq!(did, None, "{case}");
                        assert_eq!(
                            tree(&swap.target),
                            old,
                            "{case}: the old folder is untouched"
                        );
                        assert_eq!(
                            tree(&swap.staged_path()),
                            new,
                            "{case}: the staged folder is left for its command"
                        );
                    } else {
                        let expected = if k < STEPS.len() - 1 {
                            Some(Recovered::Finished)
                        } else {
                            None
                        };
                        assert_eq!(did, expected, "{case}");
                        assert_eq!(tree(&swap.target), new, "{case}: the swap is finished");
                        assert!(
                            tree(&swap.work).is_empty(),
                            "{case}: nothing is left in the work folder"
                        );
                    }
                    assert_eq!(
                        recover(&swap.work, &swap.target).unwrap(),
                        None,
                        "{case}: once is enough"
                    );
                }
            }
        }
    }

    #[test]
    fn a_journal_cut_short_is_removed_and_the_old_folder_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let swap = lab(tmp.path(), STAGE, true);
        let old = tree(&swap.target);
        fs::write(swap.work.join(JOURNAL), br#"{"format": "clipmatch-sw"#).unwrap();
        assert_eq!(recover(&swap.work, &swap.target).unwrap(), None);
        assert_eq!(tree(&swap.target), old);
        assert!(!swap.work.join(JOURNAL).exists() && swap.staged_path().is_dir());
        // A journal naming another folder is not followed.
        fs::write(
            swap.work.join(JOURNAL),
            br#"{"format": "clipmatch-swap", "staged": "../x", "remove_work": true}"#,
        )
        .unwrap();
        assert_eq!(recover(&swap.work, &swap.target).unwrap(), None);
        assert_eq!(tree(&swap.target), old);
    }

    #[test]
    fn a_catalog_left_aside_by_a_version_before_the_journal_is_put_back() {
        let tmp = tempfile::tempdir().unwrap();
        let swap = lab(tmp.path(), BUILD_STAGE, true);
        let old = tree(&swap.target);
        fs::rename(&swap.target, swap.work.join(LEGACY_OLD)).unwrap();
        assert_eq!(
            recover(&swap.work, &swap.target).unwrap(),
            Some(Recovered::PutBack)
        );
        assert_eq!(tree(&swap.target), old);
        assert!(
            swap.work.join("checkpoint.bin").is_file(),
            "the killed build can still resume"
        );
        // Stopped after the new folder was in place: the old one is removed.
        fs::create_dir(swap.work.join(LEGACY_OLD)).unwrap();
        assert_eq!(
            recover(&swap.work, &swap.target).unwrap(),
            Some(Recovered::Tidied)
        );
        assert_eq!(tree(&swap.target), old);
        assert!(!swap.work.join(LEGACY_OLD).exists());
    }

    #[test]
    fn everything_is_synced_before_the_commit_point_and_the_renames_after() {
        let tmp = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap();
        let swap = lab(&root, STAGE, true);
        let staged: Vec<PathBuf> = tree(&swap.staged_path())
            .into_keys()
            .map(|p| swap.staged_path().join(p))
            .collect();
        durable::record::take();
        swap.run().unwrap();
        let synced = durable::record::take();
        let n = staged.len() + 1;
        let mut before: Vec<PathBuf> = synced[..n].to_vec();
        before.sort();
        let mut expected = staged.clone();
        expected.push(swap.staged_path());
        expected.sort();
        assert_eq!(
            before, expected,
            "every file and folder of the output, first"
        );
        let journal = swap.work.join(JOURNAL);
        assert_eq!(
            synced[n..],
            [journal, swap.work.clone(), root.clone(), swap.work.clone()],
            "then the journal, then the renames"
        );
    }
}
