//! Ingress: `POST /<namespace>/<name>` takes CloudEvents (binary, structured or batched mode)
//! and answers `202` only after the log acknowledged every event with `acks=all`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use cloudevents::Event;
use ferry_api::contract::Contract;
use ferry_runtime::telemetry::{Parent, SpanKind, Telemetry};
use tracing::Instrument;

use crate::binding;
use crate::gateway::Gateway;
use crate::journal::{Entry, Journal};
use crate::log::Log;
use crate::metrics::{KnativeSeries, Metrics};
use prometheus_client::metrics::counter::Counter;

/// Where a path's events are written.
#[derive(Clone, Debug)]
pub struct Route {
    /// Bootstrap servers of the log.
    pub bootstrap: String,
    /// Topic of the Broker or KafkaChannel.
    pub topic: String,
    /// `Broker namespace/name` (or KafkaChannel), for the delivery journal.
    pub label: String,
    /// The resource's ingress path (`/<namespace>/<name>`), as metrics name it.
    pub path: String,
    /// `ferry_dispatcher_ingress_events{path, outcome="accepted"}`, resolved on the first
    /// accepted event (as before, the series appears with it).
    accepted: OnceLock<Counter>,
    /// Knative's series of the resource (`None` for a path that names no `namespace/name`).
    knative: Option<KnativeSeries>,
}

/// Ingress paths → topics, rebuilt from each contract.
#[derive(Debug, Default)]
pub struct Routes(HashMap<String, Arc<Route>>);

impl Routes {
    /// The routes of a contract's resources that have an ingress, with their metrics resolved
    /// in `metrics`.
    pub fn from_contract(contract: &Contract, metrics: &Metrics) -> Self {
        Routes(
            contract
                .resources
                .iter()
                .filter_map(|r| {
                    let ingress = r.ingress.as_ref()?;
                    let topic = r.topics.first()?.clone();
                    let path = ingress.path.clone();
                    let knative = path
                        .strip_prefix('/')
                        .and_then(|p| p.split_once('/'))
                        .map(|(namespace, name)| metrics.knative.ingress_series(namespace, name));
                    Some((
                        ingress.path.clone(),
                        Arc::new(Route {
                            bootstrap: r.bootstrap_servers.clone(),
                            topic,
                            label: r.reference.to_string(),
                            accepted: OnceLock::new(),
                            path,
                            knative,
                        }),
                    ))
                })
                .collect(),
        )
    }
}

/// What the ingress handler shares.
pub struct Ingress {
    /// Current routes; swapped whole on contract change.
    pub routes: RwLock<Arc<Routes>>,
    /// The log client.
    pub log: Arc<Log>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Largest accepted body in bytes.
    pub max_body: usize,
    /// How long a post's body may take to arrive.
    pub body_read_timeout: std::time::Duration,
    /// Most events in one batched-mode post.
    pub max_batch_events: usize,
    /// Posts being appended (taken once the body has arrived, so slow uploads hold none); when
    /// none is left, new ones get 503 at once (load shedding instead of an unbounded queue).
    pub in_flight: tokio::sync::Semaphore,
    /// Where accepted events are recorded for `ferry trace`.
    pub journal: Arc<Journal>,
    /// Knative Service URLs: requests whose `Host` names a Route go there, not to the log.
    pub gateway: Arc<Gateway>,
    /// Spans of each accepted event (ingress and append), while tracing is on.
    pub telemetry: Arc<Telemetry>,
}

impl Ingress {
    /// Replaces the routes.
    pub fn apply(&self, contract: &Contract) {
        let routes = Routes::from_contract(contract, &self.metrics);
        for route in routes.0.values() {
            self.log.connect(&route.bootstrap);
        }
        *self.routes.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(routes);
        self.gateway.apply(contract);
    }

    fn route(&self, path: &str) -> Option<Arc<Route>> {
        self.routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .get(path.trim_end_matches('/'))
            .cloned()
    }
}

