//! The data-plane contract: everything the dispatcher needs to route events, compiled from the
//! resources by one pure function ([`compile`]) that the operator (writing a ConfigMap) and
//! `ferry dev` (handing it to the in-process dispatcher) share.
//!
//! The document is JSON on disk:
//!
//! ```json
//! {"generation": 3, "resources": [{
//!   "uid": "…", "ref": {"kind": "Broker", "namespace": "default", "name": "orders"},
//!   "topics": ["knative-broker-default-orders"], "bootstrapServers": "127.0.0.1:9092",
//!   "ingress": {"path": "/default/orders"},
//!   "egresses": [{"uid": "…", "ref": {"kind": "Trigger", …}, "consumerGroup": "…",
//!                 "destination": {"url": "http://sink"}, "delivery": {…}, …}]}]}
//! ```
//!
//! Durations are resolved to milliseconds and sinks to URLs before they get here: the
//! dispatcher never parses ISO-8601 or looks anything up in Kubernetes.

mod compile;
mod names;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::duck::{BackoffPolicy, DeliveryFormat, is_absolute_url};
use crate::eventing::{DeliveryOrder, SubscriptionsApiFilter};
use crate::sources::{InitialOffset, KeyType};
use crate::validation::{FieldErrors, Path};

pub use crate::kafka_auth::{
    ClientSettings, Credential, KafkaAuth, SaslAuth, SaslMechanism, TlsAuth, log_client_settings,
};
pub use compile::{CompileError, CompileInput, NET_SECRET_NOT_RESOLVED, Resolved, compile};
pub use names::{
    broker_topic, channel_topic, join_url, resolve_destination, source_group, subscription_group,
    trigger_group,
};

/// The whole routing table of a dispatcher.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Contract {
    /// Grows with every change; the dispatcher reports the one it has applied.
    pub generation: u64,
    /// One entry per Broker, KafkaChannel and KafkaSource.
    #[serde(default)]
    pub resources: Vec<ContractResource>,
    /// Revisions the dispatcher activates: deliveries to their URL wait for a ready replica
    /// with room (scale from zero) and go to one of `endpoints`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub activation: Vec<Activation>,
    /// Knative Routes served over HTTP by the ingress: a request whose `Host` names one of an
    /// entry's hosts goes to its revisions (through activation when they are listed there).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<HttpRoute>,
    /// Knative's `tag-header-based-routing`: a request to a Route's own host with
    /// `Knative-Serving-Tag: <tag>` goes to that tag's revision (an unknown tag: the split).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tag_header_routing: bool,
    /// Where the dispatchers send their spans (the cluster's `config-observability`); `None`:
    /// the dispatcher's `OTEL_*` environment decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<crate::observability::Tracing>,
    /// The pod IPs of every dispatcher that activates, in one order for all. A replica's
    /// `containerConcurrency` is split among them so that together they never send it more;
    /// empty: one dispatcher, which takes it all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub activators: Vec<String>,
}

/// One address of a Knative Route: the Route itself (its traffic split) or one of its tags
/// (the tagged revision alone).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRoute {
    /// `namespace/name` of the Route.
    pub route: String,
    /// The tag this entry serves; `None` for the Route's own address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Host names answered inside the cluster (lowercase, no port): `<name>.<ns>`,
    /// `<name>.<ns>.svc`, `<name>.<ns>.svc.<cluster domain>` (tags: `<tag>-<name>…`).
    pub hosts: Vec<String>,
    /// Host names answered on the external entry too (the `status.url` host under the
    /// cluster's domain); empty for `cluster-local` Routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_hosts: Vec<String>,
    /// The revisions, with percents summing to 100 (a tag: one revision at 100).
    pub targets: Vec<RevisionTarget>,
}

