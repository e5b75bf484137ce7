//! Serving in `ferry dev`, decided by the operator's own functions
//! ([`ferry_control::serving`]): each Service's Configuration and Route
//! ([`configuration_for`](ferry_control::serving::configuration_for), [`route_for`]), a
//! Revision stamped per template change, the Configuration's latest created and latest ready
//! revision ([`configuration_status`]), the Route's traffic ([`route_status`]) and the
//! Service's readiness ([`service_status`]). What `ferry dev` adds is the runtime: each
//! revision runs as local processes scaled 0..N (`scale.rs`), behind a stable local URL that
//! activates (an activating proxy), and what those processes do is observed into each
//! Revision's status ([`revision_status`]) as the operator observes a Deployment.
//!
//! A Service's `ref` resolves to its Route's traffic once that was assigned (every target's
//! revision ready), so the dispatcher never delivers to a revision that never answered: events
//! wait in the log until it has.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_api::autoscaler::{Decision, Settings};
use ferry_api::contract::{HttpRoute, RevisionTarget};
use ferry_api::duck::{READY, Status};
use ferry_api::serving::domain::Domains;
use ferry_api::serving::{
    ConfigurationStatus, KnativeService, Revision, RevisionStatus, Route, RouteSpec, RouteStatus,
};
use ferry_control::activation::RequestTimeouts;
use ferry_control::scaling::Scalers;
use ferry_control::serving::{
    DEFAULT_CLUSTER_DOMAIN, configuration_status, http_routes, route_for, route_status,
    service_status, traffic_targets,
};
use ferry_dispatcher::activator::Activator;
use ferry_dispatcher::gateway::Gateway;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::ResourceExt;

use super::proxy::Proxy;
use super::revisions::{Revisions, replica_spec};
use super::runtime::{RevisionIdentity, Runtime};

/// A Service as the loop last resolved it.
#[derive(Clone, Debug, Default)]
pub struct ServiceState {
    /// Its Route's traffic with the revisions' local URLs, once it was assigned.
    pub ready_targets: Option<Vec<RevisionTarget>>,
    /// `true` when the Service is Ready.
    pub ready: bool,
    /// Every revision the traffic names, with its percent.
    pub traffic: Vec<(String, u32)>,
    /// Why it is not Ready (its Ready condition's reason and message).
    pub reason: Option<String>,
    /// Tagged targets: tag → (revision, its own URL), as Knative's `<tag>-<service>` URLs.
    pub tags: BTreeMap<String, (String, String)>,
}

/// A revision that runs (or may scale up): its stable local URL and what it runs.
pub struct LiveRevision {
    /// Its namespace.
    pub namespace: String,
    /// Its stable local URL.
    pub proxy: Proxy,
    /// Its annotations (autoscaling settings).
    pub annotations: BTreeMap<String, String>,
    /// `spec.containerConcurrency`.
    pub container_concurrency: Option<i64>,
    /// Its HTTP request timeouts.
    pub timeouts: RequestTimeouts,
    /// The autoscaler's last decision.
    pub decision: Option<Decision>,
}

/// Everything serving holds between ticks: what a cluster's API server would hold (the
/// registry, the objects' statuses) and the runtime.
pub struct Serving {
    /// Configurations' generations and their Revisions (kept in the data directory).
    pub registry: Revisions,
    pub(super) registry_path: PathBuf,
    /// Status of each Revision, by name, as last observed.
    pub revisions: BTreeMap<String, RevisionStatus>,
    configurations: BTreeMap<String, ConfigurationStatus>,
    routes: BTreeMap<String, RouteStatus>,
    /// The revisions' processes.
    pub runtime: Runtime,
    /// Services' and tags' URLs, by `namespace/service` (and `namespace/service#tag`).
    pub proxies: BTreeMap<String, Proxy>,
    /// Revisions that run (or may scale up), by name.
    pub live: BTreeMap<String, LiveRevision>,
    /// Services by `namespace/name`.
    pub services: BTreeMap<String, ServiceState>,
    pub(super) scalers: Scalers,
    pub(super) settings: Settings,
    pub(super) tick: Duration,
    pub(super) activator: Arc<Activator>,
    gateway: Arc<Gateway>,
    /// `config-domain` among the manifests (the domain of each Route's URL).
    pub domains: Domains,
    pub(super) started: Instant,
    pub(super) last_tick: Option<Instant>,
}

