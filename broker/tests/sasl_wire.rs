//! SASL on the wire, with exact requests: what a client that skips or botches authentication
//! gets (Kafka's error codes, then a closed connection), v0 handshakes with bare tokens, and
//! malformed tokens — after all of which the broker keeps serving.

mod support;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, MetadataRequest, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::StrBytes;
use support::BrokerProcess;
use support::wire::{Wire, frame};

const USER: &str = "alice";
const PASSWORD: &str = "alice-s3cret";

fn start(dir: &std::path::Path) -> BrokerProcess {
    start_with(dir, &[])
}

fn start_with(dir: &std::path::Path, extra: &[&str]) -> BrokerProcess {
    let users = dir.join("users.txt");
    std::fs::write(&users, format!("{USER}:{PASSWORD}\n")).expect("users file");
    let mut args = vec!["--sasl-users", users.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    BrokerProcess::start(&dir.join("data"), &args)
}

fn handshake(w: &mut Wire, mechanism: &'static str, version: i16) -> (i16, Vec<String>) {
    let resp = w.call(
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism)),
        version,
    );
    let list = resp.mechanisms.iter().map(|m| m.to_string()).collect();
    (resp.error_code, list)
}

fn authenticate(w: &mut Wire, token: &[u8]) -> (i16, Option<String>, Bytes) {
    let resp = w.call(
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token)),
        2,
    );
    (
        resp.error_code,
        resp.error_message.map(|m| m.to_string()),
        resp.auth_bytes,
    )
}

fn plain_token(user: &str, password: &str) -> Vec<u8> {
    format!("\0{user}\0{password}").into_bytes()
}

/// A Metadata request answered means the connection is authenticated.
fn metadata_works(w: &mut Wire) {
    let resp = w.call(&MetadataRequest::default().with_topics(Some(vec![])), 12);
    assert_eq!(resp.brokers.len(), 1);
}

#[test]
fn requests_before_authentication_close_the_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start(dir.path());

    // ApiVersions is served before authentication and lists the SASL APIs.
    let mut w = Wire::connect(broker.kafka);
    let versions = w.call(&ApiVersionsRequest::default(), 3);
    for (api, max) in [(ApiKey::SaslHandshake, 1), (ApiKey::SaslAuthenticate, 2)] {
        let entry = versions
            .api_keys
            .iter()
            .find(|k| k.api_key == api as i16)
            .unwrap_or_else(|| panic!("{api:?} advertised"));
        assert_eq!((entry.min_version, entry.max_version), (0, max));
    }
    // Anything else closes the connection.
    w.send_frame(&frame(
        &MetadataRequest::default().with_topics(Some(vec![])),
        12,
        9,
    ));
    assert!(w.closed(), "Metadata before authentication closes");

    // Also after a handshake but before the token.
    let mut w = Wire::connect(broker.kafka);
    assert_eq!(handshake(&mut w, "PLAIN", 1).0, 0);
    w.send_frame(&frame(
        &MetadataRequest::default().with_topics(Some(vec![])),
        12,
        9,
    ));
    assert!(w.closed(), "Metadata mid-handshake closes");

    // SaslAuthenticate without a handshake: ILLEGAL_SASL_STATE, then closed.
    let mut w = Wire::connect(broker.kafka);
    assert_eq!(authenticate(&mut w, &plain_token(USER, PASSWORD)).0, 34);
    assert!(w.closed());

    // An unauthenticated client may not send big frames (Kafka's 512 KiB limit).
    let mut w = Wire::connect(broker.kafka);
    w.send_raw(&(1i32 << 20).to_be_bytes());
    assert!(w.closed(), "a 1 MiB frame before authentication closes");

    let metrics = broker.admin_get("/metrics");
    assert!(
        metrics.contains(
            "ferry_broker_sasl_authentications_total{mechanism=\"none\",result=\"failure\"}"
        ),
        "{metrics}"
    );
    broker.stop();
}

#[test]
fn handshake_and_authenticate_v1_with_plain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start(dir.path());
    let mut w = Wire::connect(broker.kafka);
    let (code, mechanisms) = handshake(&mut w, "PLAIN", 1);
    assert_eq!(code, 0);
    assert_eq!(mechanisms, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);
    let (code, message, _) = authenticate(&mut w, &plain_token(USER, PASSWORD));
    assert_eq!((code, message), (0, None));
    metadata_works(&mut w);
    // After authentication a second handshake is ILLEGAL_SASL_STATE; the connection stays.
    assert_eq!(handshake(&mut w, "PLAIN", 1).0, 34);
    metadata_works(&mut w);
    broker.stop();
}

