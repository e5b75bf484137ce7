//! Waking the eventing controllers from outside their watches: the publisher queues objects
//! whose place in the data plane changed, the broker-defaults loop every Broker and Trigger.
//! Each controller takes its queue through `reconcile_on`.
//!
//! # Guarantees
//!
//! Every queue is bounded ([`QUEUE_CAPACITY`]) and no wake-up is dropped: a sender waits while
//! the queue is full (backpressure) instead. The controller's scheduler takes from the queue as
//! fast as it can and coalesces repeats of one object, and a reconcile reads the latest state,
//! so waiting delays a wake-up but never loses one. Only a controller that has stopped (its
//! queue is closed) loses its wake-ups, which is what stopping means.

use std::collections::HashMap;

use ferry_api::contract::ObjectRef as ContractRef;
use ferry_api::eventing::{Broker, Trigger};
use ferry_api::messaging::{KafkaChannel, Subscription};
use ferry_api::serving::{Configuration, KnativeService, Revision, Route};
use ferry_api::sources::KafkaSource;
use futures::future::BoxFuture;
use futures::{FutureExt, Stream};
use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::mpsc;

use crate::publisher::Wake;
use crate::world::channel_of;

/// Room in each controller's wake-up queue. One compile can wake every object of a kind (tens
/// of thousands); 1024 keeps a queue under ~100 KiB while the sender waits for the controller's
/// scheduler, which drains the queue far faster than reconciles run.
pub const QUEUE_CAPACITY: usize = 1024;

/// The sending side of one controller's wake-up queue.
pub(super) struct Queue<K: Resource<DynamicType = ()>>(mpsc::Sender<ObjectRef<K>>);

impl<K: Resource<DynamicType = ()>> Clone for Queue<K> {
    fn clone(&self) -> Self {
        Queue(self.0.clone())
    }
}

impl<K: Resource<DynamicType = ()>> Queue<K> {
    /// A queue of [`QUEUE_CAPACITY`], and its receiving end as the stream `reconcile_on` takes.
    fn bounded() -> (Self, impl Stream<Item = ObjectRef<K>> + Send + 'static)
    where
        K: 'static,
    {
        let (tx, mut rx) = mpsc::channel(QUEUE_CAPACITY);
        (
            Queue(tx),
            futures::stream::poll_fn(move |cx| rx.poll_recv(cx)),
        )
    }

    /// Queues `namespace/name`, waiting while the queue is full. A closed queue (the controller
    /// stopped) takes nothing.
    pub async fn send(&self, namespace: &str, name: &str) {
        let _ = self.0.send(ObjectRef::new(name).within(namespace)).await;
    }
}

/// A queue's receiving end.
pub(super) type Receiver<K> = std::pin::Pin<Box<dyn Stream<Item = ObjectRef<K>> + Send>>;

/// The eventing controllers' wake-up queues.
#[derive(Clone)]
pub(super) struct Queues {
    pub brokers: Queue<Broker>,
    pub triggers: Queue<Trigger>,
    pub channels: Queue<KafkaChannel>,
    pub subscriptions: Queue<Subscription>,
    pub sources: Queue<KafkaSource>,
    pub services: Queue<KnativeService>,
    pub configurations: Queue<Configuration>,
    pub revisions: Queue<Revision>,
    pub routes: Queue<Route>,
}

/// Their receiving ends, one per controller.
pub(super) struct Receivers {
    pub brokers: Receiver<Broker>,
    pub triggers: Receiver<Trigger>,
    pub channels: Receiver<KafkaChannel>,
    pub subscriptions: Receiver<Subscription>,
    pub sources: Receiver<KafkaSource>,
}

/// The serving controllers' receiving ends.
pub(super) struct ServingReceivers {
    pub services: Receiver<KnativeService>,
    pub configurations: Receiver<Configuration>,
    pub revisions: Receiver<Revision>,
    pub routes: Receiver<Route>,
}

/// A queue of `K`, boxed receiver.
fn queue<K: Resource<DynamicType = ()> + 'static>() -> (Queue<K>, Receiver<K>) {
    let (queue, receiver) = Queue::bounded();
    (queue, Box::pin(receiver))
}

/// The controllers' queues, and their receiving ends.
pub(super) fn queues() -> (Queues, Receivers, ServingReceivers) {
    let (brokers, brokers_rx) = queue();
    let (triggers, triggers_rx) = queue();
    let (channels, channels_rx) = queue();
    let (subscriptions, subscriptions_rx) = queue();
    let (sources, sources_rx) = queue();
    let (services, services_rx) = queue();
    let (configurations, configurations_rx) = queue();
    let (revisions, revisions_rx) = queue();
    let (routes, routes_rx) = queue();
    (
        Queues {
            brokers,
            triggers,
            channels,
            subscriptions,
            sources,
            services,
            configurations,
            revisions,
            routes,
        },
        Receivers {
            brokers: brokers_rx,
            triggers: triggers_rx,
            channels: channels_rx,
            subscriptions: subscriptions_rx,
            sources: sources_rx,
        },
        ServingReceivers {
            services: services_rx,
            configurations: configurations_rx,
            revisions: revisions_rx,
            routes: routes_rx,
        },
    )
}

