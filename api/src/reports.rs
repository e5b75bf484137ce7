//! What dispatchers report back to the control plane on their admin port — the other half of
//! the [contract](crate::contract), defined once for the dispatcher that writes it and the
//! operator and `ferry dev` that read it.
//!
//! - `GET /readyz` answers `200` with `generation N` once contract generation `N` is applied
//!   ([`ready_body`], [`parse_ready_body`]); the generation in force is the smallest reported.
//! - `GET /autoscaler/stats` answers a JSON array of [`RevisionStats`], one per activated
//!   revision, averaged since the previous read (as Knative's autoscaler scrapes queue-proxies).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Path of the readiness report.
pub const READY_PATH: &str = "/readyz";
/// Path of the autoscaler statistics.
pub const STATS_PATH: &str = "/autoscaler/stats";

/// What the autoscaler reads about one revision from one dispatcher.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionStats {
    /// `namespace/name`.
    pub revision: String,
    /// Ready replicas the dispatcher knows of.
    #[serde(default)]
    pub ready: u32,
    /// Average deliveries in flight or held since the previous read.
    #[serde(default)]
    pub concurrency: f64,
    /// Deliveries completed since the previous read.
    #[serde(default)]
    pub requests: u64,
    /// Deliveries waiting for a replica now (demand at zero, or all replicas full).
    #[serde(default)]
    pub waiting: u32,
    /// Deliveries in flight now.
    #[serde(default)]
    pub in_flight: u32,
}

/// Adds up several dispatchers' reports per revision (`ready` is the largest any reports).
pub fn sum_stats(
    reports: impl IntoIterator<Item = RevisionStats>,
) -> BTreeMap<String, RevisionStats> {
    let mut out: BTreeMap<String, RevisionStats> = BTreeMap::new();
    for s in reports {
        let e = out
            .entry(s.revision.clone())
            .or_insert_with(|| RevisionStats {
                revision: s.revision.clone(),
                ..Default::default()
            });
        e.ready = e.ready.max(s.ready);
        e.concurrency += s.concurrency;
        e.requests += s.requests;
        e.waiting += s.waiting;
        e.in_flight += s.in_flight;
    }
    out
}

/// The body of `/readyz` for an applied contract generation.
pub fn ready_body(generation: u64) -> String {
    format!("generation {generation}\n")
}

/// The generation in a `/readyz` body; `None` when it carries none.
pub fn parse_ready_body(body: &str) -> Option<u64> {
    body.trim().strip_prefix("generation ")?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_bodies_round_trip() {
        assert_eq!(parse_ready_body(&ready_body(12)), Some(12));
        assert_eq!(parse_ready_body("no valid contract applied yet\n"), None);
    }

    #[test]
    fn stats_add_up_per_revision_and_round_trip() {
        let a = RevisionStats {
            revision: "ns/r".into(),
            ready: 1,
            concurrency: 1.5,
            requests: 10,
            ..Default::default()
        };
        let b = RevisionStats {
            revision: "ns/r".into(),
            ready: 2,
            concurrency: 2.0,
            requests: 5,
            waiting: 3,
            in_flight: 1,
        };
        let other = RevisionStats {
            revision: "ns/q".into(),
            concurrency: 0.5,
            requests: 1,
            ..Default::default()
        };
        let got = sum_stats([a, b, other.clone()]);
        assert_eq!(got.len(), 2);
        assert_eq!(got["ns/r"].concurrency, 3.5);
        assert_eq!(got["ns/r"].requests, 15);
        assert_eq!(got["ns/r"].waiting, 3);
        assert_eq!(got["ns/r"].ready, 2);
        assert_eq!(got["ns/q"], other);
        let json = serde_json::to_string(&got["ns/r"]).expect("serializes");
        assert!(json.contains("\"inFlight\":1"), "{json}");
        let back: RevisionStats = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, got["ns/r"]);
    }
}
