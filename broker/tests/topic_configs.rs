//! Altering topic configs with librdkafka's admin client (AlterConfigs): the new values are
//! described as dynamic topic configs, take effect at once (a lowered `max.message.bytes`
//! refuses a larger batch), survive a restart, and bad values are refused by name. The
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
    let resp = w.call(
        &ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str("tuned")))
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
    let results = rt()
        .block_on(admin(bootstrap).describe_configs(&[ResourceSpecifier::Topic("tuned")], &opts()))
        .expect("describe_configs");
    let resource = results[0].as_ref().expect("described");
    let entry = resource.get(name).expect("entry");
    (
        entry.value.clone(),
        matches!(entry.source, ConfigSource::DynamicTopic),
    )
}

/// AlterConfigs on the wire, setting only `name`: `(error_code, error_message)`.
fn wire_alter(w: &mut Wire, name: &str, value: &str) -> (i16, String) {
    use kafka_protocol::messages::AlterConfigsRequest;
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let resp = w.call(
        &AlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("tuned"))
                .with_configs(vec![
                    AlterableConfig::default()
                        .with_name(StrBytes::from_string(name.to_owned()))
                        .with_value(Some(StrBytes::from_string(value.to_owned()))),
                ]),
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

/// AlterConfigs through librdkafka's admin client.
fn alter(bootstrap: &str, pairs: &[(&str, &str)]) -> Result<(), RDKafkaErrorCode> {
    let mut change = AlterConfig::new(ResourceSpecifier::Topic("tuned"));
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
        ("cleanup.policy", "compact", "compaction is not supported"),
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
