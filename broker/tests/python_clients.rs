//! Real Python clients — kafka-python and confluent-kafka — against the broker: admin
//! create/delete, produce, consume in a group, commit; and the same over SASL SCRAM. The
//! interpreter comes from the venv
//! `scripts/test` builds (`target/pyenv`), or `FERRY_PYTHON`.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::BrokerProcess;

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("FERRY_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/pyenv/bin/python");
    assert!(
        venv.exists(),
        "no Python venv with the Kafka clients at {}; run scripts/test (it creates it) or set FERRY_PYTHON",
        venv.display()
    );
    venv
}

/// Runs `tests/python/<script>` with `args` and asserts it printed OK.
fn run_script(script: &str, args: &[&str]) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let out = Command::new(python())
        .arg(&script)
        .args(args)
        .output()
        .expect("run the Python clients");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("OK"),
        "python clients failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

#[test]
fn kafka_python_and_confluent_kafka_work_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &["--flush", "interval:5"]);
    run_script("clients.py", &[&broker.bootstrap()]);
    broker.stop();
}

#[test]
fn kafka_python_and_confluent_kafka_authenticate_with_scram() {
    let dir = tempfile::tempdir().expect("tempdir");
    let users = dir.path().join("users.txt");
    std::fs::write(&users, "py:py-s3cret\n").expect("users file");
    let broker = BrokerProcess::start(
        &dir.path().join("data"),
        &["--sasl-users", users.to_str().expect("utf-8")],
    );
    run_script("sasl.py", &[&broker.bootstrap(), "py", "py-s3cret"]);
    let metrics = broker.admin_get("/metrics");
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        assert!(
            metrics.contains(&format!(
                "ferry_broker_sasl_authentications_total{{mechanism=\"{mechanism}\",result=\"success\"}}"
            )),
            "{metrics}"
        );
    }
    broker.stop();
}

/// SCRAM users added, described and deleted with confluent-kafka's admin client; the store
/// survives a restart (`tests/python/scram_admin.py`).
#[test]
fn confluent_kafka_manages_scram_credentials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let users = dir.path().join("users.txt");
    std::fs::write(&users, "py:py-s3cret\n").expect("users file");
    let data = dir.path().join("data");
    let args = ["--sasl-users", users.to_str().expect("utf-8")];
    let broker = BrokerProcess::start(&data, &args);
    run_script(
        "scram_admin.py",
        &[&broker.bootstrap(), "py", "py-s3cret", "add"],
    );
    let kafka = broker.kafka;
    broker.stop();
    let broker = BrokerProcess::restart_after_stop(&data, kafka, &args);
    run_script(
        "scram_admin.py",
        &[&broker.bootstrap(), "py", "py-s3cret", "after-restart"],
    );
    broker.stop();
}

/// ACLs created, described and deleted with confluent-kafka's admin client, enforced on
/// produce and consume, kept across a restart (`tests/python/acls.py`).
#[test]
fn confluent_kafka_manages_acls_that_the_broker_enforces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let users = dir.path().join("users.txt");
    std::fs::write(&users, "admin:pw-s3cret\nalice:pw-s3cret\nbob:pw-s3cret\n").expect("users");
    let data = dir.path().join("data");
    let args = [
        "--sasl-users",
        users.to_str().expect("utf-8"),
        "--authorizer",
        "--super-users",
        "User:admin",
    ];
    let broker = BrokerProcess::start(&data, &args);
    run_script("acls.py", &[&broker.bootstrap(), "pw-s3cret", "grant"]);
    let kafka = broker.kafka;
    broker.stop();
    let broker = BrokerProcess::restart_after_stop(&data, kafka, &args);
    run_script(
        "acls.py",
        &[&broker.bootstrap(), "pw-s3cret", "after-restart"],
    );
    broker.stop();
}

#[test]
fn python_clients_find_records_by_time_inside_compressed_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &["--flush", "interval:5"]);
    run_script("timestamps.py", &[&broker.bootstrap()]);
    broker.stop();
}

#[test]
fn python_transactional_producers_fail_fast() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &[]);
    run_script("transactions.py", &[&broker.bootstrap()]);
    broker.stop();
}

#[test]
fn kafka_python_deletes_group_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &[]);
    run_script("group_offsets.py", &[&broker.bootstrap()]);
    broker.stop();
}

#[test]
fn confluent_kafka_alters_topic_configs_incrementally() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &[]);
    run_script("topic_configs.py", &[&broker.bootstrap()]);
    broker.stop();
}

#[test]
fn python_clients_delete_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &[]);
    run_script("delete_records.py", &[&broker.bootstrap()]);
    broker.stop();
}

#[test]
fn python_clients_read_authorized_operations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &[]);
    run_script("authorized_operations.py", &[&broker.bootstrap()]);
    broker.stop();
}

#[test]
fn python_clients_use_a_topics_compression_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &[]);
    run_script("compression.py", &[&broker.bootstrap()]);
    broker.stop();
}
