//! What goes into the data-plane contract: of the declared eventing objects, which are compiled
//! and in what form, and what the compile reads besides them (topics, `config-br-defaults`, the
//! Secrets of KafkaSources' `spec.net`, the revisions a destination may name).
//!
//! The rules, in order:
//! 1. A Broker is taken with `config-br-defaults` applied ([`effective_broker`]; Knative applies
//!    them when a Broker is created, Ferry has no webhook, so at every read).
//! 2. An object being deleted is left out (it leaves the contract first, so its topic or
//!    consumer group can go), and so is one that does not validate or sets a field Ferry does
//!    not act on — checked on the runner's own objects, so nothing left out is copied.
//! 3. Brokers not of the Ferry class are left out; Brokers and KafkaChannels whose topic is not
//!    ready are too.
//! 4. The compile ([`ferry_api::contract::compile`]) reports every other object it leaves out,
//!    and the activation section lists the revisions the egresses deliver to.
//!
//! [`compile`] is the whole step; the runner (the operator) supplies the objects from its caches,
//! resolves references and keeps the results in a [`crate::contract_ledger::Ledger`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ferry_api::contract::{
    self, CompileError, CompileInput, Contract, HttpRoute, ObjectRef, Resolved, broker_topic,
    channel_topic,
};
use ferry_api::duck::KReference;
use ferry_api::eventing::{Broker, BrokerDefaults, Trigger};
use ferry_api::messaging::{KafkaChannel, Subscription};
use ferry_api::serving::Revision;
use ferry_api::sources::{KafkaSource, SecretData};
use ferry_api::validation::{Unsupported, Validate};
use k8s_openapi::api::core::v1::SecretKeySelector;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::{Resource, ResourceExt};

use crate::activation::{RequestTimeouts, RevisionReplicas, endpoint_urls, routed_urls};
use crate::serving::revision_url;
use crate::status::Topic;

/// Secrets by (namespace, name): their data, or why they could not be read (a message for the
/// status of the KafkaSource that needs them).
pub type SecretValues = HashMap<(String, String), Result<SecretData, String>>;

/// The text under `r`'s key of Secret `ns`/`r.name`, as last read into `secrets`.
///
/// # Errors
/// For the object's status: the Secret was not read yet, could not be read, lacks the key, or
/// holds no text there.
pub fn secret_value(
    secrets: &SecretValues,
    ns: &str,
    r: &SecretKeySelector,
) -> ferry_api::Result<String> {
    match secrets.get(&(ns.to_owned(), r.name.clone())) {
        None => Err(ferry_api::Error::SecretUnreadable(format!(
            "Secret {ns}/{} is not read yet",
            r.name
        ))),
        Some(Err(e)) => Err(ferry_api::Error::SecretUnreadable(e.clone())),
        Some(Ok(data)) => ferry_api::sources::secret_key_value(ns, r, data),
    }
}

/// The Secrets (namespace, name) that `sources`' `spec.net` reference: the ones worth keeping.
pub fn referenced_secrets<'a>(
    sources: impl IntoIterator<Item = &'a KafkaSource>,
) -> HashSet<(String, String)> {
    sources
        .into_iter()
        .flat_map(|s| {
            let ns = s.namespace().unwrap_or_default();
            s.spec
                .net
                .secret_refs()
                .into_iter()
                .map(move |r| (ns.clone(), r.name.clone()))
        })
        .collect()
}

/// The contract's name for a Kubernetes object: its kind, namespace and name.
pub fn object_ref<K: Resource<DynamicType = ()>>(o: &K) -> ObjectRef {
    ObjectRef::new(
        &K::kind(&()),
        o.meta().namespace.as_deref().unwrap_or_default(),
        o.meta().name.as_deref().unwrap_or_default(),
    )
}

/// `broker` with `defaults` applied; the same object when they change nothing.
pub fn effective_broker(defaults: &BrokerDefaults, broker: &Arc<Broker>) -> Arc<Broker> {
    defaults
        .apply(broker)
        .map_or_else(|| broker.clone(), Arc::new)
}

/// Eventing objects of each kind the contract carries, shared with the runner's caches.
#[derive(Clone, Debug, Default)]
pub struct Eventing {
    /// Brokers.
    pub brokers: Vec<Arc<Broker>>,
    /// Triggers.
    pub triggers: Vec<Arc<Trigger>>,
    /// KafkaChannels.
    pub channels: Vec<Arc<KafkaChannel>>,
    /// Subscriptions.
    pub subscriptions: Vec<Arc<Subscription>>,
    /// KafkaSources.
    pub sources: Vec<Arc<KafkaSource>>,
}

