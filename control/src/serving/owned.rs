use std::cmp::Reverse;
use std::collections::BTreeMap;

use ferry_api::duck::{Condition, ConditionStatus, READY, Status};
use ferry_api::serving::{
    CONFIGURATION_GENERATION_LABEL, CONFIGURATION_LABEL, Configuration, ConfigurationSpec,
    ConfigurationStatus, KnativeService, Revision, Route, RouteSpec, SERVICE_LABEL, TrafficTarget,
    revision_name,
};
use ferry_api::validation::{FieldError, UNSUPPORTED_FIELD_REASON, Unsupported};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::{Resource, ResourceExt};

use super::labels::*;

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// The owner reference a child object carries to `owner`: controller and blocking deletion, as
/// Knative's `kmeta.NewControllerRef`. The uid is empty when `owner` has none (objects read
/// from the API server always have one).
pub fn owner_reference<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// `metav1.IsControlledBy`: `meta` has a controller reference to `owner` (by uid, or by kind
/// and name when `owner` has no uid yet).
pub fn controlled_by<K: Resource<DynamicType = ()>>(meta: &ObjectMeta, owner: &K) -> bool {
    let uid = owner.meta().uid.as_deref();
    meta.owner_references.iter().flatten().any(|r| {
        r.controller == Some(true)
            && match uid {
                Some(uid) => r.uid == uid,
                None => r.kind == K::kind(&()) && owner.meta().name.as_ref() == Some(&r.name),
            }
    })
}

pub(super) fn owned_meta<K: Resource<DynamicType = ()>>(
    owner: &K,
    name: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: owner.meta().namespace.clone(),
        labels: non_empty(labels),
        annotations: non_empty(annotations),
        owner_references: Some(vec![owner_reference(owner)]),
        ..ObjectMeta::default()
    }
}

fn non_empty(map: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then_some(map)
}

/// The object of `items` named `name` in namespace `ns`.
pub(super) fn find_named<'a, K: Resource>(
    items: &'a [K],
    ns: Option<&str>,
    name: &str,
) -> Option<&'a K> {
    items
        .iter()
        .find(|i| i.meta().namespace.as_deref() == ns && i.meta().name.as_deref() == Some(name))
}

/// `metadata.generation` as revision names count it; the API server always sets one (from 1).
fn generation(meta: &ObjectMeta) -> u64 {
    meta.generation
        .and_then(|g| u64::try_from(g).ok())
        .filter(|g| *g > 0)
        .unwrap_or(1)
}

pub(super) fn condition(
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: &str,
) -> Condition {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Condition {
        type_: type_.to_owned(),
        status,
        reason: some(reason),
        message: some(message),
        ..Condition::default()
    }
}

/// Sets condition `type_` (an empty reason or message is left out).
pub(super) fn mark(
    status: &mut Status,
    type_: &str,
    to: ConditionStatus,
    reason: &str,
    message: &str,
    now: &Time,
) {
    status.set_condition(condition(type_, to, reason, message), now);
}

pub(super) fn has_status(status: &Status, type_: &str, want: ConditionStatus) -> bool {
    status.condition(type_).is_some_and(|c| c.status == want)
}

/// Copies a child's condition under another type (Knative's `Propagate*Status`): `True` drops
/// the reason and message.
pub(super) fn propagate(status: &mut Status, type_: &str, from: &Condition, now: &Time) {
    let (reason, message) = match from.status {
        ConditionStatus::True => ("", ""),
        _ => (
            from.reason.as_deref().unwrap_or(""),
            from.message.as_deref().unwrap_or(""),
        ),
    };
    mark(status, type_, from.status, reason, message, now);
}

/// Sets `Ready` from its dependents as Knative's living condition sets do: the first `False`
/// dependent makes it `False`, else the first that is not `True` makes it `Unknown` (with that
/// dependent's reason and message), else it is `True`.
pub(super) fn derive_ready(status: &mut Status, dependents: &[&str], now: &Time) {
    let deps: Vec<Option<&Condition>> = dependents.iter().map(|d| status.condition(d)).collect();
    let copy = |c: &Condition, to: ConditionStatus| Condition {
        type_: READY.to_owned(),
        status: to,
        reason: c.reason.clone(),
        message: c.message.clone(),
        ..Condition::default()
    };
    let ready = if let Some(c) = deps
        .iter()
        .flatten()
        .find(|c| c.status == ConditionStatus::False)
    {
        copy(c, ConditionStatus::False)
    } else if let Some(pending) = deps.iter().find(|c| !c.is_some_and(Condition::is_true)) {
        match pending {
            Some(c) => copy(c, ConditionStatus::Unknown),
            None => condition(READY, ConditionStatus::Unknown, "", ""),
        }
    } else {
        condition(READY, ConditionStatus::True, "", "")
    };
    status.set_condition(ready, now);
}

