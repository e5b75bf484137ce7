//! Altering configs with librdkafka's admin client (AlterConfigs) and on the wire: topic
//! configs are described as dynamic topic configs, take effect at once (a lowered
//! `max.message.bytes` refuses a larger batch), survive a restart, and bad values are refused
//! by name; dynamic broker configs (broker `0` and the cluster default) reach every topic that
//! does not override them, and group configs (KIP-848) are kept for any group id. The
//! incremental API is covered with confluent-kafka in `python_clients.rs`.

mod support;

use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AlterConfig, ConfigSource, ResourceSpecifier};
use rdkafka::types::RDKafkaErrorCode;
use support::BrokerProcess;
use support::clients::{admin, create_topic, opts, rt};
use support::wire::{Wire, batch};

const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_CONFIG: i16 = 40;

fn produce(w: &mut Wire, value: &str) -> i16 {
    produce_to(w, "tuned", value)
}

fn produce_to(w: &mut Wire, topic: &str, value: &str) -> i16 {
    let resp = w.call(
        &ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch(&[value]))),
                    ]),
            ]),
        9,
    );
    resp.responses[0].partition_responses[0].error_code
}

/// `(value, whether set on the topic)` of `name` on topic `tuned`.
fn described(bootstrap: &str, name: &str) -> (Option<String>, bool) {
    let (value, source, _) = described_in(bootstrap, ResourceSpecifier::Topic("tuned"), name);
    (value, source == "DynamicTopic")
}

/// `(value, source, read-only)` of `name` in `resource`, through librdkafka.
fn described_in(
    bootstrap: &str,
    resource: ResourceSpecifier<'_>,
    name: &str,
) -> (Option<String>, String, bool) {
    let results = rt()
        .block_on(admin(bootstrap).describe_configs(&[resource], &opts()))
        .expect("describe_configs");
    let resource = results[0].as_ref().expect("described");
    let entry = resource.get(name).expect("entry");
    // `ConfigSource` is neither Clone nor Copy; its variant's name stands for it.
    let source: &ConfigSource = &entry.source;
    (
        entry.value.clone(),
        format!("{source:?}"),
        entry.is_read_only,
    )
}

/// AlterConfigs on the wire, setting only `name` on topic `tuned`: `(error_code, error_message)`.
fn wire_alter(w: &mut Wire, name: &str, value: &str) -> (i16, String) {
    wire_alter_in(w, TOPIC, "tuned", &[(name, value)])
}

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const GROUP: i8 = 32;

/// AlterConfigs on the wire (replacing the resource's configs with `pairs`).
fn wire_alter_in(
    w: &mut Wire,
    resource_type: i8,
    resource: &str,
    pairs: &[(&str, &str)],
) -> (i16, String) {
    use kafka_protocol::messages::AlterConfigsRequest;
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let resp = w.call(
        &AlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(resource.to_owned()))
                .with_configs(
                    pairs
                        .iter()
                        .map(|(name, value)| {
                            AlterableConfig::default()
                                .with_name(StrBytes::from_string((*name).to_owned()))
                                .with_value(Some(StrBytes::from_string((*value).to_owned())))
                        })
                        .collect(),
                ),
        ]),
        2,
    );
    let r = &resp.responses[0];
    let message = r
        .error_message
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    (r.error_code, message)
}

/// AlterConfigs of topic `tuned` through librdkafka's admin client.
fn alter(bootstrap: &str, pairs: &[(&str, &str)]) -> Result<(), RDKafkaErrorCode> {
    alter_in(bootstrap, ResourceSpecifier::Topic("tuned"), pairs)
}

/// AlterConfigs through librdkafka's admin client.
fn alter_in(
    bootstrap: &str,
    resource: ResourceSpecifier<'_>,
    pairs: &[(&str, &str)],
) -> Result<(), RDKafkaErrorCode> {
    let mut change = AlterConfig::new(resource);
    for (k, v) in pairs {
        change = change.set(k, v);
    }
    let results = rt()
        .block_on(admin(bootstrap).alter_configs(&[change], &opts()))
        .expect("alter_configs");
    let result = results.into_iter().next().expect("one result");
    result.map(|_| ()).map_err(|(_, code)| code)
}

