//! The operator process: CRD check, HTTP endpoints, leader election, then the controllers.
//!
//! # Stopping
//!
//! On shutdown a leader drains its controllers (for `--drain-timeout`) while it still holds
//! the Lease, and only then releases it, so a successor never runs beside a draining leader. A
//! leader that loses the Lease drains for [`lost_lease_drain`] only.

use std::sync::Arc;
use std::time::Duration;

use ferry_api::eventing::{Broker, Trigger};
use ferry_api::messaging::{KafkaChannel, Subscription};
use ferry_api::serving::{Configuration, KnativeService, Revision, Route};
use ferry_api::sources::KafkaSource;
use kube::api::ListParams;
use kube::{Api, Client, Resource};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::args::Args;
use crate::controllers;
use crate::error::{Error, Result};
use crate::http::{self, HttpState, Metrics, Readiness};
use crate::leader::{LeaderElector, LeaseConfig};
use crate::tasks::stopped;
use crate::topics::Topics;

/// Checks that every CRD the operator watches is installed, naming the missing ones and how
/// to install them.
///
/// # Errors
/// [`Error::MissingCrds`] naming the missing kinds, or [`Error::Kube`] when the API server
/// could not be asked.
pub async fn check_crds(client: &Client) -> Result<()> {
    async fn installed<K>(client: &Client) -> Result<Option<String>>
    where
        K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let api: Api<K> = Api::all(client.clone());
        match api.list_metadata(&ListParams::default().limit(1)).await {
            Ok(_) => Ok(None),
            Err(kube::Error::Api(e)) if e.code == 404 => {
                Ok(Some(format!("{}.{}", K::plural(&()), K::group(&()))))
            }
            Err(e) => Err(e.into()),
        }
    }
    let missing: Vec<String> = [
        installed::<Broker>(client).await?,
        installed::<Trigger>(client).await?,
        installed::<KafkaChannel>(client).await?,
        installed::<Subscription>(client).await?,
        installed::<KafkaSource>(client).await?,
        installed::<KnativeService>(client).await?,
        installed::<Configuration>(client).await?,
        installed::<Revision>(client).await?,
        installed::<Route>(client).await?,
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::MissingCrds(missing.join(", ")))
    }
}

/// Runs the operator until `shutdown` flips to `true`: serves `/metrics`, `/healthz` and
/// `/readyz` on `listener`, waits to lead, then runs every controller.
///
/// # Errors
/// CRDs missing, the Kafka admin client cannot be configured, or leadership was lost (the
/// process then exits so that it restarts as a follower, as client-go's operators do).
pub async fn run(
    client: Client,
    args: Args,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    run_with_lease_client(client.clone(), client, args, listener, shutdown).await
}

/// [`run`], renewing the Lease through `lease_client`: a client of its own (its own
/// connection), so that a burst of reconcile requests cannot delay a renewal past the renew
/// deadline.
///
/// # Errors
/// As [`run`].
pub async fn run_with_lease_client(
    client: Client,
    lease_client: Client,
    args: Args,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    check_crds(&client).await?;
    let topics = Arc::new(Topics::new(&args.kafka_bootstrap_servers)?);
    let metrics = Arc::new(Metrics::new());
    let (readiness, readiness_rx) = watch::channel(Readiness::default());
    let http_shutdown = stopped(shutdown.clone());
    let server = tokio::spawn(http::serve(
        listener,
        HttpState {
            metrics: metrics.clone(),
            readiness: readiness_rx,
        },
        http_shutdown,
    ));

    let identity = args.identity.clone().unwrap_or_else(|| {
        std::env::var("HOSTNAME")
            .unwrap_or_else(|_| format!("ferry-operator-{}", std::process::id()))
    });
    // In the Lease, this process: the pod name plus a mark of this start (as client-go's
    // `<host>_<uuid>`), so a container restarted in the same pod after a crash waits for the
    // Lease to expire like any other candidate instead of renewing its predecessor's term.
    let identity = incarnation(&identity);
    let (leading_tx, mut leading) = watch::channel(false);
    let elector = LeaderElector::new(
        lease_client,
        LeaseConfig::new(
            args.leader_election_namespace.clone(),
            args.leader_election_lease.clone(),
            identity,
        ),
    );
    // The Lease is released once leading is over (drained), not at the signal.
    let (release, released) = watch::channel(false);
    let elector = tokio::spawn(elector.run(leading_tx, stopped(released)));

    readiness.send_replace(Readiness::Standby);
    let result = loop {
        if *shutdown.borrow() {
            break Ok(());
        }
        if *leading.borrow() {
            break lead(
                &client, &args, &metrics, topics, &readiness, &leading, &shutdown,
            )
            .await;
        }
        tokio::select! {
            _ = shutdown.changed() => {}
            changed = leading.changed() => if changed.is_err() { break Ok(()) },
        }
    };
    metrics.set_leader(false);
    release.send_replace(true);
    let _ = elector.await;
    let _ = server.await;
    result
}

/// How long a replica that lost its Lease lets reconciles in flight finish: half the margin
/// between stepping down (the renew deadline) and a successor taking over (the Lease's
/// duration), so the two never write at once.
pub fn lost_lease_drain() -> Duration {
    (crate::leader::DEFAULT_LEASE_DURATION - crate::leader::DEFAULT_RENEW_DEADLINE) / 2
}

/// Runs the controllers while this replica leads; drains them on shutdown or when the Lease
/// is lost.
async fn lead(
    client: &Client,
    args: &Args,
    metrics: &Arc<Metrics>,
    topics: Arc<Topics>,
    readiness: &watch::Sender<Readiness>,
    leading: &watch::Receiver<bool>,
    shutdown: &watch::Receiver<bool>,
) -> Result<()> {
    tracing::info!("leading: starting the controllers");
    metrics.set_leader(true);
    readiness.send_replace(Readiness::Starting(
        "leading; waiting for the caches to sync".to_owned(),
    ));
    let synced = readiness.clone();
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    let (signal, mut still_leading) = (shutdown.clone(), leading.clone());
    let drain_timeout = args.drain_timeout;
    let stop = async move {
        tokio::select! {
            biased;
            () = stopped(signal) => drain_timeout,
            _ = still_leading.wait_for(|leading| !*leading) => {
                tracing::warn!("lost the leader-election Lease; stopping the controllers");
                let _ = lost_tx.send(());
                lost_lease_drain()
            }
        }
    };
    controllers::run(
        client.clone(),
        args.clone(),
        metrics.clone(),
        topics,
        move || {
            synced.send_replace(Readiness::Leading);
        },
        stop,
    )
    .await;
    match lost_rx.await {
        Ok(()) => Err(Error::LostLease),
        Err(_) => Ok(()),
    }
}

/// `name` marked with this process's start: `<name>_<8 hex digits>`.
fn incarnation(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() ^ (d.as_secs() as u32));
    format!("{name}_{:08x}", nanos ^ std::process::id().rotate_left(16))
}

#[cfg(test)]
mod incarnation_tests {
    #[test]
    fn each_start_holds_the_lease_under_a_name_of_its_own() {
        let a = super::incarnation("ferry-operator-abc");
        assert!(a.starts_with("ferry-operator-abc_"), "{a}");
        assert_eq!(a.len(), "ferry-operator-abc_".len() + 8);
    }
}
