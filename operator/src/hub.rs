//! The contract hub: compiles every eventing object into the data-plane contract (the pure
//! [`ferry_api::contract::compile`] that `ferry dev` uses too), writes it to the Secret the
//! dispatchers mount, and tells each object's controller when its place in the data plane
//! changed: compiled, left out (and why), or applied by every dispatcher.
//!
//! Changes are gathered for a short debounce and written as one new generation, so 10,000
//! Triggers created at once make a handful of writes, not 10,000. The contract is a Secret, not
//! a ConfigMap, because it carries the credentials of KafkaSources' `spec.net`. It holds the
//! contract gzip-compressed under `data`, which keeps tens of thousands of egresses within
//! Kubernetes' 1 MiB object limit; the dispatcher reads gzip and plain JSON (the chart's initial
//! empty contract) alike.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ferry_api::contract::{
    self, Activation, CompileError, CompileInput, Contract, ContractResource, Egress, ObjectRef,
    Target,
};
use ferry_api::eventing::{Broker, BrokerDefaults};
use ferry_api::sources::SecretData;
use ferry_api::validation::{FieldError, Unsupported, Validate};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, SecretKeySelector};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use tokio::sync::Notify;

use crate::status::{DataPlane, Topic};
use crate::world::{Stores, revision_url};

/// The key the contract is stored under in its Secret (the file name the dispatcher reads).
pub const CONTRACT_KEY: &str = "contract.json";

/// Where an object was last seen by the compiler.
#[derive(Clone, Debug)]
enum Seen {
    /// In the contract since contract generation `since` (its current form).
    Carried { since: u64 },
    /// Left out.
    Failed(CompileError),
}

#[derive(Default)]
struct State {
    /// The contract last written (generation 0 before the first write).
    contract: Contract,
    /// `true` once a contract was written or read back, so generations continue.
    started: bool,
    /// Per object: the `metadata.generation` compiled and where it went.
    seen: HashMap<ObjectRef, (Option<i64>, Seen)>,
    /// Where each egress sits in `contract` (resource index, egress index).
    egresses: HashMap<ObjectRef, (usize, usize)>,
    /// Topic states reported by the Broker and KafkaChannel controllers.
    topics: HashMap<String, Topic>,
    /// Knative's `config-br-defaults`, as last read.
    broker_defaults: Arc<BrokerDefaults>,
    /// The Secrets KafkaSources' `spec.net` reference, as their controller last read them.
    secrets: Arc<SecretValues>,
    /// The generation every dispatcher reports.
    applied: Option<u64>,
    /// When each generation not yet applied everywhere was recorded.
    written_at: BTreeMap<u64, std::time::Instant>,
    /// What each object's controller was last told (for which `metadata.generation`), to wake
    /// only those whose state changed — including a spec change that compiles to the same
    /// contract entry.
    told: HashMap<ObjectRef, (Option<i64>, DataPlane)>,
}

/// Shared between the hub's loop and the controllers.
pub struct Hub {
    state: Mutex<State>,
    dirty: Notify,
}

/// Everything the hub needs from outside.
pub struct HubConfig {
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

/// Secrets by (namespace, name): their data, or why they could not be read.
pub type SecretValues = HashMap<(String, String), Result<SecretData, String>>;

/// The text under `r`'s key of Secret `ns`/`r.name`, as last read into `secrets`.
///
/// # Errors
/// The Secret was not read yet, could not be read, lacks the key, or holds no text there.
pub fn secret_value(
    secrets: &SecretValues,
    ns: &str,
    r: &SecretKeySelector,
) -> Result<String, String> {
    match secrets.get(&(ns.to_owned(), r.name.clone())) {
        None => Err(format!("Secret {ns}/{} is not read yet", r.name)),
        Some(Err(e)) => Err(e.clone()),
        Some(Ok(data)) => ferry_api::sources::secret_key_value(ns, r, data),
    }
}

/// Field manager of everything the operator writes.
pub const MANAGER: &str = "ferry-operator";

impl Default for Hub {
    fn default() -> Self {
        Hub {
            state: Mutex::new(State::default()),
            dirty: Notify::new(),
        }
    }
}

impl Hub {
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

