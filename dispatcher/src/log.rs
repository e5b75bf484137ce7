//! Writing events to the log: one idempotent `acks=all` producer per bootstrap-server list.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudevents::Event;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::binding;
use crate::{Error, Result};

/// Producer settings.
#[derive(Clone, Debug)]
pub struct ProducerSettings {
    /// `linger.ms`: how long the producer waits to batch records.
    pub linger: Duration,
    /// `message.timeout.ms`: how long an append may take before it fails.
    pub timeout: Duration,
    /// `queue.buffering.max.kbytes`: memory for records waiting to be sent.
    pub max_buffer_kbytes: u32,
}

/// Appends CloudEvents to Kafka topics.
pub struct Log {
    settings: ProducerSettings,
    producers: Mutex<HashMap<String, FutureProducer>>,
}

impl Log {
    /// A log client with these producer settings.
    pub fn new(settings: ProducerSettings) -> Arc<Self> {
        Arc::new(Log {
            settings,
            producers: Mutex::new(HashMap::new()),
        })
    }

    /// Creates the producer for `bootstrap` now, so it connects (and, being idempotent, gets
    /// its producer id) before the first event arrives instead of delaying it.
    pub fn connect(&self, bootstrap: &str) {
        if let Err(e) = self.producer(bootstrap) {
            tracing::warn!(error = %e, "producer not created yet; retrying on the first event");
        }
    }

    fn producer(&self, bootstrap: &str) -> Result<FutureProducer> {
        let mut producers = self.producers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = producers.get(bootstrap) {
            return Ok(p.clone());
        }
        let producer: FutureProducer = crate::kafka::client(bootstrap, None)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            // librdkafka takes fractions of a millisecond.
            .set(
                "linger.ms",
                (self.settings.linger.as_micros() as f64 / 1000.0).to_string(),
            )
            // Small produce requests must not wait for Nagle's algorithm.
            .set("socket.nagle.disable", "true")
            .set(
                "message.timeout.ms",
                self.settings.timeout.as_millis().to_string(),
            )
            .set(
                "queue.buffering.max.kbytes",
                self.settings.max_buffer_kbytes.to_string(),
            )
            // Records waiting for an unknown topic time out on a metadata refresh: refresh at
            // least as often as the append timeout so a 503 comes when promised.
            .set(
                "topic.metadata.refresh.interval.ms",
                self.settings
                    .timeout
                    .as_millis()
                    .clamp(1000, 10_000)
                    .to_string(),
            )
            .create()
            .map_err(|source| Error::Producer {
                bootstrap: bootstrap.to_owned(),
                source,
            })?;
        producers.insert(bootstrap.to_owned(), producer.clone());
        Ok(producer)
    }

    /// Appends one event in Kafka binary content mode, keyed by `partitionkey`, and waits
    /// for the acknowledgement of all in-sync replicas. `traceparent` (the span that appended
    /// it, while tracing is on) goes in the record's [`TRACEPARENT`] header, not in the event:
    /// deliveries continue that trace.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::LogUnavailable`] or [`Error::Producer`].
    pub async fn append(
        &self,
        bootstrap: &str,
        topic: &str,
        event: &Event,
        traceparent: Option<&str>,
    ) -> Result<(i32, i64)> {
        let producer = self.producer(bootstrap)?;
        let record = binding::to_kafka(event);
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len() + 1);
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            });
        }
        if let Some(tp) = traceparent {
            headers = headers.insert(Header {
                key: TRACEPARENT,
                value: Some(tp.as_bytes()),
            });
        }
        let mut out = FutureRecord::to(topic).headers(headers);
        if let Some(key) = &record.key {
            out = out.key(key.as_str());
        }
        if let Some(value) = &record.value {
            out = out.payload(value.as_slice());
        }
        match producer.send(out, Duration::from_millis(0)).await {
            Ok(delivery) => Ok((delivery.partition, delivery.offset)),
            Err((
                KafkaError::MessageProduction(
                    RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic,
                ),
                _,
            )) => Err(Error::UnknownTopic(topic.to_owned())),
            Err((e, _)) => Err(Error::LogUnavailable(e.to_string())),
        }
    }
}

/// The record header that carries the trace context of the span that appended the event
/// (W3C `traceparent`, as OpenTelemetry's Kafka instrumentations write it).
pub const TRACEPARENT: &str = "traceparent";

/// A record's [`TRACEPARENT`] header, when it has a UTF-8 one.
pub fn record_traceparent<M: Message>(m: &M) -> Option<String> {
    m.headers()?
        .iter()
        .find(|h| h.key == TRACEPARENT)
        .and_then(|h| std::str::from_utf8(h.value?).ok())
        .map(str::to_owned)
}

/// A consumed record's headers as `(name, value)` pairs (a header without a value reads as
/// empty), the form [`binding::from_kafka`] takes.
pub fn record_headers<M: Message>(m: &M) -> Vec<(&str, &[u8])> {
    m.headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key, h.value.unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}
