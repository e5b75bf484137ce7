//! The controllers: one kube-runtime `Controller` per kind, sharing one reflector store per
//! kind. Each reconcile reads the stores and the [`Hub`], decides with the pure functions of
//! [`crate::status`] and [`crate::serving`], and writes: status by server-side apply with the
//! field manager [`MANAGER`], owned objects, topics, finalizers, Kubernetes Events.

mod eventing;
mod serving;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_api::eventing::{Broker, Trigger};
use ferry_api::messaging::{KafkaChannel, Subscription};
use ferry_api::serving::{Configuration, KnativeService, Revision, Route};
use ferry_api::sources::KafkaSource;
use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::args::Args;
use crate::http::Metrics;
use crate::hub::{self, Hub, HubConfig, MANAGER};
use crate::topics::Topics;
use crate::world::{REVISION_LABEL, Stores};

/// What every reconcile shares.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// The operator's arguments.
    pub args: Args,
    /// The shared stores.
    pub stores: Stores,
    /// The contract hub.
    pub hub: Arc<Hub>,
    /// The log's admin API.
    pub topics: Arc<Topics>,
    /// Reconcile metrics.
    pub metrics: Arc<Metrics>,
    /// `reportingInstance` of the Events published (the operator's identity).
    reporting_instance: String,
    /// Failures in a row per object, for the error policy's backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// Replicas the autoscaler decided, by `namespace/revision`.
    scale: Mutex<HashMap<String, i32>>,
    /// Cluster autoscaler settings (`config-autoscaler`).
    settings: Mutex<ferry_api::autoscaler::Settings>,
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a call.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The log's admin API failed.
    #[error("log: {0}")]
    Log(String),
    /// Adding or removing a finalizer, or cleaning up, failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// The cached object was older than the stored one (a finalizer patch's precondition
    /// failed): retried shortly, once the watch has caught up.
    #[error("the cached object is stale; retrying")]
    Stale,
}

impl Error {
    /// The `reason` label of the failure metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(e)) if e.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(e)) if e.code == 403 => "forbidden",
            Error::Kube(kube::Error::Api(e)) if e.code == 404 => "not_found",
            Error::Kube(kube::Error::Api(e)) if e.code == 422 => "invalid",
            Error::Kube(_) => "api",
            Error::Log(_) => "log",
            Error::Finalizer(_) => "finalizer",
            Error::Stale => "stale_cache",
        }
    }
}

impl From<kube::runtime::finalizer::Error<Error>> for Error {
    /// Keeps the cause, so the failure metric counts e.g. a forbidden finalizer patch as
    /// `forbidden`.
    fn from(e: kube::runtime::finalizer::Error<Error>) -> Self {
        use kube::runtime::finalizer::Error as F;
        match e {
            F::ApplyFailed(e) | F::CleanupFailed(e) => e,
            // kube's finalizer patches test the finalizer list first; a failed test (422) means
            // the cache has not seen the previous patch yet.
            F::AddFinalizer(kube::Error::Api(e)) | F::RemoveFinalizer(kube::Error::Api(e))
                if e.code == 422 =>
            {
                Error::Stale
            }
            F::AddFinalizer(e) | F::RemoveFinalizer(e) => Error::Kube(e),
            other => Error::Finalizer(other.to_string()),
        }
    }
}

impl Context {
    /// A context over `stores`.
    pub fn new(
        client: Client,
        args: Args,
        stores: Stores,
        hub: Arc<Hub>,
        topics: Arc<Topics>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Context {
            reporting_instance: args.identity.clone().unwrap_or_else(|| MANAGER.to_owned()),
            client,
            args,
            stores,
            hub,
            topics,
            metrics,
            failures: Mutex::new(HashMap::new()),
            scale: Mutex::new(HashMap::new()),
            settings: Mutex::new(ferry_api::autoscaler::Settings::default()),
        }
    }

    /// The replicas the autoscaler decided for `namespace/revision`, if it has.
    pub fn scale(&self, revision: &str) -> Option<i32> {
        self.scale
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(revision)
            .copied()
    }

    /// Records the autoscaler's decision for `namespace/revision`.
    pub fn set_scale(&self, revision: &str, replicas: i32) {
        self.scale
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(revision.to_owned(), replicas);
    }

