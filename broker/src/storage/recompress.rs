//! Re-compressing record batches into a topic's codec, for a `compression.type` other than
//! `producer`: as Kafka's broker does, a batch the producer compressed differently is
//! decompressed and compressed again before it is stored.
//!
//! In a v2 batch the codec wraps the records section only, and the records inside are the
//! same bytes whatever the codec. So re-compression swaps that section and rewrites the
//! attributes' codec bits, the length and the CRC; every other header field (offsets,
//! timestamps, producer id, epoch and sequence, leader epoch, flags) and every record (keys,
//! values, headers, timestamp and offset deltas) stays exactly as the producer sent it. The
//! codecs are `kafka-protocol`'s.

use std::io::Read;
use std::ops::Range;
use std::panic::AssertUnwindSafe;

use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};
use kafka_protocol::records::RecordBatchDecoder;

use super::batch::{BATCH_HEADER_LEN, BatchHeader, Compression};
use crate::error::{Error, Result};

/// Where the attributes field starts; the CRC covers everything from there.
const ATTRIBUTES: usize = 21;
const CRC: Range<usize> = 17..21;
const LENGTH: Range<usize> = 8..12;
const CODEC_BITS: i16 = 0x07;
/// The smallest record: length, attributes, timestamp delta, offset delta, key length, value
/// length and header count, one byte each.
const MIN_RECORD_LEN: usize = 7;

/// `data` (validated batches, `found` as [`super::batches`] returned them) with every
/// batch whose codec differs from `target` re-compressed into it; `None` when all of them
/// already use it. Control batches are kept as they are.
///
/// # Errors
/// [`Error::BatchCodec`] for a batch that cannot be decompressed, whose records do not
/// decode into its record count, or whose codec Kafka does not define.
pub fn recompress(
    data: &[u8],
    found: &[(BatchHeader, Range<usize>)],
    target: Compression,
) -> Result<Option<Vec<u8>>> {
    let differs = |h: &BatchHeader| h.compression() != target && !h.is_control();
    if !found.iter().any(|(h, _)| differs(h)) {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(data.len());
    for (header, range) in found {
        let batch = &data[range.clone()];
        if differs(header) {
            let rewritten =
                rewrite(batch, header, target).map_err(|problem| Error::BatchCodec {
                    at: range.start,
                    problem,
                })?;
            out.extend_from_slice(&rewritten);
        } else {
            out.extend_from_slice(batch);
        }
    }
    Ok(Some(out))
}

/// One batch in the `target` codec.
fn rewrite(batch: &[u8], header: &BatchHeader, target: Compression) -> Result<Vec<u8>, String> {
    let records = decompressed_records(header.compression(), &batch[BATCH_HEADER_LEN..])?;
    // Checked before decoding, which reserves room for the declared count up front.
    let count = usize::try_from(header.records_count).unwrap_or(0);
    if count.saturating_mul(MIN_RECORD_LEN) > records.len() {
        return Err(format!(
            "it declares {count} records but holds {} bytes of records",
            records.len()
        ));
    }
    let plain = assemble(batch, Compression::None, &records)?;
    let decoded = RecordBatchDecoder::decode(&mut Bytes::from(plain.clone()))
        .map_err(|e| format!("its records do not decode: {e}"))?;
    if decoded.records.len() != count {
        return Err(format!(
            "it declares {} records but holds {}",
            header.records_count,
            decoded.records.len()
        ));
    }
    if target == Compression::None {
        return Ok(plain);
    }
    let compressed = std::panic::catch_unwind(AssertUnwindSafe(|| compress(target, &records)))
        .unwrap_or_else(|_| Err("the compressor failed".into()))?;
    assemble(batch, target, &compressed)
}

/// `batch`'s header with the `codec` bits, followed by `section`, with length and CRC fixed.
pub(super) fn assemble(
    batch: &[u8],
    codec: Compression,
    section: &[u8],
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(BATCH_HEADER_LEN + section.len());
    out.extend_from_slice(&batch[..BATCH_HEADER_LEN]);
    out.extend_from_slice(section);
    let attributes = i16::from_be_bytes([out[ATTRIBUTES], out[ATTRIBUTES + 1]]);
    let attributes = (attributes & !CODEC_BITS) | codec_id(codec)?;
    out[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    let length = i32::try_from(out.len() - LENGTH.end)
        .map_err(|_| "the re-compressed batch exceeds 2 GiB".to_owned())?;
    out[LENGTH].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES..]);
    out[CRC].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

fn codec_id(codec: Compression) -> Result<i16, String> {
    match codec {
        Compression::None => Ok(0),
        Compression::Gzip => Ok(1),
        Compression::Snappy => Ok(2),
        Compression::Lz4 => Ok(3),
        Compression::Zstd => Ok(4),
        Compression::Unknown(id) => Err(format!("codec {id} is not one Kafka defines")),
    }
}

/// The records section of a batch compressed with `codec`, uncompressed; a codec that
/// panics on its input (which comes from the network) counts as a bad batch.
pub(super) fn decompressed_records(codec: Compression, section: &[u8]) -> Result<Bytes, String> {
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        decompress(codec, section, MAX_DECOMPRESSED)
    }))
    .unwrap_or_else(|_| Err("the decompressor rejected it".into()))
}

