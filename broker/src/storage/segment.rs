//! One segment of a partition: `<base>.log` with batches as received, a sparse offset index
//! (`<base>.index`: relative offset u32, position u32) and a time index (`<base>.timeindex`:
//! timestamp i64, relative offset u32), all big-endian as in Kafka. Both indexes gain an entry
//! per [`INDEX_INTERVAL_BYTES`] of log, as Kafka's do (`index.interval.bytes`): the time index
//! one when the largest timestamp grew since its last entry. Memory holds a summary of each
//! ([`Index`]); the files hold every entry.

use std::ops::Range;
use std::path::{Path, PathBuf};

use super::batch::{BATCH_HEADER_LEN, BatchHeader, batches};
use super::disk::{Disk, DiskFile, RealDisk};
use super::index::{Entry, Index};
use super::recovery::{self, Action, Damage, Recovery, Truncated};
use crate::error::{Error, Result, io_at};

/// An index entry is added after at least this many log bytes since the previous one.
pub const INDEX_INTERVAL_BYTES: u64 = 4096;

/// File name of a segment file: the base offset, zero-padded to 20 digits, and an extension.
pub fn file_name(base_offset: i64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

/// An open segment, on the machine's disk unless a test gives another [`Disk`].
#[derive(Debug)]
pub struct Segment<D: Disk = RealDisk> {
    base_offset: i64,
    path: PathBuf,
    log: D::File,
    index: D::File,
    time_index: D::File,
    size: u64,
    next_offset: i64,
    max_timestamp: i64,
    first_timestamp: Option<i64>,
    offsets: Index<(u32, u32)>,
    times: Index<(i64, u32)>,
    bytes_since_index: u64,
    /// Log bytes between index entries ([`INDEX_INTERVAL_BYTES`] but in tests).
    index_interval: u64,
    /// What recovery cut off when the segment was opened.
    truncated: Option<Truncated>,
}

fn open_rw<D: Disk>(disk: &D, path: &Path) -> Result<D::File> {
    disk.open(path).map_err(io_at(path))
}

/// A segment's in-memory state before an append, to restore when the append fails.
struct Mark {
    size: u64,
    next_offset: i64,
    max_timestamp: i64,
    first_timestamp: Option<i64>,
    bytes_since_index: u64,
}

impl Mark {
    fn of<D: Disk>(seg: &Segment<D>) -> Self {
        Mark {
            size: seg.size,
            next_offset: seg.next_offset,
            max_timestamp: seg.max_timestamp,
            first_timestamp: seg.first_timestamp,
            bytes_since_index: seg.bytes_since_index,
        }
    }

    fn restore<D: Disk>(&self, seg: &mut Segment<D>) {
        seg.size = self.size;
        seg.next_offset = self.next_offset;
        seg.max_timestamp = self.max_timestamp;
        seg.first_timestamp = self.first_timestamp;
        seg.bytes_since_index = self.bytes_since_index;
        seg.offsets.drop_fresh();
        seg.times.drop_fresh();
    }
}

impl<D: Disk> Segment<D> {
    /// Opens (or creates) the segment starting at `base_offset` in `dir`, scanning the log to
    /// rebuild both indexes. With `verify` (the active segment), every batch's CRC is
    /// checked too. Damage after the last valid batch is handled as [`Recovery`] describes
    /// under `policy`: a torn tail of the active segment is truncated (logged);
    /// anything that valid data follows is refused, or truncated with
    /// [`Recovery::Truncate`].
    ///
    /// # Errors
    /// I/O errors, with the file's path; [`Error::CorruptSegment`].
    pub fn open(
        disk: &D,
        dir: &Path,
        base_offset: i64,
        verify: bool,
        policy: Recovery,
    ) -> Result<Self> {
        let path = dir.join(file_name(base_offset, "log"));
        let log = open_rw(disk, &path)?;
        let index = open_rw(disk, &dir.join(file_name(base_offset, "index")))?;
        let time_index = open_rw(disk, &dir.join(file_name(base_offset, "timeindex")))?;
        let mut seg = Segment {
            base_offset,
            path,
            log,
            index,
            time_index,
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            first_timestamp: None,
            offsets: Index::default(),
            times: Index::default(),
            bytes_since_index: 0,
            index_interval: INDEX_INTERVAL_BYTES,
            truncated: None,
        };
        seg.scan(verify, policy)?;
        Ok(seg)
    }

    /// Walks the log from the start, rebuilding indexes, up to the first bad batch; then
    /// recovers from the damage, if any.
    fn scan(&mut self, verify: bool, policy: Recovery) -> Result<()> {
        let len = self.log.size().map_err(io_at(&self.path))?;
        let mut pos: u64 = 0;
        let mut header_buf = [0u8; BATCH_HEADER_LEN];
        while pos < len {
            if len - pos < BATCH_HEADER_LEN as u64 {
                break;
            }
            self.log
                .read_exact_at(&mut header_buf, pos)
                .map_err(io_at(&self.path))?;
            let Ok(header) = BatchHeader::parse(&header_buf) else {
                break;
            };
            let total = header.total_len() as u64;
            // Offsets follow on in the active segment; a sealed one may have gaps where
            // compaction removed batches.
            let follows = if verify {
                header.base_offset == self.next_offset
            } else {
                header.base_offset >= self.next_offset
            };
            if total < BATCH_HEADER_LEN as u64 || pos + total > len || !follows {
                break;
            }
            if verify {
                let mut whole = vec![0u8; header.total_len()];
                self.log
                    .read_exact_at(&mut whole, pos)
                    .map_err(io_at(&self.path))?;
                if batches(&whole).is_err() {
                    break;
                }
            }
            self.note_batch(&header, pos);
            pos += total;
        }
        let damage = if pos == len {
            Damage::None
        } else if !verify {
            Damage::Sealed
        } else {
            match self.next_valid_batch(pos, len)? {
                Some(next_valid) if self.all_zero(pos, next_valid)? => Damage::Hole { next_valid },
                Some(next_valid) => Damage::Corrupt { next_valid },
                None => Damage::TornTail,
            }
        };
        match recovery::decide(damage, policy) {
            Action::Keep => {}
            Action::Refuse => return Err(recovery::refusal(&self.path, pos, len, damage)),
            Action::Truncate(reason) => {
                tracing::warn!(
                    path = %self.path.display(),
                    position = pos,
                    bytes = len - pos,
                    next_offset = self.next_offset,
                    reason,
                    "recovery truncated the log after its last valid batch"
                );
                self.log.set_len(pos).map_err(io_at(&self.path))?;
                self.log.sync_data().map_err(io_at(&self.path))?;
                self.truncated = Some(Truncated {
                    reason,
                    bytes: len - pos,
                });
            }
        }
        self.size = pos;
        self.write_indexes()
    }

    /// Position of the first valid batch after the damage at `from` (in a log of `len`
    /// bytes) that could continue the log, if any: every byte position is a candidate, the
    /// header filters them cheaply and the CRC decides. The search reads the rest of the file
    /// once, in chunks — after a torn tail that is at most the last write.
    fn next_valid_batch(&self, from: u64, len: u64) -> Result<Option<u64>> {
        const CHUNK: u64 = 1 << 20;
        let header_len = BATCH_HEADER_LEN as u64;
        let mut buf = Vec::new();
        let mut start = from + 1;
        while start + header_len <= len {
            let end = (start + CHUNK + header_len).min(len);
            buf.resize((end - start) as usize, 0);
            self.log
                .read_exact_at(&mut buf, start)
                .map_err(io_at(&self.path))?;
            let candidates = (buf.len() - BATCH_HEADER_LEN + 1).min(CHUNK as usize);
            for i in 0..candidates {
                let position = start + i as u64;
                let Ok(header) = BatchHeader::parse(&buf[i..]) else {
                    continue;
                };
                if !recovery::plausible(&header, position, len, self.next_offset) {
                    continue;
                }
                let mut whole = vec![0u8; header.total_len()];
                self.log
                    .read_exact_at(&mut whole, position)
                    .map_err(io_at(&self.path))?;
                if batches(&whole).is_ok() {
                    return Ok(Some(position));
                }
            }
            start += CHUNK;
        }
        Ok(None)
    }

    /// Whether the log's bytes `from..to` are all zero (pages never written back).
    fn all_zero(&self, from: u64, to: u64) -> Result<bool> {
        const CHUNK: u64 = 1 << 16;
        let mut buf = Vec::new();
        let mut start = from;
        while start < to {
            let end = (start + CHUNK).min(to);
            buf.resize((end - start) as usize, 0);
            self.log
                .read_exact_at(&mut buf, start)
                .map_err(io_at(&self.path))?;
            if buf.iter().any(|&b| b != 0) {
                return Ok(false);
            }
            start = end;
        }
        Ok(true)
    }

    fn note_batch(&mut self, header: &BatchHeader, position: u64) {
        let rel = u32::try_from(header.base_offset - self.base_offset).unwrap_or(u32::MAX);
        let pos = u32::try_from(position).unwrap_or(u32::MAX);
        let indexed = self.offsets.is_empty() || self.bytes_since_index >= self.index_interval;
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        if indexed {
            self.offsets.note((rel, pos));
            self.bytes_since_index = 0;
            // (largest timestamp so far, this batch): every batch before this one, and this
            // one, holds only earlier timestamps, so a search for a later one starts here.
            if self
                .times
                .last()
                .is_none_or(|(ts, _)| ts < self.max_timestamp)
            {
                self.times.note((self.max_timestamp, rel));
            }
        }
        self.bytes_since_index += header.total_len() as u64;
        self.first_timestamp.get_or_insert(header.max_timestamp);
        self.next_offset = header.last_offset() + 1;
    }

    /// Writes both indexes whole (after a scan noted every entry).
    fn write_indexes(&mut self) -> Result<()> {
        for (file, bytes) in [
            (&self.index, self.offsets.encode_fresh()),
            (&self.time_index, self.times.encode_fresh()),
        ] {
            file.set_len(0).map_err(io_at(&self.path))?;
            file.write_all_at(&bytes, 0).map_err(io_at(&self.path))?;
        }
        self.offsets.written_fresh();
        self.times.written_fresh();
        Ok(())
    }

    /// Appends validated batches whose base offsets are already assigned: `records` holds
    /// them back to back, `found` their headers and ranges in it ([`batches`]' result).
    ///
    /// # Guarantees
    /// All or nothing, and memory agrees with the files: the batches count (are readable,
    /// move the next offset) only once the log and both index writes succeeded. When one
    /// fails, the in-memory state is put back as it was, the three files are cut back to
    /// their previous lengths and the error is [`Error::WriteRolledBack`]: the segment is
    /// exactly as before and the append may be retried. (The caller holds `&mut self`
    /// throughout, so nobody sees the state in between.)
    ///
    /// # Errors
    /// [`Error::WriteRolledBack`] as above. [`Error::Io`] when cutting back failed too: the
    /// files may hold bytes past what the segment knows, so the caller must take no more
    /// writes (recovery at the next start drops them as a torn tail).
    pub fn append(&mut self, records: &[u8], found: &[(BatchHeader, Range<usize>)]) -> Result<()> {
        let before = Mark::of(self);
        for (header, range) in found {
            self.note_batch(header, before.size + range.start as u64);
        }
        match self.write_appended(records, &before) {
            Ok(()) => {
                self.size = before.size + records.len() as u64;
                self.offsets.written_fresh();
                self.times.written_fresh();
                Ok(())
            }
            Err(failed) => {
                before.restore(self);
                Err(self.roll_back(&before, failed))
            }
        }
    }

    /// Writes `records` at the end of the log (`before.size`) and the index entries noted
    /// since.
    fn write_appended(&self, records: &[u8], before: &Mark) -> std::io::Result<()> {
        self.log.write_all_at(records, before.size)?;
        self.index
            .write_all_at(&self.offsets.encode_fresh(), self.index_len())?;
        self.time_index
            .write_all_at(&self.times.encode_fresh(), self.time_index_len())
    }

    /// Bytes in the index file (entries written).
    fn index_len(&self) -> u64 {
        (self.offsets.written() * <(u32, u32)>::LEN) as u64
    }

    /// Bytes in the time index file (entries written).
    fn time_index_len(&self) -> u64 {
        (self.times.written() * <(i64, u32)>::LEN) as u64
    }

    /// Cuts the three files back to their lengths at `before` after `failed`.
    fn roll_back(&self, before: &Mark, failed: std::io::Error) -> Error {
        let cut = [
            (&self.log, before.size),
            (&self.index, self.index_len()),
            (&self.time_index, self.time_index_len()),
        ]
        .into_iter()
        .try_for_each(|(file, len)| file.set_len(len));
        match cut {
            Ok(()) => Error::WriteRolledBack {
                path: self.path.clone(),
                source: failed,
            },
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "cannot undo a failed append");
                Error::Io {
                    path: self.path.clone(),
                    source: failed,
                }
            }
        }
    }

    /// Whole batches starting with the one that holds `offset`, up to `max_bytes` (always at
    /// least one batch, as Kafka fetches do); empty when `offset` is past this segment.
    ///
    /// # Errors
    /// I/O errors.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Vec<u8>> {
        if offset >= self.next_offset {
            return Ok(Vec::new());
        }
        let rel = u32::try_from((offset - self.base_offset).max(0)).unwrap_or(u32::MAX);
        let mut from = None;
        let mut end = 0;
        self.walk(self.position_at_or_before(rel)?, |pos, header| {
            let next = pos + header.total_len() as u64;
            match from {
                None if header.last_offset() >= offset => {
                    from = Some(pos);
                    end = next;
                }
                None => {}
                Some(f) if (next - f) as usize <= max_bytes => end = next,
                Some(_) => return false,
            }
            true
        })?;
        let Some(from) = from else {
            return Ok(Vec::new());
        };
        let mut out = vec![0u8; (end - from) as usize];
        self.log
            .read_exact_at(&mut out, from)
            .map_err(io_at(&self.path))?;
        Ok(out)
    }

    /// Log position of the last indexed batch at or before relative offset `rel` (the scan
    /// start for lookups; 0 when no entry precedes it).
    fn position_at_or_before(&self, rel: u32) -> Result<u64> {
        let found = self
            .offsets
            .last_where(&self.index, &self.path, |(r, _)| *r <= rel)?;
        Ok(found.map_or(0, |(_, pos)| u64::from(pos)))
    }

    /// The base offset of the first batch holding a record at or after `timestamp` and one
    /// at or after offset `from` (the log start).
    ///
    /// # Errors
    /// I/O errors.
    pub fn offset_for_timestamp(&self, timestamp: i64, from: i64) -> Result<Option<i64>> {
        if self.max_timestamp < timestamp || self.next_offset <= from {
            return Ok(None);
        }
        // Every batch up to the last time entry below `timestamp` holds only earlier ones.
        let start = match self
            .times
            .last_where(&self.time_index, &self.path, |(ts, _)| *ts < timestamp)?
        {
            Some((_, rel)) => self.position_at_or_before(rel)?,
            None => 0,
        };
        let mut found = None;
        self.walk(start, |_, header| {
            if header.max_timestamp >= timestamp && header.last_offset() >= from {
                found = Some(header.base_offset);
            }
            found.is_none()
        })?;
        Ok(found)
    }

    /// Calls `f` with every batch (header and bytes) in log order, one read per batch; stops
    /// at `f`'s first error.
    ///
    /// # Errors
    /// I/O errors and `f`'s.
    pub fn for_each_batch(
        &self,
        mut f: impl FnMut(&BatchHeader, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut result = Ok(());
        let mut buf = Vec::new();
        self.walk(0, |pos, header| {
            buf.resize(header.total_len(), 0);
            result = self
                .log
                .read_exact_at(&mut buf, pos)
                .map_err(io_at(&self.path))
                .and_then(|()| f(header, &buf));
            result.is_ok()
        })?;
        result
    }

    /// The path of the segment's log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Calls `f` with every batch header in log order (headers only; bodies are not read).
    ///
    /// # Errors
    /// I/O errors.
    pub fn for_each_header(&self, f: &mut dyn FnMut(&BatchHeader)) -> Result<()> {
        self.walk(0, |_, header| {
            f(header);
            true
        })
    }

    /// Reads batch headers from log position `pos` on, calling `f(position, header)` until it
    /// returns false or the segment ends.
    fn walk(&self, mut pos: u64, mut f: impl FnMut(u64, &BatchHeader) -> bool) -> Result<()> {
        let mut header_buf = [0u8; BATCH_HEADER_LEN];
        while pos < self.size {
            self.log
                .read_exact_at(&mut header_buf, pos)
                .map_err(io_at(&self.path))?;
            let header = BatchHeader::parse(&header_buf)?;
            if !f(pos, &header) {
                break;
            }
            pos += header.total_len() as u64;
        }
        Ok(())
    }

    /// A second handle on the log file, to fsync it without holding the segment.
    ///
    /// # Errors
    /// I/O errors.
    pub fn log_handle(&self) -> Result<D::File> {
        self.log.try_clone().map_err(io_at(&self.path))
    }

    /// Forces the log and both indexes to disk.
    ///
    /// # Errors
    /// I/O errors.
    pub fn sync(&self) -> Result<()> {
        for f in [&self.log, &self.index, &self.time_index] {
            f.sync_data().map_err(io_at(&self.path))?;
        }
        Ok(())
    }

    /// Deletes the segment's three files.
    ///
    /// # Errors
    /// I/O errors.
    pub fn delete(self, disk: &D, dir: &Path) -> Result<()> {
        for ext in ["log", "index", "timeindex"] {
            let p = dir.join(file_name(self.base_offset, ext));
            disk.remove(&p).map_err(io_at(&p))?;
        }
        Ok(())
    }

    /// First offset of the segment.
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    /// Offset the next appended record gets.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    /// Bytes in the log file.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Largest record timestamp, or -1 when empty.
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    /// Timestamp of the first batch, which starts the segment's age for time-based rolling.
    pub fn first_timestamp(&self) -> Option<i64> {
        self.first_timestamp
    }
    /// What recovery cut off when the segment was opened, if anything.
    pub fn truncated(&self) -> Option<Truncated> {
        self.truncated
    }
    /// Index entries (relative offset, position), read from the index file: for tests and
    /// tools.
    ///
    /// # Errors
    /// I/O errors.
    pub fn index_entries(&self) -> Result<Vec<(u32, u32)>> {
        self.offsets.read_all(&self.index, &self.path)
    }

    /// Time index entries (largest timestamp so far, relative offset), read from the file.
    ///
    /// # Errors
    /// I/O errors.
    pub fn time_entries(&self) -> Result<Vec<(i64, u32)>> {
        self.times.read_all(&self.time_index, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::super::batch::{assign_offsets, batches, testing::batch};
    use super::*;

    fn append_n(seg: &mut Segment, n: usize, payload: &[u8]) {
        for i in 0..n {
            let mut b = batch(2, 1_000 + i as i64, 1_000 + i as i64, payload);
            assign_offsets(&mut b, seg.next_offset());
            let found = batches(&b).expect("valid");
            seg.append(&b, &found).expect("append");
        }
    }

    #[test]
    fn append_read_and_indexes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg =
            Segment::open(&RealDisk, dir.path(), 100, true, Recovery::Refuse).expect("open");
        append_n(&mut seg, 50, &[7u8; 300]);
        assert_eq!(seg.next_offset(), 200);
        let entries = seg.index_entries().expect("entries");
        assert!(entries.len() > 3, "sparse index every 4 KiB");
        let one = seg.read(151, 1).expect("read");
        let (h, _) = batches(&one).expect("whole batches").remove(0);
        assert_eq!(
            (h.base_offset, one.len()),
            (150, h.total_len()),
            "at least one batch"
        );
        let many = seg.read(100, 10_000).expect("read");
        let got = batches(&many).expect("whole batches");
        assert_eq!(got[0].0.base_offset, 100);
        assert!(many.len() <= 10_000 && got.len() > 1);
        assert!(seg.read(200, 100).expect("read").is_empty());
        assert_eq!(seg.offset_for_timestamp(1_010, 0).expect("ts"), Some(120));
        assert_eq!(seg.offset_for_timestamp(0, 0).expect("ts"), Some(100));
        assert_eq!(seg.offset_for_timestamp(9_999, 0).expect("ts"), None);
        seg.sync().expect("sync");

        let reopened =
            Segment::open(&RealDisk, dir.path(), 100, false, Recovery::Refuse).expect("reopen");
        assert_eq!(reopened.next_offset(), 200);
        assert_eq!(reopened.index_entries().expect("entries"), entries);
        let idx = std::fs::read(dir.path().join(file_name(100, "index"))).expect("index file");
        assert_eq!(idx.len(), entries.len() * <(u32, u32)>::LEN);
        assert_eq!(
            &idx[..8],
            &[0, 0, 0, 0, 0, 0, 0, 0],
            "first entry: offset 0 at position 0"
        );
    }

    /// (base offset, last offset, max timestamp) of every batch, by walking the log.
    fn every_batch(seg: &Segment) -> Vec<(i64, i64, i64)> {
        let mut all = Vec::new();
        seg.for_each_header(&mut |h| all.push((h.base_offset, h.last_offset(), h.max_timestamp)))
            .expect("walk");
        all
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        /// Reads and timestamp lookups through the summarized indexes answer what a walk of
        /// every batch answers, with timestamps that go back as well as forward, before and
        /// after a reopen.
        #[test]
        fn lookups_agree_with_a_walk_of_every_batch(
            shapes in proptest::collection::vec((1i32..4, -50i64..100, 0usize..3000), 1..1500),
            interval in proptest::prop_oneof![proptest::strategy::Just(0u64), 1u64..8192],
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut seg =
                Segment::open(&RealDisk, dir.path(), 7, true, Recovery::Refuse).expect("open");
            seg.index_interval = interval;
            let mut ts = 1_000;
            for (count, step, len) in &shapes {
                ts += step;
                let mut b = batch(*count, ts - 5, ts, &vec![1u8; *len]);
                assign_offsets(&mut b, seg.next_offset());
                seg.append(&b, &batches(&b).expect("valid")).expect("append");
            }
            seg.sync().expect("sync");
            let all = every_batch(&seg);
            let (min_ts, max_ts) = all.iter().fold((i64::MAX, i64::MIN), |(lo, hi), b| {
                (lo.min(b.2), hi.max(b.2))
            });
            for reopen in [false, true] {
                if reopen {
                    // Reopened, the indexes are rebuilt at the default interval.
                    drop(seg);
                    seg = Segment::open(&RealDisk, dir.path(), 7, true, Recovery::Refuse)
                        .expect("reopen");
                }
                let s = &seg;
                for probe in 0..60i64 {
                    let offset = 7 + probe * (s.next_offset() - 7) / 59;
                    let want = all.iter().find(|b| b.1 >= offset).map(|b| b.0);
                    let got = s.read(offset, 1).expect("read");
                    let got = batches(&got).expect("valid").first().map(|(h, _)| h.base_offset);
                    proptest::prop_assert_eq!(got, want, "read at {}", offset);
                }
                // Targets spread over the range, and on and beside every time-index entry.
                let entries = s.time_entries().expect("time entries");
                let spread = (0..60).map(|p| min_ts - 1 + p * (max_ts - min_ts + 2) / 59);
                let near = entries.iter().step_by(entries.len() / 100 + 1).flat_map(|e| {
                    [e.0 - 1, e.0, e.0 + 1]
                });
                for (probe, target) in spread.chain(near).enumerate() {
                    let from = 7 + (probe as i64 % 5) * (s.next_offset() - 7) / 4;
                    let want = all
                        .iter()
                        .find(|b| b.2 >= target && b.1 >= from)
                        .map(|b| b.0);
                    let got = s.offset_for_timestamp(target, from).expect("ts");
                    proptest::prop_assert_eq!(got, want, "timestamp {} from {}", target, from);
                }
            }
        }
    }

    /// Appends batches of `payload` until `seg.size()` leaves room for one more in its last
    /// 4 KiB page, already allocated (so a full disk fails only writes that need a new page).
    fn align_for(seg: &mut Segment, payload: &[u8], ts: i64) -> usize {
        let len = batch(1, ts, ts, payload).len() as u64;
        while seg.size().is_multiple_of(4096) || seg.size() % 4096 + len > 4096 {
            let mut b = batch(1, ts, ts, payload);
            assign_offsets(&mut b, seg.next_offset());
            seg.append(&b, &batches(&b).expect("valid"))
                .expect("append");
        }
        len as usize
    }

    fn try_append(seg: &mut Segment, ts: i64, payload: &[u8]) -> Result<()> {
        let mut b = batch(1, ts, ts, payload);
        assign_offsets(&mut b, seg.next_offset());
        seg.append(&b, &batches(&b).expect("valid"))
    }

    fn file_len(dir: &Path, ext: &str) -> u64 {
        std::fs::metadata(dir.join(file_name(0, ext)))
            .expect("meta")
            .len()
    }

    #[test]
    fn a_failed_index_write_undoes_the_log_write() {
        let Some(disk) = crate::storage::small_disk::SmallDisk::mount(256 * 1024) else {
            return;
        };
        let dir = disk.path().join("p");
        std::fs::create_dir(&dir).expect("dir");
        let mut seg = Segment::open(&RealDisk, &dir, 0, true, Recovery::Refuse).expect("open");
        seg.index_interval = 0; // an entry per batch
        // 341 time-index entries fill its first page but 4 bytes; the next one needs a page.
        for ts in 0..341 {
            try_append(&mut seg, ts, b"r").expect("append");
        }
        assert_eq!(file_len(&dir, "timeindex"), 341 * <(i64, u32)>::LEN as u64);
        align_for(&mut seg, b"r", 340);
        let (size, next) = (seg.size(), seg.next_offset());
        let filler = disk.fill();

        // The log write fits its page; the time-index write does not.
        let err = try_append(&mut seg, 341, b"r").expect_err("disk full");
        assert!(matches!(err, Error::WriteRolledBack { .. }), "{err}");
        assert_eq!(
            (seg.size(), seg.next_offset(), seg.max_timestamp()),
            (size, next, 340),
            "memory as before"
        );
        assert_eq!(file_len(&dir, "log"), size, "the log write is undone");
        assert_eq!(file_len(&dir, "timeindex"), 341 * <(i64, u32)>::LEN as u64);

        std::fs::remove_file(filler).expect("free");
        try_append(&mut seg, 341, b"r").expect("append after freeing space");
        assert_eq!(seg.next_offset(), next + 1);
        seg.sync().expect("sync");
        let reopened = Segment::open(&RealDisk, &dir, 0, true, Recovery::Refuse).expect("reopen");
        assert_eq!(
            (reopened.size(), reopened.next_offset()),
            (seg.size(), seg.next_offset())
        );
        assert_eq!(
            reopened.offset_for_timestamp(341, 0).expect("ts"),
            Some(next)
        );
    }

    #[test]
    fn a_log_write_on_a_full_disk_is_undone_and_can_be_retried() {
        let Some(disk) = crate::storage::small_disk::SmallDisk::mount(64 * 1024) else {
            return;
        };
        let dir = disk.path().join("p");
        std::fs::create_dir(&dir).expect("dir");
        let mut seg = Segment::open(&RealDisk, &dir, 0, true, Recovery::Refuse).expect("open");
        try_append(&mut seg, 0, b"first").expect("append");
        let (size, next) = (seg.size(), seg.next_offset());
        let filler = disk.fill();
        // Larger than a page: part of it lands in the log's last page before ENOSPC.
        let big = [7u8; 6000];
        let err = try_append(&mut seg, 1, &big).expect_err("disk full");
        assert!(matches!(err, Error::WriteRolledBack { .. }), "{err}");
        assert_eq!((seg.size(), seg.next_offset()), (size, next));
        assert_eq!(file_len(&dir, "log"), size, "the partial write is cut off");

        std::fs::remove_file(filler).expect("free");
        try_append(&mut seg, 1, &big).expect("retry");
        let read = seg.read(next, 10_000).expect("read");
        assert_eq!(batches(&read).expect("valid")[0].0.base_offset, next);
        drop(seg);
        let reopened = Segment::open(&RealDisk, &dir, 0, true, Recovery::Refuse).expect("reopen");
        assert_eq!(reopened.next_offset(), next + 1);
    }

    #[test]
    fn recovery_truncates_a_torn_tail_and_reports_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join(file_name(0, "log"));
        let mut seg =
            Segment::open(&RealDisk, dir.path(), 0, true, Recovery::Refuse).expect("open");
        append_n(&mut seg, 10, b"record");
        let good_len = seg.size();
        assert_eq!(seg.truncated(), None);
        drop(seg);
        let whole = batch(2, 0, 0, b"the last write");
        for (case, tail) in [
            ("garbage", vec![0xAB; 40]),
            ("zeros the kernel never filled", vec![0; 300]),
            (
                "the first half of a batch",
                whole[..whole.len() / 2].to_vec(),
            ),
        ] {
            let mut bytes = std::fs::read(&log).expect("log");
            bytes.extend_from_slice(&tail);
            std::fs::write(&log, &bytes).expect("write");
            let seg = Segment::open(&RealDisk, dir.path(), 0, true, Recovery::Refuse).expect(case);
            assert_eq!((seg.size(), seg.next_offset()), (good_len, 20), "{case}");
            assert_eq!(
                seg.truncated(),
                Some(Truncated {
                    reason: "torn_tail",
                    bytes: tail.len() as u64
                }),
                "{case}"
            );
            assert_eq!(std::fs::metadata(&log).expect("meta").len(), good_len);
        }
    }

    #[test]
    fn a_zeroed_hole_before_a_later_write_is_a_lost_unsynced_write_and_is_truncated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join(file_name(0, "log"));
        let mut seg =
            Segment::open(&RealDisk, dir.path(), 0, true, Recovery::Refuse).expect("open");
        append_n(&mut seg, 10, b"record");
        drop(seg);
        // Power loss: batches 7 and 8 were never written back (their pages read as zeros),
        // batch 9 was.
        let mut bytes = std::fs::read(&log).expect("log");
        let per_batch = bytes.len() / 10;
        bytes[per_batch * 7..per_batch * 9].fill(0);
        std::fs::write(&log, &bytes).expect("write");
        let seg = Segment::open(&RealDisk, dir.path(), 0, true, Recovery::Refuse).expect("opens");
        assert_eq!(seg.size(), (per_batch * 7) as u64);
        assert_eq!(seg.next_offset(), 14);
        assert_eq!(
            seg.truncated(),
            Some(Truncated {
                reason: "unsynced_hole",
                bytes: (per_batch * 3) as u64
            })
        );
        // One non-zero byte in the hole makes it corruption again.
        let mut bytes = std::fs::read(&log).expect("log");
        let kept = bytes.len();
        bytes.resize(per_batch * 9, 0);
        bytes[kept + 5] = 1;
        let mut later = batch(2, 2_000, 2_000, b"record");
        assign_offsets(&mut later, 18);
        bytes.extend_from_slice(&later);
        std::fs::write(&log, &bytes).expect("write");
        let err = Segment::open(&RealDisk, dir.path(), 0, true, Recovery::Refuse)
            .expect_err("not all zeros");
        assert!(err.to_string().contains("a valid batch follows"), "{err}");
    }

    #[test]
    fn recovery_refuses_damage_that_valid_batches_follow() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join(file_name(0, "log"));
        let mut seg =
            Segment::open(&RealDisk, dir.path(), 0, true, Recovery::Refuse).expect("open");
        append_n(&mut seg, 10, b"record");
        drop(seg);
        // A flipped byte inside batch 7 of 10: batches 8 and 9 are intact after it.
        let mut bytes = std::fs::read(&log).expect("log");
        let per_batch = bytes.len() / 10;
        bytes[per_batch * 7 + 40] ^= 0x55; // inside the CRC-covered part of batch 7
        std::fs::write(&log, &bytes).expect("write");
        let err =
            Segment::open(&RealDisk, dir.path(), 0, true, Recovery::Refuse).expect_err("corrupt");
        let text = err.to_string();
        for want in [
            log.display().to_string(),
            format!("byte {}", per_batch * 7),
            format!("a valid batch follows at byte {}", per_batch * 8),
            "--truncate-corrupt-segments".to_owned(),
        ] {
            assert!(text.contains(&want), "missing {want:?} in {text}");
        }
        assert_eq!(
            std::fs::read(&log).expect("log"),
            bytes,
            "the file is left as found"
        );

        // Allowed explicitly: recovery keeps batches 0..=6 and says what it dropped.
        let mut seg =
            Segment::open(&RealDisk, dir.path(), 0, true, Recovery::Truncate).expect("recover");
        assert_eq!(seg.next_offset(), 14);
        assert_eq!(seg.size(), (per_batch * 7) as u64);
        assert_eq!(
            seg.truncated(),
            Some(Truncated {
                reason: "corrupt",
                bytes: (per_batch * 3) as u64
            })
        );
        // The log accepts new writes after recovery.
        append_n(&mut seg, 1, b"after");
        assert_eq!(seg.next_offset(), 16);
        let tail = seg.read(14, 1_000).expect("read");
        assert_eq!(batches(&tail).expect("valid")[0].0.base_offset, 14);
    }

    #[test]
    fn damage_in_a_sealed_segment_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join(file_name(0, "log"));
        let mut seg =
            Segment::open(&RealDisk, dir.path(), 0, true, Recovery::Refuse).expect("open");
        append_n(&mut seg, 3, b"record");
        drop(seg);
        let mut bytes = std::fs::read(&log).expect("log");
        bytes.extend_from_slice(&[0xAB; 40]);
        std::fs::write(&log, &bytes).expect("write");
        let err =
            Segment::open(&RealDisk, dir.path(), 0, false, Recovery::Refuse).expect_err("sealed");
        assert!(
            err.to_string()
                .contains("later segments hold valid records"),
            "{err}"
        );
        let seg =
            Segment::open(&RealDisk, dir.path(), 0, false, Recovery::Truncate).expect("allowed");
        assert_eq!(seg.next_offset(), 6);
    }
}
