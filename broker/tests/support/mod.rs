//! Starts the real `ferry-broker` binary on 127.0.0.1 (port 0) for the integration tests.

#![allow(dead_code)]

pub mod clients;
pub mod wire;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[allow(unused_imports)] // Not every test binary polls.
pub use ferry_testkit::process::eventually;
use ferry_testkit::process::{Process, http_get};

/// A broker process; killed when dropped.
pub struct BrokerProcess {
    process: Process,
    /// Kafka listener.
    pub kafka: SocketAddr,
    /// Admin HTTP listener.
    pub admin: SocketAddr,
    data_dir: PathBuf,
}

impl BrokerProcess {
    /// Starts a broker on `data_dir` with extra flags.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_on(data_dir, "127.0.0.1:0", extra)
    }

    fn start_on(data_dir: &Path, listen: &str, extra: &[&str]) -> Self {
        let mut args: Vec<OsString> = [
            "--listen",
            listen,
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
        ]
        .map(OsString::from)
        .into();
        args.push(data_dir.into());
        args.extend(["--group-initial-rebalance-delay-ms", "0"].map(OsString::from));
        args.extend(extra.iter().map(OsString::from));
        let log = std::env::var("FERRY_TEST_LOG").unwrap_or_else(|_| "warn".into());
        let process = Process::start(
            env!("CARGO_BIN_EXE_ferry-broker"),
            args,
            [("RUST_LOG", log)],
        );
        BrokerProcess {
            kafka: process.addr("kafka"),
            admin: process.addr("admin"),
            process,
            data_dir: data_dir.to_owned(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.kafka.to_string()
    }

    /// Stops with SIGTERM and waits for a clean exit.
    pub fn stop(self) {
        self.process.stop();
    }

    /// Kills with SIGKILL (no chance to flush).
    pub fn kill9(self) {
        self.process.kill9();
    }

    /// Starts again on the same data directory and port, with the same flags.
    pub fn restart_after_stop(data_dir: &Path, kafka: SocketAddr, args: &[&str]) -> Self {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // The old socket may linger briefly; retry the bind.
            if std::net::TcpListener::bind(kafka).is_ok() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Self::start_on(data_dir, &kafka.to_string(), args)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// GETs a path on the admin port.
    pub fn admin_get(&self, path: &str) -> String {
        http_get(self.admin, path)
    }
}
