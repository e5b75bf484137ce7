//! Publishing the data-plane contract. The reconciles report what the compile depends on (topic
//! states, the Secrets of KafkaSources, `config-br-defaults`) and ask where their objects stand;
//! one loop ([`run`]) compiles the cached objects ([`ferry_control::contract_inputs`], shared
//! with `ferry dev`), writes each new generation to the [`ContractSecret`], records it in the
//! [`Ledger`] and wakes the controllers whose objects' place in the data plane changed:
//! compiled, left out (and why), or applied by every dispatcher.
//!
//! Changes are gathered for a short debounce and written as one new generation, so 10,000
//! Triggers created at once make a handful of writes, not 10,000.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ferry_api::contract::{CompileError, Contract, Egress, ObjectRef};
use ferry_api::duck::KReference;
use ferry_api::eventing::{Broker, BrokerDefaults};
use ferry_api::observability::Tracing;
use ferry_api::sources::SecretData;
use ferry_control::contract_inputs::{
    self, Compiled, Environment, SecretValues, referenced_secrets, revision_replicas,
};
use ferry_control::contract_ledger::Ledger;
use ferry_control::serving::{http_routes, revision_url};
use futures::future::BoxFuture;
use tokio::sync::{Notify, watch};

use crate::args::Args;
use crate::contract_secret::ContractSecret;
use crate::status::{DataPlane, Topic};
use crate::tasks::unless_stopped;
use crate::world::Stores;

/// What the reconciles and the publishing loop share: the compile's inputs that are not
/// objects, and the [`Ledger`].
#[derive(Default)]
struct State {
    ledger: Ledger,
    /// Topic states reported by the Broker and KafkaChannel controllers.
    topics: HashMap<String, Topic>,
    /// Knative's `config-br-defaults`, as last read.
    broker_defaults: Arc<BrokerDefaults>,
    /// The Secrets KafkaSources' `spec.net` reference, as their controller last read them.
    secrets: Arc<SecretValues>,
    /// `config-features`' `tag-header-based-routing`, for the contract.
    tag_header_routing: bool,
    /// `config-observability`'s tracing settings, for the contract.
    tracing: Option<Tracing>,
    /// The ready dispatchers' pod IPs, for the contract's `activators`.
    activators: Vec<String>,
}

/// The contract as the controllers see it, shared between them and [`run`].
#[derive(Default)]
pub struct Publisher {
    state: Mutex<State>,
    /// Something the contract depends on changed.
    dirty: Notify,
}

/// Where the contract goes and how it is compiled.
#[derive(Clone, Debug)]
pub struct PublisherConfig {
    /// Namespace of the contract Secret.
    pub namespace: String,
    /// Name of the contract Secret.
    pub secret: String,
    /// Bootstrap servers written into the contract.
    pub bootstrap_servers: String,
    /// Reconcile Brokers without a class too.
    pub claim_classless: bool,
    /// Cluster DNS domain.
    pub cluster_domain: String,
    /// Gathering time before a write.
    pub debounce: Duration,
}

impl PublisherConfig {
    /// The settings `args` give.
    pub fn from_args(args: &Args) -> Self {
        PublisherConfig {
            namespace: args.leader_election_namespace.clone(),
            secret: args.contract_secret.clone(),
            bootstrap_servers: args.kafka_bootstrap_servers.clone(),
            claim_classless: args.claim_brokers_without_class,
            cluster_domain: args.cluster_domain.clone(),
            debounce: args.contract_debounce,
        }
    }
}

/// Wakes the controller of an object whose place in the data plane changed.
pub trait Wake: Send + Sync {
    /// Queues `object` for its controller; waits while the controller's queue is full.
    fn wake<'a>(&'a self, object: &'a ObjectRef) -> BoxFuture<'a, ()>;
}

impl Publisher {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Something the contract depends on changed: recompile soon.
    pub fn poke(&self) {
        self.dirty.notify_one();
    }

    /// Records the state of a topic (from the Broker or KafkaChannel controller).
    pub fn set_topic(&self, topic: &str, state: Topic) {
        let changed = self.lock().topics.insert(topic.to_owned(), state.clone()) != Some(state);
        if changed {
            self.poke();
        }
    }

    /// The state of a topic the controllers reported.
    pub fn topic(&self, topic: &str) -> Topic {
        self.lock().topics.get(topic).cloned().unwrap_or_default()
    }

    /// Replaces the broker defaults (`config-br-defaults`); `true` when they changed.
    pub fn set_broker_defaults(&self, defaults: BrokerDefaults) -> bool {
        let mut state = self.lock();
        if *state.broker_defaults == defaults {
            return false;
        }
        state.broker_defaults = Arc::new(defaults);
        drop(state);
        self.poke();
        true
    }

