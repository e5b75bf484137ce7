//! Kafka record batches (magic v2), validated and stored exactly as received.
//!
//! Layout (big-endian): baseOffset i64 · batchLength i32 · partitionLeaderEpoch i32 · magic i8 ·
//! crc u32 · attributes i16 · lastOffsetDelta i32 · baseTimestamp i64 · maxTimestamp i64 ·
//! producerId i64 · producerEpoch i16 · baseSequence i32 · recordsCount i32 · records.
//! The CRC-32C covers everything from `attributes` to the end, so the broker can write the base
//! offset without touching the CRC, and compressed batches pass through untouched.

use std::ops::Range;

use crate::error::{Error, Result};

/// Bytes before the first record.
pub const BATCH_HEADER_LEN: usize = 61;
/// `batchLength` counts the bytes after itself.
const LENGTH_PREFIX: usize = 12;
const CRC_START: usize = 21;

/// Compression codec of a batch (attributes bits 0–2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Uncompressed.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard.
    Zstd,
    /// A codec number Kafka does not define.
    Unknown(i16),
}

/// The fixed header of a record batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the length field.
    pub batch_length: i32,
    /// Leader epoch the batch was written in.
    pub partition_leader_epoch: i32,
    /// Format version (2).
    pub magic: i8,
    /// CRC-32C of attributes..end.
    pub crc: u32,
    /// Codec, timestamp type, transactional and control flags.
    pub attributes: i16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Idempotent producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records.
    pub records_count: i32,
}

fn be<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&buf[at..at + N]);
    out
}

impl BatchHeader {
    /// Reads the header at the start of `buf` (at least [`BATCH_HEADER_LEN`] bytes).
    ///
    /// # Errors
    /// [`Error::BatchTruncated`] when `buf` is shorter than a header.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(Error::BatchTruncated {
                at: 0,
                need: BATCH_HEADER_LEN,
                have: buf.len(),
            });
        }
        Ok(BatchHeader {
            base_offset: i64::from_be_bytes(be(buf, 0)),
            batch_length: i32::from_be_bytes(be(buf, 8)),
            partition_leader_epoch: i32::from_be_bytes(be(buf, 12)),
            magic: i8::from_be_bytes(be(buf, 16)),
            crc: u32::from_be_bytes(be(buf, 17)),
            attributes: i16::from_be_bytes(be(buf, 21)),
            last_offset_delta: i32::from_be_bytes(be(buf, 23)),
            base_timestamp: i64::from_be_bytes(be(buf, 27)),
            max_timestamp: i64::from_be_bytes(be(buf, 35)),
            producer_id: i64::from_be_bytes(be(buf, 43)),
            producer_epoch: i16::from_be_bytes(be(buf, 51)),
            base_sequence: i32::from_be_bytes(be(buf, 53)),
            records_count: i32::from_be_bytes(be(buf, 57)),
        })
    }

    /// Total bytes of the batch, header included.
    pub fn total_len(&self) -> usize {
        LENGTH_PREFIX + usize::try_from(self.batch_length).unwrap_or(0)
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// The compression codec.
    pub fn compression(&self) -> Compression {
        match self.attributes & 0x07 {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => Compression::Unknown(other),
        }
    }

    /// `true` for transaction markers and other control batches.
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
}

