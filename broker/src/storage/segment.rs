//! One segment of a partition: `<base>.log` with batches as received, a sparse offset index
//! (`<base>.index`: relative offset u32, position u32) and a time index (`<base>.timeindex`:
//! timestamp i64, relative offset u32), all big-endian as in Kafka.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::batch::{BATCH_HEADER_LEN, BatchHeader, batches};
use crate::error::{Result, io_at};

/// An index entry is added after at least this many log bytes since the previous one.
pub const INDEX_INTERVAL_BYTES: u64 = 4096;
const INDEX_ENTRY: usize = 8;
const TIME_ENTRY: usize = 12;

/// File name of a segment file: the base offset, zero-padded to 20 digits, and an extension.
pub fn file_name(base_offset: i64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

/// An open segment.
#[derive(Debug)]
pub struct Segment {
    base_offset: i64,
    path: PathBuf,
    log: File,
    index: File,
    time_index: File,
    size: u64,
    next_offset: i64,
    max_timestamp: i64,
    first_timestamp: Option<i64>,
    offsets: Vec<(u32, u32)>,
    times: Vec<(i64, u32)>,
    bytes_since_index: u64,
}

fn open_rw(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_at(path))
}

impl Segment {
    /// Opens (or creates) the segment starting at `base_offset` in `dir`, scanning the log to
    /// rebuild both indexes. With `verify`, every batch's CRC is checked and the log is
    /// truncated at the first invalid or torn batch (crash recovery of the active segment).
    ///
    /// # Errors
    /// I/O errors, with the file's path.
    pub fn open(dir: &Path, base_offset: i64, verify: bool) -> Result<Self> {
        let path = dir.join(file_name(base_offset, "log"));
        let log = open_rw(&path)?;
        let index = open_rw(&dir.join(file_name(base_offset, "index")))?;
        let time_index = open_rw(&dir.join(file_name(base_offset, "timeindex")))?;
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
            offsets: Vec::new(),
            times: Vec::new(),
            bytes_since_index: 0,
        };
        seg.scan(verify)?;
        Ok(seg)
    }

    /// Walks the log from the start, rebuilding indexes; truncates at the first bad batch.
    fn scan(&mut self, verify: bool) -> Result<()> {
        let len = self.log.metadata().map_err(io_at(&self.path))?.len();
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
            if total < BATCH_HEADER_LEN as u64
                || pos + total > len
                || header.base_offset != self.next_offset
            {
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
        if pos < len {
            // A torn or corrupt tail: everything from here on was never acknowledged
            // under `always`/`interval` flushing, so dropping it loses nothing promised.
            self.log.set_len(pos).map_err(io_at(&self.path))?;
            self.log.sync_all().map_err(io_at(&self.path))?;
        }
        self.size = pos;
        self.write_indexes()
    }

    fn note_batch(&mut self, header: &BatchHeader, position: u64) {
        let rel = u32::try_from(header.base_offset - self.base_offset).unwrap_or(u32::MAX);
        let pos = u32::try_from(position).unwrap_or(u32::MAX);
        if self.offsets.is_empty() || self.bytes_since_index >= INDEX_INTERVAL_BYTES {
            self.offsets.push((rel, pos));
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += header.total_len() as u64;
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.times.push((header.max_timestamp, rel));
        }
        self.first_timestamp.get_or_insert(header.max_timestamp);
        self.next_offset = header.last_offset() + 1;
    }

    fn write_indexes(&mut self) -> Result<()> {
        let mut idx = Vec::with_capacity(self.offsets.len() * INDEX_ENTRY);
        for (rel, pos) in &self.offsets {
            idx.extend_from_slice(&rel.to_be_bytes());
            idx.extend_from_slice(&pos.to_be_bytes());
        }
        let mut tidx = Vec::with_capacity(self.times.len() * TIME_ENTRY);
        for (ts, rel) in &self.times {
            tidx.extend_from_slice(&ts.to_be_bytes());
            tidx.extend_from_slice(&rel.to_be_bytes());
        }
        for (file, bytes) in [(&self.index, idx), (&self.time_index, tidx)] {
            file.set_len(0).map_err(io_at(&self.path))?;
            file.write_all_at(&bytes, 0).map_err(io_at(&self.path))?;
        }
        Ok(())
    }

    /// Appends one validated batch whose base offset is already assigned.
    ///
    /// # Errors
    /// I/O errors; on error the segment's in-memory state is unchanged.
    pub fn append(&mut self, batch: &[u8], header: &BatchHeader) -> Result<()> {
        let pos = self.size;
        self.log
            .write_all_at(batch, pos)
            .map_err(io_at(&self.path))?;
        let (offsets_before, times_before) = (self.offsets.len(), self.times.len());
        self.note_batch(header, pos);
        self.size += batch.len() as u64;
        if self.offsets.len() > offsets_before {
            let (rel, p) = self.offsets[offsets_before];
            let mut e = [0u8; INDEX_ENTRY];
            e[..4].copy_from_slice(&rel.to_be_bytes());
            e[4..].copy_from_slice(&p.to_be_bytes());
            self.index
                .write_all_at(&e, (offsets_before * INDEX_ENTRY) as u64)
                .map_err(io_at(&self.path))?;
        }
        if self.times.len() > times_before {
            let (ts, rel) = self.times[times_before];
            let mut e = [0u8; TIME_ENTRY];
            e[..8].copy_from_slice(&ts.to_be_bytes());
            e[8..].copy_from_slice(&rel.to_be_bytes());
            self.time_index
                .write_all_at(&e, (times_before * TIME_ENTRY) as u64)
                .map_err(io_at(&self.path))?;
        }
        Ok(())
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
        self.walk(self.position_at_or_before(rel), |pos, header| {
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
    fn position_at_or_before(&self, rel: u32) -> u64 {
        match self.offsets.partition_point(|(r, _)| *r <= rel) {
            0 => 0,
            i => u64::from(self.offsets[i - 1].1),
        }
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
        let i = self.times.partition_point(|(ts, _)| *ts < timestamp);
        let Some(&(_, rel)) = self.times.get(i) else {
            return Ok(None);
        };
        let mut found = None;
        self.walk(self.position_at_or_before(rel), |_, header| {
            if header.max_timestamp >= timestamp && header.last_offset() >= from {
                found = Some(header.base_offset);
            }
            found.is_none()
        })?;
        Ok(found)
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
    pub fn log_handle(&self) -> Result<File> {
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
    pub fn delete(self, dir: &Path) -> Result<()> {
        for ext in ["log", "index", "timeindex"] {
            let p = dir.join(file_name(self.base_offset, ext));
            std::fs::remove_file(&p).map_err(io_at(&p))?;
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
    /// Index entries (relative offset, position), for tests and tools.
    pub fn index_entries(&self) -> &[(u32, u32)] {
        &self.offsets
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
            let (h, _) = batches(&b).expect("valid").remove(0);
            seg.append(&b, &h).expect("append");
        }
    }

    #[test]
    fn append_read_and_indexes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = Segment::open(dir.path(), 100, true).expect("open");
        append_n(&mut seg, 50, &[7u8; 300]);
        assert_eq!(seg.next_offset(), 200);
        assert!(seg.index_entries().len() > 3, "sparse index every 4 KiB");
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

        let reopened = Segment::open(dir.path(), 100, false).expect("reopen");
        assert_eq!(reopened.next_offset(), 200);
        assert_eq!(reopened.index_entries(), seg.index_entries());
        let idx = std::fs::read(dir.path().join(file_name(100, "index"))).expect("index file");
        assert_eq!(idx.len(), seg.index_entries().len() * INDEX_ENTRY);
        assert_eq!(
            &idx[..8],
            &[0, 0, 0, 0, 0, 0, 0, 0],
            "first entry: offset 0 at position 0"
        );
    }

    #[test]
    fn recovery_truncates_torn_and_corrupt_tails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join(file_name(0, "log"));
        let mut seg = Segment::open(dir.path(), 0, true).expect("open");
        append_n(&mut seg, 10, b"record");
        let good_len = seg.size();
        drop(seg);

        // A torn write: half a batch of garbage after the last good one.
        let mut bytes = std::fs::read(&log).expect("log");
        bytes.extend_from_slice(&[0xAB; 40]);
        std::fs::write(&log, &bytes).expect("write");
        let seg = Segment::open(dir.path(), 0, true).expect("recover");
        assert_eq!((seg.size(), seg.next_offset()), (good_len, 20));
        assert_eq!(std::fs::metadata(&log).expect("meta").len(), good_len);
        drop(seg);

        // A flipped byte inside batch 7: recovery keeps batches 0..=6.
        let mut bytes = std::fs::read(&log).expect("log");
        let per_batch = bytes.len() / 10;
        bytes[per_batch * 7 + 40] ^= 0x55; // inside the CRC-covered part of batch 7
        std::fs::write(&log, &bytes).expect("write");
        let mut seg = Segment::open(dir.path(), 0, true).expect("recover");
        assert_eq!(seg.next_offset(), 14);
        assert_eq!(seg.size(), (per_batch * 7) as u64);
        // The log accepts new writes after recovery.
        append_n(&mut seg, 1, b"after");
        assert_eq!(seg.next_offset(), 16);
        let tail = seg.read(14, 1_000).expect("read");
        assert_eq!(batches(&tail).expect("valid")[0].0.base_offset, 14);
    }
}
