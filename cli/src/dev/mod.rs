//! `ferry dev`: the whole flow on one machine. It loads Knative manifests, runs the embedded
//! broker (or uses `--kafka`), the dispatcher and each Service revision as a local process,
//! compiles the contract with the operator's function whenever something changes, and prints
//! what runs where.
//!
//! One reconcile loop does it all, as the operator does in a cluster: it reads the manifests
//! (again when a file changes), creates revisions for changed templates, supervises their
//! processes, resolves traffic, compiles and writes the contract the dispatcher follows, and
//! reports readiness. A Service's `ref` resolves only while its traffic's revisions answer, so
//! the dispatcher never delivers to a revision that is not there: its Triggers' events wait in
//! the log (at their committed offsets) until it is.

mod desired;
mod proxy;
mod revisions;
mod runtime;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_api::autoscaler::{Autoscaler, Decision, RevisionScaling, Sample, Settings};
use ferry_api::contract::{
    self, Activation, CompileError, Contract, ContractResource, Resolved, RevisionTarget, Target,
};
use ferry_api::duck::KReference;
use ferry_api::serving::autoscaling::AutoscalingAnnotations;
use ferry_api::serving::{KnativeService, resolve_traffic};
use ferry_broker::{Broker, BrokerConfig};
use ferry_dispatcher::RunningDispatcher;
use ferry_dispatcher::activator::{Activator, RevisionStats};
use ferry_dispatcher::config::{DispatcherConfig, Role};
use kube::ResourceExt;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;

pub use desired::{Desired, load};

use desired::AddressKind;
use proxy::Proxy;
use revisions::{Revisions, process_spec};
use runtime::{RevisionIdentity, RevisionState, Runtime};

/// How often the loop reconciles.
const TICK: Duration = Duration::from_millis(250);
/// How often manifest files are checked for changes.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// `ferry dev`'s settings (its command-line flags).
#[derive(clap::Args, Clone, Debug)]
pub struct DevOptions {
    /// A manifest file, or a directory of *.yaml / *.yml files (repeatable).
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Where Brokers and KafkaChannels take events.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub ingress: SocketAddr,
    /// Where the dispatcher serves /metrics, /healthz and /readyz.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub admin: SocketAddr,
    /// Where the log, contract, revisions and status.json are kept.
    #[arg(long, default_value = ".ferry")]
    pub data_dir: PathBuf,
    /// Use this Kafka cluster (bootstrap servers) instead of the embedded broker.
    #[arg(long)]
    pub kafka: Option<String>,
    /// Where the embedded broker takes Kafka clients (`ferry tail` uses 127.0.0.1:9092).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub broker_listen: SocketAddr,
    /// Partitions of the topics created for Brokers and KafkaChannels.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub partitions: i32,
    /// Knative's `config-autoscaler` ConfigMap (a manifest, or a YAML map of its keys) for
    /// the autoscaler's cluster defaults, e.g. `scale-to-zero-grace-period: 10s`.
    #[arg(long)]
    pub autoscaler_config: Option<PathBuf>,
    /// How often the autoscaler samples and decides (Knative's tick is 2 s).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub autoscale_tick_ms: u64,
    /// Colour in the table (set when stdout is a terminal).
    #[arg(skip)]
    pub color: bool,
}

/// Reads `--autoscaler-config`: a ConfigMap manifest (its `data`) or a map of keys.
fn autoscaler_settings(path: Option<&std::path::Path>) -> Result<Settings, DevError> {
    let Some(path) = path else {
        return Ok(Settings::default());
    };
    let fail = |why: String| DevError::Invalid(vec![format!("{}: {why}", path.display())]);
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it ({e})")))?;
    let value: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| fail(format!("is not valid YAML: {e}")))?;
    let data = value.get("data").cloned().unwrap_or(value);
    let map: BTreeMap<String, String> = serde_yaml::from_value(data).map_err(|e| {
        fail(format!(
            "is not a ConfigMap or a map of config-autoscaler keys to string values: {e}"
        ))
    })?;
    Settings::from_config_map(&map).map_err(fail)
}

/// Why `ferry dev` could not run.
#[derive(Debug)]
pub enum DevError {
    /// The manifests are invalid: every problem, one line each.
    Invalid(Vec<String>),
    /// Something could not start (a port in use, an unreadable data directory).
    Start(String),
}

