//! librdkafka (the `rdkafka` crate, built with OpenSSL) against the real `ferry-broker`
//! binary with SASL and TLS: SASL_PLAINTEXT with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, wrong
//! credentials, SSL with server authentication, mutual TLS, and SASL_SSL.

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_testkit::tls::TestCertificates;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, ProducerContext};
use support::BrokerProcess;

const ALICE: (&str, &str) = ("alice", "alice-s3cret");
const BOB: (&str, &str) = ("bob", "b0b:with colon and spaces");

/// Records the client's error callbacks and delivery reports.
#[derive(Clone, Default)]
struct Recorder {
    errors: Arc<Mutex<Vec<String>>>,
    delivered: Arc<Mutex<Vec<Result<(), String>>>>,
}

impl ClientContext for Recorder {
    fn error(&self, error: KafkaError, reason: &str) {
        self.errors
            .lock()
            .unwrap()
            .push(format!("{error:?}: {reason}"));
    }
}

impl ProducerContext for Recorder {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let outcome = result.as_ref().map(|_| ()).map_err(|(e, _)| e.to_string());
        self.delivered.lock().unwrap().push(outcome);
    }
}

impl ConsumerContext for Recorder {}

impl Recorder {
    fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }
}

/// A users file with alice and bob.
fn users_file(dir: &Path) -> PathBuf {
    let path = dir.join("users.txt");
    let text = format!(
        "# SASL users of the security tests\n{}:{}\n\n{}:{}\n",
        ALICE.0, ALICE.1, BOB.0, BOB.1
    );
    std::fs::write(&path, text).expect("write users");
    path
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn client_config(bootstrap: &str, security: &[(&str, &str)]) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "10000")
        .set("reconnect.backoff.max.ms", "1000");
    for (k, v) in security {
        cfg.set(*k, *v);
    }
    cfg
}

