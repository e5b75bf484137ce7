//! librdkafka (through the `rdkafka` crate, bundled librdkafka 2.x) against the real
//! `ferry-broker` binary: admin, produce/consume, idempotence, groups, restarts.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use support::{BrokerProcess, eventually};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin = admin(bootstrap);
    let results = rt()
        .block_on(admin.create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .expect("create_topics");
    for r in results {
        r.expect("topic created");
    }
}

fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> BaseProducer {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "20000");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create().expect("producer")
}

fn produce(p: &BaseProducer, topic: &str, partition: Option<i32>, key: &str, value: &str) {
    let mut rec = BaseRecord::to(topic).key(key).payload(value);
    if let Some(part) = partition {
        rec = rec.partition(part);
    }
    loop {
        match p.send(rec) {
            Ok(()) => break,
            Err((e, back)) => {
                assert!(
                    matches!(
                        e.rdkafka_error_code(),
                        Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                    ),
                    "send failed: {e}"
                );
                p.poll(Duration::from_millis(10));
                rec = back;
            }
        }
    }
    p.poll(Duration::ZERO);
}

fn consumer(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create().expect("consumer")
}

/// (partition, offset, key, value) of everything consumed until `want` records arrived.
fn drain(c: &BaseConsumer, want: usize, timeout: Duration) -> Vec<(i32, i64, String, String)> {
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + timeout;
    while got.len() < want {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out with {} of {want} records; last: {:?}",
            got.len(),
            got.last()
        );
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            got.push((
                m.partition(),
                m.offset(),
                String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            ));
        }
    }
    got
}

#[test]
fn produce_consume_list_offsets_and_admin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &["--flush", "interval:5"]);
    let bs = broker.bootstrap();
    create_topic(&bs, "orders", 3);

    let p = producer(&bs, &[("compression.type", "lz4")]);
    for i in 0..300 {
        produce(
            &p,
            "orders",
            Some(i % 3),
            &format!("k{i}"),
            &format!("v{i}"),
        );
    }
    p.flush(Duration::from_secs(20)).expect("flush");

    let c = consumer(&bs, "readers", &[]);
    c.subscribe(&["orders"]).expect("subscribe");
    let got = drain(&c, 300, Duration::from_secs(30));
    let mut per_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (part, offset, key, value) in &got {
        assert_eq!(key[1..], value[1..], "key and value travel together");
        per_partition.entry(*part).or_default().push(*offset);
    }
    for (part, offsets) in &per_partition {
        assert_eq!(
            offsets,
            &(0..100).collect::<Vec<_>>(),
            "partition {part} in order"
        );
    }

    let (lo, hi) = c
        .fetch_watermarks("orders", 1, Duration::from_secs(5))
        .expect("watermarks");
    assert_eq!((lo, hi), (0, 100));
    let mut by_time = TopicPartitionList::new();
    by_time
        .add_partition_offset("orders", 0, Offset::Offset(0))
        .expect("tpl");
    let found = c
        .offsets_for_times(by_time, Duration::from_secs(5))
        .expect("offsets_for_times");
    assert_eq!(
        found.find_partition("orders", 0).expect("p0").offset(),
        Offset::Offset(0)
    );

    // Admin: grow, describe, delete.
    let a = admin(&bs);
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let grown = rt()
        .block_on(a.create_partitions(&[NewPartitions::new("orders", 5)], &opts))
        .expect("create_partitions");
    grown[0].as_ref().expect("grown");
    let md = c
        .fetch_metadata(Some("orders"), Duration::from_secs(5))
        .expect("metadata");
    assert_eq!(md.topics()[0].partitions().len(), 5);
    let configs = rt()
        .block_on(a.describe_configs(&[rdkafka::admin::ResourceSpecifier::Topic("orders")], &opts))
        .expect("describe_configs");
    let cfg = configs[0].as_ref().expect("config");
    assert_eq!(
        cfg.get("retention.ms")
            .and_then(|e| e.value.clone())
            .as_deref(),
        Some("604800000")
    );
    let again = rt()
        .block_on(a.create_topics(
            &[NewTopic::new("orders", 1, TopicReplication::Fixed(1))],
            &opts,
        ))
        .expect("create again");
    assert!(
        matches!(
            &again[0],
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))
        ),
        "{again:?}"
    );
    let bad = rt()
        .block_on(a.create_topics(
            &[NewTopic::new("replicated", 1, TopicReplication::Fixed(3))],
            &opts,
        ))
        .expect("create replicated");
    assert!(
        matches!(
            &bad[0],
            Err((
                _,
                rdkafka::types::RDKafkaErrorCode::InvalidReplicationFactor
            ))
        ),
        "{bad:?}"
    );
    let deleted = rt()
        .block_on(a.delete_topics(&["orders"], &opts))
        .expect("delete_topics");
    deleted[0].as_ref().expect("deleted");
    let md = a
        .inner()
        .fetch_metadata(None, Duration::from_secs(5))
        .expect("metadata");
    assert!(md.topics().iter().all(|t| t.name() != "orders"));

    let metrics = broker.admin_get("/metrics");
    assert!(
        metrics.contains("ferry_broker_records_in_total{topic=\"orders\"} 300"),
        "{metrics}"
    );
    assert!(metrics.contains("ferry_broker_request_duration_seconds_count{api=\"Produce\"}"));
    broker.stop();
}

