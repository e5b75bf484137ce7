//! One request as the sink saw it.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use cloudevents::Event;

/// A request the sink recorded, with the status it answered.
#[derive(Debug, Clone)]
pub struct Received {
    /// When the request arrived (before any rule delay).
    pub at: Instant,
    /// The request method, e.g. `POST`.
    pub method: String,
    /// The request path, e.g. `/` or `/orders`.
    pub path: String,
    /// Request headers with lowercased names; repeated headers are joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The raw request body.
    pub body: Bytes,
    /// The parsed CloudEvent (binary or structured mode), or why the request is not one.
    pub event: Result<Event, String>,
    /// The status the sink answers (decided on arrival, sent after any delay).
    pub status: u16,
}

impl Received {
    /// A context attribute (`id`, `source`, `type`, `specversion`, `subject`, `time`,
    /// `datacontenttype`, `dataschema`) or extension as a string; `None` when it is missing
    /// or the request was not a CloudEvent.
    pub fn attr(&self, name: &str) -> Option<String> {
        let event = self.event.as_ref().ok()?;
        event
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_string())
    }

    /// The event's data as bytes (JSON data re-serialized); the raw body when the request
    /// was not a CloudEvent; empty when the event has no data.
    pub fn data(&self) -> Vec<u8> {
        match &self.event {
            Ok(event) => event
                .data()
                .cloned()
                .and_then(|data| Vec::try_from(data).ok())
                .unwrap_or_default(),
            Err(_) => self.body.to_vec(),
        }
    }

    /// Whether the sink answered with a 2xx status.
    pub fn is_accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}
