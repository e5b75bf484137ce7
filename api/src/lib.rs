//! Ferry's API: the Knative-compatible resource types, the shared duck types, and pure
//! validation and defaulting.
//!
//! Every kind here has Knative's exact group, version, kind and field names, so manifests
//! written for Knative parse unchanged:
//!
//! | group/version | kinds |
//! |---|---|
//! | `eventing.knative.dev/v1` | [`Broker`](eventing::Broker), [`Trigger`](eventing::Trigger) |
//! | `messaging.knative.dev/v1` | [`Subscription`](messaging::Subscription) |
//! | `messaging.knative.dev/v1beta1` | [`KafkaChannel`](messaging::KafkaChannel) |
//! | `sources.knative.dev/v1`, `v1beta1` | [`KafkaSource`](sources::KafkaSource) |
//! | `serving.knative.dev/v1` | [`Service`](serving::KnativeService), [`Configuration`](serving::Configuration), [`Revision`](serving::Revision), [`Route`](serving::Route) |
//!
//! Nothing in this crate does I/O. Validation ([`validation::Validate`]) reports every invalid
//! field with its path and a fix; [`validation::Unsupported`] lists fields Ferry accepts (because
//! Knative has them) but does not act on, so the operator can report them instead of ignoring
//! them. [`cesql`] is the CloudEvents SQL parser and evaluator shared by validation and the
//! dispatcher. [`crds`] lists the CustomResourceDefinitions `crdgen` writes to `crds/`;
//! [`structural`] checks a manifest against them as the API server does.
//! [`kafka_auth`] holds the SASL/TLS settings of Kafka clients, shared by KafkaSources and the
//! contract. Functions that fail with one message return this crate's [`Error`].

#![forbid(unsafe_code)]
// kube-derive takes several `printcolumn(type_ = "string", ...)` in one `#[kube(...)]`; clippy
// reads the repeated `type_` key as a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

pub mod autoscaler;
pub mod cesql;
pub mod contract;
pub mod crds;
pub mod duck;
pub mod duration;
pub mod error;
pub mod eventing;
#[doc(hidden)]
pub mod fuzzing;
pub mod kafka_auth;
pub mod messaging;
pub mod observability;
pub mod reports;
pub mod resource;
pub mod serving;
pub mod sources;
pub mod structural;
pub mod validation;

pub use error::{Error, Result};
