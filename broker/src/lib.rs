//! Ferry's embedded log: a single-node, durable server that speaks the Kafka wire protocol,
//! so unmodified Kafka clients (librdkafka, kafka-python, the Java clients) work against it.
//!
//! - [`storage`]: segments (log, offset index, time index), partition logs, CRC-verifying
//!   recovery, rolling and retention.
//! - [`topics`]: the topic registry, per-partition producer (idempotence) state and the high
//!   watermark.
//! - [`groups`]: the classic consumer-group protocol and durable committed offsets.
//! - [`server`]: the Kafka protocol listener (codecs from the `kafka-protocol` crate).
//! - [`metrics`] and the admin HTTP server (`/metrics`, `/healthz`, `/readyz`).
//!
//! # Guarantees
//! Durability follows the flush policy ([`storage::FlushPolicy`]): with `always` every
//! acknowledged record was fsynced before the ack; with `interval:<ms>` acks wait for the next
//! periodic fsync (group commit); with `os` acknowledged records survive a broker crash but
//! not a machine crash. Consumers only see records up to the high watermark, which under
//! `always` and `interval` is the end of what is durable — so no consumer ever reads a record
//! that a power loss could take back.

#![forbid(unsafe_code)]

mod admin;
pub mod config;
pub mod groups;
pub mod metrics;
pub mod server;
pub mod storage;
pub mod topics;

pub use config::BrokerConfig;
pub use server::{Broker, RunningBroker, StartError};
