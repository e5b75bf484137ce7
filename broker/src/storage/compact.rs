//! Log compaction (`cleanup.policy=compact`), as Kafka's log cleaner does it: the closed
//! segments keep, for every key, only its latest record; tombstones (a null value) go once
//! they are older than `delete.retention.ms`; records without a key go (a compacted topic
//! refuses them at produce). Offsets never change: a batch keeps its base offset and its
//! last offset (so the producer state rebuilt from headers stays right) with fewer records in
//! it, a batch left with none is dropped — unless it is the last one of its idempotent
//! producer, which stays as an empty batch as in Kafka — and consumers skip the gaps.
//!
//! Cleaning rewrites consecutive closed segments into one (up to `segment.bytes`), named by
//! the first one's base offset: the cleaned batches go to `<base>.log.cleaned`, which is
//! fsynced and renamed over `<base>.log`; then the other segments of the group are deleted
//! and the directory is fsynced. A crash leaves either the old files (and a `.cleaned` file,
//! removed at the next start) or the new segment plus old segments it now covers (their
//! offsets are below its end; removed at the next start): never a record lost or doubled.
//!
//! The active segment is never cleaned, nor a closed one newer than `min.compaction.lag.ms`;
//! the latest offset of each key is taken from the segments being cleaned (a newer record
//! in the active segment supersedes older ones at the next cleaning, as in Kafka).

use std::collections::HashMap;
use std::path::Path;

use super::batch::{BATCH_HEADER_LEN, BatchHeader};
use super::disk::{Disk, DiskFile};
use super::recompress::{assemble, compress, decompressed_records};
use super::records::{Deltas, RecordView, records};
use crate::error::{Error, Result, io_at};

/// The extension of a segment being written by the cleaner.
pub const CLEANED: &str = "cleaned";

/// Header fields the cleaner rewrites (big-endian, at these byte positions).
const MAX_TIMESTAMP: std::ops::Range<usize> = 35..43;
const RECORDS_COUNT: std::ops::Range<usize> = 57..61;
/// The timestamp-type bit of the attributes: set for LogAppendTime.
const LOG_APPEND_TIME: i16 = 0x08;

/// When a cleaning may remove what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cleaning {
    /// Only closed segments whose newest record is at most this (ms) are cleaned:
    /// now − `min.compaction.lag.ms`.
    pub cleanable_before: i64,
    /// Tombstones older than this (ms) are removed: now − `delete.retention.ms`.
    pub tombstones_before: i64,
    /// The most bytes one cleaned segment holds (`segment.bytes`).
    pub segment_bytes: u64,
}

/// What one cleaning did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cleaned {
    /// Segments cleaned.
    pub segments_before: usize,
    /// Segments they became.
    pub segments_after: usize,
    /// Bytes of the segments cleaned.
    pub bytes_before: u64,
    /// Bytes of the segments they became.
    pub bytes_after: u64,
    /// Records removed.
    pub records_removed: u64,
    /// The offset after the last segment cleaned.
    pub cleaned_through: i64,
}

/// A batch after cleaning.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Batch {
    /// Every record stays: the bytes as they were.
    Unchanged,
    /// Some records stay (or none, in a batch kept for its producer): the new bytes.
    Rewritten(Vec<u8>),
    /// No record stays.
    Removed,
}

/// A record's key, offset, timestamp and whether it is a tombstone.
pub(crate) struct Record<'a> {
    pub key: Option<&'a [u8]>,
    pub offset: i64,
    pub timestamp: i64,
    pub tombstone: bool,
}

/// Calls `f` with every record of `batch` (a valid, possibly already cleaned, batch).
///
/// # Errors
/// A batch whose records do not decode.
pub(crate) fn for_each_record(
    batch: &[u8],
    header: &BatchHeader,
    mut f: impl FnMut(Record<'_>),
) -> std::result::Result<(), String> {
    if header.is_control() {
        return Ok(());
    }
    let section = decompressed_records(header.compression(), &batch[BATCH_HEADER_LEN..])?;
    for view in records(&section, header.records_count, Deltas::Increasing)? {
        f(record(&section, header, &view));
    }
    Ok(())
}

fn record<'a>(section: &'a [u8], header: &BatchHeader, view: &RecordView) -> Record<'a> {
    let timestamp = if header.attributes & LOG_APPEND_TIME != 0 {
        header.max_timestamp
    } else {
        header.base_timestamp.saturating_add(view.timestamp_delta)
    };
    Record {
        key: view.key.clone().map(|k| &section[k]),
        offset: header.base_offset + i64::from(view.offset_delta),
        timestamp,
        tombstone: view.null_value,
    }
}

