//! Subscription: connects a channel to a subscriber and, optionally, a reply target.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duck::{DeliverySpec, Destination, Status};
use crate::validation::{FieldError, FieldErrors, Path, Unsupported, Validate};

/// Desired state of a Subscription (Knative `messaging/v1 SubscriptionSpec`).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "messaging.knative.dev",
    version = "v1",
    kind = "Subscription",
    namespaced,
    status = "SubscriptionStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "sub",
    category = "all",
    category = "knative",
    category = "messaging",
    doc = "Subscription routes events received on a Channel to a subscriber, and the subscriber's replies to a reply destination.",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionSpec {
    /// The channel to subscribe to (kind, apiVersion, name). Immutable.
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "spec.channel is immutable; create a new Subscription instead"}]))]
    pub channel: ObjectReference,
    /// Where events from the channel are delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber: Option<Destination>,
    /// Where the subscriber's replies go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Destination>,
    /// Delivery spec for this subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

/// Observed state of a Subscription.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub status: Status,
    /// The resolved URLs.
    #[serde(default)]
    pub physical_subscription: PhysicalSubscription,
}

/// The fully resolved URLs of a Subscription.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhysicalSubscription {
    /// Resolved subscriber URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_uri: Option<String>,
    /// Resolved reply URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_uri: Option<String>,
    /// Resolved dead-letter sink URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink_uri: Option<String>,
}

/// Condition types a Subscription reports (Knative's set).
pub mod subscription_conditions {
    pub use crate::duck::READY;
    /// Subscriber, reply and dead-letter sink resolved.
    pub const REFERENCES_RESOLVED: &str = "ReferencesResolved";
    /// The subscriber was added to the channel's spec.
    pub const ADDED_TO_CHANNEL: &str = "AddedToChannel";
    /// The channel reports this subscriber ready.
    pub const CHANNEL_READY: &str = "ChannelReady";
}

impl Validate for Subscription {
    fn validate_at(&self, _cx: &crate::validation::Context, path: &Path, errs: &mut FieldErrors) {
        let spec = path.field("spec");
        let channel = &self.spec.channel;
        let at = spec.field("channel");
        for (field, value, fix) in [
            ("name", &channel.name, "name the channel"),
            (
                "kind",
                &channel.kind,
                "set the channel kind, e.g. KafkaChannel",
            ),
            (
                "apiVersion",
                &channel.api_version,
                "set the channel apiVersion, e.g. messaging.knative.dev/v1beta1",
            ),
        ] {
            if value.as_deref().unwrap_or("").is_empty() {
                errs.push(&at.field(field), "is empty", fix);
            }
        }
        for (field, value) in [
            ("namespace", &channel.namespace),
            ("uid", &channel.uid),
            ("resourceVersion", &channel.resource_version),
            ("fieldPath", &channel.field_path),
        ] {
            if value.is_some() {
                errs.push(
                    &at.field(field),
                    "may not be set",
                    "a channel reference holds only kind, apiVersion and name (same namespace)",
                );
            }
        }
        if self.spec.subscriber.is_none() && self.spec.reply.is_none() {
            errs.push(
                &spec,
                "has neither subscriber nor reply",
                "set `subscriber`, `reply`, or both",
            );
        }
        if let Some(s) = &self.spec.subscriber {
            s.validate(&spec.field("subscriber"), errs);
        }
        if let Some(r) = &self.spec.reply {
            r.validate(&spec.field("reply"), errs);
        }
        if let Some(d) = &self.spec.delivery {
            d.validate(&spec.field("delivery"), errs);
        }
    }
}

impl Unsupported for Subscription {
    fn unsupported_fields(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        for (name, dest) in [
            ("subscriber", &self.spec.subscriber),
            ("reply", &self.spec.reply),
        ] {
            if let Some(d) = dest {
                d.unsupported_fields(&Path::root("spec").field(name), &mut out);
            }
        }
        if let Some(dls) = self
            .spec
            .delivery
            .as_ref()
            .and_then(|d| d.dead_letter_sink.as_ref())
        {
            dls.unsupported_fields(&Path::root("spec.delivery.deadLetterSink"), &mut out);
        }
        out
    }
}
