//! What the dispatcher's load benchmarks share: an open-loop (fixed-rate) generator of
//! CloudEvents posts, and readings of a process's CPU time and memory from /proc.

#![allow(dead_code)] // Each benchmark uses part of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use ferry_testkit::audit::Answer;

/// Events of `EVENT_BYTES` of data, as the benchmarks post them.
pub const EVENT_BYTES: usize = 1024;

/// Posts events `0..total` on a fixed schedule, event `seq` at `start + seq / rate`, each in
/// its own task, whatever happened to the ones before (open loop: a stall delays no sends,
/// and its cost shows in the latency of every event scheduled during it).
pub struct OpenLoop {
    rate: u64,
    total: u64,
    start: Instant,
    start_wall: SystemTime,
    /// Posts sent and not yet answered.
    in_flight: Arc<AtomicUsize>,
    /// Events not sent because `max_in_flight` posts were outstanding.
    skipped: AtomicU64,
    max_in_flight: usize,
    /// Per-request timeout.
    timeout: Duration,
}

impl OpenLoop {
    /// `total` events at `rate` per second, the first 50 ms from now.
    pub fn new(rate: u64, total: u64) -> OpenLoop {
        let lead = Duration::from_millis(50);
        OpenLoop {
            rate: rate.max(1),
            total,
            start: Instant::now() + lead,
            start_wall: SystemTime::now() + lead,
            in_flight: Arc::default(),
            skipped: AtomicU64::new(0),
            // A bound so that a dead target cannot pile up unbounded tasks; far above what an
            // answering target leaves outstanding at the rates these benchmarks run.
            max_in_flight: 20_000,
            timeout: Duration::from_secs(30),
        }
    }

    /// When event 0 is scheduled.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// When event `seq` is scheduled.
    pub fn scheduled(&self, seq: u64) -> Instant {
        self.start + self.offset(seq)
    }

    fn offset(&self, seq: u64) -> Duration {
        Duration::from_nanos(seq.saturating_mul(1_000_000_000) / self.rate)
    }

    /// Posts sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Events not sent because too many posts were outstanding.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Runs the schedule until every event is sent and answered, or `stop` is set (the
    /// events not yet sent then stay unsent). `url` is read per event (a restarted ingress
    /// has a new address); `event` builds event `seq`'s post, given its scheduled wall-clock
    /// time; `answered` gets each answer and its latency from the scheduled time. Returns how
    /// many events were sent.
    pub async fn run<U, E, A>(
        &self,
        client: &reqwest::Client,
        url: U,
        event: E,
        answered: A,
        stop: &AtomicBool,
    ) -> u64
    where
        U: Fn() -> String,
        E: Fn(reqwest::RequestBuilder, u64, SystemTime) -> reqwest::RequestBuilder,
        A: Fn(u64, Answer, Duration) + Send + Sync + 'static,
    {
        let answered = Arc::new(answered);
        let mut sent = 0;
        for seq in 0..self.total {
            let scheduled = self.scheduled(seq);
            tokio::time::sleep_until(scheduled.into()).await;
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if self.in_flight() >= self.max_in_flight {
                self.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let post = event(
                client.post(url()).timeout(self.timeout),
                seq,
                self.start_wall + self.offset(seq),
            );
            let (in_flight, answered) = (self.in_flight.clone(), answered.clone());
            in_flight.fetch_add(1, Ordering::Relaxed);
            sent += 1;
            tokio::spawn(async move {
                let answer = match post.send().await {
                    Ok(r) if r.status().is_success() => Answer::Accepted,
                    Ok(_) => Answer::Refused,
                    Err(_) => Answer::Failed,
                };
                answered(seq, answer, scheduled.elapsed());
                in_flight.fetch_sub(1, Ordering::Relaxed);
            });
        }
        // Every post has a timeout, so this ends.
        while self.in_flight() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sent
    }
}

/// A binary-mode CloudEvent post of `data`: id `seq`, the `scheduled` extension (µs since the
/// Unix epoch, for a tally sink's latency) and, with `keys`, partition key `seq % keys`.
pub fn cloudevent(
    post: reqwest::RequestBuilder,
    seq: u64,
    scheduled: SystemTime,
    keys: Option<u64>,
    data: &bytes::Bytes,
) -> reqwest::RequestBuilder {
    let micros = scheduled
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let mut post = post
        .header("ce-specversion", "1.0")
        .header("ce-id", seq.to_string())
        .header("ce-source", "/bench")
        .header("ce-type", "bench.event")
        .header("ce-scheduled", micros.to_string())
        .header("content-type", "text/plain");
    if let Some(keys) = keys {
        post = post.header("ce-partitionkey", (seq % keys).to_string());
    }
    post.body(data.clone())
}

/// User + system CPU seconds a process has used so far (0 when it is gone).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesized command name, from `state`: utime and stime are the 12th
    // and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (tick(11) + tick(12)) as f64 / 100.0
}

/// A `kB` field of /proc/PID/status (`VmRSS:`, `RssAnon:`, `VmHWM:`), 0 when missing.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// File descriptors a process has open (its sockets among them; 0 when it is gone).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// The 1-minute load average of the machine.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}
