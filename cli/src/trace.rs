//! `ferry trace <event-id>`: where an event went, from the dispatcher's delivery journal.
//!
//! Ingress journals where it stored the event; each egress how it settled it. This reads the
//! journal topic from the start of its retention (or `--since`) up to its end and prints the
//! entries for one event id, in time order.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ferry_dispatcher::journal::{Entry, Journal};
use rdkafka::message::Message;

use crate::tail::{BoundedRead, Read, StartAt};

/// What to look up.
#[derive(Clone, Debug)]
pub struct Trace {
    /// The event id.
    pub event_id: String,
    /// Only entries of events with this source (ids are unique per source).
    pub source: Option<String>,
    /// Bootstrap servers of the log holding the journal.
    pub kafka: String,
    /// The journal topic.
    pub topic: String,
    /// Where to start reading the journal.
    pub since: StartAt,
}

/// Reads the journal entries of the event, oldest first.
///
/// # Errors
/// The log cannot be reached or has no journal topic.
pub fn run(trace: &Trace) -> anyhow::Result<Vec<Entry>> {
    let topics = [trace.topic.clone()];
    let mut read = BoundedRead::open(&trace.kafka, "ferry-trace", &topics, &trace.since)?;
    let mut entries = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        if std::time::Instant::now() > deadline {
            anyhow::bail!(
                "reading the journal at {} took over 2 minutes; try --since",
                trace.kafka
            );
        }
        let m = match read.next(Duration::from_millis(500))? {
            Read::Record(m) => m,
            Read::Nothing => continue,
            Read::Done => break,
        };
        let Some(value) = m.payload() else {
            continue;
        };
        entries.extend(Journal::entries(value).filter(|e| {
            e.event_id == trace.event_id && trace.source.as_ref().is_none_or(|s| *s == e.source)
        }));
    }
    // Where it was stored first (an egress may settle it before ingress has its ack), then
    // the settlements in time order.
    entries.sort_by_key(|e| (e.outcome != "accepted", e.at_ms));
    Ok(entries)
}

/// One line per entry: when, where, outcome, and the details.
pub fn table(entries: &[Entry]) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let time = DateTime::<Utc>::from_timestamp_millis(e.at_ms)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
                .unwrap_or_default();
            let mut detail = vec![format!("{} p{} @{}", e.topic, e.partition, e.offset)];
            if let Some(d) = &e.destination {
                detail.push(format!("→ {d}"));
            }
            if let Some(code) = e.code {
                detail.push(format!("status {code}"));
            }
            if e.attempts > 0 {
                let s = if e.attempts == 1 { "" } else { "s" };
                detail.push(format!("{} attempt{s}", e.attempts));
            }
            if let Some(ms) = e.took_ms {
                detail.push(format!("{ms} ms"));
            }
            if let Some(dls) = &e.dead_letter_sink {
                detail.push(format!("dead-letter sink {dls}"));
            }
            vec![time, e.by.clone(), e.outcome.clone(), detail.join(", ")]
        })
        .collect();
    crate::table(&["TIME", "WHERE", "OUTCOME", "DETAIL"], &rows)
}
