//! Transactions are not supported: every transactional request is refused the way a Kafka
//! broker whose ACLs deny the transactional id refuses it — with
//! `TRANSACTIONAL_ID_AUTHORIZATION_FAILED`, which clients treat as fatal, so
//! `init_transactions()` fails at once with that error instead of retrying a coordinator
//! lookup until its timeout.
//!
//! FindCoordinator (key type 1) and InitProducerId (with a transactional id) are the calls
//! clients make first; the rest (AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
//! TxnOffsetCommit) are answered too, so a client that skips the handshake fails the same way.

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, ProducerId, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};

/// Kafka's `TRANSACTIONAL_ID_AUTHORIZATION_FAILED`: non-retriable; clients raise it.
pub(super) const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;

/// What the broker says when it refuses a transactional request (where the response has a
/// message field).
pub(super) const NOT_SUPPORTED: &str = "Ferry's embedded broker does not support transactions; use an idempotent producer \
     (enable.idempotence=true) without transactional.id";

pub(super) fn add_partitions_to_txn(req: &AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse {
    tracing::debug!(transactional_id = %req.v3_and_below_transactional_id.as_str(), "refused AddPartitionsToTxn");
    let results = req
        .v3_and_below_topics
        .iter()
        .map(|t| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
                        })
                        .collect(),
                )
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

pub(super) fn add_offsets_to_txn(req: &AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    tracing::debug!(transactional_id = %req.transactional_id.as_str(), "refused AddOffsetsToTxn");
    AddOffsetsToTxnResponse::default().with_error_code(TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
}

pub(super) fn end_txn(req: &EndTxnRequest) -> EndTxnResponse {
    tracing::debug!(transactional_id = %req.transactional_id.as_str(), "refused EndTxn");
    EndTxnResponse::default()
        .with_error_code(TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

pub(super) fn txn_offset_commit(req: &TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
    tracing::debug!(transactional_id = %req.transactional_id.as_str(), "refused TxnOffsetCommit");
    let topics = req
        .topics
        .iter()
        .map(|t| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
                        })
                        .collect(),
                )
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
