use ferry_api::duck::{Addressable, ConditionStatus, READY};
use ferry_api::serving::{
    CONFIGURATION_LABEL, Configuration, KnativeService, KnativeServiceStatus, ResolvedTarget,
    Revision, Route, RouteStatus, SERVICE_LABEL, TrafficTarget, resolve_traffic, route_conditions,
    service_conditions,
};
use ferry_api::validation::Unsupported;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::owned::*;
use super::*;

// ---------------------------------------------------------------------------------------------
// Route
// ---------------------------------------------------------------------------------------------

/// Knative's default route domain since 1.11: `svc.<cluster_domain>`, so a route's URL is its
/// in-cluster name unless a domain is configured (older Knative used `example.com`).
pub fn default_domain(cluster_domain: &str) -> String {
    format!("svc.{cluster_domain}")
}

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
/// `cfgs` and `revisions` hold the objects of the route's namespace; [`default_domain`] is
/// Knative's `domain`.
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

// ---------------------------------------------------------------------------------------------
// Service status
// ---------------------------------------------------------------------------------------------

/// Knative `checkRoutesNotReady`: the route's resolved traffic is what its spec asks for, with
/// the configuration's targets at its latest ready revision (URLs and `latestRevision` aside).
fn traffic_migrated(route: &Route, cfg: Option<&Configuration>) -> bool {
    let got = route
        .status
        .as_ref()
        .map_or(&[][..], |s| s.fields.traffic.as_slice());
    if got.len() != route.spec.traffic.len() {
        return false;
    }
    let cfg_name = cfg.map(ResourceExt::name_any);
    let latest_ready = cfg
        .and_then(|c| c.status.as_ref())
        .and_then(|s| s.fields.latest_ready_revision_name.clone());
    route.spec.traffic.iter().zip(got).all(|(want, got)| {
        let (revision, configuration) =
            if want.configuration_name.is_some() && want.configuration_name == cfg_name {
                (latest_ready.clone(), None)
            } else {
                (want.revision_name.clone(), want.configuration_name.clone())
            };
        want.tag == got.tag
            && revision == got.revision_name
            && configuration == got.configuration_name
            && want.percent.unwrap_or(0) == got.percent.unwrap_or(0)
    })
}

/// A Service's status (Knative's service reconciler): the Configuration's and Route's status
/// fields mirrored; `ConfigurationsReady` and `RoutesReady` from their `Ready` once they have
/// observed their latest generation (`Unknown`, `OutOfDate`, while missing or behind; `False`,
/// `NotOwned`, when someone else's object has the name); `RoutesReady=Unknown`
/// (`TrafficNotMigrated`) until the route's traffic is what the spec asks for; `Ready` from
/// both.
pub fn service_status(
    svc: &KnativeService,
    cfg: Option<&Configuration>,
    route: Option<&Route>,
    now: &Time,
) -> KnativeServiceStatus {
    use ConditionStatus::{False, True, Unknown};
    use service_conditions::{CONFIGURATIONS_READY, ROUTES_READY};
    let mut st = svc.status.clone().unwrap_or_default();
    st.status.observed_generation = svc.metadata.generation;
    let name = svc.name_any();
    let s = &mut st.status;
    let out_of_date = |what: &str| {
        condition(
            what,
            Unknown,
            reasons::OUT_OF_DATE,
            &format!(
                "The {} is still working to reflect the latest desired specification.",
                if what == CONFIGURATIONS_READY {
                    "Configuration"
                } else {
                    "Route"
                }
            ),
        )
    };
    let mut check_route = true;
    match cfg {
        None => mark(
            s,
            CONFIGURATIONS_READY,
            Unknown,
            reasons::OUT_OF_DATE,
            &format!("Configuration {name:?} has not been created yet."),
            now,
        ),
        Some(c) if !controlled_by(&c.metadata, svc) => {
            mark(
                s,
                CONFIGURATIONS_READY,
                False,
                reasons::NOT_OWNED,
                &format!("There is an existing Configuration {name:?} that we do not own."),
                now,
            );
            check_route = false;
        }
        Some(c)
            if c.status.as_ref().and_then(|x| x.status.observed_generation)
                != c.metadata.generation =>
        {
            s.set_condition(out_of_date(CONFIGURATIONS_READY), now);
            // With a BYO revision name the Route waits for the Configuration (Knative).
            check_route = c.spec.template.metadata.name.is_none();
        }
        Some(c) => {
            if let Some(cs) = &c.status {
                st.configuration = cs.fields.clone();
                if let Some(ready) = cs.status.condition(READY) {
                    propagate(s, CONFIGURATIONS_READY, ready, now);
                }
            }
        }
    }
    if check_route {
        match route {
            None => mark(
                s,
                ROUTES_READY,
                Unknown,
                reasons::OUT_OF_DATE,
                &format!("Route {name:?} has not been created yet."),
                now,
            ),
            Some(r) if !controlled_by(&r.metadata, svc) => mark(
                s,
                ROUTES_READY,
                False,
                reasons::NOT_OWNED,
                &format!("There is an existing Route {name:?} that we do not own."),
                now,
            ),
            Some(r)
                if r.status.as_ref().and_then(|x| x.status.observed_generation)
                    != r.metadata.generation =>
            {
                s.set_condition(out_of_date(ROUTES_READY), now);
            }
            Some(r) => {
                if let Some(rs) = &r.status {
                    st.route = rs.fields.clone();
                    if let Some(ready) = rs.status.condition(READY) {
                        propagate(s, ROUTES_READY, ready, now);
                    }
                }
                if has_status(s, ROUTES_READY, True) && !traffic_migrated(r, cfg) {
                    mark(
                        s,
                        ROUTES_READY,
                        Unknown,
                        reasons::TRAFFIC_NOT_MIGRATED,
                        "Traffic is not yet migrated to the latest revision.",
                        now,
                    );
                }
            }
        }
    }
    derive_ready(&mut st.status, &[CONFIGURATIONS_READY, ROUTES_READY], now);
    mark_unsupported(&mut st.status, &svc.unsupported_fields(), now);
    st
}
