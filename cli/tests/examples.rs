//! The smaller examples, run with `ferry dev` as their READMEs describe.

mod support;

use std::time::Duration;

use ferry_testkit::process::eventually;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::Value;
use support::*;

/// The events a recorder Service has received.
fn recorded(dev: &Dev, service: &str) -> Vec<Value> {
    http::get(&format!("{}/events", dev.url("Service", service)))
        .and_then(|(_, v)| v.as_array().cloned())
        .unwrap_or_default()
}

fn wait_recorded(dev: &Dev, service: &str, n: usize) -> Vec<Value> {
    eventually(&format!("{n} events at {service}"), WAIT, || {
        let events = recorded(dev, service);
        (events.len() >= n).then_some(events)
    })
}

fn send(dev: &Dev, target: &str, ty: &str, extra: &[&str], data: &str) {
    let ingress = dev.ingress();
    let mut args = vec![
        "send",
        target,
        "--ingress",
        &ingress,
        "--type",
        ty,
        "--source",
        "/test",
        "--data",
        data,
    ];
    args.extend_from_slice(extra);
    let o = ferry(&args);
    assert!(o.status.success(), "send {ty}: {}", stderr(&o));
}

/// The flow of examples/broker-trigger: SQL filter, retries, dead letters.
fn broker_trigger_flow(dev: &Dev) {
    dev.ready();
    let order = "com.example.order.placed";
    send(
        dev,
        "default/orders",
        order,
        &["--ext", "amount=250", "--id", "o1"],
        "{}",
    );
    send(
        dev,
        "default/orders",
        order,
        &["--ext", "amount=20", "--id", "o2"],
        "{}",
    );
    send(
        dev,
        "default/orders",
        "com.example.payment.received",
        &["--id", "p7"],
        "{}",
    );

    let dead = wait_recorded(dev, "dead-letters", 1);
    assert_eq!(dead[0]["id"], "p7");
    assert_eq!(dead[0]["knativeerrordest"], "http://127.0.0.1:9/");
    // o2 was sent before p7 was dead-lettered (after its retries): had it passed the filter,
    // it would be there by now.
    let large = wait_recorded(dev, "large-orders", 1);
    let ids: Vec<&Value> = large.iter().map(|e| &e["id"]).collect();
    assert_eq!(ids, ["o1"], "only the order over 100 passes `amount > 100`");
}

#[test]
fn broker_trigger_filters_with_sql_and_dead_letters_after_retries() {
    let bin = example_binaries();
    let dir = tempfile::tempdir().unwrap();
    let manifests = example("broker-trigger", dir.path(), &bin, &[]);
    let dev = Dev::start(&manifests, &dir.path().join("data"), &[]);
    broker_trigger_flow(&dev);
}

/// `--kafka`: the same flow on a log ferry dev does not run (here a broker started by the
/// test, as a Kafka cluster would be); ferry dev creates the Broker's topic there.
#[test]
fn broker_trigger_runs_on_an_external_log_with_kafka_flag() {
    let bin = example_binaries();
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config = ferry_broker::BrokerConfig::local(&dir.path().join("external"), &[]).unwrap();
    let external = runtime
        .block_on(ferry_broker::Broker::start(config))
        .expect("external log starts");
    let bootstrap = external.kafka_addr.to_string();
    let manifests = example("broker-trigger", dir.path(), &bin, &[]);
    let dev = Dev::start(
        &manifests,
        &dir.path().join("data"),
        &["--kafka", &bootstrap],
    );
    broker_trigger_flow(&dev);
    assert_eq!(dev.status().unwrap()["kafka"], bootstrap.as_str());
    assert!(
        !dir.path().join("data/broker").exists(),
        "no embedded broker ran"
    );
    let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let total: i64 = (0..4)
        .map(|p| {
            rdkafka::consumer::Consumer::fetch_watermarks(
                &consumer,
                "knative-broker-default-orders",
                p,
                Duration::from_secs(5),
            )
            .unwrap()
            .1
        })
        .sum();
    assert_eq!(total, 3, "the three events are in the external log");
    drop(dev);
    runtime
        .block_on(external.shutdown(Duration::from_secs(5)))
        .unwrap();
}

#[test]
fn channel_subscription_reply_reaches_the_second_channel() {
    let bin = example_binaries();
    let dir = tempfile::tempdir().unwrap();
    let manifests = example("channel-reply", dir.path(), &bin, &[]);
    let dev = Dev::start(&manifests, &dir.path().join("data"), &[]);
    dev.ready();
    let channel = dev.row("KafkaChannel", "orders").unwrap();
    assert_eq!(channel["url"], format!("{}/default/orders", dev.ingress()));
    send(
        &dev,
        "default/orders",
        "com.example.order.placed",
        &["--id", "o1"],
        r#"{"order":1}"#,
    );
    let checked = wait_recorded(&dev, "checker", 1);
    assert_eq!(checked[0]["id"], "o1");
    let audit = wait_recorded(&dev, "audit", 1);
    assert_eq!(audit[0]["id"], "o1-reply");
    assert_eq!(audit[0]["type"], "com.example.order.checked");
    assert_eq!(audit[0]["data"], serde_json::json!({"order": 1}));
}

#[test]
fn kafka_source_turns_plain_records_into_cloudevents() {
    let bin = example_binaries();
    let dir = tempfile::tempdir().unwrap();
    // The manifest names the broker's address: give ferry dev's embedded broker a known one.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bootstrap = format!("127.0.0.1:{port}");
    let manifests = example(
        "kafka-source",
        dir.path(),
        &bin,
        &[("127.0.0.1:9092", &bootstrap)],
    );
    let dev = Dev::start(
        &manifests,
        &dir.path().join("data"),
        &["--broker-listen", &bootstrap],
    );
    dev.ready();

    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "source",
            value: Some("till-4"),
        })
        .insert(Header {
            key: "content-type",
            value: Some("application/json"),
        });
    producer
        .send(
            BaseRecord::to("payments")
                .key("k1")
                .payload(r#"{"amount":12}"#)
                .partition(0)
                .headers(headers),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();

    let events = wait_recorded(&dev, "payments-log", 1);
    let e = &events[0];
    assert_eq!(e["id"], "partition:0/offset:0");
    assert_eq!(e["type"], "dev.knative.kafka.event");
    assert_eq!(
        e["source"],
        "/apis/v1/namespaces/default/kafkasources/payments#payments"
    );
    assert_eq!(e["subject"], "partition:0#0");
    assert_eq!(e["key"], "k1");
    assert_eq!(e["kafkaheadersource"], "till-4");
    // The content-type header becomes datacontenttype, so the data is JSON.
    assert_eq!(e["datacontenttype"], "application/json");
    assert_eq!(e["data"], serde_json::json!({"amount": 12}));
}
