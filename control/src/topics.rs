//! The topics Ferry owns and how each is created: a Broker's (partitions and replication from
//! the ConfigMap its `spec.config` names, Knative's `kafka-broker-config` keys) and a
//! KafkaChannel's (its `spec.numPartitions` / `spec.replicationFactor`), each falling back to the
//! installation's defaults. The runner creates them: the operator through its Kafka admin
//! client, `ferry dev` through the embedded broker's.

use std::collections::BTreeMap;

use ferry_api::contract::{broker_topic, channel_topic};
use ferry_api::duck::KReference;
use ferry_api::eventing::Broker;
use ferry_api::messaging::KafkaChannel;
use kube::ResourceExt;

/// Knative's `kafka-broker-config` keys a Broker's `spec.config` ConfigMap may set.
pub const PARTITIONS_KEY: &str = "default.topic.partitions";
/// See [`PARTITIONS_KEY`].
pub const REPLICATION_KEY: &str = "default.topic.replication.factor";

/// Partitions and replication factor of a topic to create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicSettings {
    /// Number of partitions.
    pub partitions: i32,
    /// Replication factor.
    pub replication: i32,
}

impl TopicSettings {
    /// The settings a Broker's config ConfigMap asks for, each key falling back to `defaults`.
    ///
    /// # Errors
    /// A value that is not a positive integer, naming the key.
    pub fn from_config(
        data: Option<&BTreeMap<String, String>>,
        defaults: TopicSettings,
    ) -> Result<TopicSettings, String> {
        let read = |key: &str, default: i32| -> Result<i32, String> {
            match data.and_then(|d| d.get(key)) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<i32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{key}: `{v}` is not a positive integer")),
            }
        };
        Ok(TopicSettings {
            partitions: read(PARTITIONS_KEY, defaults.partitions)?,
            replication: read(REPLICATION_KEY, defaults.replication)?,
        })
    }
}

