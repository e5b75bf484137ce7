//! Trigger: a filtered subscription to a Broker.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{DELIVERY_ORDER_ANNOTATION, SubscriptionsApiFilter, TriggerFilter};
use crate::duck::{DeliverySpec, DeliveryStatus, Destination, KReference, Status};
use crate::validation::{
    FieldError, FieldErrors, Path, Unsupported, Validate, metadata_choice, unsupported,
};

/// Desired state of a Trigger (Knative `TriggerSpec`).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "eventing.knative.dev",
    version = "v1",
    kind = "Trigger",
    namespaced,
    status = "TriggerStatus",
    derive = "PartialEq",
    derive = "Default",
    category = "all",
    category = "knative",
    category = "eventing",
    doc = "Trigger represents a request to have events delivered to a subscriber from a Broker's event pool.",
    printcolumn(name = "Broker", type_ = "string", json_path = ".spec.broker"),
    printcolumn(
        name = "Subscriber_URI",
        type_ = "string",
        json_path = ".status.subscriberUri"
    ),
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
pub struct TriggerSpec {
    /// Name of the Broker (same namespace) this trigger receives events from. Immutable.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "spec.broker is immutable; create a new Trigger instead"}]))]
    pub broker: String,
    /// Cross-namespace broker reference (Knative's experimental feature; not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_ref: Option<KReference>,
    /// Exact-match attribute filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<TriggerFilter>,
    /// Subscriptions API filters; all must match. When set, `filter` is ignored (Knative).
    /// At most [`MAX_FILTERS`] entries, which bounds the CEL rule's cost on the API server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_FILTERS))]
    pub filters: Vec<SubscriptionsApiFilter>,
    /// Where matching events are delivered.
    pub subscriber: Destination,
    /// Delivery spec for this trigger; overrides the broker's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

/// Observed state of a Trigger (Knative `TriggerStatus`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub status: Status,
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
    /// The resolved dead-letter sink.
    #[serde(flatten)]
    pub delivery: DeliveryStatus,
}

/// Condition types a Trigger reports (Knative's set).
pub mod trigger_conditions {
    pub use crate::duck::READY;
    /// The broker exists and is ready.
    pub const BROKER_READY: &str = "BrokerReady";
    /// The subscriber resolved to a URL.
    pub const SUBSCRIBER_RESOLVED: &str = "SubscriberResolved";
    /// The `knative.dev/dependency` object, if any, is ready.
    pub const DEPENDENCY_READY: &str = "DependencyReady";
    /// The dispatcher runs this trigger's consumer group.
    pub const SUBSCRIPTION_READY: &str = "SubscriptionReady";
    /// The dead-letter sink resolved to a URL.
    pub const DEAD_LETTER_SINK_RESOLVED: &str = "DeadLetterSinkResolved";
}

/// Ordered or unordered delivery of a Trigger's events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryOrder {
    /// Events with the same partition key are delivered one at a time, in log order.
    Ordered,
    /// Events are delivered concurrently (bounded), in no particular order.
    #[default]
    Unordered,
}

impl DeliveryOrder {
    /// Parses `ordered` / `unordered`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ordered" => Some(DeliveryOrder::Ordered),
            "unordered" => Some(DeliveryOrder::Unordered),
            _ => None,
        }
    }
}

impl Trigger {
    /// Delivery order from the `kafka.eventing.knative.dev/delivery.order` annotation
    /// (unordered when absent, as in Knative's Kafka broker). Invalid values are reported by
    /// [`Validate`]; here they fall back to the default.
    pub fn delivery_order(&self) -> DeliveryOrder {
        self.delivery_order_choice().unwrap_or_default()
    }

    fn delivery_order_choice(&self) -> Result<DeliveryOrder, &str> {
        metadata_choice(
            self.metadata.annotations.as_ref(),
            DELIVERY_ORDER_ANNOTATION,
            DeliveryOrder::parse,
        )
    }
}

/// Most entries in `spec.filters` (the CRD's `maxItems`).
pub const MAX_FILTERS: usize = 64;

impl Validate for Trigger {
    fn validate_at(&self, _cx: &crate::validation::Context, path: &Path, errs: &mut FieldErrors) {
        if let Err(order) = self.delivery_order_choice() {
            errs.push(
                &path
                    .field("metadata")
                    .field("annotations")
                    .key(DELIVERY_ORDER_ANNOTATION),
                format!("`{order}` is not a delivery order"),
                "use `ordered` or `unordered`",
            );
        }
        let spec = path.field("spec");
        if self.spec.broker.is_empty() && self.spec.broker_ref.is_none() {
            errs.push(
                &spec.field("broker"),
                "is empty",
                "name the Broker in this namespace, e.g. broker: default",
            );
        }
        if !self.spec.broker.is_empty() && self.spec.broker_ref.is_some() {
            errs.push(
                &spec.field("brokerRef"),
                "is set together with broker",
                "set only `broker`",
            );
        }
        if let Some(filter) = &self.spec.filter {
            filter.validate(&spec.field("filter"), errs);
        }
        if self.spec.filters.len() > MAX_FILTERS {
            errs.push(
                &spec.field("filters"),
                format!("has {} entries", self.spec.filters.len()),
                format!("use at most {MAX_FILTERS}; combine conditions with `all` or `any`"),
            );
        }
        for (i, f) in self.spec.filters.iter().enumerate() {
            f.validate(&spec.field("filters").index(i), errs);
        }
        self.spec
            .subscriber
            .validate(&spec.field("subscriber"), errs);
        if let Some(delivery) = &self.spec.delivery {
            delivery.validate(&spec.field("delivery"), errs);
        }
    }
}

impl Unsupported for Trigger {
    fn unsupported_fields(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        if self.spec.broker_ref.is_some() {
            unsupported(
                &mut out,
                &Path::root("spec.brokerRef"),
                "cross-namespace brokers are not supported; use `broker` with a Broker in the Trigger's namespace",
            );
        }
        self.spec
            .subscriber
            .unsupported_fields(&Path::root("spec.subscriber"), &mut out);
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
