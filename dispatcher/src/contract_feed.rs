//! Where the contract comes from.
//!
//! Two sources offer contract bytes to one applier ([`crate::server`]):
//! - the mounted file, polled. In a cluster it is the contract Secret as the kubelet mounts it,
//!   and the kubelet refreshes a Secret volume only on its sync period (a minute or more), so
//!   alone it makes every new Trigger and every new revision endpoint wait that long;
//! - the contract Secret itself, watched through the API server (`--contract-secret`): the
//!   operator's write reaches the dispatcher within milliseconds, as Knative's activator learns
//!   endpoints from watches.
//!
//! The file is what a dispatcher starts from and what it keeps when the API server is away; the
//! watch is what makes changes fast. Both carry contracts the operator compiled: the data plane
//! makes no Kubernetes decisions of its own and needs only `get`/`list`/`watch` on one Secret.
//! The applier takes a valid contract from either, unless the other source already applied a
//! newer or equal generation, so a stale mount never rolls a watched contract back.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_api::contract::{CONTRACT_KEY, SEED_KEY, key_in_force};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::{mpsc, watch};

/// Where an offered contract was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The mounted contract file.
    File,
    /// The contract Secret, watched.
    Secret,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::File => "file",
            Source::Secret => "secret",
        })
    }
}

/// Contract bytes as one source read them.
pub struct Offer {
    /// Where they were read.
    pub source: Source,
    /// JSON or gzip JSON.
    pub bytes: Vec<u8>,
}

/// One source's side of the channel: offers only what differs from its previous offer.
struct Feed {
    source: Source,
    offers: mpsc::Sender<Offer>,
    last: Option<Vec<u8>>,
}

impl Feed {
    fn new(source: Source, offers: mpsc::Sender<Offer>) -> Feed {
        Feed {
            source,
            offers,
            last: None,
        }
    }

    /// Offers `bytes` unless they are what this source offered last; `false` once the applier
    /// is gone (the dispatcher stopping).
    async fn offer(&mut self, bytes: Vec<u8>) -> bool {
        if self.last.as_ref() == Some(&bytes) {
            return true;
        }
        self.last = Some(bytes.clone());
        let offer = Offer {
            source: self.source,
            bytes,
        };
        self.offers.send(offer).await.is_ok()
    }
}

/// Which contract to take: the applier's memory of what is in force.
#[derive(Debug, Default)]
pub struct Gate {
    in_force: Option<(Source, u64)>,
}

impl Gate {
    /// Whether a valid contract of `generation` from `source` should be applied: always from
    /// the source of the contract in force (its own order is the operator's), and from the
    /// other one only when it is newer.
    pub fn admits(&self, source: Source, generation: u64) -> bool {
        match self.in_force {
            Some((s, g)) => s == source || generation > g,
            None => true,
        }
    }

    /// Records the contract now in force.
    pub fn applied(&mut self, source: Source, generation: u64) {
        self.in_force = Some((source, generation));
    }
}

/// The contract Secret to watch: `--contract-secret [NAMESPACE/]NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    /// `None`: the namespace of the dispatcher's own service account.
    pub namespace: Option<String>,
    /// The Secret's name.
    pub name: String,
}