/// What the compile reads besides the objects.
#[derive(Clone, Copy, Debug)]
pub struct Environment<'a> {
    /// Topic states the Broker and KafkaChannel controllers reported, by topic.
    pub topics: &'a HashMap<String, Topic>,
    /// Knative's `config-br-defaults`.
    pub broker_defaults: &'a BrokerDefaults,
    /// The Secrets KafkaSources' `spec.net` reference.
    pub secrets: &'a SecretValues,
    /// Bootstrap servers of the log Brokers and KafkaChannels use.
    pub bootstrap_servers: &'a str,
    /// Take Brokers without a class (and no default class) as Ferry's.
    pub claim_classless: bool,
}

/// Not being deleted and valid.
fn usable<K: Resource + Validate>(o: &K) -> bool {
    o.meta().deletion_timestamp.is_none() && o.validate().is_ok()
}

/// Usable, and setting nothing Ferry does not act on.
fn supported<K: Resource + Validate + Unsupported>(o: &K) -> bool {
    usable(o) && o.unsupported_fields().is_empty()
}

/// Keeps the objects `keep` accepts (the same `Arc`s: nothing is copied).
fn kept<K>(objects: Vec<Arc<K>>, keep: impl Fn(&K) -> bool) -> Vec<Arc<K>> {
    objects.into_iter().filter(|o| keep(o)).collect()
}

/// Picks what to compile from `declared` (rules 1–3 of the module documentation).
pub fn select(declared: Eventing, env: &Environment<'_>) -> Eventing {
    let topic_ready = |t: &str| matches!(env.topics.get(t), Some(Topic::Ready(_)));
    let brokers = declared
        .brokers
        .iter()
        .map(|b| effective_broker(env.broker_defaults, b))
        .filter(|b| b.is_ferry_class(env.claim_classless) && usable(&**b))
        .filter(|b| {
            topic_ready(&broker_topic(
                &b.namespace().unwrap_or_default(),
                &b.name_any(),
            ))
        })
        .collect();
    let channels = kept(declared.channels, |c| {
        usable(c)
            && topic_ready(&channel_topic(
                &c.namespace().unwrap_or_default(),
                &c.name_any(),
            ))
    });
    Eventing {
        brokers,
        triggers: kept(declared.triggers, supported),
        channels,
        subscriptions: kept(declared.subscriptions, supported),
        sources: kept(declared.sources, supported),
    }
}

/// `objects` as contract references with their `metadata.generation`.
fn generations<K: Resource<DynamicType = ()>>(
    objects: &[Arc<K>],
) -> impl Iterator<Item = (ObjectRef, Option<i64>)> + '_ {
    objects
        .iter()
        .map(|o| (object_ref(&**o), o.meta().generation))
}

/// Every object of `selected` with its `metadata.generation`: the objects the ledger reports on.
pub fn objects(selected: &Eventing) -> Vec<(ObjectRef, Option<i64>)> {
    generations(&selected.brokers)
        .chain(generations(&selected.triggers))
        .chain(generations(&selected.channels))
        .chain(generations(&selected.subscriptions))
        .chain(generations(&selected.sources))
        .collect()
}

/// Revisions as the activation section needs them: their URL, ready endpoints (from
/// `slices`) and container concurrency.
pub fn revision_replicas(
    revisions: &[Arc<Revision>],
    slices: &[Arc<EndpointSlice>],
    cluster_domain: &str,
) -> Vec<RevisionReplicas> {
    revisions
        .iter()
        .map(|revision| {
            let ns = revision.namespace().unwrap_or_default();
            let name = revision.name_any();
            RevisionReplicas {
                url: revision_url(&ns, &name, cluster_domain),
                endpoints: endpoint_urls(slices.iter().map(|s| &**s), &ns, &name),
                revision: format!("{ns}/{name}"),
                container_concurrency: revision.spec.container_concurrency,
                timeouts: RequestTimeouts::of(&revision.spec),
            }
        })
        .collect()
}

/// A compiled contract (generation 0: the ledger numbers it), the objects it left out and why,
/// and every object compiled with its `metadata.generation`.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The contract, at generation 0.
    pub contract: Contract,
    /// Objects left out, and why.
    pub errors: Vec<CompileError>,
    /// Every object selected, with its `metadata.generation`.
    pub objects: Vec<(ObjectRef, Option<i64>)>,
}