/// Where a Service's tag is served: its own proxy, keyed `<namespace>/<service>#<tag>`.
fn tag_key(service: &str, tag: &str) -> String {
    format!("{service}#{tag}")
}

/// `namespace/name` of a Service.
pub fn service_key(service: &KnativeService) -> String {
    format!(
        "{}/{}",
        service.namespace().unwrap_or_default(),
        service.name_any()
    )
}

pub(super) fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// A status's Ready condition as `reason: message`, when it is not `True`.
pub fn not_ready(status: &Status) -> Option<String> {
    let c = status.condition(READY);
    if c.is_some_and(|c| c.is_true()) {
        return None;
    }
    let reason = c.and_then(|c| c.reason.clone()).unwrap_or_default();
    let message = c.and_then(|c| c.message.clone()).unwrap_or_default();
    Some(match (reason.is_empty(), message.is_empty()) {
        (true, true) => "starting".to_owned(),
        (true, false) => message,
        (false, true) => reason,
        (false, false) => format!("{reason}: {message}"),
    })
}

impl Serving {
    /// Serving over the revision registry at `registry_path`.
    ///
    /// # Errors
    /// The registry exists but cannot be read.
    pub fn new(
        registry_path: PathBuf,
        settings: Settings,
        tick: Duration,
        activator: Arc<Activator>,
        gateway: Arc<Gateway>,
    ) -> Result<Serving, String> {
        Ok(Serving {
            registry: Revisions::load(&registry_path)?,
            registry_path,
            revisions: BTreeMap::new(),
            configurations: BTreeMap::new(),
            routes: BTreeMap::new(),
            runtime: Runtime::default(),
            proxies: BTreeMap::new(),
            live: BTreeMap::new(),
            services: BTreeMap::new(),
            scalers: Scalers::default(),
            settings,
            tick,
            activator,
            gateway,
            domains: Domains::default(),
            started: Instant::now(),
            last_tick: None,
        })
    }

    /// Stamps revisions for changed templates, observes the revisions that run, decides each
    /// Service's Configuration, Route and readiness, and stops revisions nothing needs any
    /// more.
    pub async fn reconcile(&mut self, services: &[KnativeService]) {
        self.observe_revisions();
        let mut keep = BTreeSet::new();
        let mut states = BTreeMap::new();
        for service in services {
            let state = self.reconcile_service(service, &mut keep).await;
            states.insert(service_key(service), state);
        }
        self.services = states;
        let wanted: BTreeSet<String> = self
            .services
            .iter()
            .flat_map(|(key, state)| {
                std::iter::once(key.clone()).chain(state.tags.keys().map(|t| tag_key(key, t)))
            })
            .collect();
        self.proxies.retain(|key, _| wanted.contains(key));
        self.live.retain(|name, _| keep.contains(name));
        self.revisions.retain(|name, _| keep.contains(name));
        self.scalers.retain(
            &self
                .live
                .iter()
                .map(|(n, l)| format!("{}/{n}", l.namespace))
                .collect(),
        );
        self.runtime.retain(&|name| keep.contains(name)).await;
    }

    /// The namespace's revisions with their observed status.
    fn observed(&self, ns: &str) -> Vec<Revision> {
        let mut revisions = self.registry.in_namespace(ns);
        for r in &mut revisions {
            r.status = self.revisions.get(&r.name_any()).cloned();
        }
        revisions
    }

