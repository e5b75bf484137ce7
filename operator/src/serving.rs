//! Serving decisions, made the way Knative Serving's reconcilers make them: the Configuration
//! and Route a Service owns, the Revision a Configuration stamps, the Deployment and Service a
//! Revision runs on, the revisions a Route's traffic resolves to, and the status of each kind.
//!
//! Everything here is a pure function (objects in, objects out): the controllers read the
//! world, call these and write what they return. Status functions start from the object's
//! current status and set conditions through [`Status::set_condition`], so a condition's
//! `lastTransitionTime` only moves when its status does.
//!
//! The reference is knative/serving: `pkg/reconciler/service/resources` (owned objects),
//! `pkg/reconciler/configuration` (revision stamping, latest created and ready),
//! `pkg/reconciler/revision/resources` (the Deployment), `pkg/reconciler/route/traffic` (target
//! resolution) and `pkg/apis/serving/v1/*_lifecycle.go` (conditions, reasons and messages).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use ferry_api::duck::{Addressable, Condition, ConditionStatus, READY, Status};
use ferry_api::serving::autoscaling::AUTOSCALING_PREFIX;
use ferry_api::serving::{
    CONFIGURATION_GENERATION_LABEL, CONFIGURATION_LABEL, Configuration, ConfigurationSpec,
    ConfigurationStatus, DEFAULT_CONTAINER_NAME, DEFAULT_TIMEOUT_SECONDS, KnativeService,
    KnativeServiceStatus, ResolvedTarget, Revision, RevisionStatus, Route, RouteSpec, RouteStatus,
    SERVICE_LABEL, TrafficTarget, resolve_traffic, revision_conditions, revision_name,
    route_conditions, service_conditions,
};
use ferry_api::validation::{FieldError, UNSUPPORTED_FIELD_REASON, Unsupported};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Container as PodContainer, ContainerPort, EnvVar, Pod, PodSpec, PodTemplateSpec, Probe,
    Service, ServicePort, ServiceSpec as CoreServiceSpec, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use serde_json::{Map, Value};

/// Label on a Revision holding its Configuration's uid.
pub const CONFIGURATION_UID_LABEL: &str = "serving.knative.dev/configurationUID";
/// Label on a Configuration and its Revisions holding their Service's uid.
pub const SERVICE_UID_LABEL: &str = "serving.knative.dev/serviceUID";
/// Label on a revision's Deployment, pods and Service naming the Revision (their selector).
pub const REVISION_LABEL: &str = "serving.knative.dev/revision";
/// Label on a revision's Deployment, pods and Service holding the Revision's uid.
pub const REVISION_UID_LABEL: &str = "serving.knative.dev/revisionUID";
/// Label Knative sets on a revision's pods, for tracing, unless the template sets it.
pub const APP_LABEL: &str = "app";
/// Name of the one container port a revision serves on.
pub const USER_PORT_NAME: &str = "user-port";
/// Port a revision serves on when its container declares none (Knative's default).
pub const DEFAULT_USER_PORT: i32 = 8080;
/// Seconds a revision's Deployment may go without progress before it counts as failed
/// (Knative's `progress-deadline` default).
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;
/// The Kubernetes cluster domain when none is configured.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

const ROUTE_LABEL: &str = "serving.knative.dev/route";
const ROUTING_STATE_LABEL: &str = "serving.knative.dev/routingState";
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
const ROLLOUT_DURATION_ANNOTATIONS: &[&str] = &[
    "serving.knative.dev/rollout-duration",
    "serving.knative.dev/rolloutDuration",
];
const UPDATER_ANNOTATION: &str = "serving.knative.dev/lastModifier";
const CREATOR_ANNOTATION: &str = "serving.knative.dev/creator";
const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";
/// Routing bookkeeping Knative keeps off a revision's Deployment and pods.
const ROUTING_ANNOTATIONS: &[&str] = &[
    "serving.knative.dev/lastPinned",
    "serving.knative.dev/no-gc",
    "serving.knative.dev/routingStateModified",
    "serving.knative.dev/routes",
];

/// Condition reasons the serving kinds report (Knative's strings).
pub mod reasons {
    /// Configuration: its latest created revision failed, or could not be created.
    pub const REVISION_FAILED: &str = "RevisionFailed";
    /// Revision: the Deployment is being created or has not reached its initial scale.
    pub const DEPLOYING: &str = "Deploying";
    /// An object Ferry would own exists and belongs to someone else.
    pub const NOT_OWNED: &str = "NotOwned";
    /// Revision: the Deployment made no progress within its deadline.
    pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
    /// Revision `Active=False`: scaled to zero (not an error; it stays Ready).
    pub const NO_TRAFFIC: &str = "NoTraffic";
    /// Revision `Active=Unknown`: scaling up; requests wait in the dispatcher.
    pub const QUEUED: &str = "Queued";
    /// Service: a Configuration or Route has not caught up with the latest spec.
    pub const OUT_OF_DATE: &str = "OutOfDate";
    /// Service: the Route does not send traffic where the spec says yet.
    pub const TRAFFIC_NOT_MIGRATED: &str = "TrafficNotMigrated";
    /// Route: a target's revision is missing, not ready, or failed.
    pub const REVISION_MISSING: &str = "RevisionMissing";
    /// Route: a target's configuration does not exist.
    pub const CONFIGURATION_MISSING: &str = "ConfigurationMissing";
    /// Route: a Service's route names a revision of another Service.
    pub const REVISION_NOT_OWNED: &str = "RevisionNotOwned";
    /// Route: traffic is not routed yet.
    pub const INGRESS_NOT_CONFIGURED: &str = "IngressNotConfigured";
    /// Route `CertificateProvisioned=True`: no TLS certificate is managed.
    pub const TLS_NOT_ENABLED: &str = "TLSNotEnabled";
}

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
fn controlled_by<K: Resource<DynamicType = ()>>(meta: &ObjectMeta, owner: &K) -> bool {
    let uid = owner.meta().uid.as_deref();
    meta.owner_references.iter().flatten().any(|r| {
        r.controller == Some(true)
            && match uid {
                Some(uid) => r.uid == uid,
                None => r.kind == K::kind(&()) && owner.meta().name.as_ref() == Some(&r.name),
            }
    })
}

fn owned_meta<K: Resource<DynamicType = ()>>(
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
fn find_named<'a, K: Resource>(items: &'a [K], ns: Option<&str>, name: &str) -> Option<&'a K> {
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

