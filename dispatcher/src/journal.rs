//! The delivery journal: where every event went, for `ferry trace`.
//!
//! Ingress records where it stored an event (topic, partition, offset); each egress records how
//! it settled it (filtered out, delivered with the status, attempts and time, dead-lettered,
//! dropped). Entries are JSON lines on an internal topic of the same log as the events, so
//! every dispatcher replica writes to one place, in Kubernetes as locally. The topic is bounded
//! by retention (time and size), created by the dispatcher with those settings.
//!
//! Journalling never slows or fails delivery: entries are appended to an in-memory buffer that
//! a background thread writes every [`FLUSH_EVERY`] as one record of many lines (a record per
//! entry cost about a third of the dispatcher's CPU; see docs/benchmarks.md). When the buffer
//! is full (the log is down), entries are counted as dropped instead.
//!
//! Reading an event's entries back is [`trace`]'s; the admin listener serves it to `ferry
//! trace --dispatcher` through [`endpoint`].

pub mod endpoint;
pub mod trace;

use ferry_api::contract::KafkaAuth;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;

/// The journal topic's default name.
pub const DEFAULT_TOPIC: &str = "ferry-delivery-journal";

/// What happened to an event at one place.
///
/// Text fields are `String`s when read back; writers record an `Entry<&str>` that borrows
/// them from the event and the egress (the same JSON, without copying each field per event).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry<S = String> {
    /// The event's id.
    pub event_id: S,
    /// The event's source (ids are unique per source).
    pub source: S,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// `Broker default/orders` (ingress) or `Trigger default/audit` (an egress).
    pub by: S,
    /// Where the event is stored.
    pub topic: S,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// `accepted` (ingress), or the egress's outcome: `delivered`, `filtered`, `dead_lettered`,
    /// `dropped`, `malformed`.
    pub outcome: S,
    /// HTTP attempts to the destination.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
    /// The destination's last status code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// Where the egress delivered (the revision chosen by a split, or the URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<S>,
    /// The dead-letter sink, when the event went there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink: Option<S>,
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
    /// How long the topic keeps entries.
    pub retention: Retention,
    /// Size bound of the topic (bytes).
    pub retention_bytes: i64,
}

/// How long the journal topic keeps entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// Until the size bound removes them.
    Forever,
    /// This long (and within the size bound).
    For(Duration),
}

impl Retention {
    /// The topic's `retention.ms` (`-1`: forever).
    pub fn retention_ms(self) -> i64 {
        match self {
            Retention::Forever => -1,
            Retention::For(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        }
    }
}

/// How often buffered entries are written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Largest journal record (JSON lines); a fuller buffer is written at once.
const RECORD_BYTES: usize = 512 << 10;
/// Most bytes buffered per log while it does not take them; beyond, entries are dropped.
const BUFFER_BYTES: usize = 16 << 20;

/// Writes journal entries; one producer per log (bootstrap servers).
pub struct Journal {
    settings: JournalSettings,
    producers: Mutex<HashMap<String, Arc<ThreadedProducer<DefaultProducerContext>>>>,
    /// Per log: JSON lines not yet written.
    pending: Mutex<HashMap<String, Vec<u8>>>,
    prepared: tokio::sync::Mutex<HashSet<String>>,
    /// Per log: its connection settings (a KafkaSource's cluster has its own), from the
    /// contract via [`Journal::prepare`]; absent means Ferry's own log.
    auth: Mutex<HashMap<String, KafkaAuth>>,
    metrics: Arc<Metrics>,
}

impl Journal {
    /// A journal with these settings; a background thread writes its buffer until the journal
    /// is dropped.
    pub fn new(settings: JournalSettings, metrics: Arc<Metrics>) -> Arc<Self> {
        let journal = Arc::new(Journal {
            settings,
            producers: Mutex::default(),
            pending: Mutex::default(),
            prepared: tokio::sync::Mutex::default(),
            auth: Mutex::default(),
            metrics,
        });
        if journal.settings.topic.is_some() {
            let weak = Arc::downgrade(&journal);
            let spawned = std::thread::Builder::new()
                .name("journal".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(FLUSH_EVERY);
                        match weak.upgrade() {
                            Some(journal) => journal.write_pending(),
                            None => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "journal writer thread not started; entries are written at shutdown only");
            }
        }
        journal
    }

    /// Creates the journal topic on `bootstrap` (once) with its retention settings, so it does
    /// not get auto-created with the log's defaults. Failures are logged: entries then go to an
    /// auto-created topic, or are counted as dropped. `auth` is how to connect to it (`None`:
    /// Ferry's own log).
    pub async fn prepare(&self, bootstrap: &str, auth: Option<&KafkaAuth>) {
        {
            let mut known = self.auth.lock().unwrap_or_else(|p| p.into_inner());
            match auth {
                Some(a) => known.insert(bootstrap.to_owned(), a.clone()),
                None => known.remove(bootstrap),
            };
        }
        let Some(topic) = &self.settings.topic else {
            return;
        };
        let mut prepared = self.prepared.lock().await;
        if prepared.contains(bootstrap) {
            return;
        }
        let admin: AdminClient<DefaultClientContext> =
            match crate::kafka::client(bootstrap, self.auth_of(bootstrap).as_ref()).create() {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(%bootstrap, error = %e, "journal: no admin client");
                    return;
                }
            };
        let retention_ms = self.settings.retention.retention_ms().to_string();
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