#[test]
fn a_failed_login_is_answered_only_after_the_delay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start_with(dir.path(), &["--failed-authentication-delay", "600ms"]);
    let timed = |password: &str| {
        let mut w = Wire::connect(broker.kafka);
        assert_eq!(handshake(&mut w, "PLAIN", 1).0, 0);
        let started = std::time::Instant::now();
        let (code, _, _) = authenticate(&mut w, &plain_token(USER, password));
        (code, started.elapsed())
    };
    let (code, took) = timed("wrong");
    assert_eq!(code, 58, "SASL_AUTHENTICATION_FAILED");
    assert!(took >= std::time::Duration::from_millis(600), "{took:?}");
    let (code, took) = timed(PASSWORD);
    assert_eq!(code, 0);
    assert!(
        took < std::time::Duration::from_millis(600),
        "success is not held: {took:?}"
    );
    broker.stop();
}

#[test]
fn unsupported_mechanism_lists_the_enabled_ones_and_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start(dir.path());
    let mut w = Wire::connect(broker.kafka);
    let (code, mechanisms) = handshake(&mut w, "GSSAPI", 1);
    assert_eq!(code, 33, "UNSUPPORTED_SASL_MECHANISM");
    assert_eq!(mechanisms, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);
    assert!(w.closed());
    broker.stop();
}

#[test]
fn v0_handshake_then_bare_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start(dir.path());
    let mut w = Wire::connect(broker.kafka);
    assert_eq!(handshake(&mut w, "PLAIN", 0).0, 0);
    w.send_frame(&plain_token(USER, PASSWORD));
    let reply = w.read_frame().expect("an (empty) token back");
    assert!(reply.is_empty());
    metadata_works(&mut w);

    // A wrong password after a v0 handshake can only be answered by closing.
    let mut w = Wire::connect(broker.kafka);
    assert_eq!(handshake(&mut w, "PLAIN", 0).0, 0);
    w.send_frame(&plain_token(USER, "wrong"));
    assert!(w.closed());
    broker.stop();
}

#[test]
fn malformed_tokens_fail_authentication_and_the_broker_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start(dir.path());
    let garbage: [(&'static str, &[u8]); 7] = [
        ("PLAIN", b""),
        ("PLAIN", b"\xff\xfe\0\0"),
        ("PLAIN", b"no separators at all"),
        ("SCRAM-SHA-256", b""),
        ("SCRAM-SHA-256", b"n,,n=alice"),
        ("SCRAM-SHA-512", b"\0\0\0\0\xff"),
        ("SCRAM-SHA-512", b"p=tls-server-end-point,,n=alice,r=abc"),
    ];
    for (mechanism, token) in garbage {
        let mut w = Wire::connect(broker.kafka);
        assert_eq!(handshake(&mut w, mechanism, 1).0, 0);
        let (code, message, _) = authenticate(&mut w, token);
        assert_eq!(
            code, 58,
            "{mechanism} {token:?}: SASL_AUTHENTICATION_FAILED"
        );
        assert!(
            message
                .as_deref()
                .is_some_and(|m| m.starts_with("Authentication failed")),
            "{message:?}"
        );
        assert!(w.closed(), "{mechanism} {token:?}");
    }

    // A SCRAM exchange whose final message is garbage.
    let mut w = Wire::connect(broker.kafka);
    assert_eq!(handshake(&mut w, "SCRAM-SHA-256", 1).0, 0);
    let (code, _, server_first) = authenticate(&mut w, b"n,,n=alice,r=client-nonce");
    assert_eq!(code, 0);
    assert!(server_first.starts_with(b"r=client-nonce"));
    let (code, _, _) = authenticate(&mut w, b"c=biws,r=other-nonce,p=AAAA");
    assert_eq!(code, 58, "nonce mismatch");
    assert!(w.closed());

    // A SaslAuthenticate frame that does not decode: the connection closes.
    let mut w = Wire::connect(broker.kafka);
    assert_eq!(handshake(&mut w, "PLAIN", 1).0, 0);
    let whole = frame(
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(b"\0a\0b")),
        2,
        7,
    );
    w.send_frame(&whole[..whole.len() - 3]);
    assert!(w.closed());
    // Bare garbage after a v0 SCRAM handshake.
    let mut w = Wire::connect(broker.kafka);
    assert_eq!(handshake(&mut w, "SCRAM-SHA-512", 0).0, 0);
    w.send_frame(b"\x00\x01garbage");
    assert!(w.closed());

    // Still serving, and still authenticating.
    let mut w = Wire::connect(broker.kafka);
    assert_eq!(handshake(&mut w, "PLAIN", 1).0, 0);
    assert_eq!(authenticate(&mut w, &plain_token(USER, PASSWORD)).0, 0);
    metadata_works(&mut w);
    broker.stop();
}

#[test]
fn without_sasl_users_the_sasl_apis_answer_illegal_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut w = Wire::connect(broker.kafka);
    assert_eq!(handshake(&mut w, "PLAIN", 1).0, 34);
    assert_eq!(authenticate(&mut w, &plain_token(USER, PASSWORD)).0, 34);
    metadata_works(&mut w);
    broker.stop();
}
