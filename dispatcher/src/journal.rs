//! The delivery journal: where every event went, for `ferry trace`.
//!
//! Ingress records where it stored an event (topic, partition, offset); each egress records how
//! it settled it (filtered out, delivered with the status, attempts and time, dead-lettered,
//! dropped). Entries are JSON records keyed by event id on an internal topic of the same log
//! as the events, so every dispatcher replica writes to one place, in Kubernetes as locally. The
//! topic is bounded by retention (time and size), created by the dispatcher with those settings.
//!
//! Journalling never slows or fails delivery: entries are handed to a producer's buffer and, if
//! it is full or the log is down, counted as dropped journal entries instead.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;

/// The journal topic's default name.
pub const DEFAULT_TOPIC: &str = "ferry-delivery-journal";

/// What happened to an event at one place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The event's id.
    pub event_id: String,
    /// The event's source (ids are unique per source).
    pub source: String,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// `Broker default/orders` (ingress) or `Trigger default/audit` (an egress).
    pub by: String,
    /// Where the event is stored.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// `accepted` (ingress), or the egress's outcome: `delivered`, `filtered`, `dead_lettered`,
    /// `dropped`, `malformed`.
    pub outcome: String,
    /// HTTP attempts to the destination.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
    /// The destination's last status code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// Where the egress delivered (the revision chosen by a split, or the URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// The dead-letter sink, when the event went there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink: Option<String>,
    /// Time from the first attempt to settlement (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_ms: Option<u64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Journal settings.
#[derive(Clone, Debug)]
pub struct JournalSettings {
    /// Topic name; `None` turns journalling off.
    pub topic: Option<String>,
    /// Retention of the topic (ms).
    pub retention_ms: i64,
    /// Size bound of the topic (bytes).
    pub retention_bytes: i64,
}

/// Writes journal entries; one producer per log (bootstrap servers).
pub struct Journal {
    settings: JournalSettings,
    producers: Mutex<HashMap<String, Arc<ThreadedProducer<DefaultProducerContext>>>>,
    prepared: tokio::sync::Mutex<HashSet<String>>,
    metrics: Arc<Metrics>,
}

impl Journal {
    /// A journal with these settings.
    pub fn new(settings: JournalSettings, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Journal {
            settings,
            producers: Mutex::default(),
            prepared: tokio::sync::Mutex::default(),
            metrics,
        })
    }

    /// Creates the journal topic on `bootstrap` (once) with its retention settings, so it does
    /// not get auto-created with the log's defaults. Failures are logged: entries then go to an
    /// auto-created topic, or are counted as dropped.
    pub async fn prepare(&self, bootstrap: &str) {
        let Some(topic) = &self.settings.topic else {
            return;
        };
        let mut prepared = self.prepared.lock().await;
        if prepared.contains(bootstrap) {
            return;
        }
        let admin: AdminClient<DefaultClientContext> = match ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
        {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(%bootstrap, error = %e, "journal: no admin client");
                return;
            }
        };
        let retention_ms = self.settings.retention_ms.to_string();
        let retention_bytes = self.settings.retention_bytes.to_string();
        let new = NewTopic::new(topic, 1, TopicReplication::Fixed(1))
            .set("retention.ms", &retention_ms)
            .set("retention.bytes", &retention_bytes);
        let options = AdminOptions::new()
            .operation_timeout(Some(Duration::from_secs(5)))
            .request_timeout(Some(Duration::from_secs(10)));
        match admin.create_topics([&new], &options).await {
            Ok(results) => match results.into_iter().next() {
                Some(Ok(_)) | Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) | None => {
                    prepared.insert(bootstrap.to_owned());
                }
                Some(Err((_, code))) => {
                    tracing::warn!(%bootstrap, %topic, %code, "journal topic not created")
                }
            },
            Err(e) => tracing::warn!(%bootstrap, %topic, error = %e, "journal topic not created"),
        }
    }

    /// Hands `entry` to the producer for `bootstrap` without waiting.
    pub fn record(&self, bootstrap: &str, entry: &Entry) {
        let Some(topic) = &self.settings.topic else {
            return;
        };
        let Some(producer) = self.producer(bootstrap) else {
            self.metrics.journal_dropped();
            return;
        };
        let Ok(value) = serde_json::to_vec(entry) else {
            return;
        };
        let record = BaseRecord::to(topic)
            .key(entry.event_id.as_str())
            .payload(&value);
        if producer.send(record).is_err() {
            self.metrics.journal_dropped();
        }
    }

    /// Waits (up to 2 s, blocking) for buffered entries to reach the log; for shutdown.
    pub fn flush(&self) {
        let producers: Vec<_> = self
            .producers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for p in producers {
            let _ = rdkafka::producer::Producer::flush(&*p, Duration::from_secs(2));
        }
    }

    fn producer(&self, bootstrap: &str) -> Option<Arc<ThreadedProducer<DefaultProducerContext>>> {
        let mut producers = self.producers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = producers.get(bootstrap) {
            return Some(p.clone());
        }
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("acks", "1")
            .set("linger.ms", "20")
            .set("queue.buffering.max.kbytes", "8192")
            .set("message.timeout.ms", "30000")
            .set("socket.nagle.disable", "true")
            .create()
            .map_err(|e| tracing::warn!(%bootstrap, error = %e, "journal producer not created"))
            .ok()?;
        let producer = Arc::new(producer);
        producers.insert(bootstrap.to_owned(), producer.clone());
        Some(producer)
    }
}
