//! The local revision runtime: each revision is a set of replicas, scaled 0..N, each a pod of
//! supervised local processes, one per container (`replica.rs`). A replica taken out of service
//! drains before it stops, as a pod leaves a Service's endpoints before its SIGTERM.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::replica::{Replica, ReplicaSpec, ReplicaState};

/// How long a replica taken out of the endpoints keeps running, so deliveries the dispatcher
/// already sent it finish before it gets SIGTERM.
const DRAIN: Duration = Duration::from_secs(2);

/// One revision: what its replicas run, and the replicas.
struct Revision {
    /// Its containers, with `K_*` set (each replica gives its serving container a `PORT`).
    spec: ReplicaSpec,
    replicas: Vec<Replica>,
    /// Replicas out of the endpoints, stopped once `DRAIN` has passed.
    draining: Vec<(Replica, Instant)>,
    /// Replica numbers for log prefixes.
    started: u32,
}

/// The revisions the runtime knows, by name, each scaled 0..N.
#[derive(Default)]
pub struct Runtime {
    revisions: BTreeMap<String, Revision>,
}

/// Identity of a revision, passed to each of its containers as Knative does (`K_SERVICE`, …).
pub struct RevisionIdentity<'a> {
    /// Revision name.
    pub revision: &'a str,
    /// Its configuration.
    pub configuration: &'a str,
    /// Its service.
    pub service: &'a str,
}

/// A revision as the table shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevisionState {
    /// Each replica (not draining).
    pub replicas: Vec<ReplicaState>,
}

impl RevisionState {
    /// URLs of the replicas that answer.
    pub fn endpoints(&self) -> Vec<String> {
        self.replicas
            .iter()
            .filter(|r| r.ready)
            .map(|r| r.url.clone())
            .collect()
    }
}

impl Runtime {
    /// Registers `id.revision` with what its replicas run (revisions are immutable: one that
    /// is known keeps its spec). It starts with no replica; [`Runtime::scale`] adds them.
    pub fn define(&mut self, id: &RevisionIdentity<'_>, spec: &ReplicaSpec) {
        self.revisions
            .entry(id.revision.to_owned())
            .or_insert_with(|| {
                let mut spec = spec.clone();
                spec.set_env("K_REVISION", id.revision);
                spec.set_env("K_CONFIGURATION", id.configuration);
                spec.set_env("K_SERVICE", id.service);
                Revision {
                    spec,
                    replicas: Vec::new(),
                    draining: Vec::new(),
                    started: 0,
                }
            });
    }

    /// Runs `replicas` replicas of a defined revision: starts new ones, or takes the newest out
    /// of the endpoints to stop them after [`DRAIN`]. Returns whether anything changed.
    ///
    /// # Errors
    /// No free port could be found.
    pub fn scale(&mut self, revision: &str, replicas: usize) -> std::io::Result<bool> {
        let Some(r) = self.revisions.get_mut(revision) else {
            return Ok(false);
        };
        let before = r.replicas.len();
        while r.replicas.len() < replicas {
            r.started += 1;
            let name = format!("{revision}#{}", r.started);
            r.replicas.push(Replica::start(&name, &r.spec)?);
        }
        while r.replicas.len() > replicas {
            if let Some(s) = r.replicas.pop() {
                r.draining.push((s, Instant::now()));
            }
        }
        Ok(before != r.replicas.len())
    }

    /// Stops replicas that have drained.
    pub fn reap(&mut self) {
        for r in self.revisions.values_mut() {
            let (done, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut r.draining)
                .into_iter()
                .partition(|(_, since)| since.elapsed() >= DRAIN);
            r.draining = keep;
            for (replica, _) in done {
                // Its supervising tasks finish on their own once the processes have stopped.
                drop(replica.stop());
            }
        }
    }

    /// The state of every revision the runtime knows.
    pub fn states(&self) -> BTreeMap<String, RevisionState> {
        self.revisions
            .keys()
            .filter_map(|name| Some((name.clone(), self.state(name)?)))
            .collect()
    }

    /// The state of one revision.
    pub fn state(&self, revision: &str) -> Option<RevisionState> {
        let r = self.revisions.get(revision)?;
        let replicas = r.replicas.iter().map(Replica::state).collect();
        Some(RevisionState { replicas })
    }

    /// Stops every replica of the revisions not in `keep` (all their containers: SIGTERM,
    /// SIGKILL after a grace period) and forgets them.
    pub async fn retain(&mut self, keep: &dyn Fn(&str) -> bool) {
        let gone: Vec<String> = self
            .revisions
            .keys()
            .filter(|name| !keep(name))
            .cloned()
            .collect();
        let mut tasks = Vec::new();
        for name in gone {
            if let Some(r) = self.revisions.remove(&name) {
                let all = r
                    .replicas
                    .into_iter()
                    .chain(r.draining.into_iter().map(|(s, _)| s));
                for replica in all {
                    tasks.extend(replica.stop());
                }
            }
        }
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Stops every revision.
    pub async fn shutdown(&mut self) {
        self.retain(&|_| false).await;
    }
}
