//! Failing disks, against the real broker process: a partition whose log cannot be written is
//! fenced and shows in `/readyz` and the metrics; recovery drops a torn tail but refuses
//! corruption in the middle unless allowed; a full disk answers produce with a retriable
//! error, loses nothing acknowledged, and the broker takes writes again once space is freed.

mod support;

use std::path::Path;

use support::clients::create_topic;
use support::small_disk::SmallDisk;
use support::wire::{Wire, batch_at, batches_of, fetch_one, list_offset, produce};
use support::{BrokerProcess, start_refused};

const KAFKA_STORAGE_ERROR: i16 = 56;
const FIRST_LOG: &str = "00000000000000000000.log";

/// A record batch of `values` stamped now (an old timestamp would roll a segment per batch
/// and let retention delete them).
fn batch(values: &[&str]) -> bytes::Bytes {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    batch_at(values, i64::try_from(now.as_millis()).expect("ms"))
}

fn log_path(data_dir: &Path, topic: &str, partition: i32) -> std::path::PathBuf {
    data_dir
        .join("topics")
        .join(topic)
        .join(partition.to_string())
        .join(FIRST_LOG)
}

/// The latest offset of a partition (its high watermark).
fn end_offset(w: &mut Wire, topic: &str, partition: i32) -> i64 {
    let (error, offset, _) = list_offset(w, topic, partition, -1, 1);
    assert_eq!(error, 0, "ListOffsets {topic}-{partition}");
    offset
}

/// Every batch's (base offset, records) of a partition, read from offset 0 to the end.
fn read_batches(w: &mut Wire, topic: &str, partition: i32) -> Vec<(i64, i32)> {
    let end = end_offset(w, topic, partition);
    let mut out: Vec<(i64, i32)> = Vec::new();
    let mut next = 0;
    for _ in 0..10_000 {
        if next >= end {
            return out;
        }
        let data = fetch_one(w, topic, partition, next);
        assert_eq!(data.error_code, 0, "fetch {topic}-{partition} at {next}");
        let got = batches_of(&data.records.expect("records"));
        let (base, count) = *got.last().expect("a batch below the end");
        next = base + i64::from(count);
        out.extend(got);
    }
    panic!("{topic}-{partition}: still reading after 10000 fetches");
}

fn metric_line(broker: &BrokerProcess, prefix: &str) -> String {
    let text = broker.admin_get("/metrics");
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
        .to_owned()
}

#[test]
fn a_partition_whose_log_cannot_be_written_is_fenced_and_unready() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &[]);
    create_topic(&broker.bootstrap(), "disk", 2);
    broker.stop();
    // Writes to /dev/full fail with ENOSPC, and it cannot be cut back: the failure cannot be
    // undone, so the partition must stop taking writes.
    let log = log_path(dir.path(), "disk", 0);
    std::fs::remove_file(&log).expect("remove the log");
    std::os::unix::fs::symlink("/dev/full", &log).expect("symlink");

    let broker = BrokerProcess::start(dir.path(), &[]);
    assert!(
        broker.admin_get("/readyz").contains(" 200 "),
        "ready at start"
    );
    let mut w = Wire::connect(broker.kafka);
    for attempt in 0..2 {
        let (error, _) = produce(&mut w, "disk", 0, batch(&["lost"]));
        assert_eq!(error, KAFKA_STORAGE_ERROR, "attempt {attempt}");
    }
    assert_eq!(
        produce(&mut w, "disk", 1, batch(&["kept"])),
        (0, 0),
        "the other partition still takes writes"
    );
    assert_eq!(end_offset(&mut w, "disk", 0), 0, "nothing acknowledged");

    let ready = broker.admin_get("/readyz");
    assert!(ready.contains(" 503 "), "{ready}");
    assert!(
        ready.contains("disk-0") && !ready.contains("disk-1"),
        "{ready}"
    );
    assert!(broker.admin_get("/healthz").contains(" 200 "), "still live");
    assert_eq!(
        metric_line(&broker, "ferry_broker_partitions_fenced "),
        "ferry_broker_partitions_fenced 1"
    );
    assert_eq!(
        metric_line(
            &broker,
            "ferry_broker_storage_write_failures_total{store=\"log\",outcome=\"fenced\"}"
        ),
        "ferry_broker_storage_write_failures_total{store=\"log\",outcome=\"fenced\"} 1"
    );
}

