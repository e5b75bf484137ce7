//! The examples' dead-letter sink: a revision process that records every CloudEvent it receives.
//!
//! `POST` on any path accepts a CloudEvent in binary or structured content mode and records it as
//! a JSON object of its attributes plus `data` (or `data_base64`); `GET /events` returns the
//! recorded events (the last 10,000) in arrival order. Dead-lettered events keep Knative's
//! `knativeerrordest`, `knativeerrorcode` and `knativeerrordata` extensions as attributes.
//!
//! Environment: `PORT` (default 8080), `LISTEN_HOST` (default `0.0.0.0`; `ferry dev` sets
//! `127.0.0.1`), `K_REVISION` (optional), `EVENTS_FILE` (optional: also append each event as one JSON line to this file) and
//! `REPLY_TYPE` (optional: answer each event with a reply event of this type carrying the same
//! data, id `<id>-reply` — what a Subscription's `reply` or a Trigger's broker then receives)
//! and `DELAY_MS` (optional: answer each event this much later, to play a slow service), and
//! `RECORD_RAW` (optional, `true`: a POST that is not a CloudEvent is recorded too, as
//! `{"path", "content_type", "body_base64"}`, and answered 200 with an empty body — which is
//! also an empty OTLP/HTTP export response, so the recorder can stand in for a trace collector
//! in tests).
//! `GET /stats` reports the events this process received and the most it had in flight.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use revision_process::{Listen, env, shutdown_signal};
use serde_json::{Map, Value};
use tokio::net::TcpListener;

/// How many events are kept in memory.
const KEEP: usize = 10_000;

/// The media type of `content-type` (parameters dropped, lowercased).
fn media_type(content_type: &str) -> String {
    let essence = content_type.split(';').next().unwrap_or_default();
    essence.trim().to_ascii_lowercase()
}

fn is_json(media: &str) -> bool {
    media == "application/json" || media == "text/json" || media.ends_with("+json")
}