/// What a Broker's `spec.config` ConfigMap holds, as the runner found it.
#[derive(Clone, Copy, Debug)]
pub enum ConfigLookup<'a> {
    /// The Broker names no ConfigMap.
    NotNamed,
    /// The named ConfigMap's `data` (`None` when it has no data).
    Found(Option<&'a BTreeMap<String, String>>),
    /// The named ConfigMap does not exist.
    Missing,
    /// It could not be read: why.
    Unreadable(&'a str),
}

/// A Broker's topic and how to create it, from what its `spec.config` names.
///
/// # Errors
/// The ConfigMap is missing, unreadable or holds a bad value: the message names it and says
/// what to do.
pub fn broker_topic_settings(
    broker: &Broker,
    config: ConfigLookup<'_>,
    defaults: TopicSettings,
) -> (String, Result<TopicSettings, String>) {
    let ns = broker.namespace().unwrap_or_default();
    let topic = broker_topic(&ns, &broker.name_any());
    let name = || {
        let r: Option<&KReference> = broker.spec.config.as_ref();
        r.map(|r| format!("{}/{}", r.namespace.as_deref().unwrap_or(&ns), r.name))
            .unwrap_or_default()
    };
    let settings = match config {
        ConfigLookup::NotNamed => Ok(defaults),
        ConfigLookup::Found(data) => TopicSettings::from_config(data, defaults)
            .map_err(|e| format!("ConfigMap {}: {e}", name())),
        ConfigLookup::Missing => Err(format!(
            "spec.config: ConfigMap {} does not exist; create it or remove spec.config",
            name()
        )),
        ConfigLookup::Unreadable(why) => Err(format!("cannot read ConfigMap {}: {why}", name())),
    };
    (topic, settings)
}

/// A KafkaChannel's topic and how to create it.
pub fn channel_topic_settings(
    channel: &KafkaChannel,
    defaults: TopicSettings,
) -> (String, TopicSettings) {
    let topic = channel_topic(
        &channel.namespace().unwrap_or_default(),
        &channel.name_any(),
    );
    let settings = TopicSettings {
        partitions: Some(channel.spec.num_partitions)
            .filter(|n| *n > 0)
            .unwrap_or(defaults.partitions),
        replication: Some(i32::from(channel.spec.replication_factor))
            .filter(|n| *n > 0)
            .unwrap_or(defaults.replication),
    };
    (topic, settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: TopicSettings = TopicSettings {
        partitions: 4,
        replication: 1,
    };

    fn broker(json: &str) -> Broker {
        serde_json::from_str(json).expect("a Broker")
    }

    #[test]
    fn broker_topics_take_partitions_from_their_config_map() {
        let b = broker(
            r#"{"apiVersion":"eventing.knative.dev/v1","kind":"Broker",
                "metadata":{"name":"orders","namespace":"ns"},
                "spec":{"config":{"apiVersion":"v1","kind":"ConfigMap","name":"kafka-broker-config"}}}"#,
        );
        let data: BTreeMap<String, String> = [(PARTITIONS_KEY.to_owned(), "10".to_owned())].into();
        let (topic, settings) =
            broker_topic_settings(&b, ConfigLookup::Found(Some(&data)), DEFAULTS);
        assert_eq!(topic, "knative-broker-ns-orders");
        assert_eq!(
            settings,
            Ok(TopicSettings {
                partitions: 10,
                replication: 1
            })
        );
        let (_, missing) = broker_topic_settings(&b, ConfigLookup::Missing, DEFAULTS);
        let missing = missing.unwrap_err();
        assert!(
            missing.contains("ConfigMap ns/kafka-broker-config does not exist"),
            "{missing}"
        );
        let bad: BTreeMap<String, String> = [(PARTITIONS_KEY.to_owned(), "0".to_owned())].into();
        let (_, bad) = broker_topic_settings(&b, ConfigLookup::Found(Some(&bad)), DEFAULTS);
        assert!(bad.unwrap_err().contains("default.topic.partitions: `0`"));
        let (_, none) = broker_topic_settings(&b, ConfigLookup::NotNamed, DEFAULTS);
        assert_eq!(none, Ok(DEFAULTS));
    }

    #[test]
    fn channel_topics_take_their_spec_or_the_defaults() {
        let c: KafkaChannel = serde_json::from_str(
            r#"{"apiVersion":"messaging.knative.dev/v1beta1","kind":"KafkaChannel",
                "metadata":{"name":"events","namespace":"ns"},
                "spec":{"numPartitions":3,"replicationFactor":1}}"#,
        )
        .expect("a KafkaChannel");
        let (topic, settings) = channel_topic_settings(&c, DEFAULTS);
        assert_eq!(topic, "knative-messaging-kafka.ns.events");
        assert_eq!(settings.partitions, 3);
    }

    #[test]
    fn settings_come_from_the_config_map_or_the_defaults() {
        let defaults = TopicSettings {
            partitions: 10,
            replication: 1,
        };
        type Row<'a> = (&'a [(&'a str, &'a str)], Result<TopicSettings, &'a str>);
        let cases: &[Row<'_>] = &[
            (&[], Ok(defaults)),
            (
                &[(PARTITIONS_KEY, "3")],
                Ok(TopicSettings {
                    partitions: 3,
                    replication: 1,
                }),
            ),
            (
                &[(PARTITIONS_KEY, " 4 "), (REPLICATION_KEY, "3")],
                Ok(TopicSettings {
                    partitions: 4,
                    replication: 3,
                }),
            ),
            (
                &[(PARTITIONS_KEY, "0")],
                Err("default.topic.partitions: `0` is not a positive integer"),
            ),
            (
                &[(REPLICATION_KEY, "three")],
                Err("default.topic.replication.factor: `three` is not a positive integer"),
            ),
        ];
        for (data, want) in cases {
            let data: BTreeMap<String, String> = data
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let got = TopicSettings::from_config(Some(&data), defaults);
            assert_eq!(got, (*want).map_err(str::to_owned), "{data:?}");
        }
    }
}