/// Wakes the controller of one kind.
trait WakeKind: Send + Sync {
    fn wake<'a>(&'a self, namespace: &'a str, name: &'a str) -> BoxFuture<'a, ()>;
}

impl<K: Resource<DynamicType = ()> + Send + Sync> WakeKind for Queue<K> {
    fn wake<'a>(&'a self, namespace: &'a str, name: &'a str) -> BoxFuture<'a, ()> {
        self.send(namespace, name).boxed()
    }
}

/// A Subscription's data plane is part of its channel's status (the channel lists its
/// subscribers' readiness): both are woken.
struct SubscriptionAndChannel {
    subscriptions: Queue<Subscription>,
    channels: Queue<KafkaChannel>,
    store: Store<Subscription>,
}

impl WakeKind for SubscriptionAndChannel {
    fn wake<'a>(&'a self, namespace: &'a str, name: &'a str) -> BoxFuture<'a, ()> {
        async move {
            self.subscriptions.send(namespace, name).await;
            let sub = self.store.get(&ObjectRef::new(name).within(namespace));
            if let Some(sub) = sub {
                self.channels.send(namespace, channel_of(&sub)).await;
            }
        }
        .boxed()
    }
}

/// Routes the publisher's wake-ups to each kind's controller, by the kind of the object.
pub(super) struct Wakers {
    by_kind: HashMap<String, Box<dyn WakeKind>>,
}

impl Wakers {
    /// Wakers over `queues`; `subscriptions` finds a Subscription's channel.
    pub fn new(queues: &Queues, subscriptions: Store<Subscription>) -> Self {
        fn entry<K: Resource<DynamicType = ()>>(
            wake: impl WakeKind + 'static,
        ) -> (String, Box<dyn WakeKind>) {
            (K::kind(&()).into_owned(), Box::new(wake))
        }
        let subscription = SubscriptionAndChannel {
            subscriptions: queues.subscriptions.clone(),
            channels: queues.channels.clone(),
            store: subscriptions,
        };
        Wakers {
            by_kind: HashMap::from([
                entry::<Broker>(queues.brokers.clone()),
                entry::<Trigger>(queues.triggers.clone()),
                entry::<KafkaChannel>(queues.channels.clone()),
                entry::<Subscription>(subscription),
                entry::<KafkaSource>(queues.sources.clone()),
            ]),
        }
    }
}

impl Wake for Wakers {
    fn wake<'a>(&'a self, object: &'a ContractRef) -> BoxFuture<'a, ()> {
        match self.by_kind.get(&object.kind) {
            Some(kind) => kind.wake(&object.namespace, &object.name),
            None => futures::future::ready(()).boxed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use kube::runtime::reflector::store;
    use kube::runtime::watcher::Event;

    #[tokio::test]
    async fn wake_ups_reach_their_kind_and_a_subscription_wakes_its_channel() {
        let (subs, mut writer) = store::<Subscription>();
        let sub: Subscription = serde_json::from_value(serde_json::json!({
            "apiVersion": "messaging.knative.dev/v1", "kind": "Subscription",
            "metadata": {"name": "s", "namespace": "ns"},
            "spec": {"channel": {"apiVersion": "messaging.knative.dev/v1",
                                 "kind": "KafkaChannel", "name": "orders"}},
        }))
        .expect("subscription");
        writer.apply_watcher_event(&Event::Apply(sub));
        let (queues, mut rx, _) = queues();
        let wakers = Wakers::new(&queues, subs);
        wakers.wake(&ContractRef::new("Broker", "ns", "b")).await;
        wakers
            .wake(&ContractRef::new("Subscription", "ns", "s"))
            .await;
        wakers.wake(&ContractRef::new("Unknown", "ns", "u")).await;
        assert_eq!(
            rx.brokers.next().await,
            Some(ObjectRef::new("b").within("ns"))
        );
        assert_eq!(
            rx.subscriptions.next().await,
            Some(ObjectRef::new("s").within("ns"))
        );
        assert_eq!(
            rx.channels.next().await,
            Some(ObjectRef::new("orders").within("ns"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_makes_the_sender_wait_and_loses_nothing() {
        let (queues, mut rx, _) = queues();
        let sender = tokio::spawn(async move {
            for i in 0..QUEUE_CAPACITY + 10 {
                queues.triggers.send("ns", &format!("t{i}")).await;
            }
        });
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert!(!sender.is_finished(), "waits for room");
        let mut got = 0;
        while got < QUEUE_CAPACITY + 10 {
            rx.triggers.next().await.expect("every wake-up");
            got += 1;
        }
        sender.await.expect("sender finishes");
    }
}
