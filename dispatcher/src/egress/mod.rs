//! Egress: one consumer group per Trigger, Subscription and KafkaSource, delivering what it
//! reads with Knative's delivery semantics.
//!
//! [`EgressSet::apply`] reconciles the running egresses with a contract: unchanged ones keep
//! running untouched, changed ones are drained and restarted, removed ones are drained and
//! stopped, new ones start.

pub mod client;
pub mod consumer;
pub mod deliver;
pub mod filter;
pub mod policy;
pub mod source;
pub mod tracker;
pub mod traffic;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ferry_api::contract::{Contract, Egress, KafkaAuth, ObjectRef};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::activator::Activator;
use crate::journal::Journal;
use crate::log::Log;
use crate::metrics::Metrics;
use deliver::{Deliverer, Services};

/// How long applying a contract waits for new egresses to fix their start offsets.
const START_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// A started egress: its stop token, its task, and the signal that its start offsets are fixed.
type Started = (
    CancellationToken,
    JoinHandle<()>,
    tokio::sync::oneshot::Receiver<()>,
);

/// Knobs shared by every egress.
#[derive(Clone, Debug)]
pub struct EgressSettings {
    /// Events consumed and not yet settled, per egress (memory bound and concurrency limit).
    pub max_in_flight: usize,
    /// Consumer-group session timeout.
    pub session_timeout: Duration,
    /// `max.poll.interval.ms`: a consumer that cannot take a new record for this long (all
    /// in-flight slots busy) leaves the group and its records are redelivered.
    pub max_poll_interval: Duration,
    /// How often stored offsets are committed.
    pub commit_interval: Duration,
    /// Memory librdkafka may use for prefetched records, per egress.
    pub prefetch_kbytes: u32,
    /// How long a stopping egress waits for in-flight deliveries.
    pub drain_timeout: Duration,
    /// Seed for traffic-split choices (tests); random when `None`.
    pub seed: Option<u64>,
}

/// What an egress runs from; a change in any part restarts it.
#[derive(Clone, Debug, PartialEq)]
struct Spec {
    /// The Broker, channel or source the egress reads for.
    resource: ObjectRef,
    bootstrap: String,
    /// The cluster's connection settings (`None`: Ferry's own log); a change restarts the
    /// egress, so rotated credentials take effect.
    auth: Option<KafkaAuth>,
    topics: Vec<String>,
    egress: Egress,
}

struct Running {
    spec: Spec,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// The running egresses of a dispatcher.
pub struct EgressSet {
    settings: EgressSettings,
    services: Services,
    running: HashMap<String, Running>,
}

impl EgressSet {
    /// An empty set.
    pub fn new(
        settings: EgressSettings,
        log: Arc<Log>,
        metrics: Arc<Metrics>,
        journal: Arc<Journal>,
        activator: Arc<Activator>,
        telemetry: Arc<ferry_runtime::telemetry::Telemetry>,
    ) -> Self {
        // Keep as many idle connections per host as deliveries may be in flight: a smaller pool
        // closes and reopens connections under load (a TCP handshake per event).
        let http = client::HttpClient::new(
            settings.max_in_flight,
            Duration::from_secs(30),
            Duration::from_secs(5),
        );
        EgressSet {
            settings,
            services: Services {
                http,
                log,
                metrics,
                journal,
                activator,
                telemetry,
            },
            running: HashMap::new(),
        }
    }

    /// Uids of the running egresses.
    pub fn running(&self) -> Vec<String> {
        self.running.keys().cloned().collect()
    }

    /// Makes the running egresses match the contract, and returns once the new ones have
    /// fixed their start offsets (or [`START_WAIT`] passed).
    pub async fn apply(&mut self, contract: &Contract) {
        let mut wanted: HashMap<String, Spec> = HashMap::new();
        for resource in &contract.resources {
            for egress in &resource.egresses {
                let spec = Spec {
                    resource: resource.reference.clone(),
                    bootstrap: resource.bootstrap_servers.clone(),
                    auth: resource.auth.clone(),
                    topics: resource.topics.clone(),
                    egress: egress.clone(),
                };
                wanted.insert(egress.uid.clone(), spec);
            }
        }
        let stale: Vec<String> = self
            .running
            .iter()
            .filter(|(uid, r)| wanted.get(*uid) != Some(&r.spec))
            .map(|(uid, _)| uid.clone())
            .collect();
        let mut stopping = Vec::new();
        for uid in stale {
            if let Some(r) = self.running.remove(&uid) {
                r.stop.cancel();
                stopping.push(r.task);
            }
        }
        // Drain changed egresses before their replacements join the same group.
        for task in stopping {
            let _ = task.await;
        }
        let mut starting = Vec::new();
        for (uid, spec) in wanted {
            if self.running.contains_key(&uid) {
                continue;
            }
            match self.start(spec.clone()) {
                Ok((stop, task, started)) => {
                    starting.push(started);
                    self.running.insert(uid, Running { spec, stop, task });
                }
                Err(e) => {
                    tracing::error!(egress = %spec.egress.reference, error = %e, "egress not started")
                }
            }
        }
        // The contract counts as applied once every new egress has fixed where its group
        // starts (Knative's InitialOffsetsCommitted): an event accepted after the dispatcher
        // reports the generation is never skipped by a `latest` start. Bounded, so one
        // unreachable log does not hold every other change back.
        let all = futures::future::join_all(starting);
        if tokio::time::timeout(START_WAIT, all).await.is_err() {
            tracing::warn!(
                "some new egresses had not fixed their start offsets within {START_WAIT:?}; reporting the contract applied anyway"
            );
        }
    }

    fn start(&self, spec: Spec) -> crate::Result<Started> {
        let deliverer = Deliverer::new(
            spec.egress.clone(),
            (&spec.resource, &spec.bootstrap, &spec.topics),
            self.services.clone(),
            self.settings.seed,
        )?;
        let stop = CancellationToken::new();
        let token = stop.clone();
        let settings = self.settings.clone();
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let label = deliverer.label.clone();
            if let Err(e) = consumer::run(
                deliverer,
                spec.bootstrap,
                spec.auth,
                spec.topics,
                settings,
                token,
                started_tx,
            )
            .await
            {
                tracing::error!(egress = %label, error = %e, "egress failed to start its consumer");
            }
        });
        Ok((stop, task, started))
    }

    /// Stops every egress, draining in-flight deliveries.
    pub async fn shutdown(&mut self) {
        for r in self.running.values() {
            r.stop.cancel();
        }
        for (_, r) in self.running.drain() {
            let _ = r.task.await;
        }
    }
}