/// Decodes the `%XX` escapes the HTTP binding applies to `ce-*` header values.
fn percent_decode(raw: &[u8]) -> String {
    let hex = |i: usize| raw.get(i).and_then(|&b| char::from(b).to_digit(16));
    let (mut out, mut i) = (Vec::with_capacity(raw.len()), 0);
    while i < raw.len() {
        match (raw[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..4 {
            let sextet = (n >> (18 - 6 * i)) & 63;
            out.push(if i <= chunk.len() {
                char::from(ALPHABET[sextet as usize])
            } else {
                '='
            });
        }
    }
    out
}

/// Parses a CloudEvent in binary or structured content mode into one JSON object, or a
/// one-line reason the request is not a CloudEvent.
fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Value, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let media = content_type.as_deref().map(media_type).unwrap_or_default();
    if media == "application/cloudevents+json" {
        let event: Map<String, Value> = serde_json::from_slice(body)
            .map_err(|e| format!("structured event is not a JSON object: {e}"))?;
        if !event.get("specversion").is_some_and(Value::is_string) {
            return Err("structured event has no specversion".into());
        }
        return Ok(Value::Object(event));
    }
    if media == "application/cloudevents-batch+json" {
        return Err("batched content mode is not supported".into());
    }
    if !headers.contains_key("ce-specversion") {
        return Err(
            "not a CloudEvent: no ce-specversion header and not application/cloudevents+json"
                .into(),
        );
    }
    let mut event = Map::new();
    for (name, value) in headers {
        if let Some(attribute) = name.as_str().strip_prefix("ce-") {
            event.insert(
                attribute.to_owned(),
                percent_decode(value.as_bytes()).into(),
            );
        }
    }
    if let Some(content_type) = content_type {
        event.insert("datacontenttype".into(), content_type.into());
    }
    if !body.is_empty() {
        let json = is_json(&media)
            .then(|| serde_json::from_slice(body).ok())
            .flatten();
        let (key, data) = match (json, std::str::from_utf8(body)) {
            (Some(json), _) => ("data", json),
            (None, Ok(text)) => ("data", text.into()),
            (None, Err(_)) => ("data_base64", base64(body).into()),
        };
        event.insert(key.into(), data);
    }
    Ok(Value::Object(event))
}

/// The recorded events, and where else to append them.
struct Recorder {
    events: Mutex<VecDeque<Value>>,
    file: Option<PathBuf>,
    reply_type: Option<String>,
    delay: Option<std::time::Duration>,
    /// Record POSTs that are not CloudEvents too (`RECORD_RAW`).
    raw: bool,
    /// (in flight now, most in flight at once, received).
    load: Mutex<(u64, u64, u64)>,
}

impl Recorder {
    fn new(
        file: Option<PathBuf>,
        reply_type: Option<String>,
        delay: Option<std::time::Duration>,
        raw: bool,
    ) -> Arc<Self> {
        Arc::new(Self {
            events: Mutex::default(),
            file,
            reply_type,
            delay,
            raw,
            load: Mutex::default(),
        })
    }

    /// Keeps `event` in memory, dropping the oldest beyond [`KEEP`].
    fn keep(&self, event: Value) {
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        if events.len() == KEEP {
            events.pop_front();
        }
        events.push_back(event);
    }

    fn load(&self) -> std::sync::MutexGuard<'_, (u64, u64, u64)> {
        self.load.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The reply to `event`: a binary-mode CloudEvent of type `ty` with the same data.
fn reply(event: &Value, ty: &str) -> Response {
    let id = format!("{}-reply", event["id"].as_str().unwrap_or_default());
    let (content_type, body) = match (&event["data"], &event["data_base64"]) {
        (Value::Null, Value::Null) => (None, String::new()),
        (Value::String(text), _) => (event["datacontenttype"].as_str(), text.clone()),
        (Value::Null, _) => (None, String::new()),
        (data, _) => (Some("application/json"), data.to_string()),
    };
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header("ce-specversion", "1.0")
        .header("ce-id", id)
        .header("ce-source", "/event-recorder")
        .header("ce-type", ty);
    if let Some(ct) = content_type {
        response = response.header(header::CONTENT_TYPE, ct);
    }
    response
        .body(body.into())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Appends one line to `path` under an exclusive lock, so concurrent recorders never interleave.
fn append_line(path: &Path, line: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.lock()?;
    file.write_all(line)
}

async fn record(
    State(recorder): State<Arc<Recorder>>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return StatusCode::NOT_FOUND.into_response();
    }
    let event = match parse(&headers, &body) {
        Ok(event) => event,
        Err(_) if recorder.raw => {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            let raw = serde_json::json!({
                "path": uri.path(),
                "content_type": content_type,
                "body_base64": base64(&body),
            });
            recorder.keep(raw);
            return (
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                Bytes::new(),
            )
                .into_response();
        }
        Err(reason) => return (StatusCode::BAD_REQUEST, reason).into_response(),
    };
    {
        let mut load = recorder.load();
        load.0 += 1;
        load.1 = load.1.max(load.0);
        load.2 += 1;
    }
    if let Some(delay) = recorder.delay {
        tokio::time::sleep(delay).await;
    }
    let response = store(&recorder, event).await;
    recorder.load().0 -= 1;
    response
}

async fn store(recorder: &Arc<Recorder>, event: Value) -> Response {
    if let Some(path) = recorder.file.clone() {
        let line = format!("{event}\n");
        let appended =
            tokio::task::spawn_blocking(move || append_line(&path, line.as_bytes())).await;
        if let Err(e) = appended.map_err(io::Error::other).and_then(|result| result) {
            eprintln!("event-recorder: error: appending to EVENTS_FILE: {e}");
            return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
        }
    }
    let response = match &recorder.reply_type {
        Some(ty) => reply(&event, ty),
        None => StatusCode::OK.into_response(),
    };
    recorder.keep(event);
    response
}

async fn list(State(recorder): State<Arc<Recorder>>) -> Response {
    let events = recorder
        .events
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let body = Value::Array(events.iter().cloned().collect()).to_string();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn stats(State(recorder): State<Arc<Recorder>>) -> Response {
    let (_, most, received) = *recorder.load();
    let body = serde_json::json!({"received": received, "max_in_flight": most}).to_string();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn app(recorder: Arc<Recorder>) -> Router {
    Router::new()
        .route("/events", get(list))
        .route("/stats", get(stats))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(record)
        .with_state(recorder)
}

/// Serves the recorder on `listener` until `shutdown` completes, then drains in-flight requests.
async fn serve(
    listener: TcpListener,
    recorder: Arc<Recorder>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(listener, app(recorder))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn run() -> io::Result<()> {
    let listen = Listen::from_env()?;
    let file = env("EVENTS_FILE").map(PathBuf::from);
    if let Some(parent) = file
        .as_deref()
        .and_then(|f| f.parent())
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", parent.display())))?;
    }
    let listener = listen.bind("event-recorder").await?;
    let delay = match env("DELAY_MS") {
        Some(ms) => Some(std::time::Duration::from_millis(ms.parse().map_err(
            |e| io::Error::new(io::ErrorKind::InvalidInput, format!("DELAY_MS: {e}")),
        )?)),
        None => None,
    };
    let raw = match env("RECORD_RAW") {
        Some(raw) => raw.parse::<bool>().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("RECORD_RAW={raw:?}: write true or false"),
            )
        })?,
        None => false,
    };
    let recorder = Recorder::new(file, env("REPLY_TYPE"), delay, raw);
    serve(listener, recorder, shutdown_signal()).await
}

#[tokio::main]
async fn main() -> ExitCode {
    revision_process::exit("event-recorder", run().await)
}

#[cfg(test)]
mod tests;
