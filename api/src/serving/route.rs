//! Route: names a set of revisions and splits traffic across them.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::traffic::{TrafficOwner, TrafficTarget, traffic_list_schema, validate_traffic};
use crate::duck::{Addressable, Status};
use crate::validation::{FieldErrors, Path, Validate};

/// Desired state of a Route (Knative `RouteSpec`).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "serving.knative.dev",
    version = "v1",
    kind = "Route",
    namespaced,
    status = "RouteStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "rt",
    category = "all",
    category = "knative",
    category = "serving",
    doc = "Route maps a URL to one or more revisions and splits traffic across them by percent, with tags for addressing a revision on its own.",
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
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
pub struct RouteSpec {
    /// Traffic targets; percents sum to 100.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "traffic_list_schema")]
    pub traffic: Vec<TrafficTarget>,
}

/// Route fields of a status (inlined into Route and Service status).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RouteStatusFields {
    /// The route's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The route's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    /// Resolved traffic: concrete revision names, percents and tag URLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTarget>,
}

/// Observed state of a Route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RouteStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub status: Status,
    /// URL, address and resolved traffic.
    #[serde(flatten)]
    pub fields: RouteStatusFields,
}

/// Condition types a Route reports (Knative's set).
pub mod route_conditions {
    pub use crate::duck::READY;
    /// Every target resolved to a ready revision.
    pub const ALL_TRAFFIC_ASSIGNED: &str = "AllTrafficAssigned";
    /// The dispatcher routes by this route's split.
    pub const INGRESS_READY: &str = "IngressReady";
    /// TLS certificates (not managed by Ferry; reported True with a reason).
    pub const CERTIFICATE_PROVISIONED: &str = "CertificateProvisioned";
}

impl Validate for Route {
    fn validate_at(&self, _cx: &crate::validation::Context, path: &Path, errs: &mut FieldErrors) {
        validate_traffic(
            &self.spec.traffic,
            TrafficOwner::Route,
            &path.field("spec").field("traffic"),
            errs,
        );
    }
}