fn condition(type_: &str, status: ConditionStatus, reason: &str, message: &str) -> Condition {
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
fn mark(
    status: &mut Status,
    type_: &str,
    to: ConditionStatus,
    reason: &str,
    message: &str,
    now: &Time,
) {
    status.set_condition(condition(type_, to, reason, message), now);
}

fn has_status(status: &Status, type_: &str, want: ConditionStatus) -> bool {
    status.condition(type_).is_some_and(|c| c.status == want)
}

/// Copies a child's condition under another type (Knative's `Propagate*Status`): `True` drops
/// the reason and message.
fn propagate(status: &mut Status, type_: &str, from: &Condition, now: &Time) {
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
fn derive_ready(status: &mut Status, dependents: &[&str], now: &Time) {
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
fn mark_unsupported(status: &mut Status, fields: &[FieldError], now: &Time) {
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
fn revision_ready(rev: &Revision) -> bool {
    rev.status.as_ref().is_some_and(|s| {
        s.status.observed_generation == rev.metadata.generation && s.status.is_ready()
    })
}

fn revision_failed(rev: &Revision) -> bool {
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

// ---------------------------------------------------------------------------------------------
// Revision → Deployment + Service
// ---------------------------------------------------------------------------------------------

/// The port a revision serves on: its container's first `containerPort`, else 8080.
pub fn user_port(rev: &Revision) -> i32 {
    rev.spec
        .containers
        .first()
        .and_then(|c| c.ports.first())
        .map(|p| p.container_port)
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_USER_PORT)
}

/// The name of a revision's Deployment (Knative's `<revision>-deployment`).
pub fn deployment_name(revision: &str) -> String {
    format!("{revision}-deployment")
}

/// The in-cluster URL of a revision's Service, `http://<name>.<ns>.svc.<cluster_domain>`: the
/// revision's address in routes and in the contract.
pub fn revision_url(namespace: &str, name: &str, cluster_domain: &str) -> String {
    format!("http://{name}.{namespace}.svc.{cluster_domain}")
}

/// Labels of a revision's Deployment, pods and Service (Knative `makeLabels`): the revision's
/// own labels without routing bookkeeping, its name and uid, and `app` unless set.
fn workload_labels(rev: &Revision) -> BTreeMap<String, String> {
    let name = rev.name_any();
    let mut labels = rev.labels().clone();
    labels.retain(|k, _| k != ROUTE_LABEL && k != ROUTING_STATE_LABEL);
    labels.insert(REVISION_LABEL.to_owned(), name.clone());
    if let Some(uid) = rev.uid() {
        labels.insert(REVISION_UID_LABEL.to_owned(), uid);
    }
    labels.entry(APP_LABEL.to_owned()).or_insert(name);
    labels
}

/// Annotations of a revision's Deployment and pods: the revision's, without autoscaling
/// settings and routing bookkeeping.
fn workload_annotations(rev: &Revision) -> BTreeMap<String, String> {
    let mut annotations = rev.annotations().clone();
    annotations.retain(|k, _| {
        !k.starts_with(AUTOSCALING_PREFIX) && !ROUTING_ANNOTATIONS.contains(&k.as_str())
    });
    annotations
}

fn revision_selector(rev: &Revision) -> BTreeMap<String, String> {
    BTreeMap::from([(REVISION_LABEL.to_owned(), rev.name_any())])
}

/// Points a probe that names no port at the user port (Knative rewrites the user's probes).
fn aim_probe(probe: &mut Probe, port: i32) {
    let unset = |p: &IntOrString| match p {
        IntOrString::Int(n) => *n == 0,
        IntOrString::String(s) => s.is_empty(),
    };
    if let Some(h) = &mut probe.http_get
        && unset(&h.port)
    {
        h.port = IntOrString::Int(port);
    }
    if let Some(t) = &mut probe.tcp_socket
        && unset(&t.port)
    {
        t.port = IntOrString::Int(port);
    }
    if let Some(g) = &mut probe.grpc
        && g.port == 0
    {
        g.port = port;
    }
}

/// The pod's one container: the revision's container (supported fields only), serving on
/// `port` with `PORT` and Knative's `K_REVISION`, `K_CONFIGURATION`, `K_SERVICE` set.
fn user_container(
    rev: &Revision,
    port: i32,
    dropped: &BTreeSet<String>,
) -> Result<PodContainer, String> {
    let [c] = rev.spec.containers.as_slice() else {
        return Err(format!(
            "spec.containers: has {} containers; a revision runs exactly one",
            rev.spec.containers.len()
        ));
    };
    let mut json = serde_json::to_value(c).map_err(|e| format!("spec.containers[0]: {e}"))?;
    if let Value::Object(fields) = &mut json {
        fields.retain(|k, _| !dropped.contains(&format!("spec.containers[0].{k}")));
        let name = c.name.as_deref().unwrap_or(DEFAULT_CONTAINER_NAME);
        fields.insert("name".to_owned(), Value::String(name.to_owned()));
    }
    let mut container: PodContainer = serde_json::from_value(json)
        .map_err(|e| format!("spec.containers[0]: {e}; fix the container's fields"))?;
    container.ports = Some(vec![ContainerPort {
        name: Some(USER_PORT_NAME.to_owned()),
        container_port: port,
        ..ContainerPort::default()
    }]);
    let label = |key: &str| rev.labels().get(key).cloned().unwrap_or_default();
    let env = container.env.get_or_insert_with(Vec::new);
    for (name, value) in [
        ("PORT", port.to_string()),
        ("K_REVISION", rev.name_any()),
        ("K_CONFIGURATION", label(CONFIGURATION_LABEL)),
        ("K_SERVICE", label(SERVICE_LABEL)),
    ] {
        env.push(EnvVar {
            name: name.to_owned(),
            value: Some(value),
            value_from: None,
        });
    }
    container
        .termination_message_policy
        .get_or_insert_with(|| "FallbackToLogsOnError".to_owned());
    // Knative's default readiness probe is a TCP connect to the user port. Without a
    // queue-proxy the kubelet runs it, every second, so a scale from zero is seen quickly.
    container.readiness_probe.get_or_insert_with(|| Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(port),
            host: None,
        }),
        period_seconds: Some(1),
        success_threshold: Some(1),
        ..Probe::default()
    });
    for probe in [
        &mut container.readiness_probe,
        &mut container.liveness_probe,
        &mut container.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        aim_probe(probe, port);
    }
    Ok(container)
}

/// The pod spec: the revision's passed-through pod fields, its service account and pull
/// secrets, the container, and `terminationGracePeriodSeconds = timeoutSeconds`.
fn pod_spec(
    rev: &Revision,
    container: PodContainer,
    dropped: &BTreeSet<String>,
) -> Result<PodSpec, String> {
    let mut fields: Map<String, Value> = rev
        .spec
        .pod
        .iter()
        .filter(|(k, _)| !dropped.contains(&format!("spec.{k}")))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    fields.insert("containers".to_owned(), Value::Array(Vec::new()));
    let mut pod: PodSpec = serde_json::from_value(Value::Object(fields))
        .map_err(|e| format!("spec: {e}; fix the pod fields"))?;
    pod.containers = vec![container];
    pod.service_account_name = rev.spec.service_account_name.clone();
    pod.image_pull_secrets =
        (!rev.spec.image_pull_secrets.is_empty()).then(|| rev.spec.image_pull_secrets.clone());
    pod.termination_grace_period_seconds =
        Some(rev.spec.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS));
    // Knative's `enable-service-links` default: no env var per Service in the namespace.
    pod.enable_service_links.get_or_insert(false);
    Ok(pod)
}

/// The Deployment that runs a revision (Knative `MakeDeployment`, without the queue-proxy:
/// Ferry's dispatcher does its work). Named `<revision>-deployment`, controlled by the
/// Revision, `replicas` as the autoscaler decided, a rolling update that never takes a ready
/// pod away first, and a 600 s progress deadline. Fields the revision sets but Ferry does not
/// support are left out (the revision's status names them).
///
/// # Errors
/// The revision does not have exactly one container, or a passed-through field does not fit
/// the Kubernetes schema.
pub fn deployment_for(rev: &Revision, replicas: i32) -> Result<Deployment, String> {
    let port = user_port(rev);
    let dropped: BTreeSet<String> = rev
        .unsupported_fields()
        .into_iter()
        .map(|e| e.path)
        .collect();
    let pod = pod_spec(rev, user_container(rev, port, &dropped)?, &dropped)?;
    let labels = workload_labels(rev);
    let annotations = workload_annotations(rev);
    let mut pod_annotations = annotations.clone();
    pod_annotations.insert(
        DEFAULT_CONTAINER_ANNOTATION.to_owned(),
        pod.containers[0].name.clone(),
    );
    Ok(Deployment {
        metadata: owned_meta(
            rev,
            deployment_name(&rev.name_any()),
            labels.clone(),
            annotations,
        ),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(revision_selector(rev)),
                match_expressions: None,
            },
            progress_deadline_seconds: Some(DEFAULT_PROGRESS_DEADLINE_SECONDS),
            revision_history_limit: Some(0),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: None,
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(pod_annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    })
}

/// The ClusterIP Service in front of a revision's pods: named after the revision, port 80
/// (`http`) to the user port, selecting `serving.knative.dev/revision: <name>`.
pub fn service_for(rev: &Revision) -> Service {
    Service {
        metadata: owned_meta(rev, rev.name_any(), workload_labels(rev), BTreeMap::new()),
        spec: Some(CoreServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(revision_selector(rev)),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: 80,
                target_port: Some(IntOrString::Int(user_port(rev))),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..CoreServiceSpec::default()
        }),
        status: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Revision status
// ---------------------------------------------------------------------------------------------

/// What the revision controller observed of a revision's workload.
#[derive(Clone, Copy, Debug, Default)]
pub struct RevisionObservation<'a> {
    /// The revision's Deployment, if it exists.
    pub deployment: Option<&'a Deployment>,
    /// Its pods (only the first is read, and only while none is available, as Knative does).
    pub pods: &'a [Pod],
    /// Replicas the autoscaler wants; the Deployment's `spec.replicas` when `None`.
    pub desired_replicas: Option<i32>,
}

/// Knative `TransformDeploymentStatus`: a `ReplicaFailure=True` or `Progressing=False`
/// condition fails; `Progressing` not yet `True` is pending.
fn deployment_readiness(d: &Deployment) -> (ConditionStatus, String, String) {
    let conds = d
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or(&[]);
    let find = |t: &str| conds.iter().find(|c| c.type_ == t);
    let text = |c: &k8s_openapi::api::apps::v1::DeploymentCondition| {
        (
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        )
    };
    let progressing = find("Progressing");
    let replica_failure = find("ReplicaFailure");
    if let Some(c) = replica_failure.filter(|c| c.status == "True") {
        let (r, m) = text(c);
        return (ConditionStatus::False, r, m);
    }
    if let Some(c) = progressing.filter(|c| c.status == "False") {
        let (r, m) = text(c);
        return (ConditionStatus::False, r, m);
    }
    match progressing {
        Some(c) if c.status == "True" => match replica_failure.filter(|c| c.status == "Unknown") {
            Some(c) => {
                let (r, m) = text(c);
                (ConditionStatus::Unknown, r, m)
            }
            None => (ConditionStatus::True, String::new(), String::new()),
        },
        Some(c) => {
            let (r, m) = text(c);
            (ConditionStatus::Unknown, r, m)
        }
        None => (
            ConditionStatus::Unknown,
            reasons::DEPLOYING.to_owned(),
            String::new(),
        ),
    }
}

