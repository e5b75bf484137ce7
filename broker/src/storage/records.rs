//! The records inside produced batches, checked as Kafka's `LogValidator` checks a client's
//! append before anything is written: no control batches, a sequence number wherever there is
//! a producer id, and records that decode (decompressed where needed, with
//! `kafka-protocol`'s codecs) into exactly the count the header declares, with offset deltas
//! 0, 1, 2, … and every length inside its record.
//!
//! The walk reads lengths and varints only and notes where each record is (a few words per
//! record found, never per record declared), so a batch that claims two billion records in
//! seventy bytes costs seventy bytes of work. The compacting cleaner reads records the same way.

use std::ops::Range;

use super::batch::{BATCH_HEADER_LEN, batches};
use super::recompress::decompressed_records;
use crate::error::{Error, Result};

/// Validates a producer's record batches: [`batches`]' checks, then the records of each.
///
/// # Errors
/// [`batches`]' errors; [`Error::ControlBatch`] (INVALID_RECORD) for a control batch,
/// [`Error::BatchSequence`] (INVALID_RECORD) for a producer id without a sequence, and
/// [`Error::BatchRecords`] (CORRUPT_MESSAGE) for records that do not decode into what the
/// header declares.
pub fn check_produced(data: &[u8]) -> Result<()> {
    let found = batches(data)?;
    for (header, range) in &found {
        let at = range.start;
        if header.is_control() {
            return Err(Error::ControlBatch { at });
        }
        if header.producer_id >= 0 && header.base_sequence < 0 {
            return Err(Error::BatchSequence {
                at,
                producer_id: header.producer_id,
            });
        }
        let batch = &data[range.clone()];
        let section = decompressed_records(header.compression(), &batch[BATCH_HEADER_LEN..])
            .map_err(|problem| Error::BatchRecords { at, problem })?;
        records(&section, header.records_count, Deltas::Contiguous)
            .map_err(|problem| Error::BatchRecords { at, problem })?;
    }
    Ok(())
}

/// One record of a batch's (uncompressed) records section, as [`records`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RecordView {
    /// The record's bytes in the section, its length prefix included.
    pub bytes: Range<usize>,
    /// Its offset relative to the batch's base offset.
    pub offset_delta: i32,
    /// Its timestamp relative to the batch's base timestamp.
    pub timestamp_delta: i64,
    /// Its key's bytes in the section; `None` for a null key.
    pub key: Option<Range<usize>>,
    /// Whether its value is null (a tombstone).
    pub null_value: bool,
}

/// Whether [`records`] requires the offset deltas a producer sends (0, 1, 2, …) or only
/// increasing ones (a compacted batch, whose removed records leave gaps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Deltas {
    Contiguous,
    Increasing,
}

/// Reads `count` records from `section` (uncompressed): each record's length, attributes,
/// timestamp delta, offset delta (per `deltas`), key, value and headers must fit inside it,
/// and nothing may follow the last record.
pub(crate) fn records(
    section: &[u8],
    count: i32,
    deltas: Deltas,
) -> Result<Vec<RecordView>, String> {
    let mut cursor = Cursor {
        buf: section,
        at: 0,
    };
    // Never reserved from the declared count: a forged one would allocate for nothing.
    let mut out: Vec<RecordView> = Vec::new();
    for index in 0..count {
        if cursor.at == section.len() {
            return Err(format!(
                "it declares {count} records but holds {index} ({} bytes)",
                section.len()
            ));
        }
        let start = cursor.at;
        let length = cursor.varint("record length")?;
        let length =
            usize::try_from(length).map_err(|_| format!("record {index} has length {length}"))?;
        let body_at = cursor.at;
        let body = cursor.take(length, "record")?;
        let mut view = record(body).map_err(|problem| format!("record {index}: {problem}"))?;
        let due = match (deltas, out.last()) {
            (Deltas::Contiguous, _) => view.offset_delta == index,
            (Deltas::Increasing, Some(prev)) => view.offset_delta > prev.offset_delta,
            (Deltas::Increasing, None) => view.offset_delta >= 0,
        };
        if !due {
            return Err(format!(
                "record {index}: offset delta {} where {index} is due",
                view.offset_delta
            ));
        }
        view.bytes = start..cursor.at;
        view.key = view.key.map(|k| k.start + body_at..k.end + body_at);
        out.push(view);
    }
    if cursor.at != section.len() {
        return Err(format!(
            "{} bytes follow its {count} declared records",
            section.len() - cursor.at
        ));
    }
    Ok(out)
}