    /// Follows `config-observability`'s tracing settings; `true` when they changed.
    pub fn set_tracing(&self, tracing: Option<Tracing>) -> bool {
        let changed = std::mem::replace(&mut self.lock().tracing, tracing.clone()) != tracing;
        if changed {
            self.poke();
        }
        changed
    }

    /// Follows `config-features`' `tag-header-based-routing`.
    pub fn set_tag_header_routing(&self, on: bool) {
        let changed = std::mem::replace(&mut self.lock().tag_header_routing, on) != on;
        if changed {
            self.poke();
        }
    }

    /// `broker` as the operator reconciles it: `config-br-defaults` applied.
    pub fn effective_broker(&self, broker: &Arc<Broker>) -> Arc<Broker> {
        let defaults = self.lock().broker_defaults.clone();
        contract_inputs::effective_broker(&defaults, broker)
    }

    /// Records what a Secret referenced by a KafkaSource holds (or why it could not be read, a
    /// message for the source's status); a change recompiles.
    pub fn set_secret(&self, namespace: &str, name: &str, value: Result<SecretData, String>) {
        let key = (namespace.to_owned(), name.to_owned());
        let mut state = self.lock();
        if state.secrets.get(&key) == Some(&value) {
            return;
        }
        Arc::make_mut(&mut state.secrets).insert(key, value);
        drop(state);
        self.poke();
    }

    /// The Secrets recorded by [`Publisher::set_secret`].
    pub fn secrets(&self) -> Arc<SecretValues> {
        self.lock().secrets.clone()
    }

    /// Drops the Secrets no KafkaSource in `stores` references any more, so credentials do not
    /// outlive the sources that needed them.
    pub fn forget_unreferenced_secrets(&self, stores: &Stores) {
        let mut state = self.lock();
        if state.secrets.is_empty() {
            return;
        }
        let sources = stores.sources.state();
        let referenced = referenced_secrets(sources.iter().map(|s| &**s));
        if state.secrets.keys().any(|k| !referenced.contains(k)) {
            Arc::make_mut(&mut state.secrets).retain(|k, _| referenced.contains(k));
        }
    }

    /// Records the ready dispatchers (their pod IPs, sorted), among which each revision
    /// replica's containerConcurrency is split; a change recompiles.
    pub fn set_activators(&self, hosts: Vec<String>) {
        let changed = {
            let mut state = self.lock();
            let changed = state.activators != hosts;
            state.activators = hosts;
            changed
        };
        if changed {
            self.poke();
        }
    }

    /// Records the generation every dispatcher has applied.
    pub fn set_applied(&self, generation: Option<u64>) {
        if self.lock().ledger.set_applied(generation) {
            self.poke();
        }
    }

    /// How long `object` (at `metadata.generation` `generation`) has been in a written
    /// contract that the dispatchers have not all applied yet; `None` when it is not waiting
    /// for the dispatchers.
    pub fn unapplied_for(&self, object: &ObjectRef, generation: Option<i64>) -> Option<Duration> {
        self.lock()
            .ledger
            .unapplied_for(object, generation, Instant::now())
    }

    /// `true` once every dispatcher runs the contract last written (or none reports).
    pub fn settled(&self) -> bool {
        self.lock().ledger.settled()
    }

    /// The generation of the contract last written.
    pub fn generation(&self) -> u64 {
        self.lock().ledger.generation()
    }

    /// Where `object`, at `metadata.generation` `generation`, stands in the data plane, and its
    /// compiled egress.
    pub fn observe(
        &self,
        object: &ObjectRef,
        generation: Option<i64>,
    ) -> (DataPlane, Option<Egress>) {
        self.lock().ledger.observe(object, generation)
    }

    /// Records a compiled contract (carrying its generation) as written now.
    pub fn record(
        &self,
        contract: Contract,
        errors: Vec<CompileError>,
        objects: &[(ObjectRef, Option<i64>)],
    ) {
        self.lock()
            .ledger
            .record(contract, errors, objects, Instant::now());
    }

    /// Compiles `stores` with what the reconciles reported, then forgets the Secrets no source
    /// needs any more.
    fn compile(&self, stores: &Stores, config: &PublisherConfig) -> Compiled {
        let (topics, defaults, secrets, tag_header_routing, tracing, activators) = {
            let state = self.lock();
            (
                state.topics.clone(),
                state.broker_defaults.clone(),
                state.secrets.clone(),
                state.tag_header_routing,
                state.tracing.clone(),
                state.activators.clone(),
            )
        };
        let env = Environment {
            topics: &topics,
            broker_defaults: &defaults,
            secrets: &secrets,
            bootstrap_servers: &config.bootstrap_servers,
            claim_classless: config.claim_classless,
        };
        let mut compiled = compile_stores(stores, &env, &config.cluster_domain);
        compiled.contract.tag_header_routing = tag_header_routing;
        compiled.contract.tracing = tracing;
        // A lone dispatcher takes every slot: no list needed.
        if activators.len() > 1 {
            compiled.contract.activators = activators;
        }
        drop(secrets);
        self.forget_unreferenced_secrets(stores);
        compiled
    }