fn deployment_timed_out(d: &Deployment) -> bool {
    d.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or(&[])
        .iter()
        .any(|c| {
            c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some(reasons::PROGRESS_DEADLINE_EXCEEDED)
        })
}

/// Why a pod of a revision that has no available replica does not run (Knative's revision
/// reconciler): unschedulable, a container that exited, or one stuck waiting past the deadline.
fn observe_pod(status: &mut Status, pod: &Pod, timed_out: bool, now: &Time) {
    use revision_conditions::{CONTAINER_HEALTHY, RESOURCES_AVAILABLE};
    let Some(ps) = &pod.status else { return };
    let unschedulable = ps
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False");
    if let Some(c) = unschedulable {
        mark(
            status,
            RESOURCES_AVAILABLE,
            ConditionStatus::False,
            c.reason.as_deref().unwrap_or(""),
            c.message.as_deref().unwrap_or(""),
            now,
        );
    }
    for c in ps.container_statuses.iter().flatten() {
        let terminated = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
        let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
        if let Some(t) = terminated {
            let detail = match (t.exit_code, t.message.as_deref().unwrap_or("")) {
                (0, "") => "container exited with no error",
                (_, m) => m,
            };
            mark(
                status,
                CONTAINER_HEALTHY,
                ConditionStatus::False,
                &format!("ExitCode{}", t.exit_code),
                &format!("Container failed with: {detail}"),
                now,
            );
            break;
        }
        if let Some(w) = waiting.filter(|_| timed_out) {
            mark(
                status,
                RESOURCES_AVAILABLE,
                ConditionStatus::False,
                w.reason.as_deref().unwrap_or(""),
                w.message.as_deref().unwrap_or(""),
                now,
            );
            break;
        }
    }
}

