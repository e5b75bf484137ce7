//! One partition as the server sees it: the log, its producers' sequence state, and the high
//! watermark — the end of what is durable under the flush policy and so visible to consumers.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::watch;

use super::config::{CompressionType, TopicConfig};
use super::producer::{ProducerStates, SequenceCheck};
use super::timestamps;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::storage::{
    BatchHeader, Cleaned, Cleaning, FlushPolicy, GroupCommit, Next, PartitionLog, Recovery,
    Request, batches, fences, keyless_records, recompress,
};

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
    /// First readable offset (the log start offset).
    pub log_start_offset: i64,
}

struct State {
    log: PartitionLog,
    producers: ProducerStates,
    config: TopicConfig,
    /// Compaction has cleaned the log below this offset (since the broker started).
    cleaned_through: i64,
    /// A cleaning failed: no more until a restart (the error was logged).
    uncleanable: bool,
    /// When the last cleaning ran (ms; 0 before the first).
    cleaned_at: i64,
}

/// Validates `records` and, when the topic has its own `compression.type`, re-compresses
/// the batches in another codec (`records` then holds the new bytes): the batches as they
/// will be stored. Every batch is checked against `max.message.bytes` before and after, as
/// Kafka does.
///
/// # Errors
/// [`batches`]' errors, [`Error::BatchCodec`], [`Error::BatchTooLarge`].
pub(crate) fn stored_form(
    config: &TopicConfig,
    records: &mut Vec<u8>,
) -> Result<Vec<(BatchHeader, Range<usize>)>> {
    let fits = |found: Vec<(BatchHeader, Range<usize>)>| {
        let max = config.max_message_bytes;
        match found.iter().find(|(_, r)| r.len() > max) {
            Some((_, range)) => Err(Error::BatchTooLarge {
                size: range.len(),
                max,
            }),
            None => Ok(found),
        }
    };
    let found = fits(batches(records)?)?;
    let CompressionType::Codec(codec) = config.compression else {
        return Ok(found);
    };
    match recompress(records, &found, codec)? {
        None => Ok(found),
        Some(rewritten) => {
            *records = rewritten;
            fits(batches(records)?)
        }
    }
}

/// Counts what recovery cut off `log` when it was opened.
fn count_truncations(log: &PartitionLog, metrics: &Metrics) {
    for cut in log.truncated() {
        metrics.recovery_truncated("log", cut.reason, cut.bytes);
    }
}

/// DeleteRecords' offset for "everything below the high watermark".
pub const DELETE_TO_HIGH_WATERMARK: i64 = -1;

/// What the group commit has made durable, as waiting writers see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Synced {
    durable: i64,
    fenced: bool,
}

/// One partition of a topic.
pub struct Partition {
    topic: Arc<str>,
    index: i32,
    /// How reopening the log treats damage (at start and on [`Partition::reconfigure`]).
    recovery: Recovery,
    state: Mutex<State>,
    high_watermark: AtomicI64,
    /// Group commit (lock order: `state` before `commit`, never the reverse).
    commit: Mutex<GroupCommit>,
    /// Signalled after every sync, for blocking waiters ([`Partition::sync_through`]).
    commit_done: Condvar,
    /// Published after every sync, for async waiters ([`Partition::wait_durable`]).
    synced: watch::Sender<Synced>,
    /// Whether the fencing was counted in the metrics (once, however many failures follow).
    fence_counted: AtomicBool,
    data_version: Arc<watch::Sender<u64>>,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Partition({}-{})", self.topic, self.index)
    }
}

