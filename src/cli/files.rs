//! Reading files without surprises: regular files only (a FIFO or a device like /dev/zero is
//! refused before it is opened for reading), never more than a stated number of bytes (checked
//! from the metadata first, and while reading, so a file that grows cannot pass the cap), and
//! for a catalog folder only files that are really inside it.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Why a file was not read. The caller names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The OS error is the message, not a `source`: a chain printed with `{:#}` says it once.
    #[error("cannot read the file: {0}")]
    Io(io::Error),
    #[error("not a regular file (it is a {0}); only regular files are read")]
    NotRegular(&'static str),
    #[error("the file is {bytes} bytes, over the limit of {max} bytes")]
    TooLarge { bytes: u64, max: u64 },
    #[error("the file grew past the limit of {max} bytes while it was read")]
    Grew { max: u64 },
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

fn kind(t: fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "device";
        }
        if t.is_socket() {
            return "socket";
        }
    }
    if t.is_dir() {
        "folder"
    } else {
        "special file"
    }
}

/// A regular file, open for reading, and its size when opened.
pub struct Opened {
    file: File,
    pub len: u64,
}

/// Opens `path` (following links: the user named it) if it is a regular file. The type is
/// checked before opening, since opening a FIFO blocks, and again on the open file.
pub fn open_regular(path: &Path) -> Result<Opened, ReadError> {
    let meta = fs::metadata(path)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(kind(meta.file_type())));
    }
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(kind(meta.file_type())));
    }
    Ok(Opened { file, len: meta.len() })
}

impl Opened {
    /// The file mapped into memory, read-only.
    pub fn map(self) -> std::io::Result<memmap2::Mmap> {
        // SAFETY: the file is only read, and is not expected to change while the tool runs.
        unsafe { memmap2::Mmap::map(&self.file) }
    }

    /// All the bytes, refusing a file of more than `max` bytes.
    pub fn read(self, max: u64) -> Result<Vec<u8>, ReadError> {
        if self.len > max {
            return Err(ReadError::TooLarge { bytes: self.len, max });
        }
        let mut bytes = Vec::with_capacity(self.len as usize);
        self.file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > max {
            return Err(ReadError::Grew { max });
        }
        Ok(bytes)
    }
}

/// The bytes of the regular file `path`, at most `max` of them.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    open_regular(path)?.read(max)
}

/// Opens `name` (plain relative components, as the catalog format names its files) inside
/// `dir`, refusing a file that a symbolic link places outside `dir` and anything but a
/// regular file. Errors name the file.
pub fn open_inside(dir: &Path, name: &str) -> Result<Opened> {
    let path = dir.join(name);
    if !Path::new(name).components().all(|c| matches!(c, Component::Normal(_))) {
        bail!("{}: {name:?} is not a file name a catalog folder may hold", path.display());
    }
    let root = fs::canonicalize(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let real: PathBuf = fs::canonicalize(&path).with_context(|| format!("cannot read {}", path.display()))?;
    if !real.starts_with(&root) {
        bail!(
            "{} leads outside the catalog folder (to {}); files are only read from inside it",
            path.display(),
            real.display()
        );
    }
    open_regular(&real).with_context(|| path.display().to_string())
}

/// The bytes of `name` inside `dir` (see [`open_inside`]), at most `max` of them.
pub fn read_inside(dir: &Path, name: &str, max: u64) -> Result<Vec<u8>> {
    let path = dir.join(name);
    open_inside(dir, name)?.read(max).with_context(|| path.display().to_string())
}

/// Removes `path`, of type `t` (from its link's metadata): a folder with all it holds, anything
/// else (a link too, never followed) as a file.
pub fn remove(path: &Path, t: fs::FileType) -> Result<()> {
    let r = if t.is_dir() { fs::remove_dir_all(path) } else { fs::remove_file(path) };
    r.with_context(|| format!("cannot remove {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_regular_file_within_its_cap_only() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f");
        fs::write(&f, b"12345").unwrap();
        assert_eq!(read_regular(&f, 5).unwrap(), b"12345");
        let e = read_regular(&f, 4).unwrap_err().to_string();
        assert_eq!(e, "the file is 5 bytes, over the limit of 4 bytes");
        let e = read_regular(tmp.path(), 4).unwrap_err().to_string();
        assert!(e.contains("it is a folder"), "{e}");
        // The OS's reason is said once, also in a chain printed with context.
        let missing = anyhow::Error::from(read_regular(&tmp.path().join("absent"), 4).unwrap_err()).context("cannot read absent");
        let e = format!("{missing:#}");
        assert_eq!(e.matches("No such file").count(), 1, "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn refuses_devices_and_links_out_of_the_folder() {
        let e = read_regular(Path::new("/dev/zero"), 1 << 20).unwrap_err().to_string();
        assert!(e.contains("it is a device"), "{e}");
        let tmp = tempfile::tempdir().unwrap();
        let cat = tmp.path().join("cat");
        fs::create_dir(&cat).unwrap();
        fs::write(tmp.path().join("secret"), b"private").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret"), cat.join("x")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", cat.join("z")).unwrap();
        fs::write(cat.join("inside"), b"ok").unwrap();
        std::os::unix::fs::symlink("inside", cat.join("link-inside")).unwrap();
        let e = format!("{:#}", read_inside(&cat, "x", 100).unwrap_err());
        assert!(e.contains("leads outside the catalog folder"), "{e}");
        let e = format!("{:#}", read_inside(&cat, "z", 100).unwrap_err());
        assert!(e.contains("leads outside"), "{e}");
        assert_eq!(read_inside(&cat, "link-inside", 100).unwrap(), b"ok");
        let e = format!("{:#}", read_inside(&cat, "../secret", 100).unwrap_err());
        assert!(e.contains("is not a file name a catalog folder may hold"), "{e}");
    }
}