/// A Revision's status (Knative's revision reconciler plus its PodAutoscaler's part):
/// `ResourcesAvailable` and `ContainerHealthy` from the Deployment and its pods, `Ready` from
/// those two, and `Active` from the replicas.
///
/// # Guarantees
/// A revision is initialized once a replica was ready (remembered through its
/// `ResourcesAvailable`/`ContainerHealthy=True`), or when it is meant to start at zero
/// (`initial-scale: 0`). An initialized revision scaled to zero stays `Ready=True` with
/// `Active=False` (`NoTraffic`); a Deployment past its progress deadline, a replica set that
/// cannot create pods, an unschedulable pod or a crashing container make it `Ready=False` with
/// the Kubernetes reason.
pub fn revision_status(
    rev: &Revision,
    seen: &RevisionObservation<'_>,
    now: &Time,
) -> RevisionStatus {
    use ConditionStatus::{False, True, Unknown};
    use revision_conditions::{ACTIVE, CONTAINER_HEALTHY, RESOURCES_AVAILABLE};
    let mut st = rev.status.clone().unwrap_or_default();
    st.status.observed_generation = rev.metadata.generation;
    let was_initialized = has_status(&st.status, RESOURCES_AVAILABLE, True)
        || has_status(&st.status, CONTAINER_HEALTHY, True);
    let s = &mut st.status;
    match seen.deployment {
        None => {
            for t in [RESOURCES_AVAILABLE, CONTAINER_HEALTHY, ACTIVE] {
                mark(s, t, Unknown, reasons::DEPLOYING, "", now);
            }
            st.actual_replicas = None;
            st.desired_replicas = seen.desired_replicas;
        }
        Some(d) if !controlled_by(&d.metadata, rev) => {
            let message = format!(
                "There is an existing Deployment {:?} that we do not own.",
                d.name_any()
            );
            mark(
                s,
                RESOURCES_AVAILABLE,
                False,
                reasons::NOT_OWNED,
                &message,
                now,
            );
        }
        Some(d) => {
            let (status, reason, message) = deployment_readiness(d);
            mark(s, RESOURCES_AVAILABLE, status, &reason, &message, now);
            let spec_replicas = d.spec.as_ref().and_then(|sp| sp.replicas);
            let ds = d.status.as_ref();
            let ready = ds.and_then(|x| x.ready_replicas).unwrap_or(0);
            let available = ds.and_then(|x| x.available_replicas).unwrap_or(0);
            if spec_replicas.unwrap_or(1) > 0
                && available == 0
                && let Some(pod) = seen.pods.first()
            {
                observe_pod(s, pod, deployment_timed_out(d), now);
            }
            if ready > 0 {
                mark(s, CONTAINER_HEALTHY, True, "", "", now);
            }
            let desired = seen.desired_replicas.or(spec_replicas);
            let initialized = was_initialized || ready > 0 || desired == Some(0);
            let unavailable = has_status(s, RESOURCES_AVAILABLE, False)
                || has_status(s, CONTAINER_HEALTHY, False);
            if initialized && !unavailable {
                mark(s, RESOURCES_AVAILABLE, True, "", "", now);
                mark(s, CONTAINER_HEALTHY, True, "", "", now);
            }
            if !initialized && has_status(s, RESOURCES_AVAILABLE, True) {
                mark(s, RESOURCES_AVAILABLE, Unknown, reasons::DEPLOYING, "", now);
            }
            if s.condition(CONTAINER_HEALTHY).is_none() {
                mark(s, CONTAINER_HEALTHY, Unknown, reasons::DEPLOYING, "", now);
            }
            let active = if desired == Some(0) {
                condition(
                    ACTIVE,
                    False,
                    reasons::NO_TRAFFIC,
                    "The target is not receiving traffic.",
                )
            } else if ready > 0 {
                condition(ACTIVE, True, "", "")
            } else {
                condition(
                    ACTIVE,
                    Unknown,
                    reasons::QUEUED,
                    "Requests to the target are being buffered as resources are provisioned.",
                )
            };
            s.set_condition(active, now);
            st.actual_replicas = Some(ready);
            st.desired_replicas = desired;
        }
    }
    derive_ready(
        &mut st.status,
        &[RESOURCES_AVAILABLE, CONTAINER_HEALTHY],
        now,
    );
    mark_unsupported(&mut st.status, &rev.unsupported_fields(), now);
    st
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use ConditionStatus::{False, True, Unknown};
    use ferry_api::serving::{RevisionTemplateSpec, ServiceSpec};
    use k8s_openapi::api::apps::v1::DeploymentStatus;
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    const NS: &str = "default";

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("valid timestamp"))
    }

    fn meta(name: &str, uid: &str, generation: i64) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            uid: Some(uid.into()),
            generation: Some(generation),
            ..ObjectMeta::default()
        }
    }

    fn template(image: &str) -> RevisionTemplateSpec {
        serde_json::from_value(json!({"spec": {"containers": [{"image": image}]}}))
            .expect("template")
    }

    /// A target at `revision` (or the latest revision when `None`).
    fn target(revision: Option<&str>, percent: i64, tag: Option<&str>) -> TrafficTarget {
        TrafficTarget {
            revision_name: revision.map(Into::into),
            latest_revision: revision.is_none().then_some(true),
            percent: Some(percent),
            tag: tag.map(Into::into),
            ..TrafficTarget::default()
        }
    }

    fn service(traffic: Vec<TrafficTarget>) -> KnativeService {
        KnativeService {
            metadata: meta("cart", "svc-uid", 1),
            spec: ServiceSpec {
                template: template("cart:v1"),
                traffic,
            },
            status: None,
        }
    }

    /// Configuration `cart` of Service `cart` at `generation`, templated with `image`.
    fn config(generation: i64, image: &str) -> Configuration {
        let mut cfg = configuration_for(&service(Vec::new()));
        cfg.metadata.uid = Some("cfg-uid".into());
        cfg.metadata.generation = Some(generation);
        cfg.spec.template = template(image);
        cfg
    }

    fn byo(generation: i64, image: &str) -> Configuration {
        let mut cfg = config(generation, image);
        cfg.spec.template.metadata.name = Some("cart-blue".into());
        cfg
    }

    fn status_with(conditions: &[(&str, ConditionStatus)]) -> Status {
        Status {
            observed_generation: Some(1),
            conditions: conditions
                .iter()
                .map(|(t, s)| {
                    let message = if *s == False { "boom" } else { "" };
                    condition(t, *s, "", message)
                })
                .collect(),
            ..Status::default()
        }
    }

    /// The revision `cfg` stamps, with `Ready` observed as `ready` (no status when `None`).
    fn stamped(cfg: &Configuration, ready: Option<ConditionStatus>) -> Revision {
        let mut rev = revision_for(cfg, &[])
            .expect("stamps")
            .expect("a new revision");
        rev.metadata.uid = Some(format!("{}-uid", rev.name_any()));
        rev.metadata.generation = Some(1);
        rev.status = ready.map(|r| RevisionStatus {
            status: status_with(&[(READY, r)]),
            ..RevisionStatus::default()
        });
        rev
    }

    fn cond(status: &Status, type_: &str) -> (ConditionStatus, Option<String>) {
        let c = status
            .condition(type_)
            .unwrap_or_else(|| panic!("{type_} is set"));
        (c.status, c.reason.clone())
    }

    fn want(status: ConditionStatus, reason: &str) -> (ConditionStatus, Option<String>) {
        (status, (!reason.is_empty()).then(|| reason.to_owned()))
    }

    fn message(status: &Status, type_: &str) -> String {
        status
            .condition(type_)
            .and_then(|c| c.message.clone())
            .unwrap_or_default()
    }

    #[test]
    fn owner_reference_makes_the_owner_the_controller() {
        assert_eq!(
            owner_reference(&service(Vec::new())),
            OwnerReference {
                api_version: "serving.knative.dev/v1".into(),
                kind: "Service".into(),
                name: "cart".into(),
                uid: "svc-uid".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }
        );
        let rev = stamped(&config(1, "v1"), None);
        assert!(controlled_by(&rev.metadata, &config(1, "v1")));
        assert!(!controlled_by(&rev.metadata, &service(Vec::new())));
    }

    #[test]
    fn a_service_owns_a_configuration_with_its_template_and_labels() {
        let mut svc = service(Vec::new());
        svc.metadata.labels = Some(BTreeMap::from([("team".into(), "shop".into())]));
        svc.metadata.annotations = Some(BTreeMap::from([
            (LAST_APPLIED_ANNOTATION.into(), "{}".into()),
            ("serving.knative.dev/rollout-duration".into(), "60s".into()),
            ("note".into(), "kept".into()),
        ]));
        let cfg = configuration_for(&svc);
        assert_eq!(cfg.metadata.name.as_deref(), Some("cart"));
        assert_eq!(cfg.metadata.namespace.as_deref(), Some(NS));
        assert_eq!(
            cfg.metadata.labels,
            Some(BTreeMap::from([
                ("team".into(), "shop".into()),
                (SERVICE_LABEL.into(), "cart".into()),
                (SERVICE_UID_LABEL.into(), "svc-uid".into()),
            ]))
        );
        assert_eq!(
            cfg.metadata.annotations,
            Some(BTreeMap::from([("note".into(), "kept".into())]))
        );
        assert_eq!(
            cfg.metadata.owner_references,
            Some(vec![owner_reference(&svc)])
        );
        assert_eq!(cfg.spec.template, svc.spec.template);
    }

    #[test]
    fn a_service_owns_a_route_whose_latest_targets_name_its_configuration() {
        let with_config = |mut t: TrafficTarget| {
            t.configuration_name = Some("cart".into());
            t
        };
        let cases = [
            (
                "empty traffic is 100% to the latest revision",
                vec![],
                vec![with_config(TrafficTarget::latest_100())],
            ),
            (
                "90/10 with tags",
                vec![
                    target(Some("cart-00001"), 90, Some("stable")),
                    target(None, 10, Some("canary")),
                ],
                vec![
                    target(Some("cart-00001"), 90, Some("stable")),
                    with_config(target(None, 10, Some("canary"))),
                ],
            ),
        ];
        for (name, traffic, expected) in cases {
            let route = route_for(&service(traffic));
            assert_eq!(route.spec.traffic, expected, "{name}");
            assert_eq!(route.metadata.name.as_deref(), Some("cart"), "{name}");
            assert_eq!(
                route.metadata.labels,
                Some(BTreeMap::from([(SERVICE_LABEL.into(), "cart".into())])),
                "{name}"
            );
            assert_eq!(
                route
                    .metadata
                    .owner_references
                    .as_ref()
                    .map(|o| o[0].kind.as_str()),
                Some("Service"),
                "{name}"
            );
        }
    }

    #[test]
    fn a_configuration_stamps_one_immutable_revision_per_generation() {
        let mut foreign = stamped(&byo(3, "v2"), None);
        foreign.metadata.owner_references = Some(vec![OwnerReference {
            uid: "other-cfg-uid".into(),
            ..owner_reference(&config(1, "v1"))
        }]);
        let mut squatter = stamped(&config(1, "v1"), None);
        squatter.metadata.name = Some("cart-00002".into());
        struct Case {
            name: &'static str,
            cfg: Configuration,
            existing: Vec<Revision>,
            want: Result<Option<&'static str>, &'static str>,
        }
        let cases = [
            Case {
                name: "first revision",
                cfg: config(1, "v1"),
                existing: vec![],
                want: Ok(Some("cart-00001")),
            },
            Case {
                name: "a template change makes -00002",
                cfg: config(2, "v2"),
                existing: vec![stamped(&config(1, "v1"), Some(True))],
                want: Ok(Some("cart-00002")),
            },
            Case {
                name: "an unchanged generation makes none",
                cfg: config(2, "v2"),
                existing: vec![
                    stamped(&config(1, "v1"), Some(True)),
                    stamped(&config(2, "v2"), None),
                ],
                want: Ok(None),
            },
            Case {
                name: "a BYO name is used",
                cfg: byo(3, "v2"),
                existing: vec![stamped(&config(2, "v2"), Some(True))],
                want: Ok(Some("cart-blue")),
            },
            Case {
                name: "a BYO revision of this generation exists",
                cfg: byo(3, "v2"),
                existing: vec![stamped(&byo(3, "v2"), None)],
                want: Ok(None),
            },
            Case {
                name: "a BYO name reused with the same template",
                cfg: byo(4, "v2"),
                existing: vec![stamped(&byo(3, "v2"), None)],
                want: Ok(None),
            },
            Case {
                name: "a BYO name reused with a different template",
                cfg: byo(4, "v3"),
                existing: vec![stamped(&byo(3, "v2"), Some(True))],
                want: Err(
                    "spec.template.metadata.name: revision \"cart-blue\" already exists with a different template; revisions are immutable, so give the changed template a new name",
                ),
            },
            Case {
                name: "a BYO name of another configuration",
                cfg: byo(3, "v2"),
                existing: vec![foreign],
                want: Err("belongs to another configuration; choose another name"),
            },
            Case {
                name: "the generated name is taken",
                cfg: config(2, "v2"),
                existing: vec![squatter],
                want: Err("revision \"cart-00002\" exists but was not stamped from generation 2"),
            },
        ];
        for c in cases {
            let got = revision_for(&c.cfg, &c.existing);
            match (got, c.want) {
                (Ok(rev), Ok(want)) => {
                    assert_eq!(rev.map(|r| r.name_any()).as_deref(), want, "{}", c.name)
                }
                (Err(e), Err(want)) => assert!(e.contains(want), "{}: {e}", c.name),
                (got, want) => panic!("{}: got {got:?}, want {want:?}", c.name),
            }
        }
    }

    #[test]
    fn a_revision_carries_knatives_labels_and_the_template() {
        let mut cfg = config(3, "v1");
        cfg.metadata.annotations = Some(BTreeMap::from([(
            UPDATER_ANNOTATION.into(),
            "alice".into(),
        )]));
        cfg.spec.template = serde_json::from_value(json!({
            "metadata": {"labels": {"tier": "web"},
                         "annotations": {"autoscaling.knative.dev/min-scale": "1"}},
            "spec": {"containers": [{"image": "cart:v1"}], "timeoutSeconds": 30}
        }))
        .expect("template");
        let rev = revision_for(&cfg, &[]).expect("stamps").expect("new");
        assert_eq!(rev.metadata.name.as_deref(), Some("cart-00003"));
        assert_eq!(rev.metadata.namespace.as_deref(), Some(NS));
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            rev.metadata.labels,
            Some(labels(&[
                ("tier", "web"),
                (CONFIGURATION_LABEL, "cart"),
                (CONFIGURATION_GENERATION_LABEL, "3"),
                (CONFIGURATION_UID_LABEL, "cfg-uid"),
                (SERVICE_LABEL, "cart"),
                (SERVICE_UID_LABEL, "svc-uid"),
            ]))
        );
        assert_eq!(
            rev.metadata.annotations,
            Some(labels(&[
                ("autoscaling.knative.dev/min-scale", "1"),
                (CREATOR_ANNOTATION, "alice"),
            ]))
        );
        assert_eq!(
            rev.metadata.owner_references,
            Some(vec![owner_reference(&cfg)])
        );
        assert_eq!(rev.spec, cfg.spec.template.spec);
    }

    #[test]
    fn configuration_status_tracks_latest_created_and_ready() {
        let mut never_back = config(4, "v4");
        never_back.status = Some(ConfigurationStatus {
            fields: ferry_api::serving::ConfigurationStatusFields {
                latest_ready_revision_name: Some("cart-00003".into()),
                latest_created_revision_name: Some("cart-00003".into()),
            },
            ..ConfigurationStatus::default()
        });
        let unsupported: RevisionTemplateSpec = serde_json::from_value(json!({
            "spec": {"hostNetwork": true, "containers": [{"image": "cart:v1"}]}
        }))
        .expect("template");
        let mut with_unsupported = config(1, "v1");
        with_unsupported.spec.template = unsupported.clone();
        let mut unsupported_cfg_rev = config(1, "v1");
        unsupported_cfg_rev.spec.template = unsupported;
        struct Case {
            name: &'static str,
            cfg: Configuration,
            revisions: Vec<Revision>,
            created: Option<&'static str>,
            ready_name: Option<&'static str>,
            ready: (ConditionStatus, Option<String>),
            message: &'static str,
        }
        let cases = [
            Case {
                name: "no revision yet",
                cfg: config(1, "v1"),
                revisions: vec![],
                created: None,
                ready_name: None,
                ready: want(Unknown, ""),
                message: "Revision \"cart-00001\" has not been created yet.",
            },
            Case {
                name: "first revision deploying",
                cfg: config(1, "v1"),
                revisions: vec![stamped(&config(1, "v1"), None)],
                created: Some("cart-00001"),
                ready_name: None,
                ready: want(Unknown, ""),
                message: "",
            },
            Case {
                name: "first revision ready",
                cfg: config(1, "v1"),
                revisions: vec![stamped(&config(1, "v1"), Some(True))],
                created: Some("cart-00001"),
                ready_name: Some("cart-00001"),
                ready: want(True, ""),
                message: "",
            },
            Case {
                name: "latest ready skips a failed newest revision",
                cfg: config(2, "v2"),
                revisions: vec![
                    stamped(&config(1, "v1"), Some(True)),
                    stamped(&config(2, "v2"), Some(False)),
                ],
                created: Some("cart-00002"),
                ready_name: Some("cart-00001"),
                ready: want(False, reasons::REVISION_FAILED),
                message: "Revision \"cart-00002\" failed with message: boom.",
            },
            Case {
                name: "the old revision serves while the new one deploys",
                cfg: config(2, "v2"),
                revisions: vec![
                    stamped(&config(1, "v1"), Some(True)),
                    stamped(&config(2, "v2"), Some(Unknown)),
                ],
                created: Some("cart-00002"),
                ready_name: Some("cart-00001"),
                ready: want(Unknown, ""),
                message: "",
            },
            Case {
                name: "latest ready never goes back past the reported one",
                cfg: never_back,
                revisions: vec![
                    stamped(&config(2, "v2"), Some(True)),
                    stamped(&config(3, "v3"), Some(False)),
                    stamped(&config(4, "v4"), Some(False)),
                ],
                created: Some("cart-00004"),
                ready_name: Some("cart-00003"),
                ready: want(False, reasons::REVISION_FAILED),
                message: "Revision \"cart-00004\" failed with message: boom.",
            },
            Case {
                name: "a BYO name taken by another template",
                cfg: byo(4, "v3"),
                revisions: vec![stamped(&byo(3, "v2"), Some(True))],
                created: None,
                ready_name: None,
                ready: want(False, reasons::REVISION_FAILED),
                message: "Revision creation failed with message: spec.template.metadata.name: revision \"cart-blue\" already exists with a different template",
            },
            Case {
                name: "an unsupported field",
                cfg: with_unsupported,
                revisions: vec![stamped(&unsupported_cfg_rev, Some(True))],
                created: Some("cart-00001"),
                ready_name: Some("cart-00001"),
                ready: want(False, UNSUPPORTED_FIELD_REASON),
                message: "spec.template.spec.hostNetwork: is not supported by Ferry",
            },
        ];
        for c in cases {
            let st = configuration_status(&c.cfg, &c.revisions, &at(10));
            assert_eq!(
                st.fields.latest_created_revision_name.as_deref(),
                c.created,
                "{}",
                c.name
            );
            assert_eq!(
                st.fields.latest_ready_revision_name.as_deref(),
                c.ready_name,
                "{}",
                c.name
            );
            assert_eq!(cond(&st.status, READY), c.ready, "{}", c.name);
            let got = message(&st.status, READY);
            assert!(got.starts_with(c.message), "{}: {got}", c.name);
            assert_eq!(
                st.status.observed_generation, c.cfg.metadata.generation,
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn configuration_ready_keeps_its_transition_time_while_unchanged() {
        let revisions = vec![stamped(&config(1, "v1"), Some(True))];
        let mut cfg = config(1, "v1");
        cfg.status = Some(configuration_status(&cfg, &revisions, &at(10)));
        let again = configuration_status(&cfg, &revisions, &at(20));
        let ready = again.status.condition(READY).expect("ready");
        assert_eq!(ready.last_transition_time, Some(at(10)));

        let mut cfg2 = cfg.clone();
        cfg2.metadata.generation = Some(2);
        cfg2.spec.template = template("v2");
        let mut revisions2 = revisions.clone();
        revisions2.push(stamped(&cfg2, Some(False)));
        let failed = configuration_status(&cfg2, &revisions2, &at(30));
        let ready = failed.status.condition(READY).expect("ready");
        assert_eq!(
            (ready.status, ready.last_transition_time.clone()),
            (False, Some(at(30)))
        );
    }

    fn rich_revision() -> Revision {
        let mut cfg = config(1, "v1");
        cfg.spec.template = serde_json::from_value(json!({
            "metadata": {"annotations": {"autoscaling.knative.dev/min-scale": "1", "team": "x"}},
            "spec": {
                "serviceAccountName": "cart-sa",
                "imagePullSecrets": [{"name": "regcred"}],
                "timeoutSeconds": 120,
                "hostNetwork": true,
                "volumes": [{"name": "cache", "emptyDir": {}}],
                "containers": [{
                    "image": "cart:v1",
                    "command": ["serve"],
                    "env": [{"name": "MODE", "value": "prod"}],
                    "ports": [{"containerPort": 9000, "name": "http1"}],
                    "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
                    "startupProbe": {"httpGet": {"path": "/healthz", "port": 0}},
                    "stdin": true
                }]
            }
        }))
        .expect("template");
        stamped(&cfg, None)
    }

    #[test]
    fn a_revision_runs_on_a_deployment_shaped_like_knatives() {
        let rev = rich_revision();
        let d = deployment_for(&rev, 3).expect("deployment");
        assert_eq!(d.metadata.name.as_deref(), Some("cart-00001-deployment"));
        assert_eq!(
            d.metadata.owner_references,
            Some(vec![owner_reference(&rev)])
        );
        let labels = d.metadata.labels.clone().expect("labels");
        for (k, v) in [
            (REVISION_LABEL, "cart-00001"),
            (REVISION_UID_LABEL, "cart-00001-uid"),
            (CONFIGURATION_LABEL, "cart"),
            (SERVICE_LABEL, "cart"),
            (APP_LABEL, "cart-00001"),
        ] {
            assert_eq!(labels.get(k).map(String::as_str), Some(v), "label {k}");
        }
        assert_eq!(
            d.metadata.annotations,
            Some(BTreeMap::from([("team".into(), "x".into())])),
            "autoscaling annotations stay on the revision"
        );
        let spec = d.spec.expect("spec");
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.selector.match_labels, Some(revision_selector(&rev)));
        assert_eq!(spec.progress_deadline_seconds, Some(600));
        let template_meta = spec.template.metadata.expect("pod metadata");
        assert_eq!(template_meta.labels, Some(labels));
        assert_eq!(
            template_meta
                .annotations
                .as_ref()
                .and_then(|a| a.get(DEFAULT_CONTAINER_ANNOTATION))
                .map(String::as_str),
            Some("user-container")
        );
        let pod = spec.template.spec.expect("pod");
        assert_eq!(pod.service_account_name.as_deref(), Some("cart-sa"));
        assert_eq!(
            pod.image_pull_secrets.as_ref().map(|s| s[0].name.as_str()),
            Some("regcred")
        );
        assert_eq!(pod.termination_grace_period_seconds, Some(120));
        assert_eq!(pod.host_network, None, "unsupported fields are left out");
        assert_eq!(
            pod.volumes.as_ref().map(|v| v[0].name.as_str()),
            Some("cache")
        );
        let [c] = pod.containers.as_slice() else {
            panic!("one container")
        };
        assert_eq!(c.name, "user-container");
        assert_eq!(c.image.as_deref(), Some("cart:v1"));
        assert_eq!(c.command, Some(vec!["serve".to_owned()]));
        assert_eq!(c.stdin, None, "unsupported fields are left out");
        assert_eq!(
            c.volume_mounts.as_ref().map(|m| m[0].mount_path.as_str()),
            Some("/cache")
        );
        let env: Vec<(&str, &str)> = c
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(
            env,
            [
                ("MODE", "prod"),
                ("PORT", "9000"),
                ("K_REVISION", "cart-00001"),
                ("K_CONFIGURATION", "cart"),
                ("K_SERVICE", "cart"),
            ]
        );
        assert_eq!(
            c.ports,
            Some(vec![ContainerPort {
                name: Some("user-port".into()),
                container_port: 9000,
                ..ContainerPort::default()
            }])
        );
        let startup = c.startup_probe.as_ref().and_then(|p| p.http_get.as_ref());
        assert_eq!(
            startup.map(|h| h.port.clone()),
            Some(IntOrString::Int(9000))
        );
        let readiness = c
            .readiness_probe
            .as_ref()
            .and_then(|p| p.tcp_socket.as_ref());
        assert_eq!(
            readiness.map(|t| t.port.clone()),
            Some(IntOrString::Int(9000))
        );
    }

    #[test]
    fn the_user_port_defaults_to_8080() {
        let cases = [
            ("no port", json!([{"image": "x"}]), 8080, "8080"),
            (
                "declared port",
                json!([{"image": "x", "ports": [{"containerPort": 3000}]}]),
                3000,
                "3000",
            ),
        ];
        for (name, containers, port, env) in cases {
            let mut cfg = config(1, "v1");
            cfg.spec.template = serde_json::from_value(json!({"spec": {"containers": containers}}))
                .expect("template");
            let rev = stamped(&cfg, None);
            assert_eq!(user_port(&rev), port, "{name}");
            let d = deployment_for(&rev, 1).expect("deployment");
            let pod = d.spec.and_then(|s| s.template.spec).expect("pod");
            let got = pod.containers[0]
                .env
                .iter()
                .flatten()
                .find(|e| e.name == "PORT")
                .and_then(|e| e.value.clone());
            assert_eq!(got.as_deref(), Some(env), "{name}");
            let svc = service_for(&rev);
            let ports = svc.spec.and_then(|s| s.ports).expect("ports");
            assert_eq!(
                (ports[0].port, ports[0].target_port.clone()),
                (80, Some(IntOrString::Int(port))),
                "{name}"
            );
        }
        let mut two = stamped(&config(1, "v1"), None);
        two.spec.containers.push(two.spec.containers[0].clone());
        let err = deployment_for(&two, 1).expect_err("two containers");
        assert!(
            err.starts_with("spec.containers: has 2 containers"),
            "{err}"
        );
    }

    #[test]
    fn a_revision_is_addressed_by_its_cluster_ip_service() {
        let rev = rich_revision();
        let svc = service_for(&rev);
        assert_eq!(svc.metadata.name.as_deref(), Some("cart-00001"));
        assert_eq!(
            svc.metadata.owner_references,
            Some(vec![owner_reference(&rev)])
        );
        let spec = svc.spec.expect("spec");
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(
            spec.selector,
            Some(BTreeMap::from([(
                REVISION_LABEL.into(),
                "cart-00001".into()
            )]))
        );
        let port = &spec.ports.expect("ports")[0];
        assert_eq!(port.name.as_deref(), Some("http"));
        assert_eq!(port.target_port, Some(IntOrString::Int(9000)));
        assert_eq!(
            revision_url(NS, "cart-00001", DEFAULT_CLUSTER_DOMAIN),
            "http://cart-00001.default.svc.cluster.local"
        );
    }

    /// The revision's Deployment with `spec.replicas` and observed ready replicas and
    /// conditions `(type, status, reason)`.
    fn deployment(
        rev: &Revision,
        replicas: i32,
        ready: i32,
        conditions: &[(&str, &str, &str)],
    ) -> Deployment {
        let mut d = deployment_for(rev, replicas).expect("deployment");
        d.status = Some(DeploymentStatus {
            ready_replicas: Some(ready),
            available_replicas: Some(ready),
            conditions: Some(
                conditions
                    .iter()
                    .map(
                        |(t, s, r)| k8s_openapi::api::apps::v1::DeploymentCondition {
                            type_: (*t).into(),
                            status: (*s).into(),
                            reason: Some((*r).into()),
                            message: Some(format!("{r} happened")),
                            ..Default::default()
                        },
                    )
                    .collect(),
            ),
            ..DeploymentStatus::default()
        });
        d
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod", "status": status}))
            .expect("pod")
    }

    #[test]
    fn revision_status_follows_the_deployment_and_the_autoscaler() {
        let fresh = stamped(&config(1, "v1"), None);
        let mut served = fresh.clone();
        served.status = Some(RevisionStatus {
            status: status_with(&[
                (READY, True),
                (revision_conditions::RESOURCES_AVAILABLE, True),
                (revision_conditions::CONTAINER_HEALTHY, True),
                (revision_conditions::ACTIVE, True),
            ]),
            ..RevisionStatus::default()
        });
        let progressing = ("Progressing", "True", "NewReplicaSetAvailable");
        let deadline = ("Progressing", "False", "ProgressDeadlineExceeded");
        let mut foreign = deployment(&fresh, 1, 1, &[progressing]);
        foreign.metadata.owner_references = None;
        let crashed = pod(json!({"containerStatuses": [{
            "name": "user-container", "image": "cart:v1", "imageID": "", "ready": false,
            "restartCount": 3,
            "lastState": {"terminated": {"exitCode": 1, "message": "panic: no db"}}
        }]}));
        let pulling = pod(json!({"containerStatuses": [{
            "name": "user-container", "image": "cart:v1", "imageID": "", "ready": false,
            "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}}
        }]}));
        let unschedulable = pod(json!({"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available"
        }]}));
        struct Case<'a> {
            name: &'static str,
            rev: &'a Revision,
            deployment: Option<Deployment>,
            pods: Vec<Pod>,
            desired: Option<i32>,
            ready: (ConditionStatus, Option<String>),
            active: (ConditionStatus, Option<String>),
            replicas: (Option<i32>, Option<i32>),
        }
        let cases = [
            Case {
                name: "no deployment yet",
                rev: &fresh,
                deployment: None,
                pods: vec![],
                desired: None,
                ready: want(Unknown, reasons::DEPLOYING),
                active: want(Unknown, reasons::DEPLOYING),
                replicas: (None, None),
            },
            Case {
                name: "deployment starting",
                rev: &fresh,
                deployment: Some(deployment(
                    &fresh,
                    1,
                    0,
                    &[("Progressing", "True", "ReplicaSetUpdated")],
                )),
                pods: vec![],
                desired: Some(1),
                ready: want(Unknown, reasons::DEPLOYING),
                active: want(Unknown, reasons::QUEUED),
                replicas: (Some(0), Some(1)),
            },
            Case {
                name: "first replica ready",
                rev: &fresh,
                deployment: Some(deployment(&fresh, 1, 1, &[progressing])),
                pods: vec![],
                desired: Some(1),
                ready: want(True, ""),
                active: want(True, ""),
                replicas: (Some(1), Some(1)),
            },
            Case {
                name: "scaled to zero after being ready stays Ready",
                rev: &served,
                deployment: Some(deployment(&served, 0, 0, &[progressing])),
                pods: vec![],
                desired: Some(0),
                ready: want(True, ""),
                active: want(False, reasons::NO_TRAFFIC),
                replicas: (Some(0), Some(0)),
            },
            Case {
                name: "scaling up from zero",
                rev: &served,
                deployment: Some(deployment(&served, 1, 0, &[progressing])),
                pods: vec![],
                desired: Some(1),
                ready: want(True, ""),
                active: want(Unknown, reasons::QUEUED),
                replicas: (Some(0), Some(1)),
            },
            Case {
                name: "initial-scale 0 is ready at zero",
                rev: &fresh,
                deployment: Some(deployment(&fresh, 0, 0, &[progressing])),
                pods: vec![],
                desired: None,
                ready: want(True, ""),
                active: want(False, reasons::NO_TRAFFIC),
                replicas: (Some(0), Some(0)),
            },
            Case {
                name: "progress deadline exceeded",
                rev: &fresh,
                deployment: Some(deployment(&fresh, 1, 0, &[deadline])),
                pods: vec![],
                desired: Some(1),
                ready: want(False, reasons::PROGRESS_DEADLINE_EXCEEDED),
                active: want(Unknown, reasons::QUEUED),
                replicas: (Some(0), Some(1)),
            },
            Case {
                name: "the replica set cannot create pods",
                rev: &served,
                deployment: Some(deployment(
                    &served,
                    1,
                    0,
                    &[progressing, ("ReplicaFailure", "True", "FailedCreate")],
                )),
                pods: vec![],
                desired: Some(1),
                ready: want(False, "FailedCreate"),
                active: want(Unknown, reasons::QUEUED),
                replicas: (Some(0), Some(1)),
            },
            Case {
                name: "a crashing container",
                rev: &fresh,
                deployment: Some(deployment(&fresh, 1, 0, &[progressing])),
                pods: vec![crashed],
                desired: Some(1),
                ready: want(False, "ExitCode1"),
                active: want(Unknown, reasons::QUEUED),
                replicas: (Some(0), Some(1)),
            },
            Case {
                name: "an image that never pulls",
                rev: &fresh,
                deployment: Some(deployment(&fresh, 1, 0, &[deadline])),
                pods: vec![pulling],
                desired: Some(1),
                ready: want(False, "ImagePullBackOff"),
                active: want(Unknown, reasons::QUEUED),
                replicas: (Some(0), Some(1)),
            },
            Case {
                name: "an unschedulable pod",
                rev: &fresh,
                deployment: Some(deployment(&fresh, 1, 0, &[progressing])),
                pods: vec![unschedulable],
                desired: Some(1),
                ready: want(False, "Unschedulable"),
                active: want(Unknown, reasons::QUEUED),
                replicas: (Some(0), Some(1)),
            },
            Case {
                name: "a deployment owned by someone else",
                rev: &fresh,
                deployment: Some(foreign),
                pods: vec![],
                desired: Some(1),
                ready: want(False, reasons::NOT_OWNED),
                active: (Unknown, None),
                replicas: (None, None),
            },
        ];
        for c in cases {
            let seen = RevisionObservation {
                deployment: c.deployment.as_ref(),
                pods: &c.pods,
                desired_replicas: c.desired,
            };
            let st = revision_status(c.rev, &seen, &at(10));
            assert_eq!(
                cond(&st.status, READY),
                c.ready,
                "{}: {:?}",
                c.name,
                st.status
            );
            let active = st
                .status
                .condition(revision_conditions::ACTIVE)
                .map_or((Unknown, None), |a| (a.status, a.reason.clone()));
            // A foreign deployment says nothing about activity: the prior (absent) one stays.
            if c.name != "a deployment owned by someone else" {
                assert_eq!(active, c.active, "{}", c.name);
                assert_eq!(
                    (st.actual_replicas, st.desired_replicas),
                    c.replicas,
                    "{}",
                    c.name
                );
            }
        }
    }

    #[test]
    fn revision_failure_messages_name_the_cause() {
        let rev = stamped(&config(1, "v1"), None);
        let d = deployment(&rev, 1, 0, &[("Progressing", "True", "ReplicaSetUpdated")]);
        let crashed = pod(json!({"containerStatuses": [{
            "name": "user-container", "image": "cart:v1", "imageID": "", "ready": false,
            "restartCount": 3, "lastState": {"terminated": {"exitCode": 1, "message": "panic: no db"}}
        }]}));
        let pods = [crashed];
        let seen = RevisionObservation {
            deployment: Some(&d),
            pods: &pods,
            desired_replicas: Some(1),
        };
        let st = revision_status(&rev, &seen, &at(10));
        assert_eq!(
            message(&st.status, READY),
            "Container failed with: panic: no db"
        );
        let foreign = Deployment {
            metadata: ObjectMeta {
                owner_references: None,
                ..d.metadata.clone()
            },
            ..d.clone()
        };
        let st = revision_status(
            &rev,
            &RevisionObservation {
                deployment: Some(&foreign),
                ..RevisionObservation::default()
            },
            &at(10),
        );
        assert_eq!(
            message(&st.status, READY),
            "There is an existing Deployment \"cart-00001-deployment\" that we do not own."
        );
    }

    #[test]
    fn scaling_to_zero_keeps_readys_transition_time() {
        let mut rev = stamped(&config(1, "v1"), None);
        let up = deployment(
            &rev,
            1,
            1,
            &[("Progressing", "True", "NewReplicaSetAvailable")],
        );
        let seen = RevisionObservation {
            deployment: Some(&up),
            desired_replicas: Some(1),
            ..RevisionObservation::default()
        };
        rev.status = Some(revision_status(&rev, &seen, &at(10)));
        let zero = deployment(
            &rev,
            0,
            0,
            &[("Progressing", "True", "NewReplicaSetAvailable")],
        );
        let seen = RevisionObservation {
            deployment: Some(&zero),
            desired_replicas: Some(0),
            ..RevisionObservation::default()
        };
        let st = revision_status(&rev, &seen, &at(20));
        let ready = st.status.condition(READY).expect("ready");
        assert_eq!(
            (ready.status, ready.last_transition_time.clone()),
            (True, Some(at(10)))
        );
        let active = st
            .status
            .condition(revision_conditions::ACTIVE)
            .expect("active");
        assert_eq!(
            (active.status, active.last_transition_time.clone()),
            (False, Some(at(20)))
        );
    }

    /// Configuration `cart` whose latest ready revision is `latest` (`Ready` as given).
    fn ready_config(latest: Option<&str>, ready: ConditionStatus) -> Configuration {
        let mut cfg = config(2, "v2");
        cfg.status = Some(ConfigurationStatus {
            status: status_with(&[(READY, ready)]),
            fields: ferry_api::serving::ConfigurationStatusFields {
                latest_ready_revision_name: latest.map(Into::into),
                latest_created_revision_name: Some("cart-00002".into()),
            },
        });
        cfg
    }

    fn route(traffic: Vec<TrafficTarget>) -> Route {
        let mut route = route_for(&service(traffic));
        route.metadata.uid = Some("route-uid".into());
        route.metadata.generation = Some(1);
        route
    }

    fn world() -> (Vec<Configuration>, Vec<Revision>) {
        let mut other = stamped(&config(1, "v1"), Some(True));
        other.metadata.name = Some("other-00001".into());
        other
            .metadata
            .labels
            .as_mut()
            .expect("labels")
            .insert(SERVICE_LABEL.into(), "other".into());
        (
            vec![ready_config(Some("cart-00002"), True)],
            vec![
                stamped(&config(1, "v1"), Some(True)),
                stamped(&config(2, "v2"), Some(True)),
                stamped(&config(3, "v3"), None),
                other,
            ],
        )
    }

    #[test]
    fn route_status_resolves_traffic_or_says_which_target_is_missing() {
        let (cfgs, revisions) = world();
        let status_target =
            |rev: &str, percent: i64, tag: Option<&str>, latest: bool| TrafficTarget {
                revision_name: Some(rev.into()),
                percent: Some(percent),
                latest_revision: Some(latest),
                url: tag.map(|t| format!("http://{t}-cart.default.example.com")),
                tag: tag.map(Into::into),
                configuration_name: None,
            };
        struct Case {
            name: &'static str,
            traffic: Vec<TrafficTarget>,
            cfgs: Vec<Configuration>,
            assigned: (ConditionStatus, Option<String>),
            message: &'static str,
            resolved: Vec<TrafficTarget>,
        }
        let cases = [
            Case {
                name: "traffic 90/10 with tags",
                traffic: vec![
                    target(Some("cart-00001"), 90, Some("stable")),
                    target(None, 10, Some("canary")),
                ],
                cfgs: cfgs.clone(),
                assigned: want(True, ""),
                message: "",
                resolved: vec![
                    status_target("cart-00001", 90, Some("stable"), false),
                    status_target("cart-00002", 10, Some("canary"), true),
                ],
            },
            Case {
                name: "default traffic follows the latest ready revision",
                traffic: vec![],
                cfgs: cfgs.clone(),
                assigned: want(True, ""),
                message: "",
                resolved: vec![status_target("cart-00002", 100, None, true)],
            },
            Case {
                name: "a missing revision",
                traffic: vec![target(Some("cart-00009"), 100, None)],
                cfgs: cfgs.clone(),
                assigned: want(False, reasons::REVISION_MISSING),
                message: "Revision \"cart-00009\" referenced in traffic not found.",
                resolved: vec![],
            },
            Case {
                name: "a revision not ready yet",
                traffic: vec![target(Some("cart-00003"), 100, None)],
                cfgs: cfgs.clone(),
                assigned: want(Unknown, reasons::REVISION_MISSING),
                message: "Revision \"cart-00003\" is not yet ready.",
                resolved: vec![],
            },
            Case {
                name: "a failure outranks a pending target",
                traffic: vec![
                    target(Some("cart-00003"), 50, None),
                    target(Some("cart-00009"), 50, None),
                ],
                cfgs: cfgs.clone(),
                assigned: want(False, reasons::REVISION_MISSING),
                message: "Revision \"cart-00009\" referenced in traffic not found.",
                resolved: vec![],
            },
            Case {
                name: "a configuration waiting for its first revision",
                traffic: vec![],
                cfgs: vec![ready_config(None, Unknown)],
                assigned: want(Unknown, reasons::REVISION_MISSING),
                message: "Configuration \"cart\" is waiting for a Revision to become ready.",
                resolved: vec![],
            },
            Case {
                name: "a configuration whose revisions failed",
                traffic: vec![],
                cfgs: vec![ready_config(None, False)],
                assigned: want(False, reasons::REVISION_MISSING),
                message: "Configuration \"cart\" does not have any ready Revision.",
                resolved: vec![],
            },
            Case {
                name: "a missing configuration",
                traffic: vec![],
                cfgs: vec![],
                assigned: want(False, reasons::CONFIGURATION_MISSING),
                message: "Configuration \"cart\" referenced in traffic not found.",
                resolved: vec![],
            },
            Case {
                name: "a revision of another service",
                traffic: vec![target(Some("other-00001"), 100, None)],
                cfgs: cfgs.clone(),
                assigned: want(False, reasons::REVISION_NOT_OWNED),
                message: "Revision \"other-00001\" belongs to Service \"other\", not Service \"cart\".",
                resolved: vec![],
            },
        ];
        for c in cases {
            let r = route(c.traffic);
            let st = route_status(
                &r,
                &c.cfgs,
                &revisions,
                "example.com",
                "cluster.local",
                &at(10),
            );
            let all = route_conditions::ALL_TRAFFIC_ASSIGNED;
            assert_eq!(cond(&st.status, all), c.assigned, "{}", c.name);
            assert_eq!(message(&st.status, all), c.message, "{}", c.name);
            assert_eq!(cond(&st.status, READY).0, c.assigned.0, "{}", c.name);
            assert_eq!(st.fields.traffic, c.resolved, "{}", c.name);
            assert_eq!(
                st.fields.url.as_deref(),
                Some("http://cart.default.example.com"),
                "{}",
                c.name
            );
            let address = st.fields.address.and_then(|a| a.url);
            let want_address =
                (c.assigned.0 == True).then(|| "http://cart.default.svc.cluster.local".to_owned());
            assert_eq!(address, want_address, "{}", c.name);
        }
        assert_eq!(default_domain(DEFAULT_CLUSTER_DOMAIN), "svc.cluster.local");
    }

    #[test]
    fn route_conditions_knative_reports_when_traffic_is_assigned() {
        let (cfgs, revisions) = world();
        let st = route_status(
            &route(vec![]),
            &cfgs,
            &revisions,
            "example.com",
            "cluster.local",
            &at(10),
        );
        for (t, expected) in [
            (route_conditions::ALL_TRAFFIC_ASSIGNED, want(True, "")),
            (route_conditions::INGRESS_READY, want(True, "")),
            (
                route_conditions::CERTIFICATE_PROVISIONED,
                want(True, reasons::TLS_NOT_ENABLED),
            ),
            (READY, want(True, "")),
        ] {
            assert_eq!(cond(&st.status, t), expected, "{t}");
        }
        assert_eq!(st.status.observed_generation, Some(1));
    }

    /// The Service's Configuration and Route, reconciled, ready, serving `cart-00001`.
    fn owned() -> (KnativeService, Configuration, Route) {
        let svc = service(vec![]);
        let mut cfg = configuration_for(&svc);
        cfg.metadata.generation = Some(1);
        cfg.status = Some(ConfigurationStatus {
            status: status_with(&[(READY, True)]),
            fields: ferry_api::serving::ConfigurationStatusFields {
                latest_ready_revision_name: Some("cart-00001".into()),
                latest_created_revision_name: Some("cart-00001".into()),
            },
        });
        let mut route = route_for(&svc);
        route.metadata.generation = Some(1);
        route.status = Some(RouteStatus {
            status: status_with(&[(READY, True)]),
            fields: ferry_api::serving::RouteStatusFields {
                url: Some("http://cart.default.svc.cluster.local".into()),
                address: None,
                traffic: vec![TrafficTarget {
                    revision_name: Some("cart-00001".into()),
                    latest_revision: Some(true),
                    percent: Some(100),
                    ..TrafficTarget::default()
                }],
            },
        });
        (svc, cfg, route)
    }

    #[test]
    fn service_status_mirrors_its_configuration_and_route() {
        let (svc, cfg, route) = owned();
        let behind = Configuration {
            metadata: ObjectMeta {
                generation: Some(2),
                ..cfg.metadata.clone()
            },
            ..cfg.clone()
        };
        let mut failed = cfg.clone();
        if let Some(s) = failed.status.as_mut() {
            s.status.conditions = vec![condition(READY, False, reasons::REVISION_FAILED, "boom")];
        }
        let mut moved_on = cfg.clone();
        if let Some(s) = moved_on.status.as_mut() {
            s.fields.latest_ready_revision_name = Some("cart-00002".into());
        }
        let foreign = Configuration {
            metadata: ObjectMeta {
                owner_references: None,
                ..cfg.metadata.clone()
            },
            ..cfg.clone()
        };
        struct Case {
            name: &'static str,
            cfg: Option<Configuration>,
            route: Option<Route>,
            configurations: (ConditionStatus, Option<String>),
            routes: (ConditionStatus, Option<String>),
            ready: (ConditionStatus, Option<String>),
        }
        let cases = [
            Case {
                name: "everything ready",
                cfg: Some(cfg.clone()),
                route: Some(route.clone()),
                configurations: want(True, ""),
                routes: want(True, ""),
                ready: want(True, ""),
            },
            Case {
                name: "Unknown while the route is missing",
                cfg: Some(cfg.clone()),
                route: None,
                configurations: want(True, ""),
                routes: want(Unknown, reasons::OUT_OF_DATE),
                ready: want(Unknown, reasons::OUT_OF_DATE),
            },
            Case {
                name: "Unknown while the configuration is behind its generation",
                cfg: Some(behind),
                route: Some(route.clone()),
                configurations: want(Unknown, reasons::OUT_OF_DATE),
                routes: want(True, ""),
                ready: want(Unknown, reasons::OUT_OF_DATE),
            },
            Case {
                name: "a failed configuration fails the service",
                cfg: Some(failed),
                route: Some(route.clone()),
                configurations: want(False, reasons::REVISION_FAILED),
                routes: want(True, ""),
                ready: want(False, reasons::REVISION_FAILED),
            },
            Case {
                name: "traffic not yet on the new latest ready revision",
                cfg: Some(moved_on),
                route: Some(route.clone()),
                configurations: want(True, ""),
                routes: want(Unknown, reasons::TRAFFIC_NOT_MIGRATED),
                ready: want(Unknown, reasons::TRAFFIC_NOT_MIGRATED),
            },
            Case {
                name: "a configuration of someone else",
                cfg: Some(foreign),
                route: Some(route.clone()),
                configurations: want(False, reasons::NOT_OWNED),
                routes: want(Unknown, ""),
                ready: want(False, reasons::NOT_OWNED),
            },
            Case {
                name: "nothing created yet",
                cfg: None,
                route: None,
                configurations: want(Unknown, reasons::OUT_OF_DATE),
                routes: want(Unknown, reasons::OUT_OF_DATE),
                ready: want(Unknown, reasons::OUT_OF_DATE),
            },
        ];
        for c in cases {
            let st = service_status(&svc, c.cfg.as_ref(), c.route.as_ref(), &at(10));
            let get = |t: &str| {
                st.status
                    .condition(t)
                    .map_or((Unknown, None), |x| (x.status, x.reason.clone()))
            };
            assert_eq!(
                get(service_conditions::CONFIGURATIONS_READY),
                c.configurations,
                "{}",
                c.name
            );
            assert_eq!(
                get(service_conditions::ROUTES_READY),
                c.routes,
                "{}",
                c.name
            );
            assert_eq!(get(READY), c.ready, "{}", c.name);
            assert_eq!(st.status.observed_generation, Some(1), "{}", c.name);
        }
        let st = service_status(&svc, Some(&cfg), Some(&route), &at(10));
        assert_eq!(
            st.configuration.latest_ready_revision_name.as_deref(),
            Some("cart-00001")
        );
        assert_eq!(
            st.configuration.latest_created_revision_name.as_deref(),
            Some("cart-00001")
        );
        assert_eq!(
            st.route.url.as_deref(),
            Some("http://cart.default.svc.cluster.local")
        );
        assert_eq!(st.route.traffic.len(), 1);
    }

    #[test]
    fn unsupported_fields_make_a_service_not_ready() {
        let (mut svc, cfg, route) = owned();
        svc.spec.template = serde_json::from_value(json!({
            "spec": {"hostNetwork": true, "containers": [{"image": "cart:v1"}]}
        }))
        .expect("template");
        let st = service_status(&svc, Some(&cfg), Some(&route), &at(10));
        assert_eq!(
            cond(&st.status, READY),
            want(False, UNSUPPORTED_FIELD_REASON)
        );
        assert!(
            message(&st.status, READY)
                .starts_with("spec.template.spec.hostNetwork: is not supported by Ferry"),
            "{}",
            message(&st.status, READY)
        );
    }
}