#[test]
fn altered_topic_configs_apply_at_once_and_persist() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = ["--flush", "always"];
    let broker = BrokerProcess::start(dir.path(), &args);
    let bs = broker.bootstrap();
    create_topic(&bs, "tuned", 1);
    let mut w = Wire::connect(broker.kafka);
    let big = "b".repeat(3000);
    assert_eq!(produce(&mut w, &big), 0, "fits the default limit");

    alter(
        &bs,
        &[("retention.ms", "3600000"), ("max.message.bytes", "2000")],
    )
    .expect("altered");
    assert_eq!(
        described(&bs, "retention.ms"),
        (Some("3600000".into()), true)
    );
    assert_eq!(
        described(&bs, "max.message.bytes").0.as_deref(),
        Some("2000")
    );
    assert_eq!(
        produce(&mut w, &big),
        MESSAGE_TOO_LARGE,
        "the new limit applies at once"
    );
    assert_eq!(produce(&mut w, "small"), 0);

    // rdkafka 0.39 drops per-resource errors of AlterConfigs; read them on the wire.
    for (name, value, message) in [
        ("retention.ms", "soon", "`retention.ms` = `soon` is invalid"),
        (
            "cleanup.policy",
            "compact,shred",
            "use a list of `delete` and `compact`",
        ),
    ] {
        let (code, got) = wire_alter(&mut w, name, value);
        assert_eq!(code, INVALID_CONFIG, "{name}={value}");
        assert!(got.contains(message), "{got}");
    }
    assert_eq!(
        described(&bs, "retention.ms").0.as_deref(),
        Some("3600000"),
        "a refused change changes nothing"
    );

    let kafka = broker.kafka;
    broker.stop();
    let broker = BrokerProcess::restart_after_stop(dir.path(), kafka, &args);
    assert_eq!(
        described(&broker.bootstrap(), "retention.ms"),
        (Some("3600000".into()), true),
        "survives a restart"
    );
    let mut w = Wire::connect(broker.kafka);
    assert_eq!(produce(&mut w, &big), MESSAGE_TOO_LARGE);
    broker.stop();
}

/// Kafka's topic configs that change nothing on one node without compaction (`flush.ms`,
/// `delete.retention.ms`, …) are accepted as Kafka accepts them, kept and shown with their
/// source; a bad value is still refused, naming it, and an unknown name too.
#[test]
fn inert_kafka_topic_configs_are_accepted_kept_and_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &[]);
    let bs = broker.bootstrap();
    support::clients::create_topic_with(&bs, "tuned", 1, &[("delete.retention.ms", "1000")]);
    assert_eq!(
        described(&bs, "delete.retention.ms"),
        (Some("1000".into()), true)
    );
    assert_eq!(
        described(&bs, "flush.ms"),
        (Some("9223372036854775807".into()), false),
        "Kafka's default, shown as a default"
    );
    assert_eq!(
        alter(&bs, &[("flush.ms", "1000"), ("preallocate", "true")]),
        Ok(())
    );
    assert_eq!(described(&bs, "flush.ms"), (Some("1000".into()), true));
    assert_eq!(described(&bs, "preallocate"), (Some("true".into()), true));
    let mut w = Wire::connect(broker.kafka);
    let (code, message) = wire_alter(&mut w, "min.cleanable.dirty.ratio", "2");
    assert_eq!(code, 40, "INVALID_CONFIG");
    assert!(message.contains("min.cleanable.dirty.ratio"), "{message}");
    let (code, message) = wire_alter(&mut w, "dummy.doesntexist", "1");
    assert_eq!(code, 40, "INVALID_CONFIG");
    assert!(message.contains("unknown topic config"), "{message}");
}

