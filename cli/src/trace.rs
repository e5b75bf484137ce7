//! `ferry trace <event-id>`: where an event went, from the dispatcher's delivery journal.
//!
//! Ingress journals where it stored the event; each egress how it settled it. This reads the
//! journal topic from the start of its retention (or `--since`) up to its end and prints the
//! entries for one event id, in time order. Dispatchers write the journal in batches (every
//! 100 ms or so), so when ingress's entry is not there yet it keeps reading for `--wait` until
//! it is (right after `ferry send`, the entry is on its way, and an egress may journal first);
//! `--follow` then prints each new entry as it is written, until interrupted.
//!
//! Two ways to the journal, with the same output:
//! - `--kafka`: read the journal topic from the log itself. This needs an address of the log
//!   that its metadata answers with too, which a `kubectl port-forward` to a log in a cluster
//!   does not give (the log advertises its in-cluster address).
//! - `--dispatcher` (`FERRY_DISPATCHER`): ask a dispatcher's journal endpoint on its admin port
//!   ([`ferry_dispatcher::journal::endpoint`]), which reads the journal with the same code
//!   ([`ferry_dispatcher::journal::trace`]); in Kubernetes, through a `kubectl port-forward`
//!   to the dispatcher's admin port ([`remote`]).

pub mod remote;

use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ferry_dispatcher::journal::Entry;
use ferry_dispatcher::journal::trace::{self as journal_trace, JournalLog, Query};
use ferry_dispatcher::log_reader::StartAt;

use crate::{Error, Output, Result};

/// How long one poll of the log blocks while following.
const FOLLOW_POLL: Duration = Duration::from_millis(500);

/// `ferry trace`'s flags: what to look up, where, and how to print it.
#[derive(clap::Args, Clone, Debug)]
pub struct Trace {
    /// The event's id.
    pub event_id: String,
    /// Only the event with this source (ids are unique per source).
    #[arg(long)]
    pub source: Option<String>,
    /// Ask this dispatcher's admin endpoint (e.g. http://127.0.0.1:9090, a `kubectl
    /// port-forward` to its admin port) instead of reading the log; --kafka and
    /// --journal-topic are then the dispatcher's own.
    #[arg(long, env = "FERRY_DISPATCHER")]
    pub dispatcher: Option<String>,
    /// Kafka bootstrap servers of the log (without --dispatcher).
    #[arg(long, default_value = "127.0.0.1:9092", env = "FERRY_KAFKA")]
    pub kafka: String,
    /// The journal topic (the dispatcher's --journal-topic; without --dispatcher).
    #[arg(long, default_value = ferry_dispatcher::journal::DEFAULT_TOPIC)]
    pub journal_topic: String,
    /// Read the journal from here: earliest, an offset, or an RFC 3339 time.
    #[arg(long, default_value = "earliest")]
    pub since: StartAt,
    /// When the journal has no ingress entry for the event yet, keep reading this long for one
    /// before answering with what it has, or saying the event was never accepted (the journal
    /// is written in batches, every 100 ms or so). Events from a KafkaSource have no ingress
    /// entry: their trace answers after this wait.
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

impl Trace {
    /// What to look for in the journal.
    pub fn query(&self) -> Query {
        Query {
            event_id: self.event_id.clone(),
            source: self.source.clone(),
            since: self.since.clone(),
            wait: self.wait,
        }
    }

    /// Prints the entries the journal held (with `--follow`, one JSON object per line).
    fn print_found(&self, entries: &[Entry]) -> Result<()> {
        match self.output {
            Output::Json if !self.follow => crate::print_json(&entries),
            Output::Json => entries.iter().try_for_each(print_json_line),
            Output::Table if !entries.is_empty() => crate::print(&table(entries)),
            Output::Table => Ok(()),
        }
    }

    /// Prints an entry written after the first read (`--follow`).
    fn print_new(&self, entry: &Entry) -> Result<()> {
        match self.output {
            Output::Json => print_json_line(entry),
            Output::Table => crate::print(&(cells(entry).join("  ") + "\n")),
        }
    }

    /// Exit 0 when the journal had entries, else [`Error::NotJournaled`] naming `place`.
    fn found(&self, entries: &[Entry], place: String) -> Result<()> {
        if entries.is_empty() {
            return Err(Error::NotJournaled {
                event_id: self.event_id.clone(),
                place,
            });
        }
        Ok(())
    }
}

/// Runs `ferry trace`: exit 0 when the journal has the event, 1 when it has not, 2 for a bad
/// argument, 3 when the journal cannot be read.
pub fn command(trace: &Trace) -> ExitCode {
    let result = match &trace.dispatcher {
        Some(url) => remote::trace_and_print(trace, url),
        None => trace_and_print(trace),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report("trace"),
    }
}

/// Reads the journal from the log, prints, and with `--follow` prints on until interrupted.
fn trace_and_print(trace: &Trace) -> Result<()> {
    let (entries, mut read) = run(trace)?;
    trace.print_found(&entries)?;
    if trace.follow {
        let query = trace.query();
        loop {
            for e in journal_trace::follow(&mut read, &query, FOLLOW_POLL)? {
                trace.print_new(&e)?;
            }
        }
    }
    let place = format!("in {} at {}", trace.journal_topic, trace.kafka);
    trace.found(&entries, place)
}

fn print_json_line(e: &Entry) -> Result<()> {
    let line = serde_json::to_string(e).map_err(|e| Error::Output(std::io::Error::other(e)))?;
    crate::print(&(line + "\n"))
}

/// Reads the journal entries of the event from the log, oldest first, and the reader,
/// positioned after them. When the journal has none up to its end, reads on for `--wait` as
/// it is written.
///
/// # Errors
/// The log cannot be reached or has no journal topic.
pub fn run(trace: &Trace) -> Result<(Vec<Entry>, ferry_dispatcher::log_reader::BoundedRead)> {
    let log = JournalLog {
        bootstrap: trace.kafka.clone(),
        auth: None,
        topic: trace.journal_topic.clone(),
    };
    Ok(journal_trace::read(&log, &trace.query())?)
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