/// Runs until `shutdown` completes, then stops everything cleanly: the dispatcher drains and
/// commits, revisions get SIGTERM, the broker syncs its log.
///
/// # Errors
/// [`DevError`] when the manifests are invalid or a component cannot start.
pub async fn run(
    options: DevOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DevError> {
    let desired = load(&options.files).map_err(DevError::Invalid)?;
    let autoscaling = autoscaler_settings(options.autoscaler_config.as_deref())?;
    std::fs::create_dir_all(&options.data_dir).map_err(|e| {
        DevError::Start(format!(
            "cannot create the data directory {} ({e}); pass --data-dir",
            options.data_dir.display()
        ))
    })?;
    // One ferry dev per data directory: a second one would overwrite the first's contract.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(options.data_dir.join("lock"))
        .map_err(|e| {
            DevError::Start(format!(
                "cannot open {}/lock ({e})",
                options.data_dir.display()
            ))
        })?;
    if lock.try_lock().is_err() {
        return Err(DevError::Start(format!(
            "another ferry dev is using {}; stop it, or pass a different --data-dir",
            options.data_dir.display()
        )));
    }
    let registry_path = options.data_dir.join("revisions.json");
    let registry = Revisions::load(&registry_path).map_err(DevError::Start)?;
    let contract_path = options.data_dir.join("contract.json");
    write_contract(&contract_path, &Contract::default())
        .map_err(|e| DevError::Start(format!("cannot write {} ({e})", contract_path.display())))?;

    let mut config = DispatcherConfig::new(contract_path.clone(), options.ingress, options.admin);
    config.role = Role::All;
    config.contract_poll_ms = 100;
    // Ctrl-C should not wait long: what is not delivered by then (an event held for a
    // revision at zero, say) is not committed either, and is delivered on the next start.
    config.drain_timeout_ms = 5_000;
    let dispatcher = ferry_dispatcher::start(config).await.map_err(|e| {
        DevError::Start(format!(
            "{e} (ingress: --ingress, dispatcher admin: --admin)"
        ))
    })?;
    let ingress = dispatcher.http_addr.unwrap_or(options.ingress);

    let (broker, bootstrap) = match &options.kafka {
        Some(bootstrap) => (None, bootstrap.clone()),
        None => {
            let listen = options.broker_listen.to_string();
            let config = BrokerConfig::local(
                &options.data_dir.join("broker"),
                &["--listen", &listen, "--flush", "interval:5"],
            )
            .map_err(DevError::Start)?;
            let running = Broker::start(config).await.map_err(|e| {
                DevError::Start(e.to_string().replace("--listen", "--broker-listen"))
            })?;
            let bootstrap = running.kafka_addr.to_string();
            (Some(running), bootstrap)
        }
    };
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .map_err(|e| DevError::Start(format!("cannot create a Kafka admin client: {e}")))?;

    let mut dev = Dev {
        ingress_base: format!("http://{ingress}"),
        status_path: options.data_dir.join("status.json"),
        options,
        desired,
        registry,
        registry_path,
        contract_path,
        runtime: Runtime::default(),
        proxies: BTreeMap::new(),
        live: BTreeMap::new(),
        autoscaling,
        activator: dispatcher.activator(),
        started: Instant::now(),
        last_tick: None,
        last_ready: BTreeMap::new(),
        services: BTreeMap::new(),
        topics: BTreeSet::new(),
        contract: Contract::default(),
        errors: Vec::new(),
        dispatcher,
        admin,
        bootstrap,
        printed: String::new(),
    };
    // One line naming the listeners first (scripts and tests read it), then the table.
    println!(
        "ferry dev listening ingress={ingress} kafka={} admin={} data={}",
        dev.bootstrap,
        dev.dispatcher.admin_addr,
        dev.options.data_dir.display()
    );
    println!("ferry dev: Ctrl-C stops; the table below follows every change");
    tokio::pin!(shutdown);
    let mut fingerprint = desired::fingerprint(&dev.options.files);
    let mut checked = Instant::now();
    loop {
        dev.reconcile().await;
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(TICK) => {}
        }
        if checked.elapsed() >= RELOAD_EVERY {
            checked = Instant::now();
            let now = desired::fingerprint(&dev.options.files);
            if now != fingerprint {
                fingerprint = now;
                dev.reload();
            }
        }
    }
    println!("ferry dev: stopping (draining deliveries, stopping revisions, syncing the log)");
    let Dev {
        dispatcher,
        mut runtime,
        registry,
        registry_path,
        ..
    } = dev;
    dispatcher.shutdown().await;
    runtime.shutdown().await;
    if let Err(e) = registry.save(&registry_path) {
        eprintln!("ferry dev: cannot save {} ({e})", registry_path.display());
    }
    if let Some(broker) = broker
        && let Err(e) = broker.shutdown(Duration::from_secs(5)).await
    {
        eprintln!("ferry dev: the log's final sync failed: {e}");
    }
    println!("ferry dev: stopped");
    drop(lock);
    Ok(())
}

