//! Stopping: the operator's long-running tasks watch one stop flag (a `watch` channel that
//! turns `true`), stop taking new work when it does, and are awaited within a drain deadline;
//! whatever is still running then is aborted and named in the log.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Resolves once `flag` is `true` (or its sender is gone).
pub async fn stopped(mut flag: watch::Receiver<bool>) {
    // `wait_for` fails only when the sender is gone: stopped as well.
    let _ = flag.wait_for(|stop| *stop).await;
}

/// Runs `work` unless `stop` turns `true` first (or already is): `None` when stopped.
pub async fn unless_stopped<F: Future>(
    stop: &mut watch::Receiver<bool>,
    work: F,
) -> Option<F::Output> {
    if *stop.borrow_and_update() {
        return None;
    }
    tokio::select! {
        biased;
        _ = stop.wait_for(|stop| *stop) => None,
        out = work => Some(out),
    }
}

/// Named tasks, drained together.
#[derive(Default)]
pub struct Tasks {
    running: Vec<(String, JoinHandle<()>)>,
}

impl Tasks {
    /// Spawns `work` as the task `name` (its name in the drain's log lines).
    pub fn spawn(
        &mut self,
        name: impl Into<String>,
        work: impl Future<Output = ()> + Send + 'static,
    ) {
        self.running.push((name.into(), tokio::spawn(work)));
    }

    /// Waits for every task to finish, for at most `deadline` in all; aborts and logs the ones
    /// still running then. Returns how many were aborted.
    pub async fn drain(self, deadline: Duration) -> usize {
        let until = tokio::time::Instant::now() + deadline;
        let mut aborted = 0;
        for (name, mut task) in self.running {
            match tokio::time::timeout_at(until, &mut task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) if e.is_panic() => tracing::error!(task = %name, "task panicked"),
                Ok(Err(_)) => {}
                Err(_) => {
                    tracing::warn!(task = %name, ?deadline, "still running at the drain deadline; aborting it");
                    task.abort();
                    aborted += 1;
                }
            }
        }
        aborted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_drain_waits_for_finishing_tasks_and_aborts_the_rest_at_the_deadline() {
        let (stop_tx, stop) = watch::channel(false);
        let (done_tx, mut done) = tokio::sync::mpsc::channel::<&str>(4);
        let mut tasks = Tasks::default();
        // Finishes its work after the stop, within the deadline.
        let (mut s, d) = (stop.clone(), done_tx.clone());
        tasks.spawn("finishes", async move {
            stopped(s.clone()).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = d.send("finishes").await;
            let _ = unless_stopped(&mut s, std::future::pending::<()>()).await;
        });
        // Ignores the stop.
        tasks.spawn("stuck", std::future::pending());
        let d = done_tx;
        let mut s = stop.clone();
        tasks.spawn("waits", async move {
            if unless_stopped(&mut s, std::future::pending::<()>())
                .await
                .is_none()
            {
                let _ = d.send("waits").await;
            }
        });
        stop_tx.send_replace(true);
        assert_eq!(tasks.drain(Duration::from_secs(5)).await, 1, "only `stuck`");
        let mut finished = vec![done.recv().await.unwrap(), done.recv().await.unwrap()];
        finished.sort_unstable();
        assert_eq!(finished, ["finishes", "waits"]);
    }

    #[tokio::test]
    async fn work_does_not_start_once_stopped() {
        let (_stop_tx, mut stop) = watch::channel(true);
        assert_eq!(unless_stopped(&mut stop, async { 1 }).await, None);
        let (_go, mut go) = watch::channel(false);
        assert_eq!(unless_stopped(&mut go, async { 1 }).await, Some(1));
    }
}
