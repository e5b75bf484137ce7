//! What the manifests ask for, checked the way `ferry dev` runs them: parsed, validated,
//! supported locally, and compilable (every Trigger's Broker exists, every `ref` names a
//! loaded resource that has an address).

use std::collections::BTreeMap;
use std::path::PathBuf;

use ferry_api::contract::{self, CompileError, CompileInput, Contract, Resolved};
use ferry_api::duck::KReference;
use ferry_api::eventing::{BROKER_CLASS_ANNOTATION, Broker, FERRY_BROKER_CLASS, Trigger};
use ferry_api::messaging::{KafkaChannel, Subscription};
use ferry_api::observability::{CONFIG_OBSERVABILITY, CONFIG_TRACING, Tracing};
use ferry_api::resource::Resource;
use ferry_api::serving::KnativeService;
use ferry_api::serving::domain::{CONFIG_DOMAIN, Domains};
use ferry_api::serving::features::{CONFIG_FEATURES, Features};
use ferry_api::sources::{KafkaSource, SecretData, secret_key_value};
use kube::ResourceExt;

use super::revisions::replica_spec;
use crate::manifest::{self, Manifest};
use crate::validate;

/// Every resource ferry dev runs, by kind, with a local uid set on each.
#[derive(Clone, Debug, Default)]
pub struct Desired {
    /// Brokers.
    pub brokers: Vec<Broker>,
    /// Triggers.
    pub triggers: Vec<Trigger>,
    /// KafkaChannels.
    pub channels: Vec<KafkaChannel>,
    /// Subscriptions.
    pub subscriptions: Vec<Subscription>,
    /// KafkaSources.
    pub sources: Vec<KafkaSource>,
    /// Knative Services.
    pub services: Vec<KnativeService>,
    /// Where each object was read from: `Kind namespace/name` → `file, document N`.
    pub origins: BTreeMap<String, String>,
    /// `v1` Secrets from the manifests, by (namespace, name): KafkaSources' `spec.net` material.
    pub secrets: BTreeMap<(String, String), SecretData>,
    /// `v1` ConfigMaps from the manifests, by (namespace, name): what a Broker's `spec.config`
    /// names (its topic's partitions), as the operator reads it from the cluster.
    pub config_maps: BTreeMap<(String, String), BTreeMap<String, String>>,
}

/// `Kind namespace/name`, the key of [`Desired::origins`].
pub fn object_key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind} {namespace}/{name}")
}

/// A stable uid for a resource read from a file: consumer groups derived from uids (a
/// KafkaSource's) must survive restarts of ferry dev.
fn local_uid(kind: &str, namespace: &str, name: &str) -> String {
    format!("local-{}-{namespace}-{name}", kind.to_ascii_lowercase())
}

/// Loads and checks every manifest under `paths`.
///
/// # Errors
/// Every problem, one line each, naming file, document, object and field, with a fix.
pub fn load(paths: &[PathBuf]) -> Result<Desired, Vec<String>> {
    let outcome = validate::run(paths);
    if !outcome.ok() {
        return Err(validate::problems(&outcome));
    }
    let (manifests, secrets, _) = manifest::load_with_secrets(paths);
    let mut desired = Desired::default();
    for s in secrets {
        if s.kind == "ConfigMap" {
            let text = s.text_data();
            desired.config_maps.insert((s.namespace, s.name), text);
        } else {
            desired.secrets.insert((s.namespace, s.name), s.data);
        }
    }
    let mut problems = Vec::new();
    for m in manifests {
        if let Err(problem) = add(&mut desired, m) {
            problems.push(problem);
        }
    }
    // Every ref must name a loaded resource with an address; readiness comes later.
    let optimistic = |r: &KReference| {
        desired
            .address_kind(r)
            .map(|_| Resolved::Url("http://check".into()))
    };
    let (checked, errors) = desired.compile(1, "check", &optimistic);
    if let Err(e) = checked.validate() {
        // E.g. a Broker and a KafkaChannel of the same name share an ingress path.
        problems.extend(
            e.errors()
                .iter()
                .map(|e| format!("the resources conflict: {e}")),
        );
    }
    for e in errors {
        let key = object_key(&e.object.kind, &e.object.namespace, &e.object.name);
        let at = desired.origins.get(&key).cloned().unwrap_or_default();
        problems.push(format!("{at}: {key}: {} ({})", e.message, e.reason));
    }
    if problems.is_empty() {
        Ok(desired)
    } else {
        Err(problems)
    }
}

