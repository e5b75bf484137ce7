//! The operator process: CRD check, HTTP endpoints, leader election, then the controllers.

use std::sync::Arc;

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
use crate::http::{self, HttpState, Metrics, Readiness};
use crate::leader::{LeaderElector, LeaseConfig};
use crate::topics::Topics;

/// Checks that every CRD the operator watches is installed, naming the missing ones and how
/// to install them.
///
/// # Errors
/// The missing kinds, or the API server could not be asked.
pub async fn check_crds(client: &Client) -> Result<(), String> {
    async fn installed<K>(client: &Client) -> Result<Option<String>, String>
    where
        K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let api: Api<K> = Api::all(client.clone());
        match api.list_metadata(&ListParams::default().limit(1)).await {
            Ok(_) => Ok(None),
            Err(kube::Error::Api(e)) if e.code == 404 => {
                Ok(Some(format!("{}.{}", K::plural(&()), K::group(&()))))
            }
            Err(e) => Err(format!("cannot list {}: {e}", K::plural(&()))),
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
        Err(format!(
            "the CustomResourceDefinitions {} are not installed; install them with `kubectl apply -f crds/` (or the Helm chart with crds enabled) and start the operator again",
            missing.join(", ")
        ))
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
) -> Result<(), String> {
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
) -> Result<(), String> {
    check_crds(&client).await?;
    let topics = Arc::new(Topics::new(&args.kafka_bootstrap_servers)?);
    let metrics = Arc::new(Metrics::new());
    let (readiness, readiness_rx) = watch::channel(Readiness::default());
    let http_shutdown = wait_for(shutdown.clone());
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
    let (leading_tx, mut leading) = watch::channel(false);
    let elector = LeaderElector::new(
        lease_client,
        LeaseConfig::new(
            args.leader_election_namespace.clone(),
            args.leader_election_lease.clone(),
            identity,
        ),
    );
    let elector = tokio::spawn(elector.run(leading_tx, wait_for(shutdown.clone())));

    readiness.send_replace(Readiness::Standby);
    let result = loop {
        if *shutdown.borrow() {
            break Ok(());
        }
        if *leading.borrow() {
            break lead(
                &client,
                &args,
                &metrics,
                topics,
                &readiness,
                &mut leading,
                &shutdown,
            )
            .await;
        }
        tokio::select! {
            _ = shutdown.changed() => {}
            changed = leading.changed() => if changed.is_err() { break Ok(()) },
        }
    };
    metrics.set_leader(false);
    let _ = elector.await;
    let _ = server.await;
    result
}

async fn lead(
    client: &Client,
    args: &Args,
    metrics: &Arc<Metrics>,
    topics: Arc<Topics>,
    readiness: &watch::Sender<Readiness>,
    leading: &mut watch::Receiver<bool>,
    shutdown: &watch::Receiver<bool>,
) -> Result<(), String> {
    tracing::info!("leading: starting the controllers");
    metrics.set_leader(true);
    readiness.send_replace(Readiness::Starting(
        "leading; waiting for the caches to sync".to_owned(),
    ));
    let synced = readiness.clone();
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    let mut watch_leading = leading.clone();
    let stop_shutdown = wait_for(shutdown.clone());
    let stopping = shutdown.clone();
    let stop = async move {
        tokio::select! {
            biased;
            _ = stop_shutdown => {}
            _ = async {
                while *watch_leading.borrow() {
                    if watch_leading.changed().await.is_err() { break; }
                }
            } => {
                // On shutdown the elector gives the Lease up too: that is not losing it.
                if !*stopping.borrow() {
                    let _ = lost_tx.send(());
                }
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
    if lost_rx.await.is_ok() {
        Err(
            "lost the leader-election Lease; exiting so that this replica restarts as a follower"
                .to_owned(),
        )
    } else {
        Ok(())
    }
}

/// Resolves once `flag` is `true` (or its sender is gone).
pub async fn wait_for(mut flag: watch::Receiver<bool>) {
    while !*flag.borrow() {
        if flag.changed().await.is_err() {
            return;
        }
    }
}