    async fn reconcile_service(
        &mut self,
        service: &KnativeService,
        keep: &mut BTreeSet<String>,
    ) -> ServiceState {
        let key = service_key(service);
        let (ns, name) = (service.namespace().unwrap_or_default(), service.name_any());
        let now = now();
        let mut cfg = self.registry.configuration(service);
        // When nothing can be stamped, configuration_status says why.
        if let Ok(Some(created)) = self.registry.stamp(&cfg) {
            println!("ferry dev: created revision {created} of Service {key}");
            if let Err(e) = self.registry.save(&self.registry_path) {
                eprintln!(
                    "ferry dev: cannot save {} ({e})",
                    self.registry_path.display()
                );
            }
        }
        let revisions = self.observed(&ns);
        cfg.status = self.configurations.get(&key).cloned();
        let cfg_status = configuration_status(&cfg, &revisions, &now);
        cfg.status = Some(cfg_status.clone());
        self.configurations.insert(key.clone(), cfg_status.clone());
        let mut route = route_for(service);
        route.status = self.routes.get(&key).cloned();
        let domain = self
            .domains
            .domain_for(route.labels(), DEFAULT_CLUSTER_DOMAIN);
        let route_st = route_status(
            &route,
            std::slice::from_ref(&cfg),
            &revisions,
            &domain,
            DEFAULT_CLUSTER_DOMAIN,
            &now,
        );
        route.status = Some(route_st.clone());
        self.routes.insert(key.clone(), route_st.clone());
        let svc_st = service_status(service, Some(&cfg), Some(&route), &now);
        // Run what can serve or is on its way: the latest created and ready revisions and
        // every revision the Route sends to.
        let wanted = [
            cfg_status.fields.latest_created_revision_name.clone(),
            cfg_status.fields.latest_ready_revision_name.clone(),
        ]
        .into_iter()
        .flatten()
        .chain(
            route_st
                .fields
                .traffic
                .iter()
                .filter_map(|t| t.revision_name.clone()),
        );
        for revision in wanted.collect::<BTreeSet<_>>() {
            if let Err(e) = self.run_revision(&ns, &name, &revision, keep).await {
                eprintln!("ferry dev: {e}");
            }
        }
        let mut state = self.route(&key, &route_st).await;
        state.ready = svc_st.status.is_ready();
        state.reason = not_ready(&svc_st.status);
        state
    }

    async fn ensure_proxy(&mut self, key: &str) -> std::io::Result<()> {
        if !self.proxies.contains_key(key) {
            let proxy = Proxy::start(self.gateway.clone(), key).await?;
            self.proxies.insert(key.to_owned(), proxy);
        }
        Ok(())
    }

    /// Points the Service's URL at its Route's traffic, and gives each tag its URL.
    async fn route(&mut self, key: &str, route: &RouteStatus) -> ServiceState {
        if let Err(e) = self.ensure_proxy(key).await {
            return ServiceState {
                reason: Some(format!("cannot open its URL: {e}")),
                ..ServiceState::default()
            };
        }
        let targets = traffic_targets(route, &|r| self.live.get(r).map(|l| l.proxy.url.clone()));
        let merged: Vec<(String, u32)> = traffic_targets(route, &|r| Some(r.to_owned()))
            .into_iter()
            .map(|t| (t.revision, t.percent))
            .collect();
        let ready_targets = (!targets.is_empty()).then_some(targets);
        if let Some(proxy) = self.proxies.get(key) {
            proxy.set_targets(ready_targets.clone().unwrap_or_default());
        }
        let mut tags = BTreeMap::new();
        for t in &route.fields.traffic {
            let (Some(tag), Some(revision)) = (&t.tag, &t.revision_name) else {
                continue;
            };
            if let Some(url) = self.tag_url(key, tag, revision).await {
                tags.insert(tag.clone(), (revision.clone(), url));
            }
        }
        ServiceState {
            ready_targets,
            traffic: merged,
            tags,
            ..ServiceState::default()
        }
    }