    /// The cluster's autoscaler settings.
    pub fn autoscaler_settings(&self) -> ferry_api::autoscaler::Settings {
        self.settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the cluster's autoscaler settings.
    pub fn set_autoscaler_settings(&self, settings: ferry_api::autoscaler::Settings) {
        *self.settings.lock().unwrap_or_else(|e| e.into_inner()) = settings;
    }

    /// The time conditions are stamped with.
    pub fn now(&self) -> Time {
        Time(k8s_openapi::jiff::Timestamp::now())
    }

    fn succeeded(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(key);
    }

    /// The next retry delay of an object that failed: 1 s doubling to 5 min.
    fn backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        Duration::from_secs(1u64 << (*n - 1).min(8)).min(Duration::from_secs(300))
    }

    /// Publishes an Event about `obj`; failures are logged, never fatal.
    ///
    /// Created directly (events.k8s.io/v1) rather than through kube's `Recorder`, which keeps
    /// every Event it published for six minutes to count repeats: with 10,000 Triggers turning
    /// Ready that cache alone held ~15 MiB, and Events here are sent only on transitions, so
    /// there are no repeats to count.
    async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        use k8s_openapi::api::events::v1::Event;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
        let regarding = obj.object_ref(&());
        let now = k8s_openapi::jiff::Timestamp::now();
        let namespace = regarding.namespace.clone().unwrap_or_default();
        let event = Event {
            action: Some("Reconcile".to_owned()),
            reason: Some(reason.to_owned()),
            note: Some(note),
            type_: Some(if warning { "Warning" } else { "Normal" }.to_owned()),
            event_time: Some(MicroTime(now)),
            metadata: kube::api::ObjectMeta {
                namespace: Some(namespace.clone()),
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(MANAGER),
                    now.as_nanosecond()
                )),
                ..Default::default()
            },
            reporting_controller: Some(MANAGER.to_owned()),
            reporting_instance: Some(self.reporting_instance.clone()),
            regarding: Some(regarding),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if let Err(e) = api.create(&kube::api::PostParams::default(), &event).await {
            tracing::debug!(error = %e, "cannot publish event");
        }
    }
}

fn object_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}

/// Writes `status` by server-side apply when it differs from `current`; publishes an Event
/// when `Ready` changes. Returns whether it wrote.
async fn apply_status<K, S>(
    ctx: &Context,
    obj: &K,
    current: Option<&S>,
    status: &S,
) -> Result<bool, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(false);
    }
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    let name = obj.meta().name.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    let ready = |s: Option<&S>| {
        s.and_then(|s| serde_json::to_value(s).ok()).and_then(|v| {
            v["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Ready")
                .map(|c| {
                    (
                        c["status"].clone(),
                        c["reason"].clone(),
                        c["message"].clone(),
                    )
                })
        })
    };
    // An Event when Ready settles (True, or False with a new reason), not for every step of
    // an Unknown progression.
    let (before, after) = (ready(current), ready(Some(status)));
    if before != after
        && let Some((state, reason, message)) = after
        && state != "Unknown"
    {
        let (warning, reason) = match state.as_str() {
            Some("True") => (false, "Ready".to_owned()),
            Some("False") => (true, reason.as_str().unwrap_or("NotReady").to_owned()),
            _ => (false, reason.as_str().unwrap_or("Reconciling").to_owned()),
        };
        let note = message
            .as_str()
            .map_or_else(|| format!("{} is {reason}", K::kind(&())), str::to_owned);
        ctx.event(obj, warning, &reason, note).await;
    }
    Ok(true)
}

