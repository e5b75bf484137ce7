//! A running dispatcher: ingress and admin listeners, the egress set, and the contract
//! watcher that feeds both.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use ferry_api::contract::{Contract, KafkaAuth};
use ferry_runtime::telemetry::Telemetry;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinHandle;

use crate::activator::{Activator, Share};
use crate::config::{DispatcherConfig, Role};
use crate::contract_feed::{self, Gate, Offer, Source};
use crate::egress::EgressSet;
use crate::gateway::Gateway;
use crate::http_server::serve;
use crate::ingress::{self, Ingress};
use crate::journal::Journal;
use crate::journal::endpoint::JournalEndpoint;
use crate::log::Log;
use crate::metrics::Metrics;
use crate::{Error, Result};

struct Shared {
    /// `--pod-ip`: this dispatcher among the contract's `activators`.
    pod_ip: Option<String>,
    metrics: Arc<Metrics>,
    gateway: Arc<Gateway>,
    journal: Arc<Journal>,
    /// `GET /journal/events/{id}` on the admin listener: `ferry trace --dispatcher`.
    journal_endpoint: Arc<JournalEndpoint>,
    activator: Arc<Activator>,
    ingress: Option<Arc<Ingress>>,
    egress: Option<Mutex<EgressSet>>,
    /// Spans, following the contract's tracing settings.
    telemetry: Arc<Telemetry>,
    /// Generation in force; `None` until the first valid contract.
    generation: watch::Sender<Option<u64>>,
    stopping: watch::Sender<bool>,
}

/// A dispatcher serving in this process.
pub struct RunningDispatcher {
    /// Ingress address (when the role has ingress).
    pub http_addr: Option<SocketAddr>,
    /// External entry's address (`--external-listen`, with ingress).
    pub external_addr: Option<SocketAddr>,
    /// Admin address.
    pub admin_addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts a dispatcher; with `--contract-secret`, its Kubernetes client is the one the
/// environment gives (in a pod: the service account's).
///
/// # Errors
/// Invalid flags, a listener that cannot bind, or `--contract-secret` with no Kubernetes
/// client to be had.
pub async fn start(config: DispatcherConfig) -> Result<RunningDispatcher> {
    let kube = match &config.contract_secret {
        Some(secret) => Some(
            ferry_runtime::kube_client::client()
                .await
                .map_err(|reason| Error::KubeClient {
                    secret: secret.to_string(),
                    reason,
                })?,
        ),
        None => None,
    };
    start_with_kube(config, kube).await
}

/// [`start`] with the Kubernetes client that watches `--contract-secret` given (unused
/// without the flag).
///
/// # Errors
/// As [`start`].
pub async fn start_with_kube(
    config: DispatcherConfig,
    kube: Option<kube::Client>,
) -> Result<RunningDispatcher> {
    config.validate()?;
    let secret_watch = match (&config.contract_secret, kube) {
        (Some(secret), Some(client)) => Some((client, secret.clone())),
        (Some(secret), None) => {
            return Err(Error::KubeClient {
                secret: secret.to_string(),
                reason: "none was given".into(),
            });
        }
        (None, _) => None,
    };
    let telemetry = Telemetry::from_env("ferry-dispatcher").map_err(Error::Tracing)?;
    let metrics = Arc::new(Metrics::default());
    let log = Log::new(config.producer_settings());
    let journal = Journal::new(config.journal_settings(), metrics.clone());
    let activator = Arc::new(Activator::default());
    let gateway = Arc::new(Gateway::new(
        activator.clone(),
        metrics.clone(),
        config.traffic_seed,
    ));
    let with_ingress = matches!(config.role, Role::Ingress | Role::All);
    let with_egress = matches!(config.role, Role::Egress | Role::All);
    let ingress = with_ingress.then(|| {
        Arc::new(Ingress {
            routes: Default::default(),
            log: log.clone(),
            metrics: metrics.clone(),
            max_body: config.max_body_bytes,
            body_read_timeout: config.body_read_timeout,
            max_batch_events: config.max_batch_events,
            in_flight: tokio::sync::Semaphore::new(config.max_ingress_in_flight),
            journal: journal.clone(),
            gateway: gateway.clone(),
            telemetry: telemetry.clone(),
        })
    });
    let egress = with_egress.then(|| {
        Mutex::new(EgressSet::new(
            config.egress_settings(),
            log.clone(),
            metrics.clone(),
            journal.clone(),
            activator.clone(),
            telemetry.clone(),
        ))
    });
    let stopping = watch::channel(false).0;
    let journal_endpoint =
        JournalEndpoint::new(config.journal_settings().topic, stopping.subscribe());
    let shared = Arc::new(Shared {
        pod_ip: config.pod_ip.clone(),
        metrics,
        gateway,
        journal,
        journal_endpoint,
        activator,
        ingress,
        egress,
        telemetry,
        generation: watch::channel(None).0,
        stopping,
    });

    // Binds `addr` and serves `app` there until stopped; the bound address.
    let mut tasks = Vec::new();
    let mut listen = async |addr: SocketAddr, app: Router, what: &'static str| {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        let stopping = shared.stopping.subscribe();
        let timeout = config.header_read_timeout;
        tasks.push(tokio::spawn(serve(listener, app, stopping, timeout, what)));
        Ok::<_, Error>(bound)
    };
    let (mut http_addr, mut external_addr) = (None, None);
    if let Some(ingress) = &shared.ingress {
        http_addr = Some(listen(config.listen, ingress::router(ingress.clone()), "ingress").await?);
        if let Some(addr) = config.external_listen {
            let app = ingress::external_router(ingress.clone());
            external_addr = Some(listen(addr, app, "external").await?);
        }
    }
    let admin_app = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(ferry_api::reports::READY_PATH, get(ready))
        .route(ferry_api::reports::STATS_PATH, get(autoscaler_stats))
        .with_state(shared.clone())
        // Read-only, and on the admin port rather than the ingress: the journal says where
        // each event went, which is for operators, not for everyone who may post one.
        .merge(shared.journal_endpoint.clone().router());
    let admin_addr = listen(config.admin_listen, admin_app, "admin").await?;
    let (offers, offered) = mpsc::channel(4);
    tasks.push(tokio::spawn(apply_offers(shared.clone(), offered)));
    tasks.push(tokio::spawn(contract_feed::poll_file(
        config.contract.clone(),
        config.contract_poll,
        offers.clone(),
        shared.stopping.subscribe(),
    )));
    if let Some((client, secret)) = secret_watch {
        tasks.push(tokio::spawn(contract_feed::watch_secret(
            client,
            secret,
            offers,
            shared.stopping.subscribe(),
        )));
    }
    Ok(RunningDispatcher {
        http_addr,
        external_addr,
        admin_addr,
        shared,
        tasks,
    })
}

