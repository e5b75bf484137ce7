//! Triggers and Subscriptions: each owns a consumer group, deleted with it (finalizer
//! [`GROUP_FINALIZER`]) once the dispatchers no longer consume it.

use std::sync::Arc;

use ferry_api::contract::{self, ObjectRef as ContractRef};
use ferry_api::eventing::Trigger;
use ferry_api::messaging::Subscription;
use ferry_api::resource::Resource as AnyResource;
use ferry_control::contract_inputs::object_ref;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::observe::{destination_address, wait_for_publisher};
use crate::controllers::context::{Context, apply_status, instrumented};
use crate::error::{Error, Result};
use crate::status::{self, BrokerState, ChannelState, DataPlane, Observed};
use crate::world::channel_of;

/// Finalizer of Triggers and Subscriptions: their consumer group is deleted with them.
pub const GROUP_FINALIZER: &str = "ferry.dev/consumer-group";

fn broker_state(ctx: &Context, trigger: &Trigger) -> BrokerState {
    let ns = trigger.namespace().unwrap_or_default();
    match ctx
        .stores
        .brokers
        .get(&ObjectRef::new(&trigger.spec.broker).within(&ns))
        .map(|b| ctx.publisher.effective_broker(&b))
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

pub(in crate::controllers) async fn reconcile_trigger(
    trigger: Arc<Trigger>,
    ctx: Arc<Context>,
) -> Result<Action> {
    // Triggers of another class's Broker belong to that broker's controller.
    if broker_state(&ctx, &trigger) == BrokerState::OtherClass
        && !trigger.finalizers().iter().any(|f| f == GROUP_FINALIZER)
    {
        return Ok(Action::await_change());
    }
    instrumented(trigger.clone(), ctx.clone(), async move {
        let ns = trigger.namespace().unwrap_or_default();
        let api: Api<Trigger> = Api::namespaced(ctx.client.clone(), &ns);
        let group = contract::trigger_group(&ns, &trigger.name_any());
        finalizer(&api, GROUP_FINALIZER, trigger, |event| async {
            match event {
                Finalizer::Apply(trigger) => apply_trigger(&ctx, &trigger).await,
                Finalizer::Cleanup(trigger) => {
                    delete_group(
                        &ctx,
                        &object_ref(&*trigger),
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
) -> Result<Action> {
    let (dp, _) = ctx.publisher.observe(object, generation);
    if matches!(dp, DataPlane::Compiled { .. }) || !ctx.publisher.settled() {
        return Ok(Action::requeue(std::time::Duration::from_secs(1)));
    }
    ctx.topics.delete_group(group).await?;
    Ok(Action::await_change())
}

async fn apply_trigger(ctx: &Context, trigger: &Trigger) -> Result<Action> {
    let ns = trigger.namespace().unwrap_or_default();
    let (data_plane, egress) = ctx
        .publisher
        .observe(&object_ref(trigger), trigger.metadata.generation);
    if let Some(action) =
        wait_for_publisher(ctx, AnyResource::Trigger(trigger.clone()), &data_plane)
    {
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

pub(in crate::controllers) async fn reconcile_subscription(
    sub: Arc<Subscription>,
    ctx: Arc<Context>,
) -> Result<Action> {
    instrumented(sub.clone(), ctx.clone(), async move {
        let ns = sub.namespace().unwrap_or_default();
        let api: Api<Subscription> = Api::namespaced(ctx.client.clone(), &ns);
        let group = contract::subscription_group(&ns, channel_of(&sub), &sub.name_any());
        finalizer(&api, GROUP_FINALIZER, sub, |event| async {
            match event {
                Finalizer::Apply(sub) => apply_subscription(&ctx, &sub).await,
                Finalizer::Cleanup(sub) => {
                    delete_group(&ctx, &object_ref(&*sub), sub.metadata.generation, &group).await
                }
            }
        })
        .await
        .map_err(Error::from)
    })
    .await
}

async fn apply_subscription(ctx: &Context, sub: &Subscription) -> Result<Action> {
    let ns = sub.namespace().unwrap_or_default();
    let (data_plane, egress) = ctx
        .publisher
        .observe(&object_ref(sub), sub.metadata.generation);
    if let Some(action) =
        wait_for_publisher(ctx, AnyResource::Subscription(sub.clone()), &data_plane)
    {
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