/// A Service as the loop last resolved it.
#[derive(Clone, Debug, Default)]
struct ServiceState {
    /// The resolved traffic with the revisions' URLs, when every target is ready.
    ready_targets: Option<Vec<RevisionTarget>>,
    /// Every revision the traffic names, with its percent.
    traffic: Vec<(String, u32)>,
    /// Why it is not ready.
    reason: Option<String>,
    /// Tagged targets: tag → (revision, its own URL), as Knative's `<tag>-<service>` URLs.
    tags: BTreeMap<String, (String, String)>,
}

/// Where a Service's tag is served: its own proxy, keyed `<namespace>/<service>#<tag>`.
fn tag_key(service: &str, tag: &str) -> String {
    format!("{service}#{tag}")
}

/// A revision that can serve: its stable local URL (an activating proxy), its autoscaler.
struct LiveRevision {
    namespace: String,
    proxy: Proxy,
    autoscaler: Autoscaler,
    container_concurrency: u32,
    /// A replica has answered once: the revision is Ready (also when later scaled to zero).
    ever_ready: bool,
    decision: Option<Decision>,
}

struct Dev {
    options: DevOptions,
    ingress_base: String,
    status_path: PathBuf,
    desired: Desired,
    registry: Revisions,
    registry_path: PathBuf,
    contract_path: PathBuf,
    runtime: Runtime,
    proxies: BTreeMap<String, Proxy>,
    /// Revisions that run (or may scale up): their address, autoscaler and last decision.
    live: BTreeMap<String, LiveRevision>,
    autoscaling: Settings,
    activator: Arc<Activator>,
    started: Instant,
    last_tick: Option<Instant>,
    /// Per Service, the newest revision that became ready (served until a newer one is).
    last_ready: BTreeMap<String, String>,
    services: BTreeMap<String, ServiceState>,
    topics: BTreeSet<String>,
    contract: Contract,
    /// Objects the last compile left out, and why.
    errors: Vec<CompileError>,
    dispatcher: RunningDispatcher,
    admin: AdminClient<DefaultClientContext>,
    bootstrap: String,
    printed: String,
}

impl Dev {
    fn reload(&mut self) {
        match load(&self.options.files) {
            Ok(desired) => {
                println!("ferry dev: manifests changed; applying them");
                self.desired = desired;
            }
            Err(problems) => {
                eprintln!(
                    "ferry dev: manifests changed but are invalid; the last good ones stay in force:"
                );
                for p in problems {
                    eprintln!("  {p}");
                }
            }
        }
    }

    async fn reconcile(&mut self) {
        self.reconcile_serving().await;
        self.autoscale();
        let (mut contract, errors) = self.compile();
        contract.activation = self.activation();
        self.errors = errors;
        self.ensure_topics(&contract).await;
        // Replicas coming and going reach the in-process activator at once; the contract file
        // (polled) follows. Only for the same revisions: new or removed ones go with the
        // contract, together with the routes that name them.
        let same_revisions = contract.activation.len() == self.contract.activation.len()
            && contract
                .activation
                .iter()
                .zip(&self.contract.activation)
                .all(|(a, b)| a.url == b.url);
        if same_revisions && contract.activation != self.contract.activation {
            self.activator.apply(&contract.activation);
        }
        if contract.resources != self.contract.resources
            || contract.activation != self.contract.activation
        {
            let generation = self.contract.generation + 1;
            let contract = Contract {
                generation,
                ..contract
            };
            match write_contract(&self.contract_path, &contract) {
                Ok(()) => self.contract = contract,
                Err(e) => eprintln!(
                    "ferry dev: cannot write {} ({e}); retrying",
                    self.contract_path.display()
                ),
            }
        }
        self.report();
    }

