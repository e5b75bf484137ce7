//! A topic's `compression.type` against the real broker: batches librdkafka (and a raw
//! request) produce in another codec are stored re-compressed into the topic's — with the
//! same offsets, timestamps, keys, values, headers and idempotent-producer fields — and read
//! back unchanged by a consumer; `producer` keeps what the producer sent; the value is
//! altered at once and a value Kafka does not define is refused by name.

mod support;

use std::time::Duration;

use bytes::Bytes;

use kafka_protocol::records::{Compression, RecordBatchDecoder};
use rdkafka::admin::{AlterConfig, ResourceSpecifier};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use support::BrokerProcess;
use support::clients::{admin, consumer, create_topic_with, opts, producer, rt};
use support::wire::{Wire, batch, batch_with, fetch_one, produce};

const TOPIC: &str = "squeezed";
const BASE: i64 = 1_700_000_000_000;
const INVALID_CONFIG: i16 = 40;
const CORRUPT_MESSAGE: i16 = 2;

/// Produces `n` records with keys, a header and distinct timestamps through librdkafka,
/// compressed with `codec`, as one batch; idempotent, so the batch carries a producer id.
fn produce_with(bootstrap: &str, codec: &str, first: i64, n: i64) {
    let p = producer(
        bootstrap,
        &[
            ("compression.type", codec),
            ("linger.ms", "1000"),
            ("enable.idempotence", "true"),
        ],
    );
    for i in first..first + n {
        let (key, value) = (format!("k{i}"), format!("value {i} {}", "z".repeat(64)));
        let headers = OwnedHeaders::new().insert(Header {
            key: "seq",
            value: Some(&i.to_string()),
        });
        p.send(
            BaseRecord::to(TOPIC)
                .partition(0)
                .key(&key)
                .payload(&value)
                .headers(headers)
                .timestamp(BASE + i * 1000),
        )
        .expect("queued");
    }
    p.flush(Duration::from_secs(20)).expect("flushed");
}

/// A stored batch: `(codec, producer id, base offset, record count)`.
type StoredBatch = (Compression, i64, i64, i32);
/// A stored record: `(offset, timestamp, value)`.
type StoredRecord = (i64, i64, String);

/// Every stored batch from `offset` to the high watermark (a fetch reads one segment; these
/// old timestamps roll one per batch), and their records.
fn stored(w: &mut Wire, mut offset: i64) -> (Vec<StoredBatch>, Vec<StoredRecord>) {
    let mut batches = Vec::new();
    let mut records = Vec::new();
    loop {
        let data = fetch_one(w, TOPIC, 0, offset);
        assert_eq!(data.error_code, 0);
        let mut bytes = data.records.unwrap_or_default();
        if bytes.is_empty() {
            return (batches, records);
        }
        while !bytes.is_empty() {
            let info =
                RecordBatchDecoder::decode_batch_info(&mut bytes.clone()).expect("batch info");
            let set = RecordBatchDecoder::decode(&mut bytes).expect("decodes");
            let first = &set.records[0];
            batches.push((
                set.compression,
                first.producer_id,
                info[0].min_offset,
                info[0].record_count,
            ));
            records.extend(set.records.iter().map(|r| {
                let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default());
                (r.offset, r.timestamp, value.into_owned())
            }));
            offset = info[0].min_offset + i64::from(info[0].record_count);
        }
    }
}

/// A zstd batch whose compressed section is garbage, with a valid length and CRC.
fn undecodable_zstd() -> Bytes {
    let mut b = batch_with(&["lost"], BASE, Compression::Zstd)[..61].to_vec();
    b.extend_from_slice(&[0x5a; 32]);
    let len = i32::try_from(b.len() - 12).expect("small");
    b[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

/// Sets `compression.type` with librdkafka's AlterConfigs.
fn set_compression(bootstrap: &str, value: &str) {
    let change = AlterConfig::new(ResourceSpecifier::Topic(TOPIC)).set("compression.type", value);
    let results = rt()
        .block_on(admin(bootstrap).alter_configs(&[change], &opts()))
        .expect("alter_configs");
    results.into_iter().for_each(|r| {
        r.expect("altered");
    });
}

/// AlterConfigs on the wire: `(error_code, error_message)`.
fn wire_alter(w: &mut Wire, value: &str) -> (i16, String) {
    use kafka_protocol::messages::AlterConfigsRequest;
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    use kafka_protocol::protocol::StrBytes;
    let resp = w.call(
        &AlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str(TOPIC))
                .with_configs(vec![
                    AlterableConfig::default()
                        .with_name(StrBytes::from_static_str("compression.type"))
                        .with_value(Some(StrBytes::from_string(value.to_owned()))),
                ]),
        ]),
        2,
    );
    let r = &resp.responses[0];
    (
        r.error_code,
        r.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

/// `(offset, timestamp, key, header)` of the next `n` messages.
fn consume(c: &BaseConsumer, n: usize) -> Vec<(i64, i64, String, String)> {
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while got.len() < n && std::time::Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            got.push(describe(&m.expect("message")));
        }
    }
    got
}

