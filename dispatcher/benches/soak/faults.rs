//! Fault runs under open-loop load: a subscriber failing a share of its requests (delivery
//! spec with retries and a dead-letter sink), and kill -9 of the ingress, of the broker and
//! of an ordered egress, each restarted.

use std::time::{Duration, Instant};

use ferry_api::contract::DeliveryPolicy;
use ferry_api::duck::BackoffPolicy;
use ferry_api::eventing::DeliveryOrder;
use ferry_testkit::audit::{self, Answer};

use crate::plane::{Plane, Shape, log_order, wait_settled};
use crate::traffic::{Sent, Traffic};
use crate::{Settings, Verdicts};

/// How long the sinks may take to see every accepted event after the load ends.
const SETTLE: Duration = Duration::from_secs(180);

fn shape(topic: &'static str, s: &Settings) -> Shape {
    Shape::plain(topic, (s.fault_rate * s.fault_seconds) as usize, s.seed)
}

/// The subscriber answers 500 to a seeded random `fail_ratio` of requests; the Trigger retries
/// `retry` times with exponential backoff, then dead-letters.
pub fn failing_sink(rt: &tokio::runtime::Runtime, s: &Settings, verdicts: &mut Verdicts) {
    let retry = 2;
    let fail = s.fail_ratio;
    let shape = Shape {
        fail_ratio: fail,
        delivery: DeliveryPolicy {
            retry,
            backoff_policy: BackoffPolicy::Exponential,
            backoff_delay_ms: 50,
            ..DeliveryPolicy::default()
        },
        dead_letter: true,
        ..shape("failing", s)
    };
    println!(
        "\n## Failing sink: {} events/s for {} s; the subscriber answers 500 to {:.0}% of requests (seed {}); delivery: retry {retry}, backoffPolicy exponential, backoffDelay 50 ms, deadLetterSink",
        s.fault_rate,
        s.fault_seconds,
        fail * 100.0,
        s.seed
    );
    let plane = rt.block_on(Plane::start(&shape));
    let traffic = Traffic::start(
        rt.handle(),
        plane.target.clone(),
        s.fault_rate,
        s.fault_rate * s.fault_seconds,
        Some(1000),
    );
    let sent = traffic.finish(rt.handle());
    let dead = plane
        .dead_letter
        .as_ref()
        .expect("a dead-letter sink")
        .remote;
    let now = || {
        let (sub, dls) = (plane.subscriber.remote.counts(), dead.counts());
        audit::delivery(&sent.answers, &sub, Some(&dls), Some(retry))
    };
    wait_settled(
        "every accepted event delivered or dead-lettered",
        SETTLE,
        || now().lost == 0,
    );
    let a = now();
    // Each attempt fails independently with probability `fail`: an event is dead-lettered
    // when all retry + 1 attempts fail; it takes 1 + fail + ... + fail^retry attempts on
    // average.
    let n = a.accepted as f64;
    let p_dead = fail.powi(retry as i32 + 1);
    let expected_dead = n * p_dead;
    let sigma = (n * p_dead * (1.0 - p_dead)).sqrt();
    let expected_attempts = n * (0..=retry).map(|k| fail.powi(k as i32)).sum::<f64>();
    let z = (a.dead_lettered as f64 - expected_dead) / sigma.max(1.0);
    println!(
        "\n| sent | 202 | delivered to the subscriber | dead-lettered | expected dead-lettered (n·{fail}^{}) | lost | both | subscriber attempts | expected attempts | failed share of attempts | retried beyond spec | dead-lettered early | duplicates |",
        retry + 1
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {expected_dead:.0} ± {sigma:.0} (z = {z:+.1}) | {} | {} | {} | {expected_attempts:.0} | {:.3} | {} | {} | {} |",
        a.sent,
        a.accepted,
        a.delivered,
        a.dead_lettered,
        a.lost,
        a.both,
        a.attempts,
        a.failed_attempts as f64 / a.attempts.max(1) as f64,
        a.over_retried,
        a.dead_lettered_early,
        a.duplicates,
    );
    for p in a.problems() {
        verdicts.fail(format!("failing sink: {p}"));
    }
    if z.abs() > 5.0 {
        verdicts.fail(format!(
            "failing sink: {} dead-lettered, {expected_dead:.0} expected (z = {z:+.1})",
            a.dead_lettered
        ));
    }
}

/// What a kill did.
struct Kill {
    /// When the process was killed.
    at: Instant,
    /// Generator posts outstanding at that moment.
    in_flight: usize,
    /// From the kill to the restarted process printing its listening line.
    down: Duration,
}

impl Kill {
    /// Runs `kill_and_restart`, timing it.
    fn timed(in_flight: usize, kill_and_restart: impl FnOnce()) -> Kill {
        let at = Instant::now();
        kill_and_restart();
        Kill {
            at,
            in_flight,
            down: at.elapsed(),
        }
    }
}

