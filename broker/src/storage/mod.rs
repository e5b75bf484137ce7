//! On-disk storage of partitions: record batches kept exactly as producers sent them (or, for
//! a topic with its own `compression.type`, re-compressed into it).

mod batch;
mod commit;
mod compact;
mod disk;
mod fail_stop;
mod flush;
mod index;
mod log_start;
mod partition;
#[cfg(test)]
mod power_loss;
mod recompress;
mod records;
mod recovery;
mod segment;
#[cfg(test)]
pub(crate) mod sim_disk;
#[cfg(test)]
pub(crate) mod small_disk;

#[cfg(test)]
pub(crate) use batch::testing;
pub use batch::{
    BATCH_HEADER_LEN, BatchHeader, Compression, RecordCount, assign_offsets, batches, count,
};
pub use commit::{GroupCommit, Next, Request};
pub use compact::{Cleaned, Cleaning};
pub use disk::{Disk, DiskFile, RealDisk};
pub use fail_stop::fences;
pub use flush::FlushPolicy;
pub use partition::{Appended, LogConfig, PartitionLog};
pub use recompress::recompress;
pub use records::{check_produced, keyless_records};
pub use recovery::{Recovery, Truncated};
pub use segment::{INDEX_INTERVAL_BYTES, Segment};
