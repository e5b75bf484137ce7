//! One connection's SASL exchange, as Kafka's `SaslServerAuthenticator` runs it.
//!
//! With `--sasl-users`, a connection starts unauthenticated: only ApiVersions, SaslHandshake
//! and SaslAuthenticate are served, anything else closes it. SaslHandshake picks the mechanism
//! (UNSUPPORTED_SASL_MECHANISM, with the enabled list, closes the connection). The tokens then
//! travel in SaslAuthenticate requests (handshake v1) or, after a v0 handshake, as bare
//! length-prefixed frames. A failure is answered with SASL_AUTHENTICATION_FAILED and a message,
//! then the connection is closed. Without `--sasl-users` both SASL APIs answer
//! ILLEGAL_SASL_STATE, as Kafka does on a PLAINTEXT listener.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::security::credentials::ScramCredentials;
use crate::security::plain::PlainMessage;
use crate::security::scram::{AwaitingFinal, ClientFirst};
use crate::security::{Mechanism, SaslUsers};

/// Kafka's error codes for the SASL APIs.
const ILLEGAL_SASL_STATE: i16 = 34;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
pub(super) const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// The largest frame accepted before authentication (Kafka's limit for unauthenticated
/// clients), so an anonymous peer cannot make the broker allocate `--max-request-bytes`.
pub(super) const MAX_UNAUTHENTICATED_FRAME: usize = 512 * 1024;

enum State {
    /// Every request is served: SASL is off, or the client authenticated.
    Open,
    /// Waiting for SaslHandshake.
    AwaitingHandshake,
    /// The mechanism is chosen; waiting for the first token. `raw`: a v0 handshake, so tokens
    /// come as bare frames.
    Handshaken { mechanism: Mechanism, raw: bool },
    /// SCRAM sent its server-first message; waiting for the client's proof.
    ScramFinal {
        mechanism: Mechanism,
        exchange: Box<AwaitingFinal>,
        raw: bool,
    },
    /// Failed; the connection is closing.
    Failed,
}

/// The outcome of one client token.
enum Step {
    /// Send this token and wait for the next.
    Challenge(Bytes),
    /// Authenticated; send this last token.
    Success(Bytes),
    /// Rejected: `log` says why (never a password), `client` is the message the client gets.
    Failure { log: String, client: String },
}

/// A connection's SASL state.
pub(super) struct SaslSession {
    users: Option<Arc<SaslUsers>>,
    /// SCRAM credentials set with the admin APIs, beside the file's users.
    stored: Arc<ScramCredentials>,
    state: State,
    peer: SocketAddr,
    metrics: Arc<Metrics>,
    /// `User:<name>` once authenticated, else `User:ANONYMOUS`.
    principal: Arc<str>,
}

/// Runs CPU-heavy work (PLAIN's 4,096 PBKDF2 rounds, milliseconds) without holding up other
/// connections: on the multi-threaded runtime the worker first hands its other tasks to the
/// rest (`block_in_place`); elsewhere (a test's single-threaded runtime) it runs inline.
fn off_the_workers<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

fn invalid_credentials(mechanism: Mechanism) -> String {
    format!(
        "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
    )
}

