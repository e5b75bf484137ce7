//! `serving.knative.dev/v1`: [`KnativeService`] (kind `Service`), [`Configuration`],
//! [`Revision`] and [`Route`], plus the autoscaling annotations they carry.

pub mod autoscaling;
mod configuration;
pub mod domain;
pub mod features;
mod podspec;
mod revision;
mod route;
mod service;
mod traffic;

pub use configuration::{
    Configuration, ConfigurationSpec, ConfigurationStatus, ConfigurationStatusFields,
    configuration_conditions,
};
pub use revision::{
    CONFIGURATION_GENERATION_LABEL, CONFIGURATION_LABEL, Container, ContainerStatus,
    DEFAULT_CONTAINER_NAME, DEFAULT_TIMEOUT_SECONDS, MAX_CONTAINER_CONCURRENCY, Revision,
    RevisionSpec, RevisionStatus, RevisionTemplateSpec, SERVICE_LABEL, TemplateMetadata,
    revision_conditions,
};
pub use route::{Route, RouteSpec, RouteStatus, RouteStatusFields, route_conditions};
pub use service::{KnativeService, KnativeServiceStatus, ServiceSpec, service_conditions};
pub use traffic::{
    MAX_TRAFFIC_TARGETS, ResolvedTarget, TrafficOwner, TrafficTarget, UnresolvedTraffic,
    resolve_traffic, revision_name, validate_traffic,
};