    /// Starts from the contract in `secret`, so generations keep growing across restarts and
    /// leader changes; `false` when it cannot be read (retried).
    async fn resume(&self, secret: &ContractSecret) -> bool {
        let existing = match secret.read().await {
            Ok(existing) => existing,
            Err(crate::Error::Kube(e)) => {
                tracing::warn!(secret = %secret.name(), error = %e, "cannot read the contract Secret; retrying");
                return false;
            }
            Err(e) => {
                tracing::warn!(error = %e, "starting from generation 0");
                None
            }
        };
        // The ingress Secret follows the contract resumed from: it may be new (an upgrade
        // from a chart without it) while the contract needs no new generation.
        if let Some(contract) = &existing
            && let Err(e) = secret.write_ingress(contract).await
        {
            tracing::warn!(error = %e, "cannot write the ingress contract Secret; retrying");
            return false;
        }
        self.lock().ledger.resume(existing);
        true
    }
}

/// Compiles the eventing objects of `stores` into a contract (generation 0), resolving
/// references through the stores, with the activation section from their revisions and
/// EndpointSlices.
pub fn compile_stores(stores: &Stores, env: &Environment<'_>, cluster_domain: &str) -> Compiled {
    let resolve = |r: &KReference| stores.resolve(r, cluster_domain);
    let revisions = revision_replicas(
        &stores.revisions.state(),
        &stores.endpoints.state(),
        cluster_domain,
    );
    let routes = stores
        .routes
        .state()
        .iter()
        .flat_map(|route| {
            let ns = route.metadata.namespace.as_deref().unwrap_or_default();
            http_routes(route, cluster_domain, &|r| {
                Some(revision_url(ns, r, cluster_domain))
            })
        })
        .collect();
    contract_inputs::compile(stores.eventing(), env, &resolve, revisions, routes)
}

/// How long to wait before retrying a failed read or write of the contract Secret.
const RETRY: Duration = Duration::from_secs(1);

/// Publishes until `stop` turns `true`: waits for a change, gathers for the debounce, compiles,
/// writes a new generation when the content changed, and wakes through `wake` the controllers
/// of objects whose data-plane state changed. `on_write` hears every generation written.
///
/// Stopping never interrupts a write: the loop stops while it waits.
pub async fn run(
    publisher: Arc<Publisher>,
    secret: ContractSecret,
    stores: Stores,
    config: PublisherConfig,
    wake: &dyn Wake,
    on_write: &(dyn Fn(u64) + Send + Sync),
    mut stop: watch::Receiver<bool>,
) {
    let mut unwritten: Option<Contract> = None;
    // How long the last compile took: under a steady stream of changes, compiles are spaced
    // at least four times that apart, so publishing takes at most a fifth of a core and the
    // garbage of one compile is gone before the next.
    let mut last_compile = Duration::ZERO;
    loop {
        if unwritten.is_none()
            && unless_stopped(&mut stop, publisher.dirty.notified())
                .await
                .is_none()
        {
            return;
        }
        let gather = tokio::time::sleep(config.debounce.max(last_compile * 4));
        if unless_stopped(&mut stop, gather).await.is_none() {
            return;
        }
        if !publisher.lock().ledger.resumed() && !publisher.resume(&secret).await {
            publisher.poke();
            let _ = unless_stopped(&mut stop, tokio::time::sleep(RETRY)).await;
            continue;
        }
        let compiling = Instant::now();
        let Compiled {
            mut contract,
            errors,
            objects,
        } = publisher.compile(&stores, &config);
        last_compile = compiling.elapsed();
        let changed = publisher.lock().ledger.stamp(&mut contract);
        // A new contract, or else one whose write failed. Written by reference: a copy of
        // 10,000 egresses is tens of MiB.
        let pending = unwritten.take();
        if let Some(c) = if changed {
            Some(&contract)
        } else {
            pending.as_ref()
        } {
            if let Err(e) = secret.write(c).await {
                tracing::warn!(error = %e, "cannot write the contract; retrying");
                unwritten = if changed { Some(contract) } else { pending };
                let _ = unless_stopped(&mut stop, tokio::time::sleep(RETRY)).await;
                continue;
            }
            tracing::info!(generation = c.generation, "contract written");
            on_write(c.generation);
        }
        publisher.record(contract, errors, &objects);
        let changed = publisher.lock().ledger.tell(&objects);
        for o in &changed {
            if unless_stopped(&mut stop, wake.wake(o)).await.is_none() {
                return;
            }
        }
    }
}
