//! The `ferry` command line.
//!
//! Today it holds the manifest loader ([`manifest`]), `ferry validate`, `ferry send` ([`send`])
//! and `ferry tail` ([`tail`]). The CLI issue adds `ferry dev` (local mode: embedded broker,
//! dispatcher and revision runtime in one process), `ferry trace` and `ferry replay`.

#![forbid(unsafe_code)]

pub mod manifest;
pub mod send;
pub mod tail;
pub mod validate;
