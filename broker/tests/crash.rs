//! Crash safety, per flush policy: SIGKILL the broker while concurrent acks=all producers
//! write; after a restart every acknowledged record is there exactly once, in each producer's
//! order, and the log takes new writes. (`always` and `interval` also promise this across
//! power loss, which a test cannot cut; `os` promises only a process crash, which this is.)

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};
use support::{BrokerProcess, eventually};

/// Acknowledged (partition, offset, payload).
#[derive(Default, Clone)]
struct Acks(Arc<Mutex<Vec<(i32, i64, u64)>>>);

impl ClientContext for Acks {}
impl ProducerContext for Acks {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Ok(m) = result {
            let seq = std::str::from_utf8(m.payload().unwrap_or_default())
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(u64::MAX);
            self.0
                .lock()
                .expect("lock")
                .push((m.partition(), m.offset(), seq));
        }
    }
}

fn read_all(bootstrap: &str, topic: &str, partitions: i32) -> BTreeMap<i32, Vec<(i64, u64)>> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "verifier")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
        let (_, hi) = c
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("watermarks");
        ends.insert(p, hi);
    }
    c.assign(&tpl).expect("assign");
    let mut out: BTreeMap<i32, Vec<(i64, u64)>> = BTreeMap::new();
    let total: i64 = ends.values().sum();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let have: usize = out.values().map(Vec::len).sum();
        if have as i64 >= total {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out reading the log: {have} of {total} records; ends {ends:?}; got per partition {:?}",
            out.iter()
                .map(|(p, r)| (*p, r.len(), r.last().copied()))
                .collect::<Vec<_>>()
        );
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            let seq = std::str::from_utf8(m.payload().unwrap_or_default())
                .expect("utf8")
                .parse()
                .expect("number");
            out.entry(m.partition())
                .or_default()
                .push((m.offset(), seq));
        }
    }
    out
}

/// Payloads are `producer * PER_PRODUCER + sequence`.
const PER_PRODUCER: u64 = 1_000_000_000;

#[test]
fn acknowledged_records_survive_sigkill_flush_always() {
    survives_sigkill("always", 8);
}

#[test]
fn acknowledged_records_survive_sigkill_flush_interval() {
    survives_sigkill("interval:5", 4);
}

#[test]
fn acknowledged_records_survive_sigkill_flush_os() {
    survives_sigkill("os", 4);
}

/// `producers` idempotent acks=all producers write to a broker with `--flush policy` until
/// 2,000 records are acknowledged; SIGKILL; restart; check the log.
fn survives_sigkill(policy: &str, producers: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let flags = ["--flush", policy, "--default-partitions", "2"];
    let broker = BrokerProcess::start(dir.path(), &flags);
    let bs = broker.bootstrap();
    let acks = Acks::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..producers)
        .map(|id| {
            let producer: BaseProducer<Acks> = ClientConfig::new()
                .set("bootstrap.servers", &bs)
                .set("acks", "all")
                .set("enable.idempotence", "true")
                .set("linger.ms", "1")
                .set("message.timeout.ms", "3000")
                .create_with_context(acks.clone())
                .expect("producer");
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut seq: u64 = 0;
                while !stop.load(Ordering::Acquire) {
                    let payload = (id * PER_PRODUCER + seq).to_string();
                    let key = (seq % 7).to_string();
                    if producer
                        .send(BaseRecord::to("crash").key(&key).payload(&payload))
                        .is_ok()
                    {
                        seq += 1;
                    }
                    producer.poll(Duration::from_millis(u64::from(seq.is_multiple_of(50))));
                }
                let _ = producer.flush(Duration::from_secs(5));
            })
        })
        .collect();
    eventually("some acknowledged writes", Duration::from_secs(60), || {
        (acks.0.lock().expect("lock").len() >= 2_000).then_some(())
    });
    let fsyncs = fsync_count(&broker.admin_get("/metrics"));
    if policy == "os" {
        assert_eq!(fsyncs, 0, "`os` never fsyncs while running");
    } else {
        assert!(fsyncs > 0, "the flush metric counts {policy}'s fsyncs");
    }
    broker.kill9();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Release);
    for w in writers {
        w.join().expect("writer");
    }
    let acked = acks.0.lock().expect("lock").clone();
    assert!(acked.len() >= 2_000);

    let broker = BrokerProcess::start(dir.path(), &flags);
    let log = read_all(&broker.bootstrap(), "crash", 2);
    for (p, records) in &log {
        let offsets: Vec<i64> = records.iter().map(|r| r.0).collect();
        assert_eq!(
            offsets,
            (0..records.len() as i64).collect::<Vec<_>>(),
            "partition {p} has no gaps"
        );
        let mut last: BTreeMap<u64, u64> = BTreeMap::new();
        for (offset, payload) in records {
            let (producer, seq) = (payload / PER_PRODUCER, payload % PER_PRODUCER);
            let previous = last.insert(producer, seq);
            assert!(
                previous.is_none_or(|prev| prev < seq),
                "partition {p} offset {offset}: producer {producer}'s records in order, none twice"
            );
        }
    }
    for (p, offset, seq) in &acked {
        let stored = log
            .get(p)
            .and_then(|r| r.get(usize::try_from(*offset).expect("offset")));
        assert_eq!(
            stored,
            Some(&(*offset, *seq)),
            "acknowledged record {seq} at {p}/{offset}"
        );
    }

    // The recovered log takes new writes after the surviving ones.
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("acks", "all")
        .create()
        .expect("producer");
    for i in 0..10u64 {
        p.send(
            BaseRecord::to("crash")
                .key("k")
                .payload(&(1_000_000 + i).to_string())
                .partition(0),
        )
        .expect("send");
    }
    p.flush(Duration::from_secs(20)).expect("flush");
    let after = read_all(&broker.bootstrap(), "crash", 2);
    let p0 = &after[&0];
    assert_eq!(p0.len(), log.get(&0).map_or(0, Vec::len) + 10);
    assert_eq!(p0.last().map(|r| r.1), Some(1_000_009));
    broker.stop();
}

/// `ferry_broker_fsync_duration_seconds_count` in a /metrics page.
fn fsync_count(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("ferry_broker_fsync_duration_seconds_count "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no fsync count in\n{metrics}"))
}
