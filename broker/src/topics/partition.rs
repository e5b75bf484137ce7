//! One partition as the server sees it: the log, its producers' sequence state, and the high
//! watermark — the end of what is durable under the flush policy and so visible to consumers.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::watch;

use super::config::TopicConfig;
use super::producer::{ProducerStates, SequenceCheck};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::storage::{BatchHeader, FlushPolicy, PartitionLog, batches};

/// What an append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Offset of the first record (the original one for a duplicate).
    pub base_offset: i64,
    /// Offset after the last record written: the high watermark that makes it visible.
    pub end_offset: i64,
    /// Records written (0 for a duplicate).
    pub records: u64,
    /// The batch was a retry of one already in the log.
    pub duplicate: bool,
}

/// Batches read for a fetch.
#[derive(Debug, Default)]
pub struct ReadOutcome {
    /// Whole batches, below the high watermark.
    pub records: Vec<u8>,
    /// Records in them.
    pub count: u64,
    /// The high watermark when read.
    pub high_watermark: i64,
    /// First offset still stored.
    pub log_start_offset: i64,
}

struct State {
    log: PartitionLog,
    producers: ProducerStates,
    config: TopicConfig,
}

/// One partition of a topic.
pub struct Partition {
    topic: Arc<str>,
    index: i32,
    state: Mutex<State>,
    high_watermark: AtomicI64,
    dirty: AtomicBool,
    sync_gate: Mutex<()>,
    data_version: Arc<watch::Sender<u64>>,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Partition({}-{})", self.topic, self.index)
    }
}

