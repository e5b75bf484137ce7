//! Knative's shared "duck" types: the shapes every kind reuses.
//!
//! [`Destination`] (where events go), [`DeliverySpec`] (how hard to try), the addressable status
//! fields, and Knative-style [`Condition`]s. Field names and JSON shapes follow
//! `knative.dev/pkg/apis/duck/v1` and `knative.dev/eventing/pkg/apis/duck/v1` exactly, so manifests
//! written for Knative parse unchanged.

mod condition;
mod delivery;
mod destination;

pub use condition::{Condition, ConditionStatus, ConditionType, READY, Severity, Status};
pub(crate) use delivery::duration_field;
pub use delivery::{BackoffPolicy, DeliveryFormat, DeliverySpec, DeliveryStatus};
pub(crate) use destination::is_absolute_url;
pub use destination::{
    AddressStatus, Addressable, CloudEventAttributes, CloudEventOverrides, Destination, KReference,
};
