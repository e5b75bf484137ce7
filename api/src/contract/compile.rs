//! Resources → [`Contract`]: the one pure function the operator and `ferry dev` share.
//!
//! Every Broker and KafkaChannel becomes a resource with an ingress and a topic; every
//! KafkaSource a resource without ingress that reads its own topics. Triggers and Subscriptions
//! become egresses of the resource they name. An object that cannot be compiled (its Broker
//! does not exist, its subscriber does not resolve, a duration does not parse) is left out and
//! reported as a [`CompileError`] naming it, so the operator can set `Ready=False` on exactly
//! that object while everything else keeps flowing.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::SecretKeySelector;
use kube::ResourceExt;

use super::names::{
    broker_topic, channel_topic, resolve_destination, source_group, subscription_group,
    trigger_group,
};
use super::{
    Contract, ContractResource, DeliveryPolicy, Egress, Ingress, ObjectRef, Reply, RevisionTarget,
    SourceMapping, Target,
};
use crate::duck::{DeliveryFormat, DeliverySpec, Destination, KReference};
use crate::duration::parse_duration;
use crate::eventing::{Broker, DeliveryOrder, Trigger};
use crate::messaging::{KafkaChannel, Subscription};
use crate::sources::KafkaSource;

/// What a destination's `ref` resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// An addressable's URL (`status.address.url`).
    Url(String),
    /// A Knative Service or Route: its revisions with their traffic percents.
    Revisions(Vec<RevisionTarget>),
}

/// Everything [`compile`] reads.
pub struct CompileInput<'a> {
    /// Generation of the contract to produce.
    pub generation: u64,
    /// Bootstrap servers of the log that Brokers and KafkaChannels use.
    pub bootstrap_servers: &'a str,
    /// Brokers of the Ferry class.
    pub brokers: &'a [&'a Broker],
    /// All Triggers (those naming a Broker not in `brokers` are reported).
    pub triggers: &'a [&'a Trigger],
    /// KafkaChannels.
    pub channels: &'a [&'a KafkaChannel],
    /// Subscriptions (those naming a channel not in `channels` are reported).
    pub subscriptions: &'a [&'a Subscription],
    /// KafkaSources.
    pub sources: &'a [&'a KafkaSource],
    /// Resolves a reference (namespace already defaulted) to an address; `None` when the
    /// referent does not exist or is not addressable yet.
    pub resolve: &'a dyn Fn(&KReference) -> Option<Resolved>,
    /// Reads one key of a Secret in `namespace` (a KafkaSource's `spec.net`); the error says
    /// what is missing.
    pub secret: &'a dyn Fn(&str, &SecretKeySelector) -> crate::Result<String>,
}

/// An object that was left out of the contract, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileError {
    /// The object.
    pub object: ObjectRef,
    /// A CamelCase reason for the object's condition, e.g. `SubscriberNotResolved`.
    pub reason: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

/// The reason of a KafkaSource left out because its `spec.net` Secrets could not be read.
pub const NET_SECRET_NOT_RESOLVED: &str = "NetSecretNotResolved";

/// Compiles the resources into a contract. Objects that cannot be compiled are left out and
/// returned as errors; the contract holds everything else.
pub fn compile(input: &CompileInput<'_>) -> (Contract, Vec<CompileError>) {
    let mut out = Compiled::default();
    compile_brokers(input, &mut out);
    compile_channels(input, &mut out);
    compile_sources(input, &mut out);
    (
        Contract {
            generation: input.generation,
            resources: out.resources,
            // Replicas and routes are the runner's business: the operator or ferry dev adds
            // them.
            activation: Vec::new(),
            routes: Vec::new(),
            tag_header_routing: false,
            tracing: None,
            activators: Vec::new(),
        },
        out.errors,
    )
}

/// What [`compile`] gathers: the contract's resources and the objects left out.
#[derive(Default)]
struct Compiled {
    resources: Vec<ContractResource>,
    errors: Vec<CompileError>,
}

