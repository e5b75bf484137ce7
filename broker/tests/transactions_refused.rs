//! Transactions are not supported, and clients must learn that at once: librdkafka's
//! `init_transactions` fails fast with a fatal, non-retriable error (not after its timeout),
//! and the transactional APIs answer `TRANSACTIONAL_ID_AUTHORIZATION_FAILED` on the wire.
//! The Python clients are covered in `python_clients.rs`.

mod support;

use std::time::{Duration, Instant};

use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, EndTxnRequest, InitProducerIdRequest, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaErrorCode;
use support::BrokerProcess;
use support::clients::producer;
use support::wire::Wire;

const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;

#[test]
fn librdkafka_init_transactions_fails_fast() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &[]);
    let p = producer(
        &broker.bootstrap(),
        &[
            ("transactional.id", "orders-tx"),
            ("transaction.timeout.ms", "60000"),
        ],
    );
    let started = Instant::now();
    let result = p.init_transactions(Duration::from_secs(30));
    let took = started.elapsed();
    let Err(KafkaError::Transaction(e)) = result else {
        panic!("init_transactions must fail, got {result:?}");
    };
    assert!(
        took < Duration::from_secs(10),
        "failed only after {took:?}: {e}"
    );
    assert!(e.is_fatal() || !e.is_retriable(), "a final error: {e}");
    assert_eq!(
        e.code(),
        RDKafkaErrorCode::TransactionalIdAuthorizationFailed,
        "{e}"
    );
    broker.stop();
}

#[test]
fn transactional_apis_are_refused_on_the_wire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut w = Wire::connect(broker.kafka);
    let txn = || TransactionalId(StrBytes::from_static_str("tx"));

    let found = w.call(
        &FindCoordinatorRequest::default()
            .with_key(StrBytes::from_static_str("tx"))
            .with_key_type(1),
        2,
    );
    assert_eq!(found.error_code, TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    let message = found
        .error_message
        .map(|m| m.to_string())
        .unwrap_or_default();
    assert!(
        message.contains("does not support transactions"),
        "{message}"
    );
    let group = w.call(
        &FindCoordinatorRequest::default()
            .with_key(StrBytes::from_static_str("g"))
            .with_key_type(0),
        2,
    );
    assert_eq!(group.error_code, 0, "group coordinators still work");

    let init = w.call(
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(txn()))
            .with_transaction_timeout_ms(60_000),
        3,
    );
    assert_eq!(init.error_code, TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    let idempotent = w.call(
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(-1),
        3,
    );
    assert_eq!(idempotent.error_code, 0, "idempotent producers still work");

    let offsets = w.call(
        &AddOffsetsToTxnRequest::default().with_transactional_id(txn()),
        3,
    );
    assert_eq!(offsets.error_code, TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    let end = w.call(&EndTxnRequest::default().with_transactional_id(txn()), 3);
    assert_eq!(end.error_code, TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    broker.stop();
}