fn describe(m: &BorrowedMessage<'_>) -> (i64, i64, String, String) {
    let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
    let header = m
        .headers()
        .and_then(|h| h.iter().find(|h| h.key == "seq"))
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    (
        m.offset(),
        m.timestamp().to_millis().unwrap_or(-1),
        key,
        header,
    )
}

#[test]
fn batches_are_stored_in_the_topics_codec() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &["--flush", "always", "--retention", "forever"]);
    let bs = broker.bootstrap();
    // lz4: the codec this build of librdkafka can read back besides snappy (no zlib, no
    // zstd); gzip and zstd batches are produced on the wire.
    create_topic_with(&bs, TOPIC, 1, &[("compression.type", "lz4")]);
    let mut w = Wire::connect(broker.kafka);

    produce_with(&bs, "snappy", 0, 10);
    for (codec, first) in [
        (Compression::Gzip, 10),
        (Compression::Zstd, 12),
        (Compression::None, 14),
    ] {
        let sent = batch_with(&["wire-a", "wire-b"], BASE + first * 1000, codec);
        assert_eq!(produce(&mut w, TOPIC, 0, sent), (0, first), "{codec:?}");
    }
    let (batches, records) = stored(&mut w, 0);
    let lz4 = |producer_id, base, count| (Compression::Lz4, producer_id, base, count);
    assert_eq!(batches.len(), 4, "{batches:?}");
    assert!(
        batches[0].1 >= 0,
        "the idempotent producer's id is kept: {batches:?}"
    );
    assert_eq!(batches[0], lz4(batches[0].1, 0, 10));
    assert_eq!(
        &batches[1..],
        [lz4(-1, 10, 2), lz4(-1, 12, 2), lz4(-1, 14, 2)]
    );
    assert_eq!(records.len(), 16);
    assert_eq!((records[3].0, records[3].1), (3, BASE + 3000));
    assert!(records[3].2.starts_with("value 3 "), "{:?}", records[3]);
    assert_eq!((records[13].0, records[13].1), (13, BASE + 12_001));
    assert_eq!(records[13].2, "wire-b");

    let c = consumer(&bs, "squeezed-readers", &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let got = consume(&c, 16);
    assert_eq!(got.len(), 16, "{got:?}");
    for (i, (offset, ts, key, header)) in got.iter().take(10).enumerate() {
        let i = i as i64;
        assert_eq!((*offset, *ts), (i, BASE + i * 1000));
        assert_eq!(
            (key.clone(), header.clone()),
            (format!("k{i}"), i.to_string())
        );
    }

    // `producer` keeps the producer's codec; `uncompressed` stores plain batches.
    set_compression(&bs, "producer");
    let sent = batch_with(&["kept"], BASE, Compression::Zstd);
    assert_eq!(produce(&mut w, TOPIC, 0, sent), (0, 16));
    set_compression(&bs, "uncompressed");
    produce_with(&bs, "lz4", 17, 3);
    let (batches, records) = stored(&mut w, 16);
    let codecs: Vec<Compression> = batches.iter().map(|b| b.0).collect();
    assert_eq!(codecs, [Compression::Zstd, Compression::None]);
    let offsets: Vec<i64> = records.iter().map(|r| r.0).collect();
    assert_eq!(offsets, (16..20).collect::<Vec<_>>());
    assert_eq!(records[3].1, BASE + 19_000);

    for bad in ["brotli", "none", "GZIP"] {
        let (code, message) = wire_alter(&mut w, bad);
        assert_eq!(code, INVALID_CONFIG, "{bad}");
        assert!(message.contains(&format!("`{bad}`")), "{bad}: {message}");
    }
    assert_eq!(wire_alter(&mut w, "gzip").0, 0);
    assert_eq!(produce(&mut w, TOPIC, 0, batch(&["late"])), (0, 20));
    assert_eq!(
        stored(&mut w, 20).0[0].0,
        Compression::Gzip,
        "applied at once"
    );
    assert_eq!(
        produce(&mut w, TOPIC, 0, undecodable_zstd()).0,
        CORRUPT_MESSAGE,
        "a batch that cannot be re-compressed is refused"
    );
    assert_eq!(produce(&mut w, TOPIC, 0, batch(&["still"])), (0, 21));
    broker.stop();
}
