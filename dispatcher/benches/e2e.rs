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

mod load;
#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use ferry_api::contract::{ContractResource, Egress};
use ferry_api::eventing::DeliveryOrder;
use ferry_testkit::audit::Answer;
use ferry_testkit::latency::Percentiles;
use load::{EVENT_BYTES, OpenLoop, cpu_seconds, status_kib};
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use support::contract;

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
    let generator = OpenLoop::new(rate, total);
    *sink.start.lock().unwrap() = Some(generator.start());
    let rejected = Arc::new(AtomicU64::new(0));
    let acks = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let data = bytes::Bytes::from("x".repeat(EVENT_BYTES));
    let answered = {
        let (rejected, acks) = (rejected.clone(), acks.clone());
        move |_seq, answer, latency: Duration| {
            if answer != Answer::Accepted {
                rejected.fetch_add(1, Ordering::Relaxed);
            }
            acks.lock().unwrap().push(latency.as_micros() as u64);
        }
    };
    generator
        .run(
            client,
            || url.to_owned(),
            |post, seq, at| load::cloudevent(post, seq, at, None, &data),
            answered,
            &AtomicBool::new(false),
        )
        .await;
    let expect = total - rejected.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.count.load(Ordering::Relaxed) < expect && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let q = Percentiles::of(std::mem::take(&mut *sink.micros.lock().unwrap()));
    let ack = Percentiles::of(std::mem::take(&mut *acks.lock().unwrap()));
    Phase {
        rate,
        sent: total,
        rejected: rejected.load(Ordering::Relaxed),
        delivered: sink.count.load(Ordering::Relaxed),
        p50: q.p50,
        p99: q.p99,
        p999: q.p999,
        ack: (ack.p50, ack.p99),
    }
}

