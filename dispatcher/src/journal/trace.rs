//! Reading one event's journal entries: what `ferry trace` prints, whether it reads the log
//! itself or asks a dispatcher's journal endpoint ([`super::endpoint`]), which reads it with
//! this same code.
//!
//! A trace reads the journal topic from `since` up to its end as it was when the read began
//! and keeps the entries about the event. When none is ingress's (`accepted`), it reads on for
//! `wait` as the journal is written until one is: right after a send the entry is on its way
//! (the journal is written in batches every [`super::FLUSH_EVERY`]), and an egress may journal
//! the event's settlement before ingress, which waits for the log's ack, journals where it
//! stored it. Events that enter through no ingress (a KafkaSource's) have no such entry; their
//! trace answers after `wait`. A follower then takes each new entry as it comes.

use std::time::{Duration, Instant};

use ferry_api::contract::KafkaAuth;
use rdkafka::message::Message;

use super::{Entry, Journal};
use crate::log_reader::{BoundedRead, Read, StartAt};
use crate::{Error, Result};

/// How long reading the journal to its end may take before a trace gives up.
pub const READ_DEADLINE: Duration = Duration::from_secs(120);

/// How long one poll of the log blocks while waiting or following.
const POLL: Duration = Duration::from_millis(100);

/// What a trace looks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// The event's id.
    pub event_id: String,
    /// Only the event with this source (ids are unique per source).
    pub source: Option<String>,
    /// Where reading the journal starts.
    pub since: StartAt,
    /// When the journal has no ingress entry for the event up to its end, how long to read
    /// on for one.
    pub wait: Duration,
}

impl Query {
    /// Whether `entry` is about the event looked for.
    pub fn matches(&self, entry: &Entry) -> bool {
        entry.event_id == self.event_id && self.source.as_ref().is_none_or(|s| *s == entry.source)
    }

    /// The entries of one journal record that are about the event.
    pub fn entries_in(&self, record: Option<&[u8]>) -> Vec<Entry> {
        record
            .map(|value| {
                Journal::entries(value)
                    .filter(|e| self.matches(e))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Puts an event's entries in the order a trace shows them: where it was stored first (an
/// egress may settle it before ingress has its ack), then the settlements in time order.
pub fn in_order(entries: &mut [Entry]) {
    entries.sort_by_key(|e| (e.outcome != "accepted", e.at_ms));
}

/// The journal of one log: where it is and what it is called.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalLog {
    /// The log's bootstrap servers.
    pub bootstrap: String,
    /// How to connect (`None`: Ferry's own log, with the `FERRY_KAFKA_*` settings).
    pub auth: Option<KafkaAuth>,
    /// The journal topic.
    pub topic: String,
}

/// Reads the event's entries from `log`'s journal, in [`in_order`], and the reader positioned
/// after them (blocking). When the journal has no ingress entry for the event up to its end,
/// reads on for `query.wait` as it is written, until one comes.
///
/// # Errors
/// The log cannot be reached or has no journal topic ([`Error::LogUnreachable`],
/// [`Error::TopicNotFound`], …), or reading it took over [`READ_DEADLINE`]
/// ([`Error::JournalTooSlow`]).
pub fn read(log: &JournalLog, query: &Query) -> Result<(Vec<Entry>, BoundedRead)> {
    let started = Instant::now();
    let topics = [log.topic.clone()];
    let mut read = BoundedRead::open(
        &log.bootstrap,
        log.auth.as_ref(),
        "ferry-trace",
        &topics,
        &query.since,
    )?;
    let mut entries = Vec::new();
    let deadline = started + READ_DEADLINE;
    let mut waiting = false;
    loop {
        if Instant::now() > deadline {
            return Err(Error::JournalTooSlow {
                kafka: log.bootstrap.clone(),
            });
        }
        if waiting && (stored(&entries) || started.elapsed() >= query.wait) {
            break;
        }
        let m = match read.next(POLL)? {
            Read::Record(m) => m,
            Read::Nothing => continue,
            Read::Done if !stored(&entries) && !query.wait.is_zero() => {
                read.keep_reading();
                waiting = true;
                continue;
            }
            Read::Done => break,
        };
        entries.extend(query.entries_in(m.payload()));
    }
    in_order(&mut entries);
    Ok((entries, read))
}

/// Whether `entries` hold ingress's: where the event was stored.
fn stored(entries: &[Entry]) -> bool {
    entries.iter().any(|e| e.outcome == "accepted")
}

/// After [`read`]: the event's entries written since, as they come. Each call polls the log
/// once, blocking up to `poll`; an empty answer means nothing new yet.
///
/// # Errors
/// [`Error::LogRead`]: the log failed the fetch.
pub fn follow(read: &mut BoundedRead, query: &Query, poll: Duration) -> Result<Vec<Entry>> {
    read.keep_reading();
    match read.next(poll)? {
        Read::Record(m) => Ok(query.entries_in(m.payload())),
        Read::Nothing | Read::Done => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, source: &str, outcome: &str, at_ms: i64) -> Entry {
        Entry {
            event_id: id.into(),
            source: source.into(),
            at_ms,
            by: "Broker default/orders".into(),
            topic: "t".into(),
            partition: 0,
            offset: 1,
            outcome: outcome.into(),
            attempts: 0,
            code: None,
            destination: None,
            dead_letter_sink: None,
            took_ms: None,
        }
    }

    #[test]
    fn a_query_keeps_the_event_by_id_and_source() {
        let query = |source: Option<&str>| Query {
            event_id: "e-1".into(),
            source: source.map(Into::into),
            since: StartAt::Earliest,
            wait: Duration::ZERO,
        };
        let lines: Vec<String> = [
            entry("e-1", "/a", "accepted", 1),
            entry("e-2", "/a", "accepted", 2),
            entry("e-1", "/b", "accepted", 3),
        ]
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
        let record = (lines.join("\n") + "\nnot json\n").into_bytes();
        let ats = |q: &Query| -> Vec<i64> {
            q.entries_in(Some(&record))
                .iter()
                .map(|e| e.at_ms)
                .collect()
        };
        assert_eq!(ats(&query(None)), [1, 3]);
        assert_eq!(ats(&query(Some("/b"))), [3]);
        assert!(query(None).entries_in(None).is_empty());
    }

    #[test]
    fn stored_comes_first_then_settlements_by_time() {
        let mut entries = vec![
            entry("e", "/a", "delivered", 5),
            entry("e", "/a", "accepted", 9),
            entry("e", "/a", "filtered", 3),
        ];
        in_order(&mut entries);
        let order: Vec<(&str, i64)> = entries
            .iter()
            .map(|e| (e.outcome.as_str(), e.at_ms))
            .collect();
        assert_eq!(order, [("accepted", 9), ("filtered", 3), ("delivered", 5)]);
    }
}