    /// Creates revisions for changed templates, runs the revisions traffic needs, resolves
    /// each Service's traffic and stops revisions nothing needs any more.
    async fn reconcile_serving(&mut self) {
        let mut keep = BTreeSet::new();
        let mut services = BTreeMap::new();
        for service in self.desired.services.clone() {
            let key = service_key(&service);
            let state = self.reconcile_service(&service, &mut keep).await;
            services.insert(key, state);
        }
        self.services = services;
        let wanted: BTreeSet<String> = self
            .services
            .iter()
            .flat_map(|(key, state)| {
                std::iter::once(key.clone()).chain(state.tags.keys().map(|t| tag_key(key, t)))
            })
            .collect();
        self.proxies.retain(|key, _| wanted.contains(key));
        self.live.retain(|name, _| keep.contains(name));
        self.runtime.retain(&|name| keep.contains(name)).await;
    }

    async fn reconcile_service(
        &mut self,
        service: &KnativeService,
        keep: &mut BTreeSet<String>,
    ) -> ServiceState {
        let key = service_key(service);
        let (ns, name) = (service.namespace().unwrap_or_default(), service.name_any());
        let not_ready = |reason: String| ServiceState {
            reason: Some(reason),
            ..ServiceState::default()
        };
        let latest = match self.registry.observe(&ns, &name, &service.spec.template) {
            Ok((latest, created)) => {
                if created {
                    println!("ferry dev: created revision {latest} of Service {key}");
                    if let Err(e) = self.registry.save(&self.registry_path) {
                        eprintln!(
                            "ferry dev: cannot save {} ({e})",
                            self.registry_path.display()
                        );
                    }
                }
                latest
            }
            Err(e) => return not_ready(e),
        };
        if !self.proxies.contains_key(&key) {
            match Proxy::start(self.activator.clone()).await {
                Ok(p) => {
                    self.proxies.insert(key.clone(), p);
                }
                Err(e) => return not_ready(format!("cannot open its URL: {e}")),
            }
        }
        if let Err(e) = self.run_revision(&ns, &name, &latest, keep).await {
            return not_ready(e);
        }
        let ever_ready = |live: &BTreeMap<String, LiveRevision>, r: &str| {
            live.get(r).is_some_and(|l| l.ever_ready)
        };
        if ever_ready(&self.live, &latest) {
            self.last_ready.insert(key.clone(), latest.clone());
        }
        let latest_ready = self.last_ready.get(&key).cloned();
        if let Some(r) = &latest_ready {
            // Knative keeps serving the last ready revision until a newer one is ready.
            let _ = self.run_revision(&ns, &name, r, keep).await;
        }
        let exists = |r: &str| self.registry.of(&ns, &name).iter().any(|x| x.name == r);
        let resolved = resolve_traffic(
            &service.spec.traffic,
            Some(&name),
            &|c| (c == name.as_str()).then(|| latest_ready.clone()).flatten(),
            &exists,
        );
        let targets = match resolved {
            Ok(t) => t,
            Err(e) => {
                let reason = match latest_ready {
                    None => self
                        .runtime
                        .state(&latest)
                        .and_then(|s| s.replicas.first().and_then(|p| p.reason.clone()))
                        .map_or(e.message, |r| format!("revision {latest}: {r}")),
                    Some(_) => e.message,
                };
                return not_ready(reason);
            }
        };
        let mut merged: Vec<(String, u32)> = Vec::new();
        for t in &targets {
            if let Err(e) = self.run_revision(&ns, &name, &t.revision, keep).await {
                return not_ready(e);
            }
            match merged.iter_mut().find(|(r, _)| *r == t.revision) {
                Some((_, p)) => *p += t.percent,
                None => merged.push((t.revision.clone(), t.percent)),
            }
        }
        let waiting: Vec<String> = merged
            .iter()
            .filter(|(r, p)| *p > 0 && !ever_ready(&self.live, r))
            .map(|(r, _)| r.clone())
            .collect();
        let ready_targets = waiting.is_empty().then(|| {
            merged
                .iter()
                .filter(|(_, p)| *p > 0)
                .filter_map(|(r, p)| {
                    self.live.get(r).map(|l| RevisionTarget {
                        revision: r.clone(),
                        url: l.proxy.url.clone(),
                        percent: *p,
                    })
                })
                .collect::<Vec<_>>()
        });
        if let Some(proxy) = self.proxies.get(&key) {
            proxy.set_targets(ready_targets.clone().unwrap_or_default());
        }
        // A tag addresses its revision on its own, whatever its percent.
        let mut tags = BTreeMap::new();
        for t in &targets {
            let Some(tag) = &t.tag else { continue };
            let proxy_key = tag_key(&key, tag);
            if !self.proxies.contains_key(&proxy_key) {
                match Proxy::start(self.activator.clone()).await {
                    Ok(p) => {
                        self.proxies.insert(proxy_key.clone(), p);
                    }
                    Err(e) => {
                        eprintln!("ferry dev: tag {tag} of {key} gets no URL: {e}");
                        continue;
                    }
                }
            }
            let revision = self.live.get(&t.revision);
            let target = revision.filter(|l| l.ever_ready).map(|l| RevisionTarget {
                revision: t.revision.clone(),
                url: l.proxy.url.clone(),
                percent: 100,
            });
            if let Some(proxy) = self.proxies.get(&proxy_key) {
                proxy.set_targets(target.into_iter().collect());
                tags.insert(tag.clone(), (t.revision.clone(), proxy.url.clone()));
            }
        }
        ServiceState {
            reason: (!waiting.is_empty())
                .then(|| format!("waiting for revision(s) {} to answer", waiting.join(", "))),
            ready_targets,
            traffic: merged,
            tags,
        }
    }

