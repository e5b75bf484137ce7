//! `ferry replay`: re-deliver a Trigger's history to its subscriber — the event-sourcing move
//! of rebuilding a projection from the log.
//!
//! It reads the contract the dispatcher runs (written by `ferry dev`, or the operator's
//! ConfigMap saved to a file), finds the Trigger's egress, reads its Broker's topic from the
//! chosen position up to the end as it was when the replay started, and delivers each event
//! that passes the Trigger's filters exactly as the dispatcher would: the same retries,
//! dead-letter sink, reply handling and traffic split. It uses no consumer group, so the
//! Trigger's own committed position is untouched. Events go one at a time, in log order per
//! partition.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ferry_api::contract::{Contract, ContractResource, Egress};
use ferry_dispatcher::config::DispatcherConfig;
use ferry_dispatcher::egress::client::HttpClient;
use ferry_dispatcher::egress::consumer::decode;
use ferry_dispatcher::egress::deliver::{Deliverer, Services};
use ferry_dispatcher::journal::Journal;
use ferry_dispatcher::log::{Log, record_traceparent};
use ferry_dispatcher::metrics::{EgressOutcome, Metrics};
use ferry_runtime::telemetry::{Parent, Telemetry};
use rdkafka::message::Message;
use serde::Serialize;

use crate::{Error, Output, Result};
use ferry_dispatcher::log_reader::{BoundedRead, Read, StartAt};

/// `ferry replay`'s flags: what to replay, from where, and how to print the summary.
#[derive(clap::Args, Clone, Debug)]
pub struct Replay {
    /// `<namespace>/<trigger>`.
    pub trigger: String,
    /// earliest, latest, an offset, or an RFC 3339 time.
    #[arg(long)]
    pub from: StartAt,
    /// The contract the dispatcher runs (ferry dev writes it under its data directory).
    #[arg(long, default_value = ".ferry/contract.json")]
    pub contract: PathBuf,
    /// Read the log from these bootstrap servers instead of the contract's.
    #[arg(long, env = "FERRY_KAFKA")]
    pub kafka: Option<String>,
    /// Output format of the summary.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// What a replay did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The trigger.
    pub trigger: String,
    /// Records read from the log.
    pub read: u64,
    /// Records at or past the start, up to the end: the replay's size.
    pub total: u64,
    /// Delivered with a 2xx.
    pub delivered: u64,
    /// Did not pass the Trigger's filters.
    pub filtered: u64,
    /// Sent to the dead-letter sink after the retries.
    pub dead_lettered: u64,
    /// Given up without (or despite) a dead-letter sink.
    pub dropped: u64,
    /// Records that are not CloudEvents.
    pub malformed: u64,
}

impl Summary {
    /// `true` when every matching event reached the subscriber.
    pub fn complete(&self) -> bool {
        self.dead_lettered == 0 && self.dropped == 0 && self.malformed == 0
    }

    fn count(&mut self, outcome: EgressOutcome) {
        match outcome {
            EgressOutcome::Delivered => self.delivered += 1,
            EgressOutcome::Filtered => self.filtered += 1,
            EgressOutcome::DeadLettered => self.dead_lettered += 1,
            EgressOutcome::Dropped => self.dropped += 1,
            // Not a final outcome: `deliver` settles every event.
            EgressOutcome::Retried => {}
            EgressOutcome::Malformed => self.malformed += 1,
        }
    }
}

/// The line `ferry replay` prints: how many events, and how each was settled.
impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "replayed {} of {} events to {}: {} delivered, {} filtered out, {} dead-lettered, {} dropped, {} not CloudEvents",
            self.read,
            self.total,
            self.trigger,
            self.delivered,
            self.filtered,
            self.dead_lettered,
            self.dropped,
            self.malformed
        )
    }
}

/// The Trigger's egress and its resource in `contract`.
///
/// # Errors
/// [`Error::NotATrigger`], or [`Error::TriggerNotFound`] naming the triggers that exist.
pub fn find<'c>(
    contract: &'c Contract,
    trigger: &str,
) -> Result<(&'c ContractResource, &'c Egress)> {
    let (ns, name) = trigger.split_once('/').ok_or_else(|| Error::NotATrigger {
        trigger: trigger.to_owned(),
    })?;
    let mut known = Vec::new();
    for resource in &contract.resources {
        for egress in &resource.egresses {
            let r = &egress.reference;
            if r.kind == "Trigger" {
                if r.namespace == ns && r.name == name {
                    return Ok((resource, egress));
                }
                known.push(format!("{}/{}", r.namespace, r.name));
            }
        }
    }
    Err(Error::TriggerNotFound {
        trigger: trigger.to_owned(),
        known: if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        },
    })
}

