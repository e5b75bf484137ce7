//! Test servers shared by Ferry's data-plane tests: a CloudEvents [`sink`] that records
//! requests and misbehaves on request, [`process`] helpers that run a Ferry binary, and
//! throw-away [`tls`] certificates.

pub mod process;
pub mod sink;
pub mod tls;