/// Selects from `declared`, compiles, adds the Routes served over HTTP (`routes`, from
/// [`crate::serving::http_routes`]) and the activation section: every revision of
/// `revisions` a destination or a route names.
pub fn compile(
    declared: Eventing,
    env: &Environment<'_>,
    resolve: &dyn Fn(&KReference) -> Option<Resolved>,
    revisions: Vec<RevisionReplicas>,
    routes: Vec<HttpRoute>,
) -> Compiled {
    let selected = select(declared, env);
    let secret = |ns: &str, r: &SecretKeySelector| secret_value(env.secrets, ns, r);
    fn refs<K>(objects: &[Arc<K>]) -> Vec<&K> {
        objects.iter().map(|o| &**o).collect()
    }
    let (mut contract, errors) = contract::compile(&CompileInput {
        generation: 0,
        bootstrap_servers: env.bootstrap_servers,
        brokers: &refs(&selected.brokers),
        triggers: &refs(&selected.triggers),
        channels: &refs(&selected.channels),
        subscriptions: &refs(&selected.subscriptions),
        sources: &refs(&selected.sources),
        resolve,
        secret: &secret,
    });
    contract.routes = routes;
    contract.activation = crate::activation::activation(revisions, &routed_urls(&contract));
    Compiled {
        contract,
        errors,
        objects: objects(&selected),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(name: &str, class: Option<&str>) -> Arc<Broker> {
        let mut annotations = serde_json::Map::new();
        if let Some(class) = class {
            annotations.insert("eventing.knative.dev/broker.class".into(), class.into());
        }
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                "metadata": {"name": name, "namespace": "ns", "generation": 3,
                             "annotations": annotations},
                "spec": {},
            }))
            .expect("broker"),
        )
    }

    fn trigger(name: &str, spec: serde_json::Value) -> Arc<Trigger> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
                "metadata": {"name": name, "namespace": "ns", "generation": 1},
                "spec": spec,
            }))
            .expect("trigger"),
        )
    }

    fn ready(topics: &[&str]) -> HashMap<String, Topic> {
        topics
            .iter()
            .map(|t| (t.to_string(), Topic::Ready(t.to_string())))
            .collect()
    }

    #[test]
    fn only_ferry_brokers_with_a_ready_topic_and_usable_objects_are_compiled() {
        let topics = ready(&[&broker_topic("ns", "ours")]);
        let (defaults, secrets) = (BrokerDefaults::default(), SecretValues::default());
        let env = Environment {
            topics: &topics,
            broker_defaults: &defaults,
            secrets: &secrets,
            bootstrap_servers: "log:9092",
            claim_classless: false,
        };
        let subscriber = serde_json::json!({"uri": "http://sink"});
        let mut deleting = (*trigger(
            "deleting",
            serde_json::json!({
                "broker": "ours", "subscriber": subscriber,
            }),
        ))
        .clone();
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        let declared = Eventing {
            brokers: vec![
                broker("ours", Some("Ferry")),
                broker("no-topic", Some("Ferry")),
                broker("theirs", Some("MTChannelBasedBroker")),
                broker("classless", None),
            ],
            triggers: vec![
                trigger(
                    "t",
                    serde_json::json!({"broker": "ours", "subscriber": subscriber}),
                ),
                trigger(
                    "invalid",
                    serde_json::json!({"broker": "", "subscriber": {}}),
                ),
                Arc::new(deleting),
            ],
            ..Eventing::default()
        };
        let selected = select(declared.clone(), &env);
        let names = |o: &[(ObjectRef, Option<i64>)]| -> Vec<String> {
            o.iter()
                .map(|(r, _)| format!("{}/{}", r.kind, r.name))
                .collect()
        };
        assert_eq!(names(&objects(&selected)), ["Broker/ours", "Trigger/t"]);
        assert!(
            Arc::ptr_eq(&selected.triggers[0], &declared.triggers[0]),
            "not copied"
        );
        let classless = select(
            declared.clone(),
            &Environment {
                claim_classless: true,
                topics: &ready(&[&broker_topic("ns", "classless")]),
                ..env
            },
        );
        // Triggers are selected whatever their Broker: the compile reports the missing one.
        assert_eq!(
            names(&objects(&classless)),
            ["Broker/classless", "Trigger/t"]
        );

        let compiled = compile(declared, &env, &|_| None, vec![], vec![]);
        assert_eq!(compiled.contract.generation, 0);
        assert_eq!(names(&compiled.objects), ["Broker/ours", "Trigger/t"]);
        assert_eq!(compiled.errors, vec![]);
        let egresses: Vec<&str> = compiled.contract.resources[0]
            .egresses
            .iter()
            .map(|e| e.reference.name.as_str())
            .collect();
        assert_eq!(egresses, ["t"]);
    }

    #[test]
    fn secrets_are_read_by_key_and_say_why_when_they_cannot_be() {
        let selector = |name: &str, key: &str| SecretKeySelector {
            name: name.into(),
            key: key.into(),
            optional: None,
        };
        let mut secrets = SecretValues::new();
        secrets.insert(
            ("ns".into(), "creds".into()),
            Ok(SecretData::from([("user".into(), b"alice".to_vec())])),
        );
        secrets.insert(
            ("ns".into(), "gone".into()),
            Err("Secret ns/gone not found; create it or fix spec.net".into()),
        );
        assert_eq!(
            secret_value(&secrets, "ns", &selector("creds", "user")).unwrap(),
            "alice"
        );
        let why = |name: &str| {
            secret_value(&secrets, "ns", &selector(name, "user"))
                .unwrap_err()
                .to_string()
        };
        assert!(why("gone").contains("not found"), "{}", why("gone"));
        assert!(why("unread").contains("not read yet"), "{}", why("unread"));
    }
}