fn server_nonce() -> String {
    let mut bytes = [0u8; 24];
    // Only fails on platforms without a system RNG; the proof check stays sound regardless.
    let _ = SystemRandom::new().fill(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl SaslSession {
    /// A new connection's state: open without SASL users, else awaiting the handshake.
    pub(super) fn new(
        users: Option<Arc<SaslUsers>>,
        stored: Arc<ScramCredentials>,
        peer: SocketAddr,
        metrics: Arc<Metrics>,
    ) -> Self {
        let state = if users.is_some() {
            State::AwaitingHandshake
        } else {
            State::Open
        };
        SaslSession {
            users,
            stored,
            state,
            peer,
            metrics,
            principal: Arc::from(crate::security::acl::ANONYMOUS),
        }
    }

    /// Whether a request of `api` may be served now.
    pub(super) fn allows(&self, api: ApiKey) -> bool {
        matches!(self.state, State::Open)
            || matches!(
                api,
                ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
            )
    }

    /// The connection's principal: `User:<name>` once authenticated, else `User:ANONYMOUS`.
    pub(super) fn principal(&self) -> Arc<str> {
        self.principal.clone()
    }

    /// Whether requests are served: authenticated, or no SASL is configured.
    pub(super) fn is_open(&self) -> bool {
        matches!(self.state, State::Open)
    }

    /// The largest request frame accepted now.
    pub(super) fn max_frame(&self, configured: usize) -> usize {
        match self.state {
            State::Open => configured,
            _ => configured.min(MAX_UNAUTHENTICATED_FRAME),
        }
    }

    /// Records a request refused because the client has not authenticated: the reason the
    /// connection closes.
    pub(super) fn refused(&mut self, api: ApiKey) -> Error {
        self.metrics.authenticated("none", false);
        self.state = State::Failed;
        Error::BadRequest(format!(
            "{api:?} request before SASL authentication (until then only ApiVersions, SaslHandshake and SaslAuthenticate are served)"
        ))
    }

    /// Whether the next frame is a bare SASL token (after a v0 handshake).
    pub(super) fn expects_raw_token(&self) -> bool {
        matches!(
            self.state,
            State::Handshaken { raw: true, .. } | State::ScramFinal { raw: true, .. }
        )
    }

    /// Answers SaslHandshake; the `Some` reason means: send the response, then close.
    pub(super) fn handshake(
        &mut self,
        req: &SaslHandshakeRequest,
        version: i16,
    ) -> (SaslHandshakeResponse, Option<String>) {
        let Some(users) = &self.users else {
            return (
                SaslHandshakeResponse::default().with_error_code(ILLEGAL_SASL_STATE),
                None,
            );
        };
        let enabled: Vec<StrBytes> = users
            .mechanisms()
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect();
        let response = SaslHandshakeResponse::default().with_mechanisms(enabled);
        match self.state {
            State::AwaitingHandshake => {}
            // Re-authentication is not offered (session lifetime 0): Kafka's answer.
            State::Open => return (response.with_error_code(ILLEGAL_SASL_STATE), None),
            _ => {
                self.state = State::Failed;
                return (
                    response.with_error_code(ILLEGAL_SASL_STATE),
                    Some("SaslHandshake during a SASL exchange".into()),
                );
            }
        }
        let requested = req.mechanism.as_str();
        match users.mechanisms().iter().find(|m| m.name() == requested) {
            Some(&mechanism) => {
                self.state = State::Handshaken {
                    mechanism,
                    raw: version == 0,
                };
                (response, None)
            }
            None => {
                self.metrics.authenticated("unsupported", false);
                self.state = State::Failed;
                let shown: String = requested.chars().take(64).collect();
                (
                    response.with_error_code(UNSUPPORTED_SASL_MECHANISM),
                    Some(format!("unsupported SASL mechanism `{shown}`")),
                )
            }
        }
    }

    /// Answers SaslAuthenticate; the `Some` reason means: send the response, then close.
    pub(super) fn authenticate(
        &mut self,
        req: &SaslAuthenticateRequest,
    ) -> (SaslAuthenticateResponse, Option<String>) {
        let illegal = |message: &str| {
            SaslAuthenticateResponse::default()
                .with_error_code(ILLEGAL_SASL_STATE)
                .with_error_message(Some(StrBytes::from_string(message.to_owned())))
        };
        match self.state {
            State::Open if self.users.is_none() => {
                return (illegal("SASL is not enabled on this listener"), None);
            }
            State::Open => return (illegal("already authenticated"), None),
            State::AwaitingHandshake | State::Failed => {
                self.state = State::Failed;
                return (
                    illegal("SaslAuthenticate before SaslHandshake"),
                    Some("SaslAuthenticate before SaslHandshake".into()),
                );
            }
            State::Handshaken { raw: true, .. } | State::ScramFinal { raw: true, .. } => {
                // Unreachable: after a v0 handshake the reader treats frames as bare tokens.
                self.state = State::Failed;
                return (
                    illegal("SaslAuthenticate after a v0 SaslHandshake"),
                    Some("SaslAuthenticate after a v0 SaslHandshake".into()),
                );
            }
            State::Handshaken { .. } | State::ScramFinal { .. } => {}
        }
        match self.step(&req.auth_bytes) {
            Step::Challenge(token) | Step::Success(token) => (
                SaslAuthenticateResponse::default()
                    .with_error_message(None)
                    .with_auth_bytes(token),
                None,
            ),
            Step::Failure { log, client } => (
                SaslAuthenticateResponse::default()
                    .with_error_code(SASL_AUTHENTICATION_FAILED)
                    .with_error_message(Some(StrBytes::from_string(client))),
                Some(log),
            ),
        }
    }

    /// Handles a bare token after a v0 handshake: the token to send back, framed.
    ///
    /// # Errors
    /// [`Error::SaslFailed`]: why the connection closes (v0 has no way to carry an error).
    pub(super) fn raw_token(&mut self, token: &[u8]) -> Result<Bytes> {
        match self.step(token) {
            Step::Challenge(reply) | Step::Success(reply) => {
                let len = u32::try_from(reply.len()).unwrap_or(u32::MAX);
                let mut frame = Vec::with_capacity(4 + reply.len());
                frame.extend_from_slice(&len.to_be_bytes());
                frame.extend_from_slice(&reply);
                Ok(Bytes::from(frame))
            }
            Step::Failure { log, .. } => Err(Error::SaslFailed(log)),
        }
    }

    /// Feeds one client token to the chosen mechanism.
    fn step(&mut self, token: &[u8]) -> Step {
        let Some(users) = self.users.clone() else {
            return self.fail(None, None, "SASL is not enabled".into(), String::new());
        };
        match std::mem::replace(&mut self.state, State::Failed) {
            State::Handshaken {
                mechanism: Mechanism::Plain,
                ..
            } => match PlainMessage::parse(token) {
                Ok(m) if off_the_workers(|| users.verify_plain(&m.username, &m.password)) => {
                    self.succeed(Mechanism::Plain, &m.username)
                }
                Ok(m) => self.fail(
                    Some(Mechanism::Plain),
                    Some(&m.username),
                    "wrong password or unknown user".into(),
                    invalid_credentials(Mechanism::Plain),
                ),
                Err(e) => self.fail(
                    Some(Mechanism::Plain),
                    None,
                    e.to_string(),
                    format!("Authentication failed: {e}"),
                ),
            },
            State::Handshaken { mechanism, raw } => {
                let Some(hash) = mechanism.scram_hash() else {
                    return self.fail(Some(mechanism), None, "no SCRAM hash".into(), String::new());
                };
                let first = match ClientFirst::parse(token) {
                    Ok(first) => first,
                    Err(e) => {
                        return self.fail(
                            Some(mechanism),
                            None,
                            e.to_string(),
                            format!("Authentication failed: {e}"),
                        );
                    }
                };
                let credential = users
                    .scram(&first.username, hash)
                    .cloned()
                    .or_else(|| self.stored.get(&first.username, hash));
                let Some(credential) = credential else {
                    let user = first.username.clone();
                    return self.fail(
                        Some(mechanism),
                        Some(&user),
                        "unknown user".into(),
                        invalid_credentials(mechanism),
                    );
                };
                let (exchange, server_first) = first.respond(&credential, &server_nonce());
                self.state = State::ScramFinal {
                    mechanism,
                    exchange: Box::new(exchange),
                    raw,
                };
                Step::Challenge(Bytes::from(server_first))
            }
            State::ScramFinal {
                mechanism,
                exchange,
                ..
            } => {
                let user = exchange.username().to_owned();
                match exchange.finish(token) {
                    Ok(server_final) => match self.succeed(mechanism, &user) {
                        Step::Success(_) => Step::Success(Bytes::from(server_final)),
                        other => other,
                    },
                    Err(e) => {
                        let client = match e {
                            Error::SaslMalformed { .. } => {
                                format!("Authentication failed: {e}")
                            }
                            _ => invalid_credentials(mechanism),
                        };
                        self.fail(Some(mechanism), Some(&user), e.to_string(), client)
                    }
                }
            }
            State::Open | State::AwaitingHandshake | State::Failed => self.fail(
                None,
                None,
                "SASL token outside an exchange".into(),
                "Authentication failed: unexpected SASL token".into(),
            ),
        }
    }

    fn succeed(&mut self, mechanism: Mechanism, user: &str) -> Step {
        tracing::info!(peer = %self.peer, user, mechanism = mechanism.name(), "SASL authenticated");
        self.metrics.authenticated(mechanism.name(), true);
        self.state = State::Open;
        self.principal = Arc::from(format!("User:{user}"));
        Step::Success(Bytes::new())
    }

    fn fail(
        &mut self,
        mechanism: Option<Mechanism>,
        user: Option<&str>,
        reason: String,
        client: String,
    ) -> Step {
        let name = mechanism.map_or("none", Mechanism::name);
        self.metrics.authenticated(name, false);
        self.state = State::Failed;
        // Debug-quoted: the name comes from the client and may hold control characters.
        let user: String = user.unwrap_or("").chars().take(128).collect();
        Step::Failure {
            log: format!("SASL {name} authentication failed for user {user:?}: {reason}"),
            client,
        }
    }
}
