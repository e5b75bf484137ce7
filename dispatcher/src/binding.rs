//! CloudEvents on the wire: the HTTP binding (binary and structured mode, parsing through
//! `cloudevents-sdk`) and the Kafka binding (binary content mode: `ce_` headers, data as the
//! value, `content-type` header for `datacontenttype`).

use std::borrow::Cow;

use cloudevents::event::{AttributeValue, ExtensionValue, SpecVersion};
use cloudevents::{AttributesReader, Data, Event};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::{Error, Result};

/// `Content-Type` of a structured-mode event.
pub const STRUCTURED: &str = "application/cloudevents+json";
/// `Content-Type` of a batch of structured events.
pub const BATCH: &str = "application/cloudevents-batch+json";

/// The binary-mode `ce-specversion` header, as a name: looking a header up by `&str` parses and
/// validates the name on every call.
pub const SPECVERSION_HEADER: HeaderName = HeaderName::from_static("ce-specversion");

/// [`Error::InvalidEvent`]: why bytes are not a valid CloudEvent, in words a client is told.
fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidEvent(reason.into())
}

/// Parses the events of a post to the ingress: a batch (`Content-Type:
/// application/cloudevents-batch+json`), else one event in binary or structured mode.
///
/// # Errors
/// As [`from_batch`] and [`from_http`].
pub fn from_ingress(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Event>> {
    if content_type(headers).is_some_and(|ct| ct.starts_with(BATCH)) {
        from_batch(body)
    } else {
        from_http(headers, body.to_vec()).map(|e| vec![e])
    }
}

/// Parses one event from an HTTP request or response (binary or structured mode).
///
/// # Errors
/// Missing or malformed required attributes, a specversion other than 1.0, extension names
/// that break the CloudEvents naming rules, or a malformed structured body.
pub fn from_http(headers: &HeaderMap, body: Vec<u8>) -> Result<Event> {
    if let Some(v) = headers
        .get(&SPECVERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        && v != "1.0"
    {
        return Err(unsupported_version(v));
    }
    if content_type(headers).is_some_and(|ct| ct.starts_with(STRUCTURED)) {
        return from_structured_json(&body);
    }
    if !headers.contains_key(&SPECVERSION_HEADER) {
        return Err(invalid(
            "not a CloudEvent: no ce-specversion header (binary mode) and Content-Type is not application/cloudevents+json (structured mode)",
        ));
    }
    let event = cloudevents::binding::http::to_event(headers, body).map_err(describe)?;
    check(event)
}

/// Parses a structured-mode JSON event.
///
/// # Errors
/// As [`from_http`].
pub fn from_structured_json(body: &[u8]) -> Result<Event> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("malformed JSON: {e}")))?;
    event_from_value(value)
}

/// Parses a batched-mode body (`application/cloudevents-batch+json`): a JSON array of
/// structured events.
///
/// # Errors
/// Malformed JSON, not an array, or any invalid event (named by its index).
pub fn from_batch(body: &[u8]) -> Result<Vec<Event>> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("malformed JSON: {e}")))?;
    let serde_json::Value::Array(items) = value else {
        return Err(invalid("a batch must be a JSON array of events"));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| event_from_value(item).map_err(|e| invalid(format!("event [{i}]: {e}"))))
        .collect()
}

fn event_from_value(value: serde_json::Value) -> Result<Event> {
    let serde_json::Value::Object(map) = &value else {
        return Err(invalid("a structured event must be a JSON object"));
    };
    match map.get("specversion") {
        None => {
            return Err(invalid("missing required attribute specversion"));
        }
        Some(serde_json::Value::String(v)) if v == "1.0" => {}
        Some(serde_json::Value::String(v)) => return Err(unsupported_version(v)),
        Some(other) => {
            return Err(invalid(format!(
                "specversion must be the string \"1.0\", got {other}"
            )));
        }
    }
    for required in ["id", "source", "type"] {
        match map.get(required) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => {}
            Some(_) => {
                return Err(invalid(format!(
                    "attribute {required} must be a non-empty string"
                )));
            }
            None => {
                return Err(invalid(format!("missing required attribute {required}")));
            }
        }
    }
    let event: Event =
        serde_json::from_value(value).map_err(|e| invalid(format!("invalid event: {e}")))?;
    check(event)
}

