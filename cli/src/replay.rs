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

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ferry_api::contract::{Contract, ContractResource, Egress};
use ferry_dispatcher::config::DispatcherConfig;
use ferry_dispatcher::egress::consumer::decode;
use ferry_dispatcher::egress::deliver::{Deliverer, Services};
use ferry_dispatcher::journal::Journal;
use ferry_dispatcher::log::Log;
use ferry_dispatcher::metrics::{EgressOutcome, Metrics};
use rdkafka::message::Message;
use serde::Serialize;

use crate::tail::{BoundedRead, Read, StartAt};

/// What to replay.
#[derive(Clone, Debug)]
pub struct Replay {
    /// `namespace/name` of the Trigger.
    pub trigger: String,
    /// Where to start in the Broker's log.
    pub from: StartAt,
    /// The contract file (`.ferry/contract.json` under `ferry dev`).
    pub contract: PathBuf,
    /// Bootstrap servers to read from instead of the contract's (e.g. through a port-forward).
    pub kafka: Option<String>,
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

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The contract or the trigger is wrong: the user must fix an argument.
    #[error("{0}")]
    Usage(String),
    /// The log could not be read.
    #[error("{0}")]
    Log(String),
}

/// The Trigger's egress and its resource in `contract`.
///
/// # Errors
/// No such trigger (with the triggers that exist).
pub fn find<'c>(
    contract: &'c Contract,
    trigger: &str,
) -> Result<(&'c ContractResource, &'c Egress), ReplayError> {
    let (ns, name) = trigger.split_once('/').ok_or_else(|| {
        ReplayError::Usage(format!(
            "{trigger:?} is not <namespace>/<trigger>, e.g. default/cart-items"
        ))
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
    Err(ReplayError::Usage(format!(
        "trigger {trigger} is not in the contract (it does not exist or is not ready); triggers there: {}",
        if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        }
    )))
}

/// Replays, calling `progress` after each record.
///
/// # Errors
/// [`ReplayError`]: bad arguments or an unreachable log.
pub async fn run(
    replay: &Replay,
    mut progress: impl FnMut(&Summary),
) -> Result<Summary, ReplayError> {
    let text = std::fs::read(&replay.contract).map_err(|e| {
        ReplayError::Usage(format!(
            "cannot read the contract {} ({e}); run from where ferry dev runs or pass --contract",
            replay.contract.display()
        ))
    })?;
    let contract = Contract::from_json(&text).map_err(|e| {
        ReplayError::Usage(format!(
            "{} is not a valid contract: {e}",
            replay.contract.display()
        ))
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
    let mut deliverer = Deliverer::new(
        egress.clone(),
        (&bootstrap, &resource.topics),
        Services {
            http: reqwest::Client::new(),
            log: Log::new(config.producer_settings()),
            metrics,
            journal: journal.clone(),
            // Revision URLs are delivered to as they are: whoever serves them activates.
            activator: Arc::default(),
        },
        None,
    )
    .map_err(ReplayError::Usage)?;
    deliverer.label = format!("{} (replay)", deliverer.label);

    let mut read = tokio::task::block_in_place(|| {
        BoundedRead::open(&bootstrap, "ferry-replay", &resource.topics, &replay.from)
    })
    .map_err(|e| ReplayError::Log(e.to_string()))?;
    let mut summary = Summary {
        trigger: replay.trigger.clone(),
        total: read.total(),
        ..Summary::default()
    };
    progress(&summary);
    loop {
        let step = tokio::task::block_in_place(|| read.next(Duration::from_millis(200)))
            .map_err(|e| ReplayError::Log(e.to_string()))?;
        let m = match step {
            Read::Record(m) => m,
            Read::Nothing => continue,
            Read::Done => break,
        };
        summary.read += 1;
        let at = (m.topic(), m.partition(), m.offset());
        let outcome = match decode(&deliverer, &m) {
            Ok(Some(event)) if deliverer.filter.matches(&event) => {
                let settled = deliverer.deliver(&event).await;
                deliverer.record(&event, at, Some(&settled));
                settled.outcome
            }
            Ok(Some(_)) => EgressOutcome::Filtered,
            Ok(None) | Err(_) => EgressOutcome::Malformed,
        };
        summary.count(outcome);
        progress(&summary);
    }
    tokio::task::block_in_place(|| journal.flush());
    Ok(summary)
}
