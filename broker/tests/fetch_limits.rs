//! Fetch honours `max_bytes` and `partition_max_bytes` as Kafka does (KIP-74): only the first
//! batch of the first partition with data may exceed them. Exact responses on the wire, then
//! librdkafka with tiny fetch sizes consuming everything produced.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use support::BrokerProcess;
use support::clients::{consumer, create_topic, producer};
use support::wire::{Wire, batch_at, batches_of, fetch};

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    i64::try_from(since.as_millis()).expect("ms")
}

/// Appends one batch (one ~900-byte record, timestamped now so that all stay in one
/// segment: a fetch never spans segments) to `partition` of `limits`.
fn produce_batch(w: &mut Wire, partition: i32) {
    let value = "v".repeat(900);
    let resp = w.call(
        &ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str("limits")))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(batch_at(&[&value], now_ms()))),
                    ]),
            ]),
        9,
    );
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
}

/// Batches per partition (their base offsets) in one fetch of both partitions from 0.
fn fetched(w: &mut Wire, max_bytes: i32, partition_max_bytes: i32) -> Vec<Vec<i64>> {
    fetch(
        w,
        "limits",
        &[(0, 0), (1, 0)],
        max_bytes,
        partition_max_bytes,
    )
    .iter()
    .map(|r| batches_of(r).iter().map(|(base, _)| *base).collect())
    .collect()
}

#[test]
fn only_the_first_batch_of_the_first_partition_may_exceed_the_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &["--flush", "always"]);
    create_topic(&broker.bootstrap(), "limits", 2);
    let mut w = Wire::connect(broker.kafka);
    for _ in 0..3 {
        produce_batch(&mut w, 0);
        produce_batch(&mut w, 1);
    }
    assert_eq!(
        support::wire::list_offset(&mut w, "limits", 0, -1, 6),
        (0, 3, -1)
    );
    let one = fetch(&mut w, "limits", &[(0, 0)], 1 << 20, 1 << 20)[0].len() / 3;
    let one = i32::try_from(one).expect("small");
    let cases: [(&str, i32, i32, Vec<Vec<i64>>); 6] = [
        (
            "no limits",
            1 << 20,
            1 << 20,
            vec![vec![0, 1, 2], vec![0, 1, 2]],
        ),
        ("tiny total: one batch", 10, 1 << 20, vec![vec![0], vec![]]),
        (
            "tiny per partition: one batch",
            1 << 20,
            10,
            vec![vec![0], vec![]],
        ),
        (
            "room for one and a half",
            one * 3 / 2,
            1 << 20,
            vec![vec![0], vec![]],
        ),
        (
            "two per partition",
            1 << 20,
            one * 2,
            vec![vec![0, 1], vec![0, 1]],
        ),
        ("three in all", one * 3, one * 2, vec![vec![0, 1], vec![0]]),
    ];
    for (name, max_bytes, partition_max_bytes, expected) in cases {
        assert_eq!(
            fetched(&mut w, max_bytes, partition_max_bytes),
            expected,
            "{name} (batch of {one} bytes)"
        );
    }
    // An empty first partition does not use up the oversized allowance.
    let later = fetch(&mut w, "limits", &[(0, 3), (1, 0)], 10, 10);
    assert_eq!(batches_of(&later[1]).len(), 1);
    broker.stop();
}

#[test]
fn the_brokers_fetch_max_bytes_bounds_every_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(
        dir.path(),
        &["--flush", "always", "--fetch-max-bytes", "2500"],
    );
    create_topic(&broker.bootstrap(), "limits", 2);
    let mut w = Wire::connect(broker.kafka);
    for _ in 0..3 {
        produce_batch(&mut w, 0);
        produce_batch(&mut w, 1);
    }
    // Each batch is about 970 bytes: two fit in 2,500, whatever the client asks.
    let unbounded = |w: &mut Wire, version| {
        support::wire::fetch_version(w, version, "limits", &[(0, 0), (1, 0)], i32::MAX, 1 << 20)
            .iter()
            .map(|r| batches_of(r).len())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        unbounded(&mut w, 4),
        [2, 0],
        "v4, the oldest served, asks for 2 GiB"
    );
    assert_eq!(unbounded(&mut w, 12), [2, 0], "v12 asks for 2 GiB");
    // A smaller request limit still wins.
    assert_eq!(fetched(&mut w, 10, 1 << 20), vec![vec![0], vec![]]);
    broker.stop();
}

#[test]
fn librdkafka_with_tiny_fetch_sizes_consumes_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &["--flush", "interval:5"]);
    let bs = broker.bootstrap();
    create_topic(&bs, "small-fetches", 3);
    let p = producer(&bs, &[("linger.ms", "20"), ("batch.size", "2000")]);
    const N: usize = 300;
    for i in 0..N {
        let key = format!("k{i}");
        let value = format!("{i:05} {}", "p".repeat(200));
        p.send(BaseRecord::to("small-fetches").key(&key).payload(&value))
            .expect("queued");
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(20)).expect("flushed");

    let c = consumer(
        &bs,
        "small-fetches",
        &[
            ("message.max.bytes", "1000"),
            ("fetch.max.bytes", "1000"),
            ("max.partition.fetch.bytes", "1000"),
            ("fetch.wait.max.ms", "50"),
        ],
    );
    c.subscribe(&["small-fetches"]).expect("subscribe");
    let mut seen: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut total = 0;
    while total < N {
        assert!(Instant::now() < deadline, "consumed {total} of {N}");
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            seen.entry(m.partition()).or_default().push(m.offset());
            total += 1;
        }
    }
    for (partition, offsets) in &seen {
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(
            offsets, &expected,
            "partition {partition} in order, no gaps"
        );
    }
    broker.stop();
}