/// Every Broker with its Triggers as egresses; Triggers whose Broker is not there are reported.
fn compile_brokers(input: &CompileInput<'_>, out: &mut Compiled) {
    let Compiled { resources, errors } = out;
    // Triggers by (namespace, broker), in input order: one pass instead of one per Broker.
    let mut by_broker: HashMap<(&str, &str), Vec<&Trigger>> = HashMap::new();
    for &trigger in input.triggers {
        let ns = trigger.metadata.namespace.as_deref().unwrap_or_default();
        by_broker
            .entry((ns, trigger.spec.broker.as_str()))
            .or_default()
            .push(trigger);
    }
    for broker in input.brokers {
        let (ns, name) = (broker.namespace().unwrap_or_default(), broker.name_any());
        let mut resource = log_resource(
            input,
            "Broker",
            &ns,
            &name,
            broker.uid(),
            broker_topic(&ns, &name),
        );
        let key = (
            broker.metadata.namespace.as_deref().unwrap_or_default(),
            broker.metadata.name.as_deref().unwrap_or_default(),
        );
        for trigger in by_broker.remove(&key).unwrap_or_default() {
            let delivery = trigger
                .spec
                .delivery
                .as_ref()
                .or(broker.spec.delivery.as_ref());
            let group = trigger_group(&ns, &trigger.name_any());
            let (filter_attributes, filters) = if trigger.spec.filters.is_empty() {
                (
                    trigger.spec.filter.clone().unwrap_or_default().attributes,
                    Vec::new(),
                )
            } else {
                // Knative: when `filters` is set, the legacy `filter` is ignored.
                (BTreeMap::new(), trigger.spec.filters.clone())
            };
            let shape = EgressShape {
                kind: "Trigger",
                uid: trigger.uid(),
                namespace: &ns,
                name: trigger.name_any(),
                group,
                subscriber: Some(&trigger.spec.subscriber),
                delivery,
                reply: Some(Reply::Resource),
                ordering: trigger.delivery_order(),
                source: None,
            };
            match egress(input, shape) {
                Ok(mut egress) => {
                    egress.filter_attributes = filter_attributes;
                    egress.filters = filters;
                    resource.egresses.push(egress);
                }
                Err(e) => errors.push(e),
            }
        }
        resources.push(resource);
    }
    for trigger in input.triggers {
        let ns = trigger.namespace().unwrap_or_default();
        // Still in the map: no Broker took them.
        let key = (
            trigger.metadata.namespace.as_deref().unwrap_or_default(),
            trigger.spec.broker.as_str(),
        );
        if by_broker.contains_key(&key) {
            errors.push(CompileError {
                object: ObjectRef::new("Trigger", &ns, &trigger.name_any()),
                reason: "BrokerDoesNotExist",
                message: format!(
                    "broker {ns}/{} not found; create it or fix spec.broker",
                    trigger.spec.broker
                ),
            });
        }
    }
}

/// Every KafkaChannel with its Subscriptions as egresses; Subscriptions to a channel that is
/// not there are reported.
fn compile_channels(input: &CompileInput<'_>, out: &mut Compiled) {
    let Compiled { resources, errors } = out;
    for channel in input.channels {
        let (ns, name) = (channel.namespace().unwrap_or_default(), channel.name_any());
        let mut resource = log_resource(
            input,
            "KafkaChannel",
            &ns,
            &name,
            channel.uid(),
            channel_topic(&ns, &name),
        );
        for sub in input
            .subscriptions
            .iter()
            .filter(|s| subscribes_to(s, &ns, &name))
        {
            let reply = match &sub.spec.reply {
                None => Ok(None),
                Some(dest) => resolve_url(input, &ns, dest)
                    .map(|url| Some(Reply::Url(url)))
                    .map_err(|m| {
                        failed(sub_ref(sub), "ReplyNotResolved", format!("spec.reply: {m}"))
                    }),
            };
            let shape = EgressShape {
                kind: "Subscription",
                uid: sub.uid(),
                namespace: &ns,
                name: sub.name_any(),
                group: subscription_group(&ns, &name, &sub.name_any()),
                subscriber: sub.spec.subscriber.as_ref(),
                delivery: sub
                    .spec
                    .delivery
                    .as_ref()
                    .or(channel.spec.delivery.as_ref()),
                reply: None,
                ordering: DeliveryOrder::Ordered,
                source: None,
            };
            match reply.and_then(|reply| egress(input, shape).map(|e| Egress { reply, ..e })) {
                Ok(egress) => resource.egresses.push(egress),
                Err(e) => errors.push(e),
            }
        }
        resources.push(resource);
    }
    for sub in input.subscriptions {
        let ns = sub.namespace().unwrap_or_default();
        let channel = &sub.spec.channel;
        let known = input
            .channels
            .iter()
            .any(|c| subscribes_to(sub, &c.namespace().unwrap_or_default(), &c.name_any()));
        if !known {
            errors.push(CompileError {
                object: sub_ref(sub),
                reason: "ChannelNotFound",
                message: format!(
                    "channel {} {ns}/{} not found; create the KafkaChannel or fix spec.channel",
                    channel.kind.as_deref().unwrap_or("KafkaChannel"),
                    channel.name.as_deref().unwrap_or_default()
                ),
            });
        }
    }
}

