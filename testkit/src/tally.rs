//! A counting sink for long and fast runs: where [`Sink`](crate::sink::Sink) keeps every
//! request, this one keeps a few bytes per event, so an hour at thousands of events per second
//! fits in memory that does not grow.
//!
//! Events carry a sequence number as their `id` (`0..capacity`) and, optionally, the time the
//! load generator scheduled them as the `scheduled` extension (microseconds since the Unix
//! epoch) and a numeric `partitionkey`. Per sequence number the sink counts requests and 2xx
//! answers; it answers 500 to a seeded random share of requests; it keeps the latencies
//! (arrival − `scheduled`) of accepted requests since they were last taken; and, when asked,
//! the arrival order of accepted events as `(partitionkey, id)`.
//!
//! Besides its events (a POST on any path), it serves its tallies as text so that a sink in
//! another process can be read with a plain HTTP GET ([`Remote`]): `/tally/window`,
//! `/tally/counts`, `/tally/order`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::oneshot;

use crate::latency::Percentiles;
use crate::process::http_get;

/// How a [`TallySink`] answers and what it keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct TallySettings {
    /// Sequence numbers counted per event (`0..capacity`); the memory is taken up front.
    pub capacity: usize,
    /// Share of requests answered 500 (0 = none), drawn from a generator seeded by `seed`.
    pub fail_ratio: f64,
    /// Seed of the failure draws.
    pub seed: u64,
    /// Whether to keep the arrival order of accepted events (8 bytes per delivery).
    pub record_order: bool,
}

impl TallySettings {
    /// Reads `FERRY_TALLY_CAPACITY` (required), `FERRY_TALLY_FAIL_RATIO`, `FERRY_TALLY_SEED`
    /// and `FERRY_TALLY_ORDER` (`1`); `None` when the capacity is unset, so a program can
    /// decide whether it was started to be a tally sink.
    pub fn from_env() -> Option<TallySettings> {
        let var = |name: &str| std::env::var(name).ok();
        Some(TallySettings {
            capacity: var("FERRY_TALLY_CAPACITY")?.parse().ok()?,
            fail_ratio: var("FERRY_TALLY_FAIL_RATIO").map_or(0.0, |v| v.parse().unwrap_or(0.0)),
            seed: var("FERRY_TALLY_SEED").map_or(0, |v| v.parse().unwrap_or(0)),
            record_order: var("FERRY_TALLY_ORDER").is_some_and(|v| v == "1"),
        })
    }

    /// The environment [`TallySettings::from_env`] reads back.
    pub fn to_env(&self) -> Vec<(String, String)> {
        [
            ("FERRY_TALLY_CAPACITY", self.capacity.to_string()),
            ("FERRY_TALLY_FAIL_RATIO", self.fail_ratio.to_string()),
            ("FERRY_TALLY_SEED", self.seed.to_string()),
            ("FERRY_TALLY_ORDER", u8::from(self.record_order).to_string()),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .into()
    }
}

/// Requests and 2xx answers per sequence number (each saturating at 255).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests per sequence number.
    pub requests: Vec<u8>,
    /// 2xx answers per sequence number.
    pub accepted: Vec<u8>,
    /// Requests whose id was not a sequence number below the capacity.
    pub foreign: u64,
}

impl Counts {
    /// Zeroed counts for `capacity` sequence numbers.
    pub fn new(capacity: usize) -> Counts {
        Counts {
            requests: vec![0; capacity],
            accepted: vec![0; capacity],
            foreign: 0,
        }
    }

    /// Text, one line per sequence number that did not get exactly one request answered 2xx:
    /// `capacity foreign` first, then `seq requests accepted`.
    pub fn to_text(&self) -> String {
        let mut text = format!("{} {}\n", self.requests.len(), self.foreign);
        for (seq, (r, a)) in self.requests.iter().zip(&self.accepted).enumerate() {
            if (*r, *a) != (1, 1) {
                let _ = writeln!(text, "{seq} {r} {a}");
            }
        }
        text
    }

    /// Parses [`Counts::to_text`].
    pub fn from_text(text: &str) -> Option<Counts> {
        let mut lines = text.lines();
        let mut head = lines.next()?.split_whitespace();
        let capacity: usize = head.next()?.parse().ok()?;
        let mut counts = Counts {
            requests: vec![1; capacity],
            accepted: vec![1; capacity],
            foreign: head.next()?.parse().ok()?,
        };
        for line in lines {
            let mut f = line.split_whitespace().map(str::parse::<usize>);
            let (Some(Ok(seq)), Some(Ok(r)), Some(Ok(a))) = (f.next(), f.next(), f.next()) else {
                return None;
            };
            *counts.requests.get_mut(seq)? = u8::try_from(r).ok()?;
            *counts.accepted.get_mut(seq)? = u8::try_from(a).ok()?;
        }
        Some(counts)
    }
}

/// What arrived since the window was last taken.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Window {
    /// Requests.
    pub requests: u64,
    /// Requests answered 500 on purpose.
    pub failed: u64,
    /// Latency (arrival − `scheduled`) of the accepted requests that carried `scheduled`.
    pub latency: Percentiles,
}

