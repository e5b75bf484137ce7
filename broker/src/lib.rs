//! Ferry's embedded log: a single-node, durable server that speaks the Kafka wire protocol.
//!
//! Built so far: [`storage`] — record-batch validation, the flush policy, and segments (log,
//! offset index, time index, CRC-verifying recovery) and partition logs (rolling by size and
//! time, retention by time and size). Still to come
//! (see the broker issue): topics and their metadata, group commit for `interval` flushing,
//! the Kafka protocol server (through the `kafka-protocol` crate), consumer groups and committed
//! offsets, so that librdkafka, kafka-python and the Java clients work against it unchanged.

#![forbid(unsafe_code)]

pub mod storage;
