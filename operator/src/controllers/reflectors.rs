//! The shared reflectors: one watch per kind, whose store every controller and the publisher
//! read, and whose events are fanned out to the controllers that follow the kind. Every change
//! pokes the [`Publisher`] (the contract may depend on it).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use ferry_api::eventing::{Broker, Trigger};
use ferry_api::messaging::{KafkaChannel, Subscription};
use ferry_api::serving::{Configuration, KnativeService, Revision, Route};
use ferry_api::sources::KafkaSource;
use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::publisher::Publisher;
use crate::tasks::{Tasks, unless_stopped};
use crate::world::{REVISION_LABEL, Stores};

/// Events a subscriber may lag behind its reflector before the reflector waits for it.
const FAN_OUT_BUFFER: usize = 1024;

/// How often the kinds whose caches have not synced yet are named in the log.
const SYNC_WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(20);

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Which changes of a kind poke the publisher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pokes {
    /// Every change.
    EveryChange,
    /// Only a new `metadata.generation` or deletion mark: the contract reads only the specs of
    /// the kind, and its status writes (or finalizers) would otherwise recompile the whole
    /// contract once per object.
    SpecChanges,
}

/// One kind's shared reflector: its store, subscriber streams for the controllers, and the
/// root stream to drive.
pub(super) struct Shared<K: Resource<DynamicType = ()> + Clone + 'static> {
    /// The store every reader shares.
    pub store: Store<K>,
    writer: Option<reflector::store::Writer<K>>,
    api: Api<K>,
    config: watcher::Config,
    pokes: Pokes,
}

impl<K> Shared<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    fn new(client: &Client, config: watcher::Config, pokes: Pokes) -> Self {
        let (store, writer) = reflector::store_shared(FAN_OUT_BUFFER);
        Shared {
            store,
            writer: Some(writer),
            api: Api::all(client.clone()),
            config,
            pokes,
        }
    }

    /// A controller of the kind, fed by this reflector.
    pub fn controller(&self) -> Controller<K> {
        Controller::for_shared_stream(self.subscribe(), self.store.clone())
    }

    /// A stream of the kind's changed objects, for one controller.
    pub fn subscribe(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        self.writer
            .as_ref()
            .and_then(|w| w.subscribe())
            .expect("shared stores can be subscribed to before they run")
    }

    /// The root stream: watch, fill the store, poke the publisher as [`Pokes`] says.
    fn root(&mut self, publisher: Arc<Publisher>) -> impl Future<Output = ()> + Send + 'static {
        let writer = self.writer.take().expect("driven once");
        let spec_only = self.pokes == Pokes::SpecChanges;
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
                publisher.poke();
                futures::future::ready(())
            })
    }
}

/// What is done alike to every kind's reflector.
trait Reflector {
    /// The kind, for logs.
    fn kind(&self) -> String;
    /// The root stream ([`Shared::root`]), boxed.
    fn root(&mut self, publisher: Arc<Publisher>) -> BoxFuture<'static, ()>;
    /// Resolves once the store holds its initial list.
    fn synced(&self) -> BoxFuture<'static, ()>;
}

impl<K> Reflector for Shared<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    fn kind(&self) -> String {
        K::kind(&()).into_owned()
    }

    fn root(&mut self, publisher: Arc<Publisher>) -> BoxFuture<'static, ()> {
        Shared::root(self, publisher).boxed()
    }

    fn synced(&self) -> BoxFuture<'static, ()> {
        let store = self.store.clone();
        let kind = K::kind(&()).into_owned();
        async move {
            // Fails only when the writer is gone, i.e. the operator is stopping.
            if store.wait_until_ready().await.is_ok() {
                // Which caches synced, so a readiness that never comes names the one that did not.
                tracing::debug!(%kind, objects = store.len(), "cache synced");
            }
        }
        .boxed()
    }
}

/// Every kind the operator watches.
pub(super) struct Reflectors {
    pub brokers: Shared<Broker>,
    pub triggers: Shared<Trigger>,
    pub channels: Shared<KafkaChannel>,
    pub subscriptions: Shared<Subscription>,
    pub sources: Shared<KafkaSource>,
    pub services: Shared<KnativeService>,
    pub configurations: Shared<Configuration>,
    pub revisions: Shared<Revision>,
    pub routes: Shared<Route>,
    pub deployments: Shared<Deployment>,
    pub endpoints: Shared<EndpointSlice>,
}