/// The ingress router: a request whose `Host` names a Knative Route goes to the
/// [`Gateway`]; any other is an event post.
pub fn router(ingress: Arc<Ingress>) -> Router {
    Router::new().fallback(route_or_post).with_state(ingress)
}

/// The external entry's router: only the hosts of Routes that are not cluster-local.
pub fn external_router(ingress: Arc<Ingress>) -> Router {
    Router::new().fallback(external).with_state(ingress)
}

async fn route_or_post(State(ingress): State<Arc<Ingress>>, request: Request) -> Response {
    match ingress.gateway.serve(request, false).await {
        Ok(answered) => answered,
        Err(request) => {
            let started = std::time::Instant::now();
            let (parts, body) = request.into_parts();
            let route = ingress.route(parts.uri.path());
            let mut types = Vec::new();
            let response = handle(
                &ingress,
                route.as_deref(),
                parts.method,
                parts.uri,
                parts.headers,
                body,
                &mut types,
            )
            .await;
            if let Some(knative) = route.as_ref().and_then(|r| r.knative.as_ref()) {
                let status = response.status().as_u16();
                if types.is_empty() {
                    knative.answered("unknown", status, started.elapsed());
                }
                for ty in &types {
                    knative.answered(ty, status, started.elapsed());
                }
            }
            response
        }
    }
}

async fn external(State(ingress): State<Arc<Ingress>>, request: Request) -> Response {
    match ingress.gateway.serve(request, true).await {
        Ok(answered) => answered,
        Err(request) => {
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("(none)")
                .to_owned();
            reject(
                StatusCode::NOT_FOUND,
                format!(
                    "no Knative Service answers at host {host} from outside the cluster; use the host of its status.url (cluster-local Services are not served here)"
                ),
            )
        }
    }
}

fn reject(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message + "\n",
    )
        .into_response()
}

