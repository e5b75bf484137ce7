//! The Kubernetes client of Ferry's binaries: the environment's configuration (in a pod, the
//! service account's), with every response bounded in time.
//!
//! kube's default sets no read timeout, so a request on a connection that silently died (a peer
//! gone without a reset, a dropped NAT entry) waits forever. For a watcher's initial list that
//! means a cache that never syncs: an operator that leads, reconciles from its other caches,
//! and never reports Ready. With a read timeout such a request fails and the watcher retries it.
//! Watches are then asked to end on the server's side before the read timeout
//! ([`WATCH_TIMEOUT_SECS`]), so a quiet watch is resumed, not cut.

use std::time::Duration;

/// How long a response may go without sending a byte before its request fails. A long list
/// streams its pages, so only silence counts, not the total time.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The server-side timeout to give every watch (`watcher::Config::timeout`): shorter than
/// [`READ_TIMEOUT`], so the API server closes a watch that saw no event before the client would
/// count it as dead. The watcher then resumes from its last resource version.
pub const WATCH_TIMEOUT_SECS: u32 = 45;

/// A client from the environment's configuration (in-cluster, else `KUBECONFIG`) with
/// [`READ_TIMEOUT`].
///
/// # Errors
/// No configuration to be found, or one a client cannot be made from; the message says which.
pub async fn client() -> Result<kube::Client, String> {
    let config = kube::Config::infer().await.map_err(|e| e.to_string())?;
    kube::Client::try_from(bounded(config)).map_err(|e| e.to_string())
}

/// `config` with [`READ_TIMEOUT`], counted from when a request is sent (not from when its
/// pooled connection went idle).
fn bounded(mut config: kube::Config) -> kube::Config {
    config.read_timeout = Some(READ_TIMEOUT);
    config.reset_reader_on_write = true;
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_response_is_bounded_and_quiet_watches_end_before_the_bound() {
        let url = "https://127.0.0.1:6443".parse().expect("url");
        let config = bounded(kube::Config::new(url));
        assert_eq!(config.read_timeout, Some(READ_TIMEOUT));
        assert!(config.reset_reader_on_write);
        // kube's own watch idle timeout is the server-side timeout plus 5 s; both must end a
        // quiet watch before the read timeout would.
        assert!(Duration::from_secs(u64::from(WATCH_TIMEOUT_SECS) + 5) < READ_TIMEOUT);
    }
}
