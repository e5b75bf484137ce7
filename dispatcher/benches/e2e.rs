//! End-to-end dispatcher benchmark with an open-loop (fixed-rate) load generator, everything on
//! this machine: generator → ingress → embedded broker → egress → sink, and, in the same run, the
//! same generator posting straight to the same sink (the baseline).
//!
//!     cargo bench -p ferry-dispatcher --bench e2e
//!
//! Environment: `FERRY_BENCH_SECONDS` (per rate step, default 5), `FERRY_BENCH_RATES` (the
//! search ladder, default `1000,2000,5000,10000,15000,20000,25000,30000`),
//! `FERRY_BENCH_LAG_EVENTS` (default 1000000), `FERRY_BENCH_ORDERED_EVENTS` (default 30000).
//!
//! Latency of an event runs from its *scheduled* send time to its arrival at the sink, so a
//! stall is charged to every event it delays (no coordinated omission). Events are 1 KiB binary
//! CloudEvents. The broker runs in this process (library), the dispatcher is the release
//! binary in its own process so its RSS can be read from /proc.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use ferry_api::contract::{Contract, ContractResource, Egress};
use ferry_api::eventing::DeliveryOrder;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const EVENT_BYTES: usize = 1024;

/// The sink: records each event's latency from its scheduled send time.
#[derive(Default)]
struct SinkState {
    /// Phase start; event `seq` was scheduled at `start + seq / rate`.
    start: Mutex<Option<Instant>>,
    rate: AtomicU64,
    delay_ms: AtomicU64,
    micros: Mutex<Vec<u64>>,
    count: AtomicU64,
}

