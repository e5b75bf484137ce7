//! The soak: a long open-loop run at a fixed rate through ingress, broker and egress to a
//! sink, with every process's memory and CPU sampled, latency reported per window, and every
//! accepted event checked at the sink.

use std::time::{Duration, Instant};

use ferry_testkit::audit;

use crate::load::{cpu_seconds, load_average, open_fds, status_kib};
use crate::plane::{Plane, Shape, wait_settled};
use crate::traffic::Traffic;
use crate::{Settings, Verdicts};

/// One reading of a process.
#[derive(Clone, Copy, Default)]
struct Reading {
    rss_kib: u64,
    anon_kib: u64,
    cpu_s: f64,
    /// Open file descriptors: the connections a process holds weigh in its memory.
    fds: usize,
}

fn read(pid: u32) -> Reading {
    Reading {
        rss_kib: status_kib(pid, "VmRSS:"),
        anon_kib: status_kib(pid, "RssAnon:"),
        cpu_s: cpu_seconds(pid),
        fds: open_fds(pid),
    }
}

const MIB: f64 = 1024.0;

pub fn run(rt: &tokio::runtime::Runtime, s: &Settings, verdicts: &mut Verdicts) {
    let seconds = (s.soak_minutes * 60.0).round() as u64;
    let total = s.rate * seconds;
    let warmup = s.warmup_seconds.unwrap_or((seconds / 5).min(300));
    println!(
        "\n## Soak: {seconds} s at {} events/s open loop ({total} events), windows of {} s, RSS sampled every {} s, steady state from {warmup} s",
        s.rate, s.window_seconds, s.sample_seconds
    );
    let shape = Shape::plain("soak", total as usize, 0);
    let plane = rt.block_on(Plane::start(&shape));
    let pids = plane.pids();
    let names: Vec<&str> = pids.iter().map(|(n, _)| *n).collect();
    let traffic = Traffic::start(rt.handle(), plane.target.clone(), s.rate, total, Some(1000));
    let started = traffic.scheduled(0);
    let mut samples: Vec<(u64, Vec<Reading>)> = Vec::new();
    let mut last_cpu: Vec<Reading> = pids.iter().map(|(_, p)| read(*p)).collect();
    let mut last_window = Instant::now();
    let per_window = (s.window_seconds / s.sample_seconds).max(1);
    println!(
        "\n| t s | 202 | refused | failed | 202 p50 / p99 / p99.9 / max ms | delivered | end-to-end p50 / p99 / max ms | RSS MiB {} | CPU % {} | load |",
        names.join(" / "),
        names.join(" / ")
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut next_sample = started;
    while !traffic.finished() {
        next_sample += Duration::from_secs(s.sample_seconds);
        std::thread::sleep(next_sample.saturating_duration_since(Instant::now()));
        let t = started.elapsed().as_secs();
        let now: Vec<Reading> = pids.iter().map(|(_, p)| read(*p)).collect();
        samples.push((t, now.clone()));
        if !(samples.len() as u64).is_multiple_of(per_window) && !traffic.finished() {
            continue;
        }
        let span = last_window.elapsed().as_secs_f64();
        last_window = Instant::now();
        let acks = traffic.take_window();
        let sink = plane.subscriber.remote.window();
        let (a, e) = (acks.latency, sink.latency);
        let rss: Vec<String> = now
            .iter()
            .map(|r| format!("{:.0}", r.rss_kib as f64 / MIB))
            .collect();
        let cpu: Vec<String> = now
            .iter()
            .zip(&last_cpu)
            .map(|(n, l)| format!("{:.0}", (n.cpu_s - l.cpu_s) * 100.0 / span))
            .collect();
        last_cpu = now;
        println!(
            "| {t} | {} | {} | {} | {:.1} / {:.1} / {:.1} / {:.0} | {} | {:.1} / {:.1} / {:.0} | {} | {} | {:.1} |",
            acks.accepted,
            acks.refused,
            acks.failed,
            a.p50,
            a.p99,
            a.p999,
            a.max,
            sink.requests - sink.failed,
            e.p50,
            e.p99,
            e.max,
            rss.join(" / "),
            cpu.join(" / "),
            load_average()
        );
    }
    let end_cpu: Vec<f64> = pids.iter().map(|(_, p)| cpu_seconds(*p)).collect();
    let ran = started.elapsed().as_secs_f64();
    let sent = traffic.finish(rt.handle());
    let accepted = sent.accepted() as u64;
    let remote = plane.subscriber.remote;
    let audit_now = || audit::delivery(&sent.answers, &remote.counts(), None, None);
    wait_settled(
        "every accepted event delivered",
        Duration::from_secs(120),
        || audit_now().lost == 0,
    );
    let audit = audit_now();

    println!(
        "\n| process | RSS MiB from {warmup} s (median of the first window) | at the end (median of the last window) | min | max | end against start | within ±10% | RssAnon MiB at {warmup} s / end | open fds at {warmup} s / end | CPU s | CPU % of one core |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let steady: Vec<&(u64, Vec<Reading>)> = samples.iter().filter(|(t, _)| *t >= warmup).collect();
    for (i, name) in names.iter().enumerate() {
        let (Some(first), Some(last)) = (steady.first(), steady.last()) else {
            break;
        };
        // Start and end: the median of the first and of the last window's samples, so that
        // one sample's momentary peak does not decide; the extremes are reported beside them.
        let median = |samples: &[&(u64, Vec<Reading>)]| {
            let mut v: Vec<f64> = samples.iter().map(|(_, r)| r[i].rss_kib as f64).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let n = (per_window as usize).min(steady.len());
        let base = median(&steady[..n]);
        let end = median(&steady[steady.len() - n..]);
        let series: Vec<f64> = steady.iter().map(|(_, r)| r[i].rss_kib as f64).collect();
        let (min, max) = series
            .iter()
            .fold((f64::MAX, 0.0_f64), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        let change = (end - base) / base * 100.0;
        let flat = change.abs() <= 10.0;
        let cpu = end_cpu[i] - samples.first().map_or(0.0, |s| s.1[i].cpu_s);
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {change:+.1}% | {} | {:.1} / {:.1} | {} / {} | {cpu:.0} | {:.0} |",
            base / MIB,
            end / MIB,
            min / MIB,
            max / MIB,
            if flat { "yes" } else { "**no**" },
            first.1[i].anon_kib as f64 / MIB,
            last.1[i].anon_kib as f64 / MIB,
            first.1[i].fds,
            last.1[i].fds,
            cpu * 100.0 / ran,
        );
        // The system under test must stay flat; the sinks and the generator are the harness.
        if ["broker", "ingress", "egress"].contains(name) && !flat {
            verdicts.fail(format!(
                "soak: {name} RSS changed {change:+.1}% in steady state"
            ));
        }
    }
    let l = sent.latency;
    println!(
        "\nsent {} (not sent: {}), answered 202: {accepted}, other status: {}, no answer: {}; delivered: {}, lost: {}, duplicates: {}; 202 latency over the run p50 {:.1} / p99 {:.1} / p99.9 {:.1} / max {:.0} ms; achieved {:.0} events/s accepted",
        audit.sent,
        sent.skipped,
        sent.answers
            .iter()
            .filter(|a| **a == audit::Answer::Refused)
            .count(),
        sent.answers
            .iter()
            .filter(|a| **a == audit::Answer::Failed)
            .count(),
        audit.delivered,
        audit.lost,
        audit.duplicates,
        l.p50,
        l.p99,
        l.p999,
        l.max,
        accepted as f64 / seconds as f64,
    );
    for p in audit.problems() {
        verdicts.fail(format!("soak: {p}"));
    }
    if accepted < audit.sent as u64 {
        verdicts.note(format!(
            "soak: {} of {} events not answered 202",
            audit.sent as u64 - accepted,
            audit.sent
        ));
    }
}
