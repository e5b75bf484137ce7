//! A partition's log start offset: the first offset still readable. Retention moves it by
//! deleting whole segments; DeleteRecords moves it to any offset, so it is recorded in the
//! partition's `log-start-offset` file (Kafka keeps the same number in its
//! `log-start-offset-checkpoint`), written through a temporary file and a rename.
//!
//! Records below the start may still sit in the segment that holds it; they are never read.

use std::path::Path;

use super::disk::Disk;
use crate::error::{Error, Result, io_at};

/// The file, in the partition's directory.
pub const FILE: &str = "log-start-offset";

/// The recorded start, or `None` when nothing was ever recorded.
///
/// # Errors
/// I/O errors; [`Error::Damaged`] when the file does not hold an offset.
pub fn read<D: Disk>(disk: &D, dir: &Path) -> Result<Option<i64>> {
    let path = dir.join(FILE);
    let text = match disk.read(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_at(&path)(e)),
    };
    match text.trim().parse::<i64>() {
        Ok(offset) if offset >= 0 => Ok(Some(offset)),
        _ => Err(Error::Damaged {
            path,
            problem: format!("`{}` is not a log start offset", text.trim()),
        }),
    }
}

/// Records `offset` durably (file and directory entry fsynced) before it takes effect.
///
/// # Errors
/// I/O errors.
pub fn write<D: Disk>(disk: &D, dir: &Path, offset: i64) -> Result<()> {
    let path = dir.join(FILE);
    disk.replace(&path, format!("{offset}\n").as_bytes())
        .map_err(io_at(&path))
}

/// How many of the oldest segments (given by base offset, oldest first) hold only offsets
/// below `start`: each is followed by one starting at or before `start`. The active (last)
/// segment is never counted.
pub fn segments_below(bases: &[i64], start: i64) -> usize {
    bases.windows(2).take_while(|w| w[1] <= start).count()
}

#[cfg(test)]
mod tests {
    use super::super::disk::RealDisk;
    use super::*;

    #[test]
    fn whole_segments_below_the_start() {
        let bases = [0, 10, 20, 30];
        for (start, expected) in [(0, 0), (9, 0), (10, 1), (25, 2), (30, 3), (99, 3)] {
            assert_eq!(segments_below(&bases, start), expected, "start {start}");
        }
        assert_eq!(segments_below(&[5], 100), 0, "the active segment stays");
    }

    #[test]
    fn recorded_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(&RealDisk, dir.path()).expect("absent"), None);
        write(&RealDisk, dir.path(), 42).expect("write");
        assert_eq!(read(&RealDisk, dir.path()).expect("read"), Some(42));
        std::fs::write(dir.path().join(FILE), "soon").expect("damage");
        let err = read(&RealDisk, dir.path())
            .expect_err("damaged")
            .to_string();
        assert!(err.contains("`soon` is not a log start offset"), "{err}");
    }
}
