//! Any Ferry kind, parsed from an untyped manifest: the entry point for tools that read YAML
//! (`ferry dev`, `ferry validate`) and for code that handles every kind alike.

use serde_json::Value;
use thiserror::Error;

use crate::eventing::{Broker, Trigger};
use crate::messaging::{KafkaChannel, Subscription};
use crate::serving::{Configuration, KnativeService, Revision, Route};
use crate::sources::KafkaSource;
use crate::validation::{Context, FieldError, FieldErrors, Path, Unsupported, Validate};

/// One resource of any kind Ferry serves.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // parsed once per manifest; boxing buys nothing
pub enum Resource {
    /// `eventing.knative.dev/v1` Broker.
    Broker(Broker),
    /// `eventing.knative.dev/v1` Trigger.
    Trigger(Trigger),
    /// `messaging.knative.dev/v1` Subscription.
    Subscription(Subscription),
    /// `messaging.knative.dev/v1beta1` KafkaChannel.
    KafkaChannel(KafkaChannel),
    /// `sources.knative.dev/v1` or `v1beta1` KafkaSource (one schema; see [`KAFKA_SOURCE_VERSIONS`]).
    KafkaSource(KafkaSource),
    /// `serving.knative.dev/v1` Service.
    Service(KnativeService),
    /// `serving.knative.dev/v1` Configuration.
    Configuration(Configuration),
    /// `serving.knative.dev/v1` Revision.
    Revision(Revision),
    /// `serving.knative.dev/v1` Route.
    Route(Route),
}

/// The `apiVersion`/`kind` pairs Ferry understands.
pub const KINDS: &[(&str, &str)] = &[
    ("eventing.knative.dev/v1", "Broker"),
    ("eventing.knative.dev/v1", "Trigger"),
    ("messaging.knative.dev/v1", "Subscription"),
    ("messaging.knative.dev/v1beta1", "KafkaChannel"),
    ("sources.knative.dev/v1", "KafkaSource"),
    ("sources.knative.dev/v1beta1", "KafkaSource"),
    ("serving.knative.dev/v1", "Service"),
    ("serving.knative.dev/v1", "Configuration"),
    ("serving.knative.dev/v1", "Revision"),
    ("serving.knative.dev/v1", "Route"),
];

pub use crate::sources::KAFKA_SOURCE_VERSIONS;

/// Why a manifest could not be turned into a [`Resource`].
#[derive(Debug, Error)]
pub enum ParseError {
    /// `apiVersion`/`kind` missing or not one Ferry serves.
    #[error(
        "{api_version}/{kind} is not a kind Ferry serves; it serves {}",
        kinds_list()
    )]
    UnknownKind {
        /// The manifest's apiVersion.
        api_version: String,
        /// The manifest's kind.
        kind: String,
    },
    /// The fields do not fit the kind's CRD schema, as the API server with strict field
    /// validation would refuse them: unknown fields, wrong types, missing required fields.
    #[error("{kind} {name}: {errors}")]
    Fields {
        /// The kind.
        kind: String,
        /// `metadata.name`, or `<unnamed>`.
        name: String,
        /// Every problem, each with its path.
        errors: FieldErrors,
    },
    /// The fields fit the schema but not the type (an unknown enum value, a malformed value).
    #[error("{kind} {name}: {source}")]
    Schema {
        /// The kind.
        kind: String,
        /// `metadata.name`, or `<unnamed>`.
        name: String,
        /// serde's description, which names the field.
        source: serde_json::Error,
    },
}

