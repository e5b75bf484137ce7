//! Service (serving.knative.dev): a Configuration and a Route managed as one, the usual way to
//! run a scale-to-zero application. Named [`KnativeService`] in Rust so it is never confused
//! with a core/v1 Service.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::RevisionTemplateSpec;
use super::configuration::ConfigurationStatusFields;
use super::route::RouteStatusFields;
use super::traffic::{TrafficOwner, TrafficTarget, traffic_list_schema, validate_traffic};
use crate::duck::Status;
use crate::validation::{FieldError, FieldErrors, Path, Unsupported, Validate};

/// Desired state of a Knative Service: a revision template plus a traffic split.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "serving.knative.dev",
    version = "v1",
    kind = "Service",
    root = "KnativeService",
    namespaced,
    status = "KnativeServiceStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "kservice",
    shortname = "ksvc",
    category = "all",
    category = "knative",
    category = "serving",
    doc = "Service manages a Configuration and a Route for one application: every template change creates a Revision, and traffic is split across revisions by percent.",
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
    printcolumn(
        name = "LatestCreated",
        type_ = "string",
        json_path = ".status.latestCreatedRevisionName"
    ),
    printcolumn(
        name = "LatestReady",
        type_ = "string",
        json_path = ".status.latestReadyRevisionName"
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
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct ServiceSpec {
    /// The template revisions are stamped from.
    pub template: RevisionTemplateSpec,
    /// Traffic split; defaults to 100% on the latest ready revision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "traffic_list_schema")]
    pub traffic: Vec<TrafficTarget>,
}

/// Observed state of a Knative Service: its Configuration's and Route's status together.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KnativeServiceStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub status: Status,
    /// Latest created and ready revisions.
    #[serde(flatten)]
    pub configuration: ConfigurationStatusFields,
    /// URL, address and resolved traffic.
    #[serde(flatten)]
    pub route: RouteStatusFields,
}

/// Condition types a Knative Service reports (Knative's set).
pub mod service_conditions {
    pub use crate::duck::READY;
    /// The Configuration is ready.
    pub const CONFIGURATIONS_READY: &str = "ConfigurationsReady";
    /// The Route is ready.
    pub const ROUTES_READY: &str = "RoutesReady";
}

impl KnativeService {
    /// Fills Knative's defaults: traffic 100% to the latest revision when empty, and the
    /// revision spec defaults.
    pub fn apply_defaults(&mut self) {
        if self.spec.traffic.is_empty() {
            self.spec.traffic.push(TrafficTarget::latest_100());
        }
        self.spec.template.spec.apply_defaults();
    }
}

impl Validate for KnativeService {
    fn validate_at(&self, cx: &crate::validation::Context, path: &Path, errs: &mut FieldErrors) {
        let spec = path.field("spec");
        self.spec.template.validate(
            &cx.features,
            self.metadata.name.as_deref(),
            &spec.field("template"),
            errs,
        );
        validate_traffic(
            &self.spec.traffic,
            TrafficOwner::Service,
            &spec.field("traffic"),
            errs,
        );
    }
}

impl Unsupported for KnativeService {
    fn unsupported_fields(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        self.spec
            .template
            .unsupported_fields(&Path::root("spec.template"), &mut out);
        out
    }
}