    /// A live revision as a traffic target.
    fn target(&self, revision: &str, percent: u32) -> Option<RevisionTarget> {
        self.live.get(revision).map(|l| RevisionTarget {
            revision: revision.to_owned(),
            url: l.proxy.url.clone(),
            percent,
        })
    }

    /// A tag addresses its revision on its own, whatever its percent.
    async fn tag_url(&mut self, key: &str, tag: &str, revision: &str) -> Option<String> {
        let proxy_key = tag_key(key, tag);
        if let Err(e) = self.ensure_proxy(&proxy_key).await {
            eprintln!("ferry dev: tag {tag} of {key} gets no URL: {e}");
            return None;
        }
        let target = self.target(revision, 100);
        let proxy = self.proxies.get(&proxy_key)?;
        proxy.set_targets(target.into_iter().collect());
        Some(proxy.url.clone())
    }

    /// Makes a revision live (its address; replicas come from the autoscaler) and records
    /// that it is needed.
    async fn run_revision(
        &mut self,
        ns: &str,
        service: &str,
        revision: &str,
        keep: &mut BTreeSet<String>,
    ) -> Result<(), String> {
        keep.insert(revision.to_owned());
        if self.live.contains_key(revision) {
            return Ok(());
        }
        let stored = self
            .registry
            .get(ns, revision)
            .ok_or_else(|| format!("revision {revision} is not known"))?;
        let (annotations, container_concurrency, timeouts) = (
            stored.annotations().clone(),
            stored.spec.container_concurrency,
            RequestTimeouts::of(&stored.spec),
        );
        let spec = replica_spec(&stored.spec).map_err(|e| format!("revision {revision}: {e}"))?;
        let proxy = Proxy::start(self.gateway.clone(), &format!("{ns}/{revision}"))
            .await
            .map_err(|e| format!("revision {revision} cannot get a URL: {e}"))?;
        proxy.set_targets(vec![RevisionTarget {
            revision: revision.to_owned(),
            url: proxy.url.clone(),
            percent: 100,
        }]);
        let identity = RevisionIdentity {
            revision,
            configuration: service,
            service,
        };
        self.runtime.define(&identity, &spec);
        self.live.insert(
            revision.to_owned(),
            LiveRevision {
                namespace: ns.to_owned(),
                proxy,
                annotations,
                container_concurrency,
                timeouts,
                decision: None,
            },
        );
        Ok(())
    }

    /// Every Service's Route as the ingress serves it by `Host` (the names it would have in
    /// a cluster), its revisions at their local URLs.
    pub fn http_routes(&self) -> Vec<HttpRoute> {
        self.routes
            .iter()
            .flat_map(|(key, status)| {
                let (ns, name) = key.split_once('/').unwrap_or(("", key));
                let route = Route {
                    metadata: ObjectMeta {
                        name: Some(name.to_owned()),
                        namespace: Some(ns.to_owned()),
                        ..ObjectMeta::default()
                    },
                    spec: RouteSpec::default(),
                    status: Some(status.clone()),
                };
                let url_of = |revision: &str| self.live.get(revision).map(|l| l.proxy.url.clone());
                http_routes(&route, DEFAULT_CLUSTER_DOMAIN, &url_of)
            })
            .collect()
    }

    /// A Service's targets while all of them answer.
    pub fn ready_targets(&self, key: &str) -> Option<Vec<RevisionTarget>> {
        self.services.get(key).and_then(|s| s.ready_targets.clone())
    }

    /// Stops every revision and saves the registry.
    pub async fn shutdown(mut self) {
        self.runtime.shutdown().await;
        if let Err(e) = self.registry.save(&self.registry_path) {
            eprintln!(
                "ferry dev: cannot save {} ({e})",
                self.registry_path.display()
            );
        }
    }
}
