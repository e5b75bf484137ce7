//! The dispatcher's HTTP listeners: HTTP/1.1 (with upgrades) and h2c on one port, each
//! connection with a deadline for its request headers — `axum::serve` has no timer, so hyper's
//! header-read timeout would never fire and a client sending headers a byte a minute would hold
//! its connection forever. On stop, no new connections are taken and open ones finish their
//! requests (the caller bounds how long it waits).

use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serves `app` on `listener` until `stopping` turns `true`, then lets open connections finish.
/// `header_read_timeout` bounds how long a request's headers may take (HTTP/1.1; an idle
/// keep-alive connection is closed after it too).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    mut stopping: watch::Receiver<bool>,
    header_read_timeout: Duration,
    what: &'static str,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.wait_for(|s| *s) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: wait a moment rather than spin.
                tracing::warn!(error = %e, "{what}: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
