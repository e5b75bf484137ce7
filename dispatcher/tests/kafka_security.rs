//! The dispatcher's Kafka clients against a broker that requires SASL and TLS: a KafkaSource
//! reads with the `spec.net` material its contract entry carries (SCRAM over mutual TLS), and
//! Ferry's own log is reached with the `FERRY_KAFKA_*` settings the Helm chart sets.

mod support;

use std::time::Duration;

use ferry_api::contract::{
    ContractResource, Credential, KafkaAuth, ObjectRef, SaslAuth, SaslMechanism, SourceMapping,
    TlsAuth,
};
use ferry_api::sources::KeyType;
use ferry_testkit::tls::TestCertificates;
use rdkafka::producer::{FutureProducer, FutureRecord};
use support::*;

const USER: &str = "ledger";
const PASSWORD: &str = "pa:ss word-9";

/// A broker that accepts only SASL_SSL with SCRAM-SHA-512 and a client certificate from the
/// test CA; the test's own clients connect with the same credentials.
async fn secured_log() -> (Log, TestCertificates) {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCertificates::generate(dir.path());
    let users = dir.path().join("users");
    std::fs::write(&users, format!("{USER}:{PASSWORD}\n")).unwrap();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let flags = [
        "--sasl-users".to_owned(),
        path(&users),
        "--sasl-mechanisms".to_owned(),
        "SCRAM-SHA-512".to_owned(),
        "--tls-cert".to_owned(),
        path(&certs.server_cert),
        "--tls-key".to_owned(),
        path(&certs.server_key),
        "--tls-client-ca".to_owned(),
        path(&certs.ca),
    ];
    let settings = [
        ("security.protocol", "SASL_SSL".to_owned()),
        ("sasl.mechanism", "SCRAM-SHA-512".to_owned()),
        ("sasl.username", USER.to_owned()),
        ("sasl.password", PASSWORD.to_owned()),
        ("ssl.ca.location", path(&certs.ca)),
        ("ssl.certificate.location", path(&certs.client_cert)),
        ("ssl.key.location", path(&certs.client_key)),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .to_vec();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let log = Log::start_secured(dir, &flags, settings).await;
    (log, certs)
}

fn pem(path: &std::path::Path) -> Credential {
    Credential::new(std::fs::read_to_string(path).unwrap())
}

fn source(log: &Log, sink_url: &str, auth: KafkaAuth) -> ContractResource {
    let mut egress = trigger("secured", sink_url);
    egress.reference = ObjectRef::new("KafkaSource", "default", "secured");
    egress.source = Some(SourceMapping {
        key_type: KeyType::String,
        ce_overrides: Default::default(),
    });
    ContractResource {
        uid: "source-secured/topics".into(),
        reference: ObjectRef::new("KafkaSource", "default", "secured"),
        topics: vec!["payments".into()],
        bootstrap_servers: log.bootstrap.clone(),
        auth: Some(auth),
        ingress: None,
        egresses: vec![egress],
    }
}

async fn produce(log: &Log, key: &str, value: &str) {
    let producer: FutureProducer = log.client().create().unwrap();
    producer
        .send(
            FutureRecord::to("payments").key(key).payload(value),
            Duration::from_secs(10),
        )
        .await
        .expect("the test's own authenticated producer writes");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kafka_source_reads_with_scram_over_mutual_tls_from_its_contract_entry() {
    let (log, certs) = secured_log().await;
    log.create_topic("payments", 1).await;
    let sink = Sink::start().await;
    let auth = KafkaAuth {
        sasl: Some(SaslAuth {
            mechanism: SaslMechanism::ScramSha512,
            username: Credential::new(USER),
            password: Credential::new(PASSWORD),
        }),
        tls: Some(TlsAuth {
            ca_cert: Some(pem(&certs.ca)),
            cert: Some(pem(&certs.client_cert)),
            key: Some(pem(&certs.client_key)),
        }),
    };
    let d = Dispatcher::start(&contract(1, vec![source(&log, &sink.url(), auth)]), &[]);
    produce(&log, "k1", r#"{"amount":1}"#).await;
    let got = accepted(&sink, 1).await;
    assert_eq!(
        got[0].attr("type").as_deref(),
        Some("dev.knative.kafka.event")
    );
    assert_eq!(got[0].attr("key").as_deref(), Some("k1"));
    assert_eq!(got[0].data(), br#"{"amount":1}"#);
    drop(d);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kafka_source_without_the_right_credentials_delivers_nothing() {
    let (log, certs) = secured_log().await;
    log.create_topic("payments", 1).await;
    produce(&log, "k1", "before").await;
    let sink = Sink::start().await;
    let tls = TlsAuth {
        ca_cert: Some(pem(&certs.ca)),
        cert: Some(pem(&certs.client_cert)),
        key: Some(pem(&certs.client_key)),
    };
    let wrong = KafkaAuth {
        sasl: Some(SaslAuth {
            mechanism: SaslMechanism::ScramSha512,
            username: Credential::new(USER),
            password: Credential::new("not-the-password"),
        }),
        tls: Some(tls.clone()),
    };
    // The contract is applied (bounded wait for the start offsets) but the consumer cannot log in.
    let d = Dispatcher::start(&contract(1, vec![source(&log, &sink.url(), wrong)]), &[]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(sink.received().is_empty(), "nothing read without a login");
    // Rotating to the right password restarts the egress, which then reads from the start.
    let right = KafkaAuth {
        sasl: Some(SaslAuth {
            mechanism: SaslMechanism::ScramSha512,
            username: Credential::new(USER),
            password: Credential::new(PASSWORD),
        }),
        tls: Some(tls),
    };
    d.write_contract(&contract(2, vec![source(&log, &sink.url(), right)]));
    d.wait_for_generation(2);
    let got = accepted(&sink, 1).await;
    assert_eq!(got[0].data(), b"before");
}

#[tokio::test(flavor = "multi_thread")]
async fn ferrys_own_log_is_reached_with_the_chart_s_ferry_kafka_settings() {
    let (log, certs) = secured_log().await;
    log.create_topic("orders", 1).await;
    let sink = Sink::start().await;
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let (ca, cert, key) = (
        path(&certs.ca),
        path(&certs.client_cert),
        path(&certs.client_key),
    );
    let env = [
        ("FERRY_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
        ("FERRY_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
        ("FERRY_KAFKA_SASL_USERNAME", USER),
        ("FERRY_KAFKA_SASL_PASSWORD", PASSWORD),
        ("FERRY_KAFKA_TLS_CA_FILE", ca.as_str()),
        ("FERRY_KAFKA_TLS_CERT_FILE", cert.as_str()),
        ("FERRY_KAFKA_TLS_KEY_FILE", key.as_str()),
    ];
    let d = Dispatcher::start_with_env(
        &contract(
            1,
            vec![broker(
                "orders",
                &log.bootstrap,
                vec![trigger("all", &sink.url())],
            )],
        ),
        &[],
        &env,
    );
    let client = reqwest::Client::new();
    let (status, body) = post_event(
        &client,
        &d.url("/default/orders"),
        "e-1",
        "order.placed",
        &[],
        "{}",
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(log.records("orders", 1), 1, "stored in the secured log");
    let got = accepted(&sink, 1).await;
    assert_eq!(got[0].attr("id").as_deref(), Some("e-1"));
}
