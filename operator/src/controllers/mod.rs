//! The controllers: one kube-runtime `Controller` per kind, sharing one reflector store per
//! kind (`reflectors.rs`). Each reconcile reads the stores and the
//! [`crate::publisher::Publisher`], decides with the pure functions of [`crate::status`] and
//! [`crate::serving`], and writes: status by server-side apply with the field manager
//! [`crate::MANAGER`], owned objects, topics, finalizers, Kubernetes Events (`context.rs` holds
//! what every reconcile shares).
//!
//! The kinds: the eventing ones in `eventing/` (Brokers and KafkaChannels own a topic, Triggers
//! and Subscriptions a consumer group, KafkaSources read their Secrets), the serving ones in
//! `serving.rs`. The publisher and the settings loop (`config-br-defaults`, `config-features`)
//! wake controllers through bounded queues (`wake.rs`).
//!
//! [`run()`] starts them with the publisher, the dispatcher poll, the settings loop and
//! the autoscaler, and drains them all when told to stop.

mod context;
mod eventing;
mod reflectors;
mod run;
#[cfg(test)]
mod run_tests;
mod serving;
mod settings;
#[cfg(test)]
mod tests;
mod wake;

pub use context::Context;
pub use run::run;
