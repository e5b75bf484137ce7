//! The status of every eventing kind, as pure functions of the object and what the operator
//! observed about it ([`Observed`]).
//!
//! Knative's `ConditionSet` rule decides `Ready`: it is `True` when every dependent condition is
//! `True`, `False` (with that condition's reason and message) when one is `False`, and
//! `Unknown` otherwise. A spec that fails validation, or sets a field Ferry does not act on, is
//! reported on `Ready` with the field's path and is left out of the contract, so it never
//! half-works.

use ferry_api::contract::{CompileError, Egress, Reply, Target};
use ferry_api::duck::{
    AddressStatus, Addressable, Condition, ConditionStatus, DeliveryStatus, READY, Status,
};
use ferry_api::eventing::{Broker, BrokerStatus, Trigger, TriggerStatus};
use ferry_api::messaging::{
    KafkaChannel, KafkaChannelStatus, PhysicalSubscription, SubscriberStatus, Subscription,
    SubscriptionStatus,
};
use ferry_api::resource::Resource;
use ferry_api::sources::{KafkaSource, KafkaSourceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

/// Reason on `Ready` for a spec that fails validation.
pub const INVALID_SPEC: &str = "InvalidSpec";
/// Reason on `Ready` for a field Ferry does not act on.
pub const UNSUPPORTED_FIELD: &str = "UnsupportedField";

/// Where an object stands in the data plane.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DataPlane {
    /// Not compiled yet (the contract has not been written since the object changed).
    #[default]
    Pending,
    /// Left out of the contract, and why.
    Failed(CompileError),
    /// In the contract; `applied` once every dispatcher reports a generation that carries it.
    Compiled {
        /// `true` when the dispatchers run it.
        applied: bool,
    },
}

/// State of a topic the operator manages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Topic {
    /// Not created yet.
    #[default]
    Pending,
    /// Exists, with this name.
    Ready(String),
    /// Cannot be created: what the log said.
    Failed(String),
}

/// What the operator observed about one object: everything its status depends on besides the
/// object itself.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Its place in the contract.
    pub data_plane: DataPlane,
    /// Its compiled egress (Triggers, Subscriptions, KafkaSources), when in the contract.
    pub egress: Option<Egress>,
    /// Its topic (Brokers, KafkaChannels).
    pub topic: Topic,
    /// Resolved address of the subscriber or sink, for `subscriberUri` / `sinkUri`.
    pub subscriber_uri: Option<String>,
    /// Resolved reply URL (Subscriptions).
    pub reply_uri: Option<String>,
}

/// Problems with the spec itself: validation errors first, then unsupported fields. `None`
/// when the spec is fine.
pub fn spec_problem(resource: &Resource) -> Option<(&'static str, String)> {
    if let Err(errors) = resource.validate() {
        return Some((INVALID_SPEC, errors.to_string().replace('\n', "; ")));
    }
    let unsupported = resource.unsupported_fields();
    if unsupported.is_empty() {
        return None;
    }
    let fields: Vec<String> = unsupported.iter().map(ToString::to_string).collect();
    Some((UNSUPPORTED_FIELD, fields.join("; ")))
}

/// Condition builder with Knative's `ConditionSet` semantics for `Ready`.
struct Conditions {
    list: Vec<Condition>,
}

impl Conditions {
    fn new() -> Self {
        Conditions { list: Vec::new() }
    }

    fn set(&mut self, type_: &str, status: ConditionStatus, reason: &str, message: &str) {
        let reason = (!reason.is_empty()).then_some(reason);
        let message = (!message.is_empty()).then_some(message);
        self.list
            .push(Condition::new(type_, status, reason, message));
    }

    fn ok(&mut self, type_: &str) {
        self.set(type_, ConditionStatus::True, "", "");
    }

    fn fail(&mut self, type_: &str, reason: &str, message: &str) {
        self.set(type_, ConditionStatus::False, reason, message);
    }

    fn unknown(&mut self, type_: &str, reason: &str, message: &str) {
        self.set(type_, ConditionStatus::Unknown, reason, message);
    }

    /// Writes the conditions and `Ready` into `status`, keeping transition times of unchanged
    /// conditions, and drops conditions this set no longer reports.
    fn apply(self, status: &mut Status, generation: Option<i64>, now: &Time) {
        let ready = self
            .list
            .iter()
            .find(|c| c.status == ConditionStatus::False)
            .or_else(|| {
                self.list
                    .iter()
                    .find(|c| c.status == ConditionStatus::Unknown)
            })
            .map(|c| Condition::new(READY, c.status, c.reason.as_deref(), c.message.as_deref()))
            .unwrap_or_else(|| Condition::new(READY, ConditionStatus::True, None, None));
        let keep: Vec<String> = self
            .list
            .iter()
            .map(|c| c.type_.clone())
            .chain([READY.to_owned()])
            .collect();
        status.conditions.retain(|c| keep.contains(&c.type_));
        for c in self.list {
            status.set_condition(c, now);
        }
        status.set_condition(ready, now);
        status.observed_generation = generation;
    }
}

/// A `Ready`-only status for a spec that cannot be acted on.
fn spec_failure(status: &mut Status, generation: Option<i64>, problem: (&str, String), now: &Time) {
    status.conditions.retain(|c| c.type_ == READY);
    status.set_condition(
        Condition::new(
            READY,
            ConditionStatus::False,
            Some(problem.0),
            Some(&problem.1),
        ),
        now,
    );
    status.observed_generation = generation;
}

/// Sets the data-plane condition `type_` from `dp`: `True` once applied, `Unknown` while
/// waiting, `False` with the compile error's reason.
fn data_plane_condition(c: &mut Conditions, type_: &str, dp: &DataPlane) {
    match dp {
        DataPlane::Compiled { applied: true } => c.ok(type_),
        DataPlane::Compiled { applied: false } => c.unknown(
            type_,
            "DispatcherNotReady",
            "waiting for the dispatchers to apply the contract that carries it",
        ),
        DataPlane::Pending => {
            c.unknown(type_, "Compiling", "waiting for the contract to be written")
        }
        DataPlane::Failed(e) => c.fail(type_, e.reason, &e.message),
    }
}

fn topic_condition(c: &mut Conditions, type_: &str, topic: &Topic) {
    match topic {
        Topic::Ready(_) => c.ok(type_),
        Topic::Pending => c.unknown(type_, "TopicNotCreated", "creating the topic"),
        Topic::Failed(m) => c.fail(type_, "TopicCreationFailed", m),
    }
}

fn address(url: String) -> AddressStatus {
    let a = Addressable {
        name: Some("http".to_owned()),
        url: Some(url),
        ..Default::default()
    };
    AddressStatus {
        address: Some(a.clone()),
        addresses: vec![a],
    }
}

fn dead_letter(egress: Option<&Egress>) -> DeliveryStatus {
    DeliveryStatus {
        dead_letter_sink_uri: egress.and_then(|e| e.delivery.dead_letter_sink.clone()),
        ..Default::default()
    }
}

fn destination_uri(obs: &Observed) -> Option<String> {
    obs.subscriber_uri.clone().or_else(|| match &obs.egress {
        Some(Egress {
            destination: Target::Url(url),
            ..
        }) => Some(url.clone()),
        _ => None,
    })
}

/// The ingress URL of a Broker or KafkaChannel: `<base>/<namespace>/<name>`.
pub fn ingress_url(base: &str, namespace: &str, name: &str) -> String {
    format!("{}/{namespace}/{name}", base.trim_end_matches('/'))
}