impl Reflectors {
    /// The table of watches: which objects of each kind, and which changes poke the publisher.
    pub fn new(client: &Client) -> Self {
        use Pokes::{EveryChange, SpecChanges};
        // Watches end on the server's side before the client's read timeout would cut them.
        let all =
            || watcher::Config::default().timeout(ferry_runtime::kube_client::WATCH_TIMEOUT_SECS);
        // Only the Deployments and EndpointSlices of revisions, not every one in the cluster.
        let of_revisions = || all().labels(REVISION_LABEL);
        Reflectors {
            brokers: Shared::new(client, all(), EveryChange),
            triggers: Shared::new(client, all(), SpecChanges),
            channels: Shared::new(client, all(), EveryChange),
            subscriptions: Shared::new(client, all(), SpecChanges),
            sources: Shared::new(client, all(), SpecChanges),
            services: Shared::new(client, all(), EveryChange),
            configurations: Shared::new(client, all(), EveryChange),
            revisions: Shared::new(client, all(), EveryChange),
            routes: Shared::new(client, all(), EveryChange),
            deployments: Shared::new(client, of_revisions(), EveryChange),
            endpoints: Shared::new(client, of_revisions(), EveryChange),
        }
    }

    /// Readers of every store.
    pub fn stores(&self) -> Stores {
        Stores {
            brokers: self.brokers.store.clone(),
            triggers: self.triggers.store.clone(),
            channels: self.channels.store.clone(),
            subscriptions: self.subscriptions.store.clone(),
            sources: self.sources.store.clone(),
            services: self.services.store.clone(),
            configurations: self.configurations.store.clone(),
            revisions: self.revisions.store.clone(),
            routes: self.routes.store.clone(),
            deployments: self.deployments.store.clone(),
            endpoints: self.endpoints.store.clone(),
        }
    }

    fn each(&mut self) -> [&mut dyn Reflector; 11] {
        [
            &mut self.brokers,
            &mut self.triggers,
            &mut self.channels,
            &mut self.subscriptions,
            &mut self.sources,
            &mut self.services,
            &mut self.configurations,
            &mut self.revisions,
            &mut self.routes,
            &mut self.deployments,
            &mut self.endpoints,
        ]
    }

    /// Resolves once every store holds its initial list. While some do not, says which every
    /// [`SYNC_WARN_EVERY`], so a readiness that never comes names its cause.
    pub fn synced(&mut self) -> impl Future<Output = ()> + Send + 'static {
        let waiting = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
        let all: Vec<_> = self
            .each()
            .iter()
            .map(|r| {
                let (kind, synced, waiting) = (r.kind(), r.synced(), waiting.clone());
                lock(&waiting).insert(kind.clone());
                synced.map(move |()| {
                    lock(&waiting).remove(&kind);
                })
            })
            .collect();
        async move {
            let all = futures::future::join_all(all);
            tokio::pin!(all);
            let started = tokio::time::Instant::now();
            let mut every = tokio::time::interval_at(started + SYNC_WARN_EVERY, SYNC_WARN_EVERY);
            loop {
                tokio::select! {
                    _ = &mut all => return,
                    _ = every.tick() => {
                        let kinds: Vec<String> = lock(&waiting).iter().cloned().collect();
                        tracing::warn!(?kinds, waited = ?started.elapsed(), "caches still waiting for their initial list; not ready yet");
                    }
                }
            }
        }
    }

    /// Spawns every watch into `tasks`; each ends when `stop` turns `true`. Call after every
    /// controller has subscribed.
    pub fn drive(
        &mut self,
        publisher: &Arc<Publisher>,
        tasks: &mut Tasks,
        stop: &watch::Receiver<bool>,
    ) {
        for reflector in self.each() {
            let (root, mut stop) = (reflector.root(publisher.clone()), stop.clone());
            tasks.spawn(format!("{} watch", reflector.kind()), async move {
                let _ = unless_stopped(&mut stop, root).await;
            });
        }
    }
}
