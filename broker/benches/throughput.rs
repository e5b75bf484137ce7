//! Broker throughput benchmark: an rdkafka producer and consumer on loopback, 1 KiB records,
//! acks=all, for each flush policy, side by side with the machine's own limit for the same
//! fsync cadence (a loop that appends and fsyncs like the broker does).
//!
//!     cargo bench -p ferry-broker --bench throughput
//!
//! Environment: `FERRY_BENCH_SECONDS` (per phase, default 8), `FERRY_BENCH_POLICIES`
//! (default `always,interval:5,os`), `FERRY_BENCH_DATA_MB` (data written before the RSS
//! reading in the `os` run, default 1024).
//!
//! Phases per policy: (1) saturate — send as fast as librdkafka queues allow, for the time
//! given or until the data size is reached: records/s and MB/s; (2) open loop — send at half
//! the saturated rate on a fixed schedule and measure each record's latency from its
//! *scheduled* send time to its acknowledgement (no coordinated omission): p50/p99;
//! (3) consume everything from the start: MB/s; then the broker's RSS.

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};
use support::BrokerProcess;

const RECORD: usize = 1024;
const TOPIC: &str = "bench";

#[derive(Clone, Default)]
struct Latencies {
    acked: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    micros: Arc<Mutex<Vec<u64>>>,
}

impl ClientContext for Latencies {}
impl ProducerContext for Latencies {
    type DeliveryOpaque = Box<Option<Instant>>;
    fn delivery(&self, result: &DeliveryResult<'_>, scheduled: Box<Option<Instant>>) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.acked.fetch_add(1, Ordering::Relaxed);
        if let Some(at) = *scheduled {
            let us = u64::try_from(at.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.micros.lock().expect("lock").push(us);
        }
    }
}

fn producer(bootstrap: &str, ctx: Latencies) -> BaseProducer<Latencies> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "200000")
        .set("queue.buffering.max.kbytes", "524288")
        .set("message.timeout.ms", "60000")
        .create_with_context(ctx)
        .expect("producer")
}

fn send(p: &BaseProducer<Latencies>, payload: &[u8], scheduled: Option<Instant>) {
    let mut opaque = Box::new(scheduled);
    loop {
        match p.send(
            BaseRecord::with_opaque_to(TOPIC, opaque)
                .payload(payload)
                .key("k"),
        ) {
            Ok(()) => return,
            Err((_, rec)) => {
                opaque = rec.delivery_opaque;
                p.poll(Duration::from_millis(1));
            }
        }
    }
}

struct Saturated {
    records: u64,
    secs: f64,
}

fn saturate(bootstrap: &str, secs: f64, max_records: u64) -> Saturated {
    let ctx = Latencies::default();
    let p = producer(bootstrap, ctx.clone());
    let payload = vec![b'x'; RECORD];
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed().as_secs_f64() < secs && sent < max_records {
        for _ in 0..1000 {
            send(&p, &payload, None);
        }
        sent += 1000;
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(120)).expect("flush");
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(
        ctx.failed.load(Ordering::Relaxed),
        0,
        "no delivery failures"
    );
    Saturated {
        records: ctx.acked.load(Ordering::Relaxed),
        secs,
    }
}

fn open_loop(bootstrap: &str, rate: f64, secs: f64) -> (u64, u64, u64) {
    let ctx = Latencies::default();
    let p = producer(bootstrap, ctx.clone());
    let payload = vec![b'y'; RECORD];
    let start = Instant::now();
    let total = (rate * secs) as u64;
    for i in 0..total {
        let at = start + Duration::from_secs_f64(i as f64 / rate);
        let now = Instant::now();
        if at > now {
            p.poll(Duration::ZERO);
            std::thread::sleep(at - now);
        }
        send(&p, &payload, Some(at));
    }
    p.flush(Duration::from_secs(120)).expect("flush");
    let mut v = ctx.micros.lock().expect("lock").clone();
    v.sort_unstable();
    let pct = |q: f64| v[((v.len() as f64 - 1.0) * q) as usize];
    (pct(0.5), pct(0.99), total)
}

