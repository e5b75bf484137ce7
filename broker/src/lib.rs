//! Ferry's embedded log: a single-node, durable server that speaks the Kafka wire protocol,
//! so unmodified Kafka clients (librdkafka, kafka-python, the Java clients) work against it.
//!
//! - [`storage`]: segments (log, offset index, time index), partition logs, CRC-verifying
//!   recovery, rolling and retention.
//! - [`topics`]: the topic registry, per-partition producer (idempotence) state and the high
//!   watermark.
//! - [`groups`]: the classic consumer-group protocol and durable committed offsets.
//! - [`server`]: the Kafka protocol listener (codecs from the `kafka-protocol` crate).
//! - [`security`]: SASL (PLAIN, SCRAM-SHA-256/512) and the TLS listener.
//! - [`metrics`] and the admin HTTP server (`/metrics`, `/healthz`, `/readyz`).
//! - [`config`]: the settings as flags; [`Error`]: everything that can go wrong.
//!
//! # Guarantees
//! Durability follows the flush policy ([`storage::FlushPolicy`]): with `always` (the default)
//! every acknowledged record was fsynced before the ack, concurrent writers sharing fsyncs
//! (group commit); with `interval:<ms>` acks wait for the next periodic fsync; with `os`
//! acknowledged records survive a broker crash but
//! not a machine crash. Consumers only see records up to the high watermark, which under
//! `always` and `interval` is the end of what is durable — so no consumer ever reads a record
//! that a power loss could take back.
//!
//! Disk failures stop writes rather than risk them (fail-stop): a failed fsync or write fences
//! the partition until a restart (a write refused for lack of space is undone and may be
//! retried instead), and recovery at start drops only a torn tail or a zeroed hole a power
//! loss left before a later write — other damage that valid data follows stops the start unless `--truncate-corrupt-segments` allows it
//! ([`storage::Recovery`]).

#![forbid(unsafe_code)]

pub mod config;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod groups;
mod http;
pub mod metrics;
pub mod security;
pub mod server;
pub mod storage;
pub mod topics;

pub use config::{BrokerConfig, BrokerFlags};
pub use error::{Error, Result};

/// The allocator every process that runs the broker must use as its `#[global_allocator]`.
///
/// # Why
/// `kafka-protocol` (0.18) decodes an array by reserving `length × element size` bytes before
/// reading any element, with `length` taken from the request. A malformed frame claiming 2³¹
/// elements asks for ~100 GB; glibc's malloc refuses that under the kernel's default heuristic
/// overcommit and Rust aborts the whole process — one bad request would kill the broker. mimalloc
/// maps large blocks with `MAP_NORESERVE`, so the reservation succeeds without committing memory,
/// decoding then fails on the first missing element, and the connection gets a logged close like
/// any other undecodable frame. The real fix is a capacity cap in `kafka-protocol`'s decoder.
pub use mimalloc::MiMalloc as SafeAllocator;
pub use server::{Broker, RunningBroker};
