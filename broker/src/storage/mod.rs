//! On-disk storage of partitions: record batches kept exactly as producers sent them.

mod batch;
mod commit;
mod flush;
mod partition;
mod segment;

#[cfg(test)]
pub(crate) use batch::testing;
pub use batch::{BATCH_HEADER_LEN, BatchHeader, Compression, assign_offsets, batches};
pub use commit::{GroupCommit, Next, Request};
pub use flush::FlushPolicy;
pub use partition::{Appended, LogConfig, PartitionLog};
pub use segment::{INDEX_INTERVAL_BYTES, Segment};
