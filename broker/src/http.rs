//! The admin HTTP server (`--admin-listen`): `/metrics` (Prometheus text), `/healthz`,
//! `/readyz`.
//!
//! `/readyz` fails while the broker shuts down and while any store is fenced by a failed disk
//! write or fsync ([`Broker::unready`]): the broker still serves reads and the healthy
//! partitions, but it cannot do all it is asked, and only a restart (after fixing the disk)
//! brings a fenced partition back. `/healthz` stays ok: restarting in a loop on a failing
//! disk would not help, so that decision is left to the operator.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::server::Broker;

/// What the endpoints read.
#[derive(Clone)]
struct Endpoints {
    broker: Arc<Broker>,
}

async fn metrics(State(at): State<Endpoints>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        at.broker.metrics().render(),
    )
}

async fn ready(State(at): State<Endpoints>) -> impl IntoResponse {
    match at.broker.unready() {
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        None => (StatusCode::OK, "ok\n".to_owned()),
    }
}

/// Serves the broker's metrics and the probes on `listener` until `stopping` turns `true`
/// (readiness fails from then on).
pub(crate) async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    stopping: watch::Receiver<bool>,
) {
    let mut stop = stopping;
    let app = Router::new()
        .route("/metrics", get(self::metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(Endpoints { broker });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.changed().await;
        })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "admin server failed");
    }
}
