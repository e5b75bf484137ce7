//! OpenTelemetry spans from the real `ferry-broker` binary to a real OTLP receiver: a span per
//! Produce and Fetch request when the `OTEL_*` variables turn tracing on (over gRPC and over
//! HTTP), flushed at shutdown, none when the sampler keeps none or tracing is disabled, and a
//! bad `OTEL_*` value refusing the start.

mod support;

use std::time::{Duration, Instant};

use ferry_testkit::otlp::{OtlpReceiver, ReceivedSpan};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use support::clients::{consumer, create_topic, producer};
use support::wire::{Wire, batch, produce};
use support::{BrokerProcess, start_refused_with_env};

const WAIT: Duration = Duration::from_secs(20);
const CLIENT_ID: &str = "tracing-test";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Produces three records to `topic` with rdkafka, reads them back, and produces once with a
/// raw request to a topic that does not exist (answered UNKNOWN_TOPIC_OR_PARTITION).
fn traffic(broker: &BrokerProcess, topic: &str) {
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, topic, 1);
    let p = producer(&bootstrap, &[("client.id", CLIENT_ID), ("linger.ms", "0")]);
    for i in 0..3 {
        p.send(BaseRecord::to(topic).key("k").payload(&format!("v{i}")))
            .map_err(|(e, _)| e)
            .expect("queued");
    }
    p.flush(Duration::from_secs(20)).expect("acknowledged");

    let c = consumer(
        &bootstrap,
        "tracing",
        &[("client.id", CLIENT_ID), ("fetch.wait.max.ms", "100")],
    );
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    c.assign(&tpl).expect("assign");
    let deadline = Instant::now() + WAIT;
    let mut read = 0;
    while read < 3 {
        assert!(Instant::now() < deadline, "read {read} of 3 records");
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            let m = m.expect("a record");
            assert_eq!(m.topic(), topic);
            read += 1;
        }
    }

    let mut w = Wire::connect(broker.kafka);
    let (code, _) = produce(&mut w, "nowhere", 0, batch(&["lost"]));
    assert_eq!(code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
}

fn named<'s>(spans: &'s [ReceivedSpan], name: &str, topic: &str) -> Vec<&'s ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.name == name && s.attr("messaging.destination.name") == Some(topic))
        .collect()
}

fn records(span: &ReceivedSpan) -> i64 {
    span.attr("messaging.batch.message_count")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Every span received is a root server span of the broker's, for Produce or Fetch, with the
/// traffic's attributes; the failed produce failed its span.
fn check(spans: &[ReceivedSpan], topic: &str, protocol: &str) {
    for s in spans {
        assert!(s.name == "produce" || s.name == "fetch", "{s:#?}");
        assert_eq!(s.service, "ferry-broker");
        assert_eq!(s.protocol, protocol);
        assert_eq!(s.kind, 2, "server: {s:#?}");
        assert!(s.parent_span_id.is_empty(), "a root span: {s:#?}");
        assert_eq!(s.attr("messaging.system"), Some("kafka"));
    }
    let produced = named(spans, "produce", topic);
    let p = produced
        .iter()
        .find(|s| s.attr("messaging.client.id") == Some(CLIENT_ID))
        .unwrap_or_else(|| panic!("no produce span from {CLIENT_ID}: {spans:#?}"));
    assert_eq!(p.attr("messaging.operation.type"), Some("send"));
    assert_eq!(p.attr("messaging.destination.partition.id"), Some("0"));
    assert_eq!(p.attr("ferry.kafka.acks"), Some("-1"));
    assert!(records(p) >= 1, "{p:#?}");
    assert_eq!(p.status, 0, "{p:#?}");
    assert_eq!(
        produced.iter().map(|s| records(s)).sum::<i64>(),
        3,
        "the three records, across produce spans: {produced:#?}"
    );

    let fetched = named(spans, "fetch", topic);
    let f = fetched
        .iter()
        .find(|s| records(s) > 0)
        .unwrap_or_else(|| panic!("no fetch span with records: {fetched:#?}"));
    assert_eq!(f.attr("messaging.operation.type"), Some("receive"));
    assert_eq!(f.attr("messaging.client.id"), Some(CLIENT_ID));
    assert_eq!(f.attr("ferry.kafka.max_wait_ms"), Some("100"));
    assert!(
        f.attr("ferry.kafka.record_bytes")
            .is_some_and(|b| b.parse::<i64>().unwrap_or(0) > 0)
    );

    let failed = named(spans, "produce", "nowhere");
    assert_eq!(failed.len(), 1, "{spans:#?}");
    assert_eq!(failed[0].status, 2, "error: {:#?}", failed[0]);
    assert_eq!(
        failed[0].attr("error.type"),
        Some("UnknownTopicOrPartition")
    );
    assert!(
        failed[0].status_message.contains("nowhere-0"),
        "{:#?}",
        failed[0]
    );
}

fn done(topic: &'static str) -> impl Fn(&[ReceivedSpan]) -> bool {
    move |s| {
        named(s, "produce", topic)
            .iter()
            .map(|s| records(s))
            .sum::<i64>()
            == 3
            && named(s, "fetch", topic).iter().any(|s| records(s) > 0)
            && !named(s, "produce", "nowhere").is_empty()
    }
}

#[test]
fn produce_and_fetch_spans_reach_a_grpc_collector() {
    let rt = runtime();
    let otlp = rt.block_on(OtlpReceiver::start());
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = otlp.grpc_endpoint();
    let broker = BrokerProcess::start_with_env(
        dir.path(),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    traffic(&broker, "orders");
    let spans = rt.block_on(otlp.wait_for(WAIT, done("orders")));
    check(&spans, "orders", "grpc");
    broker.stop();
}

#[test]
fn spans_sent_over_http_are_flushed_at_shutdown() {
    let rt = runtime();
    let otlp = rt.block_on(OtlpReceiver::start());
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = otlp.http_endpoint();
    let broker = BrokerProcess::start_with_env(
        dir.path(),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "1"),
            // No scheduled export during the test: only shutdown sends the spans.
            ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        ],
    );
    traffic(&broker, "audit");
    assert!(
        otlp.spans().is_empty(),
        "nothing exported before the schedule or shutdown"
    );
    broker.stop();
    let spans = otlp.spans();
    assert!(done("audit")(&spans), "flushed by the stop: {spans:#?}");
    check(&spans, "audit", "http");
}

/// A broker whose spans, if any were made, would have been sent by the time it stopped.
fn exports_nothing(env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start_with_env(dir.path(), &[], env);
    traffic(&broker, "quiet");
    // Stopping flushes whatever was batched, so an empty receiver afterwards is final.
    broker.stop();
}

#[test]
fn a_zero_sampling_rate_or_disabled_sdk_sends_no_span() {
    let rt = runtime();
    let otlp = rt.block_on(OtlpReceiver::start());
    let endpoint = otlp.grpc_endpoint();
    let common = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    exports_nothing(
        &[
            &common[..],
            &[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0"),
            ],
        ]
        .concat(),
    );
    exports_nothing(&[&common[..], &[("OTEL_SDK_DISABLED", "true")]].concat());
    // Without any OTEL_* variable tracing is off: nothing to send and nowhere to send it.
    exports_nothing(&[]);
    let spans = otlp.spans();
    assert!(spans.is_empty(), "{spans:#?}");
}

#[test]
fn a_bad_otel_variable_refuses_the_start_and_names_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stderr = start_refused_with_env(
        dir.path(),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
        ],
    );
    assert!(stderr.contains("OTEL_TRACES_SAMPLER"), "{stderr}");
    assert!(stderr.contains("sometimes"), "{stderr}");
}