/// A revision's ready replicas, for activation: the dispatcher never has more deliveries in
/// flight to a replica than `containerConcurrency`, and holds deliveries while there is none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Activation {
    /// The revision's URL as destinations name it ([`RevisionTarget::url`]).
    pub url: String,
    /// `namespace/name` of the revision (for metrics and the autoscaler).
    pub revision: String,
    /// Base URLs of its ready replicas (none: scaled to zero or starting).
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Deliveries at once per replica; 0 is no limit.
    #[serde(default)]
    pub container_concurrency: u32,
    /// How long an HTTP request routed to the revision may take (its `timeoutSeconds`);
    /// 0 is no limit.
    #[serde(default)]
    pub timeout_ms: u64,
    /// How long the revision may take to start answering (`responseStartTimeoutSeconds`);
    /// 0 is `timeout_ms`.
    #[serde(default)]
    pub response_start_timeout_ms: u64,
    /// Longest pause between bytes of an answer (`idleTimeoutSeconds`); 0 is no limit.
    #[serde(default)]
    pub idle_timeout_ms: u64,
}

/// The Kubernetes object a contract entry was compiled from.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectRef {
    /// `Broker`, `KafkaChannel`, `KafkaSource`, `Trigger`, `Subscription`.
    pub kind: String,
    /// Namespace of the object.
    pub namespace: String,
    /// Name of the object.
    pub name: String,
}

impl ObjectRef {
    /// A reference to `kind` `namespace/name`.
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        ObjectRef {
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// A log-backed resource: where its events are stored, how they get in, who reads them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContractResource {
    /// The object's uid.
    pub uid: String,
    /// The object itself.
    #[serde(rename = "ref")]
    pub reference: ObjectRef,
    /// Topics holding its events (one for Brokers and channels; a KafkaSource may read several).
    pub topics: Vec<String>,
    /// Comma-separated Kafka bootstrap servers.
    pub bootstrap_servers: String,
    /// How to connect to them: set for KafkaSources (their `spec.net`, plaintext when empty);
    /// `None` means Ferry's own log, whose settings the dispatcher takes from its environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<KafkaAuth>,
    /// The HTTP path events are posted to; `None` for KafkaSources, which have no ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Ingress>,
    /// Consumers of the topics.
    #[serde(default)]
    pub egresses: Vec<Egress>,
}

/// Where a resource accepts events over HTTP.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ingress {
    /// `/<namespace>/<name>`.
    pub path: String,
}

/// One subscriber of a resource: a Trigger, a Subscription or a KafkaSource's sink.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Egress {
    /// The uid of the Trigger / Subscription / KafkaSource.
    pub uid: String,
    /// The object the egress was compiled from.
    #[serde(rename = "ref")]
    pub reference: ObjectRef,
    /// Kafka consumer group that tracks its progress.
    pub consumer_group: String,
    /// Where matching events go.
    pub destination: Target,
    /// Legacy exact-match filter (`filter.attributes`): all must match; `""` matches any value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub filter_attributes: BTreeMap<String, String>,
    /// Subscriptions API filters: all must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<SubscriptionsApiFilter>,
    /// Retries, timeouts, dead-letter sink.
    #[serde(default)]
    pub delivery: DeliveryPolicy,
    /// Where a reply event (a CloudEvent in a 2xx response) goes; `None` discards replies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Reply>,
    /// Per-key ordered or unordered delivery.
    #[serde(default)]
    pub ordering: DeliveryOrder,
    /// Where a new consumer group starts.
    #[serde(default)]
    pub initial_offset: InitialOffset,
    /// Set for KafkaSources: how a record that is not a CloudEvent becomes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceMapping>,
}

/// A delivery destination: one URL, or revisions of a service with traffic percents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Target {
    /// An absolute `http(s)` URL.
    Url(String),
    /// A traffic split: each event goes to one revision, chosen by weight.
    Revisions(Vec<RevisionTarget>),
}

/// One revision in a traffic split.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevisionTarget {
    /// Revision name.
    pub revision: String,
    /// Where the revision is served.
    pub url: String,
    /// Share of events, 0–100; the shares of a split sum to 100.
    pub percent: u32,
}

/// Where replies go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Reply {
    /// Posted to a URL with the egress's delivery policy (a Subscription's `reply`).
    Url(String),
    /// Written back into the resource's own topic (a Trigger's reply goes back to its Broker).
    Resource,
}

