//! `ferry-broker`: Ferry's embedded log.
//!
//! It will be a single-node, durable server that speaks the Kafka wire protocol (through the
//! `kafka-protocol` crate): segment files with offset and time indexes, fsync policies, retention,
//! consumer groups and committed offsets, so that librdkafka, kafka-python and the Java clients
//! work against it unchanged. See DESIGN.md and the broker issue; nothing of it is built yet.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("ferry-broker: the embedded log is not built yet (see the broker issue).");
    ExitCode::from(1)
}
