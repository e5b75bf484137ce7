//! Produce-ack latency per flush policy: closed-loop acks=all producers (each sends one
//! 1 KiB record, waits for its ack, repeats) against the release broker, 1 and 32 at a time,
//! all on one partition; p50/p99 of the ack latency and the fsyncs the broker ran. Printed
//! beside a probe of the disk itself: a 4 KiB write + fdatasync loop.
//!
//!     cargo bench -p ferry-broker --bench group_commit
//!
//! Environment: `FERRY_BENCH_SECONDS` (per cell, default 3), `FERRY_BENCH_POLICIES` (default
//! `always,interval:5,os`), `FERRY_BENCH_PRODUCERS` (default `1,32`).
//!
//! A peer in the same run: with `FERRY_BENCH_TANSU=/path/to/tansu` (the `tansu` broker from
//! crates.io, installed outside this repository with its `dynostore` and `libsql` features),
//! the same producers run against `tansu broker` for each storage engine of
//! `FERRY_BENCH_TANSU_STORAGE` (default `memory,sqlite`: `memory://tansu/` and a SQLite file
//! in a fresh directory), and the table ends with Ferry's figures as a ratio to tansu's.

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs::OpenOptions;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use std::sync::mpsc;

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use support::BrokerProcess;

const RECORD: usize = 1024;
const TOPIC: &str = "acks";

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The `q` quantile (0..=1) of sorted microseconds, in ms.
fn quantile_ms(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Signals each acknowledgement (a failed delivery ends the benchmark).
struct Acked(mpsc::Sender<()>);

impl ClientContext for Acked {}
impl ProducerContext for Acked {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            panic!("delivery failed: {e}");
        }
        let _ = self.0.send(());
    }
}

/// A producer whose own thread serves delivery reports as they arrive, and the receiver of
/// its acknowledgements.
fn producer(bootstrap: &str) -> (ThreadedProducer<Acked>, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel();
    let p = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "30000")
        .create_with_context(Acked(tx))
        .expect("producer");
    (p, rx)
}

/// Sends one record and waits for its acknowledgement.
fn send_and_wait(p: &ThreadedProducer<Acked>, acked: &mpsc::Receiver<()>, payload: &[u8]) {
    p.send(BaseRecord::<(), _>::to(TOPIC).payload(payload).partition(0))
        .expect("send");
    acked
        .recv_timeout(Duration::from_secs(30))
        .expect("acknowledged within 30 s");
}

/// `producers` closed-loop producers for `secs`: every ack latency, in µs, sorted; the
/// seconds measured; and fsyncs during them (by `fsyncs`, read at start and end).
fn closed_loop(
    bootstrap: &str,
    producers: usize,
    secs: f64,
    fsyncs: impl Fn() -> f64,
) -> (Vec<u64>, f64, f64) {
    let start = Arc::new(Barrier::new(producers + 1));
    let threads: Vec<_> = (0..producers)
        .map(|_| {
            let (bootstrap, start) = (bootstrap.to_owned(), start.clone());
            std::thread::spawn(move || {
                let (p, acked) = producer(&bootstrap);
                let payload = vec![b'x'; RECORD];
                // Connected and the topic known before the clock starts.
                send_and_wait(&p, &acked, &payload);
                start.wait();
                let until = Instant::now() + Duration::from_secs_f64(secs);
                let mut micros = Vec::new();
                while Instant::now() < until {
                    let sent = Instant::now();
                    send_and_wait(&p, &acked, &payload);
                    micros.push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
                }
                micros
            })
        })
        .collect();
    start.wait();
    let (began, synced_before) = (Instant::now(), fsyncs());
    let mut all: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("producer"))
        .collect();
    let took = began.elapsed().as_secs_f64();
    all.sort_unstable();
    (all, took, fsyncs() - synced_before)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// 4 KiB write + fdatasync, appending to one file for `secs`: sorted µs per iteration.
fn fdatasync_probe(dir: &Path, secs: f64) -> Vec<u64> {
    let path = dir.join("fdatasync-probe");
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .expect("probe file");
    let block = [0xA5u8; 4096];
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let (mut pos, mut micros) = (0u64, Vec::new());
    while Instant::now() < until {
        let t = Instant::now();
        file.write_all_at(&block, pos).expect("write");
        file.sync_data().expect("fdatasync");
        micros.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
        pos += block.len() as u64;
    }
    let _ = std::fs::remove_file(&path);
    micros.sort_unstable();
    micros
}

/// A `tansu broker` on 127.0.0.1 with one storage engine, killed when dropped.
struct Tansu {
    child: Child,
    bootstrap: String,
}