/// Every KafkaSource as a resource without ingress that reads its own topics.
fn compile_sources(input: &CompileInput<'_>, out: &mut Compiled) {
    let Compiled { resources, errors } = out;
    for source in input.sources {
        let (ns, name) = (source.namespace().unwrap_or_default(), source.name_any());
        let spec = &source.spec;
        let shape = EgressShape {
            kind: "KafkaSource",
            uid: source.uid(),
            namespace: &ns,
            name: name.clone(),
            group: spec
                .consumer_group
                .clone()
                .unwrap_or_else(|| source_group(&source.uid().unwrap_or_default())),
            subscriber: Some(&spec.sink),
            delivery: spec.delivery.as_ref(),
            reply: None,
            ordering: spec.ordering.unwrap_or(DeliveryOrder::Ordered),
            source: Some(SourceMapping {
                key_type: source.key_type(),
                ce_overrides: spec.ce_overrides.clone().unwrap_or_default().extensions,
            }),
        };
        let auth = match spec.net.resolve(&|r| (input.secret)(&ns, r)) {
            Ok(auth) => auth,
            Err(message) => {
                errors.push(CompileError {
                    object: ObjectRef::new("KafkaSource", &ns, &name),
                    reason: NET_SECRET_NOT_RESOLVED,
                    message: format!("{message}; spec.net cannot be applied"),
                });
                continue;
            }
        };
        match egress(input, shape) {
            Ok(mut egress) => {
                egress.initial_offset = spec.initial_offset;
                resources.push(ContractResource {
                    // The source's uid names its egress; the resource (its topics) gets its own.
                    uid: format!("{}/topics", egress.uid),
                    reference: ObjectRef::new("KafkaSource", &ns, &name),
                    topics: spec.topics.clone(),
                    bootstrap_servers: spec.bootstrap_servers.join(","),
                    auth: Some(auth),
                    ingress: None,
                    egresses: vec![egress],
                });
            }
            Err(e) => errors.push(e),
        }
    }
}

fn log_resource(
    input: &CompileInput<'_>,
    kind: &str,
    ns: &str,
    name: &str,
    uid: Option<String>,
    topic: String,
) -> ContractResource {
    ContractResource {
        uid: uid.unwrap_or_else(|| format!("{kind}/{ns}/{name}")),
        reference: ObjectRef::new(kind, ns, name),
        topics: vec![topic],
        bootstrap_servers: input.bootstrap_servers.to_owned(),
        auth: None,
        ingress: Some(Ingress {
            path: format!("/{ns}/{name}"),
        }),
        egresses: Vec::new(),
    }
}

fn subscribes_to(sub: &Subscription, ns: &str, name: &str) -> bool {
    let channel = &sub.spec.channel;
    let kind_ok = channel.kind.as_deref().is_none_or(|k| k == "KafkaChannel");
    sub.namespace().unwrap_or_default() == ns && kind_ok && channel.name.as_deref() == Some(name)
}

fn sub_ref(sub: &Subscription) -> ObjectRef {
    ObjectRef::new(
        "Subscription",
        &sub.namespace().unwrap_or_default(),
        &sub.name_any(),
    )
}

fn failed(object: ObjectRef, reason: &'static str, message: String) -> CompileError {
    CompileError {
        object,
        reason,
        message,
    }
}

