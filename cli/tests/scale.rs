//! Scale to zero under `ferry dev`: a revision at zero replicas gets a burst of events; the
//! dispatcher holds them (demand), the autoscaler starts replicas, every event is delivered
//! with no more than containerConcurrency in flight per replica, none is dead-lettered, and the
//! revision goes back to zero after the grace period.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use ferry_testkit::process::{eventually, http_get};
use serde_json::Value;
use support::*;

const CONCURRENCY: u64 = 4;
const EVENTS: usize = 1000;

fn manifests(dir: &std::path::Path, bin: &std::path::Path) -> std::path::PathBuf {
    let recorder = bin.join("event-recorder");
    let text = format!(
        r#"apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: burst
spec:
  broker: default
  subscriber:
    ref: {{apiVersion: serving.knative.dev/v1, kind: Service, name: sink}}
  delivery:
    retry: 2
    deadLetterSink:
      ref: {{apiVersion: serving.knative.dev/v1, kind: Service, name: dead-letters}}
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: sink
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/min-scale: "0"
        autoscaling.knative.dev/max-scale: "3"
    spec:
      containerConcurrency: {CONCURRENCY}
      containers:
        - image: event-recorder
          command: [{recorder:?}]
          env:
            - {{name: DELAY_MS, value: "20"}}
            - {{name: EVENTS_FILE, value: {sink:?}}}
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: dead-letters
spec:
  template:
    spec:
      containers:
        - image: event-recorder
          command: [{recorder:?}]
          env:
            - {{name: EVENTS_FILE, value: {dead:?}}}
"#,
        sink = dir.join("sink.jsonl"),
        dead = dir.join("dead.jsonl"),
    );
    let out = dir.join("manifests");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("burst.yaml"), text).unwrap();
    out
}

fn replicas(dev: &Dev) -> Option<(usize, Vec<String>)> {
    let row = dev.row("Revision", "sink-00001")?;
    let endpoints: Vec<String> = row["endpoints"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let detail = row["detail"].as_str()?;
    // "<ready>/<replicas> replicas ready, ..."
    let running: usize = detail.split('/').nth(1)?.split(' ').next()?.parse().ok()?;
    Some((running, endpoints))
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Nothing reached the dead-letter sink, and the dispatcher neither dead-lettered nor dropped
/// an event of the Trigger.
fn assert_nothing_dead_lettered(dev: &Dev, dir: &std::path::Path) {
    assert!(lines(&dir.join("dead.jsonl")).is_empty());
    let metrics = http_get(dev.process.as_ref().unwrap().addr("admin"), "/metrics");
    for outcome in ["dead_lettered", "dropped"] {
        let line = format!(
            "ferry_dispatcher_egress_events_total{{egress=\"Trigger default/burst\",outcome=\"{outcome}\"}} "
        );
        let value = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .unwrap_or("0");
        assert_eq!(value, "0", "{outcome}");
    }
}

/// Posts `count` events to the default Broker from another thread, each answered 202.
fn post_burst(ingress: String, count: usize) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for i in 0..count {
            let status = http::post_event(
                &format!("{ingress}/default/default"),
                &format!("b{i}"),
                "com.example.burst",
                &format!("k{i}"),
                "{}",
            );
            assert_eq!(status, Some(202), "event {i}");
        }
    })
}

/// The ids of the events the sink recorded.
fn delivered_ids(sink: &std::path::Path) -> BTreeSet<String> {
    lines(sink)
        .iter()
        .filter_map(|e| e["id"].as_str().map(str::to_owned))
        .collect()
}

/// `ferry dev` on `manifests` with a short stable window and grace period (plus `extra`
/// `config-autoscaler` data lines) and a 500 ms autoscaler tick.
fn start_with_autoscaler(dir: &std::path::Path, manifests: &std::path::Path, extra: &str) -> Dev {
    let config = dir.join("config-autoscaler.yaml");
    std::fs::write(
        &config,
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: config-autoscaler, namespace: knative-serving}}\ndata:\n{extra}  stable-window: 6s\n  scale-to-zero-grace-period: 1s\n"),
    )
    .unwrap();
    Dev::start(
        manifests,
        &dir.join("data"),
        &[
            "--autoscaler-config",
            &config.to_string_lossy(),
            "--autoscale-tick-ms",
            "500",
        ],
    )
}

