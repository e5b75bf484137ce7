//! The storage layer's error type.

use std::path::{Path, PathBuf};

use thiserror::Error;

use super::batch::BatchError;

/// What went wrong in the storage layer.
#[derive(Debug, Error)]
pub enum StorageError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Bytes that are not valid record batches.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// A read below the log start or past the end.
    #[error("offset {requested} is out of range: the log holds {start}..{next}")]
    OffsetOutOfRange {
        /// The offset asked for.
        requested: i64,
        /// First offset still stored.
        start: i64,
        /// Offset the next record will get.
        next: i64,
    },
}

/// Maps an I/O error to [`StorageError::Io`] naming `path`.
pub(crate) fn io_at(path: &Path) -> impl Fn(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_owned(),
        source,
    }
}