/// The parts of an egress that differ between Triggers, Subscriptions and KafkaSources.
struct EgressShape<'a> {
    kind: &'static str,
    uid: Option<String>,
    namespace: &'a str,
    name: String,
    group: String,
    subscriber: Option<&'a Destination>,
    delivery: Option<&'a DeliverySpec>,
    reply: Option<Reply>,
    ordering: DeliveryOrder,
    source: Option<SourceMapping>,
}

fn egress(input: &CompileInput<'_>, shape: EgressShape<'_>) -> Result<Egress, CompileError> {
    let object = ObjectRef::new(shape.kind, shape.namespace, &shape.name);
    let field = if shape.kind == "KafkaSource" {
        "spec.sink"
    } else {
        "spec.subscriber"
    };
    let subscriber = shape.subscriber.ok_or_else(|| {
        failed(
            object.clone(),
            "SubscriberNotResolved",
            format!("{field} is missing; set it"),
        )
    })?;
    let destination = resolve_target(input, shape.namespace, subscriber).map_err(|m| {
        failed(
            object.clone(),
            "SubscriberNotResolved",
            format!("{field}: {m}"),
        )
    })?;
    let delivery = delivery_policy(input, shape.namespace, shape.delivery)
        .map_err(|(reason, m)| failed(object.clone(), reason, m))?;
    Ok(Egress {
        uid: shape.uid.unwrap_or_else(|| format!("{object}")),
        reference: object,
        consumer_group: shape.group,
        destination,
        filter_attributes: BTreeMap::new(),
        filters: Vec::new(),
        delivery,
        reply: shape.reply,
        ordering: shape.ordering,
        initial_offset: Default::default(),
        source: shape.source,
    })
}

/// Resolves a destination with the compile input's resolver ([`resolve_destination`]).
fn resolve_target(
    input: &CompileInput<'_>,
    namespace: &str,
    dest: &Destination,
) -> crate::Result<Target> {
    resolve_destination(namespace, dest, input.resolve)
}

/// Like [`resolve_target`] for destinations that must be one URL (replies, dead-letter sinks):
/// a traffic split there picks no revision, so its first 100% or largest target is used.
fn resolve_url(
    input: &CompileInput<'_>,
    namespace: &str,
    dest: &Destination,
) -> crate::Result<String> {
    match resolve_target(input, namespace, dest)? {
        Target::Url(url) => Ok(url),
        Target::Revisions(revisions) => revisions
            .into_iter()
            .max_by_key(|r| r.percent)
            .map(|r| r.url)
            .ok_or(crate::Error::NoRevisions),
    }
}

fn delivery_policy(
    input: &CompileInput<'_>,
    namespace: &str,
    spec: Option<&DeliverySpec>,
) -> Result<DeliveryPolicy, (&'static str, String)> {
    let mut policy = DeliveryPolicy::default();
    let Some(spec) = spec else { return Ok(policy) };
    let ms = |field: &str, value: &Option<String>| -> Result<Option<u64>, (&'static str, String)> {
        value
            .as_deref()
            .map(|text| {
                parse_duration(text)
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                    .map_err(|e| ("InvalidDelivery", format!("spec.delivery.{field}: {e}")))
            })
            .transpose()
    };
    policy.retry = spec.retry.map_or(0, |r| u32::try_from(r).unwrap_or(0));
    policy.backoff_policy = spec.backoff_policy.unwrap_or(policy.backoff_policy);
    policy.backoff_delay_ms =
        ms("backoffDelay", &spec.backoff_delay)?.unwrap_or(policy.backoff_delay_ms);
    policy.backoff_max_ms = ms("backoffMax", &spec.backoff_max)?;
    policy.timeout_ms = ms("timeout", &spec.timeout)?
        .unwrap_or(policy.timeout_ms)
        .max(1);
    policy.retry_after_max_ms = ms("retryAfterMax", &spec.retry_after_max)?;
    policy.format = spec.format.unwrap_or(DeliveryFormat::Binary);
    if let Some(dls) = &spec.dead_letter_sink {
        let url = resolve_url(input, namespace, dls).map_err(|m| {
            (
                "DeadLetterSinkNotResolved",
                format!("spec.delivery.deadLetterSink: {m}"),
            )
        })?;
        policy.dead_letter_sink = Some(url);
    }
    Ok(policy)
}
