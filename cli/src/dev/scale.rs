//! Scale in `ferry dev`: every tick (and at once when a revision at zero has demand, or a new
//! revision needs its initial scale) the shared decision
//! ([`ferry_control::scaling::Scalers`], which the operator runs too) is fed what the
//! in-process activator measured, and its answer starts or stops local processes. The live
//! revisions' replicas then go into the contract's activation section.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use ferry_api::reports::RevisionStats;
use ferry_control::activation::RevisionReplicas;
use ferry_control::scaling::{ScaleInput, tick_due};

use super::serving::Serving;

impl Serving {
    /// Every tick (and at once when a revision at zero has demand, or a new revision needs
    /// its initial scale): the shared decision scales each live revision's processes.
    pub fn autoscale(&mut self) {
        let states = self.runtime.states();
        let demand_at_zero = self.live.iter().any(|(name, l)| {
            states.get(name).is_none_or(|s| s.replicas.is_empty())
                && self
                    .activator
                    .gate(&l.proxy.url)
                    .is_some_and(|g| g.waiting() > 0)
        });
        let due = tick_due(
            self.last_tick.map(|t| t.elapsed()),
            self.tick,
            demand_at_zero,
        );
        let keys: BTreeMap<String, String> = self
            .live
            .iter()
            .map(|(name, l)| (name.clone(), format!("{}/{name}", l.namespace)))
            .collect();
        let inputs: Vec<ScaleInput<'_>> = self
            .live
            .iter()
            .filter(|(name, _)| due || !self.scalers.knows(&keys[*name]))
            .map(|(name, l)| ScaleInput {
                revision: &keys[name],
                annotations: &l.annotations,
                container_concurrency: l.container_concurrency,
                ready: states.get(name).map_or(0, |s| {
                    u32::try_from(s.endpoints().len()).unwrap_or(u32::MAX)
                }),
            })
            .collect();
        if inputs.is_empty() {
            self.runtime.reap();
            return;
        }
        let stats: BTreeMap<String, RevisionStats> = if due {
            self.last_tick = Some(Instant::now());
            ferry_api::reports::sum_stats(self.activator.stats())
        } else {
            BTreeMap::new()
        };
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let decisions = self.scalers.tick(now_ms, &self.settings, &inputs, &stats);
        for (key, decision) in decisions {
            let name = key.split_once('/').map_or(key.as_str(), |(_, n)| n);
            match self.runtime.scale(name, decision.desired as usize) {
                Ok(true) => println!(
                    "ferry dev: revision {name} scaled to {} ({:?})",
                    decision.desired, decision.reason
                ),
                Ok(false) => {}
                Err(e) => eprintln!("ferry dev: revision {name} cannot scale: {e}"),
            }
            if let Some(live) = self.live.get_mut(name) {
                live.decision = Some(decision);
            }
        }
        self.runtime.reap();
    }

    /// Every live revision with its ready replicas, for the contract's activation section.
    pub fn replicas(&self) -> Vec<RevisionReplicas> {
        let states = self.runtime.states();
        self.live
            .iter()
            .map(|(name, live)| RevisionReplicas {
                revision: format!("{}/{name}", live.namespace),
                url: live.proxy.url.clone(),
                endpoints: states.get(name).map(|s| s.endpoints()).unwrap_or_default(),
                container_concurrency: live.container_concurrency,
                timeouts: live.timeouts,
            })
            .collect()
    }

    /// The URLs of every revision a local route sends to (Services' and tags' URLs route to
    /// live revisions through the activator).
    pub fn routed_urls(&self) -> BTreeSet<String> {
        self.live.values().map(|l| l.proxy.url.clone()).collect()
    }
}
