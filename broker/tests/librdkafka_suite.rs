//! librdkafka's own numbered tests against `ferry-broker` (opt-in: set `FERRY_LIBRDKAFKA_TESTS`
//! to the `tests/` directory of a librdkafka checkout with a built `test-runner`, then run
//! `cargo test -p ferry-broker --release --test librdkafka_suite -- --ignored --nocapture`;
//! see docs/kafka-compatibility.md). Nothing of librdkafka is in this repository: the suite
//! runs what it is given.
//!
//! The broker runs on 127.0.0.1 with 4 partitions per auto-created topic, like librdkafka's
//! own `default` test scenario; a second one without topic auto-creation serves the
//! `noautocreate` scenario. Every number runs alone, in non-quick mode, bounded by a timeout.
//! `librdkafka/not_applicable.tsv` lists what cannot apply to a single-node broker without
//! transactions, with the reason: those numbers are not run, or run and are reported as not
//! applicable when they fail with the listed text. The test fails when any other number
//! fails, and prints the table either way.
//!
//! Optional: `FERRY_LIBRDKAFKA_ONLY=0001,0081` runs just those numbers (listed not-applicable
//! ones too); `FERRY_LIBRDKAFKA_TIMEOUT` (seconds per number, all its entries, default 900) and
//! `FERRY_LIBRDKAFKA_BUDGET` (seconds for the whole run, default 14400; numbers not started
//! within it are reported as failed, "not run"); `FERRY_LIBRDKAFKA_LOGS` (a directory for the
//! per-test logs and `results.md`; default under the target directory).

mod librdkafka;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferry_testkit::process::Process;
use librdkafka::outcome::{self, Outcome};
use librdkafka::runner::{KAFKA_VERSION, TestRunner};

const TESTS_VAR: &str = "FERRY_LIBRDKAFKA_TESTS";

/// A broker for one scenario, with the `test.conf` pointing at it. It runs with Kafka's
/// defaults (not the other broker tests' zero initial rebalance delay): librdkafka's group
/// tests expect members that join together to land in one generation.
struct ScenarioBroker {
    scenario: &'static str,
    /// Names its `test.conf` (two brokers may serve one scenario).
    label: &'static str,
    flags: Vec<String>,
    /// Lines added to its `test.conf` (client settings the broker requires).
    conf_extra: String,
    process: Process,
    kafka: SocketAddr,
    conf: PathBuf,
    _data: tempfile::TempDir,
}

impl ScenarioBroker {
    fn start(
        scenario: &'static str,
        label: &'static str,
        (flags, conf_extra): (Vec<String>, String),
        work: &Path,
    ) -> Self {
        let data = tempfile::tempdir().expect("tempdir");
        let data_dir = data.path().to_str().expect("a UTF-8 temp path");
        let args = [
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir,
        ];
        let log = std::env::var("FERRY_TEST_LOG").unwrap_or_else(|_| "warn".into());
        let process = Process::start(
            env!("CARGO_BIN_EXE_ferry-broker"),
            args.iter().copied().chain(flags.iter().map(String::as_str)),
            [("RUST_LOG", log)],
        );
        let kafka = process.addr("kafka");
        let conf = work.join(format!("{label}.test.conf"));
        std::fs::write(
            &conf,
            format!(
                "# Written by broker/tests/librdkafka_suite.rs for scenario {scenario} ({label}).\n\
                 bootstrap.servers={kafka}\n{conf_extra}"
            ),
        )
        .expect("write test.conf");
        ScenarioBroker {
            scenario,
            label,
            flags,
            conf_extra,
            process,
            kafka,
            conf,
            _data: data,
        }
    }

    fn answers(&self) -> bool {
        TcpStream::connect_timeout(&self.kafka, Duration::from_secs(2)).is_ok()
    }

    /// A fresh broker (and data directory) in place of one that stopped answering.
    fn restart(&mut self, work: &Path) {
        let setup = (
            std::mem::take(&mut self.flags),
            std::mem::take(&mut self.conf_extra),
        );
        *self = ScenarioBroker::start(self.scenario, self.label, setup, work);
    }

    fn stop(self) {
        self.process.stop();
    }
}

fn env_secs(name: &str, default: u64) -> Duration {
    let secs = std::env::var(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number of seconds"))
    });
    Duration::from_secs(secs)
}

fn table(results: &BTreeMap<String, Outcome>) -> String {
    let mut out = String::from("| test | result | reason |\n|---|---|---|\n");
    for (number, outcome) in results {
        let detail = outcome.detail().replace('|', "\\|");
        let _ = writeln!(out, "| {number} | {} | {detail} |", outcome.label());
    }
    let count = |label: &str| results.values().filter(|o| o.label() == label).count();
    let _ = writeln!(
        out,
        "\n{} pass, {} fail, {} skipped by test-runner, {} not applicable",
        count("pass"),
        count("fail"),
        count("skipped"),
        count("n/a")
    );
    out
}