/// A resolved delivery spec: Knative's `DeliverySpec` with durations in milliseconds and the
/// dead-letter sink resolved to a URL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeliveryPolicy {
    /// Retries after the first attempt.
    pub retry: u32,
    /// How the delay grows between retries.
    pub backoff_policy: BackoffPolicy,
    /// Base delay between retries.
    pub backoff_delay_ms: u64,
    /// Cap on one computed backoff delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_max_ms: Option<u64>,
    /// Timeout of one attempt.
    pub timeout_ms: u64,
    /// Cap on a `Retry-After` wait (429 and 503 only); `Some(0)` ignores `Retry-After`, `None`
    /// honours it uncapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_max_ms: Option<u64>,
    /// Where events go after the last retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink: Option<String>,
    /// Binary (default) or structured (`json`) mode on the wire.
    pub format: DeliveryFormat,
}

/// Per-attempt timeout when the delivery spec sets none.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// The key the operator writes each generation of the contract under in its Secret (gzip JSON),
/// and so a file name in the Secret's mount.
///
/// The chart never renders this key, so Helm never owns it: with Helm 4's server-side apply a
/// chart-rendered value the operator also writes conflicts whenever the operator writes
/// between the chart's `lookup` and the apply.
pub const CONTRACT_KEY: &str = "contract.gz";
/// The key the chart seeds the Secret with: generation 0 at install (kept as it is across
/// upgrades), so dispatchers have a contract to start from before the operator first writes.
/// Earlier operators wrote their contract under this key too; [`key_in_force`] still reads it.
pub const SEED_KEY: &str = "contract.json";

/// Which key of a contract Secret (or file of its mount) holds the contract in force, given
/// which keys are present: the operator's once written, else the chart's seed. The operator
/// continues numbering from whichever it finds, so its key always carries the newer contract.
pub fn key_in_force(has: impl Fn(&str) -> bool) -> Option<&'static str> {
    [CONTRACT_KEY, SEED_KEY].into_iter().find(|k| has(k))
}
/// Base backoff delay when the delivery spec sets none (Knative's documented example value).
pub const DEFAULT_BACKOFF_DELAY_MS: u64 = 200;

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            retry: 0,
            backoff_policy: BackoffPolicy::Exponential,
            backoff_delay_ms: DEFAULT_BACKOFF_DELAY_MS,
            backoff_max_ms: None,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            retry_after_max_ms: None,
            dead_letter_sink: None,
            format: DeliveryFormat::Binary,
        }
    }
}

/// How a KafkaSource turns records into CloudEvents (Knative's KafkaSource mapping).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceMapping {
    /// How the record key becomes the `key` extension.
    #[serde(default)]
    pub key_type: KeyType,
    /// Extensions set on every event, last.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ce_overrides: BTreeMap<String, String>,
}

impl Contract {
    /// What a dispatcher of the ingress role needs: the same generation, the resources that
    /// take events over HTTP (Brokers, KafkaChannels) without their egresses, the routes and
    /// the activation section — and nothing of KafkaSources, whose `auth` carries
    /// credentials an ingress pod has no use for.
    pub fn for_ingress(&self) -> Contract {
        Contract {
            generation: self.generation,
            resources: self
                .resources
                .iter()
                .filter(|r| r.ingress.is_some())
                .map(|r| ContractResource {
                    egresses: Vec::new(),
                    ..r.clone()
                })
                .collect(),
            activation: self.activation.clone(),
            routes: self.routes.clone(),
            tag_header_routing: self.tag_header_routing,
            tracing: self.tracing.clone(),
            activators: self.activators.clone(),
        }
    }