/// A Broker's status: its topic, its place in the contract, and its address.
pub fn broker_status(
    broker: &Broker,
    obs: &Observed,
    ingress_base: &str,
    now: &Time,
) -> BrokerStatus {
    use ferry_api::eventing::broker_conditions as bc;
    let mut status = broker.status.clone().unwrap_or_default();
    let generation = broker.metadata.generation;
    if let Some(problem) = spec_problem(&Resource::Broker(broker.clone())) {
        // Left out of the contract: nothing serves the old address, and references resolve
        // through `status.address`, so it must not outlive the spec failure.
        status.address = AddressStatus::default();
        spec_failure(&mut status.status, generation, problem, now);
        return status;
    }
    let mut c = Conditions::new();
    c.ok(bc::CONFIG_PARSED);
    topic_condition(&mut c, bc::TOPIC_READY, &obs.topic);
    data_plane_condition(
        &mut c,
        bc::CONFIG_MAP_UPDATED,
        &compiled_only(&obs.data_plane),
    );
    data_plane_condition(&mut c, bc::DATA_PLANE_AVAILABLE, &obs.data_plane);
    let addressable = matches!(obs.topic, Topic::Ready(_))
        && matches!(obs.data_plane, DataPlane::Compiled { applied: true });
    if addressable {
        c.ok(bc::ADDRESSABLE);
        status.address = address(ingress_url(
            ingress_base,
            &broker.namespace().unwrap_or_default(),
            &broker.name_any(),
        ));
    } else {
        c.unknown(
            bc::ADDRESSABLE,
            "NoAddress",
            "the broker gets its address once its topic exists and the dispatchers serve it",
        );
        status.address = AddressStatus::default();
    }
    if broker
        .spec
        .delivery
        .as_ref()
        .is_some_and(|d| d.dead_letter_sink.is_some())
    {
        match &obs.data_plane {
            DataPlane::Failed(e) if e.reason == "DeadLetterSinkNotResolved" => {
                c.fail(bc::DEAD_LETTER_SINK_RESOLVED, e.reason, &e.message)
            }
            _ => c.ok(bc::DEAD_LETTER_SINK_RESOLVED),
        }
    }
    c.apply(&mut status.status, generation, now);
    status
}

/// `Compiled` counts as done for "the ConfigMap was written" conditions.
fn compiled_only(dp: &DataPlane) -> DataPlane {
    match dp {
        DataPlane::Compiled { .. } => DataPlane::Compiled { applied: true },
        other => other.clone(),
    }
}

/// `true` for compile errors of the delivery spec, which [`ferry_api::contract::compile`]
/// reads only after the subscriber (or sink) resolved.
fn resolved_before_delivery(e: &CompileError) -> bool {
    matches!(e.reason, "DeadLetterSinkNotResolved" | "InvalidDelivery")
}

/// What a Trigger knows of its Broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokerState {
    /// No Broker of that name in the Trigger's namespace.
    Missing,
    /// The Broker exists but belongs to another class.
    OtherClass,
    /// The Broker exists; `true` when it is Ready.
    Present(bool),
}

/// A Trigger's status: Knative's BrokerReady, SubscriberResolved, DependencyReady,
/// SubscriptionReady (and DeadLetterSinkResolved when a dead-letter sink is set).
pub fn trigger_status(
    trigger: &Trigger,
    broker: BrokerState,
    obs: &Observed,
    now: &Time,
) -> TriggerStatus {
    use ferry_api::eventing::trigger_conditions as tc;
    let mut status = trigger.status.clone().unwrap_or_default();
    let generation = trigger.metadata.generation;
    if let Some(problem) = spec_problem(&Resource::Trigger(trigger.clone())) {
        spec_failure(&mut status.status, generation, problem, now);
        return status;
    }
    let mut c = Conditions::new();
    let name = &trigger.spec.broker;
    match broker {
        BrokerState::Missing => c.fail(
            tc::BROKER_READY,
            "BrokerDoesNotExist",
            &format!("Broker {name} does not exist in this namespace; create it or fix spec.broker"),
        ),
        BrokerState::OtherClass => c.fail(
            tc::BROKER_READY,
            "BrokerNotFerry",
            &format!("Broker {name} is not of class Ferry, so Ferry does not deliver its events; set the annotation eventing.knative.dev/broker.class: Ferry"),
        ),
        BrokerState::Present(false) => c.unknown(tc::BROKER_READY, "BrokerNotReady", &format!("Broker {name} is not Ready yet")),
        BrokerState::Present(true) => c.ok(tc::BROKER_READY),
    }
    let failed = match &obs.data_plane {
        DataPlane::Failed(e) => Some(e),
        _ => None,
    };
    match failed {
        Some(e) if e.reason == "SubscriberNotResolved" => {
            c.fail(tc::SUBSCRIBER_RESOLVED, e.reason, &e.message)
        }
        // The delivery spec is compiled after the subscriber resolved.
        Some(e) if resolved_before_delivery(e) => c.ok(tc::SUBSCRIBER_RESOLVED),
        _ if matches!(obs.data_plane, DataPlane::Compiled { .. }) => c.ok(tc::SUBSCRIBER_RESOLVED),
        _ => c.unknown(
            tc::SUBSCRIBER_RESOLVED,
            "Resolving",
            "resolving the subscriber",
        ),
    }
    // Knative reports the dead-letter sink the Trigger delivers with: its own, or the Broker's.
    let has_dls = trigger
        .spec
        .delivery
        .as_ref()
        .is_some_and(|d| d.dead_letter_sink.is_some())
        || obs
            .egress
            .as_ref()
            .is_some_and(|e| e.delivery.dead_letter_sink.is_some())
        || failed.is_some_and(|e| e.reason == "DeadLetterSinkNotResolved");
    if has_dls {
        match failed {
            Some(e) if e.reason == "DeadLetterSinkNotResolved" => {
                c.fail(tc::DEAD_LETTER_SINK_RESOLVED, e.reason, &e.message)
            }
            _ if matches!(obs.data_plane, DataPlane::Compiled { .. }) => {
                c.ok(tc::DEAD_LETTER_SINK_RESOLVED)
            }
            _ => c.unknown(
                tc::DEAD_LETTER_SINK_RESOLVED,
                "Resolving",
                "resolving the dead-letter sink",
            ),
        }
    }
    c.ok(tc::DEPENDENCY_READY);
    // A broker problem is already reported on BrokerReady; SubscriptionReady says whether the
    // dispatchers deliver this Trigger.
    let dp = match failed {
        Some(e) if e.reason == "BrokerDoesNotExist" => DataPlane::Pending,
        _ => obs.data_plane.clone(),
    };
    data_plane_condition(&mut c, tc::SUBSCRIPTION_READY, &dp);
    status.subscriber_uri = destination_uri(obs);
    status.delivery = dead_letter(obs.egress.as_ref());
    c.apply(&mut status.status, generation, now);
    status
}

/// A KafkaChannel's status, with `status.subscribers` for its Subscriptions (by uid) as
/// Knative's channel reports them.
pub fn channel_status(
    channel: &KafkaChannel,
    obs: &Observed,
    subscribers: &[(&Subscription, DataPlane)],
    ingress_base: &str,
    now: &Time,
) -> KafkaChannelStatus {
    use ferry_api::messaging::kafka_channel_conditions as kc;
    let mut status = channel.status.clone().unwrap_or_default();
    let generation = channel.metadata.generation;
    if let Some(problem) = spec_problem(&Resource::KafkaChannel(channel.clone())) {
        status.address = AddressStatus::default();
        spec_failure(&mut status.status, generation, problem, now);
        return status;
    }
    let mut c = Conditions::new();
    c.ok(kc::CONFIGURATION_READY);
    topic_condition(&mut c, kc::TOPIC_READY, &obs.topic);
    data_plane_condition(&mut c, kc::CHANNEL_SERVICE_READY, &obs.data_plane);
    if matches!(obs.topic, Topic::Ready(_))
        && matches!(obs.data_plane, DataPlane::Compiled { applied: true })
    {
        c.ok(kc::ADDRESSABLE);
        status.address = address(ingress_url(
            ingress_base,
            &channel.namespace().unwrap_or_default(),
            &channel.name_any(),
        ));
    } else {
        c.unknown(
            kc::ADDRESSABLE,
            "NoAddress",
            "the channel gets its address once its topic exists and the dispatchers serve it",
        );
        status.address = AddressStatus::default();
    }
    status.subscribers = subscribers
        .iter()
        .map(|(sub, dp)| {
            let (ready, message) = match dp {
                DataPlane::Compiled { applied: true } => (ConditionStatus::True, None),
                DataPlane::Failed(e) => (ConditionStatus::False, Some(e.message.clone())),
                _ => (
                    ConditionStatus::Unknown,
                    Some("waiting for the dispatchers".to_owned()),
                ),
            };
            SubscriberStatus {
                uid: sub.uid(),
                observed_generation: sub.metadata.generation,
                ready,
                message,
            }
        })
        .collect();
    status.subscribers.sort_by(|a, b| a.uid.cmp(&b.uid));
    c.apply(&mut status.status, generation, now);
    status
}

/// What a Subscription knows of its channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelState {
    /// No such KafkaChannel.
    Missing,
    /// The channel exists; `true` when it is Ready.
    Present(bool),
}

