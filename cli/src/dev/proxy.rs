//! Local URLs of Services and revisions: HTTP proxies on 127.0.0.1. A Service's proxy splits
//! requests across its revisions by the Route's percents, as Knative's ingress does; a
//! revision's proxy is its stable address and, through the dispatcher's activator, holds
//! requests while the revision has no ready replica (that is demand: the autoscaler starts
//! one) and spreads them over its replicas within `containerConcurrency`.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use ferry_api::contract::{RevisionTarget, Target};
use ferry_dispatcher::activator::Activator;
use ferry_dispatcher::egress::traffic;
use tokio::sync::oneshot;

/// Largest request body forwarded.
const MAX_BODY: usize = 16 << 20;

/// How long a request may wait for a replica.
const ACTIVATION_TIMEOUT: Duration = Duration::from_secs(120);

struct Shared {
    targets: RwLock<Target>,
    http: reqwest::Client,
    activator: Arc<Activator>,
}

/// A running proxy; stops when dropped.
pub struct Proxy {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    shared: Arc<Shared>,
    _stop: oneshot::Sender<()>,
}

impl Proxy {
    /// Starts a proxy on a free loopback port with no targets (it answers 503 until it has).
    ///
    /// # Errors
    /// No port could be bound.
    pub async fn start(activator: Arc<Activator>) -> std::io::Result<Proxy> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            targets: RwLock::new(Target::Revisions(Vec::new())),
            http: reqwest::Client::new(),
            activator,
        });
        let app = Router::new().fallback(forward).with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Proxy {
            url,
            shared,
            _stop: stop,
        })
    }

    /// Routes requests to `targets` from now on (empty: 503).
    pub fn set_targets(&self, targets: Vec<RevisionTarget>) {
        *self
            .shared
            .targets
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Target::Revisions(targets);
    }
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let base = {
        let targets = shared.targets.read().unwrap_or_else(|p| p.into_inner());
        match &*targets {
            Target::Revisions(r) if r.is_empty() => None,
            target => Some(traffic::choose(target, &mut rand::rng()).to_owned()),
        }
    };
    let Some(base) = base else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no revision of this Service is ready yet; ferry dev shows why\n",
        )
            .into_response();
    };
    // An activated revision: wait for a replica with room, and keep the slot until answered.
    let lease = match shared.activator.gate(&base) {
        Some(gate) => match gate.acquire(ACTIVATION_TIMEOUT).await {
            Some(lease) => Some(lease),
            None => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no replica of this revision became ready in time\n",
                )
                    .into_response();
            }
        },
        None => None,
    };
    let base = lease.as_ref().map_or(base.clone(), |l| l.endpoint.clone());
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {MAX_BODY} bytes\n"),
        )
            .into_response();
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut outgoing = shared
        .http
        .request(parts.method, format!("{base}{path}"))
        .body(body);
    for (name, value) in &parts.headers {
        if !is_hop_by_hop(name) {
            outgoing = outgoing.header(name, value);
        }
    }
    match outgoing.send().await {
        Ok(answer) => {
            let mut response = Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                if !is_hop_by_hop(name) {
                    response = response.header(name, value);
                }
            }
            let body = answer.bytes().await.unwrap_or_default();
            response
                .body(Body::from(body))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("revision at {base} did not answer: {e}\n"),
        )
            .into_response(),
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host"
            | "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "upgrade"
            | "content-length"
    )
}
