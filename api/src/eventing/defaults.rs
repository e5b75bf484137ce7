//! Knative's `config-br-defaults`: the class, config and delivery a Broker gets when it sets
//! none. Knative applies them in its defaulting webhook when a Broker is created; Ferry has no
//! webhook, so the operator applies them when it reads a Broker ([`BrokerDefaults::apply`]).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{BROKER_CLASS_ANNOTATION, Broker};
use crate::duck::{DeliverySpec, KReference};
use crate::{Error, Result};

/// The key of the ConfigMap that holds the defaults (YAML).
pub const DEFAULTS_KEY: &str = "default-br-config";

/// The parsed `default-br-config`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrokerDefaults {
    /// Defaults for every namespace without its own entry.
    #[serde(default)]
    pub cluster_default: Option<BrokerDefault>,
    /// Per-namespace defaults; they replace the cluster default for that namespace.
    #[serde(default)]
    pub namespace_defaults: BTreeMap<String, BrokerDefault>,
}

/// One level of defaults (Knative's `ClassAndBrokerConfig`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrokerDefault {
    /// The class of a Broker without the `eventing.knative.dev/broker.class` annotation.
    #[serde(default)]
    pub broker_class: Option<String>,
    /// `spec.config` of a Broker that sets none (`apiVersion`, `kind`, `name`, `namespace`).
    #[serde(flatten)]
    pub config: ConfigRef,
    /// `spec.delivery` of a Broker that sets none.
    #[serde(default)]
    pub delivery: Option<DeliverySpec>,
    /// Per-class config and delivery, used for Brokers of that class before the fields above.
    #[serde(default)]
    pub broker_classes: BTreeMap<String, ClassDefault>,
}

/// Config and delivery defaults for one broker class.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClassDefault {
    /// `spec.config` of a Broker of this class that sets none.
    #[serde(flatten)]
    pub config: ConfigRef,
    /// `spec.delivery` of a Broker of this class that sets none.
    #[serde(default)]
    pub delivery: Option<DeliverySpec>,
}

/// The fields of a config reference as `config-br-defaults` spells them (inline).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigRef {
    /// `v1`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `ConfigMap`.
    #[serde(default)]
    pub kind: Option<String>,
    /// The ConfigMap's name.
    #[serde(default)]
    pub name: Option<String>,
    /// The ConfigMap's namespace.
    #[serde(default)]
    pub namespace: Option<String>,
}

impl ConfigRef {
    fn reference(&self) -> Option<KReference> {
        Some(KReference {
            kind: self.kind.clone()?,
            name: self.name.clone()?,
            namespace: self.namespace.clone(),
            api_version: self.api_version.clone(),
            group: None,
        })
    }
}

impl BrokerDefaults {
    /// Parses the `default-br-config` YAML.
    ///
    /// # Errors
    /// Malformed YAML or an unknown field, named.
    pub fn parse(yaml: &str) -> Result<Self> {
        if yaml.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml::from_str(yaml).map_err(Error::BrokerDefaults)
    }

    /// The defaults that apply in `namespace`: its own entry, else the cluster's.
    fn for_namespace(&self, namespace: &str) -> Option<&BrokerDefault> {
        self.namespace_defaults
            .get(namespace)
            .or(self.cluster_default.as_ref())
    }

    /// The class a Broker in `namespace` without the class annotation gets.
    pub fn class(&self, namespace: &str) -> Option<&str> {
        self.for_namespace(namespace)?.broker_class.as_deref()
    }