fn row(what: &str, p: &Phase) -> String {
    format!(
        "| {what} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} / {:.2} |",
        p.rate, p.sent, p.rejected, p.delivered, p.p50, p.p99, p.p999, p.ack.0, p.ack.1
    )
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

/// What `main` reads from the environment.
struct Settings {
    /// Seconds per rate step.
    seconds: u64,
    /// The rate ladder (events/s).
    rates: Vec<u64>,
    /// Events of lag behind the slow sink.
    lag_events: u64,
    /// Events per drain phase.
    drain_events: u64,
}

fn main() {
    let number = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let settings = Settings {
        seconds: number("FERRY_BENCH_SECONDS", 5),
        rates: std::env::var("FERRY_BENCH_RATES")
            .unwrap_or_else(|_| "1000,2000,5000,10000,15000,20000,25000,30000".into())
            .split(',')
            .filter_map(|r| r.trim().parse().ok())
            .collect(),
        lag_events: number("FERRY_BENCH_LAG_EVENTS", 1_000_000),
        drain_events: number("FERRY_BENCH_ORDERED_EVENTS", 30_000),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(settings));
}

/// What the run measured, for [`print_report`].
struct Report {
    flush: Option<String>,
    ladder: Ladder,
    unordered_rate: f64,
    ordered_rate: f64,
    lag_now: f64,
    /// Dispatcher (VmRSS, RssAnon) KiB at rest, with lag, after the ladder.
    rest: (u64, u64),
    lagged: (u64, u64),
    busy: (u64, u64),
}

async fn run(settings: Settings) {
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
    let (state, sink_url) = serve_sink(0).await;
    let main_resource = resource(
        "events",
        &bootstrap,
        vec![egress("e2e", &sink_url, DeliveryOrder::Unordered)],
    );
    // FERRY_BENCH_DISPATCHER_ARGS: extra flags, e.g. "--linger 5ms".
    let extra_flags = std::env::var("FERRY_BENCH_DISPATCHER_ARGS").unwrap_or_default();
    let extra: Vec<&str> = extra_flags.split_whitespace().collect();
    // The release binary (cargo bench builds it so), started and waited for like in the tests.
    let d = support::Dispatcher::start(&contract(1, vec![main_resource.clone()]), &extra);
    let pid = d.process.as_ref().expect("running").pid();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rest = rss(pid);
    let (lagged, lag_now) = lag(&d, &bootstrap, &main_resource, settings.lag_events).await;
    let ladder = rate_ladder(&d, &state, &sink_url, &settings).await;
    let busy = rss(pid);

    // Egress alone: events already in the log, drained as fast as the egress goes.
    let drain = Drain {
        d: &d,
        bootstrap: &bootstrap,
        state: &state,
        sink_url: &sink_url,
        events: settings.drain_events,
    };
    let mut resources = vec![main_resource];
    let unordered_rate = drain
        .run(&mut resources, "drain", 1000, DeliveryOrder::Unordered, 0)
        .await;
    eprintln!("unordered drain: {unordered_rate:.0} events/s");
    // Ordered: 100 keys on one partition, a sink that takes 10 ms per event.
    let ordered_rate = drain
        .run(&mut resources, "ordered", 100, DeliveryOrder::Ordered, 10)
        .await;
    eprintln!("ordered: {ordered_rate:.0} events/s");

    drop(d);
    if let Some(broker) = log.running.take() {
        broker.shutdown(Duration::from_secs(10)).await.ok();
    }
    let report = Report {
        flush,
        ladder,
        unordered_rate,
        ordered_rate,
        lag_now,
        rest,
        lagged,
        busy,
    };
    print_report(&settings, &report);
}

/// A sink on a free port answering after `delay_ms`: its state and URL.
async fn serve_sink(delay_ms: u64) -> (Arc<SinkState>, String) {
    let state = Arc::new(SinkState::default());
    state.delay_ms.store(delay_ms, Ordering::Relaxed);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let app = Router::new().fallback(sink).with_state(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (state, url)
}

/// The dispatcher's (VmRSS, RssAnon) in KiB.
fn rss(pid: u32) -> (u64, u64) {
    (status_kib(pid, "VmRSS:"), status_kib(pid, "RssAnon:"))
}

/// Lag: `events` behind a sink that answers once a second. Returns the dispatcher's memory
/// with that lag and the lag metric; the lagging egress is removed again.
async fn lag(
    d: &support::Dispatcher,
    bootstrap: &str,
    main_resource: &ContractResource,
    events: u64,
) -> ((u64, u64), f64) {
    let (_slow, slow_url) = serve_sink(1000).await;
    produce_direct(bootstrap, "lag", events, 1000);
    let lag_resource = resource(
        "lag",
        bootstrap,
        vec![egress("lagging", &slow_url, DeliveryOrder::Unordered)],
    );
    d.write_contract(&contract(10, vec![main_resource.clone(), lag_resource]));
    d.wait_for_generation(10);
    tokio::time::sleep(Duration::from_secs(15)).await;
    let pid = d.process.as_ref().expect("running").pid();
    let lagged = rss(pid);
    let lag_now = d.metric("ferry_dispatcher_consumer_lag{egress=\"Trigger default/lagging\"");
    // Stop the lagging egress before the latency runs.
    d.write_contract(&contract(11, vec![main_resource.clone()]));
    d.wait_for_generation(11);
    (lagged, lag_now)
}

/// The rate ladder's results.
struct Ladder {
    /// Table rows: baseline and end to end per rate.
    rows: Vec<String>,
    /// The highest rate with every event delivered and p99 < 10 ms.
    best: Option<u64>,
    /// Dispatcher CPU per event, per rate.
    cpu: Vec<String>,
}

/// Each rate of the ladder, straight to the sink (baseline) and end to end, until a rate above
/// 5,000/s misses its goal.
async fn rate_ladder(
    d: &support::Dispatcher,
    state: &Arc<SinkState>,
    sink_url: &str,
    settings: &Settings,
) -> Ladder {
    let pid = d.process.as_ref().expect("running").pid();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()
        .unwrap();
    let ingress = d.url("/default/events");
    let mut ladder = Ladder {
        rows: Vec::new(),
        best: None,
        cpu: Vec::new(),
    };
    // Warm up: connections, the consumer group, the allocator.
    open_loop(&client, &ingress, state, 1000, 2).await;
    // This process runs the generator, the sink and the broker: its CPU per event is what the
    // rest of the machine spends, beside the dispatcher's.
    let me = std::process::id();
    for &rate in &settings.rates {
        let own_before = cpu_seconds(me);
        let base = open_loop(&client, sink_url, state, rate, settings.seconds).await;
        let own_base = (cpu_seconds(me) - own_before) * 1e6 / base.sent.max(1) as f64;
        let cpu_before = cpu_seconds(pid);
        let own_before = cpu_seconds(me);
        let e2e = open_loop(&client, &ingress, state, rate, settings.seconds).await;
        let cpu_us = (cpu_seconds(pid) - cpu_before) * 1e6 / e2e.sent.max(1) as f64;
        let own_e2e = (cpu_seconds(me) - own_before) * 1e6 / e2e.sent.max(1) as f64;
        eprintln!(
            "CPU per event at {rate}/s: dispatcher {cpu_us:.0} µs; generator + sink {own_base:.0} µs (baseline), generator + sink + broker {own_e2e:.0} µs (end to end)"
        );
        ladder.cpu.push(format!(
            "{rate}/s: {cpu_us:.0} µs (generator + sink + broker: {own_e2e:.0} µs)"
        ));
        let ok = e2e.rejected == 0 && e2e.delivered >= e2e.sent && e2e.p99 < 10.0;
        let rows = [
            row("baseline (generator → sink)", &base),
            row("end to end (ingress → log → egress → sink)", &e2e),
        ];
        eprintln!("{}\n{}", rows[0], rows[1]);
        ladder.rows.extend(rows);
        if ok {
            ladder.best = Some(rate);
        } else if rate > 5000 {
            break;
        }
    }
    ladder
}

/// Drain phases: events written straight into a topic, then an egress for it added to the
/// contract, timed until the sink has them all.
struct Drain<'a> {
    d: &'a support::Dispatcher,
    bootstrap: &'a str,
    state: &'a Arc<SinkState>,
    sink_url: &'a str,
    events: u64,
}

impl Drain<'_> {
    /// Drains `topic` (`keys` distinct keys) through a new egress added to `resources`, the
    /// sink answering after `delay_ms`; returns events/s.
    async fn run(
        &self,
        resources: &mut Vec<ContractResource>,
        topic: &'static str,
        keys: u64,
        ordering: DeliveryOrder,
        delay_ms: u64,
    ) -> f64 {
        let state = self.state;
        produce_direct(self.bootstrap, topic, self.events, keys);
        state.delay_ms.store(delay_ms, Ordering::Relaxed);
        *state.start.lock().unwrap() = None;
        state.count.store(0, Ordering::Relaxed);
        resources.push(resource(
            topic,
            self.bootstrap,
            vec![egress(topic, self.sink_url, ordering)],
        ));
        let started = Instant::now();
        self.d
            .write_contract(&contract(20 + resources.len() as u64, resources.clone()));
        while state.count.load(Ordering::Relaxed) < self.events
            && started.elapsed() < Duration::from_secs(300)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let rate = state.count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
        state.delay_ms.store(0, Ordering::Relaxed);
        rate
    }
}