fn kinds_list() -> String {
    KINDS
        .iter()
        .map(|(g, k)| format!("{g}/{k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Resource {
    /// Parses an untyped manifest by its `apiVersion` and `kind`.
    ///
    /// # Errors
    /// [`ParseError::UnknownKind`] for other kinds, [`ParseError::Fields`] with every field
    /// that does not fit the kind's CRD schema, [`ParseError::Schema`] when a value does not fit
    /// the type.
    pub fn from_value(mut value: Value) -> Result<Self, ParseError> {
        // As the API server does: `status` is not part of what is applied (the status
        // subresource ignores it), and nulls in objects are pruned (`spec: null`, or a `spec:`
        // holding only a comment, reads as no spec).
        prune_nulls(&mut value);
        // A missing spec reads as `{}`, as the CRDs default it; kinds with required spec fields
        // then report the missing field by name.
        if let Some(obj) = value.as_object_mut() {
            obj.remove("status");
            obj.entry("spec")
                .or_insert_with(|| Value::Object(Default::default()));
        }
        let api_version = value["apiVersion"].as_str().unwrap_or("").to_owned();
        let kind = value["kind"].as_str().unwrap_or("").to_owned();
        let name = value["metadata"]["name"]
            .as_str()
            .unwrap_or("<unnamed>")
            .to_owned();
        if let Some(schema) = crate::structural::schema_for(&api_version, &kind) {
            let mut errors = FieldErrors::default();
            crate::structural::check_object(schema, &value, &mut errors);
            if !errors.is_empty() {
                return Err(ParseError::Fields { kind, name, errors });
            }
        }
        let schema = |source| ParseError::Schema {
            kind: kind.clone(),
            name: name.clone(),
            source,
        };
        let parsed = match (api_version.as_str(), kind.as_str()) {
            ("eventing.knative.dev/v1", "Broker") => {
                Resource::Broker(serde_json::from_value(value).map_err(schema)?)
            }
            ("eventing.knative.dev/v1", "Trigger") => {
                Resource::Trigger(serde_json::from_value(value).map_err(schema)?)
            }
            ("messaging.knative.dev/v1", "Subscription") => {
                Resource::Subscription(serde_json::from_value(value).map_err(schema)?)
            }
            ("messaging.knative.dev/v1beta1", "KafkaChannel") => {
                Resource::KafkaChannel(serde_json::from_value(value).map_err(schema)?)
            }
            ("sources.knative.dev/v1" | "sources.knative.dev/v1beta1", "KafkaSource") => {
                Resource::KafkaSource(serde_json::from_value(value).map_err(schema)?)
            }
            ("serving.knative.dev/v1", "Service") => {
                Resource::Service(serde_json::from_value(value).map_err(schema)?)
            }
            ("serving.knative.dev/v1", "Configuration") => {
                Resource::Configuration(serde_json::from_value(value).map_err(schema)?)
            }
            ("serving.knative.dev/v1", "Revision") => {
                Resource::Revision(serde_json::from_value(value).map_err(schema)?)
            }
            ("serving.knative.dev/v1", "Route") => {
                Resource::Route(serde_json::from_value(value).map_err(schema)?)
            }
            _ => return Err(ParseError::UnknownKind { api_version, kind }),
        };
        Ok(parsed)
    }

    /// The kind, e.g. `Trigger`.
    pub fn kind(&self) -> &'static str {
        match self {
            Resource::Broker(_) => "Broker",
            Resource::Trigger(_) => "Trigger",
            Resource::Subscription(_) => "Subscription",
            Resource::KafkaChannel(_) => "KafkaChannel",
            Resource::KafkaSource(_) => "KafkaSource",
            Resource::Service(_) => "Service",
            Resource::Configuration(_) => "Configuration",
            Resource::Revision(_) => "Revision",
            Resource::Route(_) => "Route",
        }
    }

    fn meta(&self) -> &kube::core::ObjectMeta {
        match self {
            Resource::Broker(r) => &r.metadata,
            Resource::Trigger(r) => &r.metadata,
            Resource::Subscription(r) => &r.metadata,
            Resource::KafkaChannel(r) => &r.metadata,
            Resource::KafkaSource(r) => &r.metadata,
            Resource::Service(r) => &r.metadata,
            Resource::Configuration(r) => &r.metadata,
            Resource::Revision(r) => &r.metadata,
            Resource::Route(r) => &r.metadata,
        }
    }

    /// The resource's `metadata`, to set what tools assign (a uid, a default namespace).
    pub fn meta_mut(&mut self) -> &mut kube::core::ObjectMeta {
        match self {
            Resource::Broker(r) => &mut r.metadata,
            Resource::Trigger(r) => &mut r.metadata,
            Resource::Subscription(r) => &mut r.metadata,
            Resource::KafkaChannel(r) => &mut r.metadata,
            Resource::KafkaSource(r) => &mut r.metadata,
            Resource::Service(r) => &mut r.metadata,
            Resource::Configuration(r) => &mut r.metadata,
            Resource::Revision(r) => &mut r.metadata,
            Resource::Route(r) => &mut r.metadata,
        }
    }

    /// `true` once the resource is being deleted (`metadata.deletionTimestamp` is set).
    pub fn is_deleting(&self) -> bool {
        self.meta().deletion_timestamp.is_some()
    }

    /// `metadata.name` (empty when missing; [`Validate`] reports that).
    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or("")
    }

    /// `metadata.namespace`, if set.
    pub fn namespace(&self) -> Option<&str> {
        self.meta().namespace.as_deref()
    }

    /// Sets `metadata.namespace` when the manifest left it out (kubectl's rule for namespaced
    /// kinds).
    pub fn default_namespace(&mut self, namespace: &str) {
        let meta = self.meta_mut();
        if meta.namespace.as_deref().unwrap_or("").is_empty() {
            meta.namespace = Some(namespace.to_owned());
        }
    }

    /// Validates the resource, `metadata.name` included.
    ///
    /// # Errors
    /// Every invalid field, each with its path and a fix.
    pub fn validate(&self) -> Result<(), FieldErrors> {
        self.validate_in(&Context::default())
    }

    /// Checks the resource with the cluster settings in `cx` (Knative's `config-features`
    /// flags).
    ///
    /// # Errors
    /// Every invalid field, each with its path and a fix.
    pub fn validate_in(&self, cx: &Context) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::default();
        if self.name().is_empty() {
            errs.push(
                &Path::root("metadata.name"),
                "is missing",
                "give the resource a name",
            );
        } else if !is_dns_subdomain(self.name()) {
            errs.push(
                &Path::root("metadata.name"),
                format!("`{}` is not a valid name", self.name()),
                "use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
            );
        }
        let root = Path::root("");
        match self {
            Resource::Broker(r) => r.validate_at(cx, &root, &mut errs),
            Resource::Trigger(r) => r.validate_at(cx, &root, &mut errs),
            Resource::Subscription(r) => r.validate_at(cx, &root, &mut errs),
            Resource::KafkaChannel(r) => r.validate_at(cx, &root, &mut errs),
            Resource::KafkaSource(r) => r.validate_at(cx, &root, &mut errs),
            Resource::Service(r) => r.validate_at(cx, &root, &mut errs),
            Resource::Configuration(r) => r.validate_at(cx, &root, &mut errs),
            Resource::Revision(r) => r.validate_at(cx, &root, &mut errs),
            Resource::Route(r) => r.validate_at(cx, &root, &mut errs),
        }
        errs.into_result()
    }

    /// Things worth pointing out that do not make the manifest invalid: autoscaling annotations
    /// Knative does not read (Knative ignores them too, so a typo goes unnoticed there).
    pub fn warnings(&self) -> Vec<FieldError> {
        use crate::serving::autoscaling::unknown_keys;
        let template = Path::root("spec.template.metadata.annotations");
        match self {
            Resource::Service(r) => unknown_keys(&r.spec.template.metadata.annotations, &template),
            Resource::Configuration(r) => {
                unknown_keys(&r.spec.template.metadata.annotations, &template)
            }
            Resource::Revision(r) => unknown_keys(
                &r.metadata.annotations.clone().unwrap_or_default(),
                &Path::root("metadata.annotations"),
            ),
            _ => Vec::new(),
        }
    }

    /// Fields that are set but that Ferry does not act on.
    pub fn unsupported_fields(&self) -> Vec<FieldError> {
        match self {
            Resource::Trigger(r) => r.unsupported_fields(),
            Resource::Subscription(r) => r.unsupported_fields(),
            Resource::KafkaSource(r) => r.unsupported_fields(),
            Resource::Service(r) => r.unsupported_fields(),
            Resource::Configuration(r) => r.unsupported_fields(),
            Resource::Revision(r) => r.unsupported_fields(),
            Resource::Broker(r) => r.unsupported_fields(),
            Resource::KafkaChannel(_) | Resource::Route(_) => Vec::new(),
        }
    }

    /// The resource as JSON, as it would be sent to the API server.
    pub fn to_value(&self) -> Value {
        let v = match self {
            Resource::Broker(r) => serde_json::to_value(r),
            Resource::Trigger(r) => serde_json::to_value(r),
            Resource::Subscription(r) => serde_json::to_value(r),
            Resource::KafkaChannel(r) => serde_json::to_value(r),
            Resource::KafkaSource(r) => serde_json::to_value(r),
            Resource::Service(r) => serde_json::to_value(r),
            Resource::Configuration(r) => serde_json::to_value(r),
            Resource::Revision(r) => serde_json::to_value(r),
            Resource::Route(r) => serde_json::to_value(r),
        };
        // Serializing plain data structs with string keys cannot fail.
        v.unwrap_or(Value::Null)
    }
}