    /// Reads a contract as the operator stores it (gzip-compressed JSON, so that tens of
    /// thousands of Triggers fit in one ConfigMap) or as plain JSON (`ferry dev`, hand-written
    /// files): gzip is recognised by its magic bytes.
    ///
    /// # Errors
    /// A corrupt gzip stream, or what [`Contract::from_json`] rejects.
    pub fn from_bytes(bytes: &[u8]) -> crate::Result<Contract> {
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut json = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut json)
                .map_err(crate::Error::ContractGzip)?;
            Contract::from_json(&json)
        } else {
            Contract::from_json(bytes)
        }
    }

    /// The contract as gzip-compressed JSON, the form [`Contract::from_bytes`] reads.
    pub fn to_gzip(&self) -> Vec<u8> {
        // Streamed: the JSON (about 12× the gzip) is never held whole.
        let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut out = std::io::BufWriter::with_capacity(64 << 10, encoder);
        serde_json::to_writer(&mut out, self).expect("a contract always serializes");
        out.into_inner()
            .map_err(|e| e.into_error())
            .and_then(flate2::write::GzEncoder::finish)
            .expect("writing to memory cannot fail")
    }

    /// Reads a contract from JSON.
    ///
    /// # Errors
    /// Malformed JSON, unknown fields, or a contract that fails [`Contract::validate`].
    pub fn from_json(text: &[u8]) -> crate::Result<Contract> {
        let contract: Contract =
            serde_json::from_slice(text).map_err(crate::Error::ContractJson)?;
        contract
            .validate()
            .map_err(|e| crate::Error::ContractInvalid(e.to_string()))?;
        Ok(contract)
    }

    /// Checks what the dispatcher relies on: unique uids, ingress paths and consumer groups;
    /// topics and bootstrap servers present; absolute URLs; traffic splits summing to 100;
    /// filters valid (CESQL parsed).
    ///
    /// # Errors
    /// Every problem, each with its path and a fix.
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::default();
        let mut uids = BTreeSet::new();
        let mut paths = BTreeSet::new();
        let mut groups = BTreeSet::new();
        if let Some(Err(e)) = self
            .tracing
            .as_ref()
            .map(crate::observability::Tracing::check)
        {
            errs.push(
                &Path::root("tracing"),
                e,
                "give an OTLP protocol with the collector's http(s) URL, or protocol none",
            );
        }
        let mut activators = BTreeSet::new();
        for (i, host) in self.activators.iter().enumerate() {
            if host.trim().is_empty() || !activators.insert(host.as_str()) {
                errs.push(
                    &Path::root("activators").index(i),
                    "empty or duplicate dispatcher address",
                    "list each dispatcher's pod IP once",
                );
            }
        }
        let root = Path::root("resources");
        for (i, resource) in self.resources.iter().enumerate() {
            let at = root.index(i);
            if resource.uid.is_empty() || !uids.insert(resource.uid.as_str()) {
                errs.push(
                    &at.field("uid"),
                    "empty or duplicate uid",
                    "give each resource its object's uid",
                );
            }
            if resource.topics.is_empty() || resource.topics.iter().any(String::is_empty) {
                errs.push(
                    &at.field("topics"),
                    "no topic, or an empty topic name",
                    "list the topics the resource uses",
                );
            }
            if resource.bootstrap_servers.trim().is_empty() {
                errs.push(
                    &at.field("bootstrapServers"),
                    "empty",
                    "set host:port of a Kafka broker",
                );
            }
            if let Some(auth) = &resource.auth {
                auth.validate(&at.field("auth"), &mut errs);
            }
            if let Some(ingress) = &resource.ingress {
                let well_formed = ingress.path.starts_with('/')
                    && ingress.path[1..].split('/').count() == 2
                    && ingress.path[1..].split('/').all(|s| !s.is_empty());
                if !well_formed {
                    errs.push(
                        &at.field("ingress").field("path"),
                        format!("{:?} is not /<namespace>/<name>", ingress.path),
                        "use /<namespace>/<name>",
                    );
                } else if !paths.insert(ingress.path.as_str()) {
                    errs.push(
                        &at.field("ingress").field("path"),
                        format!("{} is used by two resources", ingress.path),
                        "give each Broker and KafkaChannel of a namespace its own name",
                    );
                }
            }
            for (j, egress) in resource.egresses.iter().enumerate() {
                let at = at.field("egresses").index(j);
                if egress.uid.is_empty() || !uids.insert(egress.uid.as_str()) {
                    errs.push(
                        &at.field("uid"),
                        "empty or duplicate uid",
                        "give each egress its object's uid",
                    );
                }
                if egress.consumer_group.is_empty()
                    || !groups.insert(egress.consumer_group.as_str())
                {
                    errs.push(
                        &at.field("consumerGroup"),
                        "empty or duplicate consumer group",
                        "give each egress its own group",
                    );
                }
                egress.validate(&at, &mut errs);
            }
        }
        let mut activated = BTreeSet::new();
        for (i, a) in self.activation.iter().enumerate() {
            let at = Path::root("activation").index(i);
            check_url(&a.url, &at.field("url"), &mut errs);
            if !activated.insert(a.url.as_str()) {
                errs.push(
                    &at.field("url"),
                    format!("{} is listed twice", a.url),
                    "list each revision once",
                );
            }
            for (k, e) in a.endpoints.iter().enumerate() {
                check_url(e, &at.field("endpoints").index(k), &mut errs);
            }
        }
        let mut hosts = HostsSeen::default();
        for (i, r) in self.routes.iter().enumerate() {
            r.validate(&Path::root("routes").index(i), &mut hosts, &mut errs);
        }
        errs.into_result()
    }
}