    /// Records what a Secret referenced by a KafkaSource holds (or why it could not be read);
    /// a change recompiles.
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

    /// Drops the Secrets no KafkaSource in `stores` references any more, so credentials do not
    /// outlive the sources that needed them.
    pub fn forget_unreferenced_secrets(&self, stores: &Stores) {
        let mut state = self.lock();
        if state.secrets.is_empty() {
            return;
        }
        let referenced: std::collections::HashSet<(String, String)> = stores
            .sources
            .state()
            .iter()
            .flat_map(|s| {
                let ns = s.namespace().unwrap_or_default();
                s.spec
                    .net
                    .secret_refs()
                    .into_iter()
                    .map(move |r| (ns.clone(), r.name.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        if state.secrets.keys().any(|k| !referenced.contains(k)) {
            Arc::make_mut(&mut state.secrets).retain(|k, _| referenced.contains(k));
        }
    }

    /// The Secrets recorded by [`Hub::set_secret`].
    pub fn secrets(&self) -> Arc<SecretValues> {
        self.lock().secrets.clone()
    }

    /// `broker` as the operator reconciles it: `config-br-defaults` applied (Knative applies
    /// them when a Broker is created; Ferry has no webhook, so at every read).
    pub fn effective_broker(&self, broker: &Arc<Broker>) -> Arc<Broker> {
        let defaults = self.lock().broker_defaults.clone();
        effective_broker(&defaults, broker)
    }

    /// The state of a topic the controllers reported.
    pub fn topic(&self, topic: &str) -> Topic {
        self.lock().topics.get(topic).cloned().unwrap_or_default()
    }

    /// Records the generation every dispatcher has applied.
    pub fn set_applied(&self, generation: Option<u64>) {
        let mut state = self.lock();
        if state.applied != generation {
            state.applied = generation;
            drop(state);
            self.poke();
        }
    }

    /// How long `object` (at `metadata.generation` `generation`) has been in a written
    /// contract that the dispatchers have not all applied yet; `None` when it is not waiting
    /// for the dispatchers.
    pub fn unapplied_for(&self, object: &ObjectRef, generation: Option<i64>) -> Option<Duration> {
        let state = self.lock();
        match state.seen.get(object) {
            Some((g, Seen::Carried { since }))
                if *g == generation && state.applied.is_none_or(|a| a < *since) =>
            {
                state.written_at.get(since).map(|t| t.elapsed())
            }
            _ => None,
        }
    }

    /// `true` once every dispatcher runs the contract last written (or none reports).
    pub fn settled(&self) -> bool {
        let state = self.lock();
        // No dispatcher reporting at all: nobody consumes, nothing to wait for.
        state.applied.is_none_or(|a| a >= state.contract.generation)
    }

    /// The generation of the contract last written.
    pub fn generation(&self) -> u64 {
        self.lock().contract.generation
    }

    /// Where `object`, at `metadata.generation` `generation`, stands in the data plane, and its
    /// compiled egress.
    pub fn observe(
        &self,
        object: &ObjectRef,
        generation: Option<i64>,
    ) -> (DataPlane, Option<Egress>) {
        let state = self.lock();
        let dp = data_plane(&state, object, generation);
        let egress = state
            .egresses
            .get(object)
            .and_then(|(r, e)| state.contract.resources.get(*r)?.egresses.get(*e).cloned());
        (dp, egress)
    }

    /// Records a compiled contract (carrying its generation) as written: objects keep the
    /// generation they first appeared in while their entry is unchanged.
    pub fn record(
        &self,
        contract: Contract,
        errors: Vec<CompileError>,
        objects: &[(ObjectRef, Option<i64>)],
    ) {
        record(&mut self.lock(), contract, errors, objects);
    }

    /// Starts from the contract already in the Secret, so generations keep growing across
    /// restarts and leader changes.
    pub fn resume(&self, existing: Option<Contract>) {
        let mut state = self.lock();
        if let Some(contract) = existing {
            state.contract = contract;
        }
        state.started = true;
    }
}

fn data_plane(state: &State, object: &ObjectRef, generation: Option<i64>) -> DataPlane {
    match state.seen.get(object) {
        Some((seen_gen, _)) if *seen_gen != generation => DataPlane::Pending,
        Some((_, Seen::Failed(e))) => DataPlane::Failed(e.clone()),
        Some((_, Seen::Carried { since })) => DataPlane::Compiled {
            applied: state.applied.is_some_and(|a| a >= *since),
        },
        None => DataPlane::Pending,
    }
}

/// The contract Secret's content as a JSON merge patch: `data` holds the gzip (replacing the
/// chart's initial plain JSON under the same key).
pub fn secret_patch(contract: &Contract) -> serde_json::Value {
    let gz = ByteString(contract.to_gzip());
    serde_json::json!({"data": {CONTRACT_KEY: gz}})
}

/// The contract Secret as created when it is missing: type Opaque, the gzip under `data`.
fn contract_secret(name: &str, contract: &Contract) -> Secret {
    let mut secret = Secret::default();
    secret.metadata.name = Some(name.to_owned());
    secret.type_ = Some("Opaque".to_owned());
    secret.data = Some(BTreeMap::from([(
        CONTRACT_KEY.to_owned(),
        ByteString(contract.to_gzip()),
    )]));
    secret
}

/// Reads the contract a Secret holds, gzip or plain JSON.
///
/// # Errors
/// The Secret holds something that is not a contract (the message never quotes the content).
pub fn contract_in(secret: &Secret) -> Result<Option<Contract>, String> {
    match secret.data.as_ref().and_then(|d| d.get(CONTRACT_KEY)) {
        Some(bytes) => Contract::from_bytes(&bytes.0).map(Some),
        None => Ok(None),
    }
}

/// The objects compiled, by kind: the stores' own objects, shared, not copied.
struct Inputs {
    brokers: Vec<Arc<Broker>>,
    triggers: Vec<Arc<ferry_api::eventing::Trigger>>,
    channels: Vec<Arc<ferry_api::messaging::KafkaChannel>>,
    subscriptions: Vec<Arc<ferry_api::messaging::Subscription>>,
    sources: Vec<Arc<ferry_api::sources::KafkaSource>>,
}

fn key<K: kube::Resource>(kind: &str, o: &K) -> ObjectRef {
    ObjectRef::new(
        kind,
        &o.meta().namespace.clone().unwrap_or_default(),
        o.meta().name.as_deref().unwrap_or_default(),
    )
}

/// Whether an object can be compiled: not being deleted (objects being deleted leave the
/// contract first, so their topic or consumer group can go), valid, and setting nothing Ferry
/// does not act on. Checked on the stores' objects, so nothing is copied that is left out.
fn usable<K: kube::Resource + Validate>(o: &K, unsupported: &[FieldError]) -> bool {
    o.meta().deletion_timestamp.is_none() && o.validate().is_ok() && unsupported.is_empty()
}

/// `broker` with `defaults` applied; the same object when they change nothing.
fn effective_broker(defaults: &BrokerDefaults, broker: &Arc<Broker>) -> Arc<Broker> {
    defaults
        .apply(broker)
        .map_or_else(|| broker.clone(), Arc::new)
}

/// Picks what to compile: objects whose spec is usable, Brokers of the Ferry class (after
/// `config-br-defaults`), and Brokers and channels whose topic exists.
fn inputs(
    stores: &Stores,
    topics: &HashMap<String, Topic>,
    defaults: &BrokerDefaults,
    claim_classless: bool,
) -> Inputs {
    let topic_ready = |t: &str| matches!(topics.get(t), Some(Topic::Ready(_)));
    let brokers = stores
        .brokers
        .state()
        .iter()
        .map(|b| effective_broker(defaults, b))
        .filter(|b| b.is_ferry_class(claim_classless) && usable(&**b, &[]))
        .filter(|b| {
            topic_ready(&contract::broker_topic(
                &b.namespace().unwrap_or_default(),
                &b.name_any(),
            ))
        })
        .collect();
    let channels = stores
        .channels
        .state()
        .into_iter()
        .filter(|c| usable(&**c, &[]))
        .filter(|c| {
            topic_ready(&contract::channel_topic(
                &c.namespace().unwrap_or_default(),
                &c.name_any(),
            ))
        })
        .collect();
    Inputs {
        brokers,
        triggers: stores
            .triggers
            .state()
            .into_iter()
            .filter(|t| usable(&**t, &t.unsupported_fields()))
            .collect(),
        channels,
        subscriptions: stores
            .subscriptions
            .state()
            .into_iter()
            .filter(|s| usable(&**s, &s.unsupported_fields()))
            .collect(),
        sources: stores
            .sources
            .state()
            .into_iter()
            .filter(|s| usable(&**s, &s.unsupported_fields()))
            .collect(),
    }
}

/// Every object the hub reports on, with its `metadata.generation`.
fn objects(inputs: &Inputs) -> Vec<(ObjectRef, Option<i64>)> {
    let mut out = Vec::new();
    out.extend(
        inputs
            .brokers
            .iter()
            .map(|o| (key("Broker", &**o), o.metadata.generation)),
    );
    out.extend(
        inputs
            .triggers
            .iter()
            .map(|o| (key("Trigger", &**o), o.metadata.generation)),
    );
    out.extend(
        inputs
            .channels
            .iter()
            .map(|o| (key("KafkaChannel", &**o), o.metadata.generation)),
    );
    out.extend(
        inputs
            .subscriptions
            .iter()
            .map(|o| (key("Subscription", &**o), o.metadata.generation)),
    );
    out.extend(
        inputs
            .sources
            .iter()
            .map(|o| (key("KafkaSource", &**o), o.metadata.generation)),
    );
    out
}

/// A compiled contract (generation 0), the objects left out and why, and every object
/// compiled with its `metadata.generation`.
pub type Compiled = (Contract, Vec<CompileError>, Vec<(ObjectRef, Option<i64>)>);

/// Compiles the stores into a contract (generation left for the caller) and its errors,
/// adding the activation section: every revision a destination names, with the ready
/// endpoints of its Service and its container concurrency.
pub fn compile_stores(
    stores: &Stores,
    topics: &HashMap<String, Topic>,
    defaults: &BrokerDefaults,
    secrets: &SecretValues,
    config: &HubConfig,
) -> Compiled {
    let inputs = inputs(stores, topics, defaults, config.claim_classless);
    let resolve = |r: &ferry_api::duck::KReference| stores.resolve(r, &config.cluster_domain);
    let secret = |ns: &str, r: &SecretKeySelector| secret_value(secrets, ns, r);
    fn refs<K>(objects: &[Arc<K>]) -> Vec<&K> {
        objects.iter().map(|o| &**o).collect()
    }
    let (mut contract, errors) = contract::compile(&CompileInput {
        generation: 0,
        bootstrap_servers: &config.bootstrap_servers,
        brokers: &refs(&inputs.brokers),
        triggers: &refs(&inputs.triggers),
        channels: &refs(&inputs.channels),
        subscriptions: &refs(&inputs.subscriptions),
        sources: &refs(&inputs.sources),
        resolve: &resolve,
        secret: &secret,
    });
    contract.activation = activation(stores, &contract, &config.cluster_domain);
    (contract, errors, objects(&inputs))
}

fn activation(stores: &Stores, contract: &Contract, cluster_domain: &str) -> Vec<Activation> {
    let mut urls: BTreeMap<String, ()> = BTreeMap::new();
    for egress in contract.resources.iter().flat_map(|r| &r.egresses) {
        if let Target::Revisions(targets) = &egress.destination {
            for t in targets {
                urls.insert(t.url.clone(), ());
            }
        }
    }
    let mut out = Vec::new();
    for revision in stores.revisions.state() {
        let ns = revision.namespace().unwrap_or_default();
        let name = revision.name_any();
        let url = revision_url(&ns, &name, cluster_domain);
        if !urls.contains_key(&url) {
            continue;
        }
        let mut endpoints: Vec<String> = stores
            .endpoints
            .state()
            .iter()
            .filter(|s| {
                s.metadata.namespace.as_deref() == Some(&ns)
                    && s.labels().get(crate::world::REVISION_LABEL) == Some(&name)
            })
            .flat_map(|s| {
                let port = s
                    .ports
                    .as_ref()
                    .and_then(|p| p.first())
                    .and_then(|p| p.port)
                    .unwrap_or(8080);
                s.endpoints
                    .iter()
                    .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
                    .flat_map(|e| e.addresses.clone())
                    .map(move |ip| format!("http://{ip}:{port}"))
                    .collect::<Vec<_>>()
            })
            .collect();
        endpoints.sort();
        endpoints.dedup();
        out.push(Activation {
            url,
            revision: format!("{ns}/{name}"),
            endpoints,
            container_concurrency: revision
                .spec
                .container_concurrency
                .and_then(|c| u32::try_from(c).ok())
                .unwrap_or(0),
        });
    }
    out.sort_by(|a, b| a.url.cmp(&b.url));
    out
}

/// The contract without its generation, for "did anything change".
fn same_content(a: &Contract, b: &Contract) -> bool {
    a.resources == b.resources && a.activation == b.activation
}

fn resource_shell(r: &ContractResource) -> ContractResource {
    ContractResource {
        egresses: Vec::new(),
        ..r.clone()
    }
}

/// Updates what the hub knows after compiling `new` (already carrying its generation), given
/// the previous contract: unchanged entries keep the generation they first appeared in.
fn record(
    state: &mut State,
    new: Contract,
    errors: Vec<CompileError>,
    objects: &[(ObjectRef, Option<i64>)],
) {
    let generation = new.generation;
    let old_resources: HashMap<&ObjectRef, &ContractResource> = state
        .contract
        .resources
        .iter()
        .map(|r| (&r.reference, r))
        .collect();
    let old_egresses: HashMap<&ObjectRef, &Egress> = state
        .contract
        .resources
        .iter()
        .flat_map(|r| &r.egresses)
        .map(|e| (&e.reference, e))
        .collect();
    let since = |state_seen: &HashMap<ObjectRef, (Option<i64>, Seen)>,
                 object: &ObjectRef,
                 unchanged: bool| {
        match state_seen.get(object) {
            Some((_, Seen::Carried { since })) if unchanged => *since,
            _ => generation,
        }
    };
    let generations: HashMap<&ObjectRef, Option<i64>> =
        objects.iter().map(|(o, g)| (o, *g)).collect();
    let mut seen = HashMap::with_capacity(objects.len());
    let mut egresses = HashMap::new();
    for (ri, resource) in new.resources.iter().enumerate() {
        let unchanged = old_resources
            .get(&resource.reference)
            .is_some_and(|old| resource_shell(old) == resource_shell(resource));
        let s = since(&state.seen, &resource.reference, unchanged);
        let g = generations.get(&resource.reference).copied().flatten();
        seen.insert(resource.reference.clone(), (g, Seen::Carried { since: s }));
        for (ei, egress) in resource.egresses.iter().enumerate() {
            let unchanged = old_egresses
                .get(&egress.reference)
                .is_some_and(|old| *old == egress);
            let s = since(&state.seen, &egress.reference, unchanged);
            let g = generations.get(&egress.reference).copied().flatten();
            seen.insert(egress.reference.clone(), (g, Seen::Carried { since: s }));
            egresses.insert(egress.reference.clone(), (ri, ei));
        }
    }
    for e in errors {
        let g = generations.get(&e.object).copied().flatten();
        seen.insert(e.object.clone(), (g, Seen::Failed(e)));
    }
    state.seen = seen;
    state.egresses = egresses;
    state
        .written_at
        .entry(generation)
        .or_insert_with(std::time::Instant::now);
    if let Some(applied) = state.applied {
        state.written_at.retain(|g, _| *g > applied);
    }
    state.contract = new;
}

/// Runs the hub until `stop` resolves: waits for a change, gathers for the debounce, compiles,
/// writes a new generation when the content changed, and wakes the controllers of objects
/// whose data-plane state changed through `wake`.
pub async fn run(
    hub: Arc<Hub>,
    client: kube::Client,
    stores: Stores,
    config: HubConfig,
    wake: Arc<dyn Fn(&ObjectRef) + Send + Sync>,
    on_write: Arc<dyn Fn(u64) + Send + Sync>,
) {
    let api: Api<Secret> = Api::namespaced(client, &config.namespace);
    let mut pending_write: Option<Contract> = None;
    // How long the last compile took: under a steady stream of changes, compiles are spaced
    // at least four times that apart, so the hub takes at most a fifth of a core and the
    // garbage of one compile is gone before the next.
    let mut last_compile = Duration::ZERO;
    loop {
        if pending_write.is_none() {
            hub.dirty.notified().await;
        }
        tokio::time::sleep(config.debounce.max(last_compile * 4)).await;
        if !hub.lock().started {
            match api.get_opt(&config.secret).await {
                Ok(secret) => match secret.as_ref().map(contract_in).transpose() {
                    Ok(existing) => hub.resume(existing.flatten()),
                    Err(e) => {
                        tracing::warn!(secret = %config.secret, error = %e, "the contract Secret holds no valid contract; starting from generation 0");
                        hub.resume(None);
                    }
                },
                Err(e) => {
                    tracing::warn!(secret = %config.secret, error = %e, "cannot read the contract Secret; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    hub.poke();
                    continue;
                }
            }
        }
        let (topics, defaults, secrets) = {
            let state = hub.lock();
            (
                state.topics.clone(),
                state.broker_defaults.clone(),
                state.secrets.clone(),
            )
        };
        let compiling = std::time::Instant::now();
        let (mut contract, errors, objects) =
            compile_stores(&stores, &topics, &defaults, &secrets, &config);
        last_compile = compiling.elapsed();
        drop(secrets);
        hub.forget_unreferenced_secrets(&stores);
        let changed = {
            let state = hub.lock();
            let changed = !same_content(&state.contract, &contract);
            contract.generation = if changed {
                state.contract.generation + 1
            } else {
                state.contract.generation
            };
            changed
        };
        // A new contract, or else one whose write failed. Written by reference: a copy of
        // 10,000 egresses is tens of MiB.
        let pending = pending_write.take();
        let to_write = if changed {
            Some(&contract)
        } else {
            pending.as_ref()
        };
        if let Some(c) = to_write {
            match write_contract(&api, &config.secret, c).await {
                Ok(()) => {
                    tracing::info!(generation = c.generation, "contract written");
                    on_write(c.generation);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot write the contract; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    pending_write = if changed { Some(contract) } else { pending };
                    continue;
                }
            }
        }
        hub.record(contract, errors, &objects);
        let changed: Vec<ObjectRef> = {
            let mut state = hub.lock();
            let now: Vec<(ObjectRef, (Option<i64>, DataPlane))> = objects
                .iter()
                .map(|(o, g)| (o.clone(), (*g, data_plane(&state, o, *g))))
                .collect();
            let mut changed = Vec::new();
            let mut told = HashMap::with_capacity(now.len());
            for (o, dp) in now {
                if state.told.get(&o) != Some(&dp) {
                    changed.push(o.clone());
                }
                told.insert(o, dp);
            }
            state.told = told;
            changed
        };
        for o in &changed {
            wake(o);
        }
    }
}

/// Merge-patches the contract Secret, or creates it when it is gone.
async fn write_contract(
    api: &Api<Secret>,
    name: &str,
    contract: &Contract,
) -> Result<(), kube::Error> {
    let patch = secret_patch(contract);
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 404 => api
            .create(&PostParams::default(), &contract_secret(name, contract))
            .await
            .map(|_| ()),
        other => other.map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn egress(name: &str, url: &str) -> Egress {
        serde_json::from_value(serde_json::json!({
            "uid": name, "ref": {"kind": "Trigger", "namespace": "ns", "name": name},
            "consumerGroup": format!("g-{name}"), "destination": {"url": url},
        }))
        .expect("egress")
    }

    fn contract(generation: u64, egresses: Vec<Egress>) -> Contract {
        Contract {
            generation,
            resources: vec![ContractResource {
                uid: "b".into(),
                reference: ObjectRef::new("Broker", "ns", "b"),
                topics: vec!["t".into()],
                bootstrap_servers: "k:9092".into(),
                auth: None,
                ingress: None,
                egresses,
            }],
            activation: vec![],
        }
    }

    #[test]
    fn objects_are_applied_once_the_dispatchers_reach_the_generation_that_changed_them() {
        let mut state = State::default();
        let objs = vec![
            (ObjectRef::new("Broker", "ns", "b"), Some(1)),
            (ObjectRef::new("Trigger", "ns", "a"), Some(1)),
            (ObjectRef::new("Trigger", "ns", "c"), Some(2)),
            (ObjectRef::new("Trigger", "ns", "x"), Some(1)),
        ];
        let err = CompileError {
            object: ObjectRef::new("Trigger", "ns", "x"),
            reason: "SubscriberNotResolved",
            message: "spec.subscriber: nope".into(),
        };
        record(
            &mut state,
            contract(1, vec![egress("a", "http://a")]),
            vec![err.clone()],
            &objs,
        );
        record(
            &mut state,
            contract(2, vec![egress("a", "http://a"), egress("c", "http://c")]),
            vec![err.clone()],
            &objs,
        );
        let dp = |state: &State, kind: &str, name: &str, g: i64| {
            data_plane(state, &ObjectRef::new(kind, "ns", name), Some(g))
        };
        state.applied = Some(1);
        assert_eq!(
            dp(&state, "Broker", "b", 1),
            DataPlane::Compiled { applied: true }
        );
        assert_eq!(
            dp(&state, "Trigger", "a", 1),
            DataPlane::Compiled { applied: true }
        );
        assert_eq!(
            dp(&state, "Trigger", "c", 2),
            DataPlane::Compiled { applied: false }
        );
        assert_eq!(dp(&state, "Trigger", "x", 1), DataPlane::Failed(err));
        // A newer spec than the one compiled is pending until the next compile.
        assert_eq!(dp(&state, "Trigger", "a", 2), DataPlane::Pending);
        assert_eq!(dp(&state, "Trigger", "nobody", 1), DataPlane::Pending);
        state.applied = Some(2);
        assert_eq!(
            dp(&state, "Trigger", "c", 2),
            DataPlane::Compiled { applied: true }
        );
        // Changing an egress makes it wait for the generation that carries the change.
        record(
            &mut state,
            contract(3, vec![egress("a", "http://a2"), egress("c", "http://c")]),
            vec![],
            &objs,
        );
        assert_eq!(
            dp(&state, "Trigger", "a", 1),
            DataPlane::Compiled { applied: false }
        );
        assert_eq!(
            dp(&state, "Trigger", "c", 2),
            DataPlane::Compiled { applied: true }
        );
        assert_eq!(
            dp(&state, "Broker", "b", 1),
            DataPlane::Compiled { applied: true }
        );
        assert_eq!(dp(&state, "Trigger", "x", 1), DataPlane::Pending);
    }

    #[test]
    fn the_secret_holds_gzip_under_data_and_plain_json_is_read_too() {
        let c = contract(7, vec![egress("a", "http://a")]);
        let patch = secret_patch(&c);
        assert_eq!(patch.as_object().map(|o| o.len()), Some(1), "{patch}");
        let patched: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "ferry-contract"},
            "type": "Opaque",
            "data": patch["data"].clone(),
        }))
        .expect("secret");
        assert_eq!(contract_in(&patched), Ok(Some(c.clone())));
        let created = contract_secret("ferry-contract", &c);
        assert_eq!(created.type_.as_deref(), Some("Opaque"));
        assert!(created.string_data.is_none());
        assert_eq!(contract_in(&created), Ok(Some(c.clone())));
        // The chart's initial contract: plain JSON bytes under data.
        let plain: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "ferry-contract"},
            "data": {CONTRACT_KEY: base64("{\"generation\":0,\"resources\":[]}")},
        }))
        .expect("secret");
        assert_eq!(
            contract_in(&plain).map(|c| c.map(|c| c.generation)),
            Ok(Some(0))
        );
        let empty: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "ferry-contract"},
        }))
        .expect("secret");
        assert_eq!(contract_in(&empty), Ok(None));
        let bad: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "ferry-contract"},
            "data": {CONTRACT_KEY: base64("not json")},
        }))
        .expect("secret");
        assert!(contract_in(&bad).is_err());
    }

    /// `text` as a Secret's `data` value (base64), through `ByteString`'s own encoding.
    fn base64(text: &str) -> serde_json::Value {
        serde_json::to_value(ByteString(text.as_bytes().to_vec())).expect("base64")
    }
}
