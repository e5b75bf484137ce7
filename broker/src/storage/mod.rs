//! On-disk storage of partitions: record batches kept exactly as producers sent them.

mod batch;
mod error;
mod flush;
mod partition;
mod segment;

pub use batch::{BATCH_HEADER_LEN, BatchError, BatchHeader, Compression, assign_offsets, batches};
pub use error::StorageError;
pub use flush::{FlushPolicy, FlushPolicyError};
pub use partition::{Appended, LogConfig, PartitionLog};
pub use segment::{INDEX_INTERVAL_BYTES, Segment};
