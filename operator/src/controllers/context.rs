//! What every controller shares: the [`Context`] of a reconcile, status writes by server-side
//! apply (with an Event when `Ready` settles), the error policy, a reconcile's metrics and
//! tracing span, and the settings every `Controller` runs with.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::MANAGER;
use crate::args::Args;
use crate::autoscale::ScaleBoard;
use crate::error::{Error, Result};
use crate::http::Metrics;
use ferry_api::serving::domain::Domains;
use ferry_api::serving::features::{Features, TAG_HEADER_ROUTING};
use ferry_api::validation::Context as ValidationContext;
use ferry_runtime::telemetry::{Parent, SpanKind, Telemetry};

use crate::publisher::Publisher;
use crate::tasks::stopped;
use crate::topics::Topics;
use crate::world::Stores;

/// What every reconcile shares.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// The operator's arguments.
    pub args: Args,
    /// The shared stores.
    pub stores: Stores,
    /// The contract's publisher.
    pub publisher: Arc<Publisher>,
    /// The log's admin API.
    pub topics: Arc<Topics>,
    /// Reconcile metrics.
    pub metrics: Arc<Metrics>,
    /// `reportingInstance` of the Events published (the operator's identity).
    reporting_instance: String,
    /// Failures in a row per object, for the error policy's backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// What the autoscaler loop decided.
    pub scale: Arc<ScaleBoard>,
    /// The cluster's `config-features` flags (`--features-configmap`).
    features: Mutex<Features>,
    /// The cluster's `config-domain` (`--domain-configmap`, else `--domain`).
    domains: Mutex<Domains>,
    /// A span per reconcile, while tracing is on (`OTEL_*`, then `config-observability`).
    pub telemetry: Arc<Telemetry>,
}

/// Puts `value` in `slot`; `true` when it differs from what was there.
fn replace<T: PartialEq>(slot: &Mutex<T>, value: T) -> bool {
    let mut current = slot.lock().unwrap_or_else(|e| e.into_inner());
    if *current == value {
        return false;
    }
    *current = value;
    true
}

impl Context {
    /// A context over `stores`.
    pub fn new(
        client: Client,
        args: Args,
        stores: Stores,
        publisher: Arc<Publisher>,
        topics: Arc<Topics>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Context {
            reporting_instance: args.identity.clone().unwrap_or_else(|| MANAGER.to_owned()),
            client,
            args,
            stores,
            publisher,
            topics,
            metrics,
            failures: Mutex::new(HashMap::new()),
            scale: Arc::default(),
            features: Mutex::default(),
            domains: Mutex::new(Domains::default()),
            // `main` refuses a bad `OTEL_*` before it gets here.
            telemetry: Telemetry::from_env("ferry-operator").unwrap_or_else(|_| Telemetry::off()),
        }
        .with_domains_fallback()
    }

    /// `--domain` as the default domain until `config-domain` names one.
    fn with_domains_fallback(self) -> Self {
        self.set_domains(Domains::default());
        self
    }

    /// What validation depends on in this cluster: its `config-features` flags.
    pub fn validation(&self) -> ValidationContext {
        ValidationContext {
            features: self
                .features
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// Replaces the `config-features` flags; `true` when they changed.
    pub(super) fn set_features(&self, features: Features) -> bool {
        self.publisher
            .set_tag_header_routing(features.enabled(TAG_HEADER_ROUTING));
        replace(&self.features, features)
    }

    /// Replaces the `config-domain` domains (none: `--domain` when set); `true` when they
    /// changed.
    pub(super) fn set_domains(&self, domains: Domains) -> bool {
        let domains = if domains.is_empty() && !self.args.domain.is_empty() {
            Domains::with_default(&self.args.domain)
        } else {
            domains
        };
        replace(&self.domains, domains)
    }

    /// The domain of a Route's external URL (`config-domain`, visibility label).
    pub fn route_domain(&self, labels: &std::collections::BTreeMap<String, String>) -> String {
        self.domains
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .domain_for(labels, &self.args.cluster_domain)
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
    pub(super) async fn event<K: Resource<DynamicType = ()>>(
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
pub(super) async fn apply_status<K, S>(
    ctx: &Context,
    obj: &K,
    current: Option<&S>,
    status: &S,
) -> Result<bool>
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
pub(super) fn error_policy<K: Resource<DynamicType = ()>>(
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
pub(super) async fn instrumented<K, F>(obj: Arc<K>, ctx: Arc<Context>, run: F) -> Result<Action>
where
    K: Resource<DynamicType = ()>,
    F: Future<Output = Result<Action>>,
{
    let key = object_key(&*obj);
    let span = tracing::info_span!("reconcile", object = %key);
    let mut traced = ctx
        .telemetry
        .start("reconcile", SpanKind::Internal, &Parent::None);
    if traced.is_some() {
        traced.set("k8s.resource.kind", K::kind(&()).into_owned());
        traced.set(
            "k8s.namespace.name",
            obj.meta().namespace.clone().unwrap_or_default(),
        );
        traced.set(
            "k8s.resource.name",
            obj.meta().name.clone().unwrap_or_default(),
        );
    }
    let started = Instant::now();
    let result = tracing::Instrument::instrument(run, span).await;
    if let Err(e) = &result {
        traced.set("error.type", e.reason());
        traced.fail(e.to_string());
    }
    drop(traced);
    ctx.metrics.reconciled(&K::kind(&()), started.elapsed());
    if result.is_ok() {
        ctx.succeeded(&key);
    }
    result
}

/// Every controller's settings: bounded concurrency (`--reconcile-concurrency`), and a graceful
/// shutdown once `stop` turns `true` (no new reconciles; those running finish).
pub(super) fn configured<K>(
    controller: Controller<K>,
    ctx: &Context,
    stop: &watch::Receiver<bool>,
) -> Controller<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    controller
        .with_config(
            kube::runtime::controller::Config::default()
                .concurrency(ctx.args.reconcile_concurrency),
        )
        .graceful_shutdown_on(stopped(stop.clone()))
}

/// A controller ready to run, named for the drain's log lines.
pub(super) type Named = (String, std::pin::Pin<Box<dyn Future<Output = ()> + Send>>);

/// Drives a controller's result stream (logging outcomes at debug level) until it ends: after
/// a graceful shutdown, once the reconciles in flight are done.
pub(super) fn named<K, S, T, E>(stream: S) -> Named
where
    K: Resource<DynamicType = ()>,
    S: Stream<Item = Result<T, E>> + Send + 'static,
    T: Debug,
    E: Debug,
{
    let run = stream.for_each(|result| {
        if let Err(e) = result {
            tracing::debug!(error = ?e, "controller");
        }
        futures::future::ready(())
    });
    (format!("{} controller", K::kind(&())), Box::pin(run))
}