#[test]
fn recovery_drops_a_torn_tail_and_refuses_corruption_in_the_middle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &[]);
    create_topic(&broker.bootstrap(), "rec", 1);
    let mut w = Wire::connect(broker.kafka);
    for i in 0..10 {
        let (error, base) = produce(&mut w, "rec", 0, batch(&[&format!("value-{i}")]));
        assert_eq!((error, base), (0, i));
    }
    drop(w);
    broker.stop();
    let log = log_path(dir.path(), "rec", 0);
    let clean = std::fs::read(&log).expect("log");
    let per_batch = clean.len() / 10;

    // A torn tail (the last write, incomplete): dropped, logged and counted; the broker starts.
    let mut torn = clean.clone();
    torn.extend_from_slice(&clean[..per_batch / 2]);
    std::fs::write(&log, &torn).expect("tear");
    let broker = BrokerProcess::start(dir.path(), &[]);
    assert_eq!(
        metric_line(
            &broker,
            "ferry_broker_recovery_truncated_bytes_total{store=\"log\",reason=\"torn_tail\"}"
        ),
        format!(
            "ferry_broker_recovery_truncated_bytes_total{{store=\"log\",reason=\"torn_tail\"}} {}",
            per_batch / 2
        )
    );
    let mut w = Wire::connect(broker.kafka);
    assert_eq!(read_batches(&mut w, "rec", 0).len(), 10, "all ten kept");
    drop(w);
    broker.stop();
    assert_eq!(
        std::fs::read(&log).expect("log"),
        clean,
        "cut to the clean end"
    );

    // A flipped byte in batch 3 of 10: six valid batches follow; the broker refuses to start.
    let mut corrupt = clean.clone();
    corrupt[per_batch * 3 + 40] ^= 0x55;
    std::fs::write(&log, &corrupt).expect("corrupt");
    let stderr = start_refused(dir.path(), &[]);
    for want in [
        log.display().to_string(),
        format!("byte {}", per_batch * 3),
        "--truncate-corrupt-segments".to_owned(),
    ] {
        assert!(stderr.contains(&want), "missing {want:?} in:\n{stderr}");
    }
    assert_eq!(std::fs::read(&log).expect("log"), corrupt, "left as found");

    // Allowed explicitly: the log is cut before batch 3, and the cut is counted.
    let broker = BrokerProcess::start(dir.path(), &["--truncate-corrupt-segments"]);
    assert_eq!(
        metric_line(
            &broker,
            "ferry_broker_recovery_truncated_bytes_total{store=\"log\",reason=\"corrupt\"}"
        ),
        format!(
            "ferry_broker_recovery_truncated_bytes_total{{store=\"log\",reason=\"corrupt\"}} {}",
            per_batch * 7
        )
    );
    let mut w = Wire::connect(broker.kafka);
    assert_eq!(end_offset(&mut w, "rec", 0), 3);
    assert_eq!(produce(&mut w, "rec", 0, batch(&["after"])), (0, 3));
}

#[test]
fn a_full_disk_refuses_produce_loses_nothing_and_recovers_when_freed() {
    let Some(disk) = SmallDisk::mount(2 << 20) else {
        return;
    };
    let data = disk.path().join("data");
    let broker = BrokerProcess::start(&data, &["--flush", "always"]);
    create_topic(&broker.bootstrap(), "full", 1);
    // Take the disk but 8 pages.
    let filler = disk.fill();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .expect("filler");
    let len = file.metadata().expect("meta").len();
    file.set_len(len.saturating_sub(8 * 4096))
        .expect("free 8 pages");

    let mut w = Wire::connect(broker.kafka);
    let value = "x".repeat(1000);
    let mut acked = Vec::new();
    let mut refused = None;
    for i in 0..200 {
        match produce(&mut w, "full", 0, batch(&[&value, &value])) {
            (0, base) => acked.push(base),
            (error, _) => {
                refused = Some((i, error));
                break;
            }
        }
    }
    let (at, error) = refused.expect("the disk fills within 200 produces");
    assert_eq!(error, KAFKA_STORAGE_ERROR, "after {at} produces");
    assert!(!acked.is_empty(), "some produces fit");
    // The refusal is retriable: the partition is not fenced, and stays so while full.
    for _ in 0..3 {
        assert_eq!(
            produce(&mut w, "full", 0, batch(&[&value, &value])).0,
            error
        );
    }
    assert!(broker.admin_get("/readyz").contains(" 200 "), "not fenced");
    assert_eq!(end_offset(&mut w, "full", 0), 2 * acked.len() as i64);
    let rolled_back = metric_line(
        &broker,
        "ferry_broker_storage_write_failures_total{store=\"log\",outcome=\"rolled_back\"}",
    );
    assert!(rolled_back.ends_with(" 4"), "{rolled_back}");

    // Space freed: the same produce succeeds, right after the last acknowledged one.
    file.set_len(0).expect("free the disk");
    let (error, base) = produce(&mut w, "full", 0, batch(&[&value, &value]));
    assert_eq!((error, base), (0, 2 * acked.len() as i64));
    acked.push(base);
    drop(w);

    // After a crash, every acknowledged batch is there, in order, and nothing else.
    let kafka = broker.kafka;
    broker.kill9();
    let broker = BrokerProcess::restart_after_stop(&data, kafka, &["--flush", "always"]);
    let mut w = Wire::connect(broker.kafka);
    let stored = read_batches(&mut w, "full", 0);
    let want: Vec<(i64, i32)> = acked.iter().map(|b| (*b, 2)).collect();
    assert_eq!(stored, want);
}
