//! Runs librdkafka's `test-runner` for one test number, bounded by a timeout, with its output
//! kept in a log file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::outcome::{self, Entry, Exit};

/// The broker version `test-runner` is told: Ferry serves Kafka 4.0's API floor (no record
/// formats v0/v1, Produce v3+, Fetch v4+), so tests take their Kafka 4.0 code paths.
pub const KAFKA_VERSION: &str = "4.0.0";

/// A built librdkafka `tests/` directory.
pub struct TestRunner {
    /// The `tests/` directory (the runner is started there: tests read fixtures from it).
    pub dir: PathBuf,
    /// Where the per-test logs go.
    pub logs: PathBuf,
    /// Per-test wall-clock bound.
    pub timeout: Duration,
}

/// One run: the summary rows, how the process ended and its last lines.
pub struct Run {
    pub entries: Vec<Entry>,
    pub exit: Exit,
    pub tail: String,
    pub log: PathBuf,
}

impl TestRunner {
    /// Runs test `number` (all its entries in `scenario`) in non-quick mode, with `conf` as
    /// its `test.conf`.
    ///
    /// # Panics
    /// When the runner cannot be started or its log cannot be written.
    pub fn run(&self, number: &str, scenario: &str, conf: &Path) -> Run {
        let log = self.logs.join(format!("{number}-{scenario}.log"));
        let report = self.logs.join(format!("{number}-{scenario}.json"));
        let _ = std::fs::remove_file(&report);
        let file = File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let err = file.try_clone().expect("clone the log file handle");
        let lib = |sub: &str| self.dir.join("..").join(sub);
        let library_path = std::env::join_paths([lib("src"), lib("src-cpp")]).expect("paths");
        // `-p1`: one test at a time; no `-Q` (quick) and no `-l`/`-L`: the full tests, those
        // against the broker and the local (mock cluster) ones alike.
        let mut child = Command::new(self.dir.join("test-runner"))
            .args(["-p1", "-s", scenario])
            .current_dir(&self.dir)
            .env("TESTS", number)
            .env("TEST_KAFKA_VERSION", KAFKA_VERSION)
            .env("RDKAFKA_TEST_CONF", conf)
            .env("TEST_REPORT", &report)
            .env("LD_LIBRARY_PATH", library_path)
            .env_remove("TEST_DEBUG")
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}/test-runner: {e}", self.dir.display()));
        let deadline = Instant::now() + self.timeout;
        let exit = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Exit::Code(status.code()),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Exit::TimedOut {
                        secs: self.timeout.as_secs(),
                    };
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(100)),
                Err(e) => panic!("wait for test-runner {number}: {e}"),
            }
        };
        let output = std::fs::read(&log).unwrap_or_default();
        let output = String::from_utf8_lossy(&output);
        let json = std::fs::read_to_string(&report).unwrap_or_default();
        Run {
            entries: outcome::entries(&output, &json, number),
            exit,
            tail: last_lines(&outcome::strip_ansi(&output), 3),
            log,
        }
    }
}

/// The last `n` non-empty lines, joined with ` / ` and cut to 400 characters (for the reason
/// of a crash or a timeout).
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let joined = lines[lines.len().saturating_sub(n)..].join(" / ");
    let start = joined.len().saturating_sub(400);
    let start = (start..joined.len())
        .find(|&i| joined.is_char_boundary(i))
        .unwrap_or(joined.len());
    joined[start..].to_owned()
}