    /// Makes a revision live (its address and autoscaler; replicas come from the autoscaler)
    /// and records that it is needed.
    async fn run_revision(
        &mut self,
        ns: &str,
        service: &str,
        revision: &str,
        keep: &mut BTreeSet<String>,
    ) -> Result<(), String> {
        keep.insert(revision.to_owned());
        if let Some(live) = self.live.get_mut(revision) {
            if !live.ever_ready
                && self
                    .runtime
                    .state(revision)
                    .is_some_and(|s| !s.endpoints().is_empty())
            {
                live.ever_ready = true;
            }
            return Ok(());
        }
        let stored = self
            .registry
            .of(ns, service)
            .iter()
            .find(|r| r.name == revision)
            .ok_or_else(|| format!("revision {revision} is not known"))?;
        let template = stored.template.clone();
        let spec = process_spec(&template).map_err(|e| format!("revision {revision}: {e}"))?;
        let mut ignored = ferry_api::validation::FieldErrors::default();
        let annotations = AutoscalingAnnotations::parse(
            &template.metadata.annotations,
            &ferry_api::validation::Path::root("metadata"),
            &mut ignored,
        );
        let cc = template.spec.container_concurrency;
        let scaling = RevisionScaling::resolve(&self.autoscaling, &annotations, cc);
        let proxy = Proxy::start(self.activator.clone())
            .await
            .map_err(|e| format!("revision {revision} cannot get a URL: {e}"))?;
        proxy.set_targets(vec![RevisionTarget {
            revision: revision.to_owned(),
            url: proxy.url.clone(),
            percent: 100,
        }]);
        self.runtime.define(
            &RevisionIdentity {
                revision,
                configuration: service,
                service,
            },
            &spec,
        );
        self.live.insert(
            revision.to_owned(),
            LiveRevision {
                namespace: ns.to_owned(),
                proxy,
                autoscaler: Autoscaler::new(scaling),
                container_concurrency: cc.and_then(|c| u32::try_from(c).ok()).unwrap_or(0),
                ever_ready: false,
                decision: None,
            },
        );
        Ok(())
    }

    /// Every tick: feeds each live revision's autoscaler what the activator measured and
    /// scales its replicas to the decision. A new revision gets its initial scale at once.
    fn autoscale(&mut self) {
        let tick = Duration::from_millis(self.options.autoscale_tick_ms);
        let states = self.runtime.states();
        // Demand at zero does not wait for the tick (Knative's activator pokes the autoscaler).
        let demand_at_zero = self.live.iter().any(|(name, l)| {
            states.get(name).is_none_or(|s| s.replicas.is_empty())
                && self
                    .activator
                    .gate(&l.proxy.url)
                    .is_some_and(|g| g.waiting() > 0)
        });
        let due = demand_at_zero || self.last_tick.is_none_or(|t| t.elapsed() >= tick);
        let fresh = self.live.values().any(|l| l.decision.is_none());
        if !due && !fresh {
            self.runtime.reap();
            return;
        }
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let stats: BTreeMap<String, RevisionStats> = if due {
            self.last_tick = Some(Instant::now());
            self.activator
                .stats()
                .into_iter()
                .map(|s| (s.revision.clone(), s))
                .collect()
        } else {
            BTreeMap::new()
        };
        for (name, live) in &mut self.live {
            if !due && live.decision.is_some() {
                continue;
            }
            let ready = states.get(name).map_or(0, |s| s.endpoints().len());
            let ready = u32::try_from(ready).unwrap_or(u32::MAX);
            if let Some(s) = stats.get(&format!("{}/{name}", live.namespace)) {
                live.autoscaler.record(
                    now_ms,
                    Sample {
                        concurrency: s.concurrency,
                        requests: s.requests as f64,
                        ready_replicas: ready,
                    },
                );
                if s.waiting > 0 {
                    live.autoscaler.record_demand(now_ms);
                }
            }
            let decision = live.autoscaler.decide(now_ms, ready);
            match self.runtime.scale(name, decision.desired as usize) {
                Ok(true) => println!(
                    "ferry dev: revision {name} scaled to {} ({:?})",
                    decision.desired, decision.reason
                ),
                Ok(false) => {}
                Err(e) => eprintln!("ferry dev: revision {name} cannot scale: {e}"),
            }
            live.decision = Some(decision);
        }
        self.runtime.reap();
    }