    /// `broker` as Knative's defaulting webhook would have stored it: the class annotation,
    /// `spec.config` and `spec.delivery` filled from the defaults where the Broker sets none.
    /// `None` when nothing is defaulted (the Broker is used as it is).
    pub fn apply(&self, broker: &Broker) -> Option<Broker> {
        let namespace = broker.metadata.namespace.as_deref().unwrap_or_default();
        let defaults = self.for_namespace(namespace)?;
        let class = broker.class().or(defaults.broker_class.as_deref());
        let per_class = class.and_then(|c| defaults.broker_classes.get(c));
        let config = per_class
            .and_then(|c| c.config.reference())
            .or_else(|| defaults.config.reference());
        let delivery = per_class
            .and_then(|c| c.delivery.clone())
            .or_else(|| defaults.delivery.clone());
        let set_class = broker.class().is_none() && class.is_some();
        let set_config = broker.spec.config.is_none() && config.is_some();
        let set_delivery = broker.spec.delivery.is_none() && delivery.is_some();
        if !(set_class || set_config || set_delivery) {
            return None;
        }
        let mut out = broker.clone();
        if set_class && let Some(class) = class {
            out.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(BROKER_CLASS_ANNOTATION.to_owned(), class.to_owned());
        }
        if set_config {
            out.spec.config = config;
        }
        if set_delivery {
            out.spec.delivery = delivery;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Knative's documented example, with a per-class entry.
    const KNATIVE: &str = r#"
clusterDefault:
  brokerClass: Ferry
  apiVersion: v1
  kind: ConfigMap
  name: cluster-config
  namespace: knative-eventing
  delivery:
    retry: 10
    backoffPolicy: exponential
    backoffDelay: PT0.2S
namespaceDefaults:
  team-a:
    brokerClass: MTChannelBasedBroker
  team-b:
    brokerClass: Ferry
    brokerClasses:
      Ferry:
        apiVersion: v1
        kind: ConfigMap
        name: ferry-config
        namespace: team-b
        delivery:
          retry: 3
"#;

    fn broker(namespace: &str, yaml: &str) -> Broker {
        let mut b: Broker = serde_yaml::from_str(yaml).expect("broker");
        b.metadata.name = Some("b".into());
        b.metadata.namespace = Some(namespace.into());
        b
    }

    #[test]
    fn defaults_fill_what_a_broker_leaves_unset() {
        let d = BrokerDefaults::parse(KNATIVE).expect("parses");
        let plain = "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {}\nspec: {}";
        // (namespace, broker, class, config name, retry) after defaulting.
        type Row<'a> = (
            &'a str,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            Option<i32>,
        );
        let rows: [Row<'_>; 5] = [
            (
                "default",
                plain,
                Some("Ferry"),
                Some("cluster-config"),
                Some(10),
            ),
            ("team-a", plain, Some("MTChannelBasedBroker"), None, None),
            (
                "team-b",
                plain,
                Some("Ferry"),
                Some("ferry-config"),
                Some(3),
            ),
            (
                "default",
                "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  annotations: {eventing.knative.dev/broker.class: Other}\nspec:\n  delivery: {retry: 1}",
                Some("Other"),
                Some("cluster-config"),
                Some(1),
            ),
            (
                "default",
                "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {}\nspec:\n  config: {apiVersion: v1, kind: ConfigMap, name: mine}",
                Some("Ferry"),
                Some("mine"),
                Some(10),
            ),
        ];
        for (ns, yaml, class, config, retry) in rows {
            let b = broker(ns, yaml);
            let out = d.apply(&b).unwrap_or(b);
            assert_eq!(out.class(), class, "{ns}: {yaml}");
            assert_eq!(
                out.spec.config.as_ref().map(|c| c.name.as_str()),
                config,
                "{ns}: {yaml}"
            );
            assert_eq!(
                out.spec.delivery.as_ref().and_then(|d| d.retry),
                retry,
                "{ns}: {yaml}"
            );
        }
        assert_eq!(d.class("elsewhere"), Some("Ferry"));
        assert_eq!(d.class("team-a"), Some("MTChannelBasedBroker"));
    }

    #[test]
    fn a_broker_with_everything_set_is_used_as_it_is() {
        let d = BrokerDefaults::parse(KNATIVE).expect("parses");
        let b = broker(
            "default",
            "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  annotations: {eventing.knative.dev/broker.class: Ferry}\nspec:\n  config: {kind: ConfigMap, name: c}\n  delivery: {retry: 2}",
        );
        assert_eq!(d.apply(&b), None);
        assert_eq!(BrokerDefaults::default().apply(&b), None);
        assert_eq!(
            BrokerDefaults::parse("  \n").expect("empty"),
            BrokerDefaults::default()
        );
    }

    #[test]
    fn unknown_fields_and_bad_yaml_are_named() {
        let e = BrokerDefaults::parse("clusterDefault:\n  brokerKlass: Ferry\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("brokerKlass"), "{e}");
        let e = BrokerDefaults::parse("clusterDefault: [")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(&format!("{DEFAULTS_KEY}: ")), "{e}");
    }
}
