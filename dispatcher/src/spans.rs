//! The spans of an event's way through the dispatcher, exported over OTLP while tracing is on
//! ([`ferry_runtime::telemetry`]).
//!
//! One trace per event: `ingress` (continuing the caller's `traceparent`) with its child
//! `append`, whose context the record carries in its `traceparent` header; then per egress a
//! `deliver` span with one `attempt` child per HTTP attempt (the subscriber receives the
//! attempt's `traceparent`, so its own spans join the trace), and `reply` and `dead-letter`
//! children when the event goes there. A reply appended to the log carries the `reply` span's
//! context, so its deliveries continue the same trace.

use cloudevents::{AttributesReader, Event};
use ferry_runtime::telemetry::Span;

use crate::egress::policy::Attempt;

/// The event's identity on a span (CloudEvents semantic conventions).
pub fn event_attributes(span: &mut Span, event: &Event) {
    if !span.is_some() {
        return;
    }
    span.set("cloudevents.event_id", event.id().to_owned());
    span.set("cloudevents.event_source", event.source().to_string());
    span.set("cloudevents.event_type", event.ty().to_owned());
    span.set(
        "cloudevents.event_spec_version",
        event.specversion().to_string(),
    );
}

/// An HTTP attempt's result on its span: the status code (4xx and 5xx mark it failed), or
/// why there was none.
pub fn attempt_result(span: &mut Span, outcome: &Attempt) {
    match outcome {
        Attempt::Status { code, .. } => {
            span.set("http.response.status_code", i64::from(*code));
            if *code >= 400 {
                span.fail(format!("answered {code}"));
            }
        }
        Attempt::Timeout => {
            span.set("error.type", "timeout");
            span.fail("no answer within the delivery timeout");
        }
        Attempt::Connection => {
            span.set("error.type", "connection");
            span.fail("connecting or sending failed");
        }
    }
}
