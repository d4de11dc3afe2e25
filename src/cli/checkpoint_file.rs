//! The checkpoint of a resumable build on disk: `checkpoint.bin` in the build's work folder
//! (beside its staging folder, see [`super::output_dir::StagedDir::resumable`]), read back
//! when a killed build is run again, then appended to, one record per embedding computed.
//! What a checkpoint holds and how it is checked: [`clipmatch::search::checkpoint`].

use std::fs;
use std::io::{self, Seek, Write};
use std::path::Path;

use anyhow::{Context, Result};
use clipmatch::search::checkpoint::{self, Checkpoint, CheckpointHeader};

use super::{files, shown};

pub const FILE: &str = "checkpoint.bin";
/// Largest checkpoint read: 64 GiB (about 2.1 KB an item for ViT-B/32).
const MAX_BYTES: u64 = 1 << 36;

/// The checkpoint file, open for appending records.
pub struct CheckpointFile {
    file: fs::File,
    /// Records appended by this run.
    pub appended: usize,
}

/// Empties the staging folder but for regular files in `thumbs/` when `keep_thumbnails`
/// (a resumed build checks each against its checkpoint before reusing it); links and other
/// odd entries are removed, never followed.
fn tidy(staging: &Path, keep_thumbnails: bool) -> Result<()> {
    for entry in fs::read_dir(staging).with_context(|| format!("cannot list {}", staging.display()))? {
        let entry = entry?;
        let path = entry.path();
        let t = entry.file_type()?;
        if keep_thumbnails && t.is_dir() && entry.file_name() == "thumbs" {
            for thumb in fs::read_dir(&path)? {
                let thumb = thumb?;
                if !thumb.file_type()?.is_file() {
                    files::remove(&thumb.path(), thumb.file_type()?)?;
                }
            }
            continue;
        }
        files::remove(&path, t)?;
    }
    Ok(())
}

impl CheckpointFile {
    /// Opens the checkpoint in `work` for a build with `header` (staging its output in
    /// `staging`): the records of a killed build with the same header are returned for reuse
    /// (saying so in one line) and the file is cut back to them; a checkpoint of another model,
    /// settings or input list, or one that is not a checkpoint, is set aside with one line
    /// saying why, and the build starts afresh.
    pub fn open(work: &Path, staging: &Path, header: &CheckpointHeader) -> Result<(Self, Checkpoint)> {
        let path = work.join(FILE);
        let found = match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => Some(files::read_regular(&path, MAX_BYTES).with_context(|| path.display().to_string())?),
            Ok(m) => {
                files::remove(&path, m.file_type())?;
                None
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let resumed = match found.map(|bytes| checkpoint::read(&bytes, header)) {
            Some(Ok(c)) => {
                let stopped = c.stopped.as_ref().map(|why| format!(" ({why}: from there on it is embedded again)")).unwrap_or_default();
                eprintln!(
                    "resuming the interrupted build in {}: {} images and {} names embedded then are reused{stopped}",
                    shown::path(work),
                    c.images.len(),
                    c.names.len()
                );
                Some(c)
            }
            Some(Err(e)) => {
                eprintln!("{}", shown::text(&format!("ignoring the checkpoint {}: {e}; starting afresh", path.display())));
                None
            }
            None => None,
        };
        tidy(staging, resumed.is_some())?;
        let mut file = match &resumed {
            Some(c) => {
                let mut file = fs::OpenOptions::new().write(true).open(&path).with_context(|| format!("cannot open {}", path.display()))?;
                file.set_len(c.valid_len as u64)?;
                file.seek(io::SeekFrom::End(0))?;
                file
            }
            None => {
                let _ = fs::remove_file(&path);
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                file.write_all(&checkpoint::header_bytes(header))?;
                file
            }
        };
        file.flush()?;
        Ok((Self { file, appended: 0 }, resumed.unwrap_or_default()))
    }

    /// Appends one record (written at once: a kill leaves at most this record cut short).
    pub fn append(&mut self, record: &[u8]) -> io::Result<()> {
        self.file.write_all(record)?;
        self.appended += 1;
        Ok(())
    }
}
