//! The contract's activation section: for every revision a route sends to, its stable URL, its
//! ready replicas and its `containerConcurrency`. The dispatcher holds deliveries to a revision
//! with no ready replica (scale from zero) and never has more than `containerConcurrency` in
//! flight to one replica. The operator learns replicas from EndpointSlices ([`endpoint_urls`]),
//! `ferry dev` from its local processes.

use std::collections::BTreeSet;

use ferry_api::contract::{Activation, Contract, Target};
use ferry_api::serving::{DEFAULT_TIMEOUT_SECONDS, RevisionSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;

use crate::serving::{DEFAULT_USER_PORT, REVISION_LABEL};

/// One revision as the runner sees it.
#[derive(Clone, Debug)]
pub struct RevisionReplicas {
    /// `namespace/name`.
    pub revision: String,
    /// The URL routes name it by ([`ferry_api::contract::RevisionTarget::url`]).
    pub url: String,
    /// Ready replicas (`http://ip:port`).
    pub endpoints: Vec<String>,
    /// `spec.containerConcurrency` (0 or unset: unlimited).
    pub container_concurrency: Option<i64>,
    /// `spec.timeoutSeconds`, `responseStartTimeoutSeconds`, `idleTimeoutSeconds`.
    pub timeouts: RequestTimeouts,
}

/// A revision's HTTP request timeouts, in seconds, as its spec sets them (`None`: unset).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestTimeouts {
    /// `timeoutSeconds`: the whole request (Knative's default 300 s when unset).
    pub timeout: Option<i64>,
    /// `responseStartTimeoutSeconds`: until the first byte of the answer (default: `timeout`).
    pub response_start: Option<i64>,
    /// `idleTimeoutSeconds`: between bytes of the answer (default: none).
    pub idle: Option<i64>,
}

impl RequestTimeouts {
    /// The timeouts of a revision's spec.
    pub fn of(spec: &RevisionSpec) -> RequestTimeouts {
        RequestTimeouts {
            timeout: spec.timeout_seconds,
            response_start: spec.response_start_timeout_seconds,
            idle: spec.idle_timeout_seconds,
        }
    }

    /// (`timeout_ms`, `response_start_timeout_ms`, `idle_timeout_ms`) for the contract; 0 is
    /// no limit, and a response-start limit is never above the whole request's.
    fn millis(self) -> (u64, u64, u64) {
        let ms = |s: Option<i64>| s.and_then(|s| u64::try_from(s).ok()).map(|s| s * 1000);
        let timeout = ms(self.timeout).unwrap_or(DEFAULT_TIMEOUT_SECONDS as u64 * 1000);
        let start = ms(self.response_start)
            .filter(|s| *s > 0)
            .map_or(timeout, |s| if timeout == 0 { s } else { s.min(timeout) });
        (timeout, start, ms(self.idle).unwrap_or(0))
    }
}

/// The URLs of every revision the contract's egresses deliver to and its routes serve.
pub fn routed_urls(contract: &Contract) -> BTreeSet<String> {
    let delivered = contract
        .resources
        .iter()
        .flat_map(|r| &r.egresses)
        .filter_map(|e| match &e.destination {
            Target::Revisions(targets) => Some(targets.as_slice()),
            Target::Url(_) => None,
        });
    let served = contract.routes.iter().map(|r| r.targets.as_slice());
    delivered
        .chain(served)
        .flatten()
        .map(|t| t.url.clone())
        .collect()
}

/// The activation section: the revisions of `revisions` that `routed` names, ordered by URL,
/// each with its endpoints sorted and deduplicated.
pub fn activation(
    revisions: impl IntoIterator<Item = RevisionReplicas>,
    routed: &BTreeSet<String>,
) -> Vec<Activation> {
    let mut out: Vec<Activation> = revisions
        .into_iter()
        .filter(|r| routed.contains(&r.url))
        .map(|mut r| {
            r.endpoints.sort();
            r.endpoints.dedup();
            let (timeout_ms, response_start_timeout_ms, idle_timeout_ms) = r.timeouts.millis();
            Activation {
                url: r.url,
                revision: r.revision,
                endpoints: r.endpoints,
                container_concurrency: r
                    .container_concurrency
                    .and_then(|c| u32::try_from(c).ok())
                    .unwrap_or(0),
                timeout_ms,
                response_start_timeout_ms,
                idle_timeout_ms,
            }
        })
        .collect();
    out.sort_by(|a, b| a.url.cmp(&b.url));
    out
}

/// The ready endpoints of a revision's EndpointSlices (labelled with [`REVISION_LABEL`]), as
/// `http://ip:port` on the slice's first port ([`DEFAULT_USER_PORT`] when it names none).
/// Endpoints whose `ready` condition is unset count as ready, as Kubernetes defines it.
pub fn endpoint_urls<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    namespace: &str,
    revision: &str,
) -> Vec<String> {
    slices
        .into_iter()
        .filter(|s| {
            s.metadata.namespace.as_deref() == Some(namespace)
                && s.labels().get(REVISION_LABEL).map(String::as_str) == Some(revision)
        })
        .flat_map(|s| {
            let port = s
                .ports
                .as_ref()
                .and_then(|p| p.first())
                .and_then(|p| p.port)
                .unwrap_or(DEFAULT_USER_PORT);
            s.endpoints
                .iter()
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
                .flat_map(|e| e.addresses.clone())
                .map(move |ip| format!("http://{ip}:{port}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_routed_revisions_are_activated_with_sorted_endpoints() {
        let routed: BTreeSet<String> = ["http://r1".to_owned()].into();
        let got = activation(
            [
                RevisionReplicas {
                    revision: "ns/r1".into(),
                    url: "http://r1".into(),
                    endpoints: vec!["http://b".into(), "http://a".into(), "http://b".into()],
                    container_concurrency: Some(2),
                    timeouts: RequestTimeouts {
                        timeout: Some(60),
                        response_start: Some(90),
                        idle: Some(5),
                    },
                },
                RevisionReplicas {
                    revision: "ns/r2".into(),
                    url: "http://r2".into(),
                    endpoints: vec![],
                    container_concurrency: None,
                    timeouts: RequestTimeouts::default(),
                },
            ],
            &routed,
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].endpoints, ["http://a", "http://b"]);
        assert_eq!(got[0].container_concurrency, 2);
        // A response-start limit above the whole request's is the request's.
        assert_eq!(
            (
                got[0].timeout_ms,
                got[0].response_start_timeout_ms,
                got[0].idle_timeout_ms
            ),
            (60_000, 60_000, 5_000)
        );
    }

    #[test]
    fn unset_timeouts_are_knatives_defaults() {
        assert_eq!(
            RequestTimeouts::default().millis(),
            (300_000, 300_000, 0),
            "timeoutSeconds 300, response start = timeout, no idle limit"
        );
        let start_only = RequestTimeouts {
            response_start: Some(10),
            ..RequestTimeouts::default()
        };
        assert_eq!(start_only.millis(), (300_000, 10_000, 0));
    }

    #[test]
    fn endpoints_come_from_the_revisions_ready_slices() {
        let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "r1-x", "namespace": "ns",
                         "labels": {REVISION_LABEL: "r1"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": false}},
                {"addresses": ["10.0.0.3"]}
            ]
        }))
        .expect("an EndpointSlice");
        assert_eq!(
            endpoint_urls([&slice], "ns", "r1"),
            ["http://10.0.0.1:8080", "http://10.0.0.3:8080"]
        );
        assert!(endpoint_urls([&slice], "other", "r1").is_empty());
    }
}
