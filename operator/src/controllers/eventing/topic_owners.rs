//! Brokers and KafkaChannels: each owns a topic, created with the settings its config asks for
//! and deleted with it (finalizer [`TOPIC_FINALIZER`]).

use std::sync::Arc;

use ferry_api::contract;
use ferry_api::eventing::Broker;
use ferry_api::messaging::{KafkaChannel, Subscription};
use ferry_api::resource::Resource as AnyResource;
use ferry_control::contract_inputs::object_ref;
use ferry_control::topics::{self, ConfigLookup};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, ResourceExt};

use super::observe::destination_address;
use crate::controllers::context::{Context, apply_status, instrumented};
use crate::error::{Error, Result};
use crate::status::{self, DataPlane, Observed, Topic, spec_problem};
use crate::topics::TopicSettings;
use crate::world::channel_of;

/// Finalizer of Brokers and KafkaChannels: their topic is deleted with them.
pub const TOPIC_FINALIZER: &str = "ferry.dev/topic";

pub(in crate::controllers) async fn reconcile_broker(
    broker: Arc<Broker>,
    ctx: Arc<Context>,
) -> Result<Action> {
    let broker = ctx.publisher.effective_broker(&broker);
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
async fn with_topic<K, F, Fut>(ctx: &Context, obj: Arc<K>, topic: &str, apply: F) -> Result<Action>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    F: FnOnce(Arc<K>) -> Fut,
    Fut: Future<Output = Result<Action>>,
{
    let api: Api<K> = Api::namespaced(
        ctx.client.clone(),
        obj.meta().namespace.as_deref().unwrap_or_default(),
    );
    finalizer(&api, TOPIC_FINALIZER, obj, |event| async {
        match event {
            Finalizer::Apply(obj) => apply(obj).await,
            Finalizer::Cleanup(_) => {
                ctx.topics.delete(topic).await?;
                ctx.publisher.set_topic(topic, Topic::Pending);
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(Error::from)
}

/// The installation's topic defaults (`--default-partitions`, `--default-replication-factor`).
fn topic_defaults(ctx: &Context) -> TopicSettings {
    TopicSettings {
        partitions: ctx.args.default_partitions,
        replication: ctx.args.default_replication_factor,
    }
}

/// Reads the ConfigMap a Broker's `spec.config` names and decides its topic's settings.
async fn broker_topic_settings(ctx: &Context, broker: &Broker) -> Result<TopicSettings, String> {
    let Some(config) = broker.spec.config.as_ref() else {
        return topics::broker_topic_settings(broker, ConfigLookup::NotNamed, topic_defaults(ctx))
            .1;
    };
    let ns = config
        .namespace
        .clone()
        .unwrap_or_else(|| broker.namespace().unwrap_or_default());
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let read = api.get_opt(&config.name).await.map_err(|e| e.to_string());
    let lookup = match &read {
        Ok(Some(cm)) => ConfigLookup::Found(cm.data.as_ref()),
        Ok(None) => ConfigLookup::Missing,
        Err(why) => ConfigLookup::Unreadable(why),
    };
    topics::broker_topic_settings(broker, lookup, topic_defaults(ctx)).1
}

/// Creates the topic when needed and records its state with the publisher.
async fn ensure_topic(
    ctx: &Context,
    topic: &str,
    settings: Result<TopicSettings, String>,
) -> Topic {
    if let Topic::Ready(_) = ctx.publisher.topic(topic) {
        return Topic::Ready(topic.to_owned());
    }
    let state = match settings {
        Err(e) => Topic::Failed(e),
        Ok(settings) => match ctx.topics.ensure(topic, settings).await {
            Ok(()) => Topic::Ready(topic.to_owned()),
            // The condition says what the log answered.
            Err(crate::Error::Log(why)) => Topic::Failed(why),
            Err(e) => Topic::Failed(e.to_string()),
        },
    };
    ctx.publisher.set_topic(topic, state.clone());
    state
}

async fn apply_broker(ctx: &Context, broker: &Broker, topic: &str) -> Result<Action> {
    let ns = broker.namespace().unwrap_or_default();
    let mut topic_state = Topic::Pending;
    if spec_problem(&AnyResource::Broker(broker.clone())).is_none() {
        let settings = broker_topic_settings(ctx, broker).await;
        topic_state = ensure_topic(ctx, topic, settings).await;
    }
    let (data_plane, _) = ctx
        .publisher
        .observe(&object_ref(broker), broker.metadata.generation);
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

pub(in crate::controllers) async fn reconcile_channel(
    channel: Arc<KafkaChannel>,
    ctx: Arc<Context>,
) -> Result<Action> {
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

async fn apply_channel(ctx: &Context, channel: &KafkaChannel, topic: &str) -> Result<Action> {
    let ns = channel.namespace().unwrap_or_default();
    let mut topic_state = Topic::Pending;
    if spec_problem(&AnyResource::KafkaChannel(channel.clone())).is_none() {
        let (_, settings) = topics::channel_topic_settings(channel, topic_defaults(ctx));
        topic_state = ensure_topic(ctx, topic, Ok(settings)).await;
    }
    let (data_plane, _) = ctx
        .publisher
        .observe(&object_ref(channel), channel.metadata.generation);
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
                ctx.publisher
                    .observe(&object_ref(&**s), s.metadata.generation)
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