    /// The contract's activation section: every live revision's address and ready replicas.
    fn activation(&self) -> Vec<Activation> {
        let states = self.runtime.states();
        self.live
            .iter()
            .map(|(name, live)| Activation {
                url: live.proxy.url.clone(),
                revision: format!("{}/{name}", live.namespace),
                endpoints: states.get(name).map(|s| s.endpoints()).unwrap_or_default(),
                container_concurrency: live.container_concurrency,
            })
            .collect()
    }

    fn resolve(&self, r: &KReference) -> Option<Resolved> {
        let ns = r
            .namespace
            .as_deref()
            .unwrap_or(crate::manifest::DEFAULT_NAMESPACE);
        match self.desired.address_kind(r)? {
            AddressKind::Ingress => Some(Resolved::Url(format!(
                "{}/{ns}/{}",
                self.ingress_base, r.name
            ))),
            AddressKind::Service => self
                .services
                .get(&format!("{ns}/{}", r.name))
                .and_then(|s| s.ready_targets.clone())
                .map(Resolved::Revisions),
        }
    }

    fn compile(&self) -> (Contract, Vec<CompileError>) {
        let resolve = |r: &KReference| self.resolve(r);
        self.desired
            .compile(self.contract.generation, &self.bootstrap, &resolve)
    }