/// Splits `data` into validated batches (header and byte range each): length, magic v2,
/// CRC-32C and counts are checked; trailing bytes that do not form a whole batch are an error.
///
/// # Errors
/// The first problem found, located by byte offset: [`Error::BatchTruncated`],
/// [`Error::BatchLength`], [`Error::BatchMagic`], [`Error::BatchCrc`] or
/// [`Error::BatchCounts`]. Produce answers these with Kafka's `CORRUPT_MESSAGE` /
/// `INVALID_RECORD` codes; recovery truncates the log at them.
pub fn batches(data: &[u8]) -> Result<Vec<(BatchHeader, Range<usize>)>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let rest = &data[at..];
        let header = BatchHeader::parse(rest).map_err(|_| Error::BatchTruncated {
            at,
            need: BATCH_HEADER_LEN,
            have: rest.len(),
        })?;
        if usize::try_from(header.batch_length)
            .map_or(true, |l| l + LENGTH_PREFIX < BATCH_HEADER_LEN)
        {
            return Err(Error::BatchLength {
                at,
                length: header.batch_length,
            });
        }
        let len = header.total_len();
        if rest.len() < len {
            return Err(Error::BatchTruncated {
                at,
                need: len,
                have: rest.len(),
            });
        }
        if header.magic != 2 {
            return Err(Error::BatchMagic {
                at,
                magic: header.magic,
            });
        }
        let computed = crc32c::crc32c(&rest[CRC_START..len]);
        if computed != header.crc {
            return Err(Error::BatchCrc {
                at,
                stored: header.crc,
                computed,
            });
        }
        let counts_ok = header.records_count > 0
            && header.last_offset_delta >= 0
            && (header.is_control()
                || i64::from(header.last_offset_delta) + 1 == i64::from(header.records_count));
        if !counts_ok {
            return Err(Error::BatchCounts {
                at,
                count: header.records_count,
                delta: header.last_offset_delta,
            });
        }
        out.push((header, at..at + len));
        at += len;
    }
    Ok(out)
}

/// What a run of batches holds, read from their headers alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordCount {
    /// Batches.
    pub batches: u64,
    /// Records across them.
    pub records: u64,
}

/// Counts the batches and records in `data` from the headers alone (no CRC check, no
/// decompression): cheap enough for metrics and spans. Stops at the first header that does
/// not parse or whose batch does not fit, counting what came before.
pub fn count(data: &[u8]) -> RecordCount {
    let mut out = RecordCount::default();
    let mut rest = data;
    while let Ok(header) = BatchHeader::parse(rest) {
        let len = header.total_len();
        if len < BATCH_HEADER_LEN || len > rest.len() {
            break;
        }
        out.batches += 1;
        out.records += u64::try_from(header.records_count).unwrap_or(0);
        rest = &rest[len..];
    }
    out
}

/// Writes `base_offset` into the batch at the start of `batch` (outside the CRC, so the batch
/// stays valid).
pub fn assign_offsets(batch: &mut [u8], base_offset: i64) {
    if batch.len() >= 8 {
        batch[..8].copy_from_slice(&base_offset.to_be_bytes());
    }
}

/// Builds valid batches for tests in this crate.
#[cfg(test)]
pub(crate) mod testing {
    /// Every codec Kafka defines, as the encoder names them.
    pub const CODECS: [kafka_protocol::records::Compression; 5] = [
        kafka_protocol::records::Compression::None,
        kafka_protocol::records::Compression::Gzip,
        kafka_protocol::records::Compression::Snappy,
        kafka_protocol::records::Compression::Lz4,
        kafka_protocol::records::Compression::Zstd,
    ];

    /// `records` encoded as one v2 batch (or more, where the encoder splits them) in `codec`,
    /// as a client would send them.
    pub fn encoded(
        records: &[kafka_protocol::records::Record],
        codec: kafka_protocol::records::Compression,
    ) -> Vec<u8> {
        let mut buf = bytes::BytesMut::new();
        let options = kafka_protocol::records::RecordEncodeOptions {
            version: 2,
            compression: codec,
        };
        kafka_protocol::records::RecordBatchEncoder::encode(&mut buf, records.iter(), &options)
            .expect("encode");
        buf.to_vec()
    }