impl Partition {
    /// Opens (recovering) the partition log in `dir` and rebuilds producer state from it.
    /// Everything that survived recovery is visible.
    ///
    /// # Errors
    /// I/O errors.
    pub fn open(
        topic: Arc<str>,
        index: i32,
        dir: &std::path::Path,
        config: TopicConfig,
        data_version: Arc<watch::Sender<u64>>,
    ) -> Result<Self> {
        let log = PartitionLog::open(dir, config.log)?;
        let mut producers = ProducerStates::default();
        log.for_each_header(|h| producers.record(h))?;
        let hw = log.next_offset();
        Ok(Partition {
            topic,
            index,
            state: Mutex::new(State {
                log,
                producers,
                config,
            }),
            high_watermark: AtomicI64::new(hw),
            dirty: AtomicBool::new(false),
            sync_gate: Mutex::new(()),
            data_version,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the log half-written (appends write
        // the file before updating memory), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition index.
    pub fn index(&self) -> i32 {
        self.index
    }

    /// Validates and appends `records` (one or more v2 batches, stored as received). Under
    /// [`FlushPolicy::Os`] the records are visible at once; otherwise they become visible
    /// when [`Partition::sync_through`] or the interval flusher makes them durable.
    ///
    /// # Errors
    /// Invalid batches ([`batches`]' errors), [`Error::BatchTooLarge`], a refused producer
    /// sequence ([`ProducerStates::check`]), I/O errors; on error nothing is written.
    pub fn append(
        &self,
        records: &mut [u8],
        now_ms: i64,
        policy: FlushPolicy,
    ) -> Result<AppendOutcome> {
        let mut st = self.state();
        let mut found = batches(records)?;
        let max = st.config.max_message_bytes;
        if let Some((_, range)) = found.iter().find(|(_, r)| r.len() > max) {
            return Err(Error::BatchTooLarge {
                size: range.len(),
                max,
            });
        }
        if let [(header, _)] = found.as_slice() {
            match st.producers.check(header)? {
                SequenceCheck::Duplicate(dup) => {
                    return Ok(AppendOutcome {
                        base_offset: dup.base_offset,
                        end_offset: dup.base_offset,
                        records: 0,
                        duplicate: true,
                    });
                }
                SequenceCheck::Append => {}
            }
        } else {
            // Several batches in one request: check them in order against a scratch copy.
            let mut scratch = st.producers.clone();
            for (header, _) in &found {
                match scratch.check(header)? {
                    SequenceCheck::Append => scratch.record(header),
                    SequenceCheck::Duplicate(_) => {
                        return Err(Error::OutOfOrderSequence {
                            got: header.base_sequence,
                            expected: header.base_sequence + header.records_count,
                        });
                    }
                }
            }
        }
        let appended = st.log.append_batches(records, &mut found, now_ms)?;
        for (header, _) in &found {
            st.producers.record(header);
        }
        let count = found
            .iter()
            .map(|(h, _)| h.records_count.max(0) as u64)
            .sum();
        let end = appended.last_offset + 1;
        drop(st);
        if policy == FlushPolicy::Os {
            self.advance(end);
        } else {
            self.dirty.store(true, Ordering::Release);
        }
        Ok(AppendOutcome {
            base_offset: appended.base_offset,
            end_offset: end,
            records: count,
            duplicate: false,
        })
    }

    fn advance(&self, end: i64) {
        if self.high_watermark.fetch_max(end, Ordering::AcqRel) < end {
            self.data_version.send_modify(|v| *v += 1);
        }
    }

    /// Makes everything appended before this call durable (fsync) and visible, unless a
    /// concurrent sync already covered `target`. Blocking; shares one fsync among callers
    /// that arrive while another is in progress.
    ///
    /// # Errors
    /// I/O errors.
    pub fn sync_through(&self, target: i64, metrics: &Metrics) -> Result<()> {
        let _gate = self
            .sync_gate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.high_watermark() >= target {
            return Ok(());
        }
        self.dirty.store(false, Ordering::Release);
        let (file, end) = self.state().log.sync_point()?;
        let started = Instant::now();
        file.sync_data().map_err(|source| Error::Io {
            path: format!("{}-{}", self.topic, self.index).into(),
            source,
        })?;
        metrics.fsynced(started.elapsed());
        self.advance(end);
        Ok(())
    }

    /// Syncs if anything was appended since the last sync (the interval flusher's step).
    ///
    /// # Errors
    /// I/O errors.
    pub fn sync_if_dirty(&self, metrics: &Metrics) -> Result<()> {
        if self.dirty.load(Ordering::Acquire) {
            self.sync_through(i64::MAX, metrics)?;
        }
        Ok(())
    }

    /// Offset after the last visible record.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    /// First offset still stored.
    pub fn log_start_offset(&self) -> i64 {
        self.state().log.start_offset()
    }

    /// Offset the next append gets (may be above the high watermark until synced).
    pub fn log_end_offset(&self) -> i64 {
        self.state().log.next_offset()
    }

    /// Whole batches from `offset`, up to `max_bytes` (at least one batch when any is
    /// visible), never past the high watermark.
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] below the log start or past the log end; I/O.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadOutcome> {
        let st = self.state();
        let hw = self.high_watermark();
        let log_start_offset = st.log.start_offset();
        let mut out = ReadOutcome {
            high_watermark: hw,
            log_start_offset,
            ..ReadOutcome::default()
        };
        if offset >= hw && offset <= st.log.next_offset() {
            return Ok(out);
        }
        let mut bytes = st.log.read(offset, max_bytes)?;
        drop(st);
        let mut keep = 0;
        while keep < bytes.len() {
            let Ok(h) = BatchHeader::parse(&bytes[keep..]) else {
                break;
            };
            if h.last_offset() >= hw {
                break;
            }
            out.count += h.records_count.max(0) as u64;
            keep += h.total_len();
        }
        bytes.truncate(keep);
        out.records = bytes;
        Ok(out)
    }

    /// Offset of the first batch with a record at or after `timestamp`, and that batch's
    /// max timestamp; `None` when every visible record is older.
    ///
    /// # Errors
    /// I/O errors.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<i64>> {
        let found = self.state().log.offset_for_timestamp(timestamp)?;
        Ok(found.filter(|o| *o < self.high_watermark()))
    }

    /// Applies time and size retention; returns segments deleted.
    ///
    /// # Errors
    /// I/O errors.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize> {
        self.state().log.apply_retention(now_ms)
    }
}
