//! The subscriber list a channel carries in its spec and reports in its status (Knative
//! `SubscribableSpec` / `SubscribableStatus`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duck::{ConditionStatus, DeliverySpec};

/// One subscriber of a channel, as the Subscription controller writes it into the channel's spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriberSpec {
    /// Name of the Subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// UID of the Subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Generation of the Subscription this entry was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Resolved subscriber URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_uri: Option<String>,
    /// CA certificates of the subscriber.
    #[serde(
        default,
        rename = "subscriberCACerts",
        skip_serializing_if = "Option::is_none"
    )]
    pub subscriber_ca_certs: Option<String>,
    /// OIDC audience of the subscriber.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_audience: Option<String>,
    /// Resolved reply URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_uri: Option<String>,
    /// CA certificates of the reply target.
    #[serde(
        default,
        rename = "replyCACerts",
        skip_serializing_if = "Option::is_none"
    )]
    pub reply_ca_certs: Option<String>,
    /// OIDC audience of the reply target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_audience: Option<String>,
    /// Delivery spec of this subscriber.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

/// Readiness of one subscriber as the channel reports it in `status.subscribers`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriberStatus {
    /// UID of the Subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Generation of the Subscription the channel acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `True` once the dispatcher delivers to this subscriber.
    #[serde(default)]
    pub ready: ConditionStatus,
    /// Why it is not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
