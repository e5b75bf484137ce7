//! The autoscaler loop's decision, shared by both runners: every tick, each revision's KPA
//! ([`ferry_api::autoscaler::Autoscaler`]) is fed what the dispatchers measured for it (summed
//! over dispatchers, [`ferry_api::reports::sum_stats`]) and its ready replicas, and decides its
//! scale. The operator then patches the revision's Deployment; `ferry dev` starts or stops
//! local processes.
//!
//! A revision's autoscaler is kept across ticks (its windows are its memory) and made anew
//! when its settings change — a new `config-autoscaler`, or new annotations.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use ferry_api::autoscaler::{Autoscaler, Decision, RevisionScaling, Sample, Settings};
use ferry_api::reports::RevisionStats;
use ferry_api::serving::autoscaling::AutoscalingAnnotations;
use ferry_api::validation::{FieldErrors, Path};

/// One revision as the runner sees it at a tick.
#[derive(Clone, Copy, Debug)]
pub struct ScaleInput<'a> {
    /// `namespace/name`, as the dispatchers report it.
    pub revision: &'a str,
    /// The revision's annotations (`autoscaling.knative.dev/*`).
    pub annotations: &'a BTreeMap<String, String>,
    /// The revision's `containerConcurrency`.
    pub container_concurrency: Option<i64>,
    /// Replicas ready now.
    pub ready: u32,
}

/// The KPA of every revision the runner scales.
#[derive(Default)]
pub struct Scalers {
    autoscalers: HashMap<String, (RevisionScaling, Autoscaler)>,
}

impl Scalers {
    /// `true` when `revision` has had a decision (a new revision gets its initial scale at its
    /// first tick, without waiting for the next one).
    pub fn knows(&self, revision: &str) -> bool {
        self.autoscalers.contains_key(revision)
    }

    /// One tick at `now_ms`: records `stats` for each of `revisions` and decides its scale.
    /// Revisions not in `revisions` are left as they are (see [`Scalers::retain`]).
    pub fn tick(
        &mut self,
        now_ms: u64,
        settings: &Settings,
        revisions: &[ScaleInput<'_>],
        stats: &BTreeMap<String, RevisionStats>,
    ) -> Vec<(String, Decision)> {
        revisions
            .iter()
            .map(|rev| {
                let scaling = scaling_of(settings, rev);
                let (known, autoscaler) = self
                    .autoscalers
                    .entry(rev.revision.to_owned())
                    .or_insert_with(|| (scaling.clone(), Autoscaler::new(scaling.clone())));
                if *known != scaling {
                    *known = scaling.clone();
                    *autoscaler = Autoscaler::new(scaling);
                }
                if let Some(s) = stats.get(rev.revision) {
                    autoscaler.record(
                        now_ms,
                        Sample {
                            concurrency: s.concurrency,
                            requests: s.requests as f64,
                            ready_replicas: rev.ready,
                        },
                    );
                    if s.waiting > 0 {
                        autoscaler.record_demand(now_ms);
                    }
                }
                (
                    rev.revision.to_owned(),
                    autoscaler.decide(now_ms, rev.ready),
                )
            })
            .collect()
    }

    /// Forgets the revisions not in `live` (deleted, or no longer run).
    pub fn retain(&mut self, live: &BTreeSet<String>) {
        self.autoscalers.retain(|k, _| live.contains(k));
    }
}

/// A revision's scaling settings: the cluster's, overridden by its annotations. Annotations
/// that do not parse were reported when the revision was validated; here they fall back.
fn scaling_of(settings: &Settings, rev: &ScaleInput<'_>) -> RevisionScaling {
    let mut ignored = FieldErrors::default();
    let annotations =
        AutoscalingAnnotations::parse(rev.annotations, &Path::root("metadata"), &mut ignored);
    RevisionScaling::resolve(settings, &annotations, rev.container_concurrency)
}

/// Whether a tick is due: `tick` has passed since the last one (or there was none), or a
/// revision at zero has requests waiting — Knative's activator pokes the autoscaler then
/// instead of letting the request wait for the next tick.
pub fn tick_due(since_last: Option<Duration>, tick: Duration, demand_at_zero: bool) -> bool {
    demand_at_zero || since_last.is_none_or(|d| d >= tick)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(
        revision: &'a str,
        annotations: &'a BTreeMap<String, String>,
        ready: u32,
    ) -> ScaleInput<'a> {
        ScaleInput {
            revision,
            annotations,
            container_concurrency: Some(1),
            ready,
        }
    }

    #[test]
    fn demand_scales_a_revision_from_zero_and_settings_changes_start_afresh() {
        let settings = Settings::default();
        let mut scalers = Scalers::default();
        let none = BTreeMap::new();
        let first = scalers.tick(0, &settings, &[input("ns/r", &none, 0)], &BTreeMap::new());
        assert_eq!(first.len(), 1);
        assert!(scalers.knows("ns/r"));
        let stats: BTreeMap<String, RevisionStats> = [(
            "ns/r".to_owned(),
            RevisionStats {
                revision: "ns/r".into(),
                concurrency: 5.0,
                waiting: 5,
                ..Default::default()
            },
        )]
        .into();
        let decided = scalers.tick(2_000, &settings, &[input("ns/r", &none, 0)], &stats);
        assert!(decided[0].1.desired >= 1, "{:?}", decided[0].1);
        let max_one: BTreeMap<String, String> = [(
            "autoscaling.knative.dev/max-scale".to_owned(),
            "1".to_owned(),
        )]
        .into();
        let capped = scalers.tick(4_000, &settings, &[input("ns/r", &max_one, 1)], &stats);
        assert_eq!(capped[0].1.desired, 1);
        scalers.retain(&BTreeSet::new());
        assert!(!scalers.knows("ns/r"));
    }

    #[test]
    fn a_revision_created_at_zero_stays_there_until_demand_then_starts() {
        let settings = Settings::from_config_map(
            &[
                ("allow-zero-initial-scale".to_owned(), "true".to_owned()),
                ("initial-scale".to_owned(), "0".to_owned()),
            ]
            .into(),
        )
        .expect("valid settings");
        let mut scalers = Scalers::default();
        let none = BTreeMap::new();
        let idle = BTreeMap::new();
        // Never started, no traffic: it stays at zero tick after tick.
        for now in [0, 2_000, 4_000] {
            let d = scalers.tick(now, &settings, &[input("ns/r", &none, 0)], &idle);
            assert_eq!(d[0].1.desired, 0, "at {now} ms: {:?}", d[0].1);
        }
        // A burst is held at the activator: the held requests are demand and start it.
        let held: BTreeMap<String, RevisionStats> = [(
            "ns/r".to_owned(),
            RevisionStats {
                revision: "ns/r".into(),
                waiting: 50,
                ..Default::default()
            },
        )]
        .into();
        let d = scalers.tick(5_000, &settings, &[input("ns/r", &none, 0)], &held);
        assert!(d[0].1.desired >= 1, "{:?}", d[0].1);
    }

    #[test]
    fn ticks_are_due_on_time_or_on_demand_at_zero() {
        let tick = Duration::from_secs(2);
        assert!(tick_due(None, tick, false));
        assert!(!tick_due(Some(Duration::from_secs(1)), tick, false));
        assert!(tick_due(Some(Duration::from_secs(1)), tick, true));
        assert!(tick_due(Some(tick), tick, false));
    }
}
