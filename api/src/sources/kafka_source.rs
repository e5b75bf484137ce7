//! KafkaSource: reads existing topics and delivers their records as CloudEvents.

use std::fmt;

use k8s_openapi::api::core::v1::SecretKeySelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duck::{CloudEventAttributes, CloudEventOverrides, DeliverySpec, Destination, Status};
use crate::eventing::{DeliveryOrder, validate_attribute_name};
use crate::kafka_auth::{Credential, KafkaAuth, SaslAuth, SaslMechanism, TlsAuth};
use crate::validation::{FieldError, FieldErrors, Path, Unsupported, Validate, metadata_choice};
use crate::{Error, Result};

/// The versions a KafkaSource is served at, as eventing-kafka-broker's CRD serves them: `v1`
/// and `v1beta1` have the same Go types field for field, so one schema serves both (the API
/// server converts with `conversion: None`) and `v1beta1` stays the storage version.
pub const KAFKA_SOURCE_VERSIONS: &[&str] = &["v1", "v1beta1"];
/// Label selecting how record keys are decoded (Knative's name and values).
pub const KEY_TYPE_LABEL: &str = "kafkasources.sources.knative.dev/key-type";

/// Where a new consumer group starts reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InitialOffset {
    /// From the oldest retained record.
    Earliest,
    /// Only records written after the group starts (Knative's default).
    #[default]
    Latest,
}

/// How a record key becomes the `key` extension (label `kafkasources.sources.knative.dev/key-type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyType {
    /// UTF-8 text (the default).
    #[default]
    String,
    /// Big-endian signed integer of 4 or 8 bytes.
    Int,
    /// Big-endian IEEE-754 float of 4 or 8 bytes.
    Float,
    /// Raw bytes, base64-encoded.
    ByteArray,
}

impl KeyType {
    /// Parses the label value.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "string" => Some(KeyType::String),
            "int" => Some(KeyType::Int),
            "float" => Some(KeyType::Float),
            "byte-array" => Some(KeyType::ByteArray),
            _ => None,
        }
    }
}

fn default_consumers() -> Option<i32> {
    Some(1)
}
fn default_ordering() -> Option<DeliveryOrder> {
    Some(DeliveryOrder::Ordered)
}

/// Desired state of a KafkaSource (Knative `KafkaSourceSpec`).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sources.knative.dev",
    version = "v1beta1",
    kind = "KafkaSource",
    namespaced,
    status = "KafkaSourceStatus",
    derive = "PartialEq",
    derive = "Default",
    category = "all",
    category = "knative",
    category = "eventing",
    category = "sources",
    doc = "KafkaSource reads records from Kafka topics and delivers them to a sink as CloudEvents.",
    printcolumn(name = "Topics", type_ = "string", json_path = ".spec.topics"),
    printcolumn(
        name = "BootstrapServers",
        type_ = "string",
        json_path = ".spec.bootstrapServers"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSourceSpec {
    /// Consumers reading the topics in parallel (at most one per partition is useful).
    #[serde(default = "default_consumers", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub consumers: Option<i32>,
    /// Kafka bootstrap servers, `host:port`.
    #[schemars(length(min = 1))]
    pub bootstrap_servers: Vec<String>,
    /// SASL and TLS settings.
    #[serde(default, skip_serializing_if = "KafkaNetSpec::is_empty")]
    pub net: KafkaNetSpec,
    /// Topics to read.
    #[schemars(length(min = 1))]
    pub topics: Vec<String>,
    /// Consumer group; defaults to `knative-kafka-source-<uid>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_group: Option<String>,
    /// `earliest` or `latest` (default) for a group without committed offsets.
    #[serde(default)]
    pub initial_offset: InitialOffset,
    /// Delivery spec (retries, dead-letter sink).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
    /// `ordered` (default: per partition) or `unordered`.
    #[serde(default = "default_ordering", skip_serializing_if = "Option::is_none")]
    pub ordering: Option<DeliveryOrder>,
    /// Where events are delivered.
    pub sink: Destination,
    /// Extensions added to every event.
    #[serde(
        default,
        rename = "ceOverrides",
        skip_serializing_if = "Option::is_none"
    )]
    pub ce_overrides: Option<CloudEventOverrides>,
}