/// Dynamic broker configs: `log.*` defaults set for broker 0 reach every topic without its own
/// value at once (a lowered `message.max.bytes` refuses a larger batch) and survive a restart;
/// broker 0's value wins over the cluster default's; Kafka's dynamic configs that change
/// nothing here (Kerberos, thread pools) are kept and shown; flags and bad values are refused
/// by name and change nothing.
#[test]
fn dynamic_broker_configs_reach_every_topic_and_persist() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &[]);
    let bs = broker.bootstrap();
    create_topic(&bs, "tuned", 1);
    support::clients::create_topic_with(&bs, "pinned", 1, &[("max.message.bytes", "100000")]);
    let mut w = Wire::connect(broker.kafka);
    let big = "b".repeat(3000);
    assert_eq!(produce(&mut w, &big), 0, "fits the flag's limit");

    alter_in(
        &bs,
        ResourceSpecifier::Broker(0),
        &[
            ("message.max.bytes", "2000"),
            ("log.retention.ms", "3600000"),
            ("sasl.kerberos.min.time.before.relogin", "58000"),
        ],
    )
    .expect("broker configs altered");
    assert_eq!(
        produce(&mut w, &big),
        MESSAGE_TOO_LARGE,
        "the new default applies at once"
    );
    assert_eq!(
        produce_to(&mut w, "pinned", &big),
        0,
        "a topic's own value wins"
    );
    assert_eq!(
        described(&bs, "retention.ms"),
        (Some("3600000".into()), false),
        "inherited, not set on the topic"
    );
    let broker0 = |name| described_in(&bs, ResourceSpecifier::Broker(0), name);
    assert_eq!(
        broker0("log.retention.ms"),
        (Some("3600000".into()), "DynamicBroker".into(), false)
    );
    assert_eq!(
        broker0("sasl.kerberos.min.time.before.relogin"),
        (Some("58000".into()), "DynamicBroker".into(), false)
    );
    assert_eq!(
        broker0("log.segment.bytes").1,
        "StaticBroker",
        "from the flags"
    );
    assert_eq!(broker0("num.io.threads").1, "Default");
    assert_eq!(
        broker0("num.partitions"),
        (Some("1".into()), "StaticBroker".into(), true)
    );

    // The cluster default ("") is below broker 0's value.
    assert_eq!(
        wire_alter_in(
            &mut w,
            BROKER,
            "",
            &[("message.max.bytes", "500000"), ("num.io.threads", "4")]
        ),
        (0, String::new())
    );
    assert_eq!(
        produce(&mut w, &big),
        MESSAGE_TOO_LARGE,
        "broker 0's value wins"
    );
    assert_eq!(
        broker0("num.io.threads"),
        (Some("4".into()), "DynamicDefaultBroker".into(), false)
    );

    for (resource, pairs, code, message) in [
        (
            "0",
            vec![("log.retention.ms", "soon")],
            INVALID_CONFIG,
            "broker config `log.retention.ms` = `soon` is invalid",
        ),
        (
            "0",
            vec![("log.cleanup.policy", "shred")],
            INVALID_CONFIG,
            "use a list of `delete` and `compact`",
        ),
        (
            "0",
            vec![("max.connections", "5")],
            INVALID_CONFIG,
            "--max-connections flag",
        ),
        (
            "0",
            vec![("log.dirs", "/tmp")],
            INVALID_CONFIG,
            "unknown broker config `log.dirs`",
        ),
        (
            "7",
            vec![("num.io.threads", "4")],
            42,
            "the only broker is 0",
        ),
    ] {
        let (got, text) = wire_alter_in(&mut w, BROKER, resource, &pairs);
        assert_eq!(got, code, "{pairs:?}: {text}");
        assert!(text.contains(message), "{text}");
    }
    assert_eq!(
        produce(&mut w, &big),
        MESSAGE_TOO_LARGE,
        "refusals change nothing"
    );

    let kafka = broker.kafka;
    broker.stop();
    let broker = BrokerProcess::restart_after_stop(dir.path(), kafka, &[]);
    let bs = broker.bootstrap();
    assert_eq!(
        described_in(&bs, ResourceSpecifier::Broker(0), "log.retention.ms")
            .0
            .as_deref(),
        Some("3600000"),
        "survives a restart"
    );
    let mut w = Wire::connect(broker.kafka);
    assert_eq!(produce(&mut w, &big), MESSAGE_TOO_LARGE);

    // Back to the flags: broker 0's configs removed, the cluster default then applies.
    assert_eq!(wire_alter_in(&mut w, BROKER, "0", &[]), (0, String::new()));
    assert_eq!(
        produce(&mut w, &big),
        0,
        "the cluster default's 500000 applies"
    );
    broker.stop();
}

