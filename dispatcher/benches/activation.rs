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

async fn run() {
    let log = Log::start_with(&["--flush", "os"]).await;
    log.create_topic("warm", 1).await;
    log.create_topic("cold", 1).await;
    let arrivals = Arc::new(Arrivals::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/{path}", axum::routing::post(record))
        .with_state(arrivals.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    // Warm: direct vs activated + split, same events.
    let (rev_a, rev_b) = ("http://warm-a.bench.svc", "http://warm-b.bench.svc");
    let direct = trigger("direct", &format!("{sink}/direct"));
    let activated = Egress {
        destination: Target::Revisions(vec![
            revision("warm-a", rev_a, 90),
            revision("warm-b", rev_b, 10),
        ]),
        ..trigger("activated", &format!("{sink}/unused"))
    };
    let gate = |url: &str, name: &str, endpoints: Vec<String>| Activation {
        url: url.into(),
        revision: format!("bench/{name}"),
        endpoints,
        container_concurrency: 0,
    };
    let warm = Contract {
        activation: vec![
            gate(rev_a, "warm-a", vec![format!("{sink}/activated")]),
            gate(rev_b, "warm-b", vec![format!("{sink}/activated")]),
        ],
        ..contract(
            1,
            vec![broker("warm", &log.bootstrap, vec![direct, activated])],
        )
    };
    let d = Dispatcher::start(&warm, &[]);
    let client = reqwest::Client::new();
    let rate = env_u64("FERRY_BENCH_RATE", 500);
    let seconds = env_u64("FERRY_BENCH_SECONDS", 10);
    let total = rate * seconds;
    // Warm-up: both egresses joined and delivering.
    for seq in 1_000_000..1_000_020 {
        post(&client, &d.url("/default/warm"), seq).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let start = Instant::now();
    let url = d.url("/default/warm");
    let mut tasks = Vec::new();
    for seq in 0..total {
        let at = start + Duration::from_nanos(seq * 1_000_000_000 / rate);
        tokio::time::sleep_until(at.into()).await;
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
                let scheduled = start + Duration::from_nanos(seq * 1_000_000_000 / rate);
                map.get(&(path.to_owned(), seq))
                    .map(|t| t.saturating_duration_since(scheduled).as_secs_f64() * 1000.0)
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

    // Cold starts.
    let recorder = build_recorder();
    let cold_url = "http://cold.bench.svc";
    let cold_egress = Egress {
        destination: Target::Revisions(vec![revision("cold", cold_url, 100)]),
        ..trigger("cold", &format!("{sink}/unused"))
    };
    let cold = |generation, endpoints: Vec<String>| Contract {
        activation: vec![Activation {
            container_concurrency: 1,
            ..gate(cold_url, "cold", endpoints)
        }],
        ..contract(
            generation,
            vec![broker("cold", &log.bootstrap, vec![cold_egress.clone()])],
        )
    };
    let mut generation = 10;
    d.write_contract(&cold(generation, vec![]));
    d.wait_for_generation(generation);
    let starts = env_u64("FERRY_BENCH_COLD_STARTS", 100);
    let (mut demand_ms, mut boot_ms, mut publish_ms, mut total_ms) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut delivered = 0;
    for i in 0..starts {
        let seq = 2_000_000 + i;
        assert_eq!(post(&client, &d.url("/default/cold"), seq).await, 202);
        let held = Instant::now();
        // The autoscaler's view: demand at zero.
        loop {
            let stats = d.admin_get("/autoscaler/stats");
            if stats.contains("\"waiting\":1") {
                break;
            }
            assert!(held.elapsed() < Duration::from_secs(10), "no demand seen");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let demanded = Instant::now();
        // The runtime: a replica process, ready when its port answers.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(&recorder)
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("event-recorder starts");
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(Duration::from_micros(200));
        }
        let booted = Instant::now();
        generation += 1;
        d.write_contract(&cold(generation, vec![format!("http://127.0.0.1:{port}")]));
        // Delivered when the replica has recorded it.
        let got = loop {
            let stats = reqwest::get(format!("http://127.0.0.1:{port}/stats"))
                .await
                .ok();
            let received = match stats {
                Some(r) => r.text().await.unwrap_or_default(),
                None => String::new(),
            };
            if received.contains("\"received\":1") {
                break true;
            }
            if held.elapsed() > Duration::from_secs(20) {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let done = Instant::now();
        if got {
            delivered += 1;
            demand_ms.push(demanded.duration_since(held).as_secs_f64() * 1000.0);
            boot_ms.push(booted.duration_since(demanded).as_secs_f64() * 1000.0);
            publish_ms.push(done.duration_since(booted).as_secs_f64() * 1000.0);
            total_ms.push(done.duration_since(held).as_secs_f64() * 1000.0);
        }
        // Back to zero for the next round.
        generation += 1;
        d.write_contract(&cold(generation, vec![]));
        d.wait_for_generation(generation);
        let _ = child.kill();
        let _ = child.wait();
    }
    println!();
    println!("cold starts: {delivered} of {starts} events delivered (0 lost is the target)");
    println!("| step | p50 ms | p95 ms | max ms |");
    println!("|---|---|---|---|");
    for (name, v) in [
        ("held → demand seen on /autoscaler/stats", &mut demand_ms),
        ("replica process boot (spawn → port answers)", &mut boot_ms),
        (
            "endpoint published → delivered (contract poll ≤ 100 ms)",
            &mut publish_ms,
        ),
        ("held → delivered (total)", &mut total_ms),
    ] {
        v.sort_by(f64::total_cmp);
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} |",
            quantile(v, 0.5),
            quantile(v, 0.95),
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
