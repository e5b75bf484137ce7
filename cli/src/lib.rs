//! The `ferry` command line.
//!
//! Today it holds the manifest loader ([`manifest`]) and `ferry validate`. The CLI issue adds
//! `ferry dev` (local mode: embedded broker, dispatcher and revision runtime in one process),
//! `ferry send`, `ferry tail`, `ferry trace` and `ferry replay` on top of the same loader.

#![forbid(unsafe_code)]

pub mod manifest;
pub mod validate;
