//! rdkafka clients for the integration tests: admin, producer, consumer with test settings.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::BaseProducer;

/// A current-thread runtime for the admin client's futures.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// An admin client.
pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

/// Admin options with a 10 s operation timeout.
pub fn opts() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))
}

/// Creates `name` with `partitions` partitions, panicking on failure.
pub fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    create_topic_with(bootstrap, name, partitions, &[]);
}

/// Creates `name` with `partitions` partitions and topic `configs`, panicking on failure.
pub fn create_topic_with(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results = rt()
        .block_on(admin(bootstrap).create_topics(&[topic], &opts()))
        .expect("create_topics");
    for r in results {
        r.expect("topic created");
    }
}

fn config(bootstrap: &str, extra: &[(&str, &str)]) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap);
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg
}

/// A producer with `acks=all` and a 20 s message timeout, plus `extra`.
pub fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> BaseProducer {
    let mut cfg = config(
        bootstrap,
        &[("acks", "all"), ("message.timeout.ms", "20000")],
    );
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create().expect("producer")
}

/// A consumer reading from the earliest offset without auto-commit, plus `extra`.
pub fn consumer(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut cfg = config(
        bootstrap,
        &[
            ("group.id", group),
            ("auto.offset.reset", "earliest"),
            ("enable.auto.commit", "false"),
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "500"),
        ],
    );
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create().expect("consumer")
}
