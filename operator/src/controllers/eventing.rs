//! Controllers of the eventing kinds: Broker, Trigger, KafkaChannel, Subscription, KafkaSource.
//!
//! Their data-plane state comes from the [`crate::hub::Hub`], which wakes them through
//! `reconcile_on` queues when it changes; a Trigger also follows its Broker, a Subscription its
//! channel and a channel its Subscriptions.

use std::sync::Arc;

use ferry_api::contract::{self, ObjectRef as ContractRef};
use ferry_api::duck::{Destination, KReference};
use ferry_api::eventing::{Broker, Trigger};
use ferry_api::messaging::{KafkaChannel, Subscription};
use ferry_api::resource::Resource as AnyResource;
use ferry_api::sources::KafkaSource;
use futures::channel::mpsc::UnboundedReceiver;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::{
    BoxedRun, Context, Error, Shared, apply_status, controller_config, drain, error_policy,
    instrumented,
};
use crate::status::{self, BrokerState, ChannelState, DataPlane, Observed, Topic, spec_problem};
use crate::topics::TopicSettings;

/// Finalizer of Brokers and KafkaChannels: their topic is deleted with them.
pub const TOPIC_FINALIZER: &str = "ferry.dev/topic";
/// Finalizer of Triggers and Subscriptions: their consumer group is deleted with them.
pub const GROUP_FINALIZER: &str = "ferry.dev/consumer-group";