fn unsupported_version(v: &str) -> Error {
    invalid(format!(
        "specversion {v:?} is not supported; send CloudEvents 1.0"
    ))
}

fn describe(e: cloudevents::message::Error) -> Error {
    invalid(format!("invalid CloudEvent: {e}"))
}

/// Checks what the SDK does not: non-empty id/source/type and extension names of lowercase
/// letters and digits.
fn check(event: Event) -> Result<Event> {
    if event.specversion() != SpecVersion::V10 {
        return Err(unsupported_version(&event.specversion().to_string()));
    }
    if event.id().is_empty() || event.ty().is_empty() || event.source().is_empty() {
        return Err(invalid("attributes id, source and type must not be empty"));
    }
    for (name, _) in event.iter_extensions() {
        if !valid_attribute_name(name) {
            return Err(invalid(format!(
                "extension name {name:?} is invalid: CloudEvents attribute names use only lowercase letters a-z and digits 0-9"
            )));
        }
        if name == "data" {
            // In structured mode `data` is the event's data: such an event could not be sent on.
            return Err(invalid(
                "extension name \"data\" is reserved for the event's data; rename the attribute (a ce-data header in binary mode)",
            ));
        }
    }
    Ok(event)
}

/// CloudEvents attribute names: lowercase ASCII letters and digits.
pub fn valid_attribute_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// An attribute or extension as text (the form both bindings put in headers).
pub fn attribute_text(value: &AttributeValue<'_>) -> String {
    attribute_str(value).into_owned()
}

/// [`attribute_text`], borrowed from the event where the value is text already.
fn attribute_str<'a>(value: &AttributeValue<'a>) -> Cow<'a, str> {
    match *value {
        AttributeValue::String(s) => Cow::Borrowed(s),
        AttributeValue::URI(u) => Cow::Borrowed(u.as_str()),
        AttributeValue::URIRef(u) => Cow::Borrowed(u.as_str()),
        AttributeValue::Time(t) => t
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            .into(),
        ref other => other.to_string().into(),
    }
}

/// Looks up an attribute or extension by name.
pub fn attribute(event: &Event, name: &str) -> Option<String> {
    event
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| attribute_text(&v))
}

/// The event's data as bytes (JSON re-serialized).
pub fn data_bytes(event: &Event) -> Option<Vec<u8>> {
    event.data().map(|data| match data {
        Data::Binary(b) => b.clone(),
        Data::String(s) => s.clone().into_bytes(),
        Data::Json(v) => serde_json::to_vec(v).unwrap_or_default(),
    })
}

/// `name: value` pairs of binary mode with the given header prefix (`ce-` for HTTP, `ce_`
/// for Kafka); `datacontenttype` becomes `content-type`.
pub fn binary_headers(event: &Event, prefix: &str) -> Vec<(String, String)> {
    event
        .iter()
        .map(|(name, value)| {
            let text = attribute_text(&value);
            if name == "datacontenttype" {
                ("content-type".to_owned(), text)
            } else {
                (format!("{prefix}{name}"), text)
            }
        })
        .collect()
}

/// Whether binary mode would be read back as something else: its `Content-Type` is the
/// event's `datacontenttype`, and one starting with `application/cloudevents` marks a
/// structured (or batched) message, so the data would be read as the event.
fn binary_is_ambiguous(event: &Event) -> bool {
    event.datacontenttype().is_some_and(|ct| {
        ct.as_bytes()
            .get(..MEDIA_TYPE_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(MEDIA_TYPE_PREFIX.as_bytes()))
    })
}

/// What the structured and batched media types start with.
const MEDIA_TYPE_PREFIX: &str = "application/cloudevents";

/// An HTTP request body and headers for the event in binary or structured mode (structured
/// whatever is asked when binary mode would be misread: see [`binary_is_ambiguous`]).
pub fn to_http(event: &Event, structured: bool) -> (HeaderMap, Vec<u8>) {
    let mut headers = HeaderMap::new();
    if structured || binary_is_ambiguous(event) {
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(STRUCTURED),
        );
        return (headers, serde_json::to_vec(event).unwrap_or_default());
    }
    // As `binary_headers(event, "ce-")`, without a name and a value string per attribute.
    let mut ce_name = String::with_capacity(32);
    for (name, value) in event.iter() {
        let name = if name == "datacontenttype" {
            Ok(http::header::CONTENT_TYPE)
        } else {
            ce_name.clear();
            ce_name.push_str("ce-");
            ce_name.push_str(name);
            HeaderName::from_bytes(ce_name.as_bytes())
        };
        let text = attribute_str(&value);
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_str(&percent_encode(&text))) {
            headers.insert(name, value);
        }
    }
    (headers, data_bytes(event).unwrap_or_default())
}