/// `batch` with only the records `keep` accepts; an empty batch stays (as `Rewritten`) when
/// `keep_empty`. Records keep their bytes (offset and timestamp deltas included); the header
/// keeps every field but the record count, the max timestamp (of the records kept, unless
/// the batch is in LogAppendTime), the length and the CRC. The records are compressed again
/// with the batch's codec.
///
/// # Errors
/// A batch whose records do not decode, or that does not compress again.
pub(crate) fn clean_batch(
    batch: &[u8],
    header: &BatchHeader,
    keep_empty: bool,
    mut keep: impl FnMut(&Record<'_>) -> bool,
) -> std::result::Result<Batch, String> {
    if header.is_control() {
        return Ok(Batch::Unchanged);
    }
    let section = decompressed_records(header.compression(), &batch[BATCH_HEADER_LEN..])?;
    let views = records(&section, header.records_count, Deltas::Increasing)?;
    let kept: Vec<&RecordView> = views
        .iter()
        .filter(|v| keep(&record(&section, header, v)))
        .collect();
    if kept.len() == views.len() {
        return Ok(Batch::Unchanged);
    }
    if kept.is_empty() && !keep_empty {
        return Ok(Batch::Removed);
    }
    let mut plain = Vec::with_capacity(section.len());
    for v in &kept {
        plain.extend_from_slice(&section[v.bytes.clone()]);
    }
    let mut head = batch[..BATCH_HEADER_LEN].to_vec();
    let count = i32::try_from(kept.len()).unwrap_or(i32::MAX);
    head[RECORDS_COUNT].copy_from_slice(&count.to_be_bytes());
    if header.attributes & LOG_APPEND_TIME == 0
        && let Some(max) = kept.iter().map(|v| v.timestamp_delta).max()
    {
        let max = header.base_timestamp.saturating_add(max);
        head[MAX_TIMESTAMP].copy_from_slice(&max.to_be_bytes());
    }
    let codec = header.compression();
    let body = compress(codec, &plain)?;
    assemble(&head, codec, &body).map(Batch::Rewritten)
}

/// The latest offset of every key in `batches` (each a header and its bytes, in log order).
pub(crate) struct Latest(HashMap<Vec<u8>, i64>);

impl Latest {
    pub(crate) fn new() -> Self {
        Latest(HashMap::new())
    }

    /// Notes the records of one batch.
    ///
    /// # Errors
    /// A batch whose records do not decode.
    pub(crate) fn note(
        &mut self,
        batch: &[u8],
        header: &BatchHeader,
    ) -> std::result::Result<(), String> {
        for_each_record(batch, header, |r| {
            if let Some(key) = r.key {
                match self.0.get_mut(key) {
                    Some(offset) => *offset = r.offset,
                    None => {
                        self.0.insert(key.to_vec(), r.offset);
                    }
                }
            }
        })
    }

    /// Whether `record` stays after cleaning under `cleaning`.
    pub(crate) fn keeps(&self, record: &Record<'_>, cleaning: &Cleaning) -> bool {
        let Some(key) = record.key else {
            return false;
        };
        self.0.get(key) == Some(&record.offset)
            && !(record.tombstone && record.timestamp < cleaning.tombstones_before)
    }
}

/// A cleaned segment being written: `<base>.log.cleaned` in `dir`.
pub(crate) struct Output<D: Disk> {
    pub base_offset: i64,
    pub path: std::path::PathBuf,
    file: D::File,
    pub size: u64,
}

impl<D: Disk> Output<D> {
    /// Creates (or empties) the file of a cleaned segment starting at `base_offset`.
    ///
    /// # Errors
    /// I/O errors.
    pub(crate) fn create(disk: &D, dir: &Path, base_offset: i64) -> Result<Self> {
        let path = dir.join(super::segment::file_name(
            base_offset,
            &format!("log.{CLEANED}"),
        ));
        let file = disk.open(&path).map_err(io_at(&path))?;
        file.set_len(0).map_err(io_at(&path))?;
        Ok(Output {
            base_offset,
            path,
            file,
            size: 0,
        })
    }

    /// Appends one batch.
    ///
    /// # Errors
    /// I/O errors.
    pub(crate) fn write(&mut self, batch: &[u8]) -> Result<()> {
        self.file
            .write_all_at(batch, self.size)
            .map_err(io_at(&self.path))?;
        self.size += batch.len() as u64;
        Ok(())
    }

    /// Fsyncs the file and renames it over `<base>.log`.
    ///
    /// # Errors
    /// I/O errors.
    pub(crate) fn install(self, disk: &D, dir: &Path) -> Result<()> {
        self.file.sync_data().map_err(io_at(&self.path))?;
        let log = dir.join(super::segment::file_name(self.base_offset, "log"));
        disk.rename(&self.path, &log).map_err(io_at(&log))
    }
}

/// Removes the cleaner's unfinished files in `dir` (a crash before their rename).
///
/// # Errors
/// I/O errors.
pub(crate) fn remove_unfinished<D: Disk>(disk: &D, dir: &Path) -> Result<usize> {
    let mut removed = 0;
    for name in disk.list(dir).map_err(io_at(dir))? {
        if name.ends_with(&format!(".log.{CLEANED}")) {
            let path = dir.join(&name);
            disk.remove(&path).map_err(io_at(&path))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// An error of the cleaner about one batch, located in its segment.
pub(crate) fn batch_error(path: &Path, offset: i64, problem: String) -> Error {
    Error::Damaged {
        path: path.to_owned(),
        problem: format!("the batch at offset {offset} cannot be compacted: {problem}"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;
    use kafka_protocol::records::{self, RecordBatchDecoder};

    use super::*;
    use crate::storage::batch::batches;
    use crate::storage::partition::{LogConfig, PartitionLog};
    use crate::storage::recovery::Recovery;

    const T0: i64 = 1_700_000_000_000;

    /// One batch of `(key, value)` records (a `None` value is a tombstone), timestamps
    /// `T0 + i`, from producer `producer` (-1: none) at sequence `sequence`.
    fn batch(
        pairs: &[(Option<&str>, Option<&str>)],
        codec: records::Compression,
        producer: i64,
        sequence: i32,
    ) -> Vec<u8> {
        let records: Vec<records::Record> = pairs
            .iter()
            .enumerate()
            .map(|(i, (k, v))| records::Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: producer,
                producer_epoch: if producer >= 0 { 0 } else { -1 },
                timestamp_type: records::TimestampType::Creation,
                offset: i as i64,
                sequence: if producer >= 0 {
                    sequence + i as i32
                } else {
                    -1
                },
                timestamp: T0 + i as i64,
                key: k.map(|k| Bytes::from(k.to_owned())),
                value: v.map(|v| Bytes::from(v.to_owned())),
                headers: Default::default(),
            })
            .collect();
        crate::storage::batch::testing::encoded(&records, codec)
    }

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 400,
            segment_ms: i64::MAX,
            retention_ms: None,
            retention_bytes: None,
        }
    }

    fn everything() -> Cleaning {
        Cleaning {
            cleanable_before: i64::MAX,
            tombstones_before: 0,
            segment_bytes: 4096,
        }
    }

    /// Every record readable from the log start: `(offset, key, value)`, in log order.
    fn read_all(log: &PartitionLog) -> Vec<(i64, Option<String>, Option<String>)> {
        let text = |b: Option<Bytes>| b.map(|b| String::from_utf8_lossy(&b).into_owned());
        let mut out = Vec::new();
        let mut offset = log.start_offset();
        while offset < log.next_offset() {
            let bytes = log.read(offset, 1 << 20).expect("read");
            if bytes.is_empty() {
                break;
            }
            let mut buf = Bytes::from(bytes);
            let mut last = offset - 1;
            while !buf.is_empty() {
                let set = RecordBatchDecoder::decode(&mut buf).expect("decodes");
                for r in set.records {
                    out.push((r.offset, text(r.key), text(r.value)));
                    last = last.max(r.offset);
                }
            }
            // Past the batches read (an empty batch moves on by its header).
            let found = {
                let bytes = log.read(offset, 1 << 20).expect("read");
                let mut end = offset;
                let mut at = 0;
                while let Ok(h) = BatchHeader::parse(&bytes[at..]) {
                    end = h.last_offset() + 1;
                    at += h.total_len();
                    if at >= bytes.len() {
                        break;
                    }
                }
                end
            };
            offset = found.max(last + 1);
        }
        out
    }

    /// The key → value map a consumer of the whole log ends with.
    fn state(records: &[(i64, Option<String>, Option<String>)]) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (_, k, v) in records {
            match (k, v) {
                (Some(k), Some(v)) => {
                    out.insert(k.clone(), v.clone());
                }
                (Some(k), None) => {
                    out.remove(k);
                }
                _ => {}
            }
        }
        out
    }

    /// A log of single-record and mixed batches over five keys, rolled into several
    /// segments, with a tombstone for `k1` and a keyless record; the last batch is active.
    fn filled(dir: &Path, codec: records::Compression) -> PartitionLog {
        let mut log = PartitionLog::open(dir, config(), Recovery::Refuse).expect("open");
        for i in 0..40 {
            let key = format!("k{}", i % 5);
            let value = format!("v{i}");
            let mut b = batch(&[(Some(&key), Some(&value))], codec, -1, -1);
            log.append(&mut b, T0).expect("append");
        }
        let mut mixed = batch(
            &[
                (Some("k0"), Some("m0")),
                (None, Some("keyless")),
                (Some("k1"), None),
                (Some("k2"), Some("m2")),
            ],
            codec,
            -1,
            -1,
        );
        log.append(&mut mixed, T0).expect("append");
        log.roll().expect("roll");
        let mut active = batch(&[(Some("k4"), Some("active"))], codec, -1, -1);
        log.append(&mut active, T0).expect("append");
        log
    }

    #[test]
    fn only_the_latest_record_of_each_key_stays_at_its_offset() {
        for codec in crate::storage::batch::testing::CODECS {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut log = filled(dir.path(), codec);
            let before = read_all(&log);
            let (end, segments) = (log.next_offset(), log.segment_count());
            let done = log
                .compact(&everything())
                .expect("compact")
                .expect("cleaned");
            let after = read_all(&log);
            assert_eq!(
                state(&after),
                state(&before),
                "{codec:?}: what a reader ends with"
            );
            let offsets: Vec<i64> = after.iter().map(|r| r.0).collect();
            assert!(
                offsets.windows(2).all(|w| w[0] < w[1]),
                "{codec:?}: {offsets:?}"
            );
            for record in &after {
                assert!(
                    before.contains(record),
                    "{codec:?}: {record:?} kept at its offset"
                );
            }
            // Per key, only the latest record stays (the tombstone too, not yet expired);
            // the keyless record goes; the active segment is untouched.
            let keys: Vec<&str> = after.iter().filter_map(|r| r.1.as_deref()).collect();
            assert_eq!(keys, ["k3", "k4", "k0", "k1", "k2", "k4"], "{codec:?}");
            assert_eq!(after.last().map(|r| r.2.as_deref()), Some(Some("active")));
            assert_eq!(log.next_offset(), end, "the log end stays");
            assert!(log.segment_count() < segments, "{codec:?}: merged");
            assert_eq!(done.records_removed, 44 - 5, "{codec:?}: {done:?}");
            assert!(done.bytes_after < done.bytes_before);
            // The same after a restart (sealed segments with gaps reopen).
            drop(log);
            let log = PartitionLog::open(dir.path(), config(), Recovery::Refuse).expect("reopen");
            assert_eq!(read_all(&log), after, "{codec:?}: after a restart");
            assert_eq!(log.next_offset(), end);
        }
    }

    #[test]
    fn expired_tombstones_go_and_a_second_cleaning_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = filled(dir.path(), records::Compression::None);
        let expire = Cleaning {
            tombstones_before: T0 + 1_000,
            ..everything()
        };
        log.compact(&expire).expect("compact");
        let after = read_all(&log);
        assert!(
            after.iter().all(|r| r.2.is_some()),
            "no tombstone left: {after:?}"
        );
        assert!(
            !after.iter().any(|r| r.1.as_deref() == Some("k1")),
            "k1 is gone"
        );
        let again = log.compact(&expire).expect("compact").expect("ran");
        assert_eq!(again.records_removed, 0);
        assert_eq!(read_all(&log), after);
    }

    #[test]
    fn segments_newer_than_the_lag_are_not_cleaned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = filled(dir.path(), records::Compression::None);
        let lagging = Cleaning {
            cleanable_before: T0 - 1,
            ..everything()
        };
        assert_eq!(log.compact(&lagging).expect("compact"), None);
    }

    #[test]
    fn a_read_inside_a_gap_gets_the_next_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = filled(dir.path(), records::Compression::None);
        log.compact(&everything()).expect("compact");
        // Offsets 0..=34 held superseded single records; 35 (k0 = v35) went too.
        let bytes = log.read(3, 1 << 20).expect("read");
        let (first, _) = batches_loose(&bytes).remove(0);
        assert!(first.base_offset > 3, "{}", first.base_offset);
    }

    /// Headers and ranges of `data`'s batches without the producer-side count check (a
    /// cleaned batch holds fewer records than its offsets span).
    fn batches_loose(data: &[u8]) -> Vec<(BatchHeader, std::ops::Range<usize>)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < data.len() {
            let h = BatchHeader::parse(&data[at..]).expect("header");
            let len = h.total_len();
            out.push((h, at..at + len));
            at += len;
        }
        out
    }

    #[test]
    fn the_last_batch_of_an_idempotent_producer_stays_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), config(), Recovery::Refuse).expect("open");
        let mut first = batch(&[(Some("a"), Some("1"))], records::Compression::None, 42, 0);
        log.append(&mut first, T0).expect("append");
        let mut second = batch(&[(Some("a"), Some("2"))], records::Compression::None, 42, 1);
        log.append(&mut second, T0).expect("append");
        let mut other = batch(
            &[(Some("a"), Some("3"))],
            records::Compression::None,
            -1,
            -1,
        );
        log.append(&mut other, T0).expect("append");
        log.roll().expect("roll");
        log.compact(&everything()).expect("compact");
        let bytes = log.read(0, 1 << 20).expect("read");
        let found = batches_loose(&bytes);
        let summary: Vec<(i64, i64, i32, i32)> = found
            .iter()
            .map(|(h, _)| {
                (
                    h.base_offset,
                    h.producer_id,
                    h.base_sequence,
                    h.records_count,
                )
            })
            .collect();
        // The first batch of producer 42 goes; its last stays, empty, with its sequence.
        assert_eq!(summary, [(1, 42, 1, 0), (2, -1, -1, 1)]);
        // The CRC of the rewritten batch holds.
        let (_, range) = &found[0];
        assert!(
            batches(&bytes[range.clone()]).is_err(),
            "no records: not a producer's batch"
        );
        let crc = crc32c::crc32c(&bytes[range.start + 21..range.end]);
        assert_eq!(crc, found[0].0.crc);
    }

    #[test]
    fn an_interrupted_cleaning_leaves_a_whole_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = filled(dir.path(), records::Compression::None);
        let expected = read_all(&log);
        let copy = tempfile::tempdir().expect("copy");
        let logs = |d: &Path| {
            let mut names: Vec<String> = std::fs::read_dir(d)
                .expect("list")
                .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
                .collect();
            names.sort();
            names
        };
        for name in logs(dir.path()) {
            std::fs::copy(dir.path().join(&name), copy.path().join(&name)).expect("copy");
        }
        log.compact(&everything()).expect("compact");
        let compacted = read_all(&log);
        drop(log);

        // A crash before the rename: the unfinished file is removed, nothing else changes.
        std::fs::write(copy.path().join(file_name_cleaned(0)), b"half a batch").expect("write");
        let log = PartitionLog::open(copy.path(), config(), Recovery::Refuse).expect("open");
        assert_eq!(read_all(&log), expected);
        assert!(!copy.path().join(file_name_cleaned(0)).exists());
        drop(log);

        // A crash after the rename, before the segments it replaced were deleted: they go.
        for name in logs(copy.path()) {
            if !name.starts_with(&super::super::segment::file_name(0, "")) {
                std::fs::copy(copy.path().join(&name), dir.path().join(&name)).expect("restore");
            }
        }
        let log = PartitionLog::open(dir.path(), config(), Recovery::Refuse).expect("open");
        assert_eq!(read_all(&log), compacted);
        assert_eq!(state(&read_all(&log)), state(&expected));
    }

    fn file_name_cleaned(base: i64) -> String {
        super::super::segment::file_name(base, &format!("log.{CLEANED}"))
    }
}
