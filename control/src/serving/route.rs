use ferry_api::duck::{Addressable, ConditionStatus, READY};
use ferry_api::serving::{
    CONFIGURATION_LABEL, Configuration, ResolvedTarget, Revision, Route, RouteStatus,
    SERVICE_LABEL, TrafficTarget, resolve_traffic, route_conditions,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::labels::*;
use super::owned::*;

// ---------------------------------------------------------------------------------------------
// Route
// ---------------------------------------------------------------------------------------------

/// Why a route's traffic is not assigned: `Unknown` while a target is on its way, `False` when
/// one is missing or failed (Knative's `TargetError`).
struct TrafficProblem {
    status: ConditionStatus,
    reason: &'static str,
    message: String,
}

impl TrafficProblem {
    fn failed(reason: &'static str, message: String) -> Self {
        TrafficProblem {
            status: ConditionStatus::False,
            reason,
            message,
        }
    }

    fn missing(kind: &str, reason: &'static str, name: &str) -> Self {
        Self::failed(
            reason,
            format!("{kind} {name:?} referenced in traffic not found."),
        )
    }

    fn unready(rev: &Revision) -> Self {
        let name = rev.name_any();
        if revision_failed(rev) {
            Self::failed(
                reasons::REVISION_MISSING,
                format!("Revision {name:?} failed to become ready."),
            )
        } else {
            TrafficProblem {
                status: ConditionStatus::Unknown,
                reason: reasons::REVISION_MISSING,
                message: format!("Revision {name:?} is not yet ready."),
            }
        }
    }
}

/// What keeps one target from being served (Knative `addRevisionTarget` /
/// `addConfigurationTarget`).
fn target_problem(
    t: &TrafficTarget,
    route: &Route,
    cfgs: &[Configuration],
    revisions: &[Revision],
) -> Option<TrafficProblem> {
    let ns = route.metadata.namespace.as_deref();
    if let Some(name) = &t.revision_name {
        let Some(rev) = find_named(revisions, ns, name) else {
            return Some(TrafficProblem::missing(
                "Revision",
                reasons::REVISION_MISSING,
                name,
            ));
        };
        if let Some(owner) = route.labels().get(SERVICE_LABEL) {
            match rev.labels().get(SERVICE_LABEL) {
                Some(actual) if actual == owner => {}
                Some(actual) => {
                    return Some(TrafficProblem::failed(
                        reasons::REVISION_NOT_OWNED,
                        format!(
                            "Revision {name:?} belongs to Service {actual:?}, not Service {owner:?}."
                        ),
                    ));
                }
                None => {
                    return Some(TrafficProblem::failed(
                        reasons::REVISION_NOT_OWNED,
                        format!("Revision {name:?} does not belong to Service {owner:?}."),
                    ));
                }
            }
        }
        if !revision_ready(rev) {
            return Some(TrafficProblem::unready(rev));
        }
        let cfg = rev.labels().get(CONFIGURATION_LABEL);
        return cfg
            .filter(|c| find_named(cfgs, ns, c).is_none())
            .map(|c| TrafficProblem::missing("Configuration", reasons::CONFIGURATION_MISSING, c));
    }
    let name = t.configuration_name.as_ref()?;
    let Some(cfg) = find_named(cfgs, ns, name) else {
        return Some(TrafficProblem::missing(
            "Configuration",
            reasons::CONFIGURATION_MISSING,
            name,
        ));
    };
    let cfg_status = cfg.status.as_ref();
    let Some(latest) = cfg_status.and_then(|s| s.fields.latest_ready_revision_name.as_ref()) else {
        return Some(
            if cfg_status.is_some_and(|s| has_status(&s.status, READY, ConditionStatus::False)) {
                TrafficProblem::failed(
                    reasons::REVISION_MISSING,
                    format!("Configuration {name:?} does not have any ready Revision."),
                )
            } else {
                TrafficProblem {
                    status: ConditionStatus::Unknown,
                    reason: reasons::REVISION_MISSING,
                    message: format!(
                        "Configuration {name:?} is waiting for a Revision to become ready."
                    ),
                }
            },
        );
    };
    let Some(rev) = find_named(revisions, ns, latest) else {
        return Some(TrafficProblem::missing(
            "Revision",
            reasons::REVISION_MISSING,
            latest,
        ));
    };
    (!revision_ready(rev)).then(|| TrafficProblem::unready(rev))
}

/// Resolves a route's traffic to ready revisions. Every target is checked, and a failure
/// outranks a pending target, as Knative's traffic builder defers target errors.
fn assign_traffic(
    route: &Route,
    cfgs: &[Configuration],
    revisions: &[Revision],
) -> Result<Vec<ResolvedTarget>, TrafficProblem> {
    let mut deferred: Option<TrafficProblem> = None;
    for t in &route.spec.traffic {
        if let Some(p) = target_problem(t, route, cfgs, revisions)
            && (deferred.is_none() || p.status == ConditionStatus::False)
        {
            deferred = Some(p);
        }
    }
    if let Some(p) = deferred {
        return Err(p);
    }
    let ns = route.metadata.namespace.as_deref();
    resolve_traffic(
        &route.spec.traffic,
        None,
        &|c| {
            find_named(cfgs, ns, c)?
                .status
                .as_ref()?
                .fields
                .latest_ready_revision_name
                .clone()
        },
        &|r| find_named(revisions, ns, r).is_some(),
    )
    .map_err(|u| TrafficProblem::failed(u.reason, u.message))
}

/// A Route's status (Knative's route reconciler, with the dispatcher as the ingress):
/// `url` `http://<route>.<ns>.<domain>`; once every target resolves to a ready revision,
/// `address.url` `http://<route>.<ns>.svc.<cluster_domain>`, `traffic` with concrete revision
/// names, percents, `latestRevision` and per-tag URLs `http://<tag>-<route>.<ns>.<domain>`, and
/// `AllTrafficAssigned`/`IngressReady=True`. Otherwise `AllTrafficAssigned` says which target
/// is missing (`RevisionMissing`, `ConfigurationMissing`, `RevisionNotOwned`) and the previous
/// `traffic` stays. `CertificateProvisioned` is `True` (`TLSNotEnabled`): Ferry manages no TLS.
///
/// `cfgs` and `revisions` hold the objects of the route's namespace; `domain` is the Route's
/// from `config-domain` ([`ferry_api::serving::domain::Domains::domain_for`]).
pub fn route_status(
    route: &Route,
    cfgs: &[Configuration],
    revisions: &[Revision],
    domain: &str,
    cluster_domain: &str,
    now: &Time,
) -> RouteStatus {
    use ConditionStatus::{True, Unknown};
    use route_conditions::{ALL_TRAFFIC_ASSIGNED, CERTIFICATE_PROVISIONED, INGRESS_READY};
    let mut st = route.status.clone().unwrap_or_default();
    let new_generation = st.status.observed_generation != route.metadata.generation;
    st.status.observed_generation = route.metadata.generation;
    let name = route.name_any();
    let ns = route.namespace().unwrap_or_default();
    st.fields.url = Some(format!("http://{name}.{ns}.{domain}"));
    match assign_traffic(route, cfgs, revisions) {
        Ok(targets) => {
            mark(&mut st.status, ALL_TRAFFIC_ASSIGNED, True, "", "", now);
            st.fields.address = Some(Addressable {
                url: Some(format!("http://{name}.{ns}.svc.{cluster_domain}")),
                ..Addressable::default()
            });
            st.fields.traffic = targets
                .into_iter()
                .map(|t| TrafficTarget {
                    url: t
                        .tag
                        .as_ref()
                        .map(|tag| format!("http://{tag}-{name}.{ns}.{domain}")),
                    tag: t.tag,
                    revision_name: Some(t.revision),
                    configuration_name: None,
                    latest_revision: Some(t.latest),
                    percent: Some(i64::from(t.percent)),
                })
                .collect();
            mark(&mut st.status, INGRESS_READY, True, "", "", now);
        }
        Err(p) => {
            mark(
                &mut st.status,
                ALL_TRAFFIC_ASSIGNED,
                p.status,
                p.reason,
                &p.message,
                now,
            );
            if new_generation || st.status.condition(INGRESS_READY).is_none() {
                mark(
                    &mut st.status,
                    INGRESS_READY,
                    Unknown,
                    reasons::INGRESS_NOT_CONFIGURED,
                    "Ingress has not yet been reconciled.",
                    now,
                );
            }
        }
    }
    mark(
        &mut st.status,
        CERTIFICATE_PROVISIONED,
        True,
        reasons::TLS_NOT_ENABLED,
        "external-domain-tls is not enabled",
        now,
    );
    derive_ready(
        &mut st.status,
        &[ALL_TRAFFIC_ASSIGNED, INGRESS_READY, CERTIFICATE_PROVISIONED],
        now,
    );
    st
}