/// DescribeConfigs on the wire: `(error_code, [(name, value, source)])`.
fn wire_describe(
    w: &mut Wire,
    resource_type: i8,
    resource: &str,
) -> (i16, Vec<(String, String, i8)>) {
    use kafka_protocol::messages::DescribeConfigsRequest;
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let resp = w.call(
        &DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(resource.to_owned()))
                .with_configuration_keys(None),
        ]),
        4,
    );
    let r = &resp.results[0];
    let entries = r
        .configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                c.config_source,
            )
        })
        .collect();
    (r.error_code, entries)
}

/// Group configs (Kafka 4.0, KIP-848): described for any group id, existing or not, with
/// Kafka's defaults; set within Kafka's bounds, kept across a restart, deleted back to the
/// default; values out of bounds or unknown names are refused by name.
#[test]
fn group_configs_are_kept_for_any_group() {
    const GROUP_CONFIG: i8 = 8;
    const DEFAULT_CONFIG: i8 = 5;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut w = Wire::connect(broker.kafka);
    let session = |entries: &[(String, String, i8)]| {
        entries
            .iter()
            .find(|(n, _, _)| n == "consumer.session.timeout.ms")
            .map(|(_, v, s)| (v.clone(), *s))
    };
    let (code, entries) = wire_describe(&mut w, GROUP, "no-such-group");
    assert_eq!(code, 0);
    assert_eq!(session(&entries), Some(("45000".into(), DEFAULT_CONFIG)));

    assert_eq!(
        wire_alter_in(
            &mut w,
            GROUP,
            "orders",
            &[("consumer.session.timeout.ms", "50000")]
        ),
        (0, String::new())
    );
    for (pairs, message) in [
        (
            vec![("consumer.session.timeout.ms", "1000")],
            "milliseconds from 45000 to 60000",
        ),
        (
            vec![("session.timeout.ms", "50000")],
            "unknown group config `session.timeout.ms`",
        ),
    ] {
        let (code, text) = wire_alter_in(&mut w, GROUP, "orders", &pairs);
        assert_eq!(code, INVALID_CONFIG, "{text}");
        assert!(text.contains(message), "{text}");
    }
    let kafka = broker.kafka;
    broker.stop();
    let broker = BrokerProcess::restart_after_stop(dir.path(), kafka, &[]);
    let mut w = Wire::connect(broker.kafka);
    let (_, entries) = wire_describe(&mut w, GROUP, "orders");
    assert_eq!(
        session(&entries),
        Some(("50000".into(), GROUP_CONFIG)),
        "kept"
    );
    assert_eq!(
        wire_alter_in(&mut w, GROUP, "orders", &[]),
        (0, String::new())
    );
    let (_, entries) = wire_describe(&mut w, GROUP, "orders");
    assert_eq!(session(&entries), Some(("45000".into(), DEFAULT_CONFIG)));
    let (code, _) = wire_describe(&mut w, 16, "x");
    assert_eq!(code, 42, "an unknown resource type is an INVALID_REQUEST");
    broker.stop();
}