impl Window {
    fn to_text(self) -> String {
        let l = self.latency;
        format!(
            "{} {} {} {} {} {} {}",
            self.requests, self.failed, l.count, l.p50, l.p99, l.p999, l.max
        )
    }

    fn from_text(text: &str) -> Option<Window> {
        let f: Vec<f64> = text
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        let [requests, failed, count, p50, p99, p999, max] = f[..] else {
            return None;
        };
        Some(Window {
            requests: requests as u64,
            failed: failed as u64,
            latency: Percentiles {
                count: count as usize,
                p50,
                p99,
                p999,
                max,
            },
        })
    }
}

/// What the handler updates.
struct Tally {
    counts: Counts,
    fail_ratio: f64,
    rng: SmallRng,
    record_order: bool,
    order: Vec<(u32, u32)>,
    window_requests: u64,
    window_failed: u64,
    window_micros: Vec<u64>,
}

type Shared = Arc<Mutex<Tally>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Tally> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running tally sink on `127.0.0.1`; stops when dropped.
pub struct TallySink {
    addr: SocketAddr,
    shared: Shared,
    _stop: oneshot::Sender<()>,
}

impl TallySink {
    /// Starts a tally sink on an ephemeral loopback port, its counts allocated and touched
    /// up front (so its memory does not grow with the events it counts).
    ///
    /// # Panics
    /// When it cannot bind the port.
    pub async fn start(settings: &TallySettings) -> TallySink {
        let mut counts = Counts::new(settings.capacity);
        // Touch every page now: calloc'd zeroes would be mapped only as they are counted.
        counts.requests.fill(1);
        counts.requests.fill(0);
        counts.accepted.fill(1);
        counts.accepted.fill(0);
        let shared = Arc::new(Mutex::new(Tally {
            counts,
            fail_ratio: settings.fail_ratio,
            rng: SmallRng::seed_from_u64(settings.seed),
            record_order: settings.record_order,
            order: Vec::new(),
            window_requests: 0,
            window_failed: 0,
            window_micros: Vec::new(),
        }));
        let app = Router::new()
            .route("/tally/window", get(window))
            .route("/tally/counts", get(counts_text))
            .route("/tally/order", get(order_text))
            .fallback(event)
            .with_state(Arc::clone(&shared));
        let (addr, stop) = crate::serve_on_loopback(app, "tally sink").await;
        TallySink {
            addr,
            shared,
            _stop: stop,
        }
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        lock(&self.shared).counts.clone()
    }
}

/// Records one event and answers it.
async fn event(
    State(shared): State<Shared>,
    headers: HeaderMap,
    _body: bytes::Bytes,
) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let seq = header("ce-id").and_then(|v| v.parse::<usize>().ok());
    let scheduled = header("ce-scheduled").and_then(|v| v.parse::<u64>().ok());
    let key = header("ce-partitionkey").and_then(|v| v.parse::<u32>().ok());
    let mut t = lock(&shared);
    let t = &mut *t;
    t.window_requests += 1;
    let fail = t.fail_ratio > 0.0 && t.rng.random::<f64>() < t.fail_ratio;
    let slot = seq.filter(|s| *s < t.counts.requests.len());
    match slot {
        Some(s) => t.counts.requests[s] = t.counts.requests[s].saturating_add(1),
        None => t.counts.foreign += 1,
    }
    if fail {
        t.window_failed += 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    if let Some(s) = slot {
        t.counts.accepted[s] = t.counts.accepted[s].saturating_add(1);
        if t.record_order {
            t.order.push((key.unwrap_or(u32::MAX), s as u32));
        }
    }
    if let Some(scheduled) = scheduled {
        t.window_micros
            .push(unix_micros().saturating_sub(scheduled));
    }
    StatusCode::ACCEPTED
}

async fn window(State(shared): State<Shared>) -> String {
    let (requests, failed, micros) = {
        let mut t = lock(&shared);
        let micros = std::mem::take(&mut t.window_micros);
        (
            std::mem::take(&mut t.window_requests),
            std::mem::take(&mut t.window_failed),
            micros,
        )
    };
    Window {
        requests,
        failed,
        latency: Percentiles::of(micros),
    }
    .to_text()
}

async fn counts_text(State(shared): State<Shared>) -> String {
    lock(&shared).counts.to_text()
}

async fn order_text(State(shared): State<Shared>) -> String {
    let t = lock(&shared);
    let mut text = String::with_capacity(t.order.len() * 12);
    for (key, seq) in &t.order {
        let _ = writeln!(text, "{key} {seq}");
    }
    text
}

/// Microseconds since the Unix epoch, now.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Runs a tally sink until the process is killed, after printing
/// `tally-sink listening http=ADDR` (the line [`Process`](crate::process::Process) reads).
pub async fn serve_until_killed(settings: &TallySettings) {
    let sink = TallySink::start(settings).await;
    println!("tally-sink listening http={}", sink.addr);
    std::future::pending::<()>().await;
}