/// The indexes (in its batch) of every record without a key in valid batches `data`, the
/// batch's index counted from the first batch in `data`: what a compacted topic refuses.
///
/// # Errors
/// [`Error::BatchRecords`] when records do not decode (not for data [`check_produced`]
/// accepted).
pub fn keyless_records(data: &[u8]) -> Result<Vec<i32>> {
    let mut out = Vec::new();
    let mut first = 0;
    for (header, range) in batches(data)? {
        let at = range.start;
        let batch = &data[range];
        let section = decompressed_records(header.compression(), &batch[BATCH_HEADER_LEN..])
            .map_err(|problem| Error::BatchRecords { at, problem })?;
        let views = records(&section, header.records_count, Deltas::Increasing)
            .map_err(|problem| Error::BatchRecords { at, problem })?;
        out.extend(
            (first..)
                .zip(&views)
                .filter(|(_, v)| v.key.is_none())
                .map(|(i, _)| i),
        );
        first += header.records_count;
    }
    Ok(out)
}

/// One record's body (after its length): everything must be used exactly. The view's
/// `bytes` is left empty and its key is located in `body`.
fn record(body: &[u8]) -> Result<RecordView, String> {
    let mut r = Cursor { buf: body, at: 0 };
    r.take(1, "attributes")?;
    let timestamp_delta = r.varlong("timestamp delta")?;
    let offset_delta = r.varint("offset delta")?;
    let key = r.bytes("key", true)?;
    let null_value = r.bytes("value", true)?.is_none();
    let headers = r.varint("header count")?;
    let headers = usize::try_from(headers).map_err(|_| format!("header count {headers}"))?;
    for _ in 0..headers {
        r.bytes("header key", false)?;
        r.bytes("header value", true)?;
    }
    if r.at != body.len() {
        return Err(format!(
            "{} bytes left over inside the record",
            body.len() - r.at
        ));
    }
    Ok(RecordView {
        bytes: 0..0,
        offset_delta,
        timestamp_delta,
        key,
        null_value,
    })
}

