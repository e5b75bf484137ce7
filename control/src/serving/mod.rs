//! Serving decisions, made the way Knative Serving's reconcilers make them: the Configuration
//! and Route a Service owns, the Revision a Configuration stamps, the Deployment and Service a
//! Revision runs on, the revisions a Route's traffic resolves to, and the status of each kind.
//!
//! Everything here is a pure function (objects in, objects out): the controllers read the
//! world, call these and write what they return. Status functions start from the object's
//! current status and set conditions through [`Status::set_condition`], so a condition's
//! `lastTransitionTime` only moves when its status does.
//!
//! [`Status::set_condition`]: ferry_api::duck::Status::set_condition
//!
//! The reference is knative/serving: `pkg/reconciler/service/resources` (owned objects),
//! `pkg/reconciler/configuration` (revision stamping, latest created and ready),
//! `pkg/reconciler/revision/resources` (the Deployment), `pkg/reconciler/route/traffic` (target
//! resolution) and `pkg/apis/serving/v1/*_lifecycle.go` (conditions, reasons and messages).

mod address;
mod labels;
mod owned;
mod route;
mod service;
mod workload;

pub use address::*;
pub use labels::{
    APP_LABEL, CONFIGURATION_UID_LABEL, DEFAULT_CLUSTER_DOMAIN, DEFAULT_PROGRESS_DEADLINE_SECONDS,
    DEFAULT_USER_PORT, REVISION_LABEL, REVISION_UID_LABEL, ROUTE_LABEL, SERVICE_UID_LABEL,
    USER_PORT_NAME, reasons,
};
pub use owned::*;
pub use route::*;
pub use service::*;
pub use workload::*;

#[cfg(test)]
mod tests;