#[test]
fn a_burst_at_zero_is_delivered_within_concurrency_and_the_revision_returns_to_zero() {
    let bin = example_binaries();
    let dir = tempfile::tempdir().unwrap();
    let manifests = manifests(dir.path(), &bin);
    let dev = start_with_autoscaler(dir.path(), &manifests, "");
    dev.ready();
    // Initial scale 1, then no traffic: zero after a stable window and the grace period.
    eventually("the sink scales to zero", WAIT, || {
        replicas(&dev).filter(|(n, _)| *n == 0)
    });

    let posting = post_burst(dev.ingress(), EVENTS);
    let sink = dir.path().join("sink.jsonl");
    let mut most = 0;
    let mut seen = BTreeSet::new();
    let delivered = eventually("every event delivered", WAIT, || {
        if let Some((n, endpoints)) = replicas(&dev) {
            most = most.max(n);
            seen.extend(endpoints);
        }
        let ids = delivered_ids(&sink);
        (ids.len() >= EVENTS).then_some(ids)
    });
    posting.join().unwrap();
    assert_eq!(delivered.len(), EVENTS);
    // Held events are load: the autoscaler adds replicas, never past max-scale.
    assert!(
        (2..=3).contains(&most),
        "replicas during the burst: {most} (max-scale 3)"
    );

    // Every replica still up says how many events it held at once.
    let mut checked = 0;
    for endpoint in &seen {
        let addr = endpoint.trim_start_matches("http://").parse().unwrap();
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            continue; // already scaled away
        }
        let response = http_get(addr, "/stats");
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        let stats: Value = serde_json::from_str(body).unwrap();
        let held = stats["max_in_flight"].as_u64().unwrap();
        assert!(
            held <= CONCURRENCY,
            "{endpoint} had {held} events in flight; containerConcurrency is {CONCURRENCY}"
        );
        checked += 1;
    }
    assert!(checked >= 1, "no replica left to ask ({seen:?})");

    // Nothing was dead-lettered or dropped because of the cold start.
    assert_nothing_dead_lettered(&dev, dir.path());

    // And back to zero once the burst is over.
    eventually("the sink returns to zero", WAIT, || {
        replicas(&dev).filter(|(n, _)| *n == 0)
    });
}

/// A revision created at zero (`initial-scale: 0`, allowed by `allow-zero-initial-scale`) is
/// Ready without ever starting a replica, and so is its Service; a burst then starts it from
/// zero and every event is delivered, none dead-lettered.
#[test]
fn a_burst_reaches_a_service_whose_revision_was_created_at_zero() {
    const BURST: usize = 200;
    let bin = example_binaries();
    let dir = tempfile::tempdir().unwrap();
    let manifests = manifests(dir.path(), &bin);
    let dev = start_with_autoscaler(
        dir.path(),
        &manifests,
        "  allow-zero-initial-scale: \"true\"\n  initial-scale: \"0\"\n",
    );
    dev.ready();
    let sink = dev.row("Service", "sink").expect("the sink Service's row");
    assert_eq!(sink["ready"], true, "{sink}");
    // Ready at zero, and it stays there with nothing sent: its process never ran.
    for _ in 0..10 {
        let row = dev
            .row("Revision", "sink-00001")
            .expect("the revision's row");
        assert_eq!(row["ready"], true, "{row}");
        let detail = row["detail"].as_str().unwrap_or_default();
        assert!(detail.starts_with("0/0 replicas ready"), "{detail}");
        assert!(
            !detail.contains("pid") && !detail.contains("restarts"),
            "{detail}"
        );
        assert_eq!(replicas(&dev), Some((0, Vec::new())));
        std::thread::sleep(Duration::from_millis(200));
    }

    let posting = post_burst(dev.ingress(), BURST);
    let sink = dir.path().join("sink.jsonl");
    let mut most = 0;
    let delivered = eventually("every event delivered", WAIT, || {
        if let Some((n, _)) = replicas(&dev) {
            most = most.max(n);
        }
        let ids = delivered_ids(&sink);
        (ids.len() >= BURST).then_some(ids)
    });
    posting.join().unwrap();
    let want: BTreeSet<String> = (0..BURST).map(|i| format!("b{i}")).collect();
    assert_eq!(delivered, want);
    assert!(most >= 1, "the burst started no replica");
    assert_nothing_dead_lettered(&dev, dir.path());
}