#[test]
#[ignore = "needs a built librdkafka tests/ directory: set FERRY_LIBRDKAFKA_TESTS (docs/kafka-compatibility.md)"]
fn librdkafka_numbered_tests_pass_against_the_broker() {
    // Ignored unless asked for; asked for without its input, it fails rather than pass
    // having run nothing.
    let Some(dir) = std::env::var_os(TESTS_VAR) else {
        panic!(
            "{TESTS_VAR} is not set: point it at a librdkafka tests/ directory with a built \
             test-runner (see docs/kafka-compatibility.md)"
        );
    };
    let dir = PathBuf::from(dir);
    assert!(
        dir.join("test-runner").is_file(),
        "{TESTS_VAR}={} has no test-runner: build it there first (make -C tests build)",
        dir.display()
    );
    let only: Option<Vec<String>> = std::env::var("FERRY_LIBRDKAFKA_ONLY")
        .ok()
        .map(|v| v.split(',').map(|n| n.trim().to_owned()).collect());
    let not_applicable = librdkafka::not_applicable(librdkafka::NOT_APPLICABLE);
    let budget = env_secs("FERRY_LIBRDKAFKA_BUDGET", 4 * 3600);
    let logs = std::env::var_os("FERRY_LIBRDKAFKA_LOGS").map_or_else(
        || PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("librdkafka-suite"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&logs).expect("create the log directory");
    let runner = TestRunner {
        dir: dir.clone(),
        logs: logs.clone(),
        timeout: env_secs("FERRY_LIBRDKAFKA_TIMEOUT", 900),
    };

    // As librdkafka's own test clusters run: an authorizer that allows what no ACL names
    // (the admin tests create and delete ACLs).
    let flags = |extra: &[&str]| -> (Vec<String>, String) {
        let base = [
            "--default-partitions",
            "4",
            "--authorizer",
            "--allow-everyone-if-no-acl-found",
        ];
        let all = base.iter().chain(extra).map(|f| (*f).to_owned());
        (all.collect(), String::new())
    };
    let mut default = ScenarioBroker::start("default", "default", flags(&[]), &logs);
    // For [`librdkafka::FAST_GROUPS`]: groups rebalance as soon as a member joins.
    let mut fast_groups = ScenarioBroker::start(
        "default",
        "fastgroups",
        flags(&["--group-initial-rebalance-delay", "0s"]),
        &logs,
    );
    let mut no_auto_create = ScenarioBroker::start(
        "noautocreate",
        "noautocreate",
        flags(&["--auto-create-topics", "false"]),
        &logs,
    );
    // For [`librdkafka::SASL`]: every connection authenticates (SCRAM-SHA-512, or PLAIN).
    let users = logs.join("sasl.users");
    std::fs::write(&users, "librdkafka-tests:a password for the suite\n").expect("users file");
    let users = users.to_str().expect("a UTF-8 logs path");
    let (sasl_flags, _) = flags(&["--sasl-users", users]);
    let sasl_conf = "security.protocol=SASL_PLAINTEXT\nsasl.mechanisms=SCRAM-SHA-512\n\
                     sasl.username=librdkafka-tests\nsasl.password=a password for the suite\n";
    let mut sasl =
        ScenarioBroker::start("default", "sasl", (sasl_flags, sasl_conf.to_owned()), &logs);
    eprintln!(
        "librdkafka suite: {} as Kafka {KAFKA_VERSION}, brokers {} (default), {} (default, \
         fast groups), {} (noautocreate) and {} (SASL), logs in {}",
        dir.display(),
        default.kafka,
        fast_groups.kafka,
        no_auto_create.kafka,
        sasl.kafka,
        logs.display()
    );

    let started = Instant::now();
    let mut results = BTreeMap::new();
    for number in librdkafka::test_numbers(&dir) {
        let named = only.as_ref().map(|o| o.contains(&number));
        if named == Some(false) {
            continue;
        }
        if let (Some(listed), None) = (not_applicable.get(&number), named)
            && listed.expect.is_none()
        {
            let reason = listed.reason.clone();
            results.insert(number, Outcome::NotApplicable { reason });
            continue;
        }
        if started.elapsed() > budget {
            let reason = format!("not run: the {} s budget was spent", budget.as_secs());
            results.insert(number, Outcome::Failed { reason });
            continue;
        }
        let first = if librdkafka::FAST_GROUPS.contains(&number.as_str()) {
            &fast_groups
        } else if librdkafka::SASL.contains(&number.as_str()) {
            &sasl
        } else {
            &default
        };
        let mut run = runner.run(&number, first.scenario, &first.conf);
        if librdkafka::NO_AUTO_CREATE.contains(&number.as_str()) {
            let second = runner.run(&number, no_auto_create.scenario, &no_auto_create.conf);
            run.entries = outcome::merge(run.entries, second.entries);
            if second.exit != outcome::Exit::Code(Some(0)) {
                (run.exit, run.tail) = (second.exit, second.tail);
            }
        }
        let mut result =
            outcome::decide(&number, &run.entries, run.exit, &run.tail, &not_applicable);
        for broker in [
            &mut default,
            &mut fast_groups,
            &mut no_auto_create,
            &mut sasl,
        ] {
            if !broker.answers() {
                let reason = format!(
                    "ferry-broker ({}) stopped answering during this test; {}",
                    broker.label,
                    result.detail()
                );
                result = Outcome::Failed { reason };
                broker.restart(&logs);
            }
        }
        eprintln!("{number}: {result} [{}]", run.log.display());
        results.insert(number, result);
    }
    default.stop();
    fast_groups.stop();
    sasl.stop();
    no_auto_create.stop();

    let table = table(&results);
    std::fs::write(logs.join("results.md"), &table).expect("write results.md");
    println!("{table}");
    let failed: Vec<&String> = results
        .iter()
        .filter(|(_, o)| o.is_failure())
        .map(|(n, _)| n)
        .collect();
    assert!(
        failed.is_empty(),
        "librdkafka tests failed against ferry-broker: {failed:?} (table above; logs in {})",
        logs.display()
    );
}
