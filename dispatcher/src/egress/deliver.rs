//! Delivering one event: HTTP attempts with Knative's retry rules, the reply, and the
//! dead-letter sink with the `knativeerror*` extensions.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use base64::Engine;
use bytes::Bytes;
use cloudevents::{AttributesReader, Event};
use ferry_api::contract::{DeliveryPolicy, Egress, ObjectRef, Reply};
use ferry_api::duck::DeliveryFormat;
use ferry_runtime::telemetry::{Parent, Span, SpanKind, Telemetry};
use http::HeaderMap;
use http_body_util::BodyExt;
use rand::rngs::SmallRng;
use tracing::Instrument;

use super::client::{HttpClient, ParsedUrls, SendError};
use super::filter::EventFilter;
use super::policy::{Attempt, Verdict, decide};
use super::traffic;
use crate::activator::Activator;
use crate::binding;
use crate::journal::{Entry, Journal};
use crate::log::Log;
use crate::metrics::{EgressMetrics, EgressOutcome, KnativeConsumer, KnativeSeries, Metrics};
use crate::{Error, Result};

/// Longest `knativeerrordata` value (Knative truncates the response body to 1024 bytes).
pub const ERROR_DATA_MAX: usize = 1024;
/// Largest response body read (a reply event, or error data).
pub const REPLY_MAX: usize = 4 << 20;

/// Everything one egress needs to deliver an event.
pub struct Deliverer {
    /// The contract's egress.
    pub egress: Egress,
    /// `Kind namespace/name` of the egress, for metrics and logs.
    pub label: String,
    /// Bootstrap servers and topic of the resource (where Trigger replies go).
    pub reply_log: (String, String),
    /// Compiled filters.
    pub filter: EventFilter,
    /// Shared HTTP client (connection pool).
    pub http: HttpClient,
    /// Log client for replies.
    pub log: Arc<Log>,
    /// The metrics registry (consumer lag is labelled per partition).
    pub metrics: Arc<Metrics>,
    /// This egress's counters and histograms.
    pub counters: EgressMetrics,
    /// Knative's series of this consumer's deliveries.
    pub knative: KnativeSeries,
    /// Traffic-split choices; seedable for tests.
    pub rng: std::sync::Mutex<SmallRng>,
    /// Where settlements are recorded for `ferry trace`.
    pub journal: Arc<Journal>,
    /// Revisions whose deliveries wait for a ready replica with room.
    pub activator: Arc<Activator>,
    /// Spans of each delivery, while tracing is on.
    pub telemetry: Arc<Telemetry>,
    /// The URLs delivered to, parsed once.
    urls: ParsedUrls,
}

/// How one event was settled, for the metrics and the delivery journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    /// The outcome.
    pub outcome: EgressOutcome,
    /// HTTP attempts made to the destination.
    pub attempts: u32,
    /// The destination's last status code, when it answered.
    pub code: Option<u16>,
    /// The URL chosen for the event (a revision's, under a traffic split).
    pub destination: String,
    /// The dead-letter sink, when the event went (or was sent) there.
    pub dead_letter_sink: Option<String>,
    /// From the first attempt to settlement.
    pub took: std::time::Duration,
}

/// A response that ended the attempts successfully.
struct Answer {
    headers: HeaderMap,
    body: Bytes,
    attempts: u32,
    code: Option<u16>,
}

/// Why the attempts ended without success.
struct Failure {
    code: Option<u16>,
    body: Bytes,
    attempts: u32,
}

/// What every deliverer of a dispatcher shares.
#[derive(Clone)]
pub struct Services {
    /// HTTP client (connection pool).
    pub http: HttpClient,
    /// Log client for replies.
    pub log: Arc<Log>,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// The delivery journal.
    pub journal: Arc<Journal>,
    /// Activated revisions.
    pub activator: Arc<Activator>,
    /// Tracing.
    pub telemetry: Arc<Telemetry>,
}

