//! How the sink answers: rules that match requests and say what to send back.

use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use cloudevents::Event;
use cloudevents::binding::http::{Serializer, builder::Builder};
use cloudevents::message::{self, BinaryDeserializer};
use http::{StatusCode, header};

use super::Received;

/// How to answer matching requests; rules are pushed onto a [`Sink`](super::Sink) and checked
/// in order, and the first that matches and has uses left answers.
///
/// ```
/// # use ferry_testkit::sink::Rule;
/// // Fail the first two deliveries of event "e-1", then accept it.
/// let rule = Rule::status(503).when("id", "e-1").times(2).retry_after("1");
/// ```
#[derive(Debug, Clone)]
pub struct Rule {
    when: Vec<(String, String)>,
    path: Option<String>,
    left: Option<usize>,
    pub(super) status: StatusCode,
    pub(super) delay: Option<Duration>,
    retry_after: Option<String>,
    location: Option<String>,
    body: String,
    reply: Option<Event>,
}

impl Rule {
    /// Answers with `code` (the sink answers 202 with an empty body when no rule matches).
    ///
    /// # Panics
    /// When `code` is not a valid HTTP status (100..=999).
    pub fn status(code: u16) -> Rule {
        Rule {
            when: Vec::new(),
            path: None,
            left: None,
            status: StatusCode::from_u16(code).unwrap_or_else(|_| panic!("bad status {code}")),
            delay: None,
            retry_after: None,
            location: None,
            body: String::new(),
            reply: None,
        }
    }

    /// Answers only the first `n` matching requests (default: unlimited).
    pub fn times(mut self, n: usize) -> Rule {
        self.left = Some(n);
        self
    }

    /// Matches only CloudEvents whose attribute or extension `attribute` equals `value`;
    /// several conditions must all hold.
    pub fn when(mut self, attribute: &str, value: &str) -> Rule {
        self.when.push((attribute.to_owned(), value.to_owned()));
        self
    }

    /// Matches only requests to `path` (e.g. `/old`).
    pub fn at(mut self, path: &str) -> Rule {
        self.path = Some(path.to_owned());
        self
    }

    /// Sets the `Location` header (for a redirect status).
    pub fn location(mut self, value: &str) -> Rule {
        self.location = Some(value.to_owned());
        self
    }

    /// Waits `d` before answering; other requests are served meanwhile.
    pub fn delay(mut self, d: Duration) -> Rule {
        self.delay = Some(d);
        self
    }

    /// Sets the `Retry-After` header.
    pub fn retry_after(mut self, value: &str) -> Rule {
        self.retry_after = Some(value.to_owned());
        self
    }

    /// Sets the response body text (ignored when the rule [replies](Rule::reply) an event).
    pub fn body(mut self, text: &str) -> Rule {
        self.body = text.to_owned();
        self
    }

    /// Answers with `event` in binary mode (`ce-` headers and data), with the rule's status.
    pub fn reply(mut self, event: Event) -> Rule {
        self.reply = Some(event);
        self
    }

    /// Takes one use of this rule if it matches `request`.
    pub(super) fn take(&mut self, request: &Received) -> Option<Rule> {
        let matches = self
            .when
            .iter()
            .all(|(name, value)| request.attr(name).as_deref() == Some(value))
            && self.path.as_ref().is_none_or(|path| *path == request.path);
        if !matches || self.left == Some(0) {
            return None;
        }
        if let Some(left) = &mut self.left {
            *left -= 1;
        }
        Some(self.clone())
    }

    /// Builds the HTTP response from the rule's answer.
    pub(super) fn respond(self) -> Response {
        let mut head = Response::builder().status(self.status);
        if let Some(value) = &self.retry_after {
            head = head.header(header::RETRY_AFTER, value);
        }
        if let Some(value) = &self.location {
            head = head.header(header::LOCATION, value);
        }
        let built = match self.reply {
            Some(event) => event.deserialize_binary(Serializer::new(Head(head))),
            None => Head(head).body(self.body.into_bytes()),
        };
        built.unwrap_or_else(|e| {
            let text = format!("sink cannot answer: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, text).into_response()
        })
    }
}

/// Collects the `ce-` headers and data of a binary-mode reply.
struct Head(http::response::Builder);

impl Builder<Response> for Head {
    fn header(&mut self, key: &str, value: http::HeaderValue) {
        self.0 = std::mem::take(&mut self.0).header(key, value);
    }

    fn body(&mut self, bytes: Vec<u8>) -> message::Result<Response> {
        std::mem::take(&mut self.0)
            .body(Body::from(bytes))
            .map_err(|e| message::Error::Other {
                source: Box::new(e),
            })
    }

    fn finish(&mut self) -> message::Result<Response> {
        self.body(Vec::new())
    }
}