fn sasl(protocol: &str, mechanism: &str, (user, password): (&str, &str)) -> Vec<(String, String)> {
    [
        ("security.protocol", protocol),
        ("sasl.mechanisms", mechanism),
        ("sasl.username", user),
        ("sasl.password", password),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .into()
}

fn borrowed(settings: &[(String, String)]) -> Vec<(&str, &str)> {
    settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Produces `n` records to `topic` and waits for every delivery report; returns the recorder.
fn produce(bootstrap: &str, security: &[(&str, &str)], topic: &str, n: usize) -> Recorder {
    produce_within(bootstrap, security, topic, n, "10000")
}

/// Produces where delivery is expected to fail: records give up after 3 s.
fn produce_refused(bootstrap: &str, security: &[(&str, &str)], topic: &str, n: usize) -> Recorder {
    produce_within(bootstrap, security, topic, n, "3000")
}

fn produce_within(
    bootstrap: &str,
    security: &[(&str, &str)],
    topic: &str,
    n: usize,
    message_timeout_ms: &str,
) -> Recorder {
    let recorder = Recorder::default();
    let producer: BaseProducer<Recorder> = client_config(bootstrap, security)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", message_timeout_ms)
        .create_with_context(recorder.clone())
        .expect("producer");
    for i in 0..n {
        let (key, value) = (format!("k{i}"), format!("v{i}"));
        producer
            .send(BaseRecord::to(topic).key(&key).payload(&value))
            .map_err(|(e, _)| e)
            .expect("enqueue");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while recorder.delivered.lock().unwrap().len() < n && Instant::now() < deadline {
        producer.poll(Duration::from_millis(50));
    }
    recorder
}

/// Consumes `topic` in a group until `n` values arrived (bounded); returns the values.
fn consume(bootstrap: &str, security: &[(&str, &str)], topic: &str, n: usize) -> Vec<String> {
    let consumer: BaseConsumer<Recorder> = client_config(bootstrap, security)
        .set("group.id", format!("{topic}-readers"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create_with_context(Recorder::default())
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "timed out with {} of {n} records from {topic}; client errors: {:?}",
            got.len(),
            consumer.context().errors()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    got
}

fn values(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("v{i}")).collect()
}

/// Produces and consumes `n` records with `security`, asserting every one arrives.
fn round_trip(bootstrap: &str, security: &[(&str, &str)], topic: &str) {
    const N: usize = 20;
    let produced = produce(bootstrap, security, topic, N);
    let delivered = produced.delivered.lock().unwrap().clone();
    assert_eq!(delivered.len(), N, "errors: {:?}", produced.errors());
    assert!(
        delivered.iter().all(Result::is_ok),
        "{topic}: {delivered:?}"
    );
    let mut got = consume(bootstrap, security, topic, N);
    got.sort();
    let mut want = values(N);
    want.sort();
    assert_eq!(got, want, "{topic}");
}

/// The value of a counter line in `/metrics`, 0 when absent.
fn counter(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn sasl_plaintext_produce_and_consume_with_each_mechanism() {
    let dir = tempfile::tempdir().expect("tempdir");
    let users = users_file(dir.path());
    let broker = BrokerProcess::start(&dir.path().join("data"), &["--sasl-users", path(&users)]);
    let bs = broker.bootstrap();
    for (mechanism, user, topic) in [
        ("PLAIN", ALICE, "plain-orders"),
        ("SCRAM-SHA-256", BOB, "scram256-orders"),
        ("SCRAM-SHA-512", ALICE, "scram512-orders"),
    ] {
        let settings = sasl("SASL_PLAINTEXT", mechanism, user);
        round_trip(&bs, &borrowed(&settings), topic);
    }
    let metrics = broker.admin_get("/metrics");
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let series = format!(
            "ferry_broker_sasl_authentications_total{{mechanism=\"{mechanism}\",result=\"success\"}}"
        );
        assert!(counter(&metrics, &series) >= 2.0, "{series} in\n{metrics}");
    }
    assert!(!metrics.contains("result=\"failure\""), "{metrics}");
    broker.stop();
}

#[test]
fn wrong_credentials_are_an_authentication_error_and_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let users = users_file(dir.path());
    let broker = BrokerProcess::start(&dir.path().join("data"), &["--sasl-users", path(&users)]);
    let bs = broker.bootstrap();
    for (mechanism, credentials) in [
        ("SCRAM-SHA-256", (ALICE.0, "not-her-password")),
        ("SCRAM-SHA-512", ("mallory", ALICE.1)),
        ("PLAIN", (BOB.0, "b0b")),
    ] {
        let settings = sasl("SASL_PLAINTEXT", mechanism, credentials);
        let recorder = produce_refused(&bs, &borrowed(&settings), "secret-orders", 3);
        let delivered = recorder.delivered.lock().unwrap().clone();
        assert!(
            delivered.iter().all(Result::is_err),
            "{mechanism}: nothing is delivered: {delivered:?}"
        );
        let errors = recorder.errors();
        assert!(
            errors.iter().any(|e| e.contains("Authentication")
                && e.contains(&format!(
                    "invalid credentials with SASL mechanism {mechanism}"
                ))),
            "{mechanism}: the client reports the broker's authentication error: {errors:?}"
        );
    }
    // The topic was never created: an authenticated client sees no such topic.
    let good = sasl("SASL_PLAINTEXT", "SCRAM-SHA-512", ALICE);
    let consumer: BaseConsumer = client_config(&bs, &borrowed(&good))
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata as alice");
    let topics: Vec<&str> = metadata.topics().iter().map(|t| t.name()).collect();
    assert!(!topics.contains(&"secret-orders"), "{topics:?}");
    let metrics = broker.admin_get("/metrics");
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let series = format!(
            "ferry_broker_sasl_authentications_total{{mechanism=\"{mechanism}\",result=\"failure\"}}"
        );
        assert!(counter(&metrics, &series) >= 1.0, "{series} in\n{metrics}");
    }
    broker.stop();
}

#[test]
fn ssl_with_server_authentication() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = TestCertificates::generate(dir.path());
    let broker = BrokerProcess::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            path(&certs.server_cert),
            "--tls-key",
            path(&certs.server_key),
        ],
    );
    let bs = broker.bootstrap();
    // librdkafka checks the broker's name (127.0.0.1) against the certificate by default.
    let ssl = [
        ("security.protocol", "SSL"),
        ("ssl.ca.location", path(&certs.ca)),
    ];
    round_trip(&bs, &ssl, "tls-orders");

    // A plaintext client gets no Kafka answer from a TLS listener.
    let plaintext = produce_refused(&bs, &[], "tls-orders", 1);
    assert!(
        plaintext
            .delivered
            .lock()
            .unwrap()
            .iter()
            .all(Result::is_err)
    );
    broker.stop();
}

