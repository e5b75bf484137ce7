//! Test servers shared by Ferry's data-plane tests: a CloudEvents [`sink`] that records
//! requests and misbehaves on request, and [`process`] helpers that run a Ferry binary.

pub mod process;
pub mod sink;