impl Tansu {
    fn start(bin: &str, storage: &str, dir: &Path) -> Tansu {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let engine = match storage {
            "memory" => "memory://tansu/".to_owned(),
            // A path relative to the working directory (the fresh `dir`).
            "sqlite" => "sqlite://tansu.db".to_owned(),
            other => other.to_owned(),
        };
        let log = std::fs::File::create(dir.join("tansu.log")).expect("tansu log");
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", &engine])
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("FERRY_BENCH_TANSU={bin}: cannot start it: {e}"));
        let tansu = Tansu {
            child,
            bootstrap: format!("127.0.0.1:{port}"),
        };
        let until = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&tansu.bootstrap).is_err() {
            assert!(
                Instant::now() < until,
                "tansu ({engine}) did not listen within 30 s; see {}",
                dir.join("tansu.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let created = Command::new(bin)
            .args([
                "topic",
                "create",
                TOPIC,
                "--partitions",
                "1",
                "--broker",
                &url,
            ])
            .output()
            .expect("tansu topic create");
        assert!(
            created.status.success(),
            "tansu topic create {TOPIC}: {}",
            String::from_utf8_lossy(&created.stderr)
        );
        tansu
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One row's figures: acks/s, p50 ms, p99 ms.
type Row = (f64, f64, f64);

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list of benchmarks
    }
    let secs: f64 = env_or("FERRY_BENCH_SECONDS", "3").parse().expect("seconds");
    let policies = env_or("FERRY_BENCH_POLICIES", "always,interval:5,os");
    let counts: Vec<usize> = env_or("FERRY_BENCH_PRODUCERS", "1,32")
        .split(',')
        .map(|n| n.parse().expect("producer count"))
        .collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&root).expect("bench dir");

    let mut out = std::io::stdout().lock();
    let probe = fdatasync_probe(&root, secs.min(2.0));
    writeln!(
        out,
        "fdatasync probe (4 KiB write + fdatasync, {} iterations): p50 {:.3} ms, p99 {:.3} ms\n",
        probe.len(),
        quantile_ms(&probe, 0.5),
        quantile_ms(&probe, 0.99)
    )
    .ok();
    writeln!(
        out,
        "| flush | producers | acks/s | p50 ms | p99 ms | fsyncs/s | acks per fsync |"
    )
    .ok();
    writeln!(out, "|---|---|---|---|---|---|---|").ok();
    let mut rows: Vec<(String, usize, Row)> = Vec::new();
    for policy in policies.split(',') {
        for &producers in &counts {
            let dir = tempfile::tempdir_in(&root).expect("tempdir");
            let broker = BrokerProcess::start(dir.path(), &["--flush", policy]);
            let fsyncs = || {
                metric(
                    &broker.admin_get("/metrics"),
                    "ferry_broker_fsync_duration_seconds_count",
                )
            };
            let (acks, took, synced) = closed_loop(&broker.bootstrap(), producers, secs, fsyncs);
            let rate = acks.len() as f64 / took;
            let per_fsync = if synced > 0.0 {
                format!("{:.1}", acks.len() as f64 / synced)
            } else {
                "–".to_owned()
            };
            writeln!(
                out,
                "| {policy} | {producers} | {rate:.0} | {:.2} | {:.2} | {:.0} | {per_fsync} |",
                quantile_ms(&acks, 0.5),
                quantile_ms(&acks, 0.99),
                synced / took,
            )
            .ok();
            out.flush().ok();
            rows.push((
                policy.to_owned(),
                producers,
                (rate, quantile_ms(&acks, 0.5), quantile_ms(&acks, 0.99)),
            ));
            broker.stop();
        }
    }
    let Ok(tansu) = std::env::var("FERRY_BENCH_TANSU") else {
        return;
    };
    let storages = env_or("FERRY_BENCH_TANSU_STORAGE", "memory,sqlite");
    let mut peers: Vec<(String, usize, Row)> = Vec::new();
    for storage in storages.split(',') {
        for &producers in &counts {
            let dir = tempfile::tempdir_in(&root).expect("tempdir");
            let peer = Tansu::start(&tansu, storage, dir.path());
            let (acks, took, _) = closed_loop(&peer.bootstrap, producers, secs, || 0.0);
            let rate = acks.len() as f64 / took;
            let (p50, p99) = (quantile_ms(&acks, 0.5), quantile_ms(&acks, 0.99));
            writeln!(
                out,
                "| tansu {storage} | {producers} | {rate:.0} | {p50:.2} | {p99:.2} | – | – |"
            )
            .ok();
            out.flush().ok();
            peers.push((storage.to_owned(), producers, (rate, p50, p99)));
        }
    }
    writeln!(
        out,
        "\n| Ferry flush | tansu storage | producers | acks/s Ferry / tansu | p50 Ferry / tansu | p99 Ferry / tansu |"
    )
    .ok();
    writeln!(out, "|---|---|---|---|---|---|").ok();
    for (policy, producers, (rate, p50, p99)) in &rows {
        for (storage, n, (peer_rate, peer_p50, peer_p99)) in &peers {
            if n == producers {
                writeln!(
                    out,
                    "| {policy} | {storage} | {producers} | {:.2}x | {:.2}x | {:.2}x |",
                    rate / peer_rate,
                    p50 / peer_p50,
                    p99 / peer_p99
                )
                .ok();
            }
        }
    }
}
