//! Local URLs of Services and revisions: HTTP listeners on 127.0.0.1, each serving one
//! address through the dispatcher's [`Gateway`] — the code that serves Knative Service URLs in
//! a cluster. A Service's proxy splits requests across its revisions by the Route's percents; a
//! revision's proxy is its stable address and, through the activator, holds requests while the
//! revision has no ready replica (that is demand: the autoscaler starts one) and spreads them
//! over its replicas within `containerConcurrency`. Bodies stream both ways and the revision's
//! timeouts apply, as in the cluster.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use ferry_api::contract::RevisionTarget;
use ferry_dispatcher::gateway::Gateway;
use tokio::sync::oneshot;

struct Shared {
    /// What the address is (`namespace/service`, `…#tag`, or a revision), for messages.
    label: String,
    targets: RwLock<Arc<Vec<RevisionTarget>>>,
    gateway: Arc<Gateway>,
}

/// A running proxy; stops when dropped.
pub struct Proxy {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    shared: Arc<Shared>,
    _stop: oneshot::Sender<()>,
}

impl Proxy {
    /// Starts a proxy for `label` on a free loopback port with no targets (it answers 503
    /// until it has).
    ///
    /// # Errors
    /// No port could be bound.
    pub async fn start(gateway: Arc<Gateway>, label: &str) -> std::io::Result<Proxy> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            label: label.to_owned(),
            targets: RwLock::new(Arc::new(Vec::new())),
            gateway,
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
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(targets);
    }
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let targets = shared
        .targets
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    shared
        .gateway
        .forward(&targets, &shared.label, request)
        .await
}
