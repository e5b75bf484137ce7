//! What every Ferry binary (`ferry-operator`, `ferry-dispatcher`, `ferry-broker`, `ferry`) does
//! around its own work, written once: logging set-up, waiting for SIGTERM or Ctrl-C, and
//! duration flags in the Go format Kubernetes components use (`500ms`, `10s`, `1m30s`), (feature
//! `kube`) the Kubernetes client, and (feature `otlp`) OpenTelemetry spans over OTLP.
//!
//! A binary's `main` is then: parse flags, [`logging::init`], start its work, await
//! [`shutdown::signal`], drain within a deadline, exit.

pub mod duration;
#[cfg(feature = "kube")]
pub mod kube_client;
pub mod logging;
pub mod shutdown;
#[cfg(feature = "otlp")]
pub mod telemetry;