/// Takes an event post to `route` (the request path's); the types of the events it read go
/// to `types` (for Knative's metrics).
async fn handle(
    ingress: &Ingress,
    route: Option<&Route>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
    types: &mut Vec<String>,
) -> Response {
    let Some(route) = route else {
        ingress.metrics.ingress("unknown", "unknown_path", 1);
        return reject(
            StatusCode::NOT_FOUND,
            format!(
                "no Broker or KafkaChannel at {}; post to /<namespace>/<name> of an existing one",
                uri.path()
            ),
        );
    };
    // Metrics name the resource's own path, never the raw request path: one series per
    // Broker or KafkaChannel, whatever clients send.
    let path = route.path.as_str();
    if method != Method::POST {
        ingress.metrics.ingress(path, "method", 1);
        let mut response = reject(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not accepted; POST CloudEvents to {path}"),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return response;
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let too_large = || {
        reject(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body exceeds the {} byte limit", ingress.max_body),
        )
    };
    if declared.is_some_and(|n| n > ingress.max_body) {
        ingress.metrics.ingress(path, "too_large", 1);
        return too_large();
    }
    let body =
        match tokio::time::timeout(ingress.body_read_timeout, to_bytes(body, ingress.max_body))
            .await
        {
            Ok(Ok(b)) => b,
            Ok(Err(_)) => {
                ingress.metrics.ingress(path, "too_large", 1);
                return too_large();
            }
            Err(_) => {
                ingress.metrics.ingress(path, "body_timeout", 1);
                return reject(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the body did not arrive within {} ms; send it at once",
                        ingress.body_read_timeout.as_millis()
                    ),
                );
            }
        };
    // The slot is taken only now: a slow upload holds none.
    let Ok(_slot) = ingress.in_flight.try_acquire() else {
        ingress.metrics.ingress(path, "overloaded", 1);
        return unavailable(
            "too many requests in flight; retry after the Retry-After delay".into(),
        );
    };
    let mut events = match binding::from_ingress(&headers, &body) {
        Ok(events) => events,
        Err(e) => {
            ingress.metrics.ingress(path, "invalid", 1);
            return reject(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    types.extend(
        events
            .iter()
            .map(|e| cloudevents::AttributesReader::ty(e).to_owned()),
    );
    if events.len() > ingress.max_batch_events {
        ingress.metrics.ingress(path, "too_large", 1);
        return reject(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} events in one batch; at most {} (--max-batch-events): split the batch",
                events.len(),
                ingress.max_batch_events
            ),
        );
    }
    if let Some(traceparent) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        for event in &mut events {
            if event.extension("traceparent").is_none() {
                event.set_extension("traceparent", traceparent);
            }
        }
    }
    let count = events.len() as u64;
    match append_all(ingress, route, &events).await {
        Ok(()) => {
            route
                .accepted
                .get_or_init(|| ingress.metrics.ingress_counter(path, "accepted"))
                .inc_by(count);
            StatusCode::ACCEPTED.into_response()
        }
        Err(e) => {
            ingress.metrics.ingress(path, "unavailable", count);
            unavailable(e.to_string())
        }
    }
}

/// Appends one event inside its spans (while tracing is on): `ingress`, continuing the
/// event's `traceparent` (the caller's header was copied into it), and its child `append`,
/// whose context the record carries so that every delivery joins the trace.
async fn append_traced(
    ingress: &Ingress,
    route: &Route,
    event: &Event,
) -> crate::Result<(i32, i64)> {
    let telemetry = &ingress.telemetry;
    if !telemetry.enabled() {
        return ingress
            .log
            .append(&route.bootstrap, &route.topic, event, None)
            .await;
    }
    let caller = binding::attribute(event, "traceparent");
    let mut span = telemetry.start(
        "ingress",
        SpanKind::Server,
        &Parent::remote(caller.as_deref()),
    );
    crate::spans::event_attributes(&mut span, event);
    span.set("ferry.resource", route.label.clone());
    span.set("url.path", route.path.clone());
    let mut append = telemetry.start("append", SpanKind::Producer, &span.parent());
    append.set("messaging.system", "kafka");
    append.set("messaging.operation.type", "send");
    append.set("messaging.destination.name", route.topic.clone());
    let result = ingress
        .log
        .append(
            &route.bootstrap,
            &route.topic,
            event,
            append.traceparent().as_deref(),
        )
        .await;
    match &result {
        Ok((partition, offset)) => {
            append.set("messaging.destination.partition.id", partition.to_string());
            append.set("messaging.kafka.offset", *offset);
            span.set("http.response.status_code", 202_i64);
        }
        Err(e) => {
            append.fail(e.to_string());
            span.fail(e.to_string());
            span.set("http.response.status_code", 503_i64);
        }
    }
    result
}

/// 503 with `Retry-After: 1`.
fn unavailable(message: String) -> Response {
    let mut response = reject(StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response
}

async fn append_all(ingress: &Ingress, route: &Route, events: &[Event]) -> crate::Result<()> {
    let appends = events.iter().map(|event| {
        let span = tracing::info_span!("ingress", event.id = %cloudevents::AttributesReader::id(event), topic = %route.topic);
        append_traced(ingress, route, event).instrument(span)
    });
    // A batch is appended concurrently, not one round trip per event.
    let results = futures::future::join_all(appends).await;
    let now = chrono::Utc::now().timestamp_millis();
    for (event, result) in events.iter().zip(results) {
        let (partition, offset) = result?;
        let entry = Entry {
            event_id: cloudevents::AttributesReader::id(event),
            source: cloudevents::AttributesReader::source(event).as_str(),
            at_ms: now,
            by: route.label.as_str(),
            topic: route.topic.as_str(),
            partition,
            offset,
            outcome: "accepted",
            attempts: 0,
            code: None,
            destination: None,
            dead_letter_sink: None,
            took_ms: None,
        };
        ingress.journal.record(&route.bootstrap, &entry);
    }
    Ok(())
}