    /// A v2 batch of `count` records with `payload` as the opaque record bytes.
    pub fn batch(count: i32, base_timestamp: i64, max_timestamp: i64, payload: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes()); // length, patched below
        b.extend_from_slice(&0i32.to_be_bytes()); // leader epoch
        b.push(2); // magic
        b.extend_from_slice(&0u32.to_be_bytes()); // crc, patched below
        b.extend_from_slice(&0i16.to_be_bytes()); // attributes
        b.extend_from_slice(&(count - 1).to_be_bytes());
        b.extend_from_slice(&base_timestamp.to_be_bytes());
        b.extend_from_slice(&max_timestamp.to_be_bytes());
        b.extend_from_slice(&(-1i64).to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&count.to_be_bytes());
        b.extend_from_slice(payload);
        let len = i32::try_from(b.len() - 12).expect("small batch");
        b[8..12].copy_from_slice(&len.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::testing::batch;
    use super::*;

    #[test]
    fn valid_batches_split_and_keep_their_bytes() {
        let mut data = batch(3, 1000, 1002, b"abc");
        data.extend(batch(1, 2000, 2000, b"xyz"));
        let found = batches(&data).expect("valid");
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].0.records_count, 3);
        assert_eq!(found[0].0.last_offset_delta, 2);
        assert_eq!(found[1].0.max_timestamp, 2000);
        assert_eq!(found[1].1.end, data.len());
        assert_eq!(found[0].0.compression(), Compression::None);
    }

    #[test]
    fn counts_come_from_the_headers_up_to_the_first_bad_one() {
        let mut data = batch(3, 0, 0, b"abc");
        data.extend(batch(2, 0, 0, b"de"));
        let two = RecordCount {
            batches: 2,
            records: 5,
        };
        assert_eq!(count(&data), two);
        let whole = data.len();
        data.extend_from_slice(&batch(4, 0, 0, b"f")[..30]);
        assert_eq!(count(&data), two, "a truncated tail is not counted");
        data[8..12].copy_from_slice(&1_000_000i32.to_be_bytes());
        assert_eq!(
            count(&data[..whole]).batches,
            0,
            "a length past the end stops"
        );
        assert_eq!(count(b""), RecordCount::default());
    }

    #[test]
    fn offsets_are_assigned_without_breaking_the_crc() {
        let mut data = batch(2, 0, 0, b"p");
        assign_offsets(&mut data, 42);
        let (h, _) = batches(&data).expect("still valid").remove(0);
        assert_eq!((h.base_offset, h.last_offset()), (42, 43));
    }

    #[test]
    fn corruption_is_located() {
        let good = batch(1, 0, 0, b"payload");
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        assert!(matches!(
            batches(&flipped),
            Err(Error::BatchCrc { at: 0, .. })
        ));

        let mut two = good.clone();
        two.extend_from_slice(&good[..30]);
        let at = good.len();
        assert!(matches!(
            batches(&two),
            Err(Error::BatchTruncated { at: a, need: BATCH_HEADER_LEN, have: 30 }) if a == at
        ));

        let mut old = good.clone();
        old[16] = 1;
        assert!(matches!(
            batches(&old),
            Err(Error::BatchMagic { magic: 1, .. })
        ));

        let mut short = good.clone();
        short[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert!(matches!(
            batches(&short),
            Err(Error::BatchLength { length: 10, .. })
        ));

        let mut long = good.clone();
        long[8..12].copy_from_slice(&1_000_000i32.to_be_bytes());
        assert!(matches!(
            batches(&long),
            Err(Error::BatchTruncated { at: 0, .. })
        ));

        let empty = batch(0, 0, 0, b"");
        assert!(matches!(
            batches(&empty),
            Err(Error::BatchCounts { count: 0, .. })
        ));
        let msg = batches(&flipped).expect_err("bad crc").to_string();
        assert!(
            msg.starts_with("record batch at byte 0 fails its CRC"),
            "{msg}"
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed: u32 = 7;
        for n in 0..2_000usize {
            let mut buf = batch(1 + (n % 5) as i32, 0, 0, b"some-record-bytes");
            for _ in 0..(n % 4) {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let i = seed as usize % buf.len();
                buf[i] = (seed >> 24) as u8;
            }
            buf.truncate(buf.len() - (n % 7));
            let _ = batches(&buf);
        }
    }
}
