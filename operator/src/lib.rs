//! Ferry's control plane: kube-runtime controllers for every Knative kind.
//!
//! Reconcile is read the world, decide with pure functions, write. The deciding lives in
//! [`ferry_control`]: [`status`] (conditions of every kind), [`serving`] (Configurations,
//! Routes, Revisions and the Deployments and Services they own), the contract's inputs and
//! ledger, topics and scale; the contract itself is [`ferry_api::contract::compile`], shared
//! with `ferry dev`. Here is the thin code that writes: [`controllers`] (one per kind, under
//! [`leader`] election), the contract's [`publisher`] and its [`contract_secret`], the
//! [`autoscale`] loop, the log's [`topics`], and the process around them ([`app`]).

#![forbid(unsafe_code)]

pub mod app;
pub mod args;
pub mod autoscale;
pub mod contract_secret;
pub mod controllers;
pub mod dispatchers;
pub mod error;
pub mod http;
pub mod leader;
pub mod publisher;
pub mod tasks;
pub mod topics;
pub mod world;

pub use error::{Error, Result};
pub use ferry_control::{serving, status};

/// Field manager of everything the operator writes.
pub const MANAGER: &str = "ferry-operator";
