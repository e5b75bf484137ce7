//! KafkaChannel: a channel backed by one topic of the log.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{SubscriberSpec, SubscriberStatus};
use crate::duck::{AddressStatus, DeliverySpec, DeliveryStatus, Status};
use crate::validation::{FieldErrors, Path, Validate};

/// Default partitions of a channel topic (Knative: 1).
pub const DEFAULT_NUM_PARTITIONS: i32 = 1;
/// Default replication factor of a channel topic (Knative: 1).
pub const DEFAULT_REPLICATION_FACTOR: i16 = 1;
/// Default retention of a channel topic (Knative: exactly 7 days).
pub const DEFAULT_RETENTION_DURATION: &str = "PT168H";

fn default_num_partitions() -> i32 {
    DEFAULT_NUM_PARTITIONS
}
fn default_replication_factor() -> i16 {
    DEFAULT_REPLICATION_FACTOR
}
fn default_retention_duration() -> String {
    DEFAULT_RETENTION_DURATION.to_owned()
}

/// Desired state of a KafkaChannel (Knative `KafkaChannelSpec`).
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "messaging.knative.dev",
    version = "v1beta1",
    kind = "KafkaChannel",
    namespaced,
    status = "KafkaChannelStatus",
    derive = "PartialEq",
    shortname = "kc",
    category = "all",
    category = "knative",
    category = "messaging",
    category = "channel",
    doc = "KafkaChannel is a channel whose events are stored in one topic of Ferry's Kafka-protocol log.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.address.url"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaChannelSpec {
    /// Partitions of the channel's topic. Immutable.
    #[serde(default = "default_num_partitions")]
    #[schemars(range(min = 1))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "spec.numPartitions is immutable"}]))]
    pub num_partitions: i32,
    /// Replication factor of the channel's topic. Immutable.
    #[serde(default = "default_replication_factor")]
    #[schemars(range(min = 1))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "spec.replicationFactor is immutable"}]))]
    pub replication_factor: i16,
    /// How long the topic keeps events, ISO-8601.
    #[serde(default = "default_retention_duration")]
    pub retention_duration: String,
    /// Subscribers, written by the Subscription controller.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscribers: Vec<SubscriberSpec>,
    /// Default delivery spec for subscribers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

impl Default for KafkaChannelSpec {
    fn default() -> Self {
        KafkaChannelSpec {
            num_partitions: DEFAULT_NUM_PARTITIONS,
            replication_factor: DEFAULT_REPLICATION_FACTOR,
            retention_duration: default_retention_duration(),
            subscribers: Vec::new(),
            delivery: None,
        }
    }
}

/// Observed state of a KafkaChannel (Knative `ChannelableStatus`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaChannelStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub status: Status,
    /// Where to send events.
    #[serde(flatten)]
    pub address: AddressStatus,
    /// Readiness per subscriber.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscribers: Vec<SubscriberStatus>,
    /// The resolved dead-letter sink.
    #[serde(flatten)]
    pub delivery: DeliveryStatus,
}

/// Condition types a KafkaChannel reports (the Knative Kafka channel's set).
pub mod kafka_channel_conditions {
    pub use crate::duck::READY;
    /// `status.address` is set.
    pub const ADDRESSABLE: &str = "Addressable";
    /// The channel's settings were read.
    pub const CONFIGURATION_READY: &str = "ConfigurationReady";
    /// The channel's topic exists.
    pub const TOPIC_READY: &str = "TopicReady";
    /// The dispatcher serves the channel.
    pub const CHANNEL_SERVICE_READY: &str = "ChannelServiceReady";
    /// The dead-letter sink resolved.
    pub const DEAD_LETTER_SINK_RESOLVED: &str = "DeadLetterSinkResolved";
}

impl Validate for KafkaChannel {
    fn validate_at(&self, _cx: &crate::validation::Context, path: &Path, errs: &mut FieldErrors) {
        let spec = path.field("spec");
        if self.spec.num_partitions < 1 {
            errs.push(
                &spec.field("numPartitions"),
                format!("must be at least 1 (got {})", self.spec.num_partitions),
                "set the number of partitions, e.g. 3",
            );
        }
        if self.spec.replication_factor < 1 {
            errs.push(
                &spec.field("replicationFactor"),
                format!("must be at least 1 (got {})", self.spec.replication_factor),
                "set the replication factor, 1 for the embedded broker",
            );
        }
        let retention = Some(self.spec.retention_duration.clone());
        let at = spec.field("retentionDuration");
        if crate::duck::duration_field(&retention, &at, errs).is_some_and(|d| d.is_zero()) {
            errs.push(
                &at,
                "must be longer than zero",
                "set how long events are kept, e.g. PT168H",
            );
        }
        if let Some(d) = &self.spec.delivery {
            d.validate(&spec.field("delivery"), errs);
        }
    }
}
