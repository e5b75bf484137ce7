//! The operator's HTTP endpoints — `/metrics`, `/healthz`, `/readyz` — and the [`Metrics`] they
//! expose.
//!
//! Every replica serves them, leader or not: a standby is healthy and ready (it is waiting to
//! take over), and its `ferry_operator_leader` gauge reads 0.

use std::{future::Future, sync::Arc, sync::atomic::AtomicU64, time::Duration};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Registry, Unit},
};
use tokio::{net::TcpListener, sync::watch};

/// The content type of the OpenMetrics text format that `/metrics` serves.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of the per-kind metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// Labels of the failure counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    kind: String,
    reason: String,
}

/// Builds each reconcile-duration histogram: 5 ms to about 10 s.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

/// The operator's Prometheus metrics, all named `ferry_operator_*`.
///
/// - `ferry_operator_reconcile_total{kind}`: reconciles that finished, failed or not.
/// - `ferry_operator_reconcile_errors_total{kind,reason}`: reconciles that failed, and why.
/// - `ferry_operator_reconcile_duration_seconds{kind}`: how long reconciles took.
/// - `ferry_operator_leader`: 1 while this replica leads, else 0.
/// - `ferry_operator_contract_generation`: generation of the last data-plane contract written.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<KindLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    durations: Family<KindLabels, Histogram, fn() -> Histogram>,
    leader: Gauge,
    contract_generation: Gauge<u64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric, at zero, in a registry of its own.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ferry_operator");
        let reconciles = Family::<KindLabels, Counter>::default();
        registry.register(
            "reconcile",
            "Reconciles that finished, failed or not, by kind",
            reconciles.clone(),
        );
        let failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by kind and reason",
            failures.clone(),
        );
        let durations = Family::new_with_constructor(duration_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "reconcile_duration",
            "How long reconciles took, by kind",
            Unit::Seconds,
            durations.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease, else 0",
            leader.clone(),
        );
        let contract_generation = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "contract_generation",
            "Generation of the last data-plane contract this operator wrote",
            contract_generation.clone(),
        );
        Self {
            registry,
            reconciles,
            failures,
            durations,
            leader,
            contract_generation,
        }
    }

    /// Counts a finished reconcile of `kind` (failed or not) and records how long it took.
    pub fn reconciled(&self, kind: &str, duration: Duration) {
        let labels = KindLabels {
            kind: kind.to_owned(),
        };
        self.reconciles.get_or_create(&labels).inc();
        self.durations
            .get_or_create(&labels)
            .observe(duration.as_secs_f64());
    }

    /// Counts a failed reconcile of `kind`; `reason` is a short CamelCase cause such as
    /// `BrokerNotFound` (keep the set small: each value is a time series).
    pub fn failed(&self, kind: &str, reason: &str) {
        let labels = FailureLabels {
            kind: kind.to_owned(),
            reason: reason.to_owned(),
        };
        self.failures.get_or_create(&labels).inc();
    }

    /// Records whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Records the generation of the data-plane contract just written.
    pub fn set_contract_generation(&self, generation: u64) {
        self.contract_generation.set(generation);
    }

    /// Every metric in the OpenMetrics text format, ending with `# EOF`.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a `String` cannot fail, and neither can encoding these metric types.
        encode(&mut text, &self.registry).expect("encoding metrics into a String");
        text
    }
}

/// Whether the operator is ready, as `/readyz` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Not ready yet; the reason says what it waits for ("waiting for caches to sync").
    Starting(String),
    /// Leading, with its controllers' caches synced.
    Leading,
    /// A follower standing by to take over. Ready: a rollout must not wait on a standby to
    /// win an election it cannot win while the old leader runs.
    Standby,
}

impl Default for Readiness {
    fn default() -> Self {
        Self::Starting("starting".to_owned())
    }
}

impl Readiness {
    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        !matches!(self, Self::Starting(_))
    }
}

/// What the endpoints read: the metrics, and the readiness the caller keeps up to date.
#[derive(Clone, Debug)]
pub struct HttpState {
    /// The metrics `/metrics` encodes.
    pub metrics: Arc<Metrics>,
    /// The readiness `/readyz` reports; the caller holds the sender.
    pub readiness: watch::Receiver<Readiness>,
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until `shutdown` completes, then
/// finishes the requests in flight.
///
/// # Errors
///
/// If accepting connections fails fatally.
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        state.metrics.encode(),
    )
}

