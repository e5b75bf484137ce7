//! Revision: an immutable snapshot of code and configuration, and the revision template that
//! Configurations and Services stamp revisions from.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ContainerPort, EnvFromSource, EnvVar, LocalObjectReference, Probe, ResourceRequirements,
    SecurityContext, VolumeMount,
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::autoscaling::AutoscalingAnnotations;
use super::features::Features;
use super::podspec;
use crate::duck::Status;
use crate::validation::{FieldError, FieldErrors, Path, Unsupported, Validate, unsupported};

/// Knative's default request timeout for a revision, in seconds.
pub const DEFAULT_TIMEOUT_SECONDS: i64 = 300;
/// Knative's upper bound for `containerConcurrency`.
pub const MAX_CONTAINER_CONCURRENCY: i64 = 1000;
/// Name given to the one container when the manifest leaves it out (Knative's default).
pub const DEFAULT_CONTAINER_NAME: &str = "user-container";
/// Label on a Revision naming its Configuration.
pub const CONFIGURATION_LABEL: &str = "serving.knative.dev/configuration";
/// Label on a Revision holding the Configuration generation it was stamped from.
pub const CONFIGURATION_GENERATION_LABEL: &str = "serving.knative.dev/configurationGeneration";
/// Label on a Revision/Configuration/Route naming its Service.
pub const SERVICE_LABEL: &str = "serving.knative.dev/service";

/// Metadata of a revision template: a subset of ObjectMeta (Knative's CRD keeps the rest and so
/// does Ferry, to report it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TemplateMetadata {
    /// Name for the revision ("bring your own revision name"); must start with the parent's
    /// name and a dash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Labels copied to the revision.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations copied to the revision (`autoscaling.knative.dev/*` among them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Other metadata fields, kept so they can be reported as unsupported.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// The application container of a revision: the Kubernetes container fields Knative allows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// Container name; defaults to `user-container`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Image reference. Locally (`ferry dev`) the image is not pulled; `command` runs instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Environment from ConfigMaps and Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,
    /// The port the serving container serves on (`PORT` is set to it; default 8080); at most
    /// one port across all containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    /// Resource requests and limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Readiness probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    /// Liveness probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    /// Security context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    /// Volume mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    /// Image pull policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// Other container fields, kept so they can be reported or passed through.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// Desired state of a Revision (Knative `RevisionSpec`: a PodSpec plus serving settings).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "serving.knative.dev",
    version = "v1",
    kind = "Revision",
    namespaced,
    status = "RevisionStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "rev",
    category = "all",
    category = "knative",
    category = "serving",
    doc = "Revision is an immutable snapshot of code and configuration, scaled by Ferry's autoscaler (to zero when idle).",
    printcolumn(
        name = "Config Name",
        type_ = "string",
        json_path = ".metadata.labels['serving\\.knative\\.dev/configuration']"
    ),
    printcolumn(
        name = "Generation",
        type_ = "string",
        json_path = ".metadata.labels['serving\\.knative\\.dev/configurationGeneration']"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Ready')].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Ready')].reason"
    ),
    printcolumn(
        name = "Actual Replicas",
        type_ = "integer",
        json_path = ".status.actualReplicas"
    ),
    printcolumn(
        name = "Desired Replicas",
        type_ = "integer",
        json_path = ".status.desiredReplicas"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RevisionSpec {
    /// The containers: the one that lists `ports` serves requests (the only one, when there
    /// is one); the others run beside it as sidecars (Knative's multi-container revisions).
    #[schemars(length(min = 1))]
    pub containers: Vec<Container>,
    /// Maximum in-flight requests per replica; 0 means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub container_concurrency: Option<i64>,
    /// Maximum duration of one request, in seconds (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub timeout_seconds: Option<i64>,
    /// Maximum wait for the first response byte, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub response_start_timeout_seconds: Option<i64>,
    /// Maximum idle time on a request, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub idle_timeout_seconds: Option<i64>,
    /// Service account the pods run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Secrets for pulling the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Other PodSpec fields, passed through to the Deployment when supported.
    #[serde(flatten)]
    pub pod: BTreeMap<String, Value>,
}

/// A template from which revisions are stamped (Knative `RevisionTemplateSpec`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RevisionTemplateSpec {
    /// Name, labels and annotations of the revisions.
    #[serde(default)]
    pub metadata: TemplateMetadata,
    /// The revision spec.
    pub spec: RevisionSpec,
}

/// Observed state of a Revision.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub status: Status,
    /// Where to find the revision's logs.
    #[serde(default, rename = "logUrl", skip_serializing_if = "Option::is_none")]
    pub log_url: Option<String>,
    /// Resolved image digests per container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_statuses: Vec<ContainerStatus>,
    /// Replicas that are ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_replicas: Option<i32>,
    /// Replicas the autoscaler wants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
}

/// The image a container of a revision resolved to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    /// Container name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Image digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
}

/// Condition types a Revision reports (Knative's set).
pub mod revision_conditions {
    pub use crate::duck::READY;
    /// The Deployment and Service exist.
    pub const RESOURCES_AVAILABLE: &str = "ResourcesAvailable";
    /// The container starts and passes its probes.
    pub const CONTAINER_HEALTHY: &str = "ContainerHealthy";
    /// The revision has replicas (False while scaled to zero; not an error).
    pub const ACTIVE: &str = "Active";
}

