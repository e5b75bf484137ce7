//! The status of every eventing kind, as pure functions of the object and what the operator
//! observed about it ([`Observed`]).
//!
//! Knative's `ConditionSet` rule decides `Ready`: it is `True` when every dependent condition is
//! `True`, `False` (with that condition's reason and message) when one is `False`, and
//! `Unknown` otherwise. A spec that fails validation, or sets a field Ferry does not act on, is
//! reported on `Ready` with the field's path and is left out of the contract, so it never
//! half-works.

use ferry_api::contract::{
    CompileError, Egress, NET_SECRET_NOT_RESOLVED, Reply, Resolved, Target, resolve_destination,
};
use ferry_api::duck::{
    AddressStatus, Addressable, Condition, ConditionStatus, DeliveryStatus, Destination,
    KReference, READY, Status,
};
use ferry_api::eventing::{Broker, BrokerStatus, Trigger, TriggerStatus};
use ferry_api::messaging::{
    KafkaChannel, KafkaChannelStatus, PhysicalSubscription, SubscriberStatus, Subscription,
    SubscriptionStatus,
};
use ferry_api::resource::Resource;
use ferry_api::sources::{KafkaSource, KafkaSourceStatus};
use ferry_api::validation::Context;
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
    /// Cannot be created (or, for a KafkaSource, does not exist): what the log said.
    Failed(String),
    /// The cluster could not be asked: unreachable, or it refused the credentials.
    Unreachable(String),
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
    /// Resolved `spec.delivery.deadLetterSink` (Brokers), for `deadLetterSinkUri`.
    pub dead_letter_sink_uri: Option<String>,
}

/// Problems with the spec itself: validation errors first, then unsupported fields. `None`
/// when the spec is fine.
pub fn spec_problem(resource: &Resource) -> Option<(&'static str, String)> {
    spec_problem_in(resource, &Context::default())
}

/// [`spec_problem`] with the cluster's settings in `cx` (`config-features`).
pub fn spec_problem_in(resource: &Resource, cx: &Context) -> Option<(&'static str, String)> {
    if let Err(errors) = resource.validate_in(cx) {
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
        Topic::Failed(m) | Topic::Unreachable(m) => c.fail(type_, "TopicCreationFailed", m),
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

fn observed_destination(obs: &Observed) -> Option<String> {
    obs.subscriber_uri.clone().or_else(|| match &obs.egress {
        Some(Egress {
            destination: Target::Url(url),
            ..
        }) => Some(url.clone()),
        _ => None,
    })
}

/// The resolved address of a destination for status (`subscriberUri`, `sinkUri`, `replyUri`,
/// `deadLetterSinkUri`), by the contract's own rule ([`resolve_destination`]) over the
/// referents' addresses (`address` resolves a `ref`, its namespace defaulted): status shows
/// the URL the dispatcher posts to. For a Knative Service that is the Service's address,
/// where the dispatcher posts to its revisions' addresses with the same path.
pub fn destination_uri(
    namespace: &str,
    dest: Option<&Destination>,
    address: &dyn Fn(&KReference) -> Option<String>,
) -> Option<String> {
    let resolve = |r: &KReference| address(r).map(Resolved::Url);
    match resolve_destination(namespace, dest?, &resolve).ok()? {
        Target::Url(url) => Some(url),
        Target::Revisions(_) => None,
    }
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
    // Knative's Broker resolves its own dead-letter sink and reports its URI.
    status.delivery = DeliveryStatus::default();
    if let Some(dls) = broker
        .spec
        .delivery
        .as_ref()
        .and_then(|d| d.dead_letter_sink.as_ref())
    {
        match &obs.dead_letter_sink_uri {
            Some(uri) => {
                c.ok(bc::DEAD_LETTER_SINK_RESOLVED);
                status.delivery.dead_letter_sink_uri = Some(uri.clone());
            }
            None => c.fail(
                bc::DEAD_LETTER_SINK_RESOLVED,
                "DeadLetterSinkNotResolved",
                &format!(
                    "spec.delivery.deadLetterSink: {} not found or has no address yet; create it or fix the reference",
                    dls.reference.as_ref().map_or_else(
                        || "the destination".to_owned(),
                        |r| format!("{} {}", r.kind, r.name)
                    )
                ),
            ),
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
    matches!(
        e.reason,
        "DeadLetterSinkNotResolved" | "InvalidDelivery" | NET_SECRET_NOT_RESOLVED
    )
}

/// What a Trigger knows of its Broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BrokerState {
    /// No Broker of that name in the Trigger's namespace.
    Missing,
    /// The Broker exists but belongs to another class.
    OtherClass,
    /// The Broker exists; `true` when it is Ready.
    Present(bool),
    /// The Broker exists and is `Ready=False` with this reason and message, which the Trigger
    /// copies into BrokerReady (Knative's `PropagateBrokerCondition`).
    Failed {
        /// The Broker's Ready reason.
        reason: String,
        /// The Broker's Ready message.
        message: String,
    },
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
        BrokerState::Failed { reason, message } => c.fail(
            tc::BROKER_READY,
            &reason,
            &format!("Broker {name} is not Ready: {message}"),
        ),
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
    status.subscriber_uri = observed_destination(obs);
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
        subscriber_uri: observed_destination(obs),
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
    match (topics, &obs.data_plane) {
        // Without its credentials the source cannot connect (and its topics were not asked).
        (_, DataPlane::Failed(e)) if e.reason == NET_SECRET_NOT_RESOLVED => {
            c.fail(kc::CONNECTION_ESTABLISHED, e.reason, &e.message)
        }
        (Topic::Ready(_), _) => c.ok(kc::CONNECTION_ESTABLISHED),
        (Topic::Pending, _) => c.unknown(
            kc::CONNECTION_ESTABLISHED,
            "Connecting",
            "looking up the topics",
        ),
        (Topic::Failed(m), _) => c.fail(kc::CONNECTION_ESTABLISHED, "TopicsNotFound", m),
        (Topic::Unreachable(m), _) => c.fail(kc::CONNECTION_ESTABLISHED, "ConnectionFailed", m),
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
    status.sink_uri = observed_destination(obs);
    c.apply(&mut status.status, generation, now);
    status
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod uri_tests;
