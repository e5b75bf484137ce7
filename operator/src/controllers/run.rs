//! Starting and stopping what a leader runs: the reflectors, every controller, the contract's
//! publisher, the dispatcher poll, the broker-defaults loop and the autoscaler.
//!
//! # Stopping
//!
//! Two phases. First the work stops taking new work: controllers shut down gracefully (no new
//! reconciles; those in flight finish), and the publisher, the dispatcher poll, the
//! broker-defaults loop and the autoscaler stop at their next wait (a contract write or a
//! Deployment patch in progress completes). Everything
//! is awaited for the drain deadline; what is still running then is aborted and named in the
//! log. Then the watches stop: they ran through the drain because finishing reconciles read
//! the stores.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::sync::watch;

use super::context::Context;
use super::{eventing, reflectors, serving, settings, wake};
use crate::args::Args;
use crate::autoscale::ScaleLoop;
use crate::contract_secret::ContractSecret;
use crate::dispatchers::Admins;
use crate::http::Metrics;
use crate::publisher::{self, Publisher, PublisherConfig};
use crate::tasks::{Tasks, unless_stopped};
use crate::topics::Topics;

/// Runs every controller, the contract's publisher, the dispatcher poll, the broker-defaults
/// loop and the autoscaler until `stop` resolves, then drains: no new reconciles start, the
/// loops stop at their next wait, and what is in flight may finish for the drain deadline
/// `stop` resolved to; whatever is left then is aborted and logged. `ready` is called once
/// every store has its initial list.
pub async fn run(
    client: Client,
    args: Args,
    metrics: Arc<Metrics>,
    topics: Arc<Topics>,
    ready: impl FnOnce() + Send + 'static,
    stop: impl Future<Output = Duration> + Send,
) {
    let mut reflectors = reflectors::Reflectors::new(&client);
    let publisher = Arc::new(Publisher::default());
    let stores = reflectors.stores();
    let ctx = Arc::new(Context::new(
        client, args, stores, publisher, topics, metrics,
    ));
    let (stop_work, stopping) = watch::channel(false);
    let mut work = Tasks::default();
    let (queues, receivers, serving_receivers) = wake::queues();
    let controllers = eventing::controllers(&ctx, &reflectors, receivers, &stopping)
        .into_iter()
        .chain(serving::controllers(
            &ctx,
            &reflectors,
            serving_receivers,
            &stopping,
        ));
    for (name, controller) in controllers {
        work.spawn(name, controller);
    }
    spawn_loops(&mut work, &ctx, queues, &stopping);
    let synced = reflectors.synced();
    let synced = async move {
        synced.await;
        tracing::info!("every cache synced: ready");
        ready();
    };
    work.spawn("cache sync", until_stopped(synced, stopping));
    // The watches run through the drain: reconciles that finish read the stores.
    let (stop_watches, watches_stopping) = watch::channel(false);
    let mut watches = Tasks::default();
    reflectors.drive(&ctx.publisher, &mut watches, &watches_stopping);

    let deadline = stop.await;
    tracing::info!(?deadline, "stopping: finishing the reconciles in flight");
    stop_work.send_replace(true);
    let aborted = work.drain(deadline).await;
    stop_watches.send_replace(true);
    watches.drain(Duration::from_secs(1)).await;
    if aborted == 0 {
        tracing::info!("every controller and loop stopped");
    }
    // The last reconciles' spans, exported before the process goes.
    let telemetry = ctx.telemetry.clone();
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
}

/// Spawns the loops beside the controllers: the contract's publisher (waking controllers
/// through `queues`), the dispatcher poll, the broker-defaults loop and the autoscaler.
fn spawn_loops(
    work: &mut Tasks,
    ctx: &Arc<Context>,
    queues: wake::Queues,
    stop: &watch::Receiver<bool>,
) {
    let args = &ctx.args;
    let wakers = wake::Wakers::new(&queues, ctx.stores.subscriptions.clone());
    let secret = ContractSecret::new(
        ctx.client.clone(),
        &args.leader_election_namespace,
        &args.contract_secret,
    )
    .with_ingress(&args.ingress_contract_secret);
    let config = PublisherConfig::from_args(args);
    let (publisher, stores, metrics) = (
        ctx.publisher.clone(),
        ctx.stores.clone(),
        ctx.metrics.clone(),
    );
    let s = stop.clone();
    work.spawn("contract publisher", async move {
        let on_write = move |g| metrics.set_contract_generation(g);
        publisher::run(publisher, secret, stores, config, &wakers, &on_write, s).await;
    });
    let (publisher, admins) = (ctx.publisher.clone(), Admins::from_args(&ctx.client, args));
    let applied = move |poll: crate::dispatchers::Poll| {
        if let Some(hosts) = poll.hosts {
            publisher.set_activators(hosts);
        }
        publisher.set_applied(poll.applied);
    };
    let poll =
        crate::dispatchers::follow_applied(admins, args.dispatcher_poll, applied, stop.clone());
    work.spawn("dispatcher poll", poll);
    work.spawn(
        "settings",
        settings::follow(ctx.clone(), queues, stop.clone()),
    );
    work.spawn("autoscaler", autoscaler(ctx, stop.clone()));
}

/// `work` until `stop` turns `true` (dropped then, at its current wait).
async fn until_stopped(work: impl Future<Output = ()>, mut stop: watch::Receiver<bool>) {
    let _ = unless_stopped(&mut stop, work).await;
}

/// The autoscaler loop over the context's stores and scale board.
fn autoscaler(
    ctx: &Context,
    stop: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    crate::autoscale::run(
        ScaleLoop {
            client: ctx.client.clone(),
            stores: ctx.stores.clone(),
            board: ctx.scale.clone(),
            config_map: (
                ctx.args.leader_election_namespace.clone(),
                ctx.args.autoscaler_configmap.clone(),
            ),
            admins: Admins::from_args(&ctx.client, &ctx.args),
            http: crate::dispatchers::http_client(),
        },
        stop,
    )
}
