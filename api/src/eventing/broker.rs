//! Broker: an addressable event mesh backed by one topic.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{BROKER_CLASS_ANNOTATION, FERRY_BROKER_CLASS};
use crate::duck::{AddressStatus, DeliverySpec, DeliveryStatus, KReference, Status};
use crate::validation::{FieldError, FieldErrors, Path, Unsupported, Validate, unsupported};

/// Desired state of a Broker (Knative `BrokerSpec`).
///
/// Ferry reads `spec.config` as the Knative Kafka broker does: a ConfigMap with
/// `default.topic.partitions`, `default.topic.replication.factor` and `bootstrap.servers`.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "eventing.knative.dev",
    version = "v1",
    kind = "Broker",
    namespaced,
    status = "BrokerStatus",
    derive = "PartialEq",
    derive = "Default",
    category = "all",
    category = "knative",
    category = "eventing",
    doc = "Broker collects a pool of events that are consumable using Triggers. Ferry stores them in one topic of its Kafka-protocol log.",
    printcolumn(name = "URL", type_ = "string", json_path = ".status.address.url"),
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
pub struct BrokerSpec {
    /// A ConfigMap with the broker's topic settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<KReference>,
    /// Default delivery spec for the broker's Triggers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

/// Observed state of a Broker (Knative `BrokerStatus`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub status: Status,
    /// Where to send events (`status.address.url`).
    #[serde(flatten)]
    pub address: AddressStatus,
    /// The resolved dead-letter sink.
    #[serde(flatten)]
    pub delivery: DeliveryStatus,
}

/// Condition types a Broker reports (the Knative Kafka broker's set).
pub mod broker_conditions {
    pub use crate::duck::READY;
    /// `status.address` is set.
    pub const ADDRESSABLE: &str = "Addressable";
    /// `spec.config` was read and understood.
    pub const CONFIG_PARSED: &str = "ConfigParsed";
    /// The broker's topic exists.
    pub const TOPIC_READY: &str = "TopicReady";
    /// The contract that contains the broker was written.
    pub const CONFIG_MAP_UPDATED: &str = "ConfigMapUpdated";
    /// The dispatcher reports a contract generation that contains the broker.
    pub const DATA_PLANE_AVAILABLE: &str = "DataPlaneAvailable";
    /// `spec.delivery.deadLetterSink` resolved to a URL.
    pub const DEAD_LETTER_SINK_RESOLVED: &str = "DeadLetterSinkResolved";
}

impl Broker {
    /// The value of the `eventing.knative.dev/broker.class` annotation, if any.
    pub fn class(&self) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(BROKER_CLASS_ANNOTATION))
            .map(String::as_str)
    }

    /// Whether Ferry reconciles this broker: class `Ferry`, or no class when Ferry is configured
    /// to claim class-less brokers.
    pub fn is_ferry_class(&self, claim_classless: bool) -> bool {
        match self.class() {
            Some(class) => class == FERRY_BROKER_CLASS,
            None => claim_classless,
        }
    }
}

impl Validate for Broker {
    fn validate_at(&self, _cx: &crate::validation::Context, path: &Path, errs: &mut FieldErrors) {
        let spec = path.field("spec");
        if let Some(config) = &self.spec.config {
            let at = spec.field("config");
            config.validate(&at, errs);
        }
        if let Some(delivery) = &self.spec.delivery {
            delivery.validate(&spec.field("delivery"), errs);
        }
    }
}

impl Unsupported for Broker {
    /// A `spec.config` that is not a ConfigMap (e.g. a RabbitmqBrokerConfig): valid Knative,
    /// read by other broker classes, but Ferry takes broker settings from a ConfigMap.
    fn unsupported_fields(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        if let Some(config) = &self.spec.config {
            let api_ok = config.api_version.as_deref().is_none_or(|v| v == "v1");
            if config.kind != "ConfigMap" || !api_ok {
                unsupported(
                    &mut out,
                    &Path::root("spec.config"),
                    &format!(
                        "it refers to {} {}, but Ferry reads broker settings from a ConfigMap: point it at a ConfigMap (apiVersion: v1, kind: ConfigMap)",
                        config.api_version.as_deref().unwrap_or(""),
                        config.kind
                    ),
                );
            }
        }
        out
    }
}
