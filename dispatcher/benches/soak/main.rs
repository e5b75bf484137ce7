//! Soak and fault runs of the whole data plane (issue 21), every part its own release-built
//! process on 127.0.0.1 (see [`plane`]):
//!
//!     cargo build --release -p ferry-broker
//!     cargo bench -p ferry-dispatcher --bench soak
//!
//! 1. **soak**: `FERRY_SOAK_MINUTES` (60) at `FERRY_SOAK_RATE` (2,000) events/s, open loop,
//!    through ingress, broker (default flush) and egress to a sink; VmRSS and CPU of every
//!    process every `FERRY_SOAK_SAMPLE_SECONDS` (5); a row per `FERRY_SOAK_WINDOW_SECONDS`
//!    (60) with the 202 and end-to-end latency of that window; then RSS over the steady state
//!    (from `FERRY_SOAK_WARMUP_SECONDS`, default a fifth of the run, at most 300) against
//!    ±10%, and every accepted event found at the sink.
//! 2. **failing**: the subscriber answers 500 to `FERRY_FAULT_FAIL_RATIO` (0.3) of requests,
//!    drawn with `FERRY_FAULT_SEED` (42); every accepted event is delivered or dead-lettered
//!    per the Trigger's delivery spec, never both, and the counts match the retry math.
//! 3. **kill-ingress**, **kill-broker**, **kill-egress** (ordered): kill -9 a third of the way
//!    into `FERRY_FAULT_SECONDS` (60) at `FERRY_FAULT_RATE` (1,000) events/s, restart; every
//!    event answered 202 is delivered; for the ordered egress, per key, in log order.
//!
//! `FERRY_SOAK_RUNS` picks runs (default all: `soak,failing,kill-ingress,kill-broker,kill-egress`).
//! Tables are printed as they complete; the process exits 1 when a guarantee broke.
//!
//! Started with `FERRY_TALLY_CAPACITY` in its environment, this binary is a tally sink instead
//! (the plane starts its sinks so, each in its own process).

#[path = "../load/mod.rs"]
mod load;
#[path = "../../tests/support/mod.rs"]
mod support;

mod faults;
mod plane;
mod steady;
mod traffic;

use ferry_testkit::tally::{self, TallySettings};

/// What the runs read from the environment (see the top of this file).
pub(crate) struct Settings {
    pub(crate) runs: Vec<String>,
    pub(crate) soak_minutes: f64,
    pub(crate) rate: u64,
    pub(crate) window_seconds: u64,
    pub(crate) sample_seconds: u64,
    pub(crate) warmup_seconds: Option<u64>,
    pub(crate) fault_seconds: u64,
    pub(crate) fault_rate: u64,
    pub(crate) fail_ratio: f64,
    pub(crate) seed: u64,
}

impl Settings {
    fn from_env() -> Settings {
        fn var<T: std::str::FromStr>(name: &str) -> Option<T> {
            std::env::var(name).ok()?.parse().ok()
        }
        Settings {
            runs: std::env::var("FERRY_SOAK_RUNS")
                .unwrap_or_else(|_| "soak,failing,kill-ingress,kill-broker,kill-egress".into())
                .split(',')
                .map(|r| r.trim().to_owned())
                .collect(),
            soak_minutes: var("FERRY_SOAK_MINUTES").unwrap_or(60.0),
            rate: var("FERRY_SOAK_RATE").unwrap_or(2000),
            window_seconds: var("FERRY_SOAK_WINDOW_SECONDS").unwrap_or(60),
            sample_seconds: var("FERRY_SOAK_SAMPLE_SECONDS").unwrap_or(5),
            warmup_seconds: var("FERRY_SOAK_WARMUP_SECONDS"),
            fault_seconds: var("FERRY_FAULT_SECONDS").unwrap_or(60),
            fault_rate: var("FERRY_FAULT_RATE").unwrap_or(1000),
            fail_ratio: var("FERRY_FAULT_FAIL_RATIO").unwrap_or(0.3),
            seed: var("FERRY_FAULT_SEED").unwrap_or(42),
        }
    }
}

/// Broken guarantees and remarks, printed at the end.
#[derive(Default)]
pub(crate) struct Verdicts {
    failures: Vec<String>,
    notes: Vec<String>,
}

impl Verdicts {
    pub(crate) fn fail(&mut self, what: String) {
        eprintln!("FAILED: {what}");
        self.failures.push(what);
    }

    pub(crate) fn note(&mut self, what: String) {
        self.notes.push(what);
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Some(settings) = TallySettings::from_env() {
        rt.block_on(tally::serve_until_killed(&settings));
        return;
    }
    let s = Settings::from_env();
    println!(
        "machine: {} cores, load average {:.1} at the start; broker `--flush always` (default: group commit)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load::load_average()
    );
    let mut verdicts = Verdicts::default();
    for run in &s.runs {
        match run.as_str() {
            "soak" => steady::run(&rt, &s, &mut verdicts),
            "failing" => faults::failing_sink(&rt, &s, &mut verdicts),
            "kill-ingress" => faults::kill_ingress(&rt, &s, &mut verdicts),
            "kill-broker" => faults::kill_broker(&rt, &s, &mut verdicts),
            "kill-egress" => faults::kill_ordered_egress(&rt, &s, &mut verdicts),
            other => panic!("unknown run {other:?} in FERRY_SOAK_RUNS"),
        }
    }
    println!();
    for note in &verdicts.notes {
        println!("note: {note}");
    }
    if verdicts.failures.is_empty() {
        println!("every guarantee held");
    } else {
        for failure in &verdicts.failures {
            println!("FAILED: {failure}");
        }
        std::process::exit(1);
    }
}
