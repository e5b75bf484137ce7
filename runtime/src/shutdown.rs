//! Shutdown: every binary stops on SIGTERM (what Kubernetes sends) or SIGINT (Ctrl-C), drains
//! what it was doing within a deadline, and exits.

use std::future::Future;
use std::time::Duration;

/// Completes on the first SIGTERM or SIGINT.
///
/// When the SIGTERM handler cannot be installed (it can always be on Linux), Ctrl-C alone
/// stops the process.
pub async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops this process");
            let _ = ctrl_c.await;
        }
    }
}

/// A `watch` channel that turns `true` on the first SIGTERM or SIGINT, for components that
/// hand a stop flag to several tasks.
pub fn on_signal() -> tokio::sync::watch::Receiver<bool> {
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        signal().await;
        tracing::info!("stopping");
        let _ = stop.send(true);
    });
    stopping
}

/// Runs `drain` for at most `deadline`.
///
/// # Errors
/// `Err(deadline)` when the drain did not finish in time (what it left is the caller's to
/// report).
pub async fn drain<T>(deadline: Duration, drain: impl Future<Output = T>) -> Result<T, Duration> {
    tokio::time::timeout(deadline, drain)
        .await
        .map_err(|_| deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drain_returns_what_finished_and_reports_a_missed_deadline() {
        assert_eq!(drain(Duration::from_secs(1), async { 7 }).await, Ok(7));
        let slow = tokio::time::sleep(Duration::from_secs(5));
        assert_eq!(
            drain(Duration::from_millis(20), slow).await,
            Err(Duration::from_millis(20))
        );
    }
}
