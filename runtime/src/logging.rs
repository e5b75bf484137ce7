//! Log set-up: `tracing` events to stderr, filtered by `RUST_LOG` (default `info`), with
//! terminal colours only when stderr is a terminal, so logs collected from pods and files are
//! plain text.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the process's `tracing` subscriber. Call once, first thing in `main`.
///
/// `default_filter` applies when `RUST_LOG` is unset or unreadable (e.g. `"info"`).
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // `try_init`: a second call (tests that start several components) keeps the first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