impl Egress {
    fn validate(&self, at: &Path, errs: &mut FieldErrors) {
        match &self.destination {
            Target::Url(url) => check_url(url, &at.field("destination").field("url"), errs),
            Target::Revisions(revisions) => {
                check_split(revisions, &at.field("destination").field("revisions"), errs);
            }
        }
        if let Some(Reply::Url(url)) = &self.reply {
            check_url(url, &at.field("reply").field("url"), errs);
        }
        if let Some(dls) = &self.delivery.dead_letter_sink {
            check_url(dls, &at.field("delivery").field("deadLetterSink"), errs);
        }
        if self.delivery.timeout_ms == 0 {
            errs.push(
                &at.field("delivery").field("timeoutMs"),
                "zero",
                "set a positive timeout",
            );
        }
        for (k, filter) in self.filters.iter().enumerate() {
            filter.validate(&at.field("filters").index(k), errs);
        }
    }
}

/// Hosts of the routes checked so far: in-cluster, external.
type HostsSeen<'a> = (BTreeSet<&'a str>, BTreeSet<&'a str>);

impl HttpRoute {
    /// Checks one entry; `seen` collects the hosts of the entries before it, since a host
    /// must lead to one place.
    fn validate<'a>(&'a self, at: &Path, seen: &mut HostsSeen<'a>, errs: &mut FieldErrors) {
        let well_formed = self
            .route
            .split_once('/')
            .is_some_and(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'));
        if !well_formed {
            errs.push(
                &at.field("route"),
                format!("{:?} is not <namespace>/<name>", self.route),
                "name the Route as <namespace>/<name>",
            );
        }
        if self.hosts.is_empty() {
            errs.push(&at.field("hosts"), "no host", "list the Route's host names");
        }
        let lists = [
            ("hosts", &self.hosts, &mut seen.0),
            ("externalHosts", &self.external_hosts, &mut seen.1),
        ];
        for (field, list, seen) in lists {
            for (k, host) in list.iter().enumerate() {
                let at = at.field(field).index(k);
                let valid = !host.is_empty()
                    && host.len() <= 253
                    && host.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                    });
                if !valid {
                    errs.push(
                        &at,
                        format!("{host:?} is not a lowercase DNS name"),
                        "use the host name without scheme, port or upper case",
                    );
                } else if host.contains('.') && !seen.insert(host.as_str()) {
                    // A short name may be several namespaces' (the data plane refuses it
                    // then, naming the full names); a full name leads to one place.
                    errs.push(
                        &at,
                        format!("{host} is served by two routes"),
                        "give each Route and tag its own host names",
                    );
                }
            }
        }
        check_split(&self.targets, &at.field("targets"), errs);
    }
}

/// A traffic split: at least one revision, absolute URLs, percents summing to 100.
fn check_split(revisions: &[RevisionTarget], at: &Path, errs: &mut FieldErrors) {
    if revisions.is_empty() {
        errs.push(at, "no revision", "list at least one revision");
    }
    for (k, r) in revisions.iter().enumerate() {
        check_url(&r.url, &at.index(k).field("url"), errs);
    }
    let sum: u64 = revisions.iter().map(|r| u64::from(r.percent)).sum();
    if !revisions.is_empty() && sum != 100 {
        errs.push(
            at,
            format!("percents sum to {sum}"),
            "make the percents sum to 100",
        );
    }
}

fn check_url(url: &str, at: &Path, errs: &mut FieldErrors) {
    let http = url.starts_with("http://") || url.starts_with("https://");
    if !http || !is_absolute_url(url) {
        errs.push(
            at,
            format!("{url:?} is not an absolute http(s) URL"),
            "resolve the destination to http://host[:port]/path",
        );
    }
}

#[cfg(test)]
mod tests;
