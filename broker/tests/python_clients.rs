//! Real Python clients — kafka-python and confluent-kafka — against the broker: admin
//! create/delete, produce, consume in a group, commit. The interpreter comes from the venv
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

#[test]
fn kafka_python_and_confluent_kafka_work_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &["--flush", "interval:5"]);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/clients.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(broker.bootstrap())
        .output()
        .expect("run the Python clients");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("OK"),
        "python clients failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    broker.stop();
}
