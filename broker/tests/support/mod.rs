//! Starts the real `ferry-broker` binary on 127.0.0.1 (port 0) for the integration tests.

#![allow(dead_code)]

pub mod wire;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A broker process; killed when dropped.
pub struct BrokerProcess {
    child: Child,
    /// Kafka listener.
    pub kafka: SocketAddr,
    /// Admin HTTP listener.
    pub admin: SocketAddr,
    data_dir: PathBuf,
    args: Vec<String>,
}

impl BrokerProcess {
    /// Starts a broker on `data_dir` with extra flags.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_on(
            data_dir,
            "127.0.0.1:0",
            extra.iter().map(|s| (*s).to_owned()).collect(),
        )
    }

    fn start_on(data_dir: &Path, listen: &str, args: Vec<String>) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferry-broker"))
            .arg("--listen")
            .arg(listen)
            .arg("--admin-listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--group-initial-rebalance-delay-ms")
            .arg("0")
            .args(&args)
            .env(
                "RUST_LOG",
                std::env::var("FERRY_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ferry-broker");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let field = |name: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                .parse()
                .expect("address")
        };
        let (kafka, admin) = (field("kafka="), field("admin="));
        BrokerProcess {
            child,
            kafka,
            admin,
            data_dir: data_dir.to_owned(),
            args,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.kafka.to_string()
    }

    /// Stops with SIGTERM and waits for a clean exit.
    pub fn stop(mut self) {
        signal(&self.child, "TERM");
        let status =
            wait(&mut self.child, Duration::from_secs(20)).expect("broker exits after SIGTERM");
        assert!(status.success(), "clean shutdown exits 0, got {status}");
    }

    /// Kills with SIGKILL (no chance to flush).
    pub fn kill9(mut self) {
        signal(&self.child, "KILL");
        let _ = wait(&mut self.child, Duration::from_secs(10));
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
        Self::start_on(
            data_dir,
            &kafka.to_string(),
            args.iter().map(|s| (*s).to_owned()).collect(),
        )
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// GETs a path on the admin port.
    pub fn admin_get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.admin).expect("admin connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        out
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
}

fn wait(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Polls `f` until it returns `Some`, or panics after `timeout` naming `what`.
pub fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