/// A value read from a Secret key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretValueFromSource {
    /// The Secret and key holding the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeySelector>,
}

impl SecretValueFromSource {
    fn is_empty(&self) -> bool {
        self.secret_key_ref.is_none()
    }
}

/// SASL authentication.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSaslSpec {
    /// Use SASL.
    #[serde(default)]
    pub enable: bool,
    /// The user name.
    #[serde(default, skip_serializing_if = "SecretValueFromSource::is_empty")]
    pub user: SecretValueFromSource,
    /// The password.
    #[serde(default, skip_serializing_if = "SecretValueFromSource::is_empty")]
    pub password: SecretValueFromSource,
    /// The mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    #[serde(
        default,
        rename = "type",
        skip_serializing_if = "SecretValueFromSource::is_empty"
    )]
    pub mechanism: SecretValueFromSource,
}

/// TLS to the Kafka cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaTlsSpec {
    /// Use TLS.
    #[serde(default)]
    pub enable: bool,
    /// Client certificate (PEM).
    #[serde(default, skip_serializing_if = "SecretValueFromSource::is_empty")]
    pub cert: SecretValueFromSource,
    /// Client key (PEM).
    #[serde(default, skip_serializing_if = "SecretValueFromSource::is_empty")]
    pub key: SecretValueFromSource,
    /// CA certificate (PEM).
    #[serde(default, skip_serializing_if = "SecretValueFromSource::is_empty")]
    pub ca_cert: SecretValueFromSource,
}

/// Network security settings (Knative `KafkaNetSpec`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaNetSpec {
    /// SASL authentication.
    #[serde(default)]
    pub sasl: KafkaSaslSpec,
    /// TLS.
    #[serde(default)]
    pub tls: KafkaTlsSpec,
}

impl KafkaNetSpec {
    fn is_empty(&self) -> bool {
        *self == KafkaNetSpec::default()
    }

    /// The Secret keys this spec reads (only those of the enabled parts), as Knative's
    /// KafkaSource reads them.
    pub fn secret_refs(&self) -> Vec<&SecretKeySelector> {
        let mut out = Vec::new();
        if self.sasl.enable {
            out.extend([&self.sasl.user, &self.sasl.password, &self.sasl.mechanism]);
        }
        if self.tls.enable {
            out.extend([&self.tls.ca_cert, &self.tls.cert, &self.tls.key]);
        }
        out.into_iter()
            .filter_map(|v| v.secret_key_ref.as_ref())
            .collect()
    }

    /// The connection settings, with the material read through `secret` (one key of a Secret
    /// in the source's namespace). As in Knative: SASL and TLS apply only when `enable` is
    /// set; the SASL type defaults to PLAIN; TLS without `caCert` trusts the system's CAs.
    ///
    /// # Errors
    /// What `secret` could not read ([`Error::SecretUnreadable`] with the reader's message), or
    /// a SASL type Ferry's clients do not have ([`Error::InField`] at `spec.net.sasl.type`).
    pub fn resolve<E: fmt::Display>(
        &self,
        secret: &dyn Fn(&SecretKeySelector) -> Result<String, E>,
    ) -> Result<KafkaAuth> {
        let read = |v: &SecretValueFromSource| {
            v.secret_key_ref
                .as_ref()
                .map(secret)
                .transpose()
                .map_err(|e| Error::SecretUnreadable(e.to_string()))
        };
        let sasl = if self.sasl.enable {
            let mechanism = match read(&self.sasl.mechanism)? {
                Some(name) => SaslMechanism::parse(&name).map_err(|e| Error::InField {
                    path: "spec.net.sasl.type",
                    error: Box::new(e),
                })?,
                None => SaslMechanism::Plain,
            };
            Some(SaslAuth {
                mechanism,
                username: Credential::new(read(&self.sasl.user)?.unwrap_or_default()),
                password: Credential::new(read(&self.sasl.password)?.unwrap_or_default()),
            })
        } else {
            None
        };
        let tls = if self.tls.enable {
            Some(TlsAuth {
                ca_cert: read(&self.tls.ca_cert)?.map(Credential::new),
                cert: read(&self.tls.cert)?.map(Credential::new),
                key: read(&self.tls.key)?.map(Credential::new),
            })
        } else {
            None
        };
        Ok(KafkaAuth { sasl, tls })
    }

