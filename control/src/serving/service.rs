//! A Service's status, from its Configuration's and Route's (Knative's service reconciler).

use ferry_api::duck::{ConditionStatus, READY, Status};
use ferry_api::serving::{
    Configuration, KnativeService, KnativeServiceStatus, Route, service_conditions,
};
use ferry_api::validation::Unsupported;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Resource, ResourceExt};

use super::labels::*;
use super::owned::*;

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
    use service_conditions::{CONFIGURATIONS_READY, ROUTES_READY};
    let mut st = svc.status.clone().unwrap_or_default();
    st.status.observed_generation = svc.metadata.generation;
    if mark_configuration(&mut st, svc, cfg, now) {
        mark_route(&mut st, svc, route, cfg, now);
    }
    derive_ready(&mut st.status, &[CONFIGURATIONS_READY, ROUTES_READY], now);
    mark_unsupported(&mut st.status, &svc.unsupported_fields(), now);
    st
}

/// Where a Service's child (its Configuration or Route, named like it) stands.
enum Child<'a, K> {
    /// Not created yet.
    Missing,
    /// Someone else's object has the name.
    NotOwned,
    /// Has not observed its latest generation.
    Behind(&'a K),
    /// Current.
    Current(&'a K),
}

impl<'a, K: Resource<DynamicType = ()>> Child<'a, K> {
    fn of(child: Option<&'a K>, svc: &KnativeService, observed: Option<i64>) -> Self {
        match child {
            None => Child::Missing,
            Some(c) if !controlled_by(c.meta(), svc) => Child::NotOwned,
            Some(c) if observed != c.meta().generation => Child::Behind(c),
            Some(c) => Child::Current(c),
        }
    }

    /// Marks `type_` for a missing, foreign or behind child; `None` when it is current.
    fn mark_unless_current(
        &self,
        s: &mut Status,
        type_: &str,
        name: &str,
        now: &Time,
    ) -> Option<&'a K> {
        use ConditionStatus::{False, Unknown};
        let kind = K::kind(&());
        match self {
            Child::Missing => mark(
                s,
                type_,
                Unknown,
                reasons::OUT_OF_DATE,
                &format!("{kind} {name:?} has not been created yet."),
                now,
            ),
            Child::NotOwned => mark(
                s,
                type_,
                False,
                reasons::NOT_OWNED,
                &format!("There is an existing {kind} {name:?} that we do not own."),
                now,
            ),
            Child::Behind(_) => mark(
                s,
                type_,
                Unknown,
                reasons::OUT_OF_DATE,
                &format!(
                    "The {kind} is still working to reflect the latest desired specification."
                ),
                now,
            ),
            Child::Current(c) => return Some(c),
        }
        None
    }
}

/// `ConfigurationsReady` and the Configuration's status fields. Returns whether the Route is
/// to be looked at: not when the Configuration is someone else's, nor while a Configuration
/// with a BYO revision name is behind (the Route waits for it, as in Knative).
fn mark_configuration(
    st: &mut KnativeServiceStatus,
    svc: &KnativeService,
    cfg: Option<&Configuration>,
    now: &Time,
) -> bool {
    use service_conditions::CONFIGURATIONS_READY;
    let observed = cfg.and_then(|c| c.status.as_ref()?.status.observed_generation);
    let child = Child::of(cfg, svc, observed);
    let name = svc.name_any();
    let Some(c) = child.mark_unless_current(&mut st.status, CONFIGURATIONS_READY, &name, now)
    else {
        return match child {
            Child::NotOwned => false,
            Child::Behind(c) => c.spec.template.metadata.name.is_none(),
            _ => true,
        };
    };
    if let Some(cs) = &c.status {
        st.configuration = cs.fields.clone();
        if let Some(ready) = cs.status.condition(READY) {
            propagate(&mut st.status, CONFIGURATIONS_READY, ready, now);
        }
    }
    true
}

/// `RoutesReady` and the Route's status fields; `Unknown` (`TrafficNotMigrated`) until the
/// route's traffic is what the spec asks for.
fn mark_route(
    st: &mut KnativeServiceStatus,
    svc: &KnativeService,
    route: Option<&Route>,
    cfg: Option<&Configuration>,
    now: &Time,
) {
    use service_conditions::ROUTES_READY;
    let observed = route.and_then(|r| r.status.as_ref()?.status.observed_generation);
    let name = svc.name_any();
    let Some(r) = Child::of(route, svc, observed).mark_unless_current(
        &mut st.status,
        ROUTES_READY,
        &name,
        now,
    ) else {
        return;
    };
    if let Some(rs) = &r.status {
        st.route = rs.fields.clone();
        if let Some(ready) = rs.status.condition(READY) {
            propagate(&mut st.status, ROUTES_READY, ready, now);
        }
    }
    if has_status(&st.status, ROUTES_READY, ConditionStatus::True) && !traffic_migrated(r, cfg) {
        mark(
            &mut st.status,
            ROUTES_READY,
            ConditionStatus::Unknown,
            reasons::TRAFFIC_NOT_MIGRATED,
            "Traffic is not yet migrated to the latest revision.",
            now,
        );
    }
}
