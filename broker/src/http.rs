//! The admin HTTP server (`--admin-listen`): `/metrics` (Prometheus text), `/healthz`,
//! `/readyz`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// What the endpoints read.
#[derive(Clone)]
struct Endpoints {
    metrics: Arc<Metrics>,
    /// Turns `true` when shutdown begins: no longer ready.
    stopping: watch::Receiver<bool>,
}

async fn metrics(State(at): State<Endpoints>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        at.metrics.render(),
    )
}

async fn ready(State(at): State<Endpoints>) -> impl IntoResponse {
    if *at.stopping.borrow() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else {
        (StatusCode::OK, "ok\n")
    }
}

/// Serves `metrics` and the probes on `listener` until `stopping` turns `true` (readiness
/// fails from then on).
pub(crate) async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    stopping: watch::Receiver<bool>,
) {
    let mut stop = stopping.clone();
    let app = Router::new()
        .route("/metrics", get(self::metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(Endpoints { metrics, stopping });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.changed().await;
        })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "admin server failed");
    }
}
