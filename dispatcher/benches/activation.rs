//! Activation benchmark: what the activator and the traffic split add to a warm revision, and
//! how long a cold start takes, everything on this machine.
//!
//!     cargo bench -p ferry-dispatcher --bench activation
//!
//! Environment: `FERRY_BENCH_RATE` (warm phase, events/s, default 500), `FERRY_BENCH_SECONDS`
//! (warm phase, default 10), `FERRY_BENCH_COLD_STARTS` (default 100).
//!
//! Warm: one stream of events, two Triggers on the same Broker — one delivers straight to a
//! sink URL, the other to a revision split 90/10 over two activated revisions whose replica is
//! the same sink. Each event reaches the sink twice; both arrivals are timed from the event's
//! scheduled send time, so the difference of the two distributions is what activation and the
//! split add (same run, same machine state).
//!
//! Cold: a revision at zero replicas; one event is posted; the bench plays the autoscaler and
//! the runtime: it waits for the demand to show on `/autoscaler/stats`, starts a real replica
//! process (the `event-recorder` example, release build), waits for its port, publishes the
//! endpoint in the contract, and times the delivery. Repeated, with the replica stopped in
//! between; every event must arrive.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use ferry_api::contract::{Activation, Contract, Egress, RevisionTarget, Target};
use support::{Dispatcher, Log, broker, contract, trigger};

/// Arrivals: (path, event id) → when.
#[derive(Default)]
struct Arrivals(Mutex<HashMap<(String, u64), Instant>>);