fn consume(bootstrap: &str, records: u64) -> f64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let start = Instant::now();
    let mut got = 0u64;
    let mut bytes = 0u64;
    while got < records {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            bytes += m.payload().map_or(0, <[u8]>::len) as u64;
            got += 1;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "consume stalled at {got}"
        );
    }
    bytes as f64 / start.elapsed().as_secs_f64() / 1e6
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The machine's limit: append 1 KiB records in `chunk`-byte writes to one file, with
/// fdatasync after every write (`always`), every `interval` from a second thread (group
/// commit), or never (`os`). Records/s.
fn fsync_limit(dir: &Path, policy: &str, chunk: usize, secs: f64) -> f64 {
    let path = dir.join(format!("limit-{}.log", policy.replace(':', "-")));
    let file = Arc::new(
        OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .expect("limit file"),
    );
    let buf = vec![b'z'; chunk.max(RECORD)];
    let stop = Arc::new(AtomicBool::new(false));
    let syncer = policy.strip_prefix("interval:").map(|ms| {
        let (file, stop) = (file.clone(), stop.clone());
        let every = Duration::from_millis(ms.parse().expect("ms"));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(every);
                file.sync_data().expect("fsync");
            }
        })
    });
    let start = Instant::now();
    let mut pos = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        file.write_all_at(&buf, pos).expect("write");
        pos += buf.len() as u64;
        if policy == "always" {
            file.sync_data().expect("fsync");
        }
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(s) = syncer {
        s.join().expect("syncer");
    }
    let _ = std::fs::remove_file(&path);
    (pos / RECORD as u64) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list of benchmarks
    }
    let secs: f64 = std::env::var("FERRY_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8.0);
    let data_mb: u64 = std::env::var("FERRY_BENCH_DATA_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let policies =
        std::env::var("FERRY_BENCH_POLICIES").unwrap_or_else(|_| "always,interval:5,os".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&root).expect("bench dir");
    let mut rows = Vec::new();
    for policy in policies.split(',') {
        let dir = tempfile::tempdir_in(&root).expect("tempdir");
        let broker = BrokerProcess::start(
            dir.path(),
            &["--flush", policy, "--segment-bytes", "268435456"],
        );
        let bs = broker.bootstrap();
        let max_records = if policy == "os" {
            data_mb * 1024
        } else {
            u64::MAX
        };
        let sat_secs = if policy == "os" { secs * 10.0 } else { secs };
        let sat = saturate(&bs, sat_secs, max_records);
        let rate = sat.records as f64 / sat.secs;
        let metrics = broker.admin_get("/metrics");
        let produce_requests = metric(
            &metrics,
            "ferry_broker_request_duration_seconds_count{api=\"Produce\"}",
        );
        let bytes_in = metric(&metrics, "ferry_broker_bytes_in_total");
        let chunk = (bytes_in / produce_requests.max(1.0)) as usize;
        let open_secs = secs.min(5.0);
        let (p50, p99, sent) = open_loop(&bs, rate * 0.5, open_secs);
        let pid = broker.pid();
        eprintln!(
            "{policy}: RssAnon before consuming {} MiB",
            status_kib(pid, "RssAnon:") / 1024
        );
        let consume_mb = consume(&bs, sat.records + sent);
        let (rss, anon) = (status_kib(pid, "VmRSS:"), status_kib(pid, "RssAnon:"));
        let limit = fsync_limit(&root, policy, chunk, open_secs);
        rows.push(format!(
            "| {policy} | {:.0} | {:.1} | {:.1} | {:.2} | {:.2} | {:.0} | {} | {} | {:.0} | {:.0} | {} | {:.0}% |",
            rate,
            rate * RECORD as f64 / 1e6,
            consume_mb,
            p50 as f64 / 1000.0,
            p99 as f64 / 1000.0,
            rate * 0.5,
            rss / 1024,
            anon / 1024,
            bytes_in / 1e6,
            limit,
            chunk / 1024,
            100.0 * rate / limit
        ));
        broker.stop();
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "| flush | produce rec/s | produce MB/s | consume MB/s | p50 ms | p99 ms | open-loop rate rec/s | RSS MiB | RssAnon MiB | data MB | limit rec/s | limit write KiB | broker/limit |").ok();
    writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|").ok();
    for r in rows {
        writeln!(out, "{r}").ok();
    }
}