impl Partition {
    /// Opens (recovering, under `recovery`) the partition log in `dir` and rebuilds producer
    /// state from it. Everything that survived recovery is visible; what recovery cut off is
    /// counted in `metrics`.
    ///
    /// # Errors
    /// I/O errors; [`Error::CorruptSegment`].
    pub fn open(
        topic: Arc<str>,
        index: i32,
        dir: &std::path::Path,
        config: TopicConfig,
        data_version: Arc<watch::Sender<u64>>,
        recovery: Recovery,
        metrics: &Metrics,
    ) -> Result<Self> {
        let log = PartitionLog::open(dir, config.log, recovery)?;
        count_truncations(&log, metrics);
        let mut producers = ProducerStates::default();
        log.for_each_header(|h| producers.record(h))?;
        let hw = log.next_offset();
        Ok(Partition {
            topic,
            index,
            recovery,
            state: Mutex::new(State {
                log,
                producers,
                config,
                cleaned_through: 0,
                uncleanable: false,
                cleaned_at: 0,
            }),
            high_watermark: AtomicI64::new(hw),
            commit: Mutex::new(GroupCommit::new(hw)),
            commit_done: Condvar::new(),
            synced: watch::Sender::new(Synced {
                durable: hw,
                fenced: false,
            }),
            fence_counted: AtomicBool::new(false),
            data_version,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the log half-written (a segment keeps
        // an append in memory only once its file writes succeeded; the writes do not panic),
        // so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn commit(&self) -> MutexGuard<'_, GroupCommit> {
        // The state machine's updates cannot be torn by a panic.
        self.commit
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

    /// Validates and appends `records` (one or more v2 batches, stored as received, or
    /// re-compressed into the topic's `compression.type`; see [`stored_form`]). Under
    /// [`FlushPolicy::Os`] the records are visible at once; otherwise they become visible
    /// when a sync makes them durable ([`Partition::request_sync`], the interval flusher).
    ///
    /// # Errors
    /// Invalid batches ([`batches`]' errors), [`Error::BatchTooLarge`], a refused producer
    /// sequence ([`ProducerStates::check`]); on error nothing is written.
    /// [`Error::WriteRolledBack`] when the disk is full: nothing was written and a retry
    /// succeeds once space is freed. [`Error::Io`] for any other storage failure, which
    /// fences the partition ([`fences`]); [`Error::PartitionFenced`] from then on: the
    /// partition takes no more writes until the broker restarts.
    pub fn append(
        &self,
        records: &mut Vec<u8>,
        now_ms: i64,
        policy: FlushPolicy,
        metrics: &Metrics,
    ) -> Result<AppendOutcome> {
        let mut st = self.state();
        if self.synced.borrow().fenced {
            return Err(self.fenced_error());
        }
        if st.config.cleanup.compact {
            let indexes = keyless_records(records)?;
            if !indexes.is_empty() {
                return Err(Error::KeylessRecords {
                    topic: self.topic.to_string(),
                    partition: self.index,
                    indexes,
                });
            }
        }
        let mut found = stored_form(&st.config, records)?;
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
        let appended = match st.log.append_batches(records, &mut found, now_ms) {
            Ok(appended) => appended,
            Err(e) => {
                drop(st);
                if fences(&e) {
                    metrics.storage_write_failed("log", "fenced");
                    self.fence(&e, metrics);
                } else if matches!(e, Error::WriteRolledBack { .. }) {
                    metrics.storage_write_failed("log", "rolled_back");
                }
                return Err(e);
            }
        };
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

    /// Group commit: makes sure a sync will cover everything below `end`, starting the sync
    /// loop on a blocking thread when none runs. Returns at once; await
    /// [`Partition::wait_durable`] for the outcome.
    pub fn request_sync(self: &Arc<Self>, end: i64, metrics: &Arc<Metrics>) {
        if self.commit().request(end) == Request::Start {
            let (partition, metrics) = (self.clone(), metrics.clone());
            tokio::task::spawn_blocking(move || partition.run_syncs(&metrics));
        }
    }

    /// Waits until everything below `end` is durable (and visible): after a sync asked for by
    /// [`Partition::request_sync`] or the interval flusher's next one. Unbounded; callers
    /// put a timeout around it.
    ///
    /// # Errors
    /// [`Error::PartitionFenced`] when a failed fsync or write stopped the partition before
    /// `end` was durable: the write must not be acknowledged.
    pub async fn wait_durable(&self, end: i64) -> Result<()> {
        let mut rx = self.synced.subscribe();
        // The sender lives in `self`, so the channel cannot close while we borrow it.
        let synced = rx
            .wait_for(|s| s.fenced || s.durable >= end)
            .await
            .map(|s| *s)
            .unwrap_or(Synced {
                durable: -1,
                fenced: true,
            });
        if synced.durable >= end {
            Ok(())
        } else {
            Err(self.fenced_error())
        }
    }

    /// Makes everything below `target` (at most the log end) durable and visible, syncing on
    /// this thread unless a running sync loop covers it. Blocking.
    ///
    /// # Errors
    /// [`Error::PartitionFenced`] when the partition is (or becomes) fenced before `target`
    /// is durable.
    pub fn sync_through(&self, target: i64, metrics: &Metrics) -> Result<()> {
        let target = target.min(self.log_end_offset());
        loop {
            let mut commit = self.commit();
            match commit.request(target) {
                Request::Durable => return Ok(()),
                Request::Fenced => return Err(self.fenced_error()),
                Request::Start => {
                    drop(commit);
                    self.run_syncs(metrics);
                }
                Request::Wait => {
                    let _idle = self
                        .commit_done
                        .wait_while(commit, |c| c.syncing())
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            }
        }
    }

    /// Syncs if anything was appended since the last sync (the interval flusher's step). A
    /// fenced partition is skipped: it was reported when it failed.
    ///
    /// # Errors
    /// None today; kept for the flusher's error path.
    pub fn sync_if_dirty(&self, metrics: &Metrics) -> Result<()> {
        let end = self.log_end_offset();
        if self.commit().request(end) == Request::Start {
            self.run_syncs(metrics);
        }
        Ok(())
    }

    /// The sync loop, run by the caller that got [`Request::Start`]: fsync the active segment
    /// up to the log end taken before the fsync, publish it, and again while writers wait
    /// past it. Blocking.
    fn run_syncs(&self, metrics: &Metrics) {
        loop {
            // The partition lock is held only for the snapshot: appends go on during the fsync.
            let snapshot = self.state().log.sync_point();
            let synced = snapshot.and_then(|(file, end)| {
                let started = Instant::now();
                file.sync_data().map_err(|source| Error::Io {
                    path: format!("{}-{}", self.topic, self.index).into(),
                    source,
                })?;
                metrics.fsynced(started.elapsed());
                Ok(end)
            });
            let mut commit = self.commit();
            let next = commit.finished(synced.as_ref().map(|end| *end).map_err(|_| ()));
            let now = Synced {
                durable: commit.durable(),
                fenced: commit.fenced(),
            };
            drop(commit);
            if let Err(e) = &synced {
                metrics.fsync_failed();
                self.report_fenced(e, metrics);
            }
            // Visible before acknowledged: a consumer told of the ack can read the record.
            self.advance(now.durable);
            self.synced.send_replace(now);
            self.commit_done.notify_all();
            if next == Next::Idle {
                return;
            }
        }
    }

    /// Stops the partition's writes after `cause` (a failed write or roll).
    fn fence(&self, cause: &Error, metrics: &Metrics) {
        let mut commit = self.commit();
        commit.fence();
        let now = Synced {
            durable: commit.durable(),
            fenced: true,
        };
        drop(commit);
        self.report_fenced(cause, metrics);
        self.synced.send_replace(now);
        self.commit_done.notify_all();
    }

    fn report_fenced(&self, cause: &Error, metrics: &Metrics) {
        if !self.fence_counted.swap(true, Ordering::AcqRel) {
            metrics.partition_fenced();
        }
        tracing::error!(
            topic = %self.topic,
            partition = self.index,
            durable_offset = self.commit().durable(),
            error = %cause,
            "partition fenced: a disk write or fsync failed; writes past the durable offset are \
             never acknowledged and the partition takes no writes until the broker restarts"
        );
    }

    /// Whether a failed disk write or fsync stopped the partition's writes (until a restart).
    pub fn fenced(&self) -> bool {
        self.synced.borrow().fenced
    }

    fn fenced_error(&self) -> Error {
        Error::PartitionFenced {
            topic: self.topic.to_string(),
            partition: self.index,
        }
    }

    /// Offset after the last visible record.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    /// First readable offset: moved by retention and DeleteRecords.
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

    /// `(offset, timestamp)` of the first visible record whose timestamp is at or after
    /// `timestamp`: the time index finds the batch, decoding it finds the record. `None` when
    /// every visible record is older.
    ///
    /// # Errors
    /// I/O errors.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        let hw = self.high_watermark();
        let st = self.state();
        let start = st.log.start_offset();
        let Some(base) = st.log.offset_for_timestamp(timestamp)?.filter(|o| *o < hw) else {
            return Ok(None);
        };
        // The batch holding the log start may begin below it.
        let batch = st.log.read(base.max(start), 1)?;
        drop(st);
        Ok(self
            .records_of(&batch, start)
            .and_then(|r| timestamps::first_at_or_after(&r, timestamp))
            .or_else(|| timestamps::batch_answer(&batch).map(|(o, ts)| (o.max(start), ts))))
    }

    /// `(offset, timestamp)` of the visible record with the largest timestamp (the earliest
    /// on ties), KIP-734's `max_timestamp` lookup; `None` for an empty log.
    ///
    /// Scans every batch header (not the bodies) under the partition lock, then decodes the
    /// one batch that holds the answer.
    ///
    /// # Errors
    /// I/O errors.
    pub fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>> {
        let hw = self.high_watermark();
        let st = self.state();
        let start = st.log.start_offset();
        let mut best: Option<(i64, i64)> = None;
        st.log.for_each_header(|h| {
            let visible = h.last_offset() < hw && h.last_offset() >= start && !h.is_control();
            if visible && best.is_none_or(|(_, ts)| h.max_timestamp > ts) {
                best = Some((h.base_offset.max(start), h.max_timestamp));
            }
        })?;
        let Some((from, max)) = best else {
            return Ok(None);
        };
        let batch = st.log.read(from, 1)?;
        drop(st);
        Ok(self
            .records_of(&batch, start)
            .and_then(|r| timestamps::first_at_or_after(&r, max))
            .or(Some((from, max))))
    }

    /// The records' `(offset, timestamp)` in `batch` from offset `from` (the log start) on;
    /// `None` (logged) when it cannot be decoded, so lookups fall back to the batch-level
    /// answer.
    fn records_of(&self, batch: &[u8], from: i64) -> Option<Vec<(i64, i64)>> {
        match timestamps::record_timestamps(batch) {
            Ok(mut r) => {
                r.retain(|(offset, _)| *offset >= from);
                Some(r)
            }
            Err(e) => {
                tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "cannot decode a batch for a timestamp lookup; answering with the batch's first offset");
                None
            }
        }
    }

    /// Takes a changed topic config (AlterConfigs). A changed rolling or retention setting
    /// reopens the log from `dir` with it — the files already hold every append (an append
    /// counts only once written), so nothing is lost; the reopen re-scans the active
    /// segment while appends to this partition wait.
    ///
    /// # Errors
    /// I/O errors and damaged files while reopening; the old settings stay then.
    pub fn reconfigure(
        &self,
        dir: &std::path::Path,
        config: TopicConfig,
        metrics: &Metrics,
    ) -> Result<()> {
        let mut st = self.state();
        if st.config.log != config.log {
            st.log = PartitionLog::open(dir, config.log, self.recovery)?;
            count_truncations(&st.log, metrics);
        }
        st.config = config;
        Ok(())
    }

    /// DeleteRecords: moves the log start offset up to `offset` (-1: the high watermark),
    /// recorded durably; whole segments below it are deleted. Returns the new log start (the
    /// low watermark). An offset at or below the current start changes nothing, as in Kafka.
    ///
    /// # Errors
    /// [`Error::DeleteBeyondHighWatermark`] past the high watermark or for a negative offset
    /// other than -1; I/O errors (the start is then unchanged).
    pub fn delete_records(&self, offset: i64) -> Result<i64> {
        let mut st = self.state();
        let hw = self.high_watermark();
        let target = if offset == DELETE_TO_HIGH_WATERMARK {
            hw
        } else {
            offset
        };
        if !(0..=hw).contains(&target) {
            return Err(Error::DeleteBeyondHighWatermark {
                requested: offset,
                high_watermark: hw,
            });
        }
        let start = st.log.advance_start(target)?;
        drop(st);
        // Long polls below the new start answer OFFSET_OUT_OF_RANGE now, not at their timeout.
        self.data_version.send_modify(|v| *v += 1);
        Ok(start)
    }

    /// Applies time and size retention; returns segments deleted.
    ///
    /// # Errors
    /// I/O errors.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize> {
        let mut st = self.state();
        if !st.config.cleanup.delete {
            return Ok(0);
        }
        st.log.apply_retention(now_ms)
    }

    /// Compacts the log (`cleanup.policy` with `compact`) when the closed segments not yet
    /// cleaned are at least `min.cleanable.dirty.ratio` of them, or when a tombstone may have
    /// expired (a day after the last cleaning, by default); `None` when there was nothing to
    /// do. Holds the partition while it runs: appends and fetches of this partition wait.
    /// A failed cleaning leaves the log as it was and stops compaction of this partition
    /// until the broker restarts.
    ///
    /// # Errors
    /// [`PartitionLog::compact`]'s.
    pub fn compact(&self, now_ms: i64) -> Result<Option<Cleaned>> {
        let mut st = self.state();
        let config = st.config;
        if !config.cleanup.compact || st.uncleanable {
            return Ok(None);
        }
        let (total, dirty) = st.log.closed_bytes(st.cleaned_through);
        let ratio_reached = dirty > 0
            && dirty * 1_000_000 >= total * u64::from(config.min_cleanable_dirty_ratio_ppm);
        let tombstones_due =
            total > 0 && now_ms.saturating_sub(st.cleaned_at) >= config.delete_retention_ms;
        if !(ratio_reached || tombstones_due) {
            return Ok(None);
        }
        let cleaning = Cleaning {
            cleanable_before: now_ms.saturating_sub(config.min_compaction_lag_ms),
            tombstones_before: now_ms.saturating_sub(config.delete_retention_ms),
            segment_bytes: config.log.segment_bytes,
        };
        match st.log.compact(&cleaning) {
            Ok(done) => {
                st.cleaned_at = now_ms;
                if let Some(d) = &done {
                    st.cleaned_through = d.cleaned_through;
                }
                Ok(done)
            }
            Err(e) => {
                st.uncleanable = true;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::storage::testing::batch;

    fn open(dir: &Path) -> Arc<Partition> {
        let version = Arc::new(watch::Sender::new(0));
        let config = TopicConfig::default();
        let metrics = Metrics::default();
        let p = Partition::open(
            "t".into(),
            0,
            dir,
            config,
            version,
            Recovery::Refuse,
            &metrics,
        );
        Arc::new(p.expect("open"))
    }

    /// fsyncs so far, from the flush metric.
    fn syncs(metrics: &Metrics) -> u64 {
        let text = metrics.render();
        text.lines()
            .find_map(|l| l.strip_prefix("ferry_broker_fsync_duration_seconds_count "))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no fsync count in\n{text}"))
    }

    async fn append_and_ack(p: &Arc<Partition>, metrics: &Arc<Metrics>) -> i64 {
        let end = p
            .append(&mut batch(1, 0, 0, b"r"), 0, FlushPolicy::Always, metrics)
            .expect("append")
            .end_offset;
        p.request_sync(end, metrics);
        p.wait_durable(end).await.expect("durable");
        assert!(p.high_watermark() >= end, "visible once acknowledged");
        end
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_share_syncs() {
        const N: usize = 32;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = open(dir.path());
        let metrics = Arc::new(Metrics::default());

        // N appends, all in the log before the first writer asks for a sync: one covers all.
        let barrier = Arc::new(tokio::sync::Barrier::new(N));
        let writers: Vec<_> = (0..N)
            .map(|_| {
                let (p, metrics, barrier) = (p.clone(), metrics.clone(), barrier.clone());
                tokio::spawn(async move {
                    let end = p
                        .append(&mut batch(1, 0, 0, b"r"), 0, FlushPolicy::Always, &metrics)
                        .expect("append")
                        .end_offset;
                    barrier.wait().await;
                    p.request_sync(end, &metrics);
                    p.wait_durable(end).await.expect("durable");
                })
            })
            .collect();
        for w in writers {
            w.await.expect("writer");
        }
        assert_eq!(p.high_watermark(), N as i64);
        assert_eq!(syncs(&metrics), 1, "one fsync covered all {N} appends");

        // Free-running writers: each appends and waits, 20 times; fsyncs are shared.
        let before = syncs(&metrics);
        let writers: Vec<_> = (0..N)
            .map(|_| {
                let (p, metrics) = (p.clone(), metrics.clone());
                tokio::spawn(async move {
                    for _ in 0..20 {
                        append_and_ack(&p, &metrics).await;
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.expect("writer");
        }
        let appends = (N * 20) as u64;
        let used = syncs(&metrics) - before;
        assert_eq!(p.high_watermark(), N as i64 + appends as i64);
        assert!(
            (1..appends).contains(&used),
            "{appends} concurrent appends took {used} fsyncs"
        );

        // A lone writer gets its own sync at once, and the blocking path agrees.
        let end = append_and_ack(&p, &metrics).await;
        p.sync_through(i64::MAX, &metrics).expect("nothing left");
        assert_eq!(p.high_watermark(), end);
    }

    #[test]
    fn delete_records_moves_the_start_up_to_the_high_watermark() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = open(dir.path());
        for _ in 0..3 {
            p.append(
                &mut batch(2, 0, 0, b"r"),
                0,
                FlushPolicy::Os,
                &Metrics::default(),
            )
            .expect("append");
        }
        assert_eq!(p.high_watermark(), 6);
        for refused in [7, -2] {
            let err = p.delete_records(refused).expect_err("out of range");
            assert_eq!(err.kafka_code(), 1, "{refused}: OFFSET_OUT_OF_RANGE: {err}");
        }
        assert_eq!(p.delete_records(3).expect("deleted"), 3);
        assert_eq!(p.log_start_offset(), 3);
        assert!(matches!(
            p.read(2, 100),
            Err(Error::OffsetOutOfRange { start: 3, .. })
        ));
        assert_eq!(p.read(3, 100).expect("readable").log_start_offset, 3);
        assert_eq!(p.delete_records(1).expect("no-op"), 3, "never backwards");
        assert_eq!(p.delete_records(DELETE_TO_HIGH_WATERMARK).expect("all"), 6);
    }

    #[test]
    fn a_write_that_cannot_be_undone_fences_and_is_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let part = dir.path().join("p");
        std::fs::create_dir(&part).expect("dir");
        // Writes to /dev/full fail with ENOSPC, and it cannot be truncated back.
        std::os::unix::fs::symlink("/dev/full", part.join("00000000000000000000.log"))
            .expect("symlink");
        let p = open(&part);
        let metrics = Metrics::default();
        let failed = p
            .append(&mut batch(1, 0, 0, b"r"), 0, FlushPolicy::Always, &metrics)
            .expect_err("disk full");
        assert!(matches!(failed, Error::Io { .. }), "{failed}");
        assert_eq!(failed.kafka_code(), 56, "KAFKA_STORAGE_ERROR");
        assert!(p.fenced());
        let again = p.append(&mut batch(1, 0, 0, b"r"), 0, FlushPolicy::Os, &metrics);
        assert!(matches!(again, Err(Error::PartitionFenced { .. })));
        assert_eq!(p.log_end_offset(), 0, "nothing counted as appended");
        let text = metrics.render();
        for want in [
            "ferry_broker_partitions_fenced 1",
            "ferry_broker_storage_write_failures_total{store=\"log\",outcome=\"fenced\"} 1",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
    }

    #[tokio::test]
    async fn a_fenced_partition_refuses_writes_and_acks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = open(dir.path());
        let metrics = Arc::new(Metrics::default());
        let durable = append_and_ack(&p, &metrics).await;
        let pending = p
            .append(&mut batch(1, 0, 0, b"r"), 0, FlushPolicy::Always, &metrics)
            .expect("append")
            .end_offset;
        let waiter = {
            let p = p.clone();
            tokio::spawn(async move { p.wait_durable(pending).await })
        };
        p.fence(
            &Error::Io {
                path: "t-0".into(),
                source: std::io::Error::other("injected EIO"),
            },
            &metrics,
        );
        let refused = waiter
            .await
            .expect("waiter")
            .expect_err("never acknowledged");
        assert_eq!(refused.kafka_code(), 56, "KAFKA_STORAGE_ERROR: {refused}");
        assert!(
            p.wait_durable(durable).await.is_ok(),
            "synced before the failure"
        );
        p.request_sync(pending, &metrics);
        assert!(p.wait_durable(pending).await.is_err());
        assert!(p.sync_through(i64::MAX, &metrics).is_err());
        let append = p.append(&mut batch(1, 0, 0, b"r"), 0, FlushPolicy::Always, &metrics);
        assert!(matches!(
            append,
            Err(Error::PartitionFenced { partition: 0, .. })
        ));
        assert_eq!(
            p.high_watermark(),
            durable,
            "nothing past the failed range visible"
        );
    }
}
