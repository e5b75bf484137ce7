//! `ferry-broker`: Ferry's embedded log, as a server binary.
//!
//! The storage layer is being built in the library (`ferry_broker::storage`); the Kafka
//! protocol server that this binary will run (`--listen`, `--data-dir`, `--flush`, …) is not
//! built yet. See the broker issue.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("ferry-broker: the Kafka protocol server is not built yet (see the broker issue).");
    ExitCode::from(1)
}