impl RunningDispatcher {
    /// Stops accepting requests, drains egresses (bounded by the drain timeout) and commits
    /// what settled.
    pub async fn shutdown(self) {
        self.shared.stopping.send_replace(true);
        if let Some(egress) = &self.shared.egress {
            egress.lock().await.shutdown().await;
        }
        let journal = self.shared.journal.clone();
        let _ = tokio::task::spawn_blocking(move || journal.flush()).await;
        // The last spans, exported before the process goes.
        let telemetry = self.shared.telemetry.clone();
        let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }

    /// The activator (for an in-process autoscaler, and proxies that activate too).
    pub fn activator(&self) -> Arc<Activator> {
        self.shared.activator.clone()
    }

    /// The HTTP gateway of Knative Routes (for proxies that serve a Service at a URL of their
    /// own, as `ferry dev`'s do).
    pub fn gateway(&self) -> Arc<Gateway> {
        self.shared.gateway.clone()
    }

    /// The contract generation in force, once one is.
    pub fn generation(&self) -> Option<u64> {
        *self.shared.generation.borrow()
    }
}

/// Per activated revision: average concurrency and completed requests since the previous
/// scrape, replicas, held deliveries — what the autoscaler collects at its tick.
async fn autoscaler_stats(State(shared): State<Arc<Shared>>) -> axum::response::Response {
    let body = serde_json::to_string(&shared.activator.stats()).unwrap_or_else(|_| "[]".into());
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn render_metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.render(),
    )
}

async fn ready(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    if *shared.stopping.borrow() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down\n".to_owned(),
        );
    }
    match *shared.generation.borrow() {
        Some(g) => (StatusCode::OK, ferry_api::reports::ready_body(g)),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no valid contract applied yet\n".to_owned(),
        ),
    }
}

/// Applies what the contract sources offer ([`contract_feed`]): a valid contract the gate
/// admits; an invalid one is logged, counted and ignored, and the last good contract stays in
/// force.
async fn apply_offers(shared: Arc<Shared>, mut offers: mpsc::Receiver<Offer>) {
    let mut gate = Gate::default();
    while let Some(Offer { source, bytes }) = offers.recv().await {
        match Contract::from_bytes(&bytes) {
            Ok(contract) if gate.admits(source, contract.generation) => {
                apply(&shared, &contract, source).await;
                gate.applied(source, contract.generation);
            }
            Ok(contract) => tracing::debug!(
                %source,
                generation = contract.generation,
                "contract not newer than the one in force; ignored"
            ),
            Err(reason) => {
                shared.metrics.contract_rejected();
                tracing::error!(%source, %reason, "contract rejected; the previous one stays in force");
            }
        }
    }
}

async fn apply(shared: &Shared, contract: &Contract, source: Source) {
    // The journal topic is created in the background: an unreachable log must not hold up
    // the contract (its events get 503s meanwhile, and journal entries wait or are dropped).
    let logs: std::collections::BTreeMap<String, Option<KafkaAuth>> = contract
        .resources
        .iter()
        .map(|r| (r.bootstrap_servers.clone(), r.auth.clone()))
        .collect();
    shared.journal_endpoint.set_logs(logs.clone());
    for (bootstrap, auth) in logs {
        let journal = shared.journal.clone();
        tokio::spawn(async move { journal.prepare(&bootstrap, auth.as_ref()).await });
    }
    // Replicas first: a new egress may deliver to them at once.
    shared.telemetry.apply(contract.tracing.as_ref());
    let share = Share::among(&contract.activators, shared.pod_ip.as_deref());
    shared.activator.apply(&contract.activation, share);
    shared.metrics.ready_replicas(
        contract
            .activation
            .iter()
            .map(|a| (a.revision.as_str(), a.endpoints.len())),
    );
    if let Some(ingress) = &shared.ingress {
        ingress.apply(contract);
    }
    if let Some(egress) = &shared.egress {
        egress.lock().await.apply(contract).await;
    }
    shared.metrics.contract_applied(contract.generation);
    shared.generation.send_replace(Some(contract.generation));
    tracing::info!(
        generation = contract.generation,
        %source,
        resources = contract.resources.len(),
        "contract applied"
    );
}