/// Percent-encodes what an HTTP header value cannot carry: control characters and anything
/// outside ASCII. The CloudEvents HTTP binding also lists space, `"` and `%`; those are legal
/// in header values and are sent as they are, because common receivers (the Rust SDK among
/// them) do not decode percent-encoding and would see `%20` instead of a space.
fn percent_encode(text: &str) -> Cow<'_, str> {
    if text.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..=0x7e).contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Cow::Owned(out)
}

/// A Kafka record for the event: headers, value and key (the `partitionkey` extension).
pub struct KafkaRecord {
    /// `ce_*` and `content-type` headers.
    pub headers: Vec<(String, String)>,
    /// The event's data.
    pub value: Option<Vec<u8>>,
    /// The `partitionkey` extension, when present.
    pub key: Option<String>,
}

/// The event in Kafka binary content mode (structured mode when binary mode would be misread:
/// see [`binary_is_ambiguous`]).
pub fn to_kafka(event: &Event) -> KafkaRecord {
    let key = event
        .extension("partitionkey")
        .map(ExtensionValue::to_string);
    if binary_is_ambiguous(event) {
        return KafkaRecord {
            headers: vec![("content-type".to_owned(), STRUCTURED.to_owned())],
            value: Some(serde_json::to_vec(event).unwrap_or_default()),
            key,
        };
    }
    KafkaRecord {
        headers: binary_headers(event, "ce_"),
        value: data_bytes(event),
        key,
    }
}

