//! `sources.knative.dev/v1` and `v1beta1` (one schema): [`KafkaSource`].

mod kafka_source;

pub use kafka_source::{
    InitialOffset, KAFKA_SOURCE_VERSIONS, KEY_TYPE_LABEL, KafkaNetSpec, KafkaSaslSpec, KafkaSource,
    KafkaSourceSpec, KafkaSourceStatus, KafkaTlsSpec, KeyType, SecretData, SecretValueFromSource,
    kafka_source_conditions, secret_key_value,
};
