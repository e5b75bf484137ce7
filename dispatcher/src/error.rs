//! The dispatcher's errors: one enum for the library, each message saying what was wrong and
//! what to do about it.

use std::net::SocketAddr;

use ferry_api::cesql;
use rdkafka::error::KafkaError;

/// Everything that can go wrong in the dispatcher library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting that must be positive is zero.
    #[error("{flag} must be greater than 0; set a positive value or leave the flag out")]
    NotPositive {
        /// The flag, as `ferry-dispatcher --help` names it.
        flag: &'static str,
    },
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}; pick a free address")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// `--contract-secret` was given but no Kubernetes client could be made.
    #[error(
        "--contract-secret {secret} needs the Kubernetes API, but no client could be configured: {reason}; run in a pod with a service-account token or set KUBECONFIG, or leave the flag out to read only the contract file"
    )]
    KubeClient {
        /// The flag's value.
        secret: String,
        /// Why.
        reason: String,
    },
    /// Bytes that are not a valid CloudEvent; the text is what a client is told, and says
    /// what to fix.
    #[error("{0}")]
    InvalidEvent(String),
    /// A bad `OTEL_*` variable.
    #[error("tracing settings: {0}")]
    Tracing(String),
    /// The topic an event is written to does not exist (yet).
    #[error("topic {0} does not exist; the operator creates it when the resource is reconciled")]
    UnknownTopic(String),
    /// The log did not acknowledge a write in time.
    #[error(
        "the log did not acknowledge the write: {0}; retry, and if it persists check the log's health"
    )]
    LogUnavailable(String),
    /// No producer could be created for a log.
    #[error(
        "cannot create a producer for {bootstrap}: {source}; check the bootstrap servers and the FERRY_KAFKA_* settings"
    )]
    Producer {
        /// The log's bootstrap servers.
        bootstrap: String,
        /// What librdkafka said.
        source: KafkaError,
    },
    /// An egress's filters do not compile (contracts are validated before they are applied,
    /// so this names a bug).
    #[error(
        "the filters of {egress} do not compile: {source}; the contract should have been rejected, please report this"
    )]
    Filter {
        /// `Kind namespace/name` of the egress.
        egress: String,
        /// The CESQL error.
        source: cesql::ParseError,
    },
    /// An egress's consumer could not be created or subscribed.
    #[error(
        "the consumer of {egress} did not start: {source}; check the log's address and credentials"
    )]
    Consumer {
        /// `Kind namespace/name` of the egress.
        egress: String,
        /// What librdkafka said.
        source: KafkaError,
    },
    /// A log position (`since`, `--from`) that is not one.
    #[error(
        "{text:?} is not earliest, latest, an offset or an RFC 3339 time (2026-11-25T10:00:00Z)"
    )]
    NotAStart {
        /// The text given.
        text: String,
    },
    /// A log's metadata could not be fetched.
    #[error("cannot reach the log at {kafka}: {source}; check that it is running and its address")]
    LogUnreachable {
        /// Bootstrap servers.
        kafka: String,
        /// What the client said.
        source: KafkaError,
    },
    /// A log has no such topic.
    #[error("topic {topic} not found at {kafka}; check the name")]
    TopicNotFound {
        /// The topic.
        topic: String,
        /// Bootstrap servers.
        kafka: String,
    },
    /// A partition's offsets could not be read.
    #[error("{topic}/{partition}: {source}; check that the log is running and try again")]
    PartitionOffsets {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// What the client said.
        source: KafkaError,
    },
    /// A log failed a read (or a reader could not be created).
    #[error("the log failed a read: {0}; check that it is running and reachable")]
    LogRead(KafkaError),
    /// The journal was not read to its end in time.
    #[error("reading the journal at {kafka} took over 2 minutes; read from a later `since`")]
    JournalTooSlow {
        /// Bootstrap servers.
        kafka: String,
    },
}

/// The dispatcher library's `Result`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
