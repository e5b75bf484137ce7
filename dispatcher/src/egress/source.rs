//! KafkaSource: a record that is not a CloudEvent becomes one exactly as Knative's KafkaSource
//! maps it; a record that is one passes through. `ceOverrides` are applied last either way.

use base64::Engine;
use chrono::{DateTime, Utc};
use cloudevents::{Event, EventBuilder, EventBuilderV10};
use ferry_api::contract::SourceMapping;
use ferry_api::sources::KeyType;

use crate::binding;
use crate::{Error, Result};

/// A consumed record, as much of it as the mapping reads.
pub struct RecordView<'a> {
    /// Topic it was read from.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp in milliseconds, when the record has one.
    pub timestamp_ms: Option<i64>,
    /// Key bytes.
    pub key: Option<&'a [u8]>,
    /// Value bytes.
    pub value: Option<&'a [u8]>,
    /// Headers in record order.
    pub headers: Vec<(&'a str, &'a [u8])>,
}

/// The CloudEvent for a KafkaSource record.
///
/// # Errors
/// A record that carries CloudEvents headers but is not a valid CloudEvent.
pub fn map_record(
    record: &RecordView<'_>,
    namespace: &str,
    name: &str,
    mapping: &SourceMapping,
) -> Result<Event> {
    let mut event = match binding::from_kafka(record.headers.iter().copied(), record.value)? {
        Some(event) => event,
        None => build(record, namespace, name, mapping.key_type)?,
    };
    for (k, v) in &mapping.ce_overrides {
        event.set_extension(k, v.as_str());
    }
    Ok(event)
}

fn build(record: &RecordView<'_>, namespace: &str, name: &str, key_type: KeyType) -> Result<Event> {
    let (p, o) = (record.partition, record.offset);
    let mut builder = EventBuilderV10::new()
        .id(format!("partition:{p}/offset:{o}"))
        .source(format!(
            "/apis/v1/namespaces/{namespace}/kafkasources/{name}#{}",
            record.topic
        ))
        .ty("dev.knative.kafka.event")
        .subject(format!("partition:{p}#{o}"));
    if let Some(time) = record
        .timestamp_ms
        .and_then(DateTime::<Utc>::from_timestamp_millis)
    {
        builder = builder.time(time);
    }
    if let Some(key) = record.key {
        let key = key_text(key, key_type);
        builder = builder
            .extension("key", key.as_str())
            .extension("partitionkey", key.as_str());
    }
    for (header, value) in &record.headers {
        let suffix: String = header
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        builder = builder.extension(
            &format!("kafkaheader{suffix}"),
            String::from_utf8_lossy(value).as_ref(),
        );
    }
    let content_type = record
        .headers
        .iter()
        .find(|(h, _)| h.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    if let (Some(_), Some(ct)) = (record.value, &content_type) {
        builder = builder.data(ct.clone(), Vec::new());
    }
    let mut event = builder.build().map_err(|e| {
        Error::InvalidEvent(format!(
            "record {}/{p}@{o} does not map to a CloudEvent: {e}",
            record.topic
        ))
    })?;
    if let Some(value) = record.value {
        // Without a content-type header the event has data but no datacontenttype, as in Knative.
        event.set_data_unchecked(value.to_vec());
    }
    Ok(event)
}

/// The `key` extension for each key type (Knative's `key-type` label).
fn key_text(key: &[u8], key_type: KeyType) -> String {
    match (key_type, key.len()) {
        (KeyType::Int, 4) => i32::from_be_bytes(key.try_into().unwrap_or_default()).to_string(),
        (KeyType::Int, 8) => i64::from_be_bytes(key.try_into().unwrap_or_default()).to_string(),
        (KeyType::Float, 4) => f32::from_be_bytes(key.try_into().unwrap_or_default()).to_string(),
        (KeyType::Float, 8) => f64::from_be_bytes(key.try_into().unwrap_or_default()).to_string(),
        (KeyType::ByteArray, _) | (KeyType::Int | KeyType::Float, _) => {
            base64::engine::general_purpose::STANDARD.encode(key)
        }
        (KeyType::String, _) => String::from_utf8_lossy(key).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binding::{attribute, data_bytes};
    use std::collections::BTreeMap;

    fn mapping(key_type: KeyType) -> SourceMapping {
        SourceMapping {
            key_type,
            ce_overrides: BTreeMap::from([("team".to_owned(), "payments".to_owned())]),
        }
    }

    #[test]
    fn plain_record_maps_like_knative() {
        let record = RecordView {
            topic: "payments",
            partition: 2,
            offset: 17,
            timestamp_ms: Some(1_700_000_000_123),
            key: Some(b"user-9"),
            value: Some(br#"{"amount":5}"#),
            headers: vec![
                ("content-type", b"application/json"),
                ("X-Trace_Id", b"abc"),
            ],
        };
        let e = map_record(&record, "default", "legacy", &mapping(KeyType::String)).unwrap();
        let a = |n: &str| attribute(&e, n);
        assert_eq!(a("id").as_deref(), Some("partition:2/offset:17"));
        assert_eq!(
            a("source").as_deref(),
            Some("/apis/v1/namespaces/default/kafkasources/legacy#payments")
        );
        assert_eq!(a("type").as_deref(), Some("dev.knative.kafka.event"));
        assert_eq!(a("subject").as_deref(), Some("partition:2#17"));
        assert_eq!(a("time").as_deref(), Some("2023-11-14T22:13:20.123Z"));
        assert_eq!(a("datacontenttype").as_deref(), Some("application/json"));
        assert_eq!(a("key").as_deref(), Some("user-9"));
        assert_eq!(a("partitionkey").as_deref(), Some("user-9"));
        assert_eq!(
            a("kafkaheadercontenttype").as_deref(),
            Some("application/json")
        );
        assert_eq!(a("kafkaheaderxtraceid").as_deref(), Some("abc"));
        assert_eq!(a("team").as_deref(), Some("payments"));
        assert_eq!(data_bytes(&e).unwrap(), br#"{"amount":5}"#);
    }

    #[test]
    fn key_types() {
        assert_eq!(key_text(&7i32.to_be_bytes(), KeyType::Int), "7");
        assert_eq!(key_text(&(-3i64).to_be_bytes(), KeyType::Int), "-3");
        assert_eq!(key_text(&1.5f32.to_be_bytes(), KeyType::Float), "1.5");
        assert_eq!(key_text(&2.25f64.to_be_bytes(), KeyType::Float), "2.25");
        assert_eq!(key_text(&[0xff, 0x00], KeyType::ByteArray), "/wA=");
    }

    #[test]
    fn cloudevent_records_pass_through_with_overrides() {
        let headers: Vec<(&str, &[u8])> = vec![
            ("ce_specversion", b"1.0"),
            ("ce_id", b"abc"),
            ("ce_source", b"/producer"),
            ("ce_type", b"thing.done"),
        ];
        let record = RecordView {
            topic: "t",
            partition: 0,
            offset: 1,
            timestamp_ms: None,
            key: None,
            value: Some(b"x"),
            headers,
        };
        let e = map_record(&record, "ns", "src", &mapping(KeyType::String)).unwrap();
        assert_eq!(attribute(&e, "id").as_deref(), Some("abc"));
        assert_eq!(attribute(&e, "type").as_deref(), Some("thing.done"));
        assert_eq!(attribute(&e, "team").as_deref(), Some("payments"));
        assert!(attribute(&e, "kafkaheaderceid").is_none());
    }
}
