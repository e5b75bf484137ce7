//! Starts the real `ferry-broker` binary on 127.0.0.1 (port 0) for the integration tests.

#![allow(dead_code)]

pub mod clients;
pub mod requests;
// The library's own tmpfs helper, one file for unit and integration tests alike.
#[path = "../../src/storage/small_disk.rs"]
pub mod small_disk;
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

/// Runs the broker on `data_dir` with `extra` flags, expecting it to refuse to start: it must
/// exit unsuccessfully within 30 s. Returns what it wrote to stderr.
pub fn start_refused(data_dir: &Path, extra: &[&str]) -> String {
    start_refused_with_env(data_dir, extra, &[])
}

/// [`start_refused`] with extra environment variables.
pub fn start_refused_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> String {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferry-broker"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start ferry-broker");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ferry-broker still running after 30 s; it should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    assert!(
        !status.success(),
        "ferry-broker exited {status}; stderr:\n{stderr}"
    );
    stderr
}

impl BrokerProcess {
    /// Starts a broker on `data_dir` with extra flags.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_on(data_dir, "127.0.0.1:0", extra, &[])
    }

    /// Starts a broker on `data_dir` with extra flags and environment variables.
    pub fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_on(data_dir, "127.0.0.1:0", extra, env)
    }

    fn start_on(data_dir: &Path, listen: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
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
        let env = env.iter().map(|(k, v)| (*k, (*v).to_owned()));
        let process = Process::start(
            env!("CARGO_BIN_EXE_ferry-broker"),
            args,
            std::iter::once(("RUST_LOG", log)).chain(env),
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
        Self::start_on(data_dir, &kafka.to_string(), args, &[])
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
