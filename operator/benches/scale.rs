//! Operator scale against a REAL API server: N Triggers across M Brokers, from the first
//! create until every one is Ready, with the operator's peak RSS.
//!
//! ```sh
//! FERRY_KUBE_BIN=/opt/kube/bin cargo bench -p ferry-operator --bench scale -- [triggers] [brokers]
//! ```
//!
//! `FERRY_OPERATOR_ARGS` adds operator flags, e.g. `--reconcile-concurrency=128`.
//!
//! The operator runs as its own process (`ferry-operator`, so its RSS is its own) with a
//! kubeconfig for the test API server. No dispatcher pods run here, so a stand-in answers the
//! operator's `/readyz` probe with the generation of the contract Secret, as a dispatcher
//! that applied it would. Topics are created on the embedded log, in this process.

#[path = "../tests/kube/mod.rs"]
#[allow(unused_imports)]
mod kube;

use std::time::{Duration, Instant};

use ::kube::api::{Api, Patch, PatchParams};
use ferry_api::eventing::{Broker, Trigger};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use serde_json::json;

use kube::{ADMIN_TOKEN, KubeApi};

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Answers `/readyz` with the contract Secret's generation.
async fn stand_in(api: Api<Secret>) -> std::net::SocketAddr {
    let generation = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let g = generation.clone();
    tokio::spawn(async move {
        loop {
            if let Ok(Some(secret)) = api.get_opt("ferry-contract").await
                && let Ok(Some(c)) = ferry_operator::contract_secret::contract_in(&secret)
            {
                g.store(c.generation, std::sync::atomic::Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let app = axum::Router::new()
        .route("/autoscaler/stats", axum::routing::get(|| async { "[]" }))
        .route(
            "/readyz",
            axum::routing::get(move || {
                let g = generation.load(std::sync::atomic::Ordering::Relaxed);
                async move { format!("generation {g}\n") }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn create(
    brokers: &Api<Broker>,
    triggers: &Api<Trigger>,
    brokers_n: usize,
    range: std::ops::Range<usize>,
) {
    let apply = PatchParams::apply("ferry-scale").force();
    futures::stream::iter(0..brokers_n)
        .for_each_concurrent(16, |b| {
            let brokers = brokers.clone();
            let apply = apply.clone();
            async move {
                let name = format!("b{b}");
                let m = json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                    "metadata": {"name": name, "annotations": {"eventing.knative.dev/broker.class": "Ferry"}}});
                brokers.patch(&name, &apply, &Patch::Apply(&m)).await.expect("broker");
            }
        })
        .await;
    futures::stream::iter(range)
        .for_each_concurrent(32, |t| {
            let triggers = triggers.clone();
            let apply = apply.clone();
            async move {
                let name = format!("t{t}");
                let m = json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
                    "metadata": {"name": name},
                    "spec": {"broker": format!("b{}", t % brokers_n),
                             "filter": {"attributes": {"type": format!("type-{t}")}},
                             "subscriber": {"uri": format!("http://sink-{}.scale.svc.cluster.local/", t % 50)}}});
                triggers.patch(&name, &apply, &Patch::Apply(&m)).await.expect("trigger");
            }
        })
        .await;
}

/// CPU seconds (user + system) a process has used.
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

/// Per Trigger name: (has Ferry's finalizer, Ready), kept by a watch so that measuring does
/// not load the API server (a list of every Trigger each poll would cost it more than the
/// operator's own traffic).
#[derive(Default)]
struct Progress {
    triggers: std::sync::Mutex<std::collections::HashMap<String, (bool, bool)>>,
}

impl Progress {
    fn counts(&self) -> (usize, usize) {
        let t = self.triggers.lock().expect("progress");
        (
            t.values().filter(|(f, _)| *f).count(),
            t.values().filter(|(_, r)| *r).count(),
        )
    }
}

fn watch_progress(triggers: Api<Trigger>) -> std::sync::Arc<Progress> {
    use ::kube::runtime::watcher::{self, Event};
    let progress = std::sync::Arc::new(Progress::default());
    let p = progress.clone();
    tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher::watcher(triggers, watcher::Config::default()));
        while let Some(event) = events.next().await {
            let (Ok(Event::Apply(t)) | Ok(Event::InitApply(t))) = event else {
                continue;
            };
            let finalized = t
                .metadata
                .finalizers
                .as_ref()
                .is_some_and(|f| !f.is_empty());
            let ready = t.status.as_ref().is_some_and(|s| s.status.is_ready());
            let name = t.metadata.name.clone().unwrap_or_default();
            p.triggers
                .lock()
                .expect("progress")
                .insert(name, (finalized, ready));
        }
    });
    progress
}

/// Waits until `n` Triggers are Ready (at most 10 minutes), sampling the operator's RSS and
/// printing a timeline every 5 s: Triggers with the finalizer, Ready, and CPU seconds used
/// since `since` by the operator, kube-apiserver, etcd and this process (log, stand-in, watch).
async fn wait_all_ready(
    progress: &Progress,
    n: usize,
    pids: &[(&str, String)],
    peak: &mut u64,
) -> Instant {
    let started = Instant::now();
    let cpu_at_start: Vec<f64> = pids.iter().map(|(_, p)| cpu_seconds(p)).collect();
    let operator: u32 = pids[0].1.parse().expect("operator pid");
    let mut next_line = started;
    loop {
        let (finalized, ready) = progress.counts();
        *peak = (*peak).max(rss_kib(operator).unwrap_or(0));
        let done = ready >= n;
        if done || Instant::now() >= next_line {
            let cpu: Vec<String> = pids
                .iter()
                .zip(&cpu_at_start)
                .map(|((name, pid), start)| format!("{name} {:.1}", cpu_seconds(pid) - start))
                .collect();
            eprintln!(
                "  {:6.1} s: {finalized:>6} with finalizer, {ready:>6} Ready, operator RSS {} MiB; CPU s: {}",
                started.elapsed().as_secs_f64(),
                rss_kib(operator).unwrap_or(0) / 1024,
                cpu.join(", ")
            );
            next_line += Duration::from_secs(5);
        }
        if done {
            return Instant::now();
        }
        if started.elapsed() > Duration::from_secs(600) {
            println!("gave up: {ready}/{n} Ready after 600 s");
            return Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main]
async fn main() {
    let mut numbers = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(|a| a.parse::<usize>().expect("a number"));
    let triggers_n = numbers.next().unwrap_or(10_000);
    let brokers_n = numbers.next().unwrap_or(100);
    let kube = KubeApi::start().await;
    kube.install_crds().await;
    kube.namespace("ferry-system").await;
    kube.namespace("scale").await;
    let client = kube.admin();
    let dir = tempfile::tempdir().expect("temp dir");
    let log = ferry_broker::Broker::start(
        ferry_broker::BrokerConfig::local(&dir.path().join("log"), &[]).expect("log flags"),
    )
    .await
    .expect("log starts");
    let readyz = stand_in(Api::namespaced(client.clone(), "ferry-system")).await;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: {}\n    insecure-skip-tls-verify: true\nusers:\n- name: admin\n  user:\n    token: {ADMIN_TOKEN}\ncontexts:\n- name: e2e\n  context: {{cluster: e2e, user: admin}}\ncurrent-context: e2e\n",
            kube.url
        ),
    )
    .expect("kubeconfig");
    let brokers: Api<Broker> = Api::namespaced(client.clone(), "scale");
    let triggers: Api<Trigger> = Api::namespaced(client.clone(), "scale");
    let created = Instant::now();
    create(&brokers, &triggers, brokers_n, 0..triggers_n).await;
    println!(
        "API server alone: created {brokers_n} brokers and {triggers_n} triggers in {:.1} s",
        created.elapsed().as_secs_f64()
    );

    let progress = watch_progress(triggers.clone());
    // Phase 1: the operator starts with every object already there.
    let mut operator = std::process::Command::new(env!("CARGO_BIN_EXE_ferry-operator"))
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        // As the chart's Deployment sets it (charts/ferry/templates/operator.yaml).
        .env(
            "MIMALLOC_PURGE_DELAY",
            std::env::var("MIMALLOC_PURGE_DELAY").unwrap_or_else(|_| "10".to_owned()),
        )
        .args([
            "--metrics-listen=127.0.0.1:0",
            "--leader-election-namespace=ferry-system",
            "--identity=scale",
            "--default-partitions=1",
            "--dispatcher-poll=200ms",
            "--ingress-url=http://127.0.0.1:1",
        ])
        .arg(format!("--dispatcher-admin-url=http://{readyz}"))
        .arg(format!("--kafka-bootstrap-servers={}", log.kafka_addr))
        .args(
            std::env::var("FERRY_OPERATOR_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .spawn()
        .expect("ferry-operator starts");
    let pid = operator.id();
    let started = Instant::now();
    let (etcd, apiserver) = kube.pids();
    let pids = [
        ("operator", pid.to_string()),
        ("kube-apiserver", apiserver.to_string()),
        ("etcd", etcd.to_string()),
        ("bench", "self".to_owned()),
    ];
    let mut peak_seen = 0;
    let ready_after = wait_all_ready(&progress, triggers_n, &pids, &mut peak_seen).await;
    println!(
        "phase 1: all {triggers_n} triggers Ready {:.1} s after the operator started; operator peak RSS so far {} MiB",
        (ready_after - started).as_secs_f64(),
        peak_rss_kib(pid).unwrap_or(0).max(peak_seen) / 1024
    );

    // Phase 2: a tenth more, created while it runs.
    let extra = triggers_n / 10;
    let live = Instant::now();
    create(
        &brokers,
        &triggers,
        brokers_n,
        triggers_n..triggers_n + extra,
    )
    .await;
    let created_live = live.elapsed();
    let done = wait_all_ready(&progress, triggers_n + extra, &pids, &mut peak_seen).await;
    println!(
        "phase 2: {extra} more created in {:.1} s while it ran; all Ready {:.1} s after the last create",
        created_live.as_secs_f64(),
        (done - live - created_live).as_secs_f64()
    );
    let rss_now = rss_kib(pid).unwrap_or(0);
    let peak = peak_rss_kib(pid).unwrap_or(0).max(peak_seen);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "ferry-system");
    let contract = secrets.get("ferry-contract").await.expect("contract");
    let stored = contract
        .data
        .as_ref()
        .and_then(|d| d.get(ferry_api::contract::CONTRACT_KEY))
        .map_or(0, |b| b.0.len());
    let generation = ferry_operator::contract_secret::contract_in(&contract)
        .ok()
        .flatten()
        .map_or(0, |c| c.generation);
    println!(
        "operator RSS now {} MiB, peak {} MiB; contract generation {generation}, {} KiB gzip in the Secret",
        rss_now / 1024,
        peak / 1024,
        stored / 1024,
    );
    // SIGTERM, so the operator stops as in a cluster (and a heap profile is written).
    let _ = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status();
    let stopped = Instant::now();
    while operator.try_wait().ok().flatten().is_none()
        && stopped.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = operator.kill();
    let _ = operator.wait();
}
