//! Test servers shared by Ferry's data-plane tests: a CloudEvents [`sink`] that records
//! requests and misbehaves on request, a [`tally`] sink that only counts (for long and fast
//! runs), an OTLP trace receiver ([`otlp`]), [`process`] helpers that run a Ferry binary,
//! throw-away [`tls`] certificates, and the [`fuzz`] targets' kept inputs; and for load runs,
//! [`latency`] percentiles and the [`audit`] of what was sent against what arrived.

pub mod audit;
pub mod fuzz;
pub mod latency;
pub mod otlp;
pub mod process;
pub mod sink;
pub mod tally;
pub mod tls;

/// Serves `app` on an ephemeral loopback port (HTTP/1.1 and h2c) on the current runtime until
/// the returned sender is dropped; the address.
///
/// # Panics
/// When it cannot bind the port (`what` names the server in the message).
async fn serve_on_loopback(
    app: axum::Router,
    what: &str,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind the {what} on 127.0.0.1:0: {e}"));
    let addr = listener.local_addr().expect("local address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stopped.await;
        });
        let _ = server.await;
    });
    (addr, stop)
}