/// The most bytes the records of one batch may decompress to. Kafka's broker streams the
/// records out of a compressed batch one at a time; this one holds them whole, so a small
/// batch that claims (or really holds) gigabytes of records would cost that much memory.
/// 256 MiB is 256 times the default `max.message.bytes`, far above what real producers
/// compress into one batch.
pub const MAX_DECOMPRESSED: usize = 256 << 20;

/// The records section of a batch compressed with `codec`, uncompressed, refused when it
/// would exceed `limit` bytes (checked while decompressing, before the memory is taken).
fn decompress(codec: Compression, section: &[u8], limit: usize) -> Result<Bytes, String> {
    let read = |reader: std::io::Result<Box<dyn Read + '_>>| {
        let mut out = Vec::new();
        reader
            .and_then(|r| r.take(limit as u64 + 1).read_to_end(&mut out))
            .map_err(|e| format!("{codec:?} decompression failed: {e}"))?;
        if out.len() > limit {
            return Err(too_large(codec, limit));
        }
        Ok(Bytes::from(out))
    };
    match codec {
        Compression::None => Ok(Bytes::copy_from_slice(section)),
        Compression::Gzip => read(Ok(Box::new(flate2::read::MultiGzDecoder::new(section)))),
        Compression::Snappy => snappy(section, limit),
        Compression::Lz4 => read(lz4::Decoder::new(section).map(|d| Box::new(d) as _)),
        Compression::Zstd => {
            read(zstd::stream::read::Decoder::new(section).map(|d| Box::new(d) as _))
        }
        Compression::Unknown(id) => Err(format!("codec {id} is not one Kafka defines")),
    }
}

fn too_large(codec: Compression, limit: usize) -> String {
    format!(
        "its {codec:?} records decompress to more than {limit} bytes, the most one batch may \
         hold; send smaller batches (lower the producer's batch.size or linger.ms)"
    )
}

/// Snappy as Kafka's clients write it: snappy-java's framing (a magic header, then blocks
/// each preceded by its compressed length) or, without the header, one raw snappy block.
/// Every block states its uncompressed length up front, so the total is checked before any
/// block is decoded.
fn snappy(section: &[u8], limit: usize) -> Result<Bytes, String> {
    const MAGIC: &[u8] = b"\x82SNAPPY\x00";
    /// The magic, then snappy-java's version and minimum compatible version.
    const HEADER_LEN: usize = 16;
    let fail = |e: &dyn std::fmt::Display| format!("Snappy decompression failed: {e}");
    let mut blocks = Vec::new();
    if section.starts_with(MAGIC) && section.len() >= HEADER_LEN {
        let mut rest = &section[HEADER_LEN..];
        while !rest.is_empty() {
            let (len, after) = rest
                .split_first_chunk::<4>()
                .ok_or_else(|| fail(&"a block length is cut short"))?;
            let len = u32::from_be_bytes(*len) as usize;
            if len > after.len() {
                return Err(fail(&format!(
                    "a block claims {len} bytes, {} are left",
                    after.len()
                )));
            }
            blocks.push(&after[..len]);
            rest = &after[len..];
        }
    } else {
        blocks.push(section);
    }
    let mut total = 0usize;
    for block in &blocks {
        total = total.saturating_add(snap::raw::decompress_len(block).map_err(|e| fail(&e))?);
    }
    if total > limit {
        return Err(too_large(Compression::Snappy, limit));
    }
    let mut out = vec![0; total];
    let mut at = 0;
    let mut decoder = snap::raw::Decoder::new();
    for block in blocks {
        at += decoder
            .decompress(block, &mut out[at..])
            .map_err(|e| fail(&e))?;
    }
    out.truncate(at);
    Ok(Bytes::from(out))
}

