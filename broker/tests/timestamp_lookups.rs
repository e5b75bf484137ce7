//! ListOffsets by time against the real broker: a timestamp that falls inside a batch finds
//! the record, not the batch (plain and lz4-compressed batches, through librdkafka's
//! `offsets_for_times`), and KIP-734's max-timestamp lookup (ListOffsets v7, timestamp -3).

mod support;

use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use support::BrokerProcess;
use support::clients::{consumer, create_topic, producer};
use support::wire::{Wire, batches_of, fetch, list_offset};

const BASE: i64 = 1_700_000_000_000;

/// Produces records `first..first + n` to partition 0 with timestamps `ts(i)`, in one batch
/// (a long linger; one flush).
fn produce_batch(
    bootstrap: &str,
    topic: &str,
    compression: &str,
    keys: std::ops::Range<i64>,
    ts: impl Fn(i64) -> i64,
) {
    let p = producer(
        bootstrap,
        &[("linger.ms", "2000"), ("compression.type", compression)],
    );
    for i in keys {
        let key = format!("k{i}");
        let value = format!("record {i} {}", "x".repeat(100));
        p.send(
            BaseRecord::to(topic)
                .partition(0)
                .key(&key)
                .payload(&value)
                .timestamp(ts(i)),
        )
        .expect("queued");
    }
    p.flush(Duration::from_secs(20)).expect("flushed");
}

fn offset_for_time(c: &rdkafka::consumer::BaseConsumer, topic: &str, ts: i64) -> Offset {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(ts))
        .expect("tpl");
    let found = c
        .offsets_for_times(tpl, Duration::from_secs(5))
        .expect("offsets_for_times");
    found.find_partition(topic, 0).expect("partition").offset()
}

#[test]
fn offsets_for_times_finds_the_record_inside_a_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &["--flush", "always"]);
    let bs = broker.bootstrap();
    for (topic, compression) in [("plain", "none"), ("packed", "lz4")] {
        create_topic(&bs, topic, 1);
        produce_batch(&bs, topic, compression, 0..10, |i| BASE + i * 1000);
        let mut w = Wire::connect(broker.kafka);
        let records = fetch(&mut w, topic, &[(0, 0)], 1 << 20, 1 << 20);
        assert_eq!(
            batches_of(&records[0]),
            vec![(0, 10)],
            "{topic}: one batch of 10"
        );

        let c = consumer(&bs, "lookups", &[]);
        let cases = [
            ("before everything", BASE - 5000, Offset::Offset(0)),
            ("the first record's time", BASE, Offset::Offset(0)),
            ("between the 3rd and 4th", BASE + 2500, Offset::Offset(3)),
            ("the 4th record's time", BASE + 3000, Offset::Offset(3)),
            ("the last record's time", BASE + 9000, Offset::Offset(9)),
            ("after everything", BASE + 9001, Offset::End),
        ];
        for (name, ts, expected) in cases {
            assert_eq!(offset_for_time(&c, topic, ts), expected, "{topic}: {name}");
        }
        // The wire answer carries the found record's own timestamp.
        assert_eq!(
            list_offset(&mut w, topic, 0, BASE + 2500, 6),
            (0, 3, BASE + 3000)
        );
    }
    broker.stop();
}

#[test]
fn max_timestamp_lookup_answers_the_newest_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &["--flush", "always"]);
    let bs = broker.bootstrap();
    create_topic(&bs, "times", 1);
    let mut w = Wire::connect(broker.kafka);
    assert_eq!(
        list_offset(&mut w, "times", 0, -3, 7),
        (0, -1, -1),
        "empty partition"
    );
    // The newest timestamp sits in the middle of the first batch; a later batch is older.
    produce_batch(&bs, "times", "lz4", 0..6, |i| {
        BASE + [5, 1, 9, 3, 9, 2][i as usize] * 1000
    });
    produce_batch(&bs, "times", "none", 6..8, |i| BASE + i);
    assert_eq!(
        list_offset(&mut w, "times", 0, -3, 7),
        (0, 2, BASE + 9000),
        "first record with the largest timestamp"
    );
    assert_eq!(
        list_offset(&mut w, "times", 0, -3, 6).0,
        42,
        "v6 predates KIP-734: INVALID_REQUEST"
    );
    broker.stop();
}