fn print_report(settings: &Settings, r: &Report) {
    let (lag_events, drain_events) = (settings.lag_events, settings.drain_events);
    println!(
        "broker --flush {}",
        r.flush
            .as_deref()
            .unwrap_or("always (default: group commit)")
    );
    println!(
        "| phase | rate ev/s | sent | rejected | delivered | p50 ms | p99 ms | p99.9 ms | 202 p50 / p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in &r.ladder.rows {
        println!("{row}");
    }
    println!();
    println!(
        "highest rate with every event delivered and p99 < 10 ms end to end: {}",
        r.ladder
            .best
            .map_or("none of the ladder".into(), |b| format!("{b} events/s"))
    );
    println!(
        "dispatcher CPU time per event (ingress + egress): {}",
        r.ladder.cpu.join(", ")
    );
    println!(
        "unordered drain of {drain_events} events already in the log (1000 keys, sink answers at once): {:.0} events/s",
        r.unordered_rate
    );
    println!(
        "ordered, 100 keys on one partition, sink 10 ms per event: {:.0} events/s ({drain_events} events)",
        r.ordered_rate
    );
    println!(
        "dispatcher RSS / RssAnon MiB: at rest {} / {}; after the rate ladder {} / {}; with {lag_events} events of lag (lag metric {}) {} / {}",
        r.rest.0 / 1024,
        r.rest.1 / 1024,
        r.busy.0 / 1024,
        r.busy.1 / 1024,
        r.lag_now,
        r.lagged.0 / 1024,
        r.lagged.1 / 1024
    );
}
