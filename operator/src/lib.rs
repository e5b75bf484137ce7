//! Ferry's control plane: kube-runtime controllers for every Knative kind.
//!
//! Reconcile is read the world, decide with pure functions, write. The deciding lives in
//! [`status`] (conditions of every kind), [`serving`] (Configurations, Routes, Revisions and the
//! Deployments and Services they own) and [`ferry_api::contract::compile`] (the data-plane
//! contract, shared with `ferry dev`); [`controllers`] holds the thin code that writes, under
//! [`leader`] election.

#![forbid(unsafe_code)]

pub mod app;
pub mod args;
pub mod autoscale;
pub mod controllers;
pub mod dispatchers;
pub mod http;
pub mod hub;
pub mod leader;
pub mod serving;
pub mod status;
pub mod topics;
pub mod world;