/// Runs `ferry replay`: progress on stderr when it is a terminal, then the summary; exit 0
/// when every matching event was delivered, 1 when some were not, 2 for bad arguments, 3
/// when the log cannot be read.
pub fn command(replay: &Replay) -> ExitCode {
    match replay_and_print(replay) {
        Ok(summary) if summary.complete() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => e.report("replay"),
    }
}

fn replay_and_print(replay: &Replay) -> Result<Summary> {
    let tty = std::io::stderr().is_terminal();
    let runtime = tokio::runtime::Runtime::new().map_err(Error::Runtime)?;
    let result = runtime.block_on(run(replay, |s| {
        if tty && (s.read % 100 == 0 || s.read == s.total) {
            eprint!("\rreplaying {}: {}/{} events", s.trigger, s.read, s.total);
        }
    }));
    if tty {
        eprintln!();
    }
    let s = result?;
    let text = match replay.output {
        Output::Json => serde_json::to_string(&s).map_err(std::io::Error::from)?,
        Output::Table => s.to_string(),
    };
    crate::print(&(text + "\n"))?;
    Ok(s)
}

/// Replays, calling `progress` after each record.
///
/// # Errors
/// Bad arguments (an unreadable contract, an unknown trigger) or an unreachable log.
pub async fn run(replay: &Replay, mut progress: impl FnMut(&Summary)) -> Result<Summary> {
    let text = std::fs::read(&replay.contract).map_err(|source| Error::ContractUnreadable {
        path: replay.contract.clone(),
        source,
    })?;
    let contract = Contract::from_json(&text).map_err(|e| Error::ContractInvalid {
        path: replay.contract.clone(),
        reason: e.to_string(),
    })?;
    let (resource, egress) = find(&contract, &replay.trigger)?;
    let bootstrap = replay
        .kafka
        .clone()
        .unwrap_or_else(|| resource.bootstrap_servers.clone());
    let config = DispatcherConfig::new(
        replay.contract.clone(),
        ([127, 0, 0, 1], 0).into(),
        ([127, 0, 0, 1], 0).into(),
    );
    let metrics = Arc::new(Metrics::default());
    // Replayed deliveries are deliveries: `ferry trace` shows them too.
    let journal = Journal::new(config.journal_settings(), metrics.clone());
    // Replayed deliveries are traced like the dispatcher's when `OTEL_*` says so, continuing
    // the trace each record carries.
    let telemetry = Telemetry::from_env("ferry-replay")
        .map_err(|e| Error::Deliverer(ferry_dispatcher::Error::Tracing(e)))?;
    let mut deliverer = Deliverer::new(
        egress.clone(),
        (&resource.reference, &bootstrap, &resource.topics),
        Services {
            http: HttpClient::new(
                usize::MAX,
                std::time::Duration::from_secs(90),
                std::time::Duration::from_secs(5),
            ),
            log: Log::new(config.producer_settings()),
            metrics,
            journal: journal.clone(),
            // Revision URLs are delivered to as they are: whoever serves them activates.
            activator: Arc::default(),
            telemetry: telemetry.clone(),
        },
        None,
    )
    .map_err(Error::Deliverer)?;
    deliverer.label = format!("{} (replay)", deliverer.label);

    let mut read = tokio::task::block_in_place(|| {
        BoundedRead::open(
            &bootstrap,
            None,
            "ferry-replay",
            &resource.topics,
            &replay.from,
        )
    })?;
    let mut summary = Summary {
        trigger: replay.trigger.clone(),
        total: read.total(),
        ..Summary::default()
    };
    progress(&summary);
    loop {
        let step = tokio::task::block_in_place(|| read.next(Duration::from_millis(200)))?;
        let m = match step {
            Read::Record(m) => m,
            Read::Nothing => continue,
            Read::Done => break,
        };
        summary.read += 1;
        let at = (m.topic(), m.partition(), m.offset());
        let outcome = match decode(&deliverer, &m) {
            Ok(Some(event)) if deliverer.filter.matches(&event) => {
                let parent = if telemetry.enabled() {
                    Parent::remote(record_traceparent(&m).as_deref())
                } else {
                    Parent::None
                };
                let settled = deliverer.deliver(&event, &parent).await;
                deliverer.record(&event, at, Some(&settled));
                settled.outcome
            }
            Ok(Some(_)) => EgressOutcome::Filtered,
            Ok(None) | Err(_) => EgressOutcome::Malformed,
        };
        summary.count(outcome);
        progress(&summary);
    }
    tokio::task::block_in_place(|| {
        journal.flush();
        telemetry.shutdown();
    });
    Ok(summary)
}
