//! The records inside produced batches, checked as Kafka's `LogValidator` checks a client's
//! append before anything is written: no control batches, a sequence number wherever there is
//! a producer id, and records that decode (decompressed where needed, with
//! `kafka-protocol`'s codecs) into exactly the count the header declares, with offset deltas
//! 0, 1, 2, … and every length inside its record.
//!
//! The walk reads lengths and varints only; it allocates nothing per record, so a batch that
//! claims two billion records in seventy bytes costs seventy bytes of work.

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
        let records = decompressed_records(header.compression(), &batch[BATCH_HEADER_LEN..])
            .map_err(|problem| Error::BatchRecords { at, problem })?;
        walk(&records, header.records_count)
            .map_err(|problem| Error::BatchRecords { at, problem })?;
    }
    Ok(())
}

/// Reads `count` records from `section` (uncompressed): each record's length, attributes,
/// timestamp delta, offset delta (which must be the record's index), key, value and headers
/// must fit inside it, and nothing may follow the last record.
fn walk(section: &[u8], count: i32) -> Result<(), String> {
    let mut cursor = Cursor {
        buf: section,
        at: 0,
    };
    for index in 0..count {
        if cursor.at == section.len() {
            return Err(format!(
                "it declares {count} records but holds {index} ({} bytes)",
                section.len()
            ));
        }
        let length = cursor.varint("record length")?;
        let length =
            usize::try_from(length).map_err(|_| format!("record {index} has length {length}"))?;
        let body = cursor.take(length, "record")?;
        record(body, index).map_err(|problem| format!("record {index}: {problem}"))?;
    }
    if cursor.at != section.len() {
        return Err(format!(
            "{} bytes follow its {count} declared records",
            section.len() - cursor.at
        ));
    }
    Ok(())
}

/// One record's body (after its length): everything must be used exactly.
fn record(body: &[u8], index: i32) -> Result<(), String> {
    let mut r = Cursor { buf: body, at: 0 };
    r.take(1, "attributes")?;
    r.varlong("timestamp delta")?;
    let delta = r.varint("offset delta")?;
    if delta != index {
        return Err(format!("offset delta {delta} where {index} is due"));
    }
    r.bytes("key", true)?;
    r.bytes("value", true)?;
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
    Ok(())
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

    /// A varint length and that many bytes; -1 (null) only where `nullable`.
    fn bytes(&mut self, what: &str, nullable: bool) -> Result<(), String> {
        let len = self.varint(what)?;
        match usize::try_from(len) {
            Ok(n) => self.take(n, what).map(|_| ()),
            Err(_) if len == -1 && nullable => Ok(()),
            Err(_) => Err(format!("{what} has length {len}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use indexmap::IndexMap;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{self, Record, RecordBatchEncoder, RecordEncodeOptions};

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
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: codec,
        };
        RecordBatchEncoder::encode(&mut buf, records.iter(), &options).expect("encode");
        buf.to_vec()
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
        for codec in [
            records::Compression::None,
            records::Compression::Gzip,
            records::Compression::Snappy,
            records::Compression::Lz4,
            records::Compression::Zstd,
        ] {
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
