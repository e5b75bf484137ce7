//! Fail-stop: which storage failures stop a store's writes until a restart.
//!
//! As PostgreSQL learned from "fsyncgate", after a failed fsync the kernel may have dropped
//! the dirty pages, so no later success proves anything about them: the store must stop
//! (be *fenced*) and let recovery at the next start read what actually reached the disk. The
//! same holds for a write that fails in a way that cannot be undone. A write the disk had no
//! space for, cut back to where it started, is the one failure that may be retried.

use std::io::ErrorKind;

use crate::error::Error;

/// Whether a failed write stops its store's writes (fences a partition, or the offset store),
/// decided from the error alone.
///
/// Only a write that was undone ([`Error::WriteRolledBack`]: the files are cut back to where
/// they were and memory never counted it) because the disk or the quota is full is retried
/// safely: once space is freed the same write succeeds, and nothing acknowledged is at
/// stake. Every other storage failure fences, as a failed fsync does: an undone write that
/// failed with EIO says the device is failing (and the kernel may have dropped other dirty
/// pages of the file); a write that could not be undone leaves bytes on disk the log does not
/// know; a failed roll includes an fsync.
pub fn fences(e: &Error) -> bool {
    match e {
        Error::WriteRolledBack { source, .. } => !matches!(
            source.kind(),
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded
        ),
        Error::Io { .. } => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_undone_write_on_a_full_disk_is_retriable() {
        let undone = |source| Error::WriteRolledBack {
            path: "l".into(),
            source,
        };
        let kind = std::io::Error::from;
        for (case, error, fenced) in [
            (
                "disk full, undone",
                undone(kind(ErrorKind::StorageFull)),
                false,
            ),
            (
                "quota, undone",
                undone(kind(ErrorKind::QuotaExceeded)),
                false,
            ),
            ("EIO, undone", undone(std::io::Error::other("EIO")), true),
            (
                "disk full, not undone",
                Error::Io {
                    path: "l".into(),
                    source: kind(ErrorKind::StorageFull),
                },
                true,
            ),
            (
                "invalid batch",
                Error::BatchCrc {
                    at: 0,
                    stored: 1,
                    computed: 2,
                },
                false,
            ),
        ] {
            assert_eq!(fences(&error), fenced, "{case}");
        }
        let enospc = std::io::Error::from_raw_os_error(28);
        assert_eq!(
            enospc.kind(),
            ErrorKind::StorageFull,
            "ENOSPC as std maps it"
        );
    }
}