/// DESIGN.md: a field Ferry does not support is never silently ignored. `Ready=False` with
/// reason `UnsupportedField` and every offending field in the message.
pub(super) fn mark_unsupported(status: &mut Status, fields: &[FieldError], now: &Time) {
    if fields.is_empty() {
        return;
    }
    let message = fields
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    mark(
        status,
        READY,
        ConditionStatus::False,
        UNSUPPORTED_FIELD_REASON,
        &message,
        now,
    );
}

/// Knative's `Revision.IsReady`: `Ready=True` for the revision's current generation.
pub(super) fn revision_ready(rev: &Revision) -> bool {
    rev.status.as_ref().is_some_and(|s| {
        s.status.observed_generation == rev.metadata.generation && s.status.is_ready()
    })
}

pub(super) fn revision_failed(rev: &Revision) -> bool {
    rev.status
        .as_ref()
        .is_some_and(|s| has_status(&s.status, READY, ConditionStatus::False))
}

/// The configuration generation a revision was stamped from (its label).
fn stamped_generation(rev: &Revision) -> Option<i64> {
    rev.labels()
        .get(CONFIGURATION_GENERATION_LABEL)?
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------------------------
// Service → Configuration + Route
// ---------------------------------------------------------------------------------------------

/// The Configuration a Service owns (Knative `MakeConfiguration`): same name and namespace,
/// the Service's labels plus `serving.knative.dev/service` and `serviceUID`, its annotations
/// but `kubectl`'s last-applied copy and the rollout duration, and its template.
pub fn configuration_for(svc: &KnativeService) -> Configuration {
    let name = svc.name_any();
    let mut labels = svc.labels().clone();
    labels.insert(SERVICE_LABEL.to_owned(), name.clone());
    if let Some(uid) = svc.uid() {
        labels.insert(SERVICE_UID_LABEL.to_owned(), uid);
    }
    let mut annotations = svc.annotations().clone();
    annotations.retain(|k, _| {
        k != LAST_APPLIED_ANNOTATION && !ROLLOUT_DURATION_ANNOTATIONS.contains(&k.as_str())
    });
    Configuration {
        metadata: owned_meta(svc, name, labels, annotations),
        spec: ConfigurationSpec {
            template: svc.spec.template.clone(),
        },
        status: None,
    }
}

/// The Route a Service owns (Knative `MakeRoute`): same name and namespace, the Service's
/// labels plus `serving.knative.dev/service`, its annotations but the last-applied copy, and
/// its traffic (100% latest when empty) with `configurationName` set to the Service's
/// Configuration on every target that names no revision. `latestRevision` is kept as written.
pub fn route_for(svc: &KnativeService) -> Route {
    let name = svc.name_any();
    let mut labels = svc.labels().clone();
    labels.insert(SERVICE_LABEL.to_owned(), name.clone());
    let mut annotations = svc.annotations().clone();
    annotations.remove(LAST_APPLIED_ANNOTATION);
    let mut traffic = if svc.spec.traffic.is_empty() {
        vec![TrafficTarget::latest_100()]
    } else {
        svc.spec.traffic.clone()
    };
    for t in traffic.iter_mut().filter(|t| t.revision_name.is_none()) {
        t.configuration_name = Some(name.clone());
    }
    Route {
        metadata: owned_meta(svc, name, labels, annotations),
        spec: RouteSpec { traffic },
        status: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration → Revision
// ---------------------------------------------------------------------------------------------

/// The revision stamped from the configuration's current template (Knative's
/// `latestCreatedRevision` with `CheckNameAvailability`), if it exists yet.
///
/// # Errors
/// `spec.template.metadata.name` names a revision of another configuration, or one stamped
/// from a different template.
fn current_revision<'a>(
    cfg: &Configuration,
    revisions: &'a [Revision],
) -> Result<Option<&'a Revision>, String> {
    let cfg_name = cfg.name_any();
    let ns = cfg.metadata.namespace.as_deref();
    let generation = generation(&cfg.metadata).to_string();
    if let Some(byo) = &cfg.spec.template.metadata.name {
        let Some(rev) = find_named(revisions, ns, byo) else {
            return Ok(None);
        };
        if !controlled_by(&rev.metadata, cfg) {
            return Err(format!(
                "spec.template.metadata.name: revision {byo:?} already exists and belongs to another configuration; choose another name, or remove the name to get {cfg_name}-NNNNN names"
            ));
        }
        // Only the spec counts: labels and annotations may have been added to the revision.
        if rev.labels().get(CONFIGURATION_GENERATION_LABEL) == Some(&generation)
            || rev.spec == cfg.spec.template.spec
        {
            return Ok(Some(rev));
        }
        return Err(format!(
            "spec.template.metadata.name: revision {byo:?} already exists with a different template; revisions are immutable, so give the changed template a new name (or remove the name to get {cfg_name}-NNNNN names)"
        ));
    }
    Ok(revisions.iter().find(|r| {
        r.metadata.namespace.as_deref() == ns
            && r.labels().get(CONFIGURATION_LABEL) == Some(&cfg_name)
            && r.labels().get(CONFIGURATION_GENERATION_LABEL) == Some(&generation)
    }))
}

/// The name the configuration's current revision has or will have.
fn planned_revision_name(cfg: &Configuration) -> String {
    cfg.spec
        .template
        .metadata
        .name
        .clone()
        .unwrap_or_else(|| revision_name(&cfg.name_any(), generation(&cfg.metadata)))
}

/// The Revision to create for the configuration's current generation, or `None` when it
/// exists (Knative `MakeRevision`): one immutable revision per `metadata.generation`, named
/// `<configuration>-<generation:05>` or `spec.template.metadata.name`; the template's labels
/// and annotations plus `serving.knative.dev/configuration`, `configurationGeneration`,
/// `configurationUID`, and `service`/`serviceUID` when the Configuration carries them; the
/// `creator` annotation from the Configuration's `lastModifier`; controlled by the
/// Configuration.
///
/// `existing` holds the revisions of the configuration's namespace.
///
/// # Errors
/// `spec.template.metadata.name` names a revision that exists with a different template or
/// for another configuration, or the generated name is taken by a revision that was not
/// stamped from this generation. Revisions are never changed.
pub fn revision_for(
    cfg: &Configuration,
    existing: &[Revision],
) -> Result<Option<Revision>, String> {
    if current_revision(cfg, existing)?.is_some() {
        return Ok(None);
    }
    let cfg_name = cfg.name_any();
    let generation = generation(&cfg.metadata);
    let name = planned_revision_name(cfg);
    if find_named(existing, cfg.metadata.namespace.as_deref(), &name).is_some() {
        return Err(format!(
            "revision {name:?} exists but was not stamped from generation {generation} of configuration {cfg_name:?}; delete it, or set spec.template.metadata.name to name the new revision"
        ));
    }
    let template = &cfg.spec.template;
    let mut labels = template.metadata.labels.clone();
    labels.insert(CONFIGURATION_LABEL.to_owned(), cfg_name);
    labels.insert(
        CONFIGURATION_GENERATION_LABEL.to_owned(),
        generation.to_string(),
    );
    if let Some(uid) = cfg.uid() {
        labels.insert(CONFIGURATION_UID_LABEL.to_owned(), uid);
    }
    for key in [SERVICE_LABEL, SERVICE_UID_LABEL] {
        if let Some(value) = cfg.labels().get(key) {
            labels.insert(key.to_owned(), value.clone());
        }
    }
    let mut annotations = template.metadata.annotations.clone();
    if let Some(updater) = cfg.annotations().get(UPDATER_ANNOTATION) {
        annotations.insert(CREATOR_ANNOTATION.to_owned(), updater.clone());
    }
    Ok(Some(Revision {
        metadata: owned_meta(cfg, name, labels, annotations),
        spec: template.spec.clone(),
        status: None,
    }))
}

/// The newest ready revision (Knative `findAndSetLatestReadyRevision`): the BYO-named current
/// revision first, then by generation, newest first; never older than the revision already
/// reported as latest ready.
fn latest_ready_revision<'a>(
    cfg: &Configuration,
    revisions: &'a [Revision],
    current: Option<&Revision>,
    reported: Option<&str>,
) -> Option<&'a Revision> {
    let cfg_name = cfg.name_any();
    let ns = cfg.metadata.namespace.as_deref();
    let newest = i64::try_from(generation(&cfg.metadata)).unwrap_or(i64::MAX);
    let oldest = reported
        .and_then(|name| find_named(revisions, ns, name))
        .map(|r| stamped_generation(r).unwrap_or(newest));
    let byo = cfg.spec.template.metadata.name.as_deref();
    let current_byo = current
        .filter(|_| byo.is_some())
        .and_then(stamped_generation);
    let mut candidates: Vec<&Revision> = revisions
        .iter()
        .filter(|r| {
            r.metadata.namespace.as_deref() == ns
                && r.labels().get(CONFIGURATION_LABEL) == Some(&cfg_name)
        })
        .filter(|r| match oldest {
            None => true,
            Some(oldest) => stamped_generation(r)
                .is_some_and(|g| (oldest..=newest).contains(&g) || Some(g) == current_byo),
        })
        .collect();
    candidates.sort_by_key(|r| {
        (
            r.metadata.name.as_deref() != byo,
            Reverse(stamped_generation(r)),
        )
    });
    candidates.into_iter().find(|r| revision_ready(r))
}

