//! The journal endpoint: `ferry trace` through a dispatcher, so that it works wherever the
//! dispatcher's admin port is reachable (a `kubectl port-forward`), while the log itself
//! advertises an address only the cluster can reach.
//!
//! `GET /journal/events/{id}?source=&since=&wait=` answers the event's entries as a JSON array
//! (the shape of `ferry trace -o json`; `[]` when the journal has none). With `follow=true` it
//! answers a server-sent-event stream instead: an `entry` event per entry (data: the entry's
//! JSON), one `caught-up` event after the entries the journal held (data: how many), then an
//! `entry` for each new one as it is written, until the client goes away or the dispatcher
//! stops; a `: keep-alive` comment every [`KEEP_ALIVE`] of silence, and an `error` event
//! (data: the message) if the log fails meanwhile.
//!
//! It is served on the admin listener, beside `/metrics`, not on the ingress: the ingress is
//! reachable by everyone who may post an event, and the journal tells which events went where
//! (ids, sources, destinations; never payloads), which is for operators. The endpoint only
//! reads. It reads the journal on every log the contract in force names (a KafkaSource's
//! cluster holds the entries of its deliveries), with [`super::trace`], the code `ferry trace`
//! uses against a log directly.
//!
//! Bad parameters get `400` naming the parameter; an unreadable log `503` with the reason;
//! a dispatcher with journalling off `404`. At most [`MAX_READS`] reads run at once (beyond:
//! `503` with `Retry-After`), each bounded by its `wait` (at most [`MAX_WAIT`]) and the
//! trace's read deadline, or, when following, by the client's connection.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ferry_api::contract::KafkaAuth;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use super::Entry;
use super::trace::{self, JournalLog, Query};
use crate::log_reader::StartAt;

/// Where an event's entries are served; `{id}` is the event id, percent-encoded.
pub const PATH: &str = "/journal/events/{id}";
/// Longest `wait` a request may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// `wait` when a request gives none (`ferry trace --wait`'s default).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(2);
/// Journal reads served at once (each holds a Kafka consumer while it runs).
pub const MAX_READS: usize = 16;
/// How often a quiet follow stream gets a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// Server-sent event name of an entry.
pub const EVENT_ENTRY: &str = "entry";
/// Server-sent event name of "the entries held when the request came have all been sent".
pub const EVENT_CAUGHT_UP: &str = "caught-up";
/// Server-sent event name of a failure that ends a follow stream.
pub const EVENT_ERROR: &str = "error";
/// How long a follower's poll of the log blocks (and so how soon it notices the client left).
const FOLLOW_POLL: Duration = Duration::from_millis(500);
/// Follow-stream events buffered for a slow client.
const STREAM_BUFFER: usize = 64;

/// A request's checked parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// What to look for.
    pub query: Query,
    /// Stream the entries, and the new ones as they are written.
    pub follow: bool,
}

/// A parameter a request got wrong, and how.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{parameter}: {reason}")]
pub struct BadParameter {
    /// The parameter (`id` for the path's event id).
    pub parameter: String,
    /// What is wrong and what it should be.
    pub reason: String,
}