impl Deliverer {
    /// The deliverer for `egress` of a resource (`(reference, bootstrap servers, topics)`).
    ///
    /// # Errors
    /// [`Error::Filter`]: a filter that does not compile (contracts are validated first, so
    /// this names a bug).
    pub fn new(
        egress: Egress,
        (resource, bootstrap, topics): (&ObjectRef, &str, &[String]),
        services: Services,
        seed: Option<u64>,
    ) -> Result<Self> {
        let Services {
            http,
            log,
            metrics,
            journal,
            activator,
            telemetry,
        } = services;
        let label = egress.reference.to_string();
        let filter =
            EventFilter::compile(&egress.filter_attributes, &egress.filters).map_err(|source| {
                Error::Filter {
                    egress: label.clone(),
                    source,
                }
            })?;
        Ok(Deliverer {
            counters: metrics.for_egress(&label),
            knative: metrics.knative.consumer_series(&KnativeConsumer {
                namespace: resource.namespace.clone(),
                name: resource.name.clone(),
                consumer: egress.reference.name.clone(),
            }),
            label,
            // A Trigger's reply goes back into its Broker's (only) topic.
            reply_log: (
                bootstrap.to_owned(),
                topics.first().cloned().unwrap_or_default(),
            ),
            filter,
            http,
            log,
            metrics,
            rng: super::traffic::seeded_rng(seed),
            journal,
            activator,
            telemetry,
            egress,
            urls: ParsedUrls::default(),
        })
    }

    /// Delivers `event`: to the destination with retries, its reply onwards, and on failure to
    /// the dead-letter sink. Returns how the event was settled. `parent` is the trace the
    /// event's record carries ([`Parent::None`] while tracing is off).
    pub async fn deliver(&self, event: &Event, parent: &Parent) -> Settled {
        let started = Instant::now();
        let url = {
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            traffic::choose(&self.egress.destination, &mut *rng).to_owned()
        };
        let mut span = self.telemetry.start("deliver", SpanKind::Consumer, parent);
        if span.is_some() {
            crate::spans::event_attributes(&mut span, event);
            span.set("ferry.egress", self.label.clone());
            span.set("ferry.destination", url.clone());
        }
        let sent = self.send(&url, event, &self.egress.delivery, &span).await;
        let (attempts, code, failure) = match sent {
            Ok(answer) => {
                let (attempts, code) = (answer.attempts, answer.code);
                match self.reply(answer, &span).await {
                    Ok(()) => (attempts, code, None),
                    Err((dest, failure)) => (attempts, code, Some((dest, failure))),
                }
            }
            Err(failure) => (failure.attempts, failure.code, Some((url.clone(), failure))),
        };
        let (outcome, dead_letter_sink) = match failure {
            None => (EgressOutcome::Delivered, None),
            Some((dest, failure)) => self.dead_letter(event, &dest, failure, &span).await,
        };
        if span.is_some() {
            span.set("ferry.outcome", outcome.label());
            span.set("ferry.attempts", i64::from(attempts));
            if outcome != EgressOutcome::Delivered {
                span.fail(outcome.label());
            }
        }
        self.knative.processed(event.ty(), started.elapsed());
        Settled {
            outcome,
            attempts,
            code,
            destination: url,
            dead_letter_sink,
            took: started.elapsed(),
        }
    }

    /// Records in the journal how the event stored at `(topic, partition, offset)` was settled
    /// (`settled` is `None` for an event the filters let pass by).
    pub fn record(&self, event: &Event, at: (&str, i32, i64), settled: Option<&Settled>) {
        let (topic, partition, offset) = at;
        let entry = Entry {
            event_id: event.id(),
            source: event.source().as_str(),
            at_ms: chrono::Utc::now().timestamp_millis(),
            by: self.label.as_str(),
            topic,
            partition,
            offset,
            outcome: settled
                .map_or(EgressOutcome::Filtered, |s| s.outcome)
                .label(),
            attempts: settled.map_or(0, |s| s.attempts),
            code: settled.and_then(|s| s.code),
            destination: settled.map(|s| s.destination.as_str()),
            dead_letter_sink: settled.and_then(|s| s.dead_letter_sink.as_deref()),
            took_ms: settled.map(|s| u64::try_from(s.took.as_millis()).unwrap_or(u64::MAX)),
        };
        self.journal.record(&self.reply_log.0, &entry);
    }

