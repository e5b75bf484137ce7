//! Record-level timestamp lookups inside one stored batch, for ListOffsets.
//!
//! The log's time index finds the *batch*; a batch can hold many records spread over time, so
//! the answer Kafka gives — the first record whose timestamp is at or after the target, or the
//! record with the largest timestamp (KIP-734) — needs the batch's records decoded (and
//! decompressed). Pure functions of the batch bytes.

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

use crate::storage::BatchHeader;

/// Attributes bit 3: the batch's timestamps are the broker's append time, carried in
/// `max_timestamp` (the records' own timestamps are ignored, as in Kafka).
const LOG_APPEND_TIME: i16 = 0x08;

/// `(offset, timestamp)` of each record in the batch at the start of `batch`.
///
/// # Errors
/// A message when the batch cannot be decoded (damaged, or an unknown codec).
pub fn record_timestamps(batch: &[u8]) -> Result<Vec<(i64, i64)>, String> {
    let header = BatchHeader::parse(batch).map_err(|e| e.to_string())?;
    let len = header.total_len().min(batch.len());
    let mut buf = Bytes::copy_from_slice(&batch[..len]);
    let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| e.to_string())?;
    let append_time = header.attributes & LOG_APPEND_TIME != 0;
    Ok(set
        .records
        .iter()
        .map(|r| {
            let ts = if append_time {
                header.max_timestamp
            } else {
                r.timestamp
            };
            (r.offset, ts)
        })
        .collect())
}

/// The first record (by offset) whose timestamp is at or after `target`.
pub fn first_at_or_after(records: &[(i64, i64)], target: i64) -> Option<(i64, i64)> {
    records.iter().copied().find(|(_, ts)| *ts >= target)
}

/// The record with the largest timestamp; the earliest such record on ties.
pub fn latest_timestamp(records: &[(i64, i64)]) -> Option<(i64, i64)> {
    records
        .iter()
        .copied()
        .fold(None, |best: Option<(i64, i64)>, r| match best {
            Some(b) if b.1 >= r.1 => Some(b),
            _ => Some(r),
        })
}

/// The batch-level answer, for a batch that cannot be decoded: its first offset and max
/// timestamp.
pub fn batch_answer(batch: &[u8]) -> Option<(i64, i64)> {
    BatchHeader::parse(batch)
        .ok()
        .map(|h| (h.base_offset, h.max_timestamp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use indexmap::IndexMap;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    fn batch(base_offset: i64, timestamps: &[i64], compression: Compression) -> Vec<u8> {
        let records: Vec<Record> = timestamps
            .iter()
            .enumerate()
            .map(|(i, ts)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: base_offset + i as i64,
                // The encoder starts a new batch where `offset - sequence` changes.
                sequence: i as i32,
                timestamp: *ts,
                key: None,
                value: Some(Bytes::from(vec![b'x'; 50])),
                headers: IndexMap::new(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .expect("encode");
        buf.to_vec()
    }

    #[test]
    fn finds_the_record_inside_the_batch_for_every_codec() {
        let times: Vec<i64> = (0..10).map(|i| 1_000_000 + i * 1000).collect();
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let records = record_timestamps(&batch(100, &times, codec)).expect("decodes");
            assert_eq!(records.len(), 10, "{codec:?}");
            // Target between the 3rd and 4th record: the 4th (offset 103).
            assert_eq!(
                first_at_or_after(&records, 1_002_500),
                Some((103, 1_003_000)),
                "{codec:?}"
            );
            assert_eq!(
                first_at_or_after(&records, 1_003_000),
                Some((103, 1_003_000))
            );
            assert_eq!(first_at_or_after(&records, 0), Some((100, 1_000_000)));
            assert_eq!(first_at_or_after(&records, 2_000_000), None);
        }
    }

    #[test]
    fn largest_timestamp_prefers_the_earliest_record_on_ties() {
        let records =
            record_timestamps(&batch(7, &[5, 9, 3, 9, 1], Compression::None)).expect("decodes");
        assert_eq!(latest_timestamp(&records), Some((8, 9)));
        assert_eq!(latest_timestamp(&[]), None);
    }

    #[test]
    fn log_append_time_batches_use_the_batch_timestamp() {
        let mut b = batch(0, &[5, 6, 7], Compression::None);
        // Set the timestamp-type bit and the max timestamp, then fix the CRC.
        let attrs = i16::from_be_bytes([b[21], b[22]]) | LOG_APPEND_TIME;
        b[21..23].copy_from_slice(&attrs.to_be_bytes());
        b[35..43].copy_from_slice(&42i64.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        let records = record_timestamps(&b).expect("decodes");
        assert_eq!(first_at_or_after(&records, 10), Some((0, 42)));
    }
}