impl std::str::FromStr for SecretRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (namespace, name) = match s.split_once('/') {
            Some((ns, name)) => (Some(ns), name),
            None => (None, s),
        };
        let valid = |part: &str| {
            !part.is_empty()
                && part.len() <= 253
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        };
        if !valid(name) || namespace.is_some_and(|ns| !valid(ns)) {
            return Err(format!(
                "{s:?} is not a Secret reference: give NAME or NAMESPACE/NAME in lowercase DNS form, e.g. ferry/ferry-contract"
            ));
        }
        Ok(SecretRef {
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// The file to read the contract from: `path` itself, or, when it is a directory (a contract
/// Secret's mount), the file of the key in force there (the operator's, else the chart's seed;
/// [`key_in_force`]).
async fn contract_file(path: &Path) -> PathBuf {
    if !tokio::fs::metadata(path).await.is_ok_and(|m| m.is_dir()) {
        return path.to_owned();
    }
    let mut present = Vec::new();
    for key in [CONTRACT_KEY, SEED_KEY] {
        if tokio::fs::try_exists(path.join(key)).await.unwrap_or(false) {
            present.push(key);
        }
    }
    path.join(key_in_force(|k| present.contains(&k)).unwrap_or(SEED_KEY))
}

/// Polls the contract file (a Secret or ConfigMap mount is swapped through a symlink, which
/// file notifications miss) and offers each new version. `path` may be a file or a contract
/// Secret's mounted directory.
pub async fn poll_file(
    path: PathBuf,
    every: Duration,
    offers: mpsc::Sender<Offer>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut feed = Feed::new(Source::File, offers);
    loop {
        let path = contract_file(&path).await;
        match tokio::fs::read(&path).await {
            Ok(bytes) => {
                if !feed.offer(bytes).await {
                    return;
                }
            }
            Err(e) => {
                if feed.last.is_some() {
                    tracing::warn!(path = %path.display(), error = %e, "contract file unreadable; the previous contract stays in force");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
    }
}

/// Watches the contract Secret and offers each new version of the contract in force in it
/// ([`key_in_force`]). A failed
/// watch is retried with backoff (logged once per outage); meanwhile the contract in force
/// stays, as does the file's.
pub async fn watch_secret(
    client: Client,
    secret: SecretRef,
    offers: mpsc::Sender<Offer>,
    mut stopping: watch::Receiver<bool>,
) {
    let namespace = secret
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let shown = format!("{namespace}/{}", secret.name);
    let api: Api<Secret> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default()
        .fields(&format!("metadata.name={}", secret.name))
        .timeout(ferry_runtime::kube_client::WATCH_TIMEOUT_SECS);
    let mut events = watcher(api, config).default_backoff().boxed();
    let mut feed = Feed::new(Source::Secret, offers);
    let mut failing = false;
    loop {
        let event = tokio::select! {
            e = events.next() => e,
            _ = stopping.wait_for(|s| *s) => return,
        };
        let Some(event) = event else { return };
        let secret_object = match event {
            Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => s,
            Ok(watcher::Event::Delete(_)) => {
                tracing::warn!(secret = %shown, "contract Secret deleted; the previous contract stays in force");
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                if !failing {
                    tracing::warn!(secret = %shown, error = %e, "contract Secret watch failed; retrying, the contract in force stays");
                }
                failing = true;
                continue;
            }
        };
        if failing {
            tracing::info!(secret = %shown, "contract Secret watch resumed");
            failing = false;
        }
        let mut data = secret_object.data.unwrap_or_default();
        let Some(bytes) = key_in_force(|k| data.contains_key(k))
            .and_then(|k| data.remove(k))
            .map(|b| b.0)
        else {
            tracing::warn!(secret = %shown, keys = ?[CONTRACT_KEY, SEED_KEY], "contract Secret has no contract key; the previous contract stays in force");
            continue;
        };
        if !feed.offer(bytes).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_takes_the_same_source_in_any_order_and_the_other_only_when_newer() {
        let mut gate = Gate::default();
        assert!(gate.admits(Source::File, 3));
        gate.applied(Source::File, 3);
        // The operator restarted its count: the file is still the file.
        assert!(gate.admits(Source::File, 1));
        assert!(!gate.admits(Source::Secret, 3));
        assert!(gate.admits(Source::Secret, 4));
        gate.applied(Source::Secret, 4);
        // A mount a minute behind offers generation 3, then catches up with 4.
        assert!(!gate.admits(Source::File, 3));
        assert!(!gate.admits(Source::File, 4));
        assert!(gate.admits(Source::File, 5));
        assert!(gate.admits(Source::Secret, 5));
    }

    #[tokio::test]
    async fn a_mounted_secret_offers_the_operators_key_once_written_else_the_seed() {
        let dir = tempfile::tempdir().expect("dir");
        // As the kubelet swaps a mount: never a half-written file.
        let put = |key: &str, bytes: &[u8]| {
            let tmp = dir.path().join(".tmp");
            std::fs::write(&tmp, bytes).expect("write");
            std::fs::rename(&tmp, dir.path().join(key)).expect("swap");
        };
        put(SEED_KEY, b"seed");
        let (offers, mut offered) = mpsc::channel(4);
        let (stop, stopping) = watch::channel(false);
        let poll = tokio::spawn(poll_file(
            dir.path().to_owned(),
            Duration::from_millis(10),
            offers,
            stopping,
        ));
        async fn next(offered: &mut mpsc::Receiver<Offer>) -> Vec<u8> {
            tokio::time::timeout(Duration::from_secs(5), offered.recv())
                .await
                .expect("an offer within 5 s")
                .expect("the poll runs")
                .bytes
        }
        assert_eq!(next(&mut offered).await, b"seed");
        // The kubelet adds the operator's key beside the seed.
        put(CONTRACT_KEY, b"operator");
        assert_eq!(next(&mut offered).await, b"operator");
        // A seed that changes later (an upgrade copying it) is not the contract in force.
        put(SEED_KEY, b"seed again");
        put(CONTRACT_KEY, b"operator 2");
        assert_eq!(next(&mut offered).await, b"operator 2");
        // A plain file path is read as it is.
        stop.send_replace(true);
        poll.await.expect("poll stops");
        assert_eq!(
            contract_file(&dir.path().join(SEED_KEY)).await,
            dir.path().join(SEED_KEY)
        );
    }

    #[test]
    fn secret_references_name_a_secret_and_maybe_its_namespace() {
        let r: SecretRef = "ferry-contract".parse().unwrap();
        assert_eq!(r.namespace, None);
        assert_eq!(r.name, "ferry-contract");
        let r: SecretRef = "ferry/ferry-contract".parse().unwrap();
        assert_eq!(r.namespace.as_deref(), Some("ferry"));
        assert_eq!(r.to_string(), "ferry/ferry-contract");
        for bad in ["", "/x", "ns/", "Ferry", "a/b/c", "x y"] {
            let err = bad.parse::<SecretRef>().unwrap_err();
            assert!(err.contains("NAMESPACE/NAME"), "{bad}: {err}");
        }
    }
}
