//! On-disk storage of partitions: record batches kept exactly as producers sent them.

mod batch;
mod flush;

pub use batch::{BATCH_HEADER_LEN, BatchError, BatchHeader, Compression, assign_offsets, batches};
pub use flush::{FlushPolicy, FlushPolicyError};