fn add(desired: &mut Desired, m: Manifest) -> Result<(), String> {
    let at = format!("{}, document {}", m.file.display(), m.document);
    let r = &m.resource;
    let (kind, ns, name) = (
        r.kind(),
        r.namespace()
            .unwrap_or(manifest::DEFAULT_NAMESPACE)
            .to_owned(),
        r.name().to_owned(),
    );
    let key = object_key(kind, &ns, &name);
    let unsupported = |why: &str| Err(format!("{at}: {key}: {why}"));
    let mut resource = m.resource;
    resource.meta_mut().uid = Some(local_uid(kind, &ns, &name));
    match resource {
        Resource::Broker(b) => {
            if !b.is_ferry_class(true) {
                return unsupported(&format!(
                    "metadata.annotations[{BROKER_CLASS_ANNOTATION}]: class {:?} is not served by Ferry; set it to {FERRY_BROKER_CLASS} or remove it",
                    b.class().unwrap_or_default()
                ));
            }
            desired.brokers.push(b);
        }
        Resource::Trigger(t) => {
            desired.triggers.push(t);
        }
        Resource::KafkaChannel(c) => {
            desired.channels.push(c);
        }
        Resource::Subscription(s) => {
            desired.subscriptions.push(s);
        }
        Resource::KafkaSource(s) => {
            desired.sources.push(s);
        }
        Resource::Service(s) => {
            replica_spec(&s.spec.template.spec).map_err(|e| format!("{at}: {key}: {e}"))?;
            desired.services.push(s);
        }
        Resource::Configuration(_) | Resource::Route(_) => {
            return unsupported(
                "ferry dev runs Knative Services (a Service is a Configuration plus a Route); write this as a Service with spec.template and spec.traffic",
            );
        }
        Resource::Revision(_) => {
            return unsupported(
                "Revisions are created from a Service's spec.template, not applied; remove this manifest and change the Service's template instead",
            );
        }
    }
    desired.origins.insert(key, at);
    Ok(())
}

impl Desired {
    /// The data of Knative's settings ConfigMap `name` (`config-features`, `config-domain`,
    /// `config-observability`, `config-tracing`) among the manifests, in whatever namespace.
    fn knative_settings(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.config_maps
            .iter()
            .find(|((_, n), _)| n == name)
            .map(|(_, data)| data)
    }

    /// `config-features` among the manifests, else Knative's defaults.
    pub fn features(&self) -> Features {
        self.knative_settings(CONFIG_FEATURES)
            .map(|data| Features::from_data(data).0)
            .unwrap_or_default()
    }

    /// `config-domain` among the manifests (checked when loaded), else none: Knative's
    /// default domain.
    pub fn domains(&self) -> Domains {
        self.knative_settings(CONFIG_DOMAIN)
            .and_then(|data| Domains::from_data(data).ok())
            .unwrap_or_default()
    }

    /// Where the dispatcher sends spans: `config-observability` among the manifests when it
    /// sets tracing, else `config-tracing` (Knative before 1.18); `None` when neither does, and
    /// the dispatcher's `OTEL_*` environment decides. Both are checked when loaded.
    pub fn tracing(&self) -> Option<Tracing> {
        let read = |name| {
            self.knative_settings(name)
                .and_then(|data| Tracing::from_data(data).ok().flatten())
        };
        read(CONFIG_OBSERVABILITY).or_else(|| read(CONFIG_TRACING))
    }

    /// The ConfigMap a Broker's `spec.config` names: `None` when it names none,
    /// `Some(None)` when the manifests lack it.
    pub fn config_map_of(&self, broker: &Broker) -> Option<Option<&BTreeMap<String, String>>> {
        let config = broker.spec.config.as_ref()?;
        let ns = config
            .namespace
            .clone()
            .or_else(|| broker.namespace())
            .unwrap_or_else(|| manifest::DEFAULT_NAMESPACE.to_owned());
        Some(self.config_maps.get(&(ns, config.name.clone())))
    }
}

/// What kind of address a `ref` resolves to locally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressKind {
    /// A Broker or KafkaChannel: the ingress URL.
    Ingress,
    /// A Knative Service: its revisions.
    Service,
}

impl Desired {
    /// What `r` points at, when it is a loaded addressable resource.
    pub fn address_kind(&self, r: &KReference) -> Option<AddressKind> {
        let ns = r
            .namespace
            .as_deref()
            .unwrap_or(manifest::DEFAULT_NAMESPACE);
        let same =
            |o_ns: Option<String>, o_name: String| o_ns.as_deref() == Some(ns) && o_name == r.name;
        let api_version = r.api_version.as_deref().unwrap_or_default();
        let group = api_version.split('/').next().unwrap_or_default();
        match (group, r.kind.as_str()) {
            ("eventing.knative.dev", "Broker") => self
                .brokers
                .iter()
                .any(|b| same(b.namespace(), b.name_any()))
                .then_some(AddressKind::Ingress),
            ("messaging.knative.dev", "KafkaChannel") => self
                .channels
                .iter()
                .any(|c| same(c.namespace(), c.name_any()))
                .then_some(AddressKind::Ingress),
            ("serving.knative.dev", "Service") => self
                .services
                .iter()
                .any(|s| same(s.namespace(), s.name_any()))
                .then_some(AddressKind::Service),
            _ => None,
        }
    }

