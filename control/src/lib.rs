//! Ferry's control plane without Kubernetes.
//!
//! Every decision the operator makes about what should exist is a pure function here — given
//! the declared objects and what was observed about them (topics, endpoints, replica counts,
//! dispatcher statistics, the compiled contract), it returns statuses and conditions, the
//! serving objects a Service owns, the topics to create and with how many partitions, the
//! scale of each revision and the contract's activation section. Two runners perform the
//! effects: the operator (kube writes, Deployments, the contract Secret) and `ferry dev`
//! (local processes, a contract file). So local mode and the cluster cannot disagree, and
//! every rule has one home with table tests. (The contract itself is compiled by
//! [`ferry_api::contract::compile`], which the dispatcher's types live beside; which objects go
//! into it is [`contract_inputs`], and which generation carries each object is
//! [`contract_ledger`].)
//!
//! Nothing here does I/O or reads a clock: time is passed in.

pub mod activation;
pub mod contract_inputs;
pub mod contract_ledger;
pub mod scaling;
pub mod serving;
pub mod status;
pub mod topics;
