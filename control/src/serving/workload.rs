use std::collections::BTreeMap;

use ferry_api::duck::{ConditionStatus, Status};
use ferry_api::serving::autoscaling::AUTOSCALING_PREFIX;
use ferry_api::serving::{
    CONFIGURATION_LABEL, DEFAULT_TIMEOUT_SECONDS, Revision, RevisionStatus, SERVICE_LABEL,
    revision_conditions,
};
use ferry_api::validation::Unsupported;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Container as PodContainer, ContainerPort, EnvVar, Pod, PodSpec, PodTemplateSpec, Probe,
    Service, ServicePort, ServiceSpec as CoreServiceSpec, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use serde_json::{Map, Value};

use super::labels::*;
use super::owned::*;

// ---------------------------------------------------------------------------------------------
// Revision → Deployment + Service
// ---------------------------------------------------------------------------------------------

/// The port a revision serves on: its serving container's `containerPort`, else 8080.
pub fn user_port(rev: &Revision) -> i32 {
    rev.spec
        .serving_container()
        .and_then(|(_, c)| c.ports.first())
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

pub(super) fn revision_selector(rev: &Revision) -> BTreeMap<String, String> {
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

/// Container `i` of the revision as a pod container, named as Knative defaults it, with
/// Knative's `K_REVISION`, `K_CONFIGURATION`, `K_SERVICE`; the serving container also serves on
/// `port` with `PORT` set and gets Knative's default readiness probe (a TCP connect to it).
fn pod_container(rev: &Revision, i: usize, port: i32) -> Result<PodContainer, String> {
    let at = format!("spec.containers[{i}]");
    let c = &rev.spec.containers[i];
    let mut json = serde_json::to_value(c).map_err(|e| format!("{at}: {e}"))?;
    if let Value::Object(fields) = &mut json {
        fields.insert("name".to_owned(), Value::String(rev.spec.container_name(i)));
    }
    let mut container: PodContainer = serde_json::from_value(json)
        .map_err(|e| format!("{at}: {e}; fix the container's fields"))?;
    let serving = rev.spec.serving_container().map(|(s, _)| s) == Some(i);
    let label = |key: &str| rev.labels().get(key).cloned().unwrap_or_default();
    let mut env = vec![
        ("K_REVISION", rev.name_any()),
        ("K_CONFIGURATION", label(CONFIGURATION_LABEL)),
        ("K_SERVICE", label(SERVICE_LABEL)),
    ];
    if serving {
        container.ports = Some(vec![ContainerPort {
            name: Some(USER_PORT_NAME.to_owned()),
            container_port: port,
            ..ContainerPort::default()
        }]);
        env.insert(0, ("PORT", port.to_string()));
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
    }
    container
        .env
        .get_or_insert_with(Vec::new)
        .extend(env.into_iter().map(|(name, value)| EnvVar {
            name: name.to_owned(),
            value: Some(value),
            value_from: None,
        }));
    container
        .termination_message_policy
        .get_or_insert_with(|| "FallbackToLogsOnError".to_owned());
    Ok(container)
}

/// The pod spec: the revision's PodSpec fields, its service account and pull secrets, every
/// container (the serving one first, as Knative orders them), and
/// `terminationGracePeriodSeconds = timeoutSeconds`.
fn pod_spec(rev: &Revision, port: i32) -> Result<PodSpec, String> {
    let Some((serving, _)) = rev.spec.serving_container() else {
        return Err(
            "spec.containers: no container names the serving port; give exactly one container `ports`"
                .to_owned(),
        );
    };
    let mut fields: Map<String, Value> = rev
        .spec
        .pod
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    fields.insert("containers".to_owned(), Value::Array(Vec::new()));
    let mut pod: PodSpec = serde_json::from_value(Value::Object(fields))
        .map_err(|e| format!("spec: {e}; fix the pod fields"))?;
    let order =
        std::iter::once(serving).chain((0..rev.spec.containers.len()).filter(|&i| i != serving));
    pod.containers = order
        .map(|i| pod_container(rev, i, port))
        .collect::<Result<_, _>>()?;
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
/// pod away first, and a 600 s progress deadline. Sidecars run beside the serving container
/// (Knative's multi-container revisions).
///
/// # Errors
/// No container names the serving port, or a field does not fit the Kubernetes schema.
pub fn deployment_for(rev: &Revision, replicas: i32) -> Result<Deployment, String> {
    let port = user_port(rev);
    let pod = pod_spec(rev, port)?;
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