    /// Compiles these resources into a contract of `generation`.
    pub fn compile(
        &self,
        generation: u64,
        bootstrap_servers: &str,
        resolve: &dyn Fn(&KReference) -> Option<Resolved>,
    ) -> (Contract, Vec<CompileError>) {
        fn refs<K>(objects: &[K]) -> Vec<&K> {
            objects.iter().collect()
        }
        contract::compile(&CompileInput {
            generation,
            bootstrap_servers,
            brokers: &refs(&self.brokers),
            triggers: &refs(&self.triggers),
            channels: &refs(&self.channels),
            subscriptions: &refs(&self.subscriptions),
            sources: &refs(&self.sources),
            resolve,
            secret: &|ns, r| {
                let data = self.secrets.get(&(ns.to_owned(), r.name.clone())).ok_or_else(|| {
                    ferry_api::Error::SecretUnreadable(format!(
                        "Secret {ns}/{} not found; add it to the manifests (apiVersion: v1, kind: Secret, with data or stringData)",
                        r.name
                    ))
                })?;
                secret_key_value(ns, r, data)
            },
        })
    }
}

/// The manifests' files with their modification times and sizes: a change means reload.
pub fn fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, Option<std::time::SystemTime>, u64)> {
    let files = manifest::files(paths).unwrap_or_default();
    files
        .into_iter()
        .map(|f| {
            let meta = std::fs::metadata(&f).ok();
            let stamp = (
                meta.as_ref().and_then(|m| m.modified().ok()),
                meta.map_or(0, |m| m.len()),
            );
            (f, stamp.0, stamp.1)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "apiVersion: sources.knative.dev/v1beta1
kind: KafkaSource
metadata: {name: payments}
spec:
  bootstrapServers: [kafka.example:9093]
  topics: [payments]
  sink: {uri: http://127.0.0.1:9/}
  net:
    sasl:
      enable: true
      user: {secretKeyRef: {name: kafka-creds, key: user}}
      password: {secretKeyRef: {name: kafka-creds, key: password}}
      type: {secretKeyRef: {name: kafka-creds, key: saslType}}
    tls:
      enable: true
";

    fn write(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write manifest");
        }
        dir
    }

    #[test]
    fn kafka_source_net_reads_secrets_from_the_manifests() {
        let dir = write(&[
            ("source.yaml", SOURCE),
            (
                "secret.yaml",
                "apiVersion: v1\nkind: Secret\nmetadata: {name: kafka-creds}\n\
                 stringData: {user: ledger, password: hunter2, saslType: SCRAM-SHA-256}\n",
            ),
        ]);
        let desired = load(&[dir.path().to_owned()]).expect("manifests load");
        let (contract, errors) = desired.compile(1, "127.0.0.1:9092", &|_| None);
        assert!(errors.is_empty(), "{errors:?}");
        let auth = contract.resources[0].auth.as_ref().expect("auth");
        assert_eq!(auth.security_protocol(), "SASL_SSL");
        let settings = auth.client_settings();
        assert_eq!(settings.get("sasl.mechanism"), Some("SCRAM-SHA-256"));
        assert_eq!(settings.get("sasl.username"), Some("ledger"));
        assert_eq!(settings.get("sasl.password"), Some("hunter2"));
    }

    #[test]
    fn tracing_follows_config_observability_then_config_tracing_else_the_environment() {
        let config_map = |name: &str, data: &str| {
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {data}\n")
        };
        let observability = config_map(
            "config-observability",
            "{tracing-protocol: grpc, tracing-endpoint: 'http://collector:4317', tracing-sampling-rate: '0.5'}",
        );
        let legacy = config_map("config-tracing", "{backend: none, sample-rate: '0.2'}");
        let tracing = |files: &[(&str, &str)]| {
            load(&[write(files).path().to_owned()])
                .expect("manifests load")
                .tracing()
        };
        let both = tracing(&[("o.yaml", &observability), ("t.yaml", &legacy)]).expect("set");
        assert_eq!(both.endpoint, "http://collector:4317");
        assert_eq!(both.sampling_rate, 0.5);
        let old = tracing(&[("t.yaml", &legacy)]).expect("set");
        assert!(!old.enabled());
        assert_eq!(old.sampling_rate, 0.2);
        // A config-observability without tracing keys (metrics only) leaves config-tracing.
        let metrics_only = config_map("config-observability", "{metrics-protocol: prometheus}");
        let old = tracing(&[("o.yaml", &metrics_only), ("t.yaml", &legacy)]).expect("set");
        assert_eq!(old.sampling_rate, 0.2);
        assert_eq!(tracing(&[("o.yaml", &metrics_only)]), None);
    }

    #[test]
    fn a_missing_secret_names_the_source_and_what_to_add() {
        let dir = write(&[("source.yaml", SOURCE)]);
        let problems = load(&[dir.path().to_owned()]).expect_err("no Secret");
        assert_eq!(problems.len(), 1, "{problems:?}");
        let want = "source.yaml, document 1: KafkaSource default/payments: Secret default/kafka-creds not found; add it to the manifests (apiVersion: v1, kind: Secret, with data or stringData); spec.net cannot be applied (NetSecretNotResolved)";
        assert!(problems[0].ends_with(want), "{}", problems[0]);
    }
}
