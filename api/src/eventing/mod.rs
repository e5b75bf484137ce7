//! `eventing.knative.dev/v1`: [`Broker`] and [`Trigger`].

mod broker;
mod defaults;
mod filter;
mod trigger;

pub use broker::{Broker, BrokerSpec, BrokerStatus, broker_conditions};
pub use defaults::{BrokerDefault, BrokerDefaults, ClassDefault, ConfigRef, DEFAULTS_KEY};
pub use filter::{SubscriptionsApiFilter, TriggerFilter, validate_attribute_name};
pub use trigger::{DeliveryOrder, Trigger, TriggerSpec, TriggerStatus, trigger_conditions};

/// Annotation that names the class of a Broker; Ferry claims `Ferry`.
pub const BROKER_CLASS_ANNOTATION: &str = "eventing.knative.dev/broker.class";
/// The broker class Ferry reconciles.
pub const FERRY_BROKER_CLASS: &str = "Ferry";
/// Trigger annotation selecting ordered or unordered delivery (Knative Kafka broker's name).
pub const DELIVERY_ORDER_ANNOTATION: &str = "kafka.eventing.knative.dev/delivery.order";