/// Alive as long as the process answers.
async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<HttpState>) -> (StatusCode, String) {
    match &*state.readiness.borrow() {
        Readiness::Starting(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}"),
        ),
        Readiness::Leading => (StatusCode::OK, "ok: leading".to_owned()),
        Readiness::Standby => (StatusCode::OK, "ok: standby".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::SocketAddr;

    use tokio::{sync::oneshot, task::JoinHandle};

    /// A `serve` running on a loopback port, with the handles a test needs.
    struct Server {
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        readiness: watch::Sender<Readiness>,
        stop: oneshot::Sender<()>,
        task: JoinHandle<std::io::Result<()>>,
    }

    impl Server {
        async fn start() -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let metrics = Arc::new(Metrics::new());
            let (readiness, rx) = watch::channel(Readiness::default());
            let (stop, stopped) = oneshot::channel::<()>();
            let state = HttpState {
                metrics: metrics.clone(),
                readiness: rx,
            };
            let task = tokio::spawn(serve(listener, state, async {
                stopped.await.ok();
            }));
            Self {
                addr,
                metrics,
                readiness,
                stop,
                task,
            }
        }

        /// GETs `path`: status, content type and body.
        async fn get(&self, path: &str) -> (u16, String, String) {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let response = client
                .get(format!("http://{}{path}", self.addr))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .map(|value| value.to_str().unwrap().to_owned())
                .unwrap_or_default();
            (status, content_type, response.text().await.unwrap())
        }
    }

    #[test]
    fn encode_names_every_metric_with_its_labels() {
        let metrics = Metrics::new();
        metrics.reconciled("Broker", Duration::from_millis(30));
        metrics.reconciled("Broker", Duration::from_millis(50));
        metrics.failed("Trigger", "BrokerNotFound");
        metrics.set_leader(true);
        metrics.set_contract_generation(7);

        let text = metrics.encode();
        for line in [
            "# TYPE ferry_operator_reconcile counter",
            r#"ferry_operator_reconcile_total{kind="Broker"} 2"#,
            r#"ferry_operator_reconcile_errors_total{kind="Trigger",reason="BrokerNotFound"} 1"#,
            "# TYPE ferry_operator_reconcile_duration_seconds histogram",
            "# UNIT ferry_operator_reconcile_duration_seconds seconds",
            r#"ferry_operator_reconcile_duration_seconds_count{kind="Broker"} 2"#,
            r#"ferry_operator_reconcile_duration_seconds_bucket{le="0.04",kind="Broker"} 1"#,
            "ferry_operator_leader 1",
            "ferry_operator_contract_generation 7",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");

        metrics.set_leader(false);
        assert!(
            metrics
                .encode()
                .lines()
                .any(|l| l == "ferry_operator_leader 0")
        );
    }

    #[test]
    fn only_starting_is_not_ready() {
        assert!(!Readiness::default().is_ready());
        assert!(!Readiness::Starting("waiting for caches to sync".into()).is_ready());
        assert!(Readiness::Leading.is_ready());
        assert!(Readiness::Standby.is_ready());
    }

    #[tokio::test]
    async fn healthz_answers_ok_from_the_start() {
        let server = Server::start().await;
        assert_eq!(
            server.get("/healthz").await,
            (200, "text/plain; charset=utf-8".into(), "ok".into())
        );
        assert_eq!(server.get("/nope").await.0, 404);
    }

    #[tokio::test]
    async fn readyz_is_ready_once_leading_with_synced_caches_or_standing_by() {
        let server = Server::start().await;
        let (status, _, body) = server.get("/readyz").await;
        assert_eq!((status, body.as_str()), (503, "not ready: starting"));

        server
            .readiness
            .send_replace(Readiness::Starting("waiting for caches to sync".into()));
        let (status, _, body) = server.get("/readyz").await;
        assert_eq!(
            (status, body.as_str()),
            (503, "not ready: waiting for caches to sync")
        );

        server.readiness.send_replace(Readiness::Standby);
        let (status, _, body) = server.get("/readyz").await;
        assert_eq!((status, body.as_str()), (200, "ok: standby"));

        server.readiness.send_replace(Readiness::Leading);
        let (status, _, body) = server.get("/readyz").await;
        assert_eq!((status, body.as_str()), (200, "ok: leading"));
    }

    #[tokio::test]
    async fn metrics_serves_openmetrics_text_of_what_was_recorded() {
        let server = Server::start().await;
        server
            .metrics
            .reconciled("Trigger", Duration::from_millis(12));
        server.metrics.failed("Trigger", "BrokerNotReady");
        server.metrics.set_leader(true);
        server.metrics.set_contract_generation(42);

        let (status, content_type, body) = server.get("/metrics").await;
        assert_eq!(status, 200);
        assert_eq!(content_type, OPENMETRICS_CONTENT_TYPE);
        for needle in [
            r#"ferry_operator_reconcile_total{kind="Trigger"} 1"#,
            r#"ferry_operator_reconcile_errors_total{kind="Trigger",reason="BrokerNotReady"} 1"#,
            r#"ferry_operator_reconcile_duration_seconds_count{kind="Trigger"} 1"#,
            "ferry_operator_leader 1",
            "ferry_operator_contract_generation 42",
        ] {
            assert!(body.contains(needle), "no {needle:?} in\n{body}");
        }
    }

    #[tokio::test]
    async fn serve_returns_on_shutdown() {
        let server = Server::start().await;
        assert_eq!(server.get("/healthz").await.0, 200);
        server.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server.task)
            .await
            .expect("serve did not stop")
            .unwrap()
            .unwrap();
        let refused = tokio::net::TcpStream::connect(server.addr).await;
        assert!(refused.is_err(), "still listening after shutdown");
    }
}