    /// Complete Secret references, a client certificate with its key, SASL with its user and
    /// password (`at` is `spec.net`).
    fn validate(&self, at: &Path, errs: &mut FieldErrors) {
        for (name, secret) in [
            ("sasl.user", &self.sasl.user),
            ("sasl.password", &self.sasl.password),
            ("sasl.type", &self.sasl.mechanism),
            ("tls.cert", &self.tls.cert),
            ("tls.key", &self.tls.key),
            ("tls.caCert", &self.tls.ca_cert),
        ] {
            if let Some(r) = &secret.secret_key_ref
                && (r.name.is_empty() || r.key.is_empty())
            {
                errs.push(
                    &at.field(name).field("secretKeyRef"),
                    "needs both name and key",
                    "name the Secret and the key inside it",
                );
            }
        }
        if self.tls.enable && self.tls.cert.is_empty() != self.tls.key.is_empty() {
            errs.push(
                &at.field("tls"),
                "has a client certificate without its key, or a key without its certificate",
                "mutual TLS needs both: reference tls.cert and tls.key, or neither",
            );
        }
        if self.sasl.enable && (self.sasl.user.is_empty() || self.sasl.password.is_empty()) {
            errs.push(
                &at.field("sasl"),
                "is enabled without user and password",
                "reference the Secret keys holding user and password",
            );
        }
    }
}

/// Observed state of a KafkaSource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSourceStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub status: Status,
    /// Resolved sink URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink_uri: Option<String>,
    /// CA certificates of the sink.
    #[serde(
        default,
        rename = "sinkCACerts",
        skip_serializing_if = "Option::is_none"
    )]
    pub sink_ca_certs: Option<String>,
    /// OIDC audience of the sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink_audience: Option<String>,
    /// Event types and sources this source emits.
    #[serde(
        default,
        rename = "ceAttributes",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ce_attributes: Vec<CloudEventAttributes>,
    /// Consumers running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumers: Option<i32>,
    /// Label selector of the source's dispatcher pods (for the scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Partitions claimed, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<String>,
}

/// Condition types a KafkaSource reports (the Knative Kafka source's set).
pub mod kafka_source_conditions {
    pub use crate::duck::READY;
    /// The sink resolved to a URL.
    pub const SINK_PROVIDED: &str = "SinkProvided";
    /// The dispatcher runs the source's consumer group.
    pub const DEPLOYED: &str = "Deployed";
    /// The key-type label is valid.
    pub const KEY_TYPE_CORRECT: &str = "KeyTypeCorrect";
    /// The Kafka cluster answered with the given credentials.
    pub const CONNECTION_ESTABLISHED: &str = "ConnectionEstablished";
    /// The group's initial offsets were committed.
    pub const INITIAL_OFFSETS_COMMITTED: &str = "InitialOffsetsCommitted";
}

impl KafkaSource {
    /// How record keys are decoded, from the key-type label (string when absent).
    pub fn key_type(&self) -> KeyType {
        self.key_type_choice().unwrap_or_default()
    }

    fn key_type_choice(&self) -> Result<KeyType, &str> {
        metadata_choice(
            self.metadata.labels.as_ref(),
            KEY_TYPE_LABEL,
            KeyType::parse,
        )
    }
}