/// A Configuration's status (Knative's configuration reconciler): `latestCreatedRevisionName`
/// is the revision of the current generation; `latestReadyRevisionName` the newest ready one;
/// `Ready` is `True` when they are the same, `False` (`RevisionFailed`) when the latest created
/// revision failed or cannot be created, `Unknown` otherwise.
///
/// `revisions` holds the revisions of the configuration's namespace.
pub fn configuration_status(
    cfg: &Configuration,
    revisions: &[Revision],
    now: &Time,
) -> ConfigurationStatus {
    let mut st = cfg.status.clone().unwrap_or_default();
    st.status.observed_generation = cfg.metadata.generation;
    let current = match current_revision(cfg, revisions) {
        Err(e) => {
            // Knative stops here: nothing else is known until the name is fixed.
            let message = format!("Revision creation failed with message: {e}.");
            mark(
                &mut st.status,
                READY,
                ConditionStatus::False,
                reasons::REVISION_FAILED,
                &message,
                now,
            );
            mark_unsupported(&mut st.status, &cfg.unsupported_fields(), now);
            return st;
        }
        Ok(None) => {
            let message = format!(
                "Revision {:?} has not been created yet.",
                planned_revision_name(cfg)
            );
            mark(
                &mut st.status,
                READY,
                ConditionStatus::Unknown,
                "",
                &message,
                now,
            );
            None
        }
        Ok(Some(rev)) => {
            let name = rev.name_any();
            st.fields.latest_created_revision_name = Some(name.clone());
            if st.fields.latest_ready_revision_name.as_ref() != Some(&name) {
                mark(&mut st.status, READY, ConditionStatus::Unknown, "", "", now);
            }
            let failed = rev
                .status
                .as_ref()
                .and_then(|s| s.status.condition(READY))
                .filter(|c| c.status == ConditionStatus::False);
            if let Some(c) = failed {
                let message = format!(
                    "Revision {name:?} failed with message: {}.",
                    c.message.as_deref().unwrap_or("")
                );
                mark(
                    &mut st.status,
                    READY,
                    ConditionStatus::False,
                    reasons::REVISION_FAILED,
                    &message,
                    now,
                );
            }
            Some(rev)
        }
    };
    let reported = st.fields.latest_ready_revision_name.clone();
    if let Some(ready) = latest_ready_revision(cfg, revisions, current, reported.as_deref()) {
        let name = ready.name_any();
        if st.fields.latest_created_revision_name.as_ref() == Some(&name) {
            mark(&mut st.status, READY, ConditionStatus::True, "", "", now);
        }
        st.fields.latest_ready_revision_name = Some(name);
    }
    mark_unsupported(&mut st.status, &cfg.unsupported_fields(), now);
    st
}