    /// Buffers `entry` for the log at `bootstrap`; never waits.
    pub fn record<S: Serialize>(&self, bootstrap: &str, entry: &Entry<S>) {
        if self.settings.topic.is_none() {
            return;
        }
        let Ok(mut line) = serde_json::to_vec(entry) else {
            return;
        };
        line.push(b'\n');
        let full = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let buffer = match pending.get_mut(bootstrap) {
                Some(buffer) => buffer,
                None => pending.entry(bootstrap.to_owned()).or_default(),
            };
            if buffer.len() + line.len() > BUFFER_BYTES {
                drop(pending);
                self.metrics.journal_dropped();
                return;
            }
            buffer.extend_from_slice(&line);
            buffer.len() >= RECORD_BYTES
        };
        if full {
            self.write_pending();
        }
    }

    /// Writes every buffer as records of whole lines; what the producer refuses stays buffered.
    fn write_pending(&self) {
        let Some(topic) = &self.settings.topic else {
            return;
        };
        let buffers: Vec<(String, Vec<u8>)> = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending
                .iter_mut()
                .filter(|(_, b)| !b.is_empty())
                .map(|(k, b)| (k.clone(), std::mem::take(b)))
                .collect()
        };
        for (bootstrap, buffer) in buffers {
            let Some(producer) = self.producer(&bootstrap) else {
                self.metrics.journal_dropped();
                continue;
            };
            let mut rest = buffer.as_slice();
            while !rest.is_empty() {
                // Cut at a line end at most RECORD_BYTES in.
                let cut = if rest.len() <= RECORD_BYTES {
                    rest.len()
                } else {
                    rest[..RECORD_BYTES]
                        .iter()
                        .rposition(|b| *b == b'\n')
                        .map_or(rest.len(), |i| i + 1)
                };
                let (chunk, tail) = rest.split_at(cut);
                let record: BaseRecord<'_, (), [u8]> = BaseRecord::to(topic).payload(chunk);
                if producer.send(record).is_err() {
                    // The producer's queue is full: keep the rest for the next round.
                    let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                    let buffer = pending.entry(bootstrap.clone()).or_default();
                    let mut kept = rest.to_vec();
                    kept.extend_from_slice(buffer);
                    *buffer = kept;
                    break;
                }
                rest = tail;
            }
        }
    }

    /// Writes what is buffered and waits (up to 2 s, blocking) for it to reach the log; for
    /// shutdown.
    pub fn flush(&self) {
        self.write_pending();
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

    /// Entries of a journal record (JSON lines), skipping lines that do not parse.
    pub fn entries(record: &[u8]) -> impl Iterator<Item = Entry> + '_ {
        record
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .filter_map(|l| serde_json::from_slice(l).ok())
    }

    fn auth_of(&self, bootstrap: &str) -> Option<KafkaAuth> {
        let known = self.auth.lock().unwrap_or_else(|p| p.into_inner());
        known.get(bootstrap).cloned()
    }

    fn producer(&self, bootstrap: &str) -> Option<Arc<ThreadedProducer<DefaultProducerContext>>> {
        let mut producers = self.producers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = producers.get(bootstrap) {
            return Some(p.clone());
        }
        let producer: ThreadedProducer<DefaultProducerContext> =
            crate::kafka::client(bootstrap, self.auth_of(bootstrap).as_ref())
                .set("acks", "1")
                .set("linger.ms", "50")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_borrowed_entry_is_written_as_the_owned_one_and_reads_back() {
        let owned = Entry {
            event_id: "e-1".to_owned(),
            source: "/orders".to_owned(),
            at_ms: 1_700_000_000_000,
            by: "Trigger default/audit".to_owned(),
            topic: "events".to_owned(),
            partition: 2,
            offset: 41,
            outcome: "delivered".to_owned(),
            attempts: 1,
            code: Some(202),
            destination: Some("http://sink/".to_owned()),
            dead_letter_sink: None,
            took_ms: Some(3),
        };
        let borrowed = Entry {
            event_id: owned.event_id.as_str(),
            source: owned.source.as_str(),
            at_ms: owned.at_ms,
            by: owned.by.as_str(),
            topic: owned.topic.as_str(),
            partition: owned.partition,
            offset: owned.offset,
            outcome: owned.outcome.as_str(),
            attempts: owned.attempts,
            code: owned.code,
            destination: owned.destination.as_deref(),
            dead_letter_sink: owned.dead_letter_sink.as_deref(),
            took_ms: owned.took_ms,
        };
        let json = serde_json::to_vec(&borrowed).unwrap();
        assert_eq!(json, serde_json::to_vec(&owned).unwrap());
        let mut record = json.clone();
        record.push(b'\n');
        record.extend_from_slice(&json);
        let read: Vec<Entry> = Journal::entries(&record).collect();
        assert_eq!(read, [owned.clone(), owned]);
    }
}