/// The error policy of every controller: count the failure by reason, retry with backoff.
fn error_policy<K: Resource<DynamicType = ()>>(
    obj: Arc<K>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    let key = object_key(&*obj);
    ctx.metrics.failed(&K::kind(&()), error.reason());
    if matches!(error, Error::Stale) {
        tracing::debug!(object = %key, "cache behind the API server; retrying");
        return Action::requeue(Duration::from_millis(500));
    }
    let delay = ctx.backoff(&key);
    tracing::warn!(object = %key, %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Wraps a reconcile with its metrics, tracing span, and the backoff reset.
async fn instrumented<K, F>(obj: Arc<K>, ctx: Arc<Context>, run: F) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()>,
    F: Future<Output = Result<Action, Error>>,
{
    let key = object_key(&*obj);
    let span = tracing::info_span!("reconcile", object = %key);
    let started = Instant::now();
    let result = tracing::Instrument::instrument(run, span).await;
    ctx.metrics.reconciled(&K::kind(&()), started.elapsed());
    if result.is_ok() {
        ctx.succeeded(&key);
    }
    result
}

/// A shared reflector: its store, a subscriber stream for one controller, and the root stream
/// to drive (it pokes the hub on every change).
struct Shared<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    writer: Option<reflector::store::Writer<K>>,
    api: Api<K>,
    config: watcher::Config,
}

impl<K> Shared<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    fn new(api: Api<K>, config: watcher::Config) -> Self {
        let (store, writer) = reflector::store_shared(1024);
        Shared {
            store,
            writer: Some(writer),
            api,
            config,
        }
    }

    fn subscribe(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        self.writer
            .as_ref()
            .and_then(|w| w.subscribe())
            .expect("shared stores can be subscribed to before they run")
    }

    /// The root stream: watch, fill the store, poke the hub. With `spec_only`, a change that
    /// keeps `metadata.generation` and the deletion mark (a status write, a finalizer) does not
    /// poke it: the contract reads only the specs of those kinds, and their own status writes
    /// would otherwise recompile the whole contract once per object.
    fn drive(
        &mut self,
        hub: Arc<Hub>,
        spec_only: bool,
    ) -> impl Future<Output = ()> + Send + 'static {
        let writer = self.writer.take().expect("driven once");
        let mut seen: HashMap<String, (Option<i64>, bool)> = HashMap::new();
        watcher(self.api.clone(), self.config.clone())
            .default_backoff()
            // managedFields are the API server's bookkeeping; nothing here reads them, and
            // they are a large share of every cached object.
            .modify(|o: &mut K| o.meta_mut().managed_fields = None)
            .reflect_shared(writer)
            .for_each(move |event| {
                match &event {
                    Err(e) => {
                        tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying")
                    }
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) if spec_only => {
                        let key = o.meta().uid.clone().unwrap_or_default();
                        let now = (o.meta().generation, o.meta().deletion_timestamp.is_some());
                        if seen.insert(key, now) == Some(now) {
                            return futures::future::ready(());
                        }
                    }
                    Ok(watcher::Event::Delete(o)) if spec_only => {
                        seen.remove(o.meta().uid.as_deref().unwrap_or_default());
                    }
                    Ok(_) => {}
                }
                hub.poke();
                futures::future::ready(())
            })
    }
}

/// Every controller's settings: bounded concurrency (`--reconcile-concurrency`).
fn controller_config(ctx: &Context) -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().concurrency(ctx.args.reconcile_concurrency)
}

/// Sends an object to a controller's `reconcile_on` queue.
#[derive(Clone)]
struct Queue<K: Resource<DynamicType = ()>>(mpsc::UnboundedSender<ObjectRef<K>>);

impl<K: Resource<DynamicType = ()>> Queue<K> {
    fn new() -> (Self, mpsc::UnboundedReceiver<ObjectRef<K>>) {
        let (tx, rx) = mpsc::unbounded();
        (Queue(tx), rx)
    }

    fn send(&self, namespace: &str, name: &str) {
        let _ = self
            .0
            .unbounded_send(ObjectRef::new(name).within(namespace));
    }
}

