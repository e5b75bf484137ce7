//! Property test over request decoding and handling: arbitrary bytes and mutated valid
//! requests never panic the broker or corrupt its log; afterwards it still serves correctly.

mod support;

// As in the broker binary: huge array reservations from malformed lengths must not abort.
#[global_allocator]
static ALLOCATOR: ferry_broker::SafeAllocator = ferry_broker::SafeAllocator;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferry_broker::config::Retention;
use ferry_broker::{Broker, BrokerConfig};
use kafka_protocol::messages::CreateTopicsRequest;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use proptest::prelude::*;
use support::requests::{name, produce, seeds};
use support::wire::{batch, frame};

struct Fixture {
    rt: tokio::runtime::Runtime,
    broker: Arc<Broker>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let config = BrokerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        advertised_listener: None,
        admin_listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().to_owned(),
        flush: "os".parse().expect("policy"),
        truncate_corrupt_segments: false,
        default_partitions: 1,
        max_partitions: 1000,
        failed_authentication_delay: Duration::from_millis(100),
        fetch_max_bytes: 1 << 20,
        auto_create_topics: true,
        retention: Retention::Forever,
        retention_bytes: -1,
        retention_check_interval: Duration::from_secs(300),
        segment_bytes: 1 << 20,
        segment_max_age: Duration::from_secs(3600),
        max_message_bytes: 1 << 20,
        max_request_bytes: 1 << 20,
        max_connections: 1000,
        max_connections_per_ip: 200,
        connections_max_idle: Duration::from_secs(600),
        request_read_timeout: Duration::from_secs(30),
        sasl_login_timeout: Duration::from_secs(10),
        group_initial_rebalance_delay: Duration::ZERO,
        group_min_session_timeout: Duration::from_secs(6),
        group_max_session_timeout: Duration::from_secs(60),
        sasl_users: None,
        sasl_mechanisms: Vec::new(),
        tls_cert: None,
        tls_key: None,
        tls_client_ca: None,
        authorizer: false,
        super_users: Vec::new(),
        allow_everyone_if_no_acl_found: false,
    };
    let running = rt.block_on(Broker::start(config)).expect("start");
    let broker = running.broker().clone();
    std::mem::forget(running); // the runtime owns its tasks until the test ends
    rt.block_on(broker.answer(frame(
        &CreateTopicsRequest::default().with_topics(vec![
            CreatableTopic::default()
                .with_name(name("fuzz"))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]),
        5,
        0,
    )))
    .expect("create topic");
    Fixture {
        rt,
        broker,
        _dir: dir,
    }
}

fn answer(f: &Fixture, bytes: Vec<u8>) {
    // Waiting requests (a JoinGroup waiting for a rebalance) are cut short; what matters is
    // that nothing panics.
    let _ = f.rt.block_on(async {
        tokio::time::timeout(
            Duration::from_millis(200),
            f.broker.answer(Bytes::from(bytes)),
        )
        .await
    });
}

/// The log still holds only valid batches, and a valid produce/fetch round trip works.
fn assert_healthy(f: &Fixture) {
    let end = f
        .broker
        .topics()
        .get("fuzz")
        .expect("topic")
        .partition(0)
        .expect("p0");
    let before = end.high_watermark();
    let resp =
        f.rt.block_on(f.broker.answer(frame(&produce(batch(&["check"])), 9, 9)))
            .expect("produce answered")
            .expect("a response");
    assert!(!resp.is_empty());
    assert_eq!(end.high_watermark(), before + 1);
    // A mutated DeleteRecords may have moved the log start.
    let read = end
        .read(end.log_start_offset(), usize::MAX >> 1)
        .expect("read");
    ferry_broker::storage::batches(&read.records).expect("every stored batch is valid");
}

/// A malformed array length (2³¹ − 1 topics in an OffsetFetch v1) is answered or closed like
/// any bad frame; it does not abort the process. Found by `mutated_requests_never_panic`.
#[test]
fn huge_array_lengths_do_not_abort() {
    let f = fixture();
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&9i16.to_be_bytes()); // OffsetFetch
    bytes.extend_from_slice(&1i16.to_be_bytes()); // v1 (not flexible)
    bytes.extend_from_slice(&7i32.to_be_bytes()); // correlation id
    bytes.extend_from_slice(&(-1i16).to_be_bytes()); // no client id
    bytes.extend_from_slice(&1i16.to_be_bytes());
    bytes.push(b'g'); // group id "g"
    bytes.extend_from_slice(&i32::MAX.to_be_bytes()); // topics: 2^31 - 1 of them, none present
    let answered = f.rt.block_on(f.broker.answer(Bytes::from(bytes)));
    assert!(
        answered.is_err(),
        "an undecodable frame closes the connection: {answered:?}"
    );
    assert_healthy(&f);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        thread_local!(static F: Fixture = fixture());
        F.with(|f| {
            answer(f, bytes);
            assert_healthy(f);
        });
    }

    #[test]
    fn mutated_requests_never_panic(
        seed in 0usize..10,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        thread_local!(static F: Fixture = fixture());
        let mut bytes = seeds()[seed].clone();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        F.with(|f| {
            answer(f, bytes);
            assert_healthy(f);
        });
    }
}
