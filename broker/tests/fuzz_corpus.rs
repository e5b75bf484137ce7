//! The broker's fuzz targets (`fuzz/`, docs/fuzzing.md): their corpora and every input that
//! once failed them, replayed through the same entry points as cargo-fuzz, on stable.

mod support;

// As in the broker binary: see `SafeAllocator`'s docs.
#[global_allocator]
static ALLOCATOR: ferry_broker::SafeAllocator = ferry_broker::SafeAllocator;

use std::time::Duration;

use bytes::Bytes;
use ferry_broker::fuzzing::{Connections, SASL_PASSWORD, SASL_USER, produced_batches};
use ferry_broker::{Broker, BrokerConfig};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{
    ApiVersionsRequest, CreateTopicsRequest, MetadataRequest, SaslAuthenticateRequest,
    SaslHandshakeRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use support::requests::{fetch, name, produce, seeds};
use support::wire::{batch, batch_with, frame};

/// A current-thread runtime with paused time, as the fuzz target runs the brokers on.
fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime")
}

#[test]
fn kafka_connection_inputs() {
    let rt = paused_runtime();
    let mut brokers = rt.block_on(Connections::start()).expect("brokers start");
    ferry_testkit::fuzz::replay("kafka_connection", |data| {
        rt.block_on(brokers.serve(data))
            .expect("fresh brokers start");
    });
    let answered = rt.block_on(
        brokers
            .open()
            .answer(frame(&ApiVersionsRequest::default(), 3, 1)),
    );
    assert!(
        matches!(answered, Ok(Some(_))),
        "still serving: {answered:?}"
    );
}

/// Brokers the kafka_connection target replaces are freed with their files (a 10 million
/// input run once stopped on "Too many open files").
#[test]
fn replaced_brokers_are_freed() {
    let rt = paused_runtime();
    let mut brokers = rt.block_on(Connections::start()).expect("brokers start");
    for (_, data) in ferry_testkit::fuzz::inputs("kafka_connection") {
        rt.block_on(brokers.serve(&data)).expect("served");
    }
    let old = brokers.weak();
    rt.block_on(brokers.replace()).expect("fresh brokers start");
    // Lets the runtime drop the old brokers' aborted tasks.
    rt.block_on(async { tokio::time::sleep(Duration::from_secs(1)).await });
    let kept: Vec<usize> = old.iter().map(std::sync::Weak::strong_count).collect();
    assert_eq!(
        kept,
        [0, 0],
        "references still held to the replaced brokers"
    );
}

/// A long poll ends when its broker is dropped without a shutdown, instead of spinning until
/// its deadline (found by the kafka_connection target, whose brokers are replaced every
/// 10,000 inputs).
#[test]
fn a_long_poll_ends_when_the_broker_is_dropped() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    rt.block_on(async {
        let config = BrokerConfig::local(dir.path(), &["--flush", "os"]).expect("config");
        let running = Broker::start(config).await.expect("start");
        let broker = running.broker().clone();
        let create = CreateTopicsRequest::default().with_topics(vec![
            CreatableTopic::default()
                .with_name(name("fuzz"))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]);
        broker.answer(frame(&create, 5, 1)).await.expect("create");
        let long_poll = frame(&fetch(0).with_max_wait_ms(30_000), 12, 2);
        let poll = tokio::spawn(async move { broker.answer(long_poll).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(running);
        let ended = tokio::time::timeout(Duration::from_secs(5), poll).await;
        assert!(ended.is_ok(), "the long poll still runs");
    });
}

#[test]
fn record_batches_inputs() {
    ferry_testkit::fuzz::replay("record_batches", produced_batches);
}

/// One connection's bytes: the broker pick (1: SASL), then each frame with its length.
fn connection(sasl: bool, frames: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![u8::from(sasl)];
    for f in frames {
        out.extend_from_slice(&(f.len() as i32).to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}

fn handshake(mechanism: &'static str, version: i16) -> Bytes {
    frame(
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism)),
        version,
        1,
    )
}

fn authenticate(token: &[u8]) -> Bytes {
    frame(
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token)),
        2,
        2,
    )
}

/// Writes the seed corpus of both targets into `fuzz/seeds/` (run with `--ignored`; cargo-fuzz
/// then grows and minimizes `fuzz/corpus/` from it).
#[test]
#[ignore = "writes files: run by hand to regenerate the seeds"]
fn write_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
    let write = |target: &str, name: String, bytes: &[u8]| {
        let d = dir.join(target);
        std::fs::create_dir_all(&d).expect("seed dir");
        std::fs::write(d.join(name), bytes).expect("seed");
    };
    let requests = seeds();
    for (i, f) in requests.iter().enumerate() {
        write(
            "kafka_connection",
            format!("request-{i}"),
            &connection(false, &[f]),
        );
    }
    let all: Vec<&[u8]> = requests.iter().map(Vec::as_slice).collect();
    write(
        "kafka_connection",
        "all-requests".into(),
        &connection(false, &all),
    );
    let plain = format!("\0{SASL_USER}\0{SASL_PASSWORD}");
    let metadata = frame(&MetadataRequest::default().with_topics(None), 12, 3);
    let produced = frame(&produce(batch(&["after login"])), 9, 4);
    let api_versions = frame(&ApiVersionsRequest::default(), 3, 0);
    for (name, frames) in [
        (
            "sasl-plain-v1",
            vec![
                &api_versions[..],
                &handshake("PLAIN", 1),
                &authenticate(plain.as_bytes()),
                &metadata,
                &produced,
            ],
        ),
        (
            "sasl-plain-v0",
            vec![&handshake("PLAIN", 0), plain.as_bytes(), &metadata],
        ),
        (
            "sasl-scram-256-v1",
            vec![
                &handshake("SCRAM-SHA-256", 1),
                &authenticate(b"n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL"),
                &authenticate(b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="),
            ],
        ),
        (
            "sasl-scram-512-v0",
            vec![
                &handshake("SCRAM-SHA-512", 0),
                b"n,,n=alice,r=rOprNGfwEbeRWgbNEkqO",
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            ],
        ),
        ("sasl-refused", vec![&metadata[..]]),
    ] {
        write("kafka_connection", name.into(), &connection(true, &frames));
    }
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    for (i, codec) in codecs.into_iter().enumerate() {
        let batch = batch_with(&["a", "bb", "ccc"], 1_700_000_000_000, codec);
        // The first byte picks the topic's compression.type: re-compress into the next codec.
        let mut input = vec![(i + 2) as u8];
        input.extend_from_slice(&batch);
        write("record_batches", format!("{codec:?}"), &input);
    }
}