/// The shared streams and wake-up queues of the eventing controllers.
pub struct Inputs<'a> {
    pub brokers: (&'a Shared<Broker>, UnboundedReceiver<ObjectRef<Broker>>),
    pub triggers: (&'a Shared<Trigger>, UnboundedReceiver<ObjectRef<Trigger>>),
    pub channels: (
        &'a Shared<KafkaChannel>,
        UnboundedReceiver<ObjectRef<KafkaChannel>>,
    ),
    pub subscriptions: (
        &'a Shared<Subscription>,
        UnboundedReceiver<ObjectRef<Subscription>>,
    ),
    pub sources: (
        &'a Shared<KafkaSource>,
        UnboundedReceiver<ObjectRef<KafkaSource>>,
    ),
}

/// The five eventing controllers, ready to be driven.
pub fn controllers(ctx: &Arc<Context>, inputs: Inputs<'_>) -> impl Iterator<Item = BoxedRun> {
    let trigger_store = inputs.triggers.0.store.clone();
    let sub_store = inputs.subscriptions.0.store.clone();
    let brokers =
        Controller::for_shared_stream(inputs.brokers.0.subscribe(), inputs.brokers.0.store.clone())
            .with_config(controller_config(ctx))
            .reconcile_on(inputs.brokers.1)
            .run(reconcile_broker, error_policy, ctx.clone());
    let triggers =
        Controller::for_shared_stream(inputs.triggers.0.subscribe(), trigger_store.clone())
            .with_config(controller_config(ctx))
            .reconcile_on(inputs.triggers.1)
            .watches_shared_stream(inputs.brokers.0.subscribe(), move |broker: Arc<Broker>| {
                let ns = broker.namespace().unwrap_or_default();
                let name = broker.name_any();
                trigger_store
                    .state()
                    .into_iter()
                    .filter(|t| {
                        t.namespace().as_deref() == Some(ns.as_str()) && t.spec.broker == name
                    })
                    .map(|t| ObjectRef::from_obj(&*t))
                    .collect::<Vec<_>>()
            })
            .run(reconcile_trigger, error_policy, ctx.clone());
    let channels = Controller::for_shared_stream(
        inputs.channels.0.subscribe(),
        inputs.channels.0.store.clone(),
    )
    .with_config(controller_config(ctx))
    .reconcile_on(inputs.channels.1)
    .watches_shared_stream(
        inputs.subscriptions.0.subscribe(),
        |sub: Arc<Subscription>| {
            let ns = sub.namespace().unwrap_or_default();
            [ObjectRef::new(channel_of(&sub)).within(&ns)]
        },
    )
    .run(reconcile_channel, error_policy, ctx.clone());
    let subscriptions =
        Controller::for_shared_stream(inputs.subscriptions.0.subscribe(), sub_store.clone())
            .with_config(controller_config(ctx))
            .reconcile_on(inputs.subscriptions.1)
            .watches_shared_stream(
                inputs.channels.0.subscribe(),
                move |channel: Arc<KafkaChannel>| {
                    let ns = channel.namespace().unwrap_or_default();
                    let name = channel.name_any();
                    sub_store
                        .state()
                        .into_iter()
                        .filter(|s| {
                            s.namespace().as_deref() == Some(ns.as_str()) && channel_of(s) == name
                        })
                        .map(|s| ObjectRef::from_obj(&*s))
                        .collect::<Vec<_>>()
                },
            )
            .run(reconcile_subscription, error_policy, ctx.clone());
    let sources =
        Controller::for_shared_stream(inputs.sources.0.subscribe(), inputs.sources.0.store.clone())
            .with_config(controller_config(ctx))
            .reconcile_on(inputs.sources.1)
            .run(reconcile_source, error_policy, ctx.clone());
    [
        drain(brokers),
        drain(triggers),
        drain(channels),
        drain(subscriptions),
        drain(sources),
    ]
    .into_iter()
}

/// The name of the channel a Subscription subscribes to.
pub fn channel_of(sub: &Subscription) -> &str {
    sub.spec.channel.name.as_deref().unwrap_or_default()
}

fn contract_ref<K: kube::Resource<DynamicType = ()>>(obj: &K) -> ContractRef {
    ContractRef::new(
        &K::kind(&()),
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default(),
    )
}

/// The resolved address of a destination, for status (`subscriberUri`, `sinkUri`).
fn destination_address(
    ctx: &Context,
    namespace: &str,
    dest: Option<&Destination>,
) -> Option<String> {
    let dest = dest?;
    match &dest.reference {
        None => dest.uri.clone(),
        Some(r) => {
            let mut r: KReference = r.clone();
            r.namespace.get_or_insert_with(|| namespace.to_owned());
            let base = ctx.stores.address(&r, &ctx.args.cluster_domain)?;
            Some(match &dest.uri {
                Some(uri) => format!(
                    "{}/{}",
                    base.trim_end_matches('/'),
                    uri.trim_start_matches('/')
                ),
                None => base,
            })
        }
    }
}

/// How long a compiled object waits for the dispatchers before its status says it waits.
const APPLY_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Whether to leave the status alone for now, and when to look again. Pending objects are not
/// written: the hub wakes them once it has compiled them. Objects the dispatchers have not
/// applied yet are not written during [`APPLY_GRACE`] either (the hub wakes them when they
/// apply it, normally well within it). So a burst of new objects costs one status write each
/// instead of three; a data plane that does not apply the contract still shows up on every
/// object after the grace.
fn wait_for_hub(ctx: &Context, resource: AnyResource, dp: &DataPlane) -> Option<Action> {
    if spec_problem(&resource).is_some() {
        return None;
    }
    match dp {
        DataPlane::Pending => Some(Action::await_change()),
        DataPlane::Compiled { applied: false } => {
            let object = ContractRef::new(
                resource.kind(),
                resource.namespace().unwrap_or_default(),
                resource.name(),
            );
            let waited = ctx
                .hub
                .unapplied_for(&object, resource_generation(&resource))?;
            (waited < APPLY_GRACE).then(|| Action::requeue(APPLY_GRACE - waited))
        }
        _ => None,
    }
}

fn resource_generation(resource: &AnyResource) -> Option<i64> {
    match resource {
        AnyResource::Trigger(t) => t.metadata.generation,
        AnyResource::Subscription(s) => s.metadata.generation,
        AnyResource::KafkaSource(s) => s.metadata.generation,
        _ => None,
    }
}

pub(super) async fn reconcile_broker(
    broker: Arc<Broker>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let broker = ctx.hub.effective_broker(&broker);
    if !broker.is_ferry_class(ctx.args.claim_brokers_without_class)
        && !broker.finalizers().iter().any(|f| f == TOPIC_FINALIZER)
    {
        return Ok(Action::await_change());
    }
    instrumented(broker.clone(), ctx.clone(), async move {
        let topic =
            contract::broker_topic(&broker.namespace().unwrap_or_default(), &broker.name_any());
        with_topic(&ctx, broker, &topic, |b| {
            let (ctx, topic) = (&ctx, &topic);
            async move { apply_broker(ctx, &b, topic).await }
        })
        .await
    })
    .await
}

/// Reconciles an object that owns a topic (a Broker, a KafkaChannel) under the finalizer
/// [`TOPIC_FINALIZER`]: `apply` while it lives; once it is deleted, the topic goes, then the
/// finalizer.
async fn with_topic<K, F, Fut>(
    ctx: &Context,
    obj: Arc<K>,
    topic: &str,
    apply: F,
) -> Result<Action, Error>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    F: FnOnce(Arc<K>) -> Fut,
    Fut: Future<Output = Result<Action, Error>>,
{
    let api: Api<K> = Api::namespaced(
        ctx.client.clone(),
        obj.meta().namespace.as_deref().unwrap_or_default(),
    );
    finalizer(&api, TOPIC_FINALIZER, obj, |event| async {
        match event {
            Finalizer::Apply(obj) => apply(obj).await,
            Finalizer::Cleanup(_) => {
                ctx.topics.delete(topic).await.map_err(Error::Log)?;
                ctx.hub.set_topic(topic, Topic::Pending);
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(Error::from)
}

/// Reads the topic settings from a Broker's or channel's config ConfigMap, if it names one.
async fn topic_settings(
    ctx: &Context,
    namespace: &str,
    config: Option<&KReference>,
) -> Result<TopicSettings, String> {
    let defaults = TopicSettings {
        partitions: ctx.args.default_partitions,
        replication: ctx.args.default_replication_factor,
    };
    let Some(config) = config else {
        return Ok(defaults);
    };
    let ns = config.namespace.as_deref().unwrap_or(namespace);
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    match api.get_opt(&config.name).await {
        Ok(Some(cm)) => TopicSettings::from_config(cm.data.as_ref(), defaults)
            .map_err(|e| format!("ConfigMap {ns}/{}: {e}", config.name)),
        Ok(None) => Err(format!(
            "spec.config: ConfigMap {ns}/{} does not exist; create it or remove spec.config",
            config.name
        )),
        Err(e) => Err(format!("cannot read ConfigMap {ns}/{}: {e}", config.name)),
    }
}

/// Creates the topic when needed and records its state in the hub.
async fn ensure_topic(
    ctx: &Context,
    topic: &str,
    settings: Result<TopicSettings, String>,
) -> Topic {
    if let Topic::Ready(_) = ctx.hub.topic(topic) {
        return Topic::Ready(topic.to_owned());
    }
    let state = match settings {
        Err(e) => Topic::Failed(e),
        Ok(settings) => match ctx.topics.ensure(topic, settings).await {
            Ok(()) => Topic::Ready(topic.to_owned()),
            Err(e) => Topic::Failed(e),
        },
    };
    ctx.hub.set_topic(topic, state.clone());
    state
}

async fn apply_broker(ctx: &Context, broker: &Broker, topic: &str) -> Result<Action, Error> {
    let ns = broker.namespace().unwrap_or_default();
    let mut topic_state = Topic::Pending;
    if spec_problem(&AnyResource::Broker(broker.clone())).is_none() {
        let settings = topic_settings(ctx, &ns, broker.spec.config.as_ref()).await;
        topic_state = ensure_topic(ctx, topic, settings).await;
    }
    let (data_plane, _) = ctx
        .hub
        .observe(&contract_ref(broker), broker.metadata.generation);
    let dead_letter_sink = broker
        .spec
        .delivery
        .as_ref()
        .and_then(|d| d.dead_letter_sink.as_ref());
    let obs = Observed {
        data_plane,
        topic: topic_state.clone(),
        dead_letter_sink_uri: destination_address(ctx, &ns, dead_letter_sink),
        ..Default::default()
    };
    let unresolved = dead_letter_sink.is_some() && obs.dead_letter_sink_uri.is_none();
    let status = status::broker_status(broker, &obs, &ctx.args.ingress_url, &ctx.now());
    apply_status(ctx, broker, broker.status.as_ref(), &status).await?;
    Ok(match topic_state {
        Topic::Failed(_) => Action::requeue(std::time::Duration::from_secs(30)),
        // Nothing watches the referent for the Broker: look again until it resolves.
        _ if unresolved => Action::requeue(std::time::Duration::from_secs(10)),
        _ => Action::await_change(),
    })
}

fn broker_state(ctx: &Context, trigger: &Trigger) -> BrokerState {
    let ns = trigger.namespace().unwrap_or_default();
    match ctx
        .stores
        .brokers
        .get(&ObjectRef::new(&trigger.spec.broker).within(&ns))
        .map(|b| ctx.hub.effective_broker(&b))
    {
        None => BrokerState::Missing,
        Some(b) if !b.is_ferry_class(ctx.args.claim_brokers_without_class) => {
            BrokerState::OtherClass
        }
        Some(b) => {
            let ready = b.status.as_ref().and_then(|s| s.status.condition("Ready"));
            match ready {
                Some(c) if c.status == ferry_api::duck::ConditionStatus::False => {
                    BrokerState::Failed {
                        reason: c
                            .reason
                            .clone()
                            .unwrap_or_else(|| "BrokerNotReady".to_owned()),
                        message: c.message.clone().unwrap_or_default(),
                    }
                }
                Some(c) => BrokerState::Present(c.is_true()),
                None => BrokerState::Present(false),
            }
        }
    }
}

pub(super) async fn reconcile_trigger(
    trigger: Arc<Trigger>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    // Triggers of another class's Broker belong to that broker's controller.
    if broker_state(&ctx, &trigger) == BrokerState::OtherClass
        && !trigger.finalizers().iter().any(|f| f == GROUP_FINALIZER)
    {
        return Ok(Action::await_change());
    }
    instrumented(trigger.clone(), ctx.clone(), async move {
        let ns = trigger.namespace().unwrap_or_default();
        let api: Api<Trigger> = Api::namespaced(ctx.client.clone(), &ns);
        let group = format!("knative-trigger-{ns}-{}", trigger.name_any());
        finalizer(&api, GROUP_FINALIZER, trigger, |event| async {
            match event {
                Finalizer::Apply(trigger) => apply_trigger(&ctx, &trigger).await,
                Finalizer::Cleanup(trigger) => {
                    delete_group(
                        &ctx,
                        &contract_ref(&*trigger),
                        trigger.metadata.generation,
                        &group,
                    )
                    .await
                }
            }
        })
        .await
        .map_err(Error::from)
    })
    .await
}

/// Deletes a consumer group once the dispatchers no longer consume it (the contract without
/// its egress is applied); until then the cleanup is retried.
async fn delete_group(
    ctx: &Context,
    object: &ContractRef,
    generation: Option<i64>,
    group: &str,
) -> Result<Action, Error> {
    let (dp, _) = ctx.hub.observe(object, generation);
    if matches!(dp, DataPlane::Compiled { .. }) || !ctx.hub.settled() {
        return Ok(Action::requeue(std::time::Duration::from_secs(1)));
    }
    ctx.topics.delete_group(group).await.map_err(Error::Log)?;
    Ok(Action::await_change())
}

async fn apply_trigger(ctx: &Context, trigger: &Trigger) -> Result<Action, Error> {
    let ns = trigger.namespace().unwrap_or_default();
    let (data_plane, egress) = ctx
        .hub
        .observe(&contract_ref(trigger), trigger.metadata.generation);
    if let Some(action) = wait_for_hub(ctx, AnyResource::Trigger(trigger.clone()), &data_plane) {
        return Ok(action);
    }
    let obs = Observed {
        subscriber_uri: destination_address(ctx, &ns, Some(&trigger.spec.subscriber)),
        data_plane,
        egress,
        ..Default::default()
    };
    let status = status::trigger_status(trigger, broker_state(ctx, trigger), &obs, &ctx.now());
    apply_status(ctx, trigger, trigger.status.as_ref(), &status).await?;
    Ok(Action::await_change())
}

pub(super) async fn reconcile_channel(
    channel: Arc<KafkaChannel>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    instrumented(channel.clone(), ctx.clone(), async move {
        let topic = contract::channel_topic(
            &channel.namespace().unwrap_or_default(),
            &channel.name_any(),
        );
        with_topic(&ctx, channel, &topic, |c| {
            let (ctx, topic) = (&ctx, &topic);
            async move { apply_channel(ctx, &c, topic).await }
        })
        .await
    })
    .await
}

async fn apply_channel(
    ctx: &Context,
    channel: &KafkaChannel,
    topic: &str,
) -> Result<Action, Error> {
    let ns = channel.namespace().unwrap_or_default();
    let mut topic_state = Topic::Pending;
    if spec_problem(&AnyResource::KafkaChannel(channel.clone())).is_none() {
        let settings = TopicSettings {
            partitions: Some(channel.spec.num_partitions)
                .filter(|n| *n > 0)
                .unwrap_or(ctx.args.default_partitions),
            replication: Some(i32::from(channel.spec.replication_factor))
                .filter(|n| *n > 0)
                .unwrap_or(ctx.args.default_replication_factor),
        };
        topic_state = ensure_topic(ctx, topic, Ok(settings)).await;
    }
    let (data_plane, _) = ctx
        .hub
        .observe(&contract_ref(channel), channel.metadata.generation);
    let subs: Vec<Arc<Subscription>> = ctx
        .stores
        .subscriptions
        .state()
        .into_iter()
        .filter(|s| {
            s.namespace().as_deref() == Some(ns.as_str()) && channel_of(s) == channel.name_any()
        })
        .collect();
    let subscribers: Vec<(&Subscription, DataPlane)> = subs
        .iter()
        .map(|s| {
            (
                &**s,
                ctx.hub
                    .observe(&contract_ref(&**s), s.metadata.generation)
                    .0,
            )
        })
        .collect();
    let obs = Observed {
        data_plane,
        topic: topic_state.clone(),
        ..Default::default()
    };
    let status = status::channel_status(
        channel,
        &obs,
        &subscribers,
        &ctx.args.ingress_url,
        &ctx.now(),
    );
    apply_status(ctx, channel, channel.status.as_ref(), &status).await?;
    Ok(match topic_state {
        Topic::Failed(_) => Action::requeue(std::time::Duration::from_secs(30)),
        _ => Action::await_change(),
    })
}

pub(super) async fn reconcile_subscription(
    sub: Arc<Subscription>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    instrumented(sub.clone(), ctx.clone(), async move {
        let ns = sub.namespace().unwrap_or_default();
        let api: Api<Subscription> = Api::namespaced(ctx.client.clone(), &ns);
        let group = format!(
            "knative-messaging-kafka.{ns}.{}.{}",
            channel_of(&sub),
            sub.name_any()
        );
        finalizer(&api, GROUP_FINALIZER, sub, |event| async {
            match event {
                Finalizer::Apply(sub) => apply_subscription(&ctx, &sub).await,
                Finalizer::Cleanup(sub) => {
                    delete_group(&ctx, &contract_ref(&*sub), sub.metadata.generation, &group).await
                }
            }
        })
        .await
        .map_err(Error::from)
    })
    .await
}

async fn apply_subscription(ctx: &Context, sub: &Subscription) -> Result<Action, Error> {
    let ns = sub.namespace().unwrap_or_default();
    let (data_plane, egress) = ctx.hub.observe(&contract_ref(sub), sub.metadata.generation);
    if let Some(action) = wait_for_hub(ctx, AnyResource::Subscription(sub.clone()), &data_plane) {
        return Ok(action);
    }
    let channel = match ctx
        .stores
        .channels
        .get(&ObjectRef::new(channel_of(sub)).within(&ns))
    {
        None => ChannelState::Missing,
        Some(c) => ChannelState::Present(c.status.as_ref().is_some_and(|s| s.status.is_ready())),
    };
    let obs = Observed {
        subscriber_uri: destination_address(ctx, &ns, sub.spec.subscriber.as_ref()),
        reply_uri: destination_address(ctx, &ns, sub.spec.reply.as_ref()),
        data_plane,
        egress,
        ..Default::default()
    };
    let status = status::subscription_status(sub, channel, &obs, &ctx.now());
    apply_status(ctx, sub, sub.status.as_ref(), &status).await?;
    Ok(Action::await_change())
}

pub(super) async fn reconcile_source(
    source: Arc<KafkaSource>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    instrumented(source.clone(), ctx.clone(), async move {
        let ns = source.namespace().unwrap_or_default();
        // spec.net's Secrets, read before the hub compiles the source; nothing watches them, so
        // a source that uses any is reconciled again: every 10 s while one is missing, every
        // minute after (rotations).
        let secrets = read_net_secrets(&ctx, &ns, &source).await;
        let (data_plane, egress) = ctx
            .hub
            .observe(&contract_ref(&*source), source.metadata.generation);
        if let Some(action) = wait_for_hub(
            &ctx,
            AnyResource::KafkaSource((*source).clone()),
            &data_plane,
        ) {
            return Ok(action);
        }
        // The topics are looked up on the source's own cluster with its spec.net; when its
        // Secrets cannot be read, the compile error says so and there is nothing to ask with.
        let net = source
            .spec
            .net
            .resolve(&|r| crate::hub::secret_value(&ctx.hub.secrets(), &ns, r));
        let topics = match net {
            Err(_) => Topic::Pending,
            Ok(auth) => match ctx
                .topics
                .exist_on(
                    &source.spec.bootstrap_servers.join(","),
                    &auth.client_settings(),
                    &source.spec.topics,
                )
                .await
            {
                Ok(()) => Topic::Ready(source.spec.topics.join(",")),
                Err(crate::topics::LookupError::Missing(e)) => Topic::Failed(e),
                Err(crate::topics::LookupError::Unreachable(e)) => Topic::Unreachable(e),
            },
        };
        let obs = Observed {
            subscriber_uri: destination_address(&ctx, &ns, Some(&source.spec.sink)),
            data_plane,
            egress,
            ..Default::default()
        };
        let status = status::source_status(&source, &obs, &topics, &ctx.now());
        apply_status(&ctx, &*source, source.status.as_ref(), &status).await?;
        Ok(match topics {
            // Topics a source reads may be created later by someone else.
            Topic::Failed(_) | Topic::Unreachable(_) => {
                Action::requeue(std::time::Duration::from_secs(10))
            }
            _ if secrets == SecretsRead::Failed => {
                Action::requeue(std::time::Duration::from_secs(10))
            }
            _ if secrets == SecretsRead::Read => Action::requeue(SECRET_REREAD),
            _ => Action::await_change(),
        })
    })
    .await
}

/// How often the Secrets of a KafkaSource's `spec.net` are read again.
const SECRET_REREAD: std::time::Duration = std::time::Duration::from_secs(60);

/// What [`read_net_secrets`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SecretsRead {
    /// `spec.net` references no Secret.
    None,
    /// Every referenced Secret was read.
    Read,
    /// One is missing or unreadable: looked for again in 10 s, as a missing topic is.
    Failed,
}

/// Reads every Secret `source.spec.net` references (only `get`, by name: the operator neither
/// lists nor watches Secrets) into the hub. The values go into the contract only; they are
/// never logged.
async fn read_net_secrets(ctx: &Context, ns: &str, source: &KafkaSource) -> SecretsRead {
    use k8s_openapi::api::core::v1::Secret;
    let names: std::collections::BTreeSet<&str> = source
        .spec
        .net
        .secret_refs()
        .into_iter()
        .map(|r| r.name.as_str())
        .collect();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let mut read = if names.is_empty() {
        SecretsRead::None
    } else {
        SecretsRead::Read
    };
    for name in &names {
        let value = match api.get_opt(name).await {
            Ok(Some(secret)) => Ok(secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect()),
            Ok(None) => Err(format!(
                "Secret {ns}/{name} not found; create it or fix spec.net"
            )),
            Err(e) => Err(format!("cannot read Secret {ns}/{name}: {e}")),
        };
        if value.is_err() {
            read = SecretsRead::Failed;
        }
        ctx.hub.set_secret(ns, name, value);
    }
    read
}