/// Reads a record written in binary (`ce_` headers) or structured (`content-type:
/// application/cloudevents+json`) content mode; `Ok(None)` when the record is not a CloudEvent.
///
/// # Errors
/// A record that claims to be a CloudEvent but is not a valid one.
pub fn from_kafka<'h>(
    headers: impl Iterator<Item = (&'h str, &'h [u8])>,
    value: Option<&[u8]>,
) -> Result<Option<Event>> {
    let mut map = HeaderMap::new();
    // One buffer for every header's HTTP name, not a string per header.
    let mut http_name = String::with_capacity(32);
    for (name, raw) in headers {
        http_name.clear();
        match name.strip_prefix("ce_") {
            Some(attr) => {
                http_name.push_str("ce-");
                http_name.push_str(attr);
            }
            None if name.eq_ignore_ascii_case("content-type") => http_name.push_str("content-type"),
            None => continue,
        }
        let name = HeaderName::from_bytes(http_name.as_bytes())
            .map_err(|_| invalid(format!("header {name:?} is not a valid attribute name")))?;
        let value = HeaderValue::from_bytes(raw)
            .map_err(|_| invalid(format!("header {name} holds bytes that are not text")))?;
        map.insert(name, value);
    }
    let structured = content_type(&map).is_some_and(|ct| ct.starts_with(STRUCTURED));
    if !map.contains_key(&SPECVERSION_HEADER) && !structured {
        return Ok(None);
    }
    from_http(&map, value.unwrap_or_default().to_vec()).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudevents::{EventBuilder, EventBuilderV10};

    fn event() -> Event {
        EventBuilderV10::new()
            .id("1")
            .source("/orders")
            .ty("order.created")
            .extension("partitionkey", "cart-7")
            .data("application/json", serde_json::json!({"sku": "A"}))
            .build()
            .unwrap()
    }

    /// Same attributes and data bytes (binary mode reads JSON data back as bytes).
    fn assert_same(a: &Event, b: &Event) {
        let attrs = |e: &Event| {
            e.iter()
                .map(|(n, v)| (n.to_owned(), attribute_text(&v)))
                .collect::<Vec<_>>()
        };
        assert_eq!(attrs(a), attrs(b));
        assert_eq!(data_bytes(a), data_bytes(b));
    }

    #[test]
    fn kafka_round_trip_keeps_attributes_data_and_key() {
        let e = event();
        let record = to_kafka(&e);
        assert_eq!(record.key.as_deref(), Some("cart-7"));
        assert!(
            record
                .headers
                .contains(&("ce_type".into(), "order.created".into()))
        );
        assert!(
            record
                .headers
                .contains(&("content-type".into(), "application/json".into()))
        );
        let back = from_kafka(
            record
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_bytes())),
            record.value.as_deref(),
        )
        .unwrap()
        .unwrap();
        assert_same(&back, &e);
        assert!(
            from_kafka(std::iter::empty(), Some(b"plain"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn http_round_trip_binary_and_structured() {
        let e = event();
        for structured in [false, true] {
            let (headers, body) = to_http(&e, structured);
            assert_same(&from_http(&headers, body).unwrap(), &e);
        }
    }

    #[test]
    fn binary_http_headers_are_the_binary_headers_percent_encoded() {
        let mut e = event();
        e.set_extension("count", 7i64);
        e.set_extension("flag", true);
        e.set_extension("note", "café\tbar");
        cloudevents::AttributesWriter::set_time(
            &mut e,
            chrono::DateTime::from_timestamp(1_700_000_000, 5_000),
        );
        let (headers, body) = to_http(&e, false);
        let expected: Vec<(String, String)> = binary_headers(&e, "ce-")
            .into_iter()
            .map(|(name, text)| (name, percent_encode(&text).into_owned()))
            .collect();
        let mut got: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        let mut want = expected.clone();
        got.sort();
        want.sort();
        assert_eq!(got, want);
        assert!(want.contains(&("ce-note".into(), "caf%C3%A9%09bar".into())));
        assert!(want.contains(&("ce-time".into(), "2023-11-14T22:13:20.000005Z".into())));
        assert_eq!(body, br#"{"sku":"A"}"#);
    }

    #[test]
    fn invalid_events_are_named() {
        let cases: [(&str, &str); 5] = [
            ("{", "malformed JSON"),
            (
                r#"{"specversion":"0.3","id":"1","source":"/s","type":"t"}"#,
                "specversion \"0.3\" is not supported",
            ),
            (
                r#"{"specversion":"1.0","source":"/s","type":"t"}"#,
                "missing required attribute id",
            ),
            (
                r#"{"specversion":"1.0","id":"1","source":"/s","type":""}"#,
                "attribute type must be a non-empty string",
            ),
            (
                r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","Bad_Ext":"x"}"#,
                "extension name \"Bad_Ext\" is invalid",
            ),
        ];
        for (body, expected) in cases {
            let err = from_structured_json(body.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{body}: {err}");
        }
        let err =
            from_batch(br#"[{"specversion":"1.0","id":"1","source":"/s","type":"t"}, {"id":"2"}]"#)
                .unwrap_err()
                .to_string();
        assert!(
            err.starts_with("event [1]: missing required attribute specversion"),
            "{err}"
        );
        let err = from_http(&HeaderMap::new(), b"hello".to_vec())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("not a CloudEvent"), "{err}");
        // A `ce-data` header made an extension that structured mode cannot carry beside the
        // data (found by the cloudevent_ingress fuzz target).
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-source", "/s"),
            ("ce-type", "t"),
            ("ce-data", "x"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        let err = from_http(&headers, b"hello".to_vec())
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"data\" is reserved"), "{err}");
    }

    /// An event whose data is itself a CloudEvent: in binary mode its Content-Type would mark
    /// a structured message, so it goes structured (found by the cloudevent_ingress fuzz
    /// target).
    #[test]
    fn data_of_a_cloudevents_media_type_goes_structured() {
        let event = EventBuilderV10::new()
            .id("1")
            .source("/s")
            .ty("t")
            .data("Application/CloudEvents+json; charset=utf-8", "{}")
            .build()
            .unwrap();
        let (headers, body) = to_http(&event, false);
        assert_eq!(from_http(&headers, body).unwrap(), event);
        let record = to_kafka(&event);
        let headers = record
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()));
        let back = from_kafka(headers, record.value.as_deref()).unwrap();
        assert_eq!(back, Some(event));
    }

    #[test]
    fn header_values_are_percent_encoded() {
        assert_eq!(percent_encode("a b\"%é\n"), "a b\"%%C3%A9%0A");
        assert!(matches!(percent_encode("a b~"), Cow::Borrowed("a b~")));
    }
}