async fn record(
    State(arrivals): State<Arc<Arrivals>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> StatusCode {
    let now = Instant::now();
    if let Some(seq) = headers
        .get("ce-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
    {
        arrivals.0.lock().unwrap().insert((path, seq), now);
    }
    StatusCode::OK
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn post(client: &reqwest::Client, url: &str, seq: u64) -> u16 {
    client
        .post(url)
        .header("ce-specversion", "1.0")
        .header("ce-id", seq.to_string())
        .header("ce-source", "/bench")
        .header("ce-type", "bench")
        .body("{}")
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

fn revision(name: &str, url: &str, percent: u32) -> RevisionTarget {
    RevisionTarget {
        revision: name.into(),
        url: url.into(),
        percent,
    }
}

fn gate(url: &str, name: &str, endpoints: Vec<String>) -> Activation {
    Activation {
        url: url.into(),
        revision: format!("bench/{name}"),
        endpoints,
        container_concurrency: 0,
        ..Activation::default()
    }
}

async fn run() {
    let log = Log::start_with(&["--flush", "os"]).await;
    log.create_topic("warm", 1).await;
    log.create_topic("cold", 1).await;
    let (sink, arrivals) = serve_sink().await;
    let d = Dispatcher::start(&warm_contract(&log.bootstrap, &sink), &[]);
    let client = reqwest::Client::new();
    warm(&d, &client, &arrivals).await;
    let mut cold = ColdRevision {
        bootstrap: log.bootstrap.clone(),
        sink,
        generation: 10,
    };
    cold_starts(&d, &client, &mut cold).await;
}

/// The sink every path ends at, recording arrivals: its URL and what it recorded.
async fn serve_sink() -> (String, Arc<Arrivals>) {
    let arrivals = Arc::new(Arrivals::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/{path}", axum::routing::post(record))
        .with_state(arrivals.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (sink, arrivals)
}

/// Warm: one Broker, a Trigger to the sink direct and one to two activated revisions split
/// 90/10 whose replica is the same sink.
fn warm_contract(bootstrap: &str, sink: &str) -> Contract {
    let (rev_a, rev_b) = ("http://warm-a.bench.svc", "http://warm-b.bench.svc");
    let direct = trigger("direct", &format!("{sink}/direct"));
    let activated = Egress {
        destination: Target::Revisions(vec![
            revision("warm-a", rev_a, 90),
            revision("warm-b", rev_b, 10),
        ]),
        ..trigger("activated", &format!("{sink}/unused"))
    };
    Contract {
        activation: vec![
            gate(rev_a, "warm-a", vec![format!("{sink}/activated")]),
            gate(rev_b, "warm-b", vec![format!("{sink}/activated")]),
        ],
        ..contract(1, vec![broker("warm", bootstrap, vec![direct, activated])])
    }
}

/// Warm: direct vs activated + split, same events, latency from each event's scheduled send.
async fn warm(d: &Dispatcher, client: &reqwest::Client, arrivals: &Arrivals) {
    let rate = env_u64("FERRY_BENCH_RATE", 500);
    let seconds = env_u64("FERRY_BENCH_SECONDS", 10);
    let total = rate * seconds;
    // Warm-up: both egresses joined and delivering.
    for seq in 1_000_000..1_000_020 {
        post(client, &d.url("/default/warm"), seq).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let start = Instant::now();
    let scheduled = |seq: u64| start + Duration::from_nanos(seq * 1_000_000_000 / rate);
    let url = d.url("/default/warm");
    let mut tasks = Vec::new();
    for seq in 0..total {
        tokio::time::sleep_until(scheduled(seq).into()).await;
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move { post(&client, &url, seq).await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 202);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while arrivals.0.lock().unwrap().len() < 2 * total as usize + 40 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let latencies = |path: &str| {
        let map = arrivals.0.lock().unwrap();
        let mut ms: Vec<f64> = (0..total)
            .filter_map(|seq| {
                map.get(&(path.to_owned(), seq))
                    .map(|t| t.saturating_duration_since(scheduled(seq)).as_secs_f64() * 1000.0)
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        ms
    };
    let (plain, act) = (latencies("direct"), latencies("activated"));
    println!("warm: {rate} events/s for {seconds} s, each delivered twice (direct and activated)");
    println!("| path | delivered | p50 ms | p95 ms | p99 ms |");
    println!("|---|---|---|---|---|");
    for (name, v) in [
        ("direct URL", &plain),
        ("activated revisions, 90/10 split", &act),
    ] {
        println!(
            "| {name} | {} | {:.2} | {:.2} | {:.2} |",
            v.len(),
            quantile(v, 0.5),
            quantile(v, 0.95),
            quantile(v, 0.99)
        );
    }
    println!(
        "added by activation + split: p50 {:+.3} ms, p95 {:+.3} ms",
        quantile(&act, 0.5) - quantile(&plain, 0.5),
        quantile(&act, 0.95) - quantile(&plain, 0.95)
    );
}

/// The cold revision's contract, published generation after generation.
struct ColdRevision {
    bootstrap: String,
    sink: String,
    generation: u64,
}

impl ColdRevision {
    const URL: &str = "http://cold.bench.svc";

    /// Writes the next generation, the revision served by `endpoints` (none: at zero).
    fn publish(&mut self, d: &Dispatcher, endpoints: Vec<String>) {
        self.generation += 1;
        let egress = Egress {
            destination: Target::Revisions(vec![revision("cold", Self::URL, 100)]),
            ..trigger("cold", &format!("{}/unused", self.sink))
        };
        d.write_contract(&Contract {
            activation: vec![Activation {
                container_concurrency: 1,
                ..gate(Self::URL, "cold", endpoints)
            }],
            ..contract(
                self.generation,
                vec![broker("cold", &self.bootstrap, vec![egress])],
            )
        });
    }
}

/// One cold start's steps (ms).
struct ColdStart {
    /// Held → demand seen on /autoscaler/stats.
    demand: f64,
    /// Replica process boot (spawn → port answers).
    boot: f64,
    /// Endpoint published → delivered.
    publish: f64,
    /// Held → delivered.
    total: f64,
}

impl ColdStart {
    /// The steps, in the order of [`ColdStart::millis`].
    const STEPS: [&str; 4] = [
        "held → demand seen on /autoscaler/stats",
        "replica process boot (spawn → port answers)",
        "endpoint published → delivered (contract poll ≤ 100 ms)",
        "held → delivered (total)",
    ];

    fn millis(&self) -> [f64; 4] {
        [self.demand, self.boot, self.publish, self.total]
    }
}

/// Cold starts, `FERRY_BENCH_COLD_STARTS` of them, the revision back at zero in between.
async fn cold_starts(d: &Dispatcher, client: &reqwest::Client, cold: &mut ColdRevision) {
    let recorder = build_recorder();
    cold.publish(d, vec![]);
    d.wait_for_generation(cold.generation);
    let starts = env_u64("FERRY_BENCH_COLD_STARTS", 100);
    let mut timings = Vec::new();
    for i in 0..starts {
        if let Some(t) = cold_start(d, client, cold, &recorder, 2_000_000 + i).await {
            timings.push(t);
        }
        // Back to zero for the next round.
        cold.publish(d, vec![]);
        d.wait_for_generation(cold.generation);
    }
    print_cold_starts(d, starts, &timings);
}

/// Posts one event to the revision at zero and plays the autoscaler and the runtime: waits for
/// the demand, starts a replica, publishes its endpoint and waits for the delivery. `None`:
/// not delivered within 20 s.
async fn cold_start(
    d: &Dispatcher,
    client: &reqwest::Client,
    cold: &mut ColdRevision,
    recorder: &std::path::Path,
    seq: u64,
) -> Option<ColdStart> {
    assert_eq!(post(client, &d.url("/default/cold"), seq).await, 202);
    let held = Instant::now();
    // The autoscaler's view: demand at zero.
    while !d.admin_get("/autoscaler/stats").contains("\"waiting\":1") {
        assert!(held.elapsed() < Duration::from_secs(10), "no demand seen");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let demanded = Instant::now();
    let replica = Replica::start(recorder);
    let booted = Instant::now();
    cold.publish(d, vec![format!("http://127.0.0.1:{}", replica.port)]);
    let got = replica.received_one(held).await;
    let done = Instant::now();
    replica.stop();
    let ms = |from: Instant, to: Instant| to.duration_since(from).as_secs_f64() * 1000.0;
    got.then(|| ColdStart {
        demand: ms(held, demanded),
        boot: ms(demanded, booted),
        publish: ms(booted, done),
        total: ms(held, done),
    })
}

/// A replica process (the `event-recorder` example).
struct Replica {
    child: std::process::Child,
    port: u16,
}

impl Replica {
    /// Starts one; returns when its port answers.
    fn start(recorder: &std::path::Path) -> Replica {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(recorder)
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("event-recorder starts");
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(Duration::from_micros(200));
        }
        Replica { child, port }
    }

    /// Waits until the replica has recorded one event; `false` 20 s after `held`.
    async fn received_one(&self, held: Instant) -> bool {
        loop {
            let stats = reqwest::get(format!("http://127.0.0.1:{}/stats", self.port))
                .await
                .ok();
            let received = match stats {
                Some(r) => r.text().await.unwrap_or_default(),
                None => String::new(),
            };
            if received.contains("\"received\":1") {
                return true;
            }
            if held.elapsed() > Duration::from_secs(20) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn print_cold_starts(d: &Dispatcher, starts: u64, timings: &[ColdStart]) {
    println!();
    println!(
        "cold starts: {} of {starts} events delivered (0 lost is the target)",
        timings.len()
    );
    println!("| step | p50 ms | p95 ms | max ms |");
    println!("|---|---|---|---|");
    for (i, name) in ColdStart::STEPS.iter().enumerate() {
        let mut v: Vec<f64> = timings.iter().map(|t| t.millis()[i]).collect();
        v.sort_by(f64::total_cmp);
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} |",
            quantile(&v, 0.5),
            quantile(&v, 0.95),
            v.last().copied().unwrap_or(f64::NAN)
        );
    }
    println!(
        "dropped or dead-lettered: {}",
        d.metric("ferry_dispatcher_egress_events_total{egress=\"Trigger default/cold\",outcome=\"dropped\"}")
            + d.metric("ferry_dispatcher_egress_events_total{egress=\"Trigger default/cold\",outcome=\"dead_lettered\"}")
    );
}

/// Builds the example replica (release) and returns its path.
fn build_recorder() -> std::path::PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--quiet", "--release", "-p", "event-recorder"])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "event-recorder builds");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    target.join("release/event-recorder")
}