impl RevisionSpec {
    /// Fills Knative's defaults: container names (`user-container` for the only one,
    /// `user-container-<i>` for unnamed ones of several), `timeoutSeconds: 300`,
    /// `containerConcurrency: 0`.
    pub fn apply_defaults(&mut self) {
        for i in 0..self.containers.len() {
            if self.containers[i].name.is_none() {
                let name = self.default_container_name(i);
                self.containers[i].name = Some(name);
            }
        }
        self.timeout_seconds.get_or_insert(DEFAULT_TIMEOUT_SECONDS);
        self.container_concurrency.get_or_insert(0);
    }

    /// Knative's default name of container `i`: `user-container` when it is the only one,
    /// else `user-container-<i>` (with a further suffix if a named container took that name).
    fn default_container_name(&self, i: usize) -> String {
        if self.containers.len() == 1 {
            return DEFAULT_CONTAINER_NAME.to_owned();
        }
        let taken = |n: &str| self.containers.iter().any(|c| c.name.as_deref() == Some(n));
        let mut name = format!("{DEFAULT_CONTAINER_NAME}-{i}");
        while taken(&name) {
            name.push_str("-0");
        }
        name
    }

    /// The container that serves requests and its index: the one that lists a port, or the
    /// only container (Knative: exactly one container of a multi-container revision names the
    /// port; the others are sidecars).
    pub fn serving_container(&self) -> Option<(usize, &Container)> {
        match self.containers.as_slice() {
            [only] => Some((0, only)),
            many => many.iter().enumerate().find(|(_, c)| !c.ports.is_empty()),
        }
    }

    /// A container's name, defaulted as Knative does when the manifest leaves it out.
    pub fn container_name(&self, i: usize) -> String {
        self.containers
            .get(i)
            .and_then(|c| c.name.clone())
            .unwrap_or_else(|| self.default_container_name(i))
    }

    /// Checks the spec as Knative's webhook does with the `config-features` flags in
    /// `features`: the containers (one serving port across them, sidecars beside it), the
    /// PodSpec fields and volumes allowed, concurrency and timeouts in range.
    pub fn validate(&self, features: &Features, path: &Path, errs: &mut FieldErrors) {
        podspec::validate_containers(&self.containers, features, path, errs);
        podspec::validate_pod_fields(&self.pod, features, path, errs);
        if let Some(cc) = self.container_concurrency
            && !(0..=MAX_CONTAINER_CONCURRENCY).contains(&cc)
        {
            errs.push(
                &path.field("containerConcurrency"),
                format!("{cc} is out of range"),
                format!("set 0 (unlimited) to {MAX_CONTAINER_CONCURRENCY}"),
            );
        }
        for (name, value) in [
            ("timeoutSeconds", self.timeout_seconds),
            (
                "responseStartTimeoutSeconds",
                self.response_start_timeout_seconds,
            ),
            ("idleTimeoutSeconds", self.idle_timeout_seconds),
        ] {
            if let Some(v) = value
                && v < 0
            {
                errs.push(
                    &path.field(name),
                    format!("{v} is negative"),
                    "set a number of seconds ≥ 0",
                );
            }
        }
    }
}

impl RevisionTemplateSpec {
    /// Checks the template: the revision spec, the autoscaling annotations, and a BYO revision
    /// name prefixed with `<parent>-`.
    pub fn validate(
        &self,
        features: &Features,
        parent_name: Option<&str>,
        path: &Path,
        errs: &mut FieldErrors,
    ) {
        let meta = path.field("metadata");
        if let (Some(name), Some(parent)) = (&self.metadata.name, parent_name)
            && !name.starts_with(&format!("{parent}-"))
        {
            errs.push(
                &meta.field("name"),
                format!("`{name}` does not start with `{parent}-`"),
                format!("name revisions {parent}-<suffix>, or remove the name"),
            );
        }
        AutoscalingAnnotations::parse(&self.metadata.annotations, &meta.field("annotations"), errs);
        self.spec.validate(features, &path.field("spec"), errs);
    }

    /// Records unsupported fields in the template.
    pub fn unsupported_fields(&self, path: &Path, out: &mut Vec<FieldError>) {
        super::autoscaling::unsupported_class(
            &self.metadata.annotations,
            &path.field("metadata").field("annotations"),
            out,
        );
        for key in self.metadata.other.keys() {
            if key != "namespace" && key != "creationTimestamp" {
                unsupported(
                    out,
                    &path.field("metadata").field(key),
                    "revision templates take name, labels and annotations",
                );
            }
        }
    }
}

impl Validate for Revision {
    fn validate_at(&self, cx: &crate::validation::Context, path: &Path, errs: &mut FieldErrors) {
        let annotations = self.metadata.annotations.clone().unwrap_or_default();
        AutoscalingAnnotations::parse(
            &annotations,
            &path.field("metadata").field("annotations"),
            errs,
        );
        self.spec.validate(&cx.features, &path.field("spec"), errs);
    }
}

impl Unsupported for Revision {
    /// An autoscaler class Ferry does not run; every other field is run as Knative runs it
    /// or refused by validation.
    fn unsupported_fields(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        super::autoscaling::unsupported_class(
            &self.metadata.annotations.clone().unwrap_or_default(),
            &Path::root("metadata.annotations"),
            &mut out,
        );
        out
    }
}
