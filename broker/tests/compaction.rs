//! Compacted topics (`cleanup.policy=compact`) against the real broker with librdkafka: the
//! log keeps the latest value of each key at its offset, a consumer reading from the start
//! ends with the same state as before (tombstones included), keyless records are refused
//! record by record (KIP-467) as Kafka refuses them, and all of it holds across a restart.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};
use support::BrokerProcess;
use support::clients::{consumer, create_topic_with, producer, rt};

const TOPIC: &str = "latest";
const KEYS: usize = 10;
const RECORDS: usize = 400;

/// Every record of partition 0 from the start to the high watermark: `(offset, key, value)`.
fn read_all(bootstrap: &str) -> Vec<(i64, String, Option<String>)> {
    let c: BaseConsumer = consumer(bootstrap, "reader", &[]);
    let (_, high) = c
        .fetch_watermarks(TOPIC, 0, Duration::from_secs(10))
        .expect("watermarks");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .expect("partition");
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.last().is_none_or(|(o, _, _)| o + 1 < high) {
        assert!(Instant::now() < deadline, "read only {} records", out.len());
        let Some(m) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.expect("record");
        let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
        out.push((
            m.offset(),
            text(m.key()).expect("every record has a key"),
            text(m.payload()),
        ));
    }
    out
}

/// What a reader of the whole log ends with.
fn state(records: &[(i64, String, Option<String>)]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (_, k, v) in records {
        match v {
            Some(v) => out.insert(k.clone(), v.clone()),
            None => out.remove(k),
        };
    }
    out
}

fn compactions(broker: &BrokerProcess) -> u64 {
    broker
        .admin_get("/metrics")
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "ferry_broker_compactions_total{{topic=\"{TOPIC}\"}}"
            ))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_compacted_topic_keeps_the_latest_value_of_each_key_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flags = ["--retention-check-interval", "200ms"];
    let broker = BrokerProcess::start(dir.path(), &flags);
    let bs = broker.bootstrap();
    create_topic_with(
        &bs,
        TOPIC,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "4096"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    );

    // One record a batch, so that segments roll every few dozen records.
    let p = producer(&bs, &[("linger.ms", "0"), ("batch.num.messages", "1")]);
    for i in 0..RECORDS {
        let (key, value) = (format!("k{}", i % KEYS), format!("v{i} {}", "x".repeat(40)));
        p.send(BaseRecord::to(TOPIC).partition(0).key(&key).payload(&value))
            .expect("queued");
        p.poll(Duration::ZERO);
    }
    // A tombstone for k3, then enough records after it for its segment to close.
    p.send(BaseRecord::<str, str>::to(TOPIC).partition(0).key("k3"))
        .expect("queued");
    for i in 0..60 {
        let value = format!("w{i} {}", "x".repeat(40));
        p.send(BaseRecord::to(TOPIC).partition(0).key("k0").payload(&value))
            .expect("queued");
    }
    p.flush(Duration::from_secs(20)).expect("flushed");

    // A record without a key is refused, with Kafka's error, and nothing is written.
    let keyless: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer");
    let refused = rt().block_on(
        keyless.send(
            FutureRecord::<(), str>::to(TOPIC)
                .partition(0)
                .payload("no key"),
            Timeout::After(Duration::from_secs(10)),
        ),
    );
    match refused {
        Err((KafkaError::MessageProduction(code), _)) => {
            assert_eq!(code, RDKafkaErrorCode::InvalidRecord);
        }
        other => panic!("a keyless record was not refused: {other:?}"),
    }

    // The cleaner runs at every retention check (200 ms here) once the log is dirty enough;
    // the first runs may come while records still arrive, so wait for the superseded ones to
    // be gone from every closed segment.
    let deadline = Instant::now() + Duration::from_secs(30);
    let records = loop {
        let records = read_all(&bs);
        if compactions(&broker) > 0 && records.len() < RECORDS / 2 {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "not compacted within 30 s: {} of {} records left, {} compactions",
            records.len(),
            RECORDS + 61,
            compactions(&broker)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut expected: BTreeMap<String, String> = (RECORDS - KEYS..RECORDS)
        .map(|i| (format!("k{}", i % KEYS), format!("v{i} {}", "x".repeat(40))))
        .collect();
    expected.remove("k3");
    expected.insert("k0".into(), format!("w59 {}", "x".repeat(40)));
    assert_eq!(state(&records), expected);
    let offsets: Vec<i64> = records.iter().map(|r| r.0).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    assert!(
        offsets.last().is_some_and(|&o| o == (RECORDS + 60) as i64),
        "the log end stays: {offsets:?}"
    );
    assert!(
        broker.admin_get("/metrics").contains(&format!(
            "ferry_broker_compaction_removed_records_total{{topic=\"{TOPIC}\"}}"
        )),
        "counted"
    );

    // After a restart the log holds the same state: records read before, at their offsets
    // (cleaning may have gone on and removed more superseded ones), the same log end.
    let kafka: std::net::SocketAddr = bs.parse().expect("addr");
    broker.stop();
    let broker = BrokerProcess::restart_after_stop(dir.path(), kafka, &flags);
    let again = read_all(&bs);
    assert_eq!(state(&again), expected, "the same state after a restart");
    for record in &again {
        assert!(
            records.contains(record),
            "{record:?} was not there before the restart"
        );
    }
    assert_eq!(again.last(), records.last(), "the same log end");
    drop(broker);
}

/// KIP-467 on the wire: a batch with keyless records in a compacted topic is refused whole
/// with `INVALID_RECORD`, naming each keyless record's index; nothing is written.
#[test]
fn keyless_records_are_named_in_the_produce_response() {
    use support::wire::{Wire, batch, fetch_one, produce_answer};

    const INVALID_RECORD: i16 = 87;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &[]);
    create_topic_with(
        &broker.bootstrap(),
        TOPIC,
        1,
        &[("cleanup.policy", "compact,delete")],
    );
    let mut w = Wire::connect(broker.bootstrap().parse().expect("addr"));
    let p = &produce_answer(&mut w, TOPIC, 0, batch(&["a", "b"]));
    assert_eq!(p.error_code, INVALID_RECORD);
    let message = "Compacted topic cannot accept message without key in topic partition latest-0.";
    assert_eq!(p.error_message.as_deref(), Some(message));
    let named: Vec<(i32, Option<&str>)> = p
        .record_errors
        .iter()
        .map(|e| (e.batch_index, e.batch_index_error_message.as_deref()))
        .collect();
    assert_eq!(named, [(0, Some(message)), (1, Some(message))]);
    let fetched = fetch_one(&mut w, TOPIC, 0, 0);
    assert_eq!(fetched.high_watermark, 0, "nothing written");
}