/// Runs every controller and the hub until `shutdown` resolves. `ready` is called once every
/// store has its initial list.
pub async fn run(
    client: Client,
    args: Args,
    metrics: Arc<Metrics>,
    topics: Arc<Topics>,
    ready: impl FnOnce() + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let all = watcher::Config::default();
    let revision_owned = watcher::Config::default().labels(REVISION_LABEL);
    let mut brokers = Shared::<Broker>::new(Api::all(client.clone()), all.clone());
    let mut triggers = Shared::<Trigger>::new(Api::all(client.clone()), all.clone());
    let mut channels = Shared::<KafkaChannel>::new(Api::all(client.clone()), all.clone());
    let mut subscriptions = Shared::<Subscription>::new(Api::all(client.clone()), all.clone());
    let mut sources = Shared::<KafkaSource>::new(Api::all(client.clone()), all.clone());
    let mut services = Shared::<KnativeService>::new(Api::all(client.clone()), all.clone());
    let mut configurations = Shared::<Configuration>::new(Api::all(client.clone()), all.clone());
    let mut revisions = Shared::<Revision>::new(Api::all(client.clone()), all.clone());
    let mut routes = Shared::<Route>::new(Api::all(client.clone()), all.clone());
    let mut deployments =
        Shared::<Deployment>::new(Api::all(client.clone()), revision_owned.clone());
    let mut endpoints = Shared::<EndpointSlice>::new(Api::all(client.clone()), revision_owned);

    let stores = Stores {
        brokers: brokers.store.clone(),
        triggers: triggers.store.clone(),
        channels: channels.store.clone(),
        subscriptions: subscriptions.store.clone(),
        sources: sources.store.clone(),
        services: services.store.clone(),
        configurations: configurations.store.clone(),
        revisions: revisions.store.clone(),
        routes: routes.store.clone(),
        deployments: deployments.store.clone(),
        endpoints: endpoints.store.clone(),
    };
    let hub = Arc::new(Hub::default());
    let ctx = Arc::new(Context::new(
        client.clone(),
        args.clone(),
        stores.clone(),
        hub.clone(),
        topics,
        metrics.clone(),
    ));

    let (broker_q, broker_rx) = Queue::<Broker>::new();
    let (trigger_q, trigger_rx) = Queue::<Trigger>::new();
    let (channel_q, channel_rx) = Queue::<KafkaChannel>::new();
    let (sub_q, sub_rx) = Queue::<Subscription>::new();
    let (source_q, source_rx) = Queue::<KafkaSource>::new();
    let defaults_task = broker_defaults(ctx.clone(), broker_q.clone(), trigger_q.clone());
    let wake_subs = stores.subscriptions.clone();
    let wake: Arc<dyn Fn(&ferry_api::contract::ObjectRef) + Send + Sync> = Arc::new(move |o| {
        let (ns, name) = (o.namespace.as_str(), o.name.as_str());
        match o.kind.as_str() {
            "Broker" => broker_q.send(ns, name),
            "Trigger" => trigger_q.send(ns, name),
            "KafkaChannel" => channel_q.send(ns, name),
            "Subscription" => {
                sub_q.send(ns, name);
                if let Some(sub) = wake_subs.get(&ObjectRef::new(name).within(ns)) {
                    channel_q.send(ns, eventing::channel_of(&sub));
                }
            }
            "KafkaSource" => source_q.send(ns, name),
            _ => {}
        }
    });
    let on_write_metrics = metrics.clone();
    let hub_task = hub::run(
        hub.clone(),
        client.clone(),
        stores.clone(),
        HubConfig {
            namespace: args.leader_election_namespace.clone(),
            secret: args.contract_secret.clone(),
            bootstrap_servers: args.kafka_bootstrap_servers.clone(),
            claim_classless: args.claim_brokers_without_class,
            cluster_domain: args.cluster_domain.clone(),
            debounce: args.contract_debounce,
        },
        wake,
        Arc::new(move |g| on_write_metrics.set_contract_generation(g)),
    );

    let admins = crate::dispatchers::Admins::from_args(&client, &args);
    let poll_hub = hub.clone();
    let poll_every = args.dispatcher_poll;
    let poll_task = async move {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("an HTTP client with a timeout builds");
        let mut tick = tokio::time::interval(poll_every);
        loop {
            tick.tick().await;
            poll_hub.set_applied(crate::dispatchers::applied(&admins, &http).await);
        }
    };

    let controllers = eventing::controllers(
        &ctx,
        eventing::Inputs {
            brokers: (&brokers, broker_rx),
            triggers: (&triggers, trigger_rx),
            channels: (&channels, channel_rx),
            subscriptions: (&subscriptions, sub_rx),
            sources: (&sources, source_rx),
        },
    )
    .chain(serving::controllers(
        &ctx,
        serving::Inputs {
            services: &services,
            configurations: &configurations,
            revisions: &revisions,
            routes: &routes,
            deployments: &deployments,
        },
    ))
    .collect::<Vec<_>>();

    let roots = vec![
        tokio::spawn(brokers.drive(hub.clone(), false)),
        tokio::spawn(triggers.drive(hub.clone(), true)),
        tokio::spawn(channels.drive(hub.clone(), false)),
        tokio::spawn(subscriptions.drive(hub.clone(), true)),
        tokio::spawn(sources.drive(hub.clone(), true)),
        tokio::spawn(services.drive(hub.clone(), false)),
        tokio::spawn(configurations.drive(hub.clone(), false)),
        tokio::spawn(revisions.drive(hub.clone(), false)),
        tokio::spawn(routes.drive(hub.clone(), false)),
        tokio::spawn(deployments.drive(hub.clone(), false)),
        tokio::spawn(endpoints.drive(hub.clone(), false)),
    ];
    let synced = stores.clone();
    let ready_task = tokio::spawn(async move {
        let _ = futures::join!(
            synced.brokers.wait_until_ready(),
            synced.triggers.wait_until_ready(),
            synced.channels.wait_until_ready(),
            synced.subscriptions.wait_until_ready(),
            synced.sources.wait_until_ready(),
            synced.services.wait_until_ready(),
            synced.configurations.wait_until_ready(),
            synced.revisions.wait_until_ready(),
            synced.routes.wait_until_ready(),
            synced.deployments.wait_until_ready(),
            synced.endpoints.wait_until_ready(),
        );
        ready();
    });
    let mut tasks: Vec<tokio::task::JoinHandle<()>> =
        controllers.into_iter().map(tokio::spawn).collect();
    tasks.push(tokio::spawn(hub_task));
    tasks.push(tokio::spawn(poll_task));
    tasks.push(tokio::spawn(defaults_task));
    tasks.push(tokio::spawn(crate::autoscale::run(
        ctx.clone(),
        crate::dispatchers::Admins::from_args(&client, &args),
        reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("an HTTP client with a timeout builds"),
    )));
    tasks.extend(roots);
    tasks.push(ready_task);
    shutdown.await;
    for t in &tasks {
        t.abort();
    }
}

