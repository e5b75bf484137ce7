//! A partition's log: an ordered list of segments, the last one active.

use std::ops::Range;
use std::path::{Path, PathBuf};

use super::batch::{BatchHeader, assign_offsets, batches};
use super::compact::{self, Batch, Cleaned, Cleaning, Latest, Output};
use super::disk::{Disk, RealDisk};
use super::log_start;
use super::recovery::{Recovery, Truncated};
use super::segment::{Segment, file_name};
use crate::error::{Error, Result, io_at};

/// How a partition rolls and retains segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll to a new segment when the active one reaches this size.
    pub segment_bytes: u64,
    /// Roll when the active segment's first record is this old (ms).
    pub segment_ms: i64,
    /// Delete segments whose newest record is older than this (ms); `None` keeps forever.
    pub retention_ms: Option<i64>,
    /// Delete oldest segments while the partition is larger than this; `None` for no limit.
    pub retention_bytes: Option<u64>,
}

impl Default for LogConfig {
    /// Kafka's defaults: 1 GiB segments, weekly roll, 7 days retention, no size limit.
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            retention_bytes: None,
        }
    }
}

/// Offsets of what one append wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Offset of the first record written.
    pub base_offset: i64,
    /// Offset of the last record written.
    pub last_offset: i64,
}

/// One partition on disk (the machine's, unless a test gives another [`Disk`]).
#[derive(Debug)]
pub struct PartitionLog<D: Disk = RealDisk> {
    disk: D,
    dir: PathBuf,
    config: LogConfig,
    segments: Vec<Segment<D>>,
    /// First readable offset: the recorded start ([`log_start`]) or the oldest segment's
    /// base, whichever is later.
    start_offset: i64,
    /// What recovery cut off the segments when the log was opened.
    truncated: Vec<Truncated>,
}

impl PartitionLog {
    /// [`PartitionLog::open_on`] the machine's disk.
    ///
    /// # Errors
    /// As [`PartitionLog::open_on`].
    pub fn open(dir: &Path, config: LogConfig, policy: Recovery) -> Result<Self> {
        Self::open_on(RealDisk, dir, config, policy)
    }
}