/// A Subscription's status: ReferencesResolved, AddedToChannel, ChannelReady.
pub fn subscription_status(
    sub: &Subscription,
    channel: ChannelState,
    obs: &Observed,
    now: &Time,
) -> SubscriptionStatus {
    use ferry_api::messaging::subscription_conditions as sc;
    let mut status = sub.status.clone().unwrap_or_default();
    let generation = sub.metadata.generation;
    if let Some(problem) = spec_problem(&Resource::Subscription(sub.clone())) {
        spec_failure(&mut status.status, generation, problem, now);
        return status;
    }
    let mut c = Conditions::new();
    let failed = match &obs.data_plane {
        DataPlane::Failed(e) => Some(e),
        _ => None,
    };
    match channel {
        ChannelState::Missing => c.fail(
            sc::CHANNEL_READY,
            "ChannelNotFound",
            &format!(
                "KafkaChannel {} does not exist in this namespace; create it or fix spec.channel",
                sub.spec.channel.name.as_deref().unwrap_or_default()
            ),
        ),
        ChannelState::Present(false) => c.unknown(
            sc::CHANNEL_READY,
            "ChannelNotReady",
            "the channel is not Ready yet",
        ),
        ChannelState::Present(true) => c.ok(sc::CHANNEL_READY),
    }
    match failed {
        Some(e) if e.reason != "ChannelNotFound" => {
            c.fail(sc::REFERENCES_RESOLVED, e.reason, &e.message)
        }
        _ if matches!(obs.data_plane, DataPlane::Compiled { .. }) => c.ok(sc::REFERENCES_RESOLVED),
        _ => c.unknown(
            sc::REFERENCES_RESOLVED,
            "Resolving",
            "resolving subscriber, reply and dead-letter sink",
        ),
    }
    let dp = match failed {
        Some(e) if e.reason == "ChannelNotFound" => DataPlane::Pending,
        Some(_) => DataPlane::Pending,
        None => obs.data_plane.clone(),
    };
    data_plane_condition(&mut c, sc::ADDED_TO_CHANNEL, &dp);
    status.physical_subscription = PhysicalSubscription {
        subscriber_uri: destination_uri(obs),
        reply_uri: obs.reply_uri.clone().or_else(|| {
            match obs.egress.as_ref().and_then(|e| e.reply.as_ref()) {
                Some(Reply::Url(u)) => Some(u.clone()),
                _ => None,
            }
        }),
        dead_letter_sink_uri: obs
            .egress
            .as_ref()
            .and_then(|e| e.delivery.dead_letter_sink.clone()),
    };
    c.apply(&mut status.status, generation, now);
    status
}

/// A KafkaSource's status: SinkProvided, ConnectionEstablished (its topics exist),
/// InitialOffsetsCommitted and Deployed (the dispatchers consume it).
pub fn source_status(
    source: &KafkaSource,
    obs: &Observed,
    topics: &Topic,
    now: &Time,
) -> KafkaSourceStatus {
    use ferry_api::sources::kafka_source_conditions as kc;
    let mut status = source.status.clone().unwrap_or_default();
    let generation = source.metadata.generation;
    if let Some(problem) = spec_problem(&Resource::KafkaSource(source.clone())) {
        spec_failure(&mut status.status, generation, problem, now);
        return status;
    }
    let mut c = Conditions::new();
    match &obs.data_plane {
        DataPlane::Failed(e) if resolved_before_delivery(e) => c.ok(kc::SINK_PROVIDED),
        DataPlane::Failed(e) => c.fail(kc::SINK_PROVIDED, e.reason, &e.message),
        DataPlane::Compiled { .. } => c.ok(kc::SINK_PROVIDED),
        DataPlane::Pending => c.unknown(kc::SINK_PROVIDED, "Resolving", "resolving the sink"),
    }
    match topics {
        Topic::Ready(_) => c.ok(kc::CONNECTION_ESTABLISHED),
        Topic::Pending => c.unknown(
            kc::CONNECTION_ESTABLISHED,
            "Connecting",
            "looking up the topics",
        ),
        Topic::Failed(m) => c.fail(kc::CONNECTION_ESTABLISHED, "TopicsNotFound", m),
    }
    let dp = match &obs.data_plane {
        DataPlane::Failed(_) => DataPlane::Pending,
        other => other.clone(),
    };
    data_plane_condition(&mut c, kc::INITIAL_OFFSETS_COMMITTED, &dp);
    match &obs.data_plane {
        // The sink resolved but the delivery spec did not compile: nothing is deployed, and
        // `Deployed` says why (Knative's MarkNotDeployed).
        DataPlane::Failed(e) if resolved_before_delivery(e) => {
            c.fail(kc::DEPLOYED, e.reason, &e.message)
        }
        _ => data_plane_condition(&mut c, kc::DEPLOYED, &dp),
    }
    status.sink_uri = destination_uri(obs);
    c.apply(&mut status.status, generation, now);
    status
}

#[cfg(test)]
mod tests {
    //! Table-driven: each row is a name, the object (as Knative JSON), what was observed, and
    //! the expected `Ready` plus every other condition as `Type=Status[:Reason]`.

    use super::*;
    use ConditionStatus::{False as F, True as T, Unknown as U};
    use ferry_api::contract::{DeliveryPolicy, ObjectRef, RevisionTarget};
    use k8s_openapi::jiff::Timestamp;
    use serde_json::{Value, json};
    use std::collections::BTreeMap;