/// A tally sink in another process, read over HTTP.
#[derive(Clone, Copy, Debug)]
pub struct Remote(pub SocketAddr);

impl Remote {
    /// Takes the window (requests and latencies since the last call).
    ///
    /// # Panics
    /// When the sink does not answer or answers something else.
    pub fn window(&self) -> Window {
        Window::from_text(&self.get("/tally/window")).expect("a tally window")
    }

    /// The counts so far.
    ///
    /// # Panics
    /// As [`Remote::window`].
    pub fn counts(&self) -> Counts {
        Counts::from_text(&self.get("/tally/counts")).expect("tally counts")
    }

    /// Accepted events in arrival order, `(partitionkey, id)` (keyless: `u32::MAX`).
    ///
    /// # Panics
    /// As [`Remote::window`].
    pub fn order(&self) -> Vec<(u32, u32)> {
        self.get("/tally/order")
            .lines()
            .map(|l| {
                let (k, s) = l.split_once(' ').expect("key and id");
                (k.parse().expect("key"), s.parse().expect("id"))
            })
            .collect()
    }

    fn get(&self, path: &str) -> String {
        let response = http_get(self.0, path);
        let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
        body.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_round_trip_through_text() {
        let mut counts = Counts::new(5);
        counts.requests = vec![1, 3, 0, 1, 2];
        counts.accepted = vec![1, 1, 0, 0, 2];
        counts.foreign = 4;
        assert_eq!(counts.to_text(), "5 4\n1 3 1\n2 0 0\n3 1 0\n4 2 2\n");
        assert_eq!(Counts::from_text(&counts.to_text()), Some(counts));
        assert_eq!(Counts::from_text("2 0\n2 1 1\n"), None, "out of range");
    }

    /// POSTs a binary-mode event with this id and partition key; returns the status.
    async fn post(addr: SocketAddr, id: u32, key: u32) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let scheduled = unix_micros() - 2000;
        let request = format!(
            "POST / HTTP/1.1\r\nHost: sink\r\nConnection: close\r\nce-specversion: 1.0\r\n\
             ce-id: {id}\r\nce-source: /t\r\nce-type: t\r\nce-partitionkey: {key}\r\n\
             ce-scheduled: {scheduled}\r\nContent-Length: 2\r\n\r\nhi"
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        response[9..12].parse().expect("status")
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn counts_fails_a_seeded_share_and_keeps_the_order() {
        let settings = TallySettings {
            capacity: 4,
            fail_ratio: 0.5,
            seed: 7,
            record_order: true,
        };
        let sink = TallySink::start(&settings).await;
        let mut statuses = Vec::new();
        for (id, key) in [
            (0, 1),
            (1, 2),
            (0, 1),
            (2, 1),
            (3, 2),
            (9, 1),
            (3, 2),
            (1, 2),
        ] {
            statuses.push(post(sink.addr(), id, key).await);
        }
        let again = TallySink::start(&settings).await;
        let mut same = Vec::new();
        for id in 0..8 {
            same.push(post(again.addr(), id % 4, 0).await);
        }
        assert_eq!(statuses, same, "the same seed fails the same requests");
        assert!(
            statuses.contains(&500) && statuses.contains(&202),
            "{statuses:?}"
        );
        let remote = Remote(sink.addr());
        let (counts, order, window) =
            tokio::task::spawn_blocking(move || (remote.counts(), remote.order(), remote.window()))
                .await
                .unwrap();
        assert_eq!(counts, sink.counts());
        assert_eq!(counts.requests, [2, 2, 1, 2]);
        assert_eq!(counts.foreign, 1, "id 9 is beyond the capacity");
        let accepted: Vec<(u32, u32)> = [
            (1, 0),
            (2, 1),
            (1, 0),
            (1, 2),
            (2, 3),
            (1, 9),
            (2, 3),
            (2, 1),
        ]
        .into_iter()
        .zip(&statuses)
        .filter(|(_, s)| **s == 202)
        .map(|(event, _)| event)
        .filter(|(_, id)| *id < 4)
        .collect();
        assert_eq!(order, accepted);
        let total: u8 = counts.accepted.iter().sum();
        assert_eq!(usize::from(total), accepted.len());
        assert_eq!(window.requests, 8);
        assert_eq!(
            window.failed as usize,
            statuses.iter().filter(|s| **s == 500).count()
        );
        assert_eq!(window.latency.count, 8 - window.failed as usize);
        assert!(
            window.latency.p50 >= 2.0,
            "from the scheduled time: {:?}",
            window.latency
        );
        let taken = tokio::task::spawn_blocking(move || remote.window())
            .await
            .unwrap();
        assert_eq!(taken.requests, 0, "a window is taken once");
    }

    #[test]
    fn window_round_trips_through_text() {
        let w = Window {
            requests: 10,
            failed: 3,
            latency: Percentiles::of(vec![1000, 2000, 3500]),
        };
        assert_eq!(Window::from_text(&w.to_text()), Some(w));
    }
}