#[test]
fn idempotent_producer_writes_each_record_once_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &["--flush", "os"]);
    let bs = broker.bootstrap();
    create_topic(&bs, "ledger", 1);
    let p = producer(
        &bs,
        &[
            ("enable.idempotence", "true"),
            ("max.in.flight.requests.per.connection", "5"),
            ("batch.num.messages", "50"),
        ],
    );
    for i in 0..2000 {
        produce(&p, "ledger", Some(0), "k", &i.to_string());
    }
    p.flush(Duration::from_secs(30)).expect("flush");
    let c = consumer(&bs, "audit", &[]);
    c.subscribe(&["ledger"]).expect("subscribe");
    let got = drain(&c, 2000, Duration::from_secs(30));
    let values: Vec<i64> = got.iter().map(|r| r.3.parse().expect("number")).collect();
    assert_eq!(values, (0..2000).collect::<Vec<_>>());
    assert!(
        c.poll(Duration::from_millis(500)).is_none(),
        "no duplicates follow"
    );
    broker.stop();
}

/// Consumes with a synchronous commit after every record until `stop`, recording what it saw.
fn group_member(
    bs: String,
    seen: Arc<Mutex<Vec<(i32, i64)>>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let c = consumer(&bs, "trio", &[("partition.assignment.strategy", "range")]);
        c.subscribe(&["events"]).expect("subscribe");
        while !stop.load(Ordering::Acquire) {
            if let Some(m) = c.poll(Duration::from_millis(50)) {
                let m = m.expect("consume");
                seen.lock().expect("lock").push((m.partition(), m.offset()));
                c.commit_message(&m, CommitMode::Sync).expect("commit");
            }
        }
        c.unsubscribe();
        // Dropping the consumer closes it, which sends LeaveGroup.
    })
}

#[test]
fn group_of_three_rebalances_and_consumes_each_record_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &["--flush", "interval:5"]);
    let bs = broker.bootstrap();
    create_topic(&bs, "events", 6);
    let p = producer(&bs, &[]);
    let mut next = 0;
    let mut produce_batch = |n: i32| {
        for _ in 0..n {
            produce(&p, "events", Some(next % 6), "k", &next.to_string());
            next += 1;
        }
        p.flush(Duration::from_secs(20)).expect("flush");
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let count = |seen: &Arc<Mutex<Vec<(i32, i64)>>>| seen.lock().expect("lock").len();

    produce_batch(120);
    let stop1 = Arc::new(AtomicBool::new(false));
    let m1 = group_member(bs.clone(), seen.clone(), stop1.clone());
    eventually("first member consumes", Duration::from_secs(30), || {
        (count(&seen) >= 20).then_some(())
    });

    let stop2 = Arc::new(AtomicBool::new(false));
    let stop3 = Arc::new(AtomicBool::new(false));
    let m2 = group_member(bs.clone(), seen.clone(), stop2.clone());
    let m3 = group_member(bs.clone(), seen.clone(), stop3.clone());
    produce_batch(120);
    eventually(
        "members 2 and 3 join and work",
        Duration::from_secs(40),
        || (count(&seen) >= 200).then_some(()),
    );

    stop1.store(true, Ordering::Release);
    m1.join().expect("member 1");
    produce_batch(120);
    eventually("all 360 consumed", Duration::from_secs(40), || {
        (count(&seen) >= 360).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    for s in [&stop2, &stop3] {
        s.store(true, Ordering::Release);
    }
    m2.join().expect("member 2");
    m3.join().expect("member 3");

    let seen = seen.lock().expect("lock").clone();
    let unique: HashSet<(i32, i64)> = seen.iter().copied().collect();
    assert_eq!(unique.len(), 360, "every record consumed");
    assert_eq!(seen.len(), 360, "and none twice: {} deliveries", seen.len());
    let metrics = broker.admin_get("/metrics");
    let rebalances: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ferry_broker_group_rebalances_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("rebalance counter");
    assert!(rebalances >= 3.0, "join, join, leave: {rebalances}");
    broker.stop();
}

#[test]
fn committed_offsets_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &["--flush", "always"]);
    let bs = broker.bootstrap();
    create_topic(&bs, "jobs", 1);
    let p = producer(&bs, &[]);
    for i in 0..100 {
        produce(&p, "jobs", Some(0), "k", &i.to_string());
    }
    p.flush(Duration::from_secs(20)).expect("flush");
    drop(p);
    {
        let c = consumer(&bs, "workers", &[]);
        c.subscribe(&["jobs"]).expect("subscribe");
        let got = drain(&c, 40, Duration::from_secs(30));
        let last = got.last().expect("one");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("jobs", 0, Offset::Offset(last.1 + 1))
            .expect("tpl");
        c.commit(&tpl, CommitMode::Sync).expect("commit");
        assert_eq!(last.1, 39);
    }
    let kafka = broker.kafka;
    broker.stop();

    let broker = BrokerProcess::restart_after_stop(dir.path(), kafka, &["--flush", "always"]);
    let c = consumer(&bs, "workers", &[]);
    c.subscribe(&["jobs"]).expect("subscribe");
    let got = drain(&c, 60, Duration::from_secs(30));
    assert_eq!(got[0].1, 40, "resumes at the committed offset");
    assert_eq!(got.last().map(|r| r.3.clone()), Some("99".to_owned()));
    let committed = c.committed(Duration::from_secs(5)).expect("committed");
    assert_eq!(
        committed.find_partition("jobs", 0).expect("p0").offset(),
        Offset::Offset(40)
    );
    broker.stop();
}