    async fn reply(&self, answer: Answer, parent: &Span) -> Result<(), (String, Failure)> {
        let Some(reply) = &self.egress.reply else {
            return Ok(());
        };
        let is_event = answer.headers.contains_key(&binding::SPECVERSION_HEADER)
            || answer
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.starts_with(binding::STRUCTURED));
        if !is_event {
            return Ok(());
        }
        let event = match binding::from_http(&answer.headers, answer.body.to_vec()) {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(egress = %self.label, error = %e, "reply is not a valid CloudEvent; ignored");
                return Ok(());
            }
        };
        let mut span = self
            .telemetry
            .start("reply", SpanKind::Producer, &parent.parent());
        crate::spans::event_attributes(&mut span, &event);
        let result = match reply {
            Reply::Url(url) => self
                .send(url, &event, &self.egress.delivery, &span)
                .await
                .map(drop)
                .map_err(|f| (url.clone(), f)),
            Reply::Resource => {
                let (bootstrap, topic) = &self.reply_log;
                self.log
                    .append(bootstrap, topic, &event, span.traceparent().as_deref())
                    .await
                    .map(drop)
                    .map_err(|e| {
                        (
                            format!("kafka://{topic}"),
                            Failure {
                                code: None,
                                body: Bytes::from(e.to_string()),
                                attempts: 1,
                            },
                        )
                    })
            }
        };
        if let Err((_, failure)) = &result {
            span.fail(String::from_utf8_lossy(&failure.body).into_owned());
        }
        result
    }

    async fn dead_letter(
        &self,
        event: &Event,
        dest: &str,
        failure: Failure,
        parent: &Span,
    ) -> (EgressOutcome, Option<String>) {
        let id = event.id().to_owned();
        let Some(dls) = &self.egress.delivery.dead_letter_sink else {
            tracing::error!(egress = %self.label, event.id = %id, destination = %dest, code = ?failure.code, "event dropped: delivery failed and there is no dead-letter sink");
            return (EgressOutcome::Dropped, None);
        };
        let mut dead = event.clone();
        dead.set_extension("knativeerrordest", dest);
        if let Some(code) = failure.code {
            dead.set_extension("knativeerrorcode", i64::from(code));
        }
        if !failure.body.is_empty() {
            dead.set_extension("knativeerrordata", error_data(&failure.body).as_str());
        }
        let mut span = self
            .telemetry
            .start("dead-letter", SpanKind::Internal, &parent.parent());
        if span.is_some() {
            crate::spans::event_attributes(&mut span, event);
            span.set("ferry.destination", dls.clone());
        }
        match self.send(dls, &dead, &self.egress.delivery, &span).await {
            Ok(_) => (EgressOutcome::DeadLettered, Some(dls.clone())),
            Err(f) => {
                tracing::error!(egress = %self.label, event.id = %id, dead_letter_sink = %dls, code = ?f.code, "event dropped: the dead-letter sink failed too");
                (EgressOutcome::Dropped, Some(dls.clone()))
            }
        }
    }

    /// Attempts until success, a non-retryable answer, or the last retry; each attempt is a
    /// child span of `parent`.
    async fn send(
        &self,
        url: &str,
        event: &Event,
        policy: &DeliveryPolicy,
        parent: &Span,
    ) -> Result<Answer, Failure> {
        let structured = policy.format == DeliveryFormat::Json;
        let (headers, body) = binding::to_http(event, structured);
        let body = Bytes::from(body);
        let mut attempt = 1;
        loop {
            let span = tracing::info_span!("delivery", event.id = %event.id(), egress = %self.label, url = %url, attempt);
            let started = Instant::now();
            let mut traced = self
                .telemetry
                .start("attempt", SpanKind::Client, &parent.parent());
            if traced.is_some() {
                traced.set("http.request.method", "POST");
                traced.set("url.full", url.to_owned());
                traced.set("ferry.attempt", i64::from(attempt));
            }
            let result = self
                .attempt(
                    url,
                    &headers,
                    body.clone(),
                    event,
                    policy,
                    traced.traceparent(),
                )
                .instrument(span)
                .await;
            self.counters.attempt(started.elapsed());
            let (outcome, answer) = result;
            crate::spans::attempt_result(&mut traced, &outcome);
            drop(traced);
            if let Attempt::Status { code, .. } = outcome {
                self.knative.answered(event.ty(), code, started.elapsed());
            }
            match decide(policy, attempt, &outcome, SystemTime::now()) {
                Verdict::Delivered => {
                    let code = match outcome {
                        Attempt::Status { code, .. } => Some(code),
                        _ => None,
                    };
                    let (headers, body) = answer.map(|a| (a.headers, a.body)).unwrap_or_default();
                    return Ok(Answer {
                        headers,
                        body,
                        attempts: attempt,
                        code,
                    });
                }
                Verdict::RetryAfter(delay) => {
                    self.counters.count(EgressOutcome::Retried);
                    tracing::debug!(egress = %self.label, event.id = %event.id(), ?outcome, ?delay, "retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Verdict::GiveUp => {
                    let code = match outcome {
                        Attempt::Status { code, .. } => Some(code),
                        _ => None,
                    };
                    let body = answer
                        .map(|a| a.body)
                        .unwrap_or_else(|| Bytes::from(format!("{outcome:?}")));
                    return Err(Failure {
                        code,
                        body,
                        attempts: attempt,
                    });
                }
            }
        }
    }

    async fn attempt(
        &self,
        url: &str,
        headers: &HeaderMap,
        body: Bytes,
        event: &Event,
        policy: &DeliveryPolicy,
        traceparent: Option<String>,
    ) -> (Attempt, Option<Answer>) {
        // An activated revision: wait (within the attempt's timeout) for a ready replica with
        // room and hold its slot until the answer is read.
        let lease = match self.activator.gate(url) {
            Some(gate) => {
                let started = Instant::now();
                let timeout = std::time::Duration::from_millis(policy.timeout_ms);
                match gate.acquire(timeout).await {
                    Some(lease) => {
                        let waited = started.elapsed();
                        if waited > std::time::Duration::from_millis(100) {
                            tracing::debug!(egress = %self.label, event.id = %event.id(), ?waited, revision = url, "held until a replica was ready");
                        }
                        Some(lease)
                    }
                    None => return (Attempt::Timeout, None),
                }
            }
            None => None,
        };
        let url = lease.as_ref().map_or(url, |l| l.endpoint.as_str());
        let Ok(target) = self.urls.get(url) else {
            // A URL that does not parse fails as a connection would (contracts are validated,
            // so this is an activated replica's bad endpoint at most).
            return (Attempt::Connection, None);
        };
        let mut headers = headers.clone();
        // The attempt's span while tracing is on; otherwise the event's own context, passed on.
        let traceparent = traceparent.or_else(|| {
            event
                .extension("traceparent")
                .map(std::string::ToString::to_string)
        });
        if let Some(value) = traceparent.and_then(|tp| http::HeaderValue::try_from(tp).ok()) {
            headers.insert("traceparent", value);
        }
        let timeout = std::time::Duration::from_millis(policy.timeout_ms);
        let response = match self.http.post(&target, headers, body, timeout).await {
            Ok(r) => r,
            Err(SendError::Timeout) => return (Attempt::Timeout, None),
            Err(SendError::Failed(why)) => {
                tracing::debug!(egress = %self.label, event.id = %event.id(), url, error = %why, "attempt failed");
                return (Attempt::Connection, None);
            }
        };
        let (parts, mut incoming) = response.into_parts();
        let code = parts.status.as_u16();
        let headers = parts.headers;
        let retry_after = headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // Bounded read: at most REPLY_MAX bytes, within the attempt's timeout.
        let mut body = Vec::new();
        let read = async {
            while let Some(Ok(frame)) = incoming.frame().await {
                let Ok(chunk) = frame.into_data() else {
                    continue;
                };
                if body.len() + chunk.len() > REPLY_MAX {
                    break;
                }
                body.extend_from_slice(&chunk);
            }
        };
        let _ = tokio::time::timeout(timeout, read).await;
        let body = Bytes::from(body);
        (
            Attempt::Status { code, retry_after },
            Some(Answer {
                headers,
                body,
                attempts: 0,
                code: Some(code),
            }),
        )
    }
}

/// `knativeerrordata`: the response body, as text when it is UTF-8 and base64 otherwise,
/// truncated to [`ERROR_DATA_MAX`] bytes.
pub fn error_data(body: &[u8]) -> String {
    let body = &body[..body.len().min(ERROR_DATA_MAX)];
    match std::str::from_utf8(body) {
        Ok(text) => text.to_owned(),
        // A cut through a multi-byte character: keep the valid prefix.
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&body[..e.valid_up_to()]).into_owned()
        }
        Err(_) => base64::engine::general_purpose::STANDARD.encode(body),
    }
}

#[cfg(test)]
mod tests {
    use super::error_data;

    #[test]
    fn error_data_is_truncated_text_or_base64() {
        assert_eq!(error_data(b"boom"), "boom");
        assert_eq!(error_data(&vec![b'x'; 5000]).len(), 1024);
        assert_eq!(error_data(&[0xff, 0xfe]), "//4=");
        let mut cut = vec![b'a'; 1023];
        cut.extend("é".as_bytes());
        assert_eq!(error_data(&cut).len(), 1023);
    }
}
