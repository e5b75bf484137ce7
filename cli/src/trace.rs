//! `ferry trace <event-id>`: where an event went, from the dispatcher's delivery journal.
//!
//! Ingress journals where it stored the event; each egress how it settled it. This reads the
//! journal topic from the start of its retention (or `--since`) up to its end and prints the
//! entries for one event id, in time order. Dispatchers write the journal in batches (every
//! 100 ms or so), so when nothing is there yet it keeps reading for `--wait` (right after
//! `ferry send`, the entry is on its way); `--follow` then prints each new entry as it is
//! written, until interrupted.
//!
//! It needs only the log's bootstrap servers: in Kubernetes, the embedded broker's Service
//! through `kubectl port-forward` (or any address that reaches the Kafka cluster).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ferry_dispatcher::journal::{Entry, Journal};
use rdkafka::message::Message;

use crate::log::{BoundedRead, Read, StartAt};
use crate::{Error, Output, Result};

/// How long reading the journal may take before `ferry trace` gives up.
const READ_DEADLINE: Duration = Duration::from_secs(120);

/// `ferry trace`'s flags: what to look up, where, and how to print it.
#[derive(clap::Args, Clone, Debug)]
pub struct Trace {
    /// The event's id.
    pub event_id: String,
    /// Only the event with this source (ids are unique per source).
    #[arg(long)]
    pub source: Option<String>,
    /// Kafka bootstrap servers of the log.
    #[arg(long, default_value = "127.0.0.1:9092", env = "FERRY_KAFKA")]
    pub kafka: String,
    /// The journal topic (the dispatcher's --journal-topic).
    #[arg(long, default_value = ferry_dispatcher::journal::DEFAULT_TOPIC)]
    pub journal_topic: String,
    /// Read the journal from here: earliest, an offset, or an RFC 3339 time.
    #[arg(long, default_value = "earliest")]
    pub since: StartAt,
    /// When the journal has nothing for the event yet, keep reading this long before saying
    /// it was never accepted (the journal is written in batches, every 100 ms or so).
    #[arg(long, value_parser = ferry_runtime::duration::parse, default_value = "2s")]
    pub wait: Duration,
    /// After what is there, print each new entry for the event as it is written (one line, or
    /// one JSON object per line with `-o json`), until interrupted.
    #[arg(short, long)]
    pub follow: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Runs `ferry trace`: exit 0 when the journal has the event, 1 when it has not, 3 when the
/// journal cannot be read.
pub fn command(trace: &Trace) -> ExitCode {
    match trace_and_print(trace) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report("trace"),
    }
}

fn trace_and_print(trace: &Trace) -> Result<()> {
    let (entries, mut read) = run(trace)?;
    match trace.output {
        Output::Json if !trace.follow => crate::print_json(&entries)?,
        Output::Json => {
            for e in &entries {
                print_json_line(e)?;
            }
        }
        Output::Table if !entries.is_empty() => crate::print(&table(&entries))?,
        Output::Table => {}
    }
    if trace.follow {
        read.keep_reading();
        loop {
            let m = match read.next(Duration::from_millis(500))? {
                Read::Record(m) => m,
                Read::Nothing | Read::Done => continue,
            };
            for e in matching(trace, m.payload()) {
                match trace.output {
                    Output::Json => print_json_line(&e)?,
                    Output::Table => crate::print(&(cells(&e).join("  ") + "\n"))?,
                }
            }
        }
    }
    if entries.is_empty() {
        return Err(Error::NotJournaled {
            event_id: trace.event_id.clone(),
            topic: trace.journal_topic.clone(),
            kafka: trace.kafka.clone(),
        });
    }
    Ok(())
}

fn print_json_line(e: &Entry) -> Result<()> {
    let line = serde_json::to_string(e).map_err(|e| Error::Output(std::io::Error::other(e)))?;
    crate::print(&(line + "\n"))
}

/// The entries of one journal record that are about the traced event.
fn matching(trace: &Trace, payload: Option<&[u8]>) -> Vec<Entry> {
    payload
        .map(|value| {
            Journal::entries(value)
                .filter(|e| {
                    e.event_id == trace.event_id
                        && trace.source.as_ref().is_none_or(|s| *s == e.source)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Reads the journal entries of the event, oldest first, and the reader, positioned after
/// them. When the journal has none up to its end, reads on for `--wait` as it is written.
///
/// # Errors
/// The log cannot be reached or has no journal topic.
pub fn run(trace: &Trace) -> Result<(Vec<Entry>, BoundedRead)> {
    let started = Instant::now();
    let topics = [trace.journal_topic.clone()];
    let mut read = BoundedRead::open(&trace.kafka, "ferry-trace", &topics, &trace.since)?;
    let mut entries = Vec::new();
    let deadline = started + READ_DEADLINE;
    let mut waiting = false;
    loop {
        if Instant::now() > deadline {
            return Err(Error::JournalTooSlow {
                kafka: trace.kafka.clone(),
            });
        }
        if waiting && (!entries.is_empty() || started.elapsed() >= trace.wait) {
            break;
        }
        let m = match read.next(Duration::from_millis(100))? {
            Read::Record(m) => m,
            Read::Nothing => continue,
            Read::Done if entries.is_empty() && !trace.wait.is_zero() => {
                read.keep_reading();
                waiting = true;
                continue;
            }
            Read::Done => break,
        };
        entries.extend(matching(trace, m.payload()));
    }
    // Where it was stored first (an egress may settle it before ingress has its ack), then
    // the settlements in time order.
    entries.sort_by_key(|e| (e.outcome != "accepted", e.at_ms));
    Ok((entries, read))
}

/// One line per entry: when, where, outcome, and the details.
pub fn table(entries: &[Entry]) -> String {
    let rows: Vec<Vec<String>> = entries.iter().map(cells).collect();
    crate::table(&["TIME", "WHERE", "OUTCOME", "DETAIL"], &rows)
}

/// An entry's cells: time, where, outcome, details.
fn cells(e: &Entry) -> Vec<String> {
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
}