impl<D: Disk> PartitionLog<D> {
    /// Fsyncs a directory, making the entries created in it durable.
    fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.disk.sync_dir(dir).map_err(io_at(dir))
    }

    /// Opens the partition in `dir` on `disk` (created if absent): older segments are indexed, the
    /// active one is recovered (CRCs verified, a torn tail truncated; damage that valid data
    /// follows is handled by `policy`, see [`Recovery`]), and the recorded log start
    /// offset applied ([`PartitionLog::load_start`]).
    ///
    /// # Errors
    /// I/O errors, with the path; a damaged `log-start-offset` file;
    /// [`Error::CorruptSegment`].
    pub fn open_on(disk: D, dir: &Path, config: LogConfig, policy: Recovery) -> Result<Self> {
        let created_dir = !disk.dir_exists(dir);
        disk.create_dir_all(dir).map_err(io_at(dir))?;
        let mut bases: Vec<i64> = disk
            .list(dir)
            .map_err(io_at(dir))?
            .iter()
            .filter_map(|name| name.strip_suffix(".log")?.parse().ok())
            .collect();
        bases.sort_unstable();
        let created_segment = bases.is_empty();
        if created_segment {
            bases.push(0);
        }
        let last = bases.len() - 1;
        // A cleaning the broker did not finish: its unfinished file goes (the segments it
        // was cleaning are intact), and so do segments that a finished one now covers.
        let unfinished = compact::remove_unfinished(&disk, dir)?;
        let mut segments: Vec<Segment<D>> = Vec::with_capacity(bases.len());
        for (i, &base) in bases.iter().enumerate() {
            let seg = Segment::open(&disk, dir, base, i == last, policy)?;
            match segments.last() {
                Some(prev) if i != last && prev.next_offset() > base => {
                    tracing::warn!(
                        dir = %dir.display(),
                        segment = base,
                        "removing a segment that a compacted one replaced (the broker stopped while compacting)"
                    );
                    seg.delete(&disk, dir)?;
                }
                _ => segments.push(seg),
            }
        }
        if unfinished > 0 {
            disk.sync_dir(dir).map_err(io_at(dir))?;
        }
        let truncated = segments.iter().filter_map(Segment::truncated).collect();
        let mut log = PartitionLog {
            disk,
            dir: dir.to_owned(),
            config,
            segments,
            start_offset: 0,
            truncated,
        };
        // New files and directories must survive power loss before anything in them is
        // acknowledged: fsync the directories whose entries changed.
        if created_segment {
            log.sync_dir(dir)?;
        }
        if let Some(parent) = dir.parent().filter(|_| created_dir) {
            log.sync_dir(parent)?;
        }
        log.load_start()?;
        Ok(log)
    }

    /// Applies the recorded log start offset, finishing the deletion of the segments below
    /// it (a crash may have come between recording it and deleting them). A start past the
    /// log end — records acknowledged under `--flush os`, then lost in a crash — empties the
    /// log and restarts it there, as Kafka's log loader does.
    fn load_start(&mut self) -> Result<()> {
        let recorded = log_start::read(&self.disk, &self.dir)?.unwrap_or(0);
        if recorded > self.next_offset() {
            tracing::warn!(
                dir = %self.dir.display(),
                log_start_offset = recorded,
                log_end_offset = self.next_offset(),
                "the recorded log start is past the log end; restarting the log at the start"
            );
            for seg in std::mem::take(&mut self.segments) {
                seg.delete(&self.disk, &self.dir)?;
            }
            let seg = Segment::open(&self.disk, &self.dir, recorded, true, Recovery::Refuse)?;
            self.segments.push(seg);
            self.sync_dir(&self.dir)?;
        } else {
            self.delete_below(recorded)?;
        }
        self.start_offset = recorded.max(self.segments[0].base_offset());
        Ok(())
    }

    /// Deletes the segments holding only offsets below `start` (never the active one).
    fn delete_below(&mut self, start: i64) -> Result<usize> {
        let bases: Vec<i64> = self.segments.iter().map(Segment::base_offset).collect();
        let below = log_start::segments_below(&bases, start);
        for seg in self.segments.drain(..below) {
            seg.delete(&self.disk, &self.dir)?;
        }
        Ok(below)
    }

    /// Moves the log start offset up to `offset` (at most the log end; DeleteRecords keeps it
    /// at most the high watermark): records it durably, then deletes the segments entirely
    /// below it. The rest of the segment holding it stays, unreadable. An offset at or below
    /// the current start changes nothing. Returns the start.
    ///
    /// # Errors
    /// I/O errors; when recording fails the start is unchanged.
    pub fn advance_start(&mut self, offset: i64) -> Result<i64> {
        let offset = offset.min(self.next_offset());
        if offset > self.start_offset {
            log_start::write(&self.disk, &self.dir, offset)?;
            self.start_offset = offset;
            self.delete_below(offset)?;
        }
        Ok(self.start_offset)
    }

    fn active(&mut self) -> &mut Segment<D> {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    /// Validates `records` (one or more v2 batches), assigns their offsets, and appends them,
    /// rolling first when the active segment is full or old. `now_ms` is the wall clock.
    ///
    /// # Errors
    /// [`batches`]' errors for invalid batches (nothing is written), I/O errors.
    pub fn append(&mut self, records: &mut [u8], now_ms: i64) -> Result<Appended> {
        let mut found = batches(records)?;
        self.append_batches(records, &mut found, now_ms)
    }

    /// Appends batches already validated by [`batches`] (`found` is its result for
    /// `records`), assigning their offsets (written into `found` and into `records`). All
    /// or nothing ([`Segment::append`]).
    ///
    /// # Errors
    /// [`Error::WriteRolledBack`] when a write failed and was undone (nothing appended; a
    /// roll that happened first stays, an empty active segment); [`Error::Io`] when it could
    /// not be undone, or a roll failed: the disk then holds more than the log knows.
    pub fn append_batches(
        &mut self,
        records: &mut [u8],
        found: &mut [(BatchHeader, Range<usize>)],
        now_ms: i64,
    ) -> Result<Appended> {
        let base_offset = self.next_offset();
        let mut next = base_offset;
        for (header, range) in found.iter_mut() {
            assign_offsets(&mut records[range.clone()], next);
            header.base_offset = next;
            next = header.last_offset() + 1;
        }
        if self.should_roll(records.len() as u64, now_ms) {
            self.roll()?;
        }
        self.active().append(records, found)?;
        Ok(Appended {
            base_offset,
            last_offset: next - 1,
        })
    }

    fn should_roll(&self, incoming: u64, now_ms: i64) -> bool {
        let seg = &self.segments[self.segments.len() - 1];
        if seg.size() == 0 {
            return false;
        }
        let full = seg.size() + incoming > self.config.segment_bytes;
        let old = seg
            .first_timestamp()
            .is_some_and(|t| now_ms - t >= self.config.segment_ms);
        full || old
    }

    /// Starts a new active segment at the next offset (the old one is fsynced first).
    ///
    /// # Errors
    /// [`Error::WriteRolledBack`] when the new segment's files could not be created (a full
    /// disk, no inodes left) and what was created is removed again: the log is as before.
    /// [`Error::Io`] otherwise, a failed fsync among them.
    pub fn roll(&mut self) -> Result<()> {
        let next = self.next_offset();
        self.active().sync()?;
        let seg = match Segment::open(&self.disk, &self.dir, next, true, Recovery::Refuse) {
            Ok(seg) => seg,
            Err(failed) => return Err(self.undo_roll(next, failed)),
        };
        self.segments.push(seg);
        // The new files' directory entries must survive power loss too.
        self.sync_dir(&self.dir)
    }

    /// Removes the files of a segment at `base` whose creation failed with `failed`; the
    /// roll is undone when none is left.
    fn undo_roll(&self, base: i64, failed: Error) -> Error {
        let Error::Io { path, source } = failed else {
            return failed;
        };
        let removed = ["log", "index", "timeindex"].iter().all(|ext| {
            match self.disk.remove(&self.dir.join(file_name(base, ext))) {
                Ok(()) => true,
                Err(e) => e.kind() == std::io::ErrorKind::NotFound,
            }
        });
        if removed {
            Error::WriteRolledBack { path, source }
        } else {
            Error::Io { path, source }
        }
    }

    /// Calls `f` with every batch header of every segment, oldest first.
    ///
    /// # Errors
    /// I/O errors.
    pub fn for_each_header(&self, mut f: impl FnMut(&BatchHeader)) -> Result<()> {
        for seg in &self.segments {
            seg.for_each_header(&mut f)?;
        }
        Ok(())
    }

    /// A handle on the active segment's log and the log end offset at this moment: fsyncing
    /// the handle makes every offset below the returned one durable (older segments were
    /// synced when they rolled). Lets callers fsync without holding the partition.
    ///
    /// # Errors
    /// I/O errors.
    pub fn sync_point(&self) -> Result<(D::File, i64)> {
        let active = &self.segments[self.segments.len() - 1];
        Ok((active.log_handle()?, self.next_offset()))
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes` (at least one batch);
    /// empty at the end of the log.
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] below the log start or past the end; I/O errors.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Vec<u8>> {
        let (start, next) = (self.start_offset(), self.next_offset());
        if offset < start || offset > next {
            return Err(Error::OffsetOutOfRange {
                requested: offset,
                start,
                next,
            });
        }
        let i = self
            .segments
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1);
        for seg in &self.segments[i..] {
            let bytes = seg.read(offset, max_bytes)?;
            if !bytes.is_empty() {
                return Ok(bytes);
            }
        }
        Ok(Vec::new())
    }

    /// Base offset of the first batch with a record at or after `timestamp` (ms) and a
    /// record at or after the log start, if any.
    ///
    /// # Errors
    /// I/O errors.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<i64>> {
        for seg in &self.segments {
            if let Some(o) = seg.offset_for_timestamp(timestamp, self.start_offset)? {
                return Ok(Some(o));
            }
        }
        Ok(None)
    }

    /// Deletes old segments by the retention settings (never the active one). Returns how many
    /// segments were deleted.
    ///
    /// # Errors
    /// I/O errors.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize> {
        let mut deleted = 0;
        let mut total: u64 = self.segments.iter().map(Segment::size).sum();
        while self.segments.len() > 1 {
            let oldest = &self.segments[0];
            // An empty closed segment (compaction removed every batch) holds nothing to keep.
            let expired = oldest.size() == 0
                || self.config.retention_ms.is_some_and(|r| {
                    oldest.max_timestamp() >= 0 && now_ms - oldest.max_timestamp() > r
                });
            let oversized = self.config.retention_bytes.is_some_and(|r| total > r);
            if !(expired || oversized) {
                break;
            }
            let seg = self.segments.remove(0);
            total -= seg.size();
            seg.delete(&self.disk, &self.dir)?;
            deleted += 1;
        }
        self.start_offset = self.start_offset.max(self.segments[0].base_offset());
        Ok(deleted)
    }

    /// Bytes in the closed segments, and in those of them from `offset` on (what a cleaning
    /// has not seen yet): the dirty ratio's parts.
    pub fn closed_bytes(&self, offset: i64) -> (u64, u64) {
        let closed = &self.segments[..self.segments.len() - 1];
        let total = closed.iter().map(Segment::size).sum();
        let dirty = closed
            .iter()
            .filter(|s| s.next_offset() > offset)
            .map(Segment::size)
            .sum();
        (total, dirty)
    }

    /// Compacts the closed segments old enough under `cleaning` (see [`compact`]); `None`
    /// when there are none. The log reads the same offsets afterwards, with the superseded
    /// records gone.
    ///
    /// # Errors
    /// I/O errors, and a batch whose records do not decode ([`Error::Damaged`]): the
    /// segments then stay as they were, unless the error came after a cleaned segment was
    /// installed (the log is still whole; the next start removes what it replaced).
    pub fn compact(&mut self, cleaning: &Cleaning) -> Result<Option<Cleaned>> {
        let closed = self.segments.len() - 1;
        let cleanable = self.segments[..closed]
            .iter()
            .take_while(|s| s.max_timestamp() <= cleaning.cleanable_before)
            .count();
        if cleanable == 0 {
            return Ok(None);
        }
        // The latest offset of every key in the segments cleaned, and the last batch of
        // every idempotent producer in the whole log (kept, even empty).
        let mut latest = Latest::new();
        for seg in &self.segments[..cleanable] {
            seg.for_each_batch(|h, b| {
                latest
                    .note(b, h)
                    .map_err(|p| compact::batch_error(seg.path(), h.base_offset, p))
            })?;
        }
        let mut last_of_producer: std::collections::HashMap<i64, i64> =
            std::collections::HashMap::new();
        self.for_each_header(|h| {
            if h.producer_id >= 0 {
                last_of_producer.insert(h.producer_id, h.base_offset);
            }
        })?;
        let mut done = Cleaned {
            segments_before: cleanable,
            cleaned_through: self.segments[cleanable - 1].next_offset(),
            ..Cleaned::default()
        };
        // Consecutive segments go into one output while it stays under `segment.bytes`.
        let mut groups: Vec<(usize, usize)> = Vec::new();
        let mut i = 0;
        while i < cleanable {
            let start = i;
            let mut size = self.segments[i].size();
            i += 1;
            while i < cleanable && size + self.segments[i].size() <= cleaning.segment_bytes {
                size += self.segments[i].size();
                i += 1;
            }
            groups.push((start, i));
        }
        // Installed from the last group back, so the indexes of earlier ones stay valid.
        for &(start, end) in groups.iter().rev() {
            let members = &self.segments[start..end];
            done.bytes_before += members.iter().map(Segment::size).sum::<u64>();
            let mut out = Output::create(&self.disk, &self.dir, members[0].base_offset())?;
            let written = (|| {
                for seg in members {
                    seg.for_each_batch(|h, b| {
                        let keep_empty =
                            last_of_producer.get(&h.producer_id) == Some(&h.base_offset);
                        let mut removed = 0u64;
                        let cleaned = compact::clean_batch(b, h, keep_empty, |r| {
                            let keep = latest.keeps(r, cleaning);
                            removed += u64::from(!keep);
                            keep
                        })
                        .map_err(|p| compact::batch_error(seg.path(), h.base_offset, p))?;
                        done.records_removed += removed;
                        match cleaned {
                            Batch::Unchanged => out.write(b),
                            Batch::Rewritten(bytes) => out.write(&bytes),
                            Batch::Removed => Ok(()),
                        }
                    })?;
                }
                Ok(())
            })();
            if let Err(e) = written {
                let _ = self.disk.remove(&out.path);
                return Err(e);
            }
            let base = out.base_offset;
            done.bytes_after += out.size;
            out.install(&self.disk, &self.dir)?;
            // The cleaned segment is read before the ones it replaces are let go: whatever
            // fails from here, memory never loses sight of a record (the old segments'
            // handles still read the replaced files until the new one is open), and what is
            // left on disk is what the next start clears.
            self.segments[start] =
                Segment::open(&self.disk, &self.dir, base, false, Recovery::Refuse)?;
            for seg in self.segments.drain(start + 1..end) {
                seg.delete(&self.disk, &self.dir)?;
            }
            self.sync_dir(&self.dir)?;
        }
        done.segments_after = groups.len();
        Ok(Some(done))
    }

    /// Forces the active segment to disk (older ones were synced when they rolled).
    ///
    /// # Errors
    /// I/O errors.
    pub fn sync(&self) -> Result<()> {
        self.segments[self.segments.len() - 1].sync()
    }

    /// First readable offset (the log start offset).
    pub fn start_offset(&self) -> i64 {
        self.start_offset
    }

    /// Offset the next record will get (the log end offset).
    pub fn next_offset(&self) -> i64 {
        self.segments[self.segments.len() - 1].next_offset()
    }

    /// What recovery cut off the segments when the log was opened (each logged then).
    pub fn truncated(&self) -> &[Truncated] {
        &self.truncated
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::batch::testing::batch;
    use super::*;

    fn small() -> LogConfig {
        LogConfig {
            segment_bytes: 1_000,
            segment_ms: 60_000,
            retention_ms: Some(3_600_000),
            retention_bytes: None,
        }
    }

    #[test]
    fn offsets_roll_and_reads_span_segments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), small(), Recovery::Refuse).expect("open");
        for i in 0..40 {
            let mut two = batch(3, i, i, &[1u8; 100]);
            two.extend(batch(1, i, i, &[2u8; 20]));
            let a = log.append(&mut two, 0).expect("append");
            assert_eq!(
                a,
                Appended {
                    base_offset: i * 4,
                    last_offset: i * 4 + 3
                }
            );
        }
        assert_eq!(log.next_offset(), 160);
        assert!(
            log.segment_count() > 5,
            "rolled by size: {}",
            log.segment_count()
        );
        let mut offset = 0;
        while offset < 160 {
            let bytes = log.read(offset, 300).expect("read");
            let got = batches(&bytes).expect("valid");
            assert!(got[0].0.base_offset <= offset && got[0].0.last_offset() >= offset);
            offset = got.last().expect("one").0.last_offset() + 1;
        }
        assert!(log.read(160, 100).expect("end").is_empty());
        assert!(matches!(
            log.read(161, 100),
            Err(Error::OffsetOutOfRange {
                requested: 161,
                start: 0,
                next: 160
            })
        ));
        assert_eq!(log.offset_for_timestamp(25).expect("ts"), Some(100));

        let reopened = PartitionLog::open(dir.path(), small(), Recovery::Refuse).expect("reopen");
        assert_eq!(
            (reopened.next_offset(), reopened.segment_count()),
            (160, log.segment_count())
        );
    }

    #[test]
    fn the_log_start_moves_forward_durably() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), small(), Recovery::Refuse).expect("open");
        for i in 0..30 {
            log.append(&mut batch(2, i, i, &[1u8; 100]), 0)
                .expect("append");
        }
        let segments = log.segment_count();
        assert!(segments > 4, "rolled: {segments}");
        // Offset 41 sits inside a batch (40..=41) in the middle of a segment.
        assert_eq!(log.advance_start(41).expect("advance"), 41);
        assert_eq!(log.start_offset(), 41);
        assert!(
            log.segment_count() < segments,
            "whole segments below are gone"
        );
        assert!(
            log.segments[0].base_offset() <= 41,
            "the one holding 41 stays"
        );
        assert!(matches!(
            log.read(40, 100),
            Err(Error::OffsetOutOfRange { start: 41, .. })
        ));
        let first = batches(&log.read(41, 1).expect("read")).expect("valid");
        assert_eq!(first[0].0.base_offset, 40, "the batch holding the start");
        assert_eq!(log.advance_start(7).expect("no-op"), 41, "never backwards");
        assert_eq!(
            log.offset_for_timestamp(0).expect("ts"),
            Some(40),
            "lookups start at the log start"
        );

        let kept = log.segment_count();
        let mut reopened =
            PartitionLog::open(dir.path(), small(), Recovery::Refuse).expect("reopen");
        assert_eq!(
            (reopened.start_offset(), reopened.segment_count()),
            (41, kept),
            "recorded across a restart"
        );
        assert_eq!(reopened.advance_start(60).expect("to the end"), 60);
        assert_eq!(reopened.segment_count(), 1, "only the active segment stays");
        assert!(reopened.read(60, 100).expect("at the end").is_empty());
    }

    #[test]
    fn a_start_past_the_end_restarts_the_log_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), small(), Recovery::Refuse).expect("open");
        log.append(&mut batch(3, 0, 0, b"x"), 0).expect("append");
        drop(log);
        // As after records acknowledged under `--flush os` were lost in a crash.
        log_start::write(&RealDisk, dir.path(), 10).expect("record");
        let mut log = PartitionLog::open(dir.path(), small(), Recovery::Refuse).expect("reopen");
        assert_eq!((log.start_offset(), log.next_offset()), (10, 10));
        let appended = log.append(&mut batch(1, 0, 0, b"y"), 0).expect("append");
        assert_eq!(appended.base_offset, 10);
    }

    #[test]
    fn a_roll_without_inodes_left_is_undone_and_retried() {
        // Inodes: the root, the partition directory and its three files, and few to spare.
        let Some(disk) = super::super::small_disk::SmallDisk::mount_with(1 << 20, 16) else {
            return;
        };
        let dir = disk.path().join("p");
        let mut log = PartitionLog::open(&dir, small(), Recovery::Refuse).expect("open");
        log.append(&mut batch(1, 0, 0, &[1u8; 600]), 0)
            .expect("append");
        let fillers = disk.fill_inodes();
        // 600 more bytes pass segment_bytes (1000): this append rolls first.
        let err = log
            .append(&mut batch(1, 0, 0, &[2u8; 600]), 0)
            .expect_err("no inodes");
        assert!(matches!(err, Error::WriteRolledBack { .. }), "{err}");
        assert!(!crate::storage::fences(&err), "retriable");
        assert_eq!((log.segment_count(), log.next_offset()), (1, 1));
        let files = std::fs::read_dir(&dir).expect("dir").count();
        assert_eq!(files, 3, "no half-created segment left");

        for f in fillers {
            std::fs::remove_file(f).expect("free");
        }
        let appended = log
            .append(&mut batch(1, 0, 0, &[2u8; 600]), 0)
            .expect("retry");
        assert_eq!(appended.base_offset, 1);
        assert_eq!(log.segment_count(), 2);
    }

    #[test]
    fn invalid_batches_write_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), small(), Recovery::Refuse).expect("open");
        let mut bad = batch(1, 0, 0, b"x");
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let mut both = batch(1, 0, 0, b"ok");
        both.extend(bad);
        assert!(matches!(
            log.append(&mut both, 0),
            Err(Error::BatchCrc { .. })
        ));
        assert_eq!(log.next_offset(), 0);
    }

    #[test]
    fn rolls_by_time_and_retains_by_time_and_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig {
            segment_bytes: 1 << 20,
            segment_ms: 1_000,
            retention_ms: Some(10_000),
            retention_bytes: Some(250),
        };
        let mut log = PartitionLog::open(dir.path(), cfg, Recovery::Refuse).expect("open");
        for t in [0, 500, 1_500, 3_000, 20_000] {
            log.append(&mut batch(1, t, t, &[0u8; 64]), t)
                .expect("append");
        }
        assert_eq!(
            log.segment_count(),
            4,
            "0+500 share a segment; the others roll after 1 s"
        );
        let deleted = log.apply_retention(20_000).expect("retention");
        assert_eq!(
            deleted, 3,
            "three segments are older than 10 s; the active one stays"
        );
        assert_eq!((log.start_offset(), log.next_offset()), (4, 5));
        assert!(matches!(
            log.read(0, 10),
            Err(Error::OffsetOutOfRange { start: 4, .. })
        ));
        let files = std::fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(files, 3, "one segment: log, index, timeindex");

        let sized_dir = tempfile::tempdir().expect("tempdir");
        let sized_cfg = LogConfig {
            retention_ms: None,
            segment_ms: 1,
            ..cfg
        };
        let mut sized =
            PartitionLog::open(sized_dir.path(), sized_cfg, Recovery::Refuse).expect("open");
        for t in 0..5 {
            sized
                .append(&mut batch(1, t * 10, t * 10, &[0u8; 64]), t * 10)
                .expect("append");
        }
        assert_eq!(
            sized.apply_retention(100).expect("retention"),
            3,
            "keeps at most 250 bytes (two 125-byte segments)"
        );
    }
}
