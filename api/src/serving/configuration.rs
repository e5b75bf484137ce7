//! Configuration: the latest desired state of an application; each change stamps a Revision.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::RevisionTemplateSpec;
use crate::duck::Status;
use crate::validation::{FieldError, FieldErrors, Path, Unsupported, Validate};

/// Desired state of a Configuration (Knative `ConfigurationSpec`).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "serving.knative.dev",
    version = "v1",
    kind = "Configuration",
    namespaced,
    status = "ConfigurationStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "config",
    shortname = "cfg",
    category = "all",
    category = "knative",
    category = "serving",
    doc = "Configuration holds the latest desired state of an application; every change to its template creates a new immutable Revision.",
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
pub struct ConfigurationSpec {
    /// The template revisions are stamped from.
    pub template: RevisionTemplateSpec,
}

/// Revision names a Configuration reports (inlined into Configuration and Service status).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationStatusFields {
    /// The newest revision that became ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_ready_revision_name: Option<String>,
    /// The newest revision stamped from the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_created_revision_name: Option<String>,
}

/// Observed state of a Configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConfigurationStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub status: Status,
    /// Latest created and ready revisions.
    #[serde(flatten)]
    pub fields: ConfigurationStatusFields,
}

/// Condition types a Configuration reports.
pub mod configuration_conditions {
    pub use crate::duck::READY;
}

impl Validate for Configuration {
    fn validate_at(&self, cx: &crate::validation::Context, path: &Path, errs: &mut FieldErrors) {
        self.spec.template.validate(
            &cx.features,
            self.metadata.name.as_deref(),
            &path.field("spec").field("template"),
            errs,
        );
    }
}

impl Unsupported for Configuration {
    fn unsupported_fields(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        self.spec
            .template
            .unsupported_fields(&Path::root("spec.template"), &mut out);
        out
    }
}
