//! An OpenTelemetry collector for tests: a real OTLP receiver on loopback that records every
//! span it is sent, over gRPC (`TraceService/Export`) and over HTTP with protobuf bodies
//! (`POST /v1/traces`), on one port. Built from the `opentelemetry-proto` types, so it reads
//! exactly what an OpenTelemetry Collector would.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use tokio::sync::{oneshot, watch};

/// One span as the receiver got it (ids in lowercase hex, as in `traceparent`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedSpan {
    /// The `service.name` of the resource that sent it.
    pub service: String,
    /// The span's name.
    pub name: String,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits; empty for a root span.
    pub parent_span_id: String,
    /// OTLP's span kind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
    pub kind: i32,
    /// Attributes, each value as text.
    pub attributes: BTreeMap<String, String>,
    /// OTLP's status code: 0 unset, 1 ok, 2 error.
    pub status: i32,
    /// The status message.
    pub status_message: String,
    /// `grpc` or `http`: how it arrived.
    pub protocol: &'static str,
}

impl ReceivedSpan {
    /// An attribute's text.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// A running receiver; stops when dropped.
pub struct OtlpReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _stop: oneshot::Sender<()>,
}

struct Shared {
    spans: Mutex<Vec<ReceivedSpan>>,
    changed: watch::Sender<u64>,
}

impl OtlpReceiver {
    /// Starts a receiver on an ephemeral loopback port (HTTP/1.1 and h2c).
    ///
    /// # Panics
    /// When it cannot bind the port.
    pub async fn start() -> OtlpReceiver {
        let shared = Arc::new(Shared {
            spans: Mutex::default(),
            changed: watch::Sender::new(0),
        });
        let grpc = tonic::service::Routes::new(TraceServiceServer::new(Grpc(shared.clone())))
            .into_axum_router();
        let app = grpc.merge(
            axum::Router::new()
                .route("/v1/traces", post(http_export))
                .with_state(shared.clone()),
        );
        let (addr, stop) = crate::serve_on_loopback(app, "OTLP receiver").await;
        OtlpReceiver {
            addr,
            shared,
            _stop: stop,
        }
    }

    /// The `tracing-endpoint` for `grpc`.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `tracing-endpoint` for `http/protobuf`.
    pub fn http_endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.shared
            .spans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until `done` holds for the spans received, up to `timeout`; the spans then.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + timeout;
        let mut changed = self.shared.changed.subscribe();
        loop {
            let spans = self.spans();
            let left = deadline.saturating_duration_since(Instant::now());
            if done(&spans) || left.is_zero() {
                return spans;
            }
            let _ = tokio::time::timeout(left, changed.changed()).await;
        }
    }
}

fn record(shared: &Shared, request: ExportTraceServiceRequest, protocol: &'static str) {
    let mut received = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
            .map(text)
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                let status = span.status.unwrap_or_default();
                received.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    kind: span.kind,
                    attributes: span
                        .attributes
                        .into_iter()
                        .map(|kv| {
                            let value = kv.value.and_then(|v| v.value).map(|v| text(&v));
                            (kv.key, value.unwrap_or_default())
                        })
                        .collect(),
                    status: status.code,
                    status_message: status.message,
                    protocol,
                });
            }
        }
    }
    shared
        .spans
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(received);
    shared.changed.send_modify(|n| *n += 1);
}

fn text(value: &Value) -> String {
    match value {
        Value::StringValue(s) => s.clone(),
        Value::BoolValue(b) => b.to_string(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Grpc(Arc<Shared>);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        record(&self.0, request.into_inner(), "grpc");
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn http_export(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match ExportTraceServiceRequest::decode(body) {
        Ok(request) => {
            record(&shared, request, "http");
            (
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                ExportTraceServiceResponse::default().encode_to_vec(),
            )
                .into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            format!("not an OTLP ExportTraceServiceRequest: {e}"),
        )
            .into_response(),
    }
}