/// Runs load, calls `kill` a third of the way in, and checks that every event answered 202
/// arrived; returns the plane and what was sent for further checks.
fn kill_run(
    rt: &tokio::runtime::Runtime,
    s: &Settings,
    name: &str,
    shape: &Shape,
    kill: impl FnOnce(&mut Plane, &Traffic) -> Kill,
    verdicts: &mut Verdicts,
) -> (Plane, Sent) {
    let mut plane = rt.block_on(Plane::start(shape));
    let total = s.fault_rate * s.fault_seconds;
    let traffic = Traffic::start(
        rt.handle(),
        plane.target.clone(),
        s.fault_rate,
        total,
        Some(100),
    );
    let started = traffic.scheduled(0);
    std::thread::sleep(Duration::from_secs(s.fault_seconds / 3));
    let k = kill(&mut plane, &traffic);
    let sent = traffic.finish(rt.handle());
    let remote = plane.subscriber.remote;
    let settle_started = Instant::now();
    let now = || audit::delivery(&sent.answers, &remote.counts(), None, None);
    wait_settled(&format!("{name}: every 202 delivered"), SETTLE, || {
        now().lost == 0
    });
    let settled = settle_started.elapsed();
    let a = now();
    let (unanswered, outage) = sent.outage_after(started, s.fault_rate, k.at);
    let count = |answer| sent.answers.iter().filter(|a| **a == answer).count();
    println!(
        "\n| sent | 202 | other status | no answer | in flight at the kill (posts; egress: events) | process down | 202 outage (events not 202 in it) | 202 delivered | lost | delivered without a 202 | duplicates | settled after the load |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {} | {:.2} s | {:.2} s ({unanswered}) | {} | {} | {} | {} | {:.1} s |",
        a.sent,
        a.accepted,
        count(Answer::Refused),
        count(Answer::Failed),
        k.in_flight,
        k.down.as_secs_f64(),
        outage.as_secs_f64(),
        a.delivered,
        a.lost,
        a.unanswered_but_delivered,
        a.duplicates,
        settled.as_secs_f64(),
    );
    for p in a.problems() {
        verdicts.fail(format!("{name}: {p}"));
    }
    (plane, sent)
}

/// Waits (up to 2 s) until the generator has posts outstanding, so the kill lands mid-request.
fn mid_request(traffic: &Traffic) -> usize {
    let deadline = Instant::now() + Duration::from_secs(2);
    while traffic.in_flight() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(100));
    }
    traffic.in_flight()
}

/// kill -9 of the ingress (role ingress, apart from the egress) mid-request, restarted at once.
pub fn kill_ingress(rt: &tokio::runtime::Runtime, s: &Settings, verdicts: &mut Verdicts) {
    println!(
        "\n## kill -9 of the ingress mid-request: {} events/s for {} s, killed at {} s and restarted",
        s.fault_rate,
        s.fault_seconds,
        s.fault_seconds / 3
    );
    let shape = shape("ingress", s);
    kill_run(
        rt,
        s,
        "kill -9 ingress",
        &shape,
        |plane, traffic| Kill::timed(mid_request(traffic), || plane.kill9_ingress(shape.topic)),
        verdicts,
    );
}

/// kill -9 of the broker (default flush: group commit) under load, restarted on its data.
pub fn kill_broker(rt: &tokio::runtime::Runtime, s: &Settings, verdicts: &mut Verdicts) {
    println!(
        "\n## kill -9 of the broker (default --flush always) under load: {} events/s for {} s, killed at {} s and restarted",
        s.fault_rate,
        s.fault_seconds,
        s.fault_seconds / 3
    );
    kill_run(
        rt,
        s,
        "kill -9 broker",
        &shape("broker", s),
        |plane, traffic| {
            Kill::timed(mid_request(traffic), || {
                plane.broker.kill9();
                plane.broker.restart();
            })
        },
        verdicts,
    );
}

/// kill -9 of an ordered egress (role egress) mid-stream, restarted; per partition key the
/// subscriber must see first deliveries in log order.
pub fn kill_ordered_egress(rt: &tokio::runtime::Runtime, s: &Settings, verdicts: &mut Verdicts) {
    println!(
        "\n## kill -9 of an ordered egress mid-stream: {} events/s over 100 partition keys on 4 partitions for {} s, killed at {} s and restarted",
        s.fault_rate,
        s.fault_seconds,
        s.fault_seconds / 3
    );
    let shape = Shape {
        ordering: DeliveryOrder::Ordered,
        ..shape("ordered", s)
    };
    let (plane, _sent) = kill_run(
        rt,
        s,
        "kill -9 ordered egress",
        &shape,
        |plane, _traffic| {
            let in_flight = plane.egress.metric("ferry_dispatcher_in_flight_events") as usize;
            Kill::timed(in_flight, || {
                plane.egress.kill9();
                plane.egress.restart();
            })
        },
        verdicts,
    );
    let log = log_order(&plane.broker.bootstrap(), shape.topic, shape.partitions);
    let o = audit::order(&log, &plane.subscriber.remote.order());
    println!(
        "\n| keys | events in the log | first deliveries out of log order | replays (duplicates) | rewinds | never delivered | not in the log |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {} | {} | {} |",
        o.keys, o.events, o.out_of_order, o.duplicates, o.rewinds, o.missing, o.unknown
    );
    if o.out_of_order > 0 {
        verdicts.fail(format!(
            "ordered egress: {} deliveries out of order",
            o.out_of_order
        ));
    }
}