/// `records` compressed with `codec`.
pub(super) fn compress(codec: Compression, records: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = BytesMut::new();
    let fill = |b: &mut BytesMut| -> anyhow::Result<()> {
        b.extend_from_slice(records);
        Ok(())
    };
    let result = match codec {
        Compression::None => fill(&mut out),
        Compression::Gzip => Gzip::compress(&mut out, fill),
        Compression::Snappy => Snappy::compress(&mut out, fill),
        Compression::Lz4 => Lz4::compress(&mut out, fill),
        Compression::Zstd => Zstd::compress(&mut out, fill),
        Compression::Unknown(id) => return Err(format!("codec {id} is not one Kafka defines")),
    };
    result
        .map(|()| out.to_vec())
        .map_err(|e| format!("{codec:?} compression failed: {e:#}"))
}

#[cfg(test)]
mod tests {
    use indexmap::IndexMap;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{self, Record};

    use super::super::batches;
    use super::*;

    const CODECS: [(Compression, records::Compression); 5] = [
        (Compression::None, records::Compression::None),
        (Compression::Gzip, records::Compression::Gzip),
        (Compression::Snappy, records::Compression::Snappy),
        (Compression::Lz4, records::Compression::Lz4),
        (Compression::Zstd, records::Compression::Zstd),
    ];