/// Removes every `null` member of every object, recursively, as the API server prunes nulls of
/// fields that are not `nullable`. Nulls inside lists stay (the schema check reports them).
pub fn prune_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(prune_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(prune_nulls),
        _ => {}
    }
}

/// RFC 1123 subdomain: what Kubernetes accepts as an object name.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kind_lists_the_known_ones() {
        let err =
            Resource::from_value(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap"}))
                .expect_err("ConfigMap is not ours")
                .to_string();
        assert!(
            err.starts_with("v1/ConfigMap is not a kind Ferry serves"),
            "{err}"
        );
        assert!(err.contains("serving.knative.dev/v1/Service"), "{err}");
    }

    #[test]
    fn nulls_and_status_are_pruned() {
        let r = Resource::from_value(serde_json::json!({
            "apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
            "metadata": {"name": "b", "annotations": null},
            "spec": null,
            "status": {"annotations": null, "conditions": "not even a list"}
        }))
        .expect("null spec and any status are accepted");
        assert!(r.validate().is_ok());
        assert_eq!(r.to_value()["spec"], serde_json::json!({}));
    }

    #[test]
    fn kafka_source_parses_at_v1_and_v1beta1() {
        for version in KAFKA_SOURCE_VERSIONS {
            let r = Resource::from_value(serde_json::json!({
                "apiVersion": format!("sources.knative.dev/{version}"), "kind": "KafkaSource",
                "metadata": {"name": "k"},
                "spec": {"bootstrapServers": ["b:9092"], "topics": ["t"], "sink": {"uri": "http://x"}}
            }))
            .expect("parses");
            assert_eq!(r.kind(), "KafkaSource");
            assert!(r.validate().is_ok(), "{version}");
        }
    }

    #[test]
    fn names_and_namespaces() {
        let mut r = Resource::from_value(serde_json::json!({
            "apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": {"name": "Bad_Name"}
        }))
        .expect("parses");
        assert_eq!(r.namespace(), None);
        r.default_namespace("default");
        assert_eq!(r.namespace(), Some("default"));
        let err = r.validate().expect_err("bad name").to_string();
        assert!(
            err.contains("metadata.name: `Bad_Name` is not a valid name"),
            "{err}"
        );
    }

    #[test]
    fn unsupported_fields_are_listed_and_fields_knative_refuses_are_errors() {
        let r = Resource::from_value(serde_json::json!({
            "apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"template": {
                "metadata": {"annotations": {"autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev"}},
                "spec": {
                "hostNetwork": true,
                "containers": [{"image": "x", "stdin": true}]
            }}}
        }))
        .expect("parses");
        let paths: Vec<_> = r.unsupported_fields().into_iter().map(|e| e.path).collect();
        assert_eq!(
            paths,
            ["spec.template.metadata.annotations[\"autoscaling.knative.dev/class\"]"]
        );
        let errors = r.validate().expect_err("refused as Knative refuses them");
        let paths: Vec<_> = errors.errors().iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.template.spec.containers[0].stdin",
                "spec.template.spec.hostNetwork"
            ]
        );
        let cx = Context {
            features: crate::serving::features::Features::from_data(
                &[(
                    "kubernetes.podspec-hostnetwork".to_owned(),
                    "enabled".to_owned(),
                )]
                .into(),
            )
            .0,
        };
        let errors = r.validate_in(&cx).expect_err("stdin is never allowed");
        assert_eq!(errors.errors().len(), 1, "{errors}");
        let b = Resource::from_value(serde_json::json!({
            "apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": {"name": "b"},
            "spec": {"config": {"apiVersion": "eventing.knative.dev/v1alpha1",
                                "kind": "RabbitmqBrokerConfig", "name": "c"}}
        }))
        .expect("parses");
        assert!(b.validate().is_ok());
        assert_eq!(b.unsupported_fields()[0].path, "spec.config");
        let t = Resource::from_value(serde_json::json!({
            "apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": {"name": "t"},
            "spec": {"broker": "default", "subscriber": {"uri": "http://x", "audience": "a"}}
        }))
        .expect("parses");
        let paths: Vec<_> = t.unsupported_fields().into_iter().map(|e| e.path).collect();
        assert_eq!(paths, ["spec.subscriber.audience"]);
    }
}