    const NOW: i64 = 1_700_000_000;
    const INGRESS: &str = "http://ingress.ferry.svc/";

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("valid timestamp"))
    }

    fn failed(reason: &'static str, message: &str) -> DataPlane {
        DataPlane::Failed(CompileError {
            object: ObjectRef::default(),
            reason,
            message: message.to_owned(),
        })
    }

    const APPLIED: DataPlane = DataPlane::Compiled { applied: true };
    const WRITTEN: DataPlane = DataPlane::Compiled { applied: false };

    fn obs(data_plane: DataPlane, topic: Topic) -> Observed {
        Observed {
            data_plane,
            topic,
            ..Observed::default()
        }
    }

    fn topic() -> Topic {
        Topic::Ready("t".to_owned())
    }

    /// An egress delivering to `destination`, with a resolved dead-letter sink and reply URL.
    fn egress(destination: Target, dls: Option<&str>, reply: Option<&str>) -> Egress {
        Egress {
            uid: "egress-uid".to_owned(),
            reference: ObjectRef::default(),
            consumer_group: "group".to_owned(),
            destination,
            filter_attributes: BTreeMap::new(),
            filters: Vec::new(),
            delivery: DeliveryPolicy {
                dead_letter_sink: dls.map(str::to_owned),
                ..DeliveryPolicy::default()
            },
            reply: reply.map(|u| Reply::Url(u.to_owned())),
            ordering: Default::default(),
            initial_offset: Default::default(),
            source: None,
        }
    }

    fn url(u: &str) -> Target {
        Target::Url(u.to_owned())
    }

    /// A Knative object of `api_version`/`kind` named `ns/name`, generation 3, with `spec` and an
    /// optional prior `status`.
    fn object<K: serde::de::DeserializeOwned>(
        api_version: &str,
        kind: &str,
        name: &str,
        spec: Value,
        status: Option<Value>,
    ) -> K {
        let mut v = json!({
            "apiVersion": api_version, "kind": kind,
            "metadata": {"name": name, "namespace": "ns", "generation": 3, "uid": format!("uid-{name}")},
            "spec": spec,
        });
        if let Some(status) = status {
            v["status"] = status;
        }
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{kind} {name}: {e}"))
    }

    /// Every condition as `Type=Status`, with `:Reason` when the status is not `True`.
    fn rendered(status: &Status) -> Vec<String> {
        status
            .conditions
            .iter()
            .filter(|c| c.type_ != READY)
            .map(|c| match (&c.reason, c.status) {
                (Some(r), s) if s != T => format!("{}={s:?}:{r}", c.type_),
                (_, s) => format!("{}={s:?}", c.type_),
            })
            .collect()
    }

    /// Checks `Ready` (status, reason, and that its message contains `message`), the other
    /// conditions exactly, their transition times (all `NOW` on a fresh object), and
    /// `observedGeneration`.
    fn check(
        row: &str,
        status: &Status,
        ready: (ConditionStatus, Option<&str>),
        message: &str,
        conditions: &[&str],
    ) {
        let r = status
            .condition(READY)
            .unwrap_or_else(|| panic!("{row}: no Ready"));
        assert_eq!((r.status, r.reason.as_deref()), ready, "{row}: Ready {r:?}");
        let got = r.message.as_deref().unwrap_or("");
        assert!(
            got.contains(message),
            "{row}: Ready message {got:?} lacks {message:?}"
        );
        if ready.0 == T {
            assert_eq!(r.message, None, "{row}: a True Ready has no message");
        }
        let mut want: Vec<String> = conditions.iter().map(|c| (*c).to_owned()).collect();
        want.sort();
        assert_eq!(rendered(status), want, "{row}: conditions");
        for c in &status.conditions {
            assert_eq!(
                c.last_transition_time,
                Some(at(NOW)),
                "{row}: {} time",
                c.type_
            );
        }
        assert_eq!(
            status.observed_generation,
            Some(3),
            "{row}: observedGeneration"
        );
    }

    fn address_url(a: &AddressStatus) -> Option<&str> {
        a.address.as_ref().and_then(|a| a.url.as_deref())
    }

    // ---------------------------------------------------------------------------------------
    // Broker

    fn broker(spec: Value, status: Option<Value>) -> Broker {
        object("eventing.knative.dev/v1", "Broker", "orders", spec, status)
    }

    fn dls_spec() -> Value {
        json!({"delivery": {"deadLetterSink": {"uri": "http://dls.ns.svc"}}})
    }

    #[test]
    fn broker_rows() {
        struct Row {
            name: &'static str,
            spec: Value,
            prior: Option<Value>,
            obs: Observed,
            ingress: &'static str,
            ready: (ConditionStatus, Option<&'static str>),
            message: &'static str,
            conditions: &'static [&'static str],
            url: Option<&'static str>,
        }
        let rows = [
            Row {
                name: "topic pending",
                spec: json!({}),
                prior: None,
                obs: obs(DataPlane::Pending, Topic::Pending),
                ingress: INGRESS,
                ready: (U, Some("TopicNotCreated")),
                message: "creating the topic",
                conditions: &[
                    "ConfigParsed=True",
                    "TopicReady=Unknown:TopicNotCreated",
                    "ConfigMapUpdated=Unknown:Compiling",
                    "DataPlaneAvailable=Unknown:Compiling",
                    "Addressable=Unknown:NoAddress",
                ],
                url: None,
            },
            Row {
                name: "topic failed",
                spec: json!({}),
                prior: None,
                obs: obs(
                    APPLIED,
                    Topic::Failed("replication factor 3 exceeds the 1 available broker".into()),
                ),
                ingress: INGRESS,
                ready: (F, Some("TopicCreationFailed")),
                message: "replication factor 3 exceeds the 1 available broker",
                conditions: &[
                    "ConfigParsed=True",
                    "TopicReady=False:TopicCreationFailed",
                    "ConfigMapUpdated=True",
                    "DataPlaneAvailable=True",
                    "Addressable=Unknown:NoAddress",
                ],
                url: None,
            },
            Row {
                name: "compiled, not applied by the dispatchers",
                spec: json!({}),
                prior: None,
                obs: obs(WRITTEN, topic()),
                ingress: INGRESS,
                ready: (U, Some("DispatcherNotReady")),
                message: "waiting for the dispatchers",
                conditions: &[
                    "ConfigParsed=True",
                    "TopicReady=True",
                    "ConfigMapUpdated=True",
                    "DataPlaneAvailable=Unknown:DispatcherNotReady",
                    "Addressable=Unknown:NoAddress",
                ],
                url: None,
            },
            Row {
                name: "applied, topic ready, ingress base with trailing slash",
                spec: json!({"config": {"apiVersion": "v1", "kind": "ConfigMap", "name": "kafka-broker-config"}}),
                prior: None,
                obs: obs(APPLIED, topic()),
                ingress: "http://ingress.ferry.svc/",
                ready: (T, None),
                message: "",
                conditions: &[
                    "ConfigParsed=True",
                    "TopicReady=True",
                    "ConfigMapUpdated=True",
                    "DataPlaneAvailable=True",
                    "Addressable=True",
                ],
                url: Some("http://ingress.ferry.svc/ns/orders"),
            },
            Row {
                name: "applied, ingress base without trailing slash",
                spec: json!({}),
                prior: None,
                obs: obs(APPLIED, topic()),
                ingress: "http://ingress.ferry.svc:8080",
                ready: (T, None),
                message: "",
                conditions: &[
                    "ConfigParsed=True",
                    "TopicReady=True",
                    "ConfigMapUpdated=True",
                    "DataPlaneAvailable=True",
                    "Addressable=True",
                ],
                url: Some("http://ingress.ferry.svc:8080/ns/orders"),
            },
            Row {
                name: "applied but topic gone: no address",
                spec: json!({}),
                prior: Some(json!({"address": {"url": "http://ingress.ferry.svc/ns/orders"}})),
                obs: obs(APPLIED, Topic::Pending),
                ingress: INGRESS,
                ready: (U, Some("TopicNotCreated")),
                message: "",
                conditions: &[
                    "ConfigParsed=True",
                    "TopicReady=Unknown:TopicNotCreated",
                    "ConfigMapUpdated=True",
                    "DataPlaneAvailable=True",
                    "Addressable=Unknown:NoAddress",
                ],
                url: None,
            },
            Row {
                name: "spec.config is a Secret: InvalidSpec, address withdrawn",
                spec: json!({"config": {"apiVersion": "v1", "kind": "Secret", "name": "creds"}}),
                prior: Some(json!({
                    "address": {"url": "http://ingress.ferry.svc/ns/orders"},
                    "conditions": [{"type": "TopicReady", "status": "True"}],
                })),
                obs: obs(APPLIED, topic()),
                ingress: INGRESS,
                ready: (F, Some(INVALID_SPEC)),
                message: "spec.config: refers to v1 Secret, but Ferry reads broker settings from a ConfigMap",
                conditions: &[],
                url: None,
            },
            Row {
                name: "dead-letter sink configured",
                spec: dls_spec(),
                prior: None,
                obs: obs(APPLIED, topic()),
                ingress: INGRESS,
                ready: (T, None),
                message: "",
                conditions: &[
                    "ConfigParsed=True",
                    "TopicReady=True",
                    "ConfigMapUpdated=True",
                    "DataPlaneAvailable=True",
                    "Addressable=True",
                    "DeadLetterSinkResolved=True",
                ],
                url: Some("http://ingress.ferry.svc/ns/orders"),
            },
        ];
        for row in rows {
            let b = broker(row.spec, row.prior);
            let s = broker_status(&b, &row.obs, row.ingress, &at(NOW));
            check(row.name, &s.status, row.ready, row.message, row.conditions);
            assert_eq!(address_url(&s.address), row.url, "{}: address", row.name);
            assert_eq!(
                s.address.addresses.len(),
                usize::from(row.url.is_some()),
                "{}: addresses",
                row.name
            );
        }
    }

    #[test]
    fn transition_times_move_only_when_a_status_changes() {
        let b = broker(json!({}), None);
        let first = broker_status(
            &b,
            &obs(DataPlane::Pending, Topic::Pending),
            INGRESS,
            &at(10),
        );
        let time = |s: &BrokerStatus, t: &str| {
            s.status
                .condition(t)
                .and_then(|c| c.last_transition_time.clone())
        };

        // Same statuses, later `now`: every time is kept.
        let mut b = b;
        b.status = Some(first.clone());
        let again = broker_status(
            &b,
            &obs(DataPlane::Pending, Topic::Pending),
            INGRESS,
            &at(20),
        );
        assert_eq!(again.status.conditions, first.status.conditions);

        // Ready stays Unknown with another reason: its time is kept, its reason is not.
        b.status = Some(again);
        let waiting = broker_status(&b, &obs(WRITTEN, topic()), INGRESS, &at(30));
        let ready = waiting.status.condition(READY).expect("ready");
        assert_eq!(
            (ready.status, ready.reason.as_deref()),
            (U, Some("DispatcherNotReady"))
        );
        assert_eq!(ready.last_transition_time, Some(at(10)));
        assert_eq!(time(&waiting, "TopicReady"), Some(at(30)), "Unknown → True");
        assert_eq!(time(&waiting, "ConfigMapUpdated"), Some(at(30)));
        assert_eq!(
            time(&waiting, "DataPlaneAvailable"),
            Some(at(10)),
            "still Unknown"
        );
        assert_eq!(time(&waiting, "ConfigParsed"), Some(at(10)), "still True");

        // Ready becomes True: stamped now; unchanged conditions keep their times.
        b.status = Some(waiting);
        let ready = broker_status(&b, &obs(APPLIED, topic()), INGRESS, &at(40));
        assert_eq!(time(&ready, READY), Some(at(40)));
        assert_eq!(time(&ready, "DataPlaneAvailable"), Some(at(40)));
        assert_eq!(time(&ready, "Addressable"), Some(at(40)));
        assert_eq!(time(&ready, "TopicReady"), Some(at(30)));
        assert_eq!(time(&ready, "ConfigParsed"), Some(at(10)));
        assert!(ready.status.is_ready());
    }

    #[test]
    fn conditions_no_longer_reported_are_dropped() {
        // A dead-letter sink removed from the spec takes its condition along.
        let mut b = broker(dls_spec(), None);
        let with = broker_status(&b, &obs(APPLIED, topic()), INGRESS, &at(10));
        assert!(with.status.condition("DeadLetterSinkResolved").is_some());
        b.spec.delivery = None;
        b.status = Some(with);
        let without = broker_status(&b, &obs(APPLIED, topic()), INGRESS, &at(20));
        assert_eq!(without.status.condition("DeadLetterSinkResolved"), None);
        assert_eq!(
            without.status.conditions.len(),
            6,
            "{:?}",
            without.status.conditions
        );

        // A spec failure keeps only Ready; a fixed spec brings the set back, stamped anew.
        let mut bad = b.clone();
        bad.status = Some(without);
        bad.spec.config =
            serde_json::from_value(json!({"kind": "Secret", "name": "x", "apiVersion": "v1"})).ok();
        let failed = broker_status(&bad, &obs(APPLIED, topic()), INGRESS, &at(30));
        let types: Vec<_> = failed
            .status
            .conditions
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(types, [READY]);
        bad.spec.config = None;
        bad.status = Some(failed);
        let fixed = broker_status(&bad, &obs(APPLIED, topic()), INGRESS, &at(40));
        assert!(fixed.status.is_ready());
        assert_eq!(fixed.status.conditions.len(), 6);
        assert!(
            fixed
                .status
                .conditions
                .iter()
                .all(|c| c.last_transition_time == Some(at(40)))
        );
    }

    #[test]
    fn observed_generation_follows_metadata() {
        let mut b = broker(json!({}), None);
        b.metadata.generation = Some(9);
        let s = broker_status(&b, &obs(APPLIED, topic()), INGRESS, &at(NOW));
        assert_eq!(s.status.observed_generation, Some(9));
        // Also on the spec-failure path.
        b.spec.config =
            serde_json::from_value(json!({"kind": "Secret", "name": "x", "apiVersion": "v1"})).ok();
        b.metadata.generation = Some(10);
        let s = broker_status(&b, &obs(APPLIED, topic()), INGRESS, &at(NOW));
        assert_eq!(s.status.observed_generation, Some(10));
    }

    #[test]
    fn ingress_urls() {
        for (base, want) in [
            ("http://in", "http://in/ns/b"),
            ("http://in/", "http://in/ns/b"),
            ("http://in//", "http://in/ns/b"),
            ("http://in/prefix/", "http://in/prefix/ns/b"),
        ] {
            assert_eq!(ingress_url(base, "ns", "b"), want, "{base}");
        }
    }

    // ---------------------------------------------------------------------------------------
    // Trigger

    fn trigger(spec: Value) -> Trigger {
        object("eventing.knative.dev/v1", "Trigger", "on-order", spec, None)
    }

    fn subscriber() -> Value {
        json!({"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "cart"}})
    }

    #[test]
    fn trigger_rows() {
        struct Row {
            name: &'static str,
            spec: Value,
            broker: BrokerState,
            obs: Observed,
            ready: (ConditionStatus, Option<&'static str>),
            message: &'static str,
            conditions: &'static [&'static str],
            subscriber_uri: Option<&'static str>,
            dead_letter_sink_uri: Option<&'static str>,
        }
        let plain = json!({"broker": "orders", "subscriber": subscriber()});
        let with_dls = json!({
            "broker": "orders", "subscriber": subscriber(),
            "delivery": {"deadLetterSink": {"uri": "http://dls.ns.svc"}},
        });
        let resolved = |dp: DataPlane, dls: Option<&str>| Observed {
            data_plane: dp,
            subscriber_uri: Some("http://cart.ns.svc".into()),
            egress: Some(egress(url("http://cart-00001.ns.svc"), dls, None)),
            ..Observed::default()
        };
        let rows = [
            Row {
                name: "broker missing",
                spec: plain.clone(),
                broker: BrokerState::Missing,
                obs: obs(
                    failed("BrokerDoesNotExist", "broker ns/orders not found"),
                    Topic::Pending,
                ),
                ready: (F, Some("BrokerDoesNotExist")),
                message: "Broker orders does not exist",
                conditions: &[
                    "BrokerReady=False:BrokerDoesNotExist",
                    "SubscriberResolved=Unknown:Resolving",
                    "DependencyReady=True",
                    "SubscriptionReady=Unknown:Compiling",
                ],
                subscriber_uri: None,
                dead_letter_sink_uri: None,
            },
            Row {
                name: "broker of another class",
                spec: plain.clone(),
                broker: BrokerState::OtherClass,
                obs: obs(
                    failed("BrokerDoesNotExist", "broker ns/orders not found"),
                    Topic::Pending,
                ),
                ready: (F, Some("BrokerNotFerry")),
                message: "eventing.knative.dev/broker.class: Ferry",
                conditions: &[
                    "BrokerReady=False:BrokerNotFerry",
                    "SubscriberResolved=Unknown:Resolving",
                    "DependencyReady=True",
                    "SubscriptionReady=Unknown:Compiling",
                ],
                subscriber_uri: None,
                dead_letter_sink_uri: None,
            },
            Row {
                name: "broker not ready",
                spec: plain.clone(),
                broker: BrokerState::Present(false),
                obs: resolved(APPLIED, None),
                ready: (U, Some("BrokerNotReady")),
                message: "Broker orders is not Ready",
                conditions: &[
                    "BrokerReady=Unknown:BrokerNotReady",
                    "SubscriberResolved=True",
                    "DependencyReady=True",
                    "SubscriptionReady=True",
                ],
                subscriber_uri: Some("http://cart.ns.svc"),
                dead_letter_sink_uri: None,
            },
            Row {
                name: "subscriber not resolved",
                spec: plain.clone(),
                broker: BrokerState::Present(true),
                obs: obs(
                    failed(
                        "SubscriberNotResolved",
                        "spec.subscriber: Service ns/cart not found",
                    ),
                    Topic::Pending,
                ),
                ready: (F, Some("SubscriberNotResolved")),
                message: "spec.subscriber: Service ns/cart not found",
                conditions: &[
                    "BrokerReady=True",
                    "SubscriberResolved=False:SubscriberNotResolved",
                    "DependencyReady=True",
                    "SubscriptionReady=False:SubscriberNotResolved",
                ],
                subscriber_uri: None,
                dead_letter_sink_uri: None,
            },
            Row {
                name: "compiled, not applied",
                spec: plain.clone(),
                broker: BrokerState::Present(true),
                obs: resolved(WRITTEN, None),
                ready: (U, Some("DispatcherNotReady")),
                message: "waiting for the dispatchers",
                conditions: &[
                    "BrokerReady=True",
                    "SubscriberResolved=True",
                    "DependencyReady=True",
                    "SubscriptionReady=Unknown:DispatcherNotReady",
                ],
                subscriber_uri: Some("http://cart.ns.svc"),
                dead_letter_sink_uri: None,
            },
            Row {
                name: "applied: subscriberUri from the observed address",
                spec: plain.clone(),
                broker: BrokerState::Present(true),
                obs: resolved(APPLIED, None),
                ready: (T, None),
                message: "",
                conditions: &[
                    "BrokerReady=True",
                    "SubscriberResolved=True",
                    "DependencyReady=True",
                    "SubscriptionReady=True",
                ],
                subscriber_uri: Some("http://cart.ns.svc"),
                dead_letter_sink_uri: None,
            },
            Row {
                name: "applied: subscriberUri from the egress URL",
                spec: json!({"broker": "orders", "subscriber": {"uri": "http://hook.example"}}),
                broker: BrokerState::Present(true),
                obs: Observed {
                    data_plane: APPLIED,
                    egress: Some(egress(url("http://hook.example"), None, None)),
                    ..Observed::default()
                },
                ready: (T, None),
                message: "",
                conditions: &[
                    "BrokerReady=True",
                    "SubscriberResolved=True",
                    "DependencyReady=True",
                    "SubscriptionReady=True",
                ],
                subscriber_uri: Some("http://hook.example"),
                dead_letter_sink_uri: None,
            },
            Row {
                name: "applied: a traffic split has no single subscriberUri",
                spec: plain.clone(),
                broker: BrokerState::Present(true),
                obs: Observed {
                    data_plane: APPLIED,
                    egress: Some(egress(
                        Target::Revisions(vec![RevisionTarget {
                            revision: "cart-00001".into(),
                            url: "http://cart-00001.ns.svc".into(),
                            percent: 100,
                        }]),
                        None,
                        None,
                    )),
                    ..Observed::default()
                },
                ready: (T, None),
                message: "",
                conditions: &[
                    "BrokerReady=True",
                    "SubscriberResolved=True",
                    "DependencyReady=True",
                    "SubscriptionReady=True",
                ],
                subscriber_uri: None,
                dead_letter_sink_uri: None,
            },
            Row {
                name: "dead-letter sink resolved",
                spec: with_dls.clone(),
                broker: BrokerState::Present(true),
                obs: resolved(APPLIED, Some("http://dls.ns.svc")),
                ready: (T, None),
                message: "",
                conditions: &[
                    "BrokerReady=True",
                    "SubscriberResolved=True",
                    "DeadLetterSinkResolved=True",
                    "DependencyReady=True",
                    "SubscriptionReady=True",
                ],
                subscriber_uri: Some("http://cart.ns.svc"),
                dead_letter_sink_uri: Some("http://dls.ns.svc"),
            },
            Row {
                name: "dead-letter sink inherited from the broker",
                spec: plain.clone(),
                broker: BrokerState::Present(true),
                obs: resolved(APPLIED, Some("http://broker-dls.ns.svc")),
                ready: (T, None),
                message: "",
                conditions: &[
                    "BrokerReady=True",
                    "SubscriberResolved=True",
                    "DeadLetterSinkResolved=True",
                    "DependencyReady=True",
                    "SubscriptionReady=True",
                ],
                subscriber_uri: Some("http://cart.ns.svc"),
                dead_letter_sink_uri: Some("http://broker-dls.ns.svc"),
            },
            Row {
                name: "dead-letter sink not resolved",
                spec: with_dls.clone(),
                broker: BrokerState::Present(true),
                obs: Observed {
                    data_plane: failed(
                        "DeadLetterSinkNotResolved",
                        "spec.delivery.deadLetterSink: Service ns/dls not found",
                    ),
                    subscriber_uri: Some("http://cart.ns.svc".into()),
                    ..Observed::default()
                },
                ready: (F, Some("DeadLetterSinkNotResolved")),
                message: "spec.delivery.deadLetterSink: Service ns/dls not found",
                conditions: &[
                    "BrokerReady=True",
                    "SubscriberResolved=True",
                    "DeadLetterSinkResolved=False:DeadLetterSinkNotResolved",
                    "DependencyReady=True",
                    "SubscriptionReady=False:DeadLetterSinkNotResolved",
                ],
                subscriber_uri: Some("http://cart.ns.svc"),
                dead_letter_sink_uri: None,
            },
            Row {
                name: "broker's dead-letter sink not resolved",
                spec: plain.clone(),
                broker: BrokerState::Present(true),
                obs: obs(
                    failed(
                        "DeadLetterSinkNotResolved",
                        "spec.delivery.deadLetterSink: not found",
                    ),
                    Topic::Pending,
                ),
                ready: (F, Some("DeadLetterSinkNotResolved")),
                message: "not found",
                conditions: &[
                    "BrokerReady=True",
                    "SubscriberResolved=True",
                    "DeadLetterSinkResolved=False:DeadLetterSinkNotResolved",
                    "DependencyReady=True",
                    "SubscriptionReady=False:DeadLetterSinkNotResolved",
                ],
                subscriber_uri: None,
                dead_letter_sink_uri: None,
            },
            Row {
                name: "delivery spec does not compile",
                spec: with_dls.clone(),
                broker: BrokerState::Present(true),
                obs: obs(
                    failed(
                        "InvalidDelivery",
                        "spec.delivery.timeout: `soon` is not a duration",
                    ),
                    Topic::Pending,
                ),
                ready: (F, Some("InvalidDelivery")),
                message: "spec.delivery.timeout",
                conditions: &[
                    "BrokerReady=True",
                    "SubscriberResolved=True",
                    "DeadLetterSinkResolved=Unknown:Resolving",
                    "DependencyReady=True",
                    "SubscriptionReady=False:InvalidDelivery",
                ],
                subscriber_uri: None,
                dead_letter_sink_uri: None,
            },
            Row {
                name: "spec.brokerRef is unsupported",
                spec: json!({
                    "brokerRef": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "orders", "namespace": "other"},
                    "subscriber": subscriber(),
                }),
                broker: BrokerState::Missing,
                obs: obs(failed("BrokerDoesNotExist", "x"), Topic::Pending),
                ready: (F, Some(UNSUPPORTED_FIELD)),
                message: "spec.brokerRef: is not supported by Ferry",
                conditions: &[],
                subscriber_uri: None,
                dead_letter_sink_uri: None,
            },
            Row {
                name: "no broker named: InvalidSpec",
                spec: json!({"broker": "", "subscriber": subscriber()}),
                broker: BrokerState::Missing,
                obs: Observed::default(),
                ready: (F, Some(INVALID_SPEC)),
                message: "spec.broker: is empty",
                conditions: &[],
                subscriber_uri: None,
                dead_letter_sink_uri: None,
            },
        ];
        for row in rows {
            let t = trigger(row.spec);
            let s = trigger_status(&t, row.broker, &row.obs, &at(NOW));
            check(row.name, &s.status, row.ready, row.message, row.conditions);
            assert_eq!(
                s.subscriber_uri.as_deref(),
                row.subscriber_uri,
                "{}: subscriberUri",
                row.name
            );
            assert_eq!(
                s.delivery.dead_letter_sink_uri.as_deref(),
                row.dead_letter_sink_uri,
                "{}: deadLetterSinkUri",
                row.name
            );
        }
    }

    // ---------------------------------------------------------------------------------------
    // KafkaChannel

    fn channel(spec: Value, status: Option<Value>) -> KafkaChannel {
        object(
            "messaging.knative.dev/v1beta1",
            "KafkaChannel",
            "events",
            spec,
            status,
        )
    }

    fn subscription(name: &str, spec: Value) -> Subscription {
        object("messaging.knative.dev/v1", "Subscription", name, spec, None)
    }

    fn sub_spec() -> Value {
        json!({
            "channel": {"apiVersion": "messaging.knative.dev/v1beta1", "kind": "KafkaChannel", "name": "events"},
            "subscriber": subscriber(),
        })
    }

    #[test]
    fn channel_rows() {
        struct Row {
            name: &'static str,
            spec: Value,
            prior: Option<Value>,
            obs: Observed,
            ready: (ConditionStatus, Option<&'static str>),
            message: &'static str,
            conditions: &'static [&'static str],
            url: Option<&'static str>,
        }
        let rows = [
            Row {
                name: "topic pending",
                spec: json!({}),
                prior: None,
                obs: obs(DataPlane::Pending, Topic::Pending),
                ready: (U, Some("TopicNotCreated")),
                message: "",
                conditions: &[
                    "ConfigurationReady=True",
                    "TopicReady=Unknown:TopicNotCreated",
                    "ChannelServiceReady=Unknown:Compiling",
                    "Addressable=Unknown:NoAddress",
                ],
                url: None,
            },
            Row {
                name: "topic failed",
                spec: json!({"numPartitions": 3}),
                prior: None,
                obs: obs(APPLIED, Topic::Failed("not enough brokers".into())),
                ready: (F, Some("TopicCreationFailed")),
                message: "not enough brokers",
                conditions: &[
                    "ConfigurationReady=True",
                    "TopicReady=False:TopicCreationFailed",
                    "ChannelServiceReady=True",
                    "Addressable=Unknown:NoAddress",
                ],
                url: None,
            },
            Row {
                name: "compiled, not applied: no address yet",
                spec: json!({}),
                prior: None,
                obs: obs(WRITTEN, topic()),
                ready: (U, Some("DispatcherNotReady")),
                message: "",
                conditions: &[
                    "ConfigurationReady=True",
                    "TopicReady=True",
                    "ChannelServiceReady=Unknown:DispatcherNotReady",
                    "Addressable=Unknown:NoAddress",
                ],
                url: None,
            },
            Row {
                name: "applied",
                spec: json!({"numPartitions": 3, "replicationFactor": 1, "retentionDuration": "PT24H"}),
                prior: None,
                obs: obs(APPLIED, topic()),
                ready: (T, None),
                message: "",
                conditions: &[
                    "ConfigurationReady=True",
                    "TopicReady=True",
                    "ChannelServiceReady=True",
                    "Addressable=True",
                ],
                url: Some("http://ingress.ferry.svc/ns/events"),
            },
            Row {
                name: "numPartitions 0: InvalidSpec, address withdrawn",
                spec: json!({"numPartitions": 0}),
                prior: Some(json!({"address": {"url": "http://ingress.ferry.svc/ns/events"}})),
                obs: obs(APPLIED, topic()),
                ready: (F, Some(INVALID_SPEC)),
                message: "spec.numPartitions: must be at least 1 (got 0)",
                conditions: &[],
                url: None,
            },
        ];
        for row in rows {
            let c = channel(row.spec, row.prior);
            let s = channel_status(&c, &row.obs, &[], INGRESS, &at(NOW));
            check(row.name, &s.status, row.ready, row.message, row.conditions);
            assert_eq!(address_url(&s.address), row.url, "{}: address", row.name);
        }
    }

    #[test]
    fn channel_lists_subscribers_by_uid() {
        let mut subs = [
            subscription("d-pending", sub_spec()),
            subscription("a-applied", sub_spec()),
            subscription("c-written", sub_spec()),
            subscription("b-failed", sub_spec()),
        ];
        subs[1].metadata.generation = Some(5);
        let dps = [
            DataPlane::Pending,
            APPLIED,
            WRITTEN,
            failed(
                "SubscriberNotResolved",
                "spec.subscriber: Service ns/cart not found",
            ),
        ];
        let pairs: Vec<(&Subscription, DataPlane)> = subs.iter().zip(dps).collect();
        let c = channel(json!({}), None);
        let s = channel_status(&c, &obs(APPLIED, topic()), &pairs, INGRESS, &at(NOW));
        let got: Vec<_> = s
            .subscribers
            .iter()
            .map(|s| {
                (
                    s.uid.as_deref().unwrap_or(""),
                    s.observed_generation,
                    s.ready,
                    s.message.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("uid-a-applied", Some(5), T, None),
                (
                    "uid-b-failed",
                    Some(3),
                    F,
                    Some("spec.subscriber: Service ns/cart not found")
                ),
                (
                    "uid-c-written",
                    Some(3),
                    U,
                    Some("waiting for the dispatchers")
                ),
                (
                    "uid-d-pending",
                    Some(3),
                    U,
                    Some("waiting for the dispatchers")
                ),
            ]
        );
        // A failing subscriber is the Subscription's problem, not the channel's.
        assert!(s.status.is_ready());

        // Subscribers that went away leave the list.
        let mut c = c;
        c.status = Some(s);
        let s = channel_status(&c, &obs(APPLIED, topic()), &pairs[..1], INGRESS, &at(NOW));
        assert_eq!(s.subscribers.len(), 1);
        assert_eq!(s.subscribers[0].uid.as_deref(), Some("uid-d-pending"));
    }

    // ---------------------------------------------------------------------------------------
    // Subscription

    #[test]
    fn subscription_rows() {
        struct Row {
            name: &'static str,
            spec: Value,
            channel: ChannelState,
            obs: Observed,
            ready: (ConditionStatus, Option<&'static str>),
            message: &'static str,
            conditions: &'static [&'static str],
            physical: [Option<&'static str>; 3],
        }
        let with_reply = {
            let mut s = sub_spec();
            s["reply"] = json!({"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "replies"}});
            s
        };
        let rows = [
            Row {
                name: "channel missing",
                spec: sub_spec(),
                channel: ChannelState::Missing,
                obs: obs(
                    failed(
                        "ChannelNotFound",
                        "channel KafkaChannel ns/events not found",
                    ),
                    Topic::Pending,
                ),
                ready: (F, Some("ChannelNotFound")),
                message: "KafkaChannel events does not exist in this namespace; create it or fix spec.channel",
                conditions: &[
                    "ChannelReady=False:ChannelNotFound",
                    "ReferencesResolved=Unknown:Resolving",
                    "AddedToChannel=Unknown:Compiling",
                ],
                physical: [None, None, None],
            },
            Row {
                name: "channel not ready",
                spec: sub_spec(),
                channel: ChannelState::Present(false),
                obs: Observed {
                    data_plane: APPLIED,
                    subscriber_uri: Some("http://cart.ns.svc".into()),
                    ..Observed::default()
                },
                ready: (U, Some("ChannelNotReady")),
                message: "",
                conditions: &[
                    "ChannelReady=Unknown:ChannelNotReady",
                    "ReferencesResolved=True",
                    "AddedToChannel=True",
                ],
                physical: [Some("http://cart.ns.svc"), None, None],
            },
            Row {
                name: "reply not resolved",
                spec: with_reply.clone(),
                channel: ChannelState::Present(true),
                obs: obs(
                    failed(
                        "ReplyNotResolved",
                        "spec.reply: Broker ns/replies not found",
                    ),
                    Topic::Pending,
                ),
                ready: (F, Some("ReplyNotResolved")),
                message: "spec.reply: Broker ns/replies not found",
                conditions: &[
                    "ChannelReady=True",
                    "ReferencesResolved=False:ReplyNotResolved",
                    "AddedToChannel=Unknown:Compiling",
                ],
                physical: [None, None, None],
            },
            Row {
                name: "subscriber not resolved",
                spec: sub_spec(),
                channel: ChannelState::Present(true),
                obs: obs(
                    failed(
                        "SubscriberNotResolved",
                        "spec.subscriber: Service ns/cart not found",
                    ),
                    Topic::Pending,
                ),
                ready: (F, Some("SubscriberNotResolved")),
                message: "Service ns/cart not found",
                conditions: &[
                    "ChannelReady=True",
                    "ReferencesResolved=False:SubscriberNotResolved",
                    "AddedToChannel=Unknown:Compiling",
                ],
                physical: [None, None, None],
            },
            Row {
                name: "compiled, not applied",
                spec: sub_spec(),
                channel: ChannelState::Present(true),
                obs: Observed {
                    data_plane: WRITTEN,
                    egress: Some(egress(url("http://cart.ns.svc"), None, None)),
                    ..Observed::default()
                },
                ready: (U, Some("DispatcherNotReady")),
                message: "",
                conditions: &[
                    "ChannelReady=True",
                    "ReferencesResolved=True",
                    "AddedToChannel=Unknown:DispatcherNotReady",
                ],
                physical: [Some("http://cart.ns.svc"), None, None],
            },
            Row {
                name: "applied: physicalSubscription from the observed URLs",
                spec: with_reply.clone(),
                channel: ChannelState::Present(true),
                obs: Observed {
                    data_plane: APPLIED,
                    subscriber_uri: Some("http://cart.ns.svc".into()),
                    reply_uri: Some("http://ingress.ferry.svc/ns/replies".into()),
                    egress: Some(egress(
                        url("http://cart-00001.ns.svc"),
                        Some("http://dls.ns.svc"),
                        Some("http://elsewhere"),
                    )),
                    ..Observed::default()
                },
                ready: (T, None),
                message: "",
                conditions: &[
                    "ChannelReady=True",
                    "ReferencesResolved=True",
                    "AddedToChannel=True",
                ],
                physical: [
                    Some("http://cart.ns.svc"),
                    Some("http://ingress.ferry.svc/ns/replies"),
                    Some("http://dls.ns.svc"),
                ],
            },
            Row {
                name: "applied: physicalSubscription from the egress",
                spec: with_reply.clone(),
                channel: ChannelState::Present(true),
                obs: Observed {
                    data_plane: APPLIED,
                    egress: Some(egress(
                        url("http://cart.ns.svc"),
                        None,
                        Some("http://ingress.ferry.svc/ns/replies"),
                    )),
                    ..Observed::default()
                },
                ready: (T, None),
                message: "",
                conditions: &[
                    "ChannelReady=True",
                    "ReferencesResolved=True",
                    "AddedToChannel=True",
                ],
                physical: [
                    Some("http://cart.ns.svc"),
                    Some("http://ingress.ferry.svc/ns/replies"),
                    None,
                ],
            },
            Row {
                name: "neither subscriber nor reply: InvalidSpec",
                spec: json!({"channel": {"apiVersion": "messaging.knative.dev/v1beta1", "kind": "KafkaChannel", "name": "events"}}),
                channel: ChannelState::Present(true),
                obs: Observed::default(),
                ready: (F, Some(INVALID_SPEC)),
                message: "spec: has neither subscriber nor reply",
                conditions: &[],
                physical: [None, None, None],
            },
            Row {
                name: "subscriber audience: UnsupportedField",
                spec: {
                    let mut s = sub_spec();
                    s["subscriber"]["audience"] = json!("cart");
                    s
                },
                channel: ChannelState::Present(true),
                obs: obs(APPLIED, Topic::Pending),
                ready: (F, Some(UNSUPPORTED_FIELD)),
                message: "spec.subscriber.audience: is not supported by Ferry",
                conditions: &[],
                physical: [None, None, None],
            },
        ];
        for row in rows {
            let sub = subscription("to-cart", row.spec);
            let s = subscription_status(&sub, row.channel, &row.obs, &at(NOW));
            check(row.name, &s.status, row.ready, row.message, row.conditions);
            let p = &s.physical_subscription;
            assert_eq!(
                [
                    p.subscriber_uri.as_deref(),
                    p.reply_uri.as_deref(),
                    p.dead_letter_sink_uri.as_deref()
                ],
                row.physical,
                "{}: physicalSubscription",
                row.name
            );
        }
    }

    // ---------------------------------------------------------------------------------------
    // KafkaSource

    fn source(spec: Value) -> KafkaSource {
        object(
            "sources.knative.dev/v1beta1",
            "KafkaSource",
            "orders-src",
            spec,
            None,
        )
    }

    fn source_spec() -> Value {
        json!({
            "bootstrapServers": ["my-cluster-kafka-bootstrap.kafka:9092"],
            "topics": ["orders"],
            "sink": subscriber(),
        })
    }

    #[test]
    fn source_rows() {
        struct Row {
            name: &'static str,
            spec: Value,
            obs: Observed,
            topics: Topic,
            ready: (ConditionStatus, Option<&'static str>),
            message: &'static str,
            conditions: &'static [&'static str],
            sink_uri: Option<&'static str>,
        }
        let sink = |dp: DataPlane| Observed {
            data_plane: dp,
            subscriber_uri: Some("http://cart.ns.svc".into()),
            ..Observed::default()
        };
        let rows = [
            Row {
                name: "topics missing",
                spec: source_spec(),
                obs: sink(APPLIED),
                topics: Topic::Failed("topic orders does not exist".into()),
                ready: (F, Some("TopicsNotFound")),
                message: "topic orders does not exist",
                conditions: &[
                    "SinkProvided=True",
                    "ConnectionEstablished=False:TopicsNotFound",
                    "InitialOffsetsCommitted=True",
                    "Deployed=True",
                ],
                sink_uri: Some("http://cart.ns.svc"),
            },
            Row {
                name: "topics not looked up yet",
                spec: source_spec(),
                obs: sink(APPLIED),
                topics: Topic::Pending,
                ready: (U, Some("Connecting")),
                message: "",
                conditions: &[
                    "SinkProvided=True",
                    "ConnectionEstablished=Unknown:Connecting",
                    "InitialOffsetsCommitted=True",
                    "Deployed=True",
                ],
                sink_uri: Some("http://cart.ns.svc"),
            },
            Row {
                name: "sink not resolved",
                spec: source_spec(),
                obs: obs(
                    failed(
                        "SubscriberNotResolved",
                        "spec.sink: Service ns/cart not found",
                    ),
                    Topic::Pending,
                ),
                topics: topic(),
                ready: (F, Some("SubscriberNotResolved")),
                message: "spec.sink: Service ns/cart not found",
                conditions: &[
                    "SinkProvided=False:SubscriberNotResolved",
                    "ConnectionEstablished=True",
                    "InitialOffsetsCommitted=Unknown:Compiling",
                    "Deployed=Unknown:Compiling",
                ],
                sink_uri: None,
            },
            Row {
                name: "dead-letter sink not resolved: the sink is fine, nothing is deployed",
                spec: source_spec(),
                obs: sink(failed(
                    "DeadLetterSinkNotResolved",
                    "spec.delivery.deadLetterSink: Service ns/dls not found",
                )),
                topics: topic(),
                ready: (F, Some("DeadLetterSinkNotResolved")),
                message: "spec.delivery.deadLetterSink",
                conditions: &[
                    "SinkProvided=True",
                    "ConnectionEstablished=True",
                    "InitialOffsetsCommitted=Unknown:Compiling",
                    "Deployed=False:DeadLetterSinkNotResolved",
                ],
                sink_uri: Some("http://cart.ns.svc"),
            },
            Row {
                name: "compiled, not applied",
                spec: source_spec(),
                obs: sink(WRITTEN),
                topics: topic(),
                ready: (U, Some("DispatcherNotReady")),
                message: "",
                conditions: &[
                    "SinkProvided=True",
                    "ConnectionEstablished=True",
                    "InitialOffsetsCommitted=Unknown:DispatcherNotReady",
                    "Deployed=Unknown:DispatcherNotReady",
                ],
                sink_uri: Some("http://cart.ns.svc"),
            },
            Row {
                name: "applied",
                spec: source_spec(),
                obs: sink(APPLIED),
                topics: topic(),
                ready: (T, None),
                message: "",
                conditions: &[
                    "SinkProvided=True",
                    "ConnectionEstablished=True",
                    "InitialOffsetsCommitted=True",
                    "Deployed=True",
                ],
                sink_uri: Some("http://cart.ns.svc"),
            },
            Row {
                name: "applied: sinkUri from the egress",
                spec: {
                    let mut s = source_spec();
                    s["sink"] = json!({"uri": "http://hook.example"});
                    s
                },
                obs: Observed {
                    data_plane: APPLIED,
                    egress: Some(egress(url("http://hook.example"), None, None)),
                    ..Observed::default()
                },
                topics: topic(),
                ready: (T, None),
                message: "",
                conditions: &[
                    "SinkProvided=True",
                    "ConnectionEstablished=True",
                    "InitialOffsetsCommitted=True",
                    "Deployed=True",
                ],
                sink_uri: Some("http://hook.example"),
            },
            Row {
                name: "bootstrap server without port: InvalidSpec",
                spec: {
                    let mut s = source_spec();
                    s["bootstrapServers"] = json!(["kafka"]);
                    s
                },
                obs: sink(APPLIED),
                topics: topic(),
                ready: (F, Some(INVALID_SPEC)),
                message: "spec.bootstrapServers[0]: `kafka` is not host:port",
                conditions: &[],
                sink_uri: None,
            },
            Row {
                name: "sink CACerts: UnsupportedField",
                spec: {
                    let mut s = source_spec();
                    s["sink"]["CACerts"] = json!("-----BEGIN CERTIFICATE-----");
                    s
                },
                obs: sink(APPLIED),
                topics: topic(),
                ready: (F, Some(UNSUPPORTED_FIELD)),
                message: "spec.sink.CACerts",
                conditions: &[],
                sink_uri: None,
            },
        ];
        for row in rows {
            let src = source(row.spec);
            let s = source_status(&src, &row.obs, &row.topics, &at(NOW));
            check(row.name, &s.status, row.ready, row.message, row.conditions);
            assert_eq!(s.sink_uri.as_deref(), row.sink_uri, "{}: sinkUri", row.name);
        }
    }

    #[test]
    fn spec_problems_report_validation_before_unsupported_fields() {
        let both = trigger(json!({
            "broker": "orders",
            "brokerRef": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "orders"},
            "subscriber": subscriber(),
        }));
        let (reason, message) = spec_problem(&Resource::Trigger(both)).expect("a problem");
        assert_eq!(reason, INVALID_SPEC);
        assert!(
            message.contains("spec.brokerRef: is set together with broker"),
            "{message}"
        );
        assert!(!message.contains('\n'), "one line: {message}");

        let two = trigger(json!({"broker": "", "subscriber": {}}));
        let (_, message) = spec_problem(&Resource::Trigger(two)).expect("a problem");
        assert!(message.contains("spec.broker: is empty"), "{message}");
        assert!(
            message.contains("; spec.subscriber: a destination needs"),
            "{message}"
        );

        assert_eq!(
            spec_problem(&Resource::Trigger(trigger(
                json!({"broker": "b", "subscriber": subscriber()})
            ))),
            None
        );
    }
}