    /// An idempotent producer's batch of three records with headers, in `codec`.
    fn produced(codec: records::Compression) -> Vec<u8> {
        let records: Vec<Record> = (0..3)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 7,
                producer_id: 4242,
                producer_epoch: 3,
                timestamp_type: records::TimestampType::Creation,
                offset: i,
                sequence: 10 + i as i32,
                timestamp: 1_700_000_000_000 + i * 250,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from("v".repeat(200))),
                headers: IndexMap::from([(
                    StrBytes::from_static_str("h"),
                    Some(Bytes::from_static(b"x")),
                )]),
            })
            .collect();
        crate::storage::batch::testing::encoded(&records, codec)
    }

    /// Every header field but codec, length and CRC.
    fn fixed_fields(h: &BatchHeader) -> (i64, i32, i16, i32, i64, i64, i64, i16, i32, i32) {
        (
            h.base_offset,
            h.partition_leader_epoch,
            h.attributes & !CODEC_BITS,
            h.last_offset_delta,
            h.base_timestamp,
            h.max_timestamp,
            h.producer_id,
            h.producer_epoch,
            h.base_sequence,
            h.records_count,
        )
    }

    #[test]
    fn every_codec_converts_to_every_other_keeping_the_records() {
        for (from, from_codec) in CODECS {
            let original = produced(from_codec);
            let found = batches(&original).expect("valid");
            let want = RecordBatchDecoder::decode(&mut Bytes::from(original.clone()))
                .expect("decodes")
                .records;
            for (to, _) in CODECS {
                let got = recompress(&original, &found, to).expect("recompressed");
                let Some(got) = got else {
                    assert_eq!(from, to, "unchanged only when the codec matches");
                    continue;
                };
                let (header, _) = batches(&got)
                    .expect("valid batch with a valid CRC")
                    .remove(0);
                assert_eq!(header.compression(), to, "{from:?} -> {to:?}");
                assert_eq!(fixed_fields(&header), fixed_fields(&found[0].0));
                let records = RecordBatchDecoder::decode(&mut Bytes::from(got))
                    .expect("decodes")
                    .records;
                assert_eq!(records, want, "{from:?} -> {to:?}: the same records");
            }
        }
    }

    /// The records section of `batch` (in any codec).
    fn section(batch: &[u8]) -> &[u8] {
        &batch[BATCH_HEADER_LEN..]
    }

    #[test]
    fn decompression_stops_at_the_limit_in_every_codec() {
        for (codec, encoding) in CODECS {
            let batch = produced(encoding);
            let whole = decompress(codec, section(&batch), MAX_DECOMPRESSED)
                .expect("decompresses")
                .len();
            assert!(whole > 600, "{codec:?}: three records of 200 bytes");
            let exact = decompress(codec, section(&batch), whole).expect("exactly at the limit");
            assert_eq!(exact.len(), whole, "{codec:?}");
            if codec == Compression::None {
                continue;
            }
            let err = decompress(codec, section(&batch), whole - 1).expect_err("over the limit");
            assert!(
                err.contains(&format!("more than {} bytes", whole - 1))
                    && err.contains("batch.size"),
                "{codec:?}: {err}"
            );
        }
    }

    #[test]
    fn a_snappy_block_claiming_gigabytes_is_refused_before_any_is_taken() {
        // snappy-java's framing, one block whose varint header claims about 2.3 GB (the
        // fuzz target record_batches hit the memory limit on it).
        let mut section = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        let block = [0x98, 0xe2, 0xf1, 0xff, 0x08, 0xff, 0xfe, 0xfd, b'a'];
        section.extend_from_slice(&(block.len() as u32).to_be_bytes());
        section.extend_from_slice(&block);
        let err = decompressed_records(Compression::Snappy, &section).expect_err("refused");
        assert!(err.contains("the most one batch may hold"), "{err}");
        // A block length past the end names it.
        section.truncate(section.len() - 2);
        let err = decompressed_records(Compression::Snappy, &section).expect_err("refused");
        assert!(err.contains("a block claims 9 bytes, 7 are left"), "{err}");
        // Raw snappy (no framing) claiming as much.
        let err = decompressed_records(Compression::Snappy, &block).expect_err("refused");
        assert!(err.contains("the most one batch may hold"), "{err}");
    }

    #[test]
    fn only_batches_in_another_codec_change() {
        let mut data = produced(records::Compression::Lz4);
        let first = data.len();
        data.extend(produced(records::Compression::Gzip));
        let found = batches(&data).expect("valid");
        let got = recompress(&data, &found, Compression::Lz4)
            .expect("recompressed")
            .expect("the gzip batch changes");
        assert_eq!(
            &got[..first],
            &data[..first],
            "the lz4 batch is kept byte for byte"
        );
        let codecs: Vec<_> = batches(&got)
            .expect("valid")
            .iter()
            .map(|(h, _)| h.compression())
            .collect();
        assert_eq!(codecs, [Compression::Lz4, Compression::Lz4]);
    }

    #[test]
    fn undecodable_batches_are_refused_not_stored() {
        // A valid CRC over garbage: the batch passes validation, its body does not decompress.
        let gzip = produced(records::Compression::Gzip);
        let broken = assemble(&gzip, Compression::Gzip, &[0x5a; 40]).expect("assembled");
        // Uncompressed, but the records section is cut short of the declared count.
        let plain = produced(records::Compression::None);
        let short =
            assemble(&plain, Compression::None, &plain[BATCH_HEADER_LEN..70]).expect("assembled");
        // Two billion records declared (the counts agree) over a few bytes.
        let mut huge = plain.clone();
        huge[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
        huge[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        let huge =
            assemble(&huge, Compression::None, &plain[BATCH_HEADER_LEN..]).expect("assembled");
        for (name, data, to) in [
            ("gzip garbage", broken, Compression::Zstd),
            ("truncated records", short, Compression::Gzip),
            ("a count the bytes cannot hold", huge, Compression::Lz4),
        ] {
            let found = batches(&data).expect("the header and CRC are valid");
            let err = recompress(&data, &found, to).expect_err(name);
            assert_eq!(err.kafka_code(), 2, "{name}: CORRUPT_MESSAGE");
            assert!(
                err.to_string().contains("compression.type"),
                "{name}: {err}"
            );
        }
    }
}