impl BadParameter {
    fn new(parameter: &str, reason: impl Into<String>) -> Self {
        BadParameter {
            parameter: parameter.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Checks a request's event id and query parameters.
///
/// # Errors
/// The first parameter that is wrong: an empty `id` or `source`, a `since` that is not a log
/// position, a `wait` that is not a duration or over [`MAX_WAIT`], a `follow` that is not a
/// boolean, or a parameter the endpoint does not know.
pub fn parse(id: &str, params: &BTreeMap<String, String>) -> Result<Request, BadParameter> {
    if id.trim().is_empty() {
        return Err(BadParameter::new(
            "id",
            "empty; GET /journal/events/<event id>",
        ));
    }
    if let Some(unknown) = params
        .keys()
        .find(|k| !["source", "since", "wait", "follow"].contains(&k.as_str()))
    {
        return Err(BadParameter::new(
            unknown,
            "unknown parameter; the parameters are source, since, wait and follow",
        ));
    }
    let source = match params.get("source") {
        Some(s) if s.is_empty() => {
            return Err(BadParameter::new(
                "source",
                "empty; give the event's source, or leave the parameter out",
            ));
        }
        other => other.cloned(),
    };
    let since = match params.get("since") {
        Some(text) => text
            .parse::<StartAt>()
            .map_err(|e| BadParameter::new("since", e.to_string()))?,
        None => StartAt::Earliest,
    };
    let wait = match params.get("wait") {
        Some(text) => {
            ferry_runtime::duration::parse(text).map_err(|e| BadParameter::new("wait", e))?
        }
        None => DEFAULT_WAIT,
    };
    if wait > MAX_WAIT {
        return Err(BadParameter::new(
            "wait",
            format!("{wait:?} is longer than the most a request may wait, {MAX_WAIT:?}"),
        ));
    }
    let follow = match params.get("follow").map(String::as_str) {
        None | Some("false" | "0") => false,
        Some("true" | "1" | "") => true,
        Some(other) => {
            return Err(BadParameter::new(
                "follow",
                format!("{other:?} is not true or false"),
            ));
        }
    };
    Ok(Request {
        query: Query {
            event_id: id.to_owned(),
            source,
            since,
            wait,
        },
        follow,
    })
}

/// The endpoint's state: the journal topic, the logs the contract in force names, and the
/// bound on reads at once.
pub struct JournalEndpoint {
    /// `None`: journalling is off.
    topic: Option<String>,
    /// Bootstrap servers → how to connect, from the contract in force.
    logs: RwLock<BTreeMap<String, Option<KafkaAuth>>>,
    reads: Arc<Semaphore>,
    stopping: watch::Receiver<bool>,
}

impl JournalEndpoint {
    /// An endpoint reading `topic` (`None`: journalling is off) until `stopping` turns true.
    pub fn new(topic: Option<String>, stopping: watch::Receiver<bool>) -> Arc<Self> {
        Arc::new(JournalEndpoint {
            topic,
            logs: RwLock::default(),
            reads: Arc::new(Semaphore::new(MAX_READS)),
            stopping,
        })
    }

    /// The logs the contract in force names (bootstrap servers and how to connect).
    pub fn set_logs(&self, logs: BTreeMap<String, Option<KafkaAuth>>) {
        *self.logs.write().unwrap_or_else(|p| p.into_inner()) = logs;
    }

    /// The routes: [`PATH`], and its empty-id forms (answered `400`).
    pub fn router(self: Arc<Self>) -> Router {
        let empty_id = || async {
            bad_request(&BadParameter::new(
                "id",
                "empty; GET /journal/events/<event id>",
            ))
        };
        Router::new()
            .route(PATH, get(serve))
            .route("/journal/events", get(empty_id))
            .route("/journal/events/", get(empty_id))
            .with_state(self)
    }

    fn journal_logs(&self, topic: &str) -> Vec<JournalLog> {
        let logs = self.logs.read().unwrap_or_else(|p| p.into_inner());
        logs.iter()
            .map(|(bootstrap, auth)| JournalLog {
                bootstrap: bootstrap.clone(),
                auth: auth.clone(),
                topic: topic.to_owned(),
            })
            .collect()
    }
}

async fn serve(
    State(endpoint): State<Arc<JournalEndpoint>>,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<BTreeMap<String, String>>,
) -> Response {
    let request = match parse(&id, &params) {
        Ok(r) => r,
        Err(bad) => return bad_request(&bad),
    };
    let Some(topic) = &endpoint.topic else {
        return plain(
            StatusCode::NOT_FOUND,
            "the delivery journal is off on this dispatcher (its --journal-topic is empty)",
        );
    };
    let logs = endpoint.journal_logs(topic);
    if logs.is_empty() {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "no contract applied yet, so the journal's log is not known; retry once /readyz answers 200",
        );
    }
    let Ok(permit) = endpoint.reads.clone().try_acquire_owned() else {
        let mut response = plain(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("{MAX_READS} journal reads are running; retry shortly"),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return response;
    };
    let reads = logs.into_iter().map(|log| {
        let query = request.query.clone();
        tokio::task::spawn_blocking(move || {
            trace::read(&log, &query).map_err(|e| {
                tracing::warn!(bootstrap = %log.bootstrap, error = %e, "journal read failed");
                e.to_string()
            })
        })
    });
    let mut entries = Vec::new();
    let mut followers = Vec::new();
    for read in futures::future::join_all(reads).await {
        match read {
            Ok(Ok((found, reader))) => {
                entries.extend(found);
                followers.push(reader);
            }
            Ok(Err(e)) => {
                return plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("cannot read the journal: {e}"),
                );
            }
            Err(e) => {
                return plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("the journal read stopped: {e}"),
                );
            }
        }
    }
    trace::in_order(&mut entries);
    if !request.follow {
        return json_array(&entries);
    }
    follow(&endpoint, request.query, entries, followers, permit)
}

/// The follow stream: what was read, `caught-up`, then one blocking follower per log sending
/// new entries until the client leaves (the stream's receiver is dropped) or the dispatcher
/// stops.
fn follow(
    endpoint: &JournalEndpoint,
    query: Query,
    entries: Vec<Entry>,
    followers: Vec<crate::log_reader::BoundedRead>,
    permit: OwnedSemaphorePermit,
) -> Response {
    let (tx, rx) = mpsc::channel::<Event>(STREAM_BUFFER + entries.len() + 1);
    let caught_up = entries.len();
    for e in &entries {
        let _ = tx.try_send(entry_event(e));
    }
    let _ = tx.try_send(
        Event::default()
            .event(EVENT_CAUGHT_UP)
            .data(caught_up.to_string()),
    );
    let permit = Arc::new(permit);
    for mut reader in followers {
        let (tx, query, permit) = (tx.clone(), query.clone(), permit.clone());
        let stopping = endpoint.stopping.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            while !tx.is_closed() && !*stopping.borrow() {
                match trace::follow(&mut reader, &query, FOLLOW_POLL) {
                    Ok(new) => {
                        for e in &new {
                            if tx.blocking_send(entry_event(e)).is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        let message = format!("cannot read the journal: {e}");
                        let _ = tx.blocking_send(Event::default().event(EVENT_ERROR).data(message));
                        return;
                    }
                }
            }
        });
    }
    drop(tx);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

fn entry_event(entry: &Entry) -> Event {
    let data = serde_json::to_string(entry).unwrap_or_default();
    Event::default().event(EVENT_ENTRY).data(data)
}

fn json_array(entries: &[Entry]) -> Response {
    match serde_json::to_string(entries) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn bad_request(bad: &BadParameter) -> Response {
    plain(StatusCode::BAD_REQUEST, &bad.to_string())
}

fn plain(status: StatusCode, message: &str) -> Response {
    (status, format!("{message}\n")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_read_from_the_start_and_wait_like_ferry_trace() {
        let request = parse("e-1", &params(&[])).unwrap();
        assert_eq!(
            request,
            Request {
                query: Query {
                    event_id: "e-1".into(),
                    source: None,
                    since: StartAt::Earliest,
                    wait: DEFAULT_WAIT,
                },
                follow: false,
            }
        );
        let request = parse(
            "e-1",
            &params(&[
                ("source", "/shop"),
                ("since", "42"),
                ("wait", "500ms"),
                ("follow", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(request.query.source.as_deref(), Some("/shop"));
        assert_eq!(request.query.since, StartAt::Offset(42));
        assert_eq!(request.query.wait, Duration::from_millis(500));
        assert!(request.follow);
    }

    #[test]
    fn each_bad_parameter_is_named() {
        // id, parameters, the parameter named.
        type Row<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let rows: &[Row] = &[
            ("", &[], "id"),
            ("  ", &[], "id"),
            ("e", &[("source", "")], "source"),
            ("e", &[("since", "yesterday")], "since"),
            ("e", &[("wait", "5")], "wait"),
            ("e", &[("wait", "2m")], "wait"),
            ("e", &[("follow", "yes")], "follow"),
            ("e", &[("sinse", "earliest")], "sinse"),
        ];
        for (id, pairs, parameter) in rows {
            let bad = parse(id, &params(pairs)).unwrap_err();
            assert_eq!(bad.parameter, *parameter, "{id:?} {pairs:?}: {bad}");
            assert!(
                bad.to_string().starts_with(&format!("{parameter}: ")),
                "{bad}"
            );
        }
    }
}
