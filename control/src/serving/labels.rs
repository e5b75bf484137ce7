//! The labels, annotations, defaults and condition reasons of Knative Serving's objects, as
//! Knative spells them.

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

/// Label on the objects a Route owns (its placeholder Services) naming it.
pub const ROUTE_LABEL: &str = "serving.knative.dev/route";
pub(super) const ROUTING_STATE_LABEL: &str = "serving.knative.dev/routingState";
pub(super) const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
pub(super) const ROLLOUT_DURATION_ANNOTATIONS: &[&str] = &[
    "serving.knative.dev/rollout-duration",
    "serving.knative.dev/rolloutDuration",
];
pub(super) const UPDATER_ANNOTATION: &str = "serving.knative.dev/lastModifier";
pub(super) const CREATOR_ANNOTATION: &str = "serving.knative.dev/creator";
pub(super) const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";
/// Routing bookkeeping Knative keeps off a revision's Deployment and pods.
pub(super) const ROUTING_ANNOTATIONS: &[&str] = &[
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