impl Validate for KafkaSource {
    fn validate_at(&self, _cx: &crate::validation::Context, path: &Path, errs: &mut FieldErrors) {
        if let Err(kt) = self.key_type_choice() {
            errs.push(
                &path.field("metadata").field("labels").key(KEY_TYPE_LABEL),
                format!("`{kt}` is not a key type"),
                "use string, int, float or byte-array",
            );
        }
        let spec = path.field("spec");
        let s = &self.spec;
        s.validate_reading(&spec, errs);
        s.net.validate(&spec.field("net"), errs);
        if let Some(o) = &s.ce_overrides {
            for key in o.extensions.keys() {
                validate_attribute_name(
                    key,
                    &spec.field("ceOverrides").field("extensions").key(key),
                    errs,
                );
            }
        }
        s.sink.validate(&spec.field("sink"), errs);
        if let Some(d) = &s.delivery {
            d.validate(&spec.field("delivery"), errs);
        }
    }
}

impl KafkaSourceSpec {
    /// What is read, and by whom: consumers, bootstrap servers, topics, consumer group.
    fn validate_reading(&self, spec: &Path, errs: &mut FieldErrors) {
        if let Some(c) = self.consumers
            && c < 1
        {
            errs.push(
                &spec.field("consumers"),
                format!("must be at least 1 (got {c})"),
                "set 1 or more consumers",
            );
        }
        if self.bootstrap_servers.is_empty() {
            errs.push(
                &spec.field("bootstrapServers"),
                "is empty",
                "list the Kafka brokers, e.g. [my-cluster-kafka-bootstrap.kafka:9092]",
            );
        }
        for (i, server) in self.bootstrap_servers.iter().enumerate() {
            let ok = server.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if !ok {
                errs.push(
                    &spec.field("bootstrapServers").index(i),
                    format!("`{server}` is not host:port"),
                    "write each server as host:port",
                );
            }
        }
        if self.topics.is_empty() {
            errs.push(
                &spec.field("topics"),
                "is empty",
                "list at least one topic to read",
            );
        }
        for (i, topic) in self.topics.iter().enumerate() {
            validate_topic_name(topic, &spec.field("topics").index(i), errs);
        }
        if self.consumer_group.as_deref() == Some("") {
            errs.push(
                &spec.field("consumerGroup"),
                "is empty",
                "name the group or remove the field to get the default",
            );
        }
    }
}

/// A Secret's `data`: key → bytes.
pub type SecretData = std::collections::BTreeMap<String, Vec<u8>>;

/// The value of `selector`'s key in the data of Secret `namespace`/`selector.name`, as text.
///
/// # Errors
/// The key is missing, or its value is not UTF-8 (certificates, keys and passwords are text).
pub fn secret_key_value(
    namespace: &str,
    selector: &SecretKeySelector,
    data: &SecretData,
) -> crate::Result<String> {
    let at = || {
        (
            namespace.to_owned(),
            selector.name.clone(),
            selector.key.clone(),
        )
    };
    let bytes = data.get(&selector.key).ok_or_else(|| {
        let (namespace, name, key) = at();
        crate::Error::SecretKeyMissing {
            namespace,
            name,
            key,
        }
    })?;
    String::from_utf8(bytes.clone()).map_err(|_| {
        let (namespace, name, key) = at();
        crate::Error::SecretKeyNotText {
            namespace,
            name,
            key,
        }
    })
}

/// Kafka's topic-name rule: 1–249 characters of `a-zA-Z0-9._-`, not `.` or `..`.
pub(crate) fn validate_topic_name(topic: &str, path: &Path, errs: &mut FieldErrors) {
    let ok = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        errs.push(
            path,
            format!("`{topic}` is not a valid Kafka topic name"),
            "use 1-249 characters of a-z, A-Z, 0-9, '.', '_' and '-'",
        );
    }
}

impl Unsupported for KafkaSource {
    fn unsupported_fields(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        self.spec
            .sink
            .unsupported_fields(&Path::root("spec.sink"), &mut out);
        if let Some(dls) = self
            .spec
            .delivery
            .as_ref()
            .and_then(|d| d.dead_letter_sink.as_ref())
        {
            dls.unsupported_fields(&Path::root("spec.delivery.deadLetterSink"), &mut out);
        }
        out
    }
}