#[test]
fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = TestCertificates::generate(dir.path());
    let broker = BrokerProcess::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            path(&certs.server_cert),
            "--tls-key",
            path(&certs.server_key),
            "--tls-client-ca",
            path(&certs.ca),
        ],
    );
    let bs = broker.bootstrap();
    let with_cert = [
        ("security.protocol", "SSL"),
        ("ssl.ca.location", path(&certs.ca)),
        ("ssl.certificate.location", path(&certs.client_cert)),
        ("ssl.key.location", path(&certs.client_key)),
    ];
    round_trip(&bs, &with_cert, "mtls-orders");

    let without_cert = [
        ("security.protocol", "SSL"),
        ("ssl.ca.location", path(&certs.ca)),
    ];
    let refused = produce_refused(&bs, &without_cert, "mtls-refused", 2);
    let delivered = refused.delivered.lock().unwrap().clone();
    assert!(delivered.iter().all(Result::is_err), "{delivered:?}");
    assert!(
        refused.errors().iter().any(|e| e.contains("SSL")),
        "the client reports a TLS failure: {:?}",
        refused.errors()
    );
    let metrics = broker.admin_get("/metrics");
    assert!(
        counter(&metrics, "ferry_broker_tls_handshake_failures_total") >= 1.0,
        "{metrics}"
    );
    broker.stop();
}

#[test]
fn sasl_ssl_with_scram_sha_512() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = TestCertificates::generate(dir.path());
    let users = users_file(dir.path());
    let broker = BrokerProcess::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            path(&certs.server_cert),
            "--tls-key",
            path(&certs.server_key),
            "--sasl-users",
            path(&users),
            "--sasl-mechanisms",
            "SCRAM-SHA-512",
        ],
    );
    let bs = broker.bootstrap();
    let mut settings = sasl("SASL_SSL", "SCRAM-SHA-512", BOB);
    settings.push(("ssl.ca.location".into(), path(&certs.ca).into()));
    round_trip(&bs, &borrowed(&settings), "sasl-ssl-orders");

    // Only SCRAM-SHA-512 is enabled: PLAIN is refused at the handshake.
    let mut plain = sasl("SASL_SSL", "PLAIN", BOB);
    plain.push(("ssl.ca.location".into(), path(&certs.ca).into()));
    let refused = produce_refused(&bs, &borrowed(&plain), "sasl-ssl-orders", 1);
    assert!(
        refused
            .errors()
            .iter()
            .any(|e| e.contains("SCRAM-SHA-512") && e.contains("PLAIN")),
        "the client is told which mechanisms are enabled: {:?}",
        refused.errors()
    );
    broker.stop();
}

/// The way another crate's tests embed a SASL_SSL broker (docs/broker-security.md).
#[test]
fn in_process_broker_with_sasl_ssl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = TestCertificates::generate(dir.path());
    let users = dir.path().join("users.txt");
    std::fs::write(&users, "ferry:ferry-s3cret\n").expect("users file");
    let config = ferry_broker::BrokerConfig::local(
        &dir.path().join("log"),
        &[
            "--sasl-users",
            path(&users),
            "--sasl-mechanisms",
            "SCRAM-SHA-512",
            "--tls-cert",
            path(&certs.server_cert),
            "--tls-key",
            path(&certs.server_key),
        ],
    )
    .expect("flags");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let running = rt
        .block_on(ferry_broker::Broker::start(config))
        .expect("start");
    assert_eq!(running.broker().security_protocol(), "SASL_SSL");
    let bootstrap = running.kafka_addr.to_string();
    let security = [
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanisms", "SCRAM-SHA-512"),
        ("sasl.username", "ferry"),
        ("sasl.password", "ferry-s3cret"),
        ("ssl.ca.location", path(&certs.ca)),
    ];
    round_trip(&bootstrap, &security, "embedded-orders");
    rt.block_on(running.shutdown(Duration::from_secs(5)))
        .expect("shutdown");
}
