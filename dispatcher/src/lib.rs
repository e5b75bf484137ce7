//! Ferry's data plane.
//!
//! The dispatcher takes CloudEvents in over HTTP (ingress), stores them in a Kafka-protocol log,
//! and delivers them to subscribers (egress) with Knative's delivery semantics. It speaks only
//! HTTP and the Kafka protocol, so it runs the same against Ferry's embedded broker and a real
//! Kafka cluster, and it routes by the [contract](ferry_api::contract) the operator or
//! `ferry dev` compiles — it never talks to the Kubernetes API.
#![forbid(unsafe_code)]

pub mod activator;
pub mod binding;
pub mod config;
pub mod contract_feed;
pub mod egress;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
mod http_server;
pub mod ingress;
pub mod journal;
pub mod kafka;
pub mod log;
pub mod log_reader;
pub mod metrics;
mod server;
pub mod spans;

pub use error::{Error, Result};
pub use server::{RunningDispatcher, start, start_with_kube};
