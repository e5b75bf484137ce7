//! `ferry-dispatcher`: Ferry's data plane.
//!
//! It will take CloudEvents in over HTTP (ingress: binary, structured and batched modes, `202`
//! only after the log acknowledged the write), store them in a Kafka-protocol log, and deliver
//! them to subscribers (egress: one consumer group per Trigger / Subscription / KafkaSource,
//! filters, Knative's delivery spec with retries and dead letters, ordered and unordered
//! delivery), acting as the activator for revisions scaled to zero. It reads the contract the
//! operator or `ferry dev` compiles and never talks to the Kubernetes API for routing. See
//! DESIGN.md and the dispatcher issue; nothing of it is built yet.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("ferry-dispatcher: the data plane is not built yet (see the dispatcher issue).");
    ExitCode::from(1)
}