async fn sink(State(state): State<Arc<SinkState>>, headers: HeaderMap) -> StatusCode {
    let now = Instant::now();
    let delay = state.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let seq = headers
        .get("ce-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let start = *state.start.lock().unwrap();
    if let (Some(seq), Some(start)) = (seq, start) {
        let rate = state.rate.load(Ordering::Relaxed).max(1);
        let scheduled = start + Duration::from_nanos(seq * 1_000_000_000 / rate);
        let us = now.saturating_duration_since(scheduled).as_micros() as u64;
        state.micros.lock().unwrap().push(us);
    }
    state.count.fetch_add(1, Ordering::Relaxed);
    StatusCode::ACCEPTED
}

struct Phase {
    rate: u64,
    sent: u64,
    rejected: u64,
    delivered: u64,
    p50: f64,
    p99: f64,
    p999: f64,
    /// Scheduled send → HTTP response (the ingress acknowledgement), p50 / p99.
    ack: (f64, f64),
}

fn quantiles(mut micros: Vec<u64>) -> impl Fn(f64) -> f64 {
    micros.sort_unstable();
    move |p: f64| {
        micros
            .get(((micros.len() as f64 * p) as usize).min(micros.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    }
}

/// Posts `rate × seconds` events on a fixed schedule and waits for the sink to receive them.
async fn open_loop(
    client: &reqwest::Client,
    url: &str,
    sink: &Arc<SinkState>,
    rate: u64,
    seconds: u64,
) -> Phase {
    let total = rate * seconds;
    sink.micros.lock().unwrap().clear();
    sink.count.store(0, Ordering::Relaxed);
    sink.rate.store(rate, Ordering::Relaxed);
    let start = Instant::now() + Duration::from_millis(50);
    *sink.start.lock().unwrap() = Some(start);
    let rejected = Arc::new(AtomicU64::new(0));
    let acks = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let data = Arc::new("x".repeat(EVENT_BYTES));
    let mut tasks = Vec::with_capacity(total as usize);
    for seq in 0..total {
        let scheduled = start + Duration::from_nanos(seq * 1_000_000_000 / rate);
        tokio::time::sleep_until(scheduled.into()).await;
        let (client, url, rejected, data, acks) = (
            client.clone(),
            url.to_owned(),
            rejected.clone(),
            data.clone(),
            acks.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let ok = client
                .post(&url)
                .header("ce-specversion", "1.0")
                .header("ce-id", seq.to_string())
                .header("ce-source", "/bench")
                .header("ce-type", "bench.event")
                .header("content-type", "text/plain")
                .body(data.as_str().to_owned())
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if !ok {
                rejected.fetch_add(1, Ordering::Relaxed);
            }
            acks.lock()
                .unwrap()
                .push(scheduled.elapsed().as_micros() as u64);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let expect = total - rejected.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.count.load(Ordering::Relaxed) < expect && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let q = quantiles(std::mem::take(&mut *sink.micros.lock().unwrap()));
    let ack = quantiles(std::mem::take(&mut *acks.lock().unwrap()));
    Phase {
        rate,
        sent: total,
        rejected: rejected.load(Ordering::Relaxed),
        delivered: sink.count.load(Ordering::Relaxed),
        p50: q(0.50),
        p99: q(0.99),
        p999: q(0.999),
        ack: (ack(0.5), ack(0.99)),
    }
}

fn row(what: &str, p: &Phase) -> String {
    format!(
        "| {what} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} / {:.2} |",
        p.rate, p.sent, p.rejected, p.delivered, p.p50, p.p99, p.p999, p.ack.0, p.ack.1
    )
}

/// User + system CPU seconds a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesized command name, from `state`: utime and stime are the 12th
    // and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (tick(11) + tick(12)) as f64 / 100.0
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn resource(name: &str, bootstrap: &str, egresses: Vec<Egress>) -> ContractResource {
    support::broker(name, bootstrap, egresses)
}

fn egress(name: &str, url: &str, ordering: DeliveryOrder) -> Egress {
    Egress {
        ordering,
        ..support::trigger(name, url)
    }
}

/// Writes `n` 1 KiB binary-mode CloudEvents straight into `topic` with `keys` distinct keys.
fn produce_direct(bootstrap: &str, topic: &str, n: u64, keys: u64) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "262144")
        .create()
        .unwrap();
    let data = vec![b'x'; EVENT_BYTES];
    for seq in 0..n {
        let id = seq.to_string();
        let key = format!("k{}", seq % keys);
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "ce_specversion",
                value: Some("1.0"),
            })
            .insert(Header {
                key: "ce_id",
                value: Some(id.as_str()),
            })
            .insert(Header {
                key: "ce_source",
                value: Some("/bench"),
            })
            .insert(Header {
                key: "ce_type",
                value: Some("bench.event"),
            })
            .insert(Header {
                key: "ce_partitionkey",
                value: Some(key.as_str()),
            });
        let mut record = BaseRecord::to(topic)
            .payload(&data)
            .key(&key)
            .headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    producer.poll(Duration::from_millis(10));
                    record = r;
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(120)).unwrap();
}

fn main() {
    let seconds: u64 = std::env::var("FERRY_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let rates: Vec<u64> = std::env::var("FERRY_BENCH_RATES")
        .unwrap_or_else(|_| "1000,2000,5000,10000,15000,20000,25000,30000".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let lag_events: u64 = std::env::var("FERRY_BENCH_LAG_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let ordered_events: u64 = std::env::var("FERRY_BENCH_ORDERED_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(seconds, rates, lag_events, ordered_events));
}

async fn run(seconds: u64, rates: Vec<u64>, lag_events: u64, ordered_events: u64) {
    // FERRY_BENCH_FLUSH picks the broker's --flush policy (default: the broker's default).
    let flush = std::env::var("FERRY_BENCH_FLUSH").ok();
    let flags: Vec<&str> = flush
        .as_deref()
        .map(|f| vec!["--flush", f])
        .unwrap_or_default();
    let mut log = support::Log::start_with(&flags).await;
    let bootstrap = log.bootstrap.clone();
    for topic in ["events", "lag", "ordered", "drain"] {
        log.create_topic(topic, 1).await;
    }

    let state = Arc::new(SinkState::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_url = format!("http://{}/", listener.local_addr().unwrap());
    let app = Router::new().fallback(sink).with_state(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let slow_state = Arc::new(SinkState::default());
    slow_state.delay_ms.store(1000, Ordering::Relaxed);
    let slow_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_url = format!("http://{}/", slow_listener.local_addr().unwrap());
    let slow_app = Router::new().fallback(sink).with_state(slow_state.clone());
    tokio::spawn(async move { axum::serve(slow_listener, slow_app).await.unwrap() });

    let main_resource = resource(
        "events",
        &bootstrap,
        vec![egress("e2e", &sink_url, DeliveryOrder::Unordered)],
    );
    // FERRY_BENCH_DISPATCHER_ARGS: extra flags, e.g. "--linger-ms 5".
    let extra_flags = std::env::var("FERRY_BENCH_DISPATCHER_ARGS").unwrap_or_default();
    let extra: Vec<&str> = extra_flags.split_whitespace().collect();
    // The release binary (cargo bench builds it so), started and waited for like in the tests.
    let d = support::Dispatcher::start(
        &Contract {
            generation: 1,
            resources: vec![main_resource.clone()],
            activation: Vec::new(),
        },
        &extra,
    );
    let pid = d.process.as_ref().expect("running").pid();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rest = (status_kib(pid, "VmRSS:"), status_kib(pid, "RssAnon:"));

    // Lag: a million events behind a sink that answers once a second.
    produce_direct(&bootstrap, "lag", lag_events, 1000);
    let lag_resource = resource(
        "lag",
        &bootstrap,
        vec![egress("lagging", &slow_url, DeliveryOrder::Unordered)],
    );
    d.write_contract(&Contract {
        generation: 10,
        resources: vec![main_resource.clone(), lag_resource],
        activation: Vec::new(),
    });
    d.wait_for_generation(10);
    tokio::time::sleep(Duration::from_secs(15)).await;
    let lagged = (status_kib(pid, "VmRSS:"), status_kib(pid, "RssAnon:"));
    let lag_now = d.metric("ferry_dispatcher_consumer_lag{egress=\"Trigger default/lagging\"");
    // Stop the lagging egress before the latency runs.
    d.write_contract(&Contract {
        generation: 11,
        resources: vec![main_resource.clone()],
        activation: Vec::new(),
    });
    d.wait_for_generation(11);

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()
        .unwrap();
    let ingress = d.url("/default/events");
    let mut rows = Vec::new();
    // Warm up: connections, the consumer group, the allocator.
    open_loop(&client, &ingress, &state, 1000, 2).await;
    let mut best: Option<u64> = None;
    let mut cpu = Vec::new();
    // This process runs the generator, the sink and the broker: its CPU per event is what the
    // rest of the machine spends, beside the dispatcher's.
    let me = std::process::id();
    for &rate in &rates {
        let own_before = cpu_seconds(me);
        let base = open_loop(&client, &sink_url, &state, rate, seconds).await;
        let own_base = (cpu_seconds(me) - own_before) * 1e6 / base.sent.max(1) as f64;
        let cpu_before = cpu_seconds(pid);
        let own_before = cpu_seconds(me);
        let e2e = open_loop(&client, &ingress, &state, rate, seconds).await;
        let cpu_us = (cpu_seconds(pid) - cpu_before) * 1e6 / e2e.sent.max(1) as f64;
        let own_e2e = (cpu_seconds(me) - own_before) * 1e6 / e2e.sent.max(1) as f64;
        eprintln!(
            "CPU per event at {rate}/s: dispatcher {cpu_us:.0} µs; generator + sink {own_base:.0} µs (baseline), generator + sink + broker {own_e2e:.0} µs (end to end)"
        );
        cpu.push(format!(
            "{rate}/s: {cpu_us:.0} µs (generator + sink + broker: {own_e2e:.0} µs)"
        ));
        let ok = e2e.rejected == 0 && e2e.delivered >= e2e.sent && e2e.p99 < 10.0;
        rows.push(row("baseline (generator → sink)", &base));
        rows.push(row("end to end (ingress → log → egress → sink)", &e2e));
        eprintln!("{}\n{}", rows[rows.len() - 2], rows[rows.len() - 1]);
        if ok {
            best = Some(rate);
        } else if rate > 5000 {
            break;
        }
    }
    let busy = (status_kib(pid, "VmRSS:"), status_kib(pid, "RssAnon:"));

    // Egress alone: events already in the log, drained as fast as the egress goes.
    let resources = vec![main_resource.clone()];
    let drain = |mut resources: Vec<ContractResource>,
                 topic: &'static str,
                 keys: u64,
                 ordering: DeliveryOrder,
                 delay_ms: u64| {
        let (bootstrap, state, sink_url, d) =
            (bootstrap.clone(), state.clone(), sink_url.clone(), &d);
        async move {
            produce_direct(&bootstrap, topic, ordered_events, keys);
            state.delay_ms.store(delay_ms, Ordering::Relaxed);
            *state.start.lock().unwrap() = None;
            state.count.store(0, Ordering::Relaxed);
            resources.push(resource(
                topic,
                &bootstrap,
                vec![egress(topic, &sink_url, ordering)],
            ));
            let started = Instant::now();
            d.write_contract(&Contract {
                generation: 20 + resources.len() as u64,
                resources: resources.clone(),
                activation: Vec::new(),
            });
            while state.count.load(Ordering::Relaxed) < ordered_events
                && started.elapsed() < Duration::from_secs(300)
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let rate = state.count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
            state.delay_ms.store(0, Ordering::Relaxed);
            (rate, resources)
        }
    };
    let (unordered_rate, resources) =
        drain(resources, "drain", 1000, DeliveryOrder::Unordered, 0).await;
    eprintln!("unordered drain: {unordered_rate:.0} events/s");
    // Ordered: 100 keys on one partition, a sink that takes 10 ms per event.
    let (ordered_rate, _) = drain(resources, "ordered", 100, DeliveryOrder::Ordered, 10).await;
    eprintln!("ordered: {ordered_rate:.0} events/s");

    drop(d);
    if let Some(broker) = log.running.take() {
        broker.shutdown(Duration::from_secs(10)).await.ok();
    }

    println!(
        "broker --flush {}",
        flush.as_deref().unwrap_or("interval:5 (default)")
    );
    println!(
        "| phase | rate ev/s | sent | rejected | delivered | p50 ms | p99 ms | p99.9 ms | 202 p50 / p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    println!();
    println!(
        "highest rate with every event delivered and p99 < 10 ms end to end: {}",
        best.map_or("none of the ladder".into(), |b| format!("{b} events/s"))
    );
    println!(
        "dispatcher CPU time per event (ingress + egress): {}",
        cpu.join(", ")
    );
    println!(
        "unordered drain of {ordered_events} events already in the log (1000 keys, sink answers at once): {unordered_rate:.0} events/s"
    );
    println!(
        "ordered, 100 keys on one partition, sink 10 ms per event: {ordered_rate:.0} events/s ({ordered_events} events)"
    );
    println!(
        "dispatcher RSS / RssAnon MiB: at rest {} / {}; after the rate ladder {} / {}; with {lag_events} events of lag (lag metric {lag_now}) {} / {}",
        rest.0 / 1024,
        rest.1 / 1024,
        busy.0 / 1024,
        busy.1 / 1024,
        lagged.0 / 1024,
        lagged.1 / 1024
    );
}