    /// Creates the topics of Brokers and KafkaChannels (and, on the embedded broker, of
    /// KafkaSources) that do not exist yet.
    async fn ensure_topics(&mut self, contract: &Contract) {
        let wanted: Vec<&String> = contract
            .resources
            .iter()
            .filter(|r| r.ingress.is_some() || self.options.kafka.is_none())
            .flat_map(|r| &r.topics)
            .filter(|t| !self.topics.contains(*t))
            .collect();
        if wanted.is_empty() {
            return;
        }
        // A KafkaChannel says how many partitions it wants; Brokers and sources get the default.
        let partitions = |topic: &str| {
            self.desired
                .channels
                .iter()
                .find(|c| {
                    contract::channel_topic(&c.namespace().unwrap_or_default(), &c.name_any())
                        == topic
                })
                .map(|c| c.spec.num_partitions)
                .filter(|n| *n > 0)
                .unwrap_or(self.options.partitions)
        };
        let new: Vec<NewTopic<'_>> = wanted
            .iter()
            .map(|t| NewTopic::new(t, partitions(t), TopicReplication::Fixed(1)))
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
        match self.admin.create_topics(&new, &options).await {
            Ok(results) => {
                for result in results {
                    match result {
                        Ok(topic) | Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                            self.topics.insert(topic);
                        }
                        Err((topic, code)) => {
                            eprintln!("ferry dev: cannot create topic {topic}: {code}; retrying")
                        }
                    }
                }
            }
            Err(e) => eprintln!("ferry dev: cannot create topics: {e}; retrying"),
        }
    }

    fn report(&mut self) {
        let rows = self.rows();
        let status = Status {
            ingress: &self.ingress_base,
            kafka: &self.bootstrap,
            generation: self.contract.generation,
            applied: self.dispatcher.generation(),
            resources: &rows,
        };
        if let Ok(json) = serde_json::to_vec_pretty(&status) {
            let tmp = self.status_path.with_extension("tmp");
            if std::fs::write(&tmp, json).is_ok() {
                let _ = std::fs::rename(&tmp, &self.status_path);
            }
        }
        let text = crate::table(
            &["KIND", "NAME", "READY", "URL", "DETAIL"],
            &rows
                .iter()
                .map(|r| {
                    vec![
                        r.kind.clone(),
                        format!("{}/{}", r.namespace, r.name),
                        paint(r.ready, self.options.color),
                        r.url.clone().unwrap_or_else(|| "-".into()),
                        r.detail.clone(),
                    ]
                })
                .collect::<Vec<_>>(),
        );
        if text != self.printed {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "\n{text}");
            let _ = out.flush();
            self.printed = text;
        }
    }

    /// A compile error as the table shows it: a reference to a loaded Service that is not
    /// ready yet is waiting, not wrong.
    fn explain(&self, e: &CompileError) -> String {
        let waiting = self.desired.services.iter().find_map(|s| {
            let key = service_key(s);
            let state = self.services.get(&key)?;
            (state.ready_targets.is_none() && e.message.contains(&format!("Service {key} "))).then(
                || {
                    format!(
                        "waiting for Service {key}: {}",
                        state.reason.clone().unwrap_or_else(|| "starting".into())
                    )
                },
            )
        });
        waiting.unwrap_or_else(|| format!("{}: {}", e.reason, e.message))
    }

    fn rows(&self) -> Vec<Row> {
        let applied = self
            .dispatcher
            .generation()
            .is_some_and(|g| g >= self.contract.generation && self.contract.generation > 0);
        let compiled = |kind: &str, ns: &str, name: &str| -> Result<(), String> {
            match self.errors.iter().find(|e| {
                e.object.kind == kind && e.object.namespace == ns && e.object.name == name
            }) {
                Some(e) => Err(self.explain(e)),
                None if applied => Ok(()),
                None => Err("waiting for the dispatcher to apply the contract".into()),
            }
        };
        let in_contract = |kind: &str, ns: &str, name: &str| -> Option<&ContractResource> {
            self.contract.resources.iter().find(|r| {
                r.reference.kind == kind && r.reference.namespace == ns && r.reference.name == name
            })
        };
        let mut rows = Vec::new();
        let d = &self.desired;
        let addressed = d
            .brokers
            .iter()
            .map(|b| ("Broker", b.namespace().unwrap_or_default(), b.name_any()))
            .chain(d.channels.iter().map(|c| {
                (
                    "KafkaChannel",
                    c.namespace().unwrap_or_default(),
                    c.name_any(),
                )
            }));
        for (kind, ns, name) in addressed {
            let topic = in_contract(kind, &ns, &name).and_then(|r| r.topics.first().cloned());
            let topic_ready = topic.as_ref().is_some_and(|t| self.topics.contains(t));
            let state = if !topic_ready {
                Err("waiting for its topic".to_owned())
            } else {
                compiled(kind, &ns, &name)
            };
            rows.push(Row::new(
                kind,
                &ns,
                &name,
                Some(format!("{}/{ns}/{name}", self.ingress_base)),
                state.map(|()| format!("topic {}", topic.unwrap_or_default())),
            ));
        }
        let egresses = d
            .triggers
            .iter()
            .map(|t| ("Trigger", t.namespace().unwrap_or_default(), t.name_any()))
            .chain(d.subscriptions.iter().map(|s| {
                (
                    "Subscription",
                    s.namespace().unwrap_or_default(),
                    s.name_any(),
                )
            }))
            .chain(d.sources.iter().map(|s| {
                (
                    "KafkaSource",
                    s.namespace().unwrap_or_default(),
                    s.name_any(),
                )
            }));
        for (kind, ns, name) in egresses {
            let destination = self
                .contract
                .resources
                .iter()
                .flat_map(|r| &r.egresses)
                .find(|e| {
                    e.reference.kind == kind
                        && e.reference.namespace == ns
                        && e.reference.name == name
                })
                .map(|e| match &e.destination {
                    Target::Url(url) => format!("→ {url}"),
                    Target::Revisions(revs) => format!(
                        "→ {}",
                        revs.iter()
                            .map(|r| format!("{} {}%", r.revision, r.percent))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            let state = compiled(kind, &ns, &name).map(|()| destination.unwrap_or_default());
            rows.push(Row::new(kind, &ns, &name, None, state));
        }
        let processes = self.runtime.states();
        for service in &d.services {
            let key = service_key(service);
            let ns = service.namespace().unwrap_or_default();
            let state = self.services.get(&key).cloned().unwrap_or_default();
            let url = self.proxies.get(&key).map(|p| p.url.clone());
            let detail = match (&state.ready_targets, &state.reason) {
                (Some(_), _) => Ok(state
                    .traffic
                    .iter()
                    .map(|(r, p)| format!("{r} {p}%"))
                    .chain(
                        state
                            .tags
                            .iter()
                            .map(|(tag, (r, url))| format!("tag {tag} → {r} at {url}")),
                    )
                    .collect::<Vec<_>>()
                    .join(", ")),
                (None, reason) => Err(reason.clone().unwrap_or_else(|| "starting".into())),
            };
            let mut row = Row::new("Service", &ns, &service.name_any(), url, detail);
            row.tags = state
                .tags
                .iter()
                .map(|(tag, (_, url))| (tag.clone(), url.clone()))
                .collect();
            rows.push(row);
            for stored in self.registry.of(&ns, &service.name_any()) {
                let Some(live) = self.live.get(&stored.name) else {
                    continue;
                };
                let state = processes.get(&stored.name).cloned().unwrap_or_default();
                rows.push(revision_row(&ns, &stored.name, live, &state));
            }
        }
        rows
    }
}

/// A revision: Ready once a replica has answered (also when scaled to zero since); the
/// detail says how many replicas run, what the autoscaler wants and why.
fn revision_row(ns: &str, name: &str, live: &LiveRevision, state: &RevisionState) -> Row {
    let endpoints = state.endpoints();
    let pids: Vec<String> = state
        .replicas
        .iter()
        .filter_map(|p| p.pid.map(|pid| pid.to_string()))
        .collect();
    let restarts: u32 = state.replicas.iter().map(|p| p.restarts).sum();
    let mut detail = format!(
        "{}/{} replicas ready",
        endpoints.len(),
        state.replicas.len()
    );
    if let Some(d) = &live.decision {
        detail.push_str(&format!(
            ", autoscaler wants {} ({:?})",
            d.desired, d.reason
        ));
    }
    if !pids.is_empty() {
        detail.push_str(&format!(", pid {}", pids.join(" ")));
    }
    if restarts > 0 {
        detail.push_str(&format!(", {restarts} restarts"));
    }
    let result = if live.ever_ready {
        Ok(detail)
    } else {
        let why = state
            .replicas
            .iter()
            .find_map(|p| p.reason.clone())
            .unwrap_or_else(|| "starting".into());
        Err(format!("{why}; {detail}"))
    };
    let mut row = Row::new("Revision", ns, name, Some(live.proxy.url.clone()), result);
    row.endpoints = endpoints;
    row
}

fn service_key(service: &KnativeService) -> String {
    format!(
        "{}/{}",
        service.namespace().unwrap_or_default(),
        service.name_any()
    )
}

/// One line of the table and of `status.json`.
#[derive(Debug, Serialize)]
struct Row {
    kind: String,
    namespace: String,
    name: String,
    ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    detail: String,
    /// A revision's ready replicas.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    endpoints: Vec<String>,
    /// A Service's tag URLs.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tags: BTreeMap<String, String>,
}

impl Row {
    fn new(
        kind: &str,
        ns: &str,
        name: &str,
        url: Option<String>,
        state: Result<String, String>,
    ) -> Row {
        let ready = state.is_ok();
        Row {
            kind: kind.to_owned(),
            namespace: ns.to_owned(),
            name: name.to_owned(),
            ready,
            url,
            detail: state.unwrap_or_else(|e| e),
            endpoints: Vec::new(),
            tags: BTreeMap::new(),
        }
    }
}

/// `status.json`: what the table shows, for scripts and tests.
#[derive(Serialize)]
struct Status<'a> {
    ingress: &'a str,
    kafka: &'a str,
    generation: u64,
    applied: Option<u64>,
    resources: &'a [Row],
}

fn paint(ready: bool, color: bool) -> String {
    match (ready, color) {
        (true, true) => "\x1b[32mTrue\x1b[0m".into(),
        (false, true) => "\x1b[31mFalse\x1b[0m".into(),
        (true, false) => "True".into(),
        (false, false) => "False".into(),
    }
}

/// Writes the contract atomically (the dispatcher must never read half a file), readable by
/// its owner only: it carries KafkaSources' `spec.net` credentials.
fn write_contract(path: &std::path::Path, contract: &Contract) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    // A leftover from a crash keeps its mode when truncated: start from a new file.
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&serde_json::to_vec_pretty(contract)?)?;
    drop(file);
    std::fs::rename(tmp, path)
}

/// `true` when stdout is a terminal (colour and the table), for the CLI's default.
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}
