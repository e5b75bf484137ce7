//! Controllers of the eventing kinds: Broker and KafkaChannel (which own a topic:
//! [`topic_owners`]), Trigger and Subscription (which own a consumer group: [`group_owners`]),
//! KafkaSource ([`sources`]).
//!
//! Their data-plane state comes from the [`crate::publisher::Publisher`], which wakes them
//! through `reconcile_on` queues when it changes; a Trigger also follows its Broker, a
//! Subscription its channel and a channel its Subscriptions.

use std::sync::Arc;

use ferry_api::eventing::{Broker, Trigger};
use ferry_api::messaging::{KafkaChannel, Subscription};
use ferry_api::sources::KafkaSource;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::watch;

use super::context::{Context, Named, configured, error_policy, named};
use super::reflectors::Reflectors;
use super::wake::Receivers;
use crate::world::channel_of;
use group_owners::{reconcile_subscription, reconcile_trigger};
use sources::reconcile_source;
use topic_owners::{reconcile_broker, reconcile_channel};

pub(super) mod group_owners;
mod observe;
pub(super) mod sources;
pub(super) mod topic_owners;

/// The five eventing controllers, ready to be driven: each follows its kind's reflector and its
/// wake-up queue; a Trigger also follows its Broker, a Subscription its channel and a channel
/// its Subscriptions.
pub(super) fn controllers(
    ctx: &Arc<Context>,
    kinds: &Reflectors,
    queues: Receivers,
    stop: &watch::Receiver<bool>,
) -> Vec<Named> {
    let trigger_store = kinds.triggers.store.clone();
    let sub_store = kinds.subscriptions.store.clone();
    let brokers = configured(kinds.brokers.controller(), ctx, stop)
        .reconcile_on(queues.brokers)
        .run(reconcile_broker, error_policy, ctx.clone());
    let triggers = configured(kinds.triggers.controller(), ctx, stop)
        .reconcile_on(queues.triggers)
        .watches_shared_stream(kinds.brokers.subscribe(), move |broker: Arc<Broker>| {
            let ns = broker.namespace().unwrap_or_default();
            let name = broker.name_any();
            trigger_store
                .state()
                .into_iter()
                .filter(|t| t.namespace().as_deref() == Some(ns.as_str()) && t.spec.broker == name)
                .map(|t| ObjectRef::from_obj(&*t))
                .collect::<Vec<_>>()
        })
        .run(reconcile_trigger, error_policy, ctx.clone());
    let channels = configured(kinds.channels.controller(), ctx, stop)
        .reconcile_on(queues.channels)
        .watches_shared_stream(kinds.subscriptions.subscribe(), |sub: Arc<Subscription>| {
            let ns = sub.namespace().unwrap_or_default();
            [ObjectRef::new(channel_of(&sub)).within(&ns)]
        })
        .run(reconcile_channel, error_policy, ctx.clone());
    let subscriptions = configured(kinds.subscriptions.controller(), ctx, stop)
        .reconcile_on(queues.subscriptions)
        .watches_shared_stream(
            kinds.channels.subscribe(),
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
    let sources = configured(kinds.sources.controller(), ctx, stop)
        .reconcile_on(queues.sources)
        .run(reconcile_source, error_policy, ctx.clone());
    vec![
        named::<Broker, _, _, _>(brokers),
        named::<Trigger, _, _, _>(triggers),
        named::<KafkaChannel, _, _, _>(channels),
        named::<Subscription, _, _, _>(subscriptions),
        named::<KafkaSource, _, _, _>(sources),
    ]
}