/// Reads Kafka's zig-zag varints and length-prefixed fields, never past `buf`.
struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let rest = self.buf.len() - self.at;
        if n > rest {
            return Err(format!("{what} needs {n} bytes, {rest} remain"));
        }
        let out = &self.buf[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    /// An unsigned LEB128 of at most `max_bytes` bytes.
    fn unsigned(&mut self, max_bytes: usize, what: &str) -> Result<u64, String> {
        let mut value = 0u64;
        for i in 0..max_bytes {
            let byte = self.take(1, what)?[0];
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(format!("{what} is a varint longer than {max_bytes} bytes"))
    }

    fn varint(&mut self, what: &str) -> Result<i32, String> {
        let raw = self.unsigned(5, what)?;
        let raw = u32::try_from(raw).map_err(|_| format!("{what} overflows 32 bits"))?;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    fn varlong(&mut self, what: &str) -> Result<i64, String> {
        let raw = self.unsigned(10, what)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// A varint length and that many bytes (where they are in `buf`); -1 (null, `None`)
    /// only where `nullable`.
    fn bytes(&mut self, what: &str, nullable: bool) -> Result<Option<Range<usize>>, String> {
        let len = self.varint(what)?;
        match usize::try_from(len) {
            Ok(n) => {
                let at = self.at;
                self.take(n, what).map(|_| Some(at..at + n))
            }
            Err(_) if len == -1 && nullable => Ok(None),
            Err(_) => Err(format!("{what} has length {len}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use indexmap::IndexMap;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{self, Record};

    use super::*;

    fn produced(count: i64, codec: records::Compression) -> Vec<u8> {
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: 7,
                producer_epoch: 0,
                timestamp_type: records::TimestampType::Creation,
                offset: i,
                sequence: i as i32,
                timestamp: 1_700_000_000_000 + i,
                key: (i % 2 == 0).then(|| Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from("v".repeat(50))),
                headers: IndexMap::from([(
                    StrBytes::from_static_str("h"),
                    (i % 3 != 0).then(|| Bytes::from_static(b"x")),
                )]),
            })
            .collect();
        crate::storage::batch::testing::encoded(&records, codec)
    }

    /// `batch` with header bytes `at..` replaced by `value` and the CRC fixed.
    fn patched(mut batch: Vec<u8>, at: usize, value: &[u8]) -> Vec<u8> {
        batch[at..at + value.len()].copy_from_slice(value);
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        batch
    }

    fn code(data: &[u8]) -> i16 {
        check_produced(data).map_or_else(|e| e.kafka_code(), |()| 0)
    }

    #[test]
    fn real_batches_in_every_codec_pass() {
        for codec in crate::storage::batch::testing::CODECS {
            let data = produced(5, codec);
            assert_eq!(code(&data), 0, "{codec:?}");
        }
    }

    #[test]
    fn forged_counts_offsets_and_lengths_are_corrupt() {
        let good = produced(3, records::Compression::None);
        let huge = patched(
            patched(good.clone(), 23, &(i32::MAX - 1).to_be_bytes()),
            57,
            &i32::MAX.to_be_bytes(),
        );
        let fewer = patched(
            patched(good.clone(), 23, &1i32.to_be_bytes()),
            57,
            &2i32.to_be_bytes(),
        );
        // The second record's offset delta (its 4th byte: length, attributes, timestamp
        // delta, offset delta) changed from 1 to 2.
        let second = BATCH_HEADER_LEN + usize::from(good[BATCH_HEADER_LEN]) / 2 + 1;
        let skipped = patched(good.clone(), second + 3, &[4]);
        let mut gzip = produced(3, records::Compression::Gzip);
        let garbage_at = gzip.len() - 8;
        gzip[garbage_at..].fill(0x5a);
        let gzip = patched(gzip, 0, &[0]);
        for (name, data) in [
            ("2^31-1 records claimed", huge),
            ("fewer records than bytes hold", fewer),
            ("offset deltas out of order", skipped),
            ("undecompressable", gzip),
        ] {
            let err = check_produced(&data).expect_err(name);
            assert_eq!(err.kafka_code(), 2, "{name}: CORRUPT_MESSAGE ({err})");
        }
    }

    #[test]
    fn control_batches_and_missing_sequences_are_invalid_records() {
        let good = produced(2, records::Compression::None);
        let control = patched(good.clone(), 21, &0x0020i16.to_be_bytes());
        assert_eq!(code(&control), 87, "INVALID_RECORD");
        let unsequenced = patched(good, 53, &(-1i32).to_be_bytes());
        assert_eq!(code(&unsequenced), 87, "INVALID_RECORD");
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let good = produced(4, records::Compression::None);
        let mut seed: u32 = 11;
        for n in 0..3_000usize {
            let mut buf = good.clone();
            for _ in 0..(1 + n % 3) {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let i = BATCH_HEADER_LEN + seed as usize % (buf.len() - BATCH_HEADER_LEN);
                buf[i] = (seed >> 24) as u8;
            }
            let _ = check_produced(&patched(buf, 0, &[0]));
        }
    }
}