/// Reads Knative's `config-br-defaults` (`--br-defaults-configmap`, in the operator's
/// namespace) every 5 s. When the defaults change, every Broker and Trigger is reconciled again:
/// a Broker without a class may have become Ferry's or stopped being, and a Broker's default
/// config and delivery feed its topic and its Triggers. A missing ConfigMap means no defaults;
/// an invalid one is reported (once per distinct error) and the last good defaults stay.
async fn broker_defaults(ctx: Arc<Context>, brokers: Queue<Broker>, triggers: Queue<Trigger>) {
    use ferry_api::eventing::{BrokerDefaults, DEFAULTS_KEY};
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::ResourceExt;
    let name = ctx.args.br_defaults_configmap.clone();
    let api: Api<ConfigMap> =
        Api::namespaced(ctx.client.clone(), &ctx.args.leader_election_namespace);
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut reported: Option<String> = None;
    loop {
        tick.tick().await;
        let parsed = match api.get_opt(&name).await {
            Ok(cm) => BrokerDefaults::parse(
                cm.and_then(|c| c.data)
                    .and_then(|d| d.get(DEFAULTS_KEY).cloned())
                    .unwrap_or_default()
                    .as_str(),
            ),
            Err(e) => Err(format!("cannot read it: {e}")),
        };
        match parsed {
            Ok(defaults) => {
                reported = None;
                if ctx.hub.set_broker_defaults(defaults) {
                    tracing::info!(configmap = %name, "broker defaults changed; reconciling every Broker and Trigger");
                    for b in ctx.stores.brokers.state() {
                        brokers.send(
                            b.metadata.namespace.as_deref().unwrap_or_default(),
                            &b.name_any(),
                        );
                    }
                    for t in ctx.stores.triggers.state() {
                        triggers.send(
                            t.metadata.namespace.as_deref().unwrap_or_default(),
                            &t.name_any(),
                        );
                    }
                }
            }
            Err(e) if reported.as_ref() != Some(&e) => {
                tracing::warn!(configmap = %name, error = %e, "broker defaults not applied; keeping the previous ones (fix the ConfigMap's default-br-config)");
                reported = Some(e);
            }
            Err(_) => {}
        }
    }
}

type BoxedRun = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Drives a controller's result stream, logging outcomes at debug level.
fn drain<S, T, E>(stream: S) -> BoxedRun
where
    S: Stream<Item = Result<T, E>> + Send + 'static,
    T: Debug,
    E: Debug,
{
    Box::pin(stream.for_each(|result| {
        if let Err(e) = result {
            tracing::debug!(error = ?e, "controller");
        }
        futures::future::ready(())
    }))
}
