//! The load of a run: the shared open-loop generator posting to the plane's ingress in the
//! background, with every event's answer kept and the 202 latencies kept per window.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ferry_testkit::audit::Answer;
use ferry_testkit::latency::{Histogram, Percentiles};

use crate::load::{self, EVENT_BYTES, OpenLoop};

/// Answers since the window was last taken.
#[derive(Default)]
struct Acks {
    accepted: u64,
    refused: u64,
    failed: u64,
    micros: Vec<u64>,
    all: Histogram,
}

/// 202s, other statuses and failures in a window, and the 202 latency (scheduled → answer).
pub struct AckWindow {
    pub accepted: u64,
    pub refused: u64,
    pub failed: u64,
    pub latency: Percentiles,
}

/// What a finished load sent.
pub struct Sent {
    /// Per sequence number.
    pub answers: Vec<Answer>,
    /// 202 latency over the whole run.
    pub latency: Percentiles,
    /// Events the generator did not send (too many posts outstanding).
    pub skipped: u64,
}

/// A running load.
pub struct Traffic {
    generator: Arc<OpenLoop>,
    answers: Arc<Mutex<Vec<Answer>>>,
    acks: Arc<Mutex<Acks>>,
    done: Option<tokio::task::JoinHandle<u64>>,
}

impl Traffic {
    /// Posts `total` 1 KiB events at `rate` to whatever `target` holds, with partition keys
    /// `seq % keys` when `keys` is set.
    pub fn start(
        rt: &tokio::runtime::Handle,
        target: Arc<RwLock<String>>,
        rate: u64,
        total: u64,
        keys: Option<u64>,
    ) -> Traffic {
        let generator = Arc::new(OpenLoop::new(rate, total));
        let answers = Arc::new(Mutex::new(vec![Answer::Unsent; total as usize]));
        let acks = Arc::new(Mutex::new(Acks::default()));
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .build()
            .expect("HTTP client");
        let answered = {
            let (answers, acks) = (answers.clone(), acks.clone());
            move |seq: u64, answer: Answer, latency: Duration| {
                answers.lock().unwrap()[seq as usize] = answer;
                let mut acks = acks.lock().unwrap();
                match answer {
                    Answer::Accepted => {
                        let micros = latency.as_micros() as u64;
                        acks.accepted += 1;
                        acks.micros.push(micros);
                        acks.all.record(micros);
                    }
                    Answer::Refused => acks.refused += 1,
                    Answer::Failed | Answer::Unsent => acks.failed += 1,
                }
            }
        };
        let done = {
            let generator = generator.clone();
            let data = bytes::Bytes::from(vec![b'x'; EVENT_BYTES]);
            rt.spawn(async move {
                generator
                    .run(
                        &client,
                        || target.read().unwrap().clone(),
                        |post, seq, at| load::cloudevent(post, seq, at, keys, &data),
                        answered,
                        &AtomicBool::new(false),
                    )
                    .await
            })
        };
        Traffic {
            generator,
            answers,
            acks,
            done: Some(done),
        }
    }

    /// Takes the answers since the last call.
    pub fn take_window(&self) -> AckWindow {
        let mut acks = self.acks.lock().unwrap();
        let micros = std::mem::take(&mut acks.micros);
        AckWindow {
            accepted: std::mem::take(&mut acks.accepted),
            refused: std::mem::take(&mut acks.refused),
            failed: std::mem::take(&mut acks.failed),
            latency: Percentiles::of(micros),
        }
    }

    /// Posts outstanding.
    pub fn in_flight(&self) -> usize {
        self.generator.in_flight()
    }

    /// When event `seq` was scheduled.
    pub fn scheduled(&self, seq: u64) -> Instant {
        self.generator.scheduled(seq)
    }

    /// Whether every event was sent and answered.
    pub fn finished(&self) -> bool {
        self.done.as_ref().is_none_or(|d| d.is_finished())
    }

    /// Waits for the last answer.
    pub fn finish(mut self, rt: &tokio::runtime::Handle) -> Sent {
        if let Some(done) = self.done.take() {
            rt.block_on(done).expect("generator");
        }
        let all = self.acks.lock().unwrap().all.percentiles();
        Sent {
            answers: std::mem::take(&mut *self.answers.lock().unwrap()),
            latency: all,
            skipped: self.generator.skipped(),
        }
    }
}

impl Sent {
    /// Events answered 202.
    pub fn accepted(&self) -> usize {
        self.answers
            .iter()
            .filter(|a| **a == Answer::Accepted)
            .count()
    }

    /// Outage around `at`: from the first event scheduled after it that was not answered 202
    /// to the next one that was; (events not answered 202 in it, its length).
    pub fn outage_after(
        &self,
        traffic_start: Instant,
        rate: u64,
        at: Instant,
    ) -> (usize, Duration) {
        let first =
            (at.saturating_duration_since(traffic_start).as_secs_f64() * rate as f64) as usize;
        let rest = self.answers.get(first..).unwrap_or_default();
        let Some(down) = rest.iter().position(|a| *a != Answer::Accepted) else {
            return (0, Duration::ZERO);
        };
        let up = rest[down..]
            .iter()
            .position(|a| *a == Answer::Accepted)
            .unwrap_or(rest.len() - down);
        let lost = rest[down..down + up]
            .iter()
            .filter(|a| **a != Answer::Unsent)
            .count();
        (lost, Duration::from_secs_f64(up as f64 / rate as f64))
    }
}
