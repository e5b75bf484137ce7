//! `messaging.knative.dev`: [`Subscription`] (v1) and [`KafkaChannel`] (v1beta1).

mod channelable;
mod kafka_channel;
mod subscription;

pub use channelable::{SubscriberSpec, SubscriberStatus};
pub use kafka_channel::{
    KafkaChannel, KafkaChannelSpec, KafkaChannelStatus, kafka_channel_conditions,
};
pub use subscription::{
    PhysicalSubscription, Subscription, SubscriptionSpec, SubscriptionStatus,
    subscription_conditions,
};
