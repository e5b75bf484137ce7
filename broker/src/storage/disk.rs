//! The file operations a partition log performs, behind a small trait so that tests can run the
//! log on a simulated disk (as FoundationDB and TigerBeetle do) that loses power, fails an
//! fsync or runs out of space at a chosen point.
//!
//! [`RealDisk`] is `std::fs`, call for call what the log did before the trait existed. The log
//! is generic over [`Disk`] (defaulting to [`RealDisk`]), so the production path is
//! monomorphized: no dynamic dispatch, no extra state.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// A directory tree of files, as the partition log uses it.
pub trait Disk: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// An open file.
    type File: DiskFile;

    /// Creates `dir` and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Whether `dir` exists.
    fn dir_exists(&self, dir: &Path) -> bool;
    /// The names of the entries in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Opens `path` for reading and writing, creating it empty if absent.
    fn open(&self, path: &Path) -> io::Result<Self::File>;
    /// Removes the file `path`.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Renames the file `from` to `to`, replacing `to` (durable once the directory is synced).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the entries created in or removed from `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// The whole content of `path` (a `NotFound` error when absent).
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Replaces `path` with `bytes` atomically and durably: through a fsynced temporary file
    /// renamed over it, then a fsync of the directory.
    fn replace(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
}

/// An open file of a [`Disk`].
pub trait DiskFile: std::fmt::Debug + Send + Sync + Sized {
    /// Bytes in the file.
    fn size(&self) -> io::Result<u64>;
    /// Fills `buf` from position `pos`.
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()>;
    /// Writes all of `buf` at position `pos` (on error, part of it may be written).
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    /// Cuts or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Forces the file's data (and the size needed to read it) to disk: `fdatasync`.
    fn sync_data(&self) -> io::Result<()>;
    /// A second handle on the same file.
    fn try_clone(&self) -> io::Result<Self>;
}

/// The machine's file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealDisk;

impl Disk for RealDisk {
    type File = File;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn dir_exists(&self, dir: &Path) -> bool {
        dir.exists()
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        Ok(std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .collect())
    }

    fn open(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn replace(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        std::fs::write(&tmp, bytes)?;
        File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        match path.parent() {
            Some(dir) => self.sync_dir(dir),
            None => Ok(()),
        }
    }
}

impl DiskFile for File {
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, pos)
    }

    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, pos)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn try_clone(&self) -> io::Result<Self> {
        File::try_clone(self)
    }
}
