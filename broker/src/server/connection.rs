//! Connections: length-prefixed frames in, responses out in request order.
//!
//! The reader decodes each request and runs its synchronous part at once (so produce
//! appends keep the order the client sent them in); the rest of each request — waiting for
//! an fsync, a long-poll fetch, a rebalance — runs as a future queued to the writer, which
//! sends responses strictly in request order, as Kafka clients require. At most
//! `MAX_IN_FLIGHT` requests per connection are outstanding.
//!
//! Frames that cannot be decoded close the connection with a log line naming the peer and
//! the problem, which is what Kafka does; they never reach the log.
//!
//! Plaintext and TLS connections share all of this: [`serve`] is generic over the stream
//! halves, and with `--tls-cert` the accept loop runs the TLS handshake (bounded by
//! `TLS_HANDSHAKE_TIMEOUT`) first. With `--sasl-users` each connection's [`SaslSession`]
//! gates requests until the client authenticates.
//!
//! Bounds: the accept loop admits a connection only under the connection caps
//! ([`admission`](super::admission)); frames are read as they arrive, never allocated from the
//! claimed length ([`frames`](super::frames)); a connection is closed when it sends nothing for
//! `--connections-max-idle` while no response is due, when a frame takes longer than
//! `--request-read-timeout`, and, with SASL, when it has not authenticated
//! `--sasl-login-timeout` after connecting.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ferry_runtime::telemetry::Span;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::admission::{Admission, Caps, Ticket};
use super::broker::{Broker, Ctx, Respond};
use super::frames::{self, Bad, Deadline, Frame};
use super::sasl::{SASL_AUTHENTICATION_FAILED, SaslSession};
use super::{metadata, route, spans, versions};
use crate::error::{Error, Result};

const MAX_IN_FLIGHT: usize = 32;

/// A client that has not finished the TLS handshake by then is disconnected.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn accept_loop(broker: Arc<Broker>, listener: TcpListener) {
    let mut shutdown = broker.shutdown.clone();
    let mut conns = JoinSet::new();
    let tls = broker.security.tls.clone().map(TlsAcceptor::from);
    let caps = Caps {
        total: broker.config.max_connections,
        per_ip: broker.config.max_connections_per_ip,
    };
    let admission = Admission::new(caps, broker.metrics.clone());
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Over a cap: dropping the stream closes it.
                    let Some(ticket) = admission.admit(peer.ip()) else { continue };
                    let _ = stream.set_nodelay(true);
                    let b = broker.clone();
                    match &tls {
                        None => conns.spawn(serve(b, stream.into_split(), peer, ticket)),
                        Some(tls) => conns.spawn(serve_tls(b, tls.clone(), stream, peer, ticket)),
                    };
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

/// Runs the TLS handshake, then serves the connection like any other.
async fn serve_tls(
    broker: Arc<Broker>,
    tls: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
) {
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
        Ok(Ok(stream)) => serve(broker, tokio::io::split(stream), peer, ticket).await,
        Ok(Err(e)) => {
            broker.metrics.tls_handshake_failed();
            tracing::warn!(%peer, error = %e, "TLS handshake failed; closing connection");
        }
        Err(_) => {
            broker.metrics.tls_handshake_failed();
            tracing::warn!(%peer, timeout = ?TLS_HANDSHAKE_TIMEOUT, "TLS handshake timed out; closing connection");
        }
    }
}

/// A request being answered: the future yields the encoded response frame.
pub(super) struct Dispatched {
    /// The response (`None`: no response is due; an empty frame: encoding failed, close).
    pub pending: Pending,
    /// `Some(reason)`: close the connection once the response is sent (failed SASL).
    pub then_close: Option<String>,
}

/// Decodes one request frame (without its length prefix).
///
/// # Errors
/// [`Error::BadRequest`] with the reason, for anything Kafka would also close the connection
/// on.
pub fn decode(frame: Bytes) -> Result<(ApiKey, RequestHeader, RequestKind)> {
    if frame.len() < 8 {
        return Err(Error::BadRequest(format!(
            "request of {} bytes is shorter than a request header",
            frame.len()
        )));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api =
        ApiKey::try_from(key).map_err(|()| Error::BadRequest(format!("unknown API key {key}")))?;
    let Some((lo, hi)) = versions::range(api) else {
        return Err(Error::BadRequest(format!("API {api:?} is not supported")));
    };
    // An ApiVersions request newer than ours is still answered (with v0 and
    // UNSUPPORTED_VERSION), so clients can negotiate; only its header is needed.
    let api_versions_probe = api == ApiKey::ApiVersions && version > hi;
    if !api_versions_probe && !(lo..=hi).contains(&version) {
        return Err(Error::BadRequest(format!(
            "{api:?} v{version} is not supported (supported: v{lo}..v{hi})"
        )));
    }
    let malformed = |problem: &dyn std::fmt::Display| {
        Error::BadRequest(format!("malformed {api:?} v{version}: {problem}"))
    };
    let decoded = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let mut buf = frame.clone();
        let header = RequestHeader::decode(&mut buf, api.request_header_version(version))
            .map_err(|e| malformed(&e))?;
        if api_versions_probe {
            return Ok((header, RequestKind::ApiVersions(Default::default())));
        }
        let body = RequestKind::decode(api, &mut buf, version).map_err(|e| malformed(&e))?;
        Ok::<_, Error>((header, body))
    }));
    let (header, body) = decoded.unwrap_or_else(|_| Err(malformed(&"the decoder rejected it")))?;
    Ok((api, header, body))
}

/// The response frame, length prefix included.
///
/// # Errors
/// [`Error::EncodeResponse`]: the codec refused the response, or it exceeds 2 GiB.
fn encode(api: ApiKey, version: i16, correlation_id: i32, body: &ResponseKind) -> Result<Bytes> {
    let failed =
        |e: &dyn std::fmt::Display| Error::EncodeResponse(format!("{api:?} v{version}: {e}"));
    let mut out = BytesMut::new();
    out.extend_from_slice(&[0; 4]);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut out, api.response_header_version(version))
        .map_err(|e| failed(&e))?;
    body.encode(&mut out, version).map_err(|e| failed(&e))?;
    let len = i32::try_from(out.len() - 4).map_err(|e| failed(&e))?;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(out.freeze())
}

/// Decodes and starts one request, with `sasl` gating it until the client authenticated.
///
/// # Errors
/// [`Error::BadRequest`]: why the connection closes.
pub(super) fn dispatch(
    broker: &Arc<Broker>,
    frame: Bytes,
    peer: SocketAddr,
    sasl: &mut SaslSession,
) -> Result<Dispatched> {
    let started = Instant::now();
    let (api, header, body) = decode(frame)?;
    if !sasl.allows(api) {
        return Err(sasl.refused(api));
    }
    let version = header.request_api_version;
    let correlation_id = header.correlation_id;
    tracing::trace!(%peer, api = ?api, version, correlation_id, "request");
    let ready = |response: ResponseKind| -> Respond { Box::pin(async { Some(response) }) };
    let mut then_close = None;
    let mut span = Span::none();
    let (respond, version): (Respond, i16) = match body {
        _ if api == ApiKey::ApiVersions
            && versions::range(api).is_some_and(|(_, hi)| version > hi) =>
        {
            // Kafka answers a too-new ApiVersions with v0 and UNSUPPORTED_VERSION.
            (ready(metadata::api_versions(35).into()), 0)
        }
        RequestKind::SaslHandshake(req) => {
            let (response, close) = sasl.handshake(&req, version);
            then_close = close;
            (ready(response.into()), version)
        }
        RequestKind::SaslAuthenticate(req) => {
            let (response, close) = sasl.authenticate(&req);
            let delay = if response.error_code == SASL_AUTHENTICATION_FAILED {
                broker.config.failed_authentication_delay
            } else {
                Duration::ZERO
            };
            then_close = close;
            let held: Respond = Box::pin(async move {
                tokio::time::sleep(delay).await;
                Some(response.into())
            });
            (held, version)
        }
        body => {
            // Produce and Fetch are traced from here to their response.
            span = spans::start(&broker.telemetry, &header, &body, peer);
            let ctx = Ctx {
                version,
                client_id: header
                    .client_id
                    .as_ref()
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                peer,
                principal: sasl.principal(),
            };
            (route::route(broker, body, ctx), version)
        }
    };
    let broker = broker.clone();
    let pending: Pending = Box::pin(async move {
        let response = respond.await;
        spans::finish(&mut span, response.as_ref());
        let response = response?;
        let frame = match encode(api, version, correlation_id, &response) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::error!(%peer, api = ?api, version, error = %e, "cannot encode response; closing");
                None
            }
        };
        broker.metrics.request(api_name(api), started.elapsed());
        Some(frame.unwrap_or_default())
    });
    Ok(Dispatched {
        pending,
        then_close,
    })
}

fn api_name(api: ApiKey) -> &'static str {
    match api {
        ApiKey::Produce => "Produce",
        ApiKey::Fetch => "Fetch",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::Metadata => "Metadata",
        ApiKey::OffsetCommit => "OffsetCommit",
        ApiKey::OffsetFetch => "OffsetFetch",
        ApiKey::FindCoordinator => "FindCoordinator",
        ApiKey::JoinGroup => "JoinGroup",
        ApiKey::Heartbeat => "Heartbeat",
        ApiKey::LeaveGroup => "LeaveGroup",
        ApiKey::SyncGroup => "SyncGroup",
        ApiKey::DescribeGroups => "DescribeGroups",
        ApiKey::ListGroups => "ListGroups",
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::DeleteTopics => "DeleteTopics",
        ApiKey::InitProducerId => "InitProducerId",
        ApiKey::DescribeConfigs => "DescribeConfigs",
        ApiKey::CreatePartitions => "CreatePartitions",
        ApiKey::DeleteGroups => "DeleteGroups",
        ApiKey::DeleteRecords => "DeleteRecords",
        ApiKey::DescribeCluster => "DescribeCluster",
        ApiKey::SaslHandshake => "SaslHandshake",
        ApiKey::SaslAuthenticate => "SaslAuthenticate",
        _ => "Other",
    }
}

type Pending = std::pin::Pin<Box<dyn std::future::Future<Output = Option<Bytes>> + Send>>;

/// Serves one connection, plaintext or TLS, until the client, a deadline or shutdown ends it.
/// Takes the two halves of the connection: a plaintext socket splits without a lock
/// (`into_split`), a TLS stream through `tokio::io::split`. `_ticket` holds the connection's
/// place under the connection caps until it ends.
async fn serve<R, W>(broker: Arc<Broker>, (mut rd, wr): (R, W), peer: SocketAddr, _ticket: Ticket)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Pending>(MAX_IN_FLIGHT);
    // Requests sent to the writer and not yet answered: while any is, the client is not idle.
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut writer = Writer(tokio::spawn(write_responses(rx, wr, in_flight.clone())));
    let mut shutdown = broker.shutdown.clone();
    let mut sasl = SaslSession::new(
        broker.security.sasl.clone(),
        broker.scram.clone(),
        peer,
        broker.metrics.clone(),
    );
    let login_by = tokio::time::Instant::now() + broker.config.sasl_login_timeout;
    loop {
        let frame = tokio::select! {
            _ = shutdown.changed() => break,
            frame = next_frame(&broker, &mut rd, &sasl, login_by, &in_flight, peer) => frame,
        };
        let Some(frame) = frame else { break };
        in_flight.fetch_add(1, Ordering::Relaxed);
        match take(&broker, frame, peer, &mut sasl) {
            Ok(Dispatched {
                pending,
                then_close,
            }) => {
                if tx.send(pending).await.is_err() {
                    break;
                }
                if let Some(why) = then_close {
                    tracing::warn!(%peer, reason = %why, "closing connection after the response");
                    break;
                }
            }
            Err(why) => {
                tracing::warn!(%peer, reason = %why, "closing connection");
                if matches!(why, Error::SaslFailed(_)) {
                    // A bare token has no error field: the delay is the only answer.
                    tokio::time::sleep(broker.config.failed_authentication_delay).await;
                }
                break;
            }
        }
    }
    drop(tx);
    let _ = (&mut writer.0).await;
}

/// The task writing a connection's responses, aborted when the connection's task is dropped
/// (cancelled) before it: its responses have nowhere to go, and the requests it still waits
/// for (a JoinGroup or a long poll that may last minutes) would keep the broker alive.
struct Writer(tokio::task::JoinHandle<()>);

impl Drop for Writer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Takes one frame of a connection: after a v0 SaslHandshake a bare SASL token (answered with
/// a bare token), otherwise a request ([`dispatch`]).
///
/// # Errors
/// Why the connection closes: [`Error::SaslFailed`] for a rejected bare token, else
/// [`dispatch`]'s errors.
fn take(
    broker: &Arc<Broker>,
    frame: Vec<u8>,
    peer: SocketAddr,
    sasl: &mut SaslSession,
) -> Result<Dispatched> {
    if sasl.expects_raw_token() {
        let reply = sasl.raw_token(&frame)?;
        return Ok(Dispatched {
            pending: Box::pin(async move { Some(reply) }),
            then_close: None,
        });
    }
    dispatch(broker, Bytes::from(frame), peer, sasl)
}

/// Sends each response in request order, counting it off `in_flight`.
async fn write_responses<W>(mut rx: mpsc::Receiver<Pending>, mut wr: W, in_flight: Arc<AtomicUsize>)
where
    W: AsyncWrite + Unpin,
{
    while let Some(pending) = rx.recv().await {
        let response = pending.await;
        in_flight.fetch_sub(1, Ordering::Relaxed);
        match response {
            // acks=0 produce: nothing to send.
            None => continue,
            Some(frame) if frame.is_empty() => break,
            Some(frame) => {
                if wr.write_all(&frame).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = wr.shutdown().await;
}

/// The next request frame, or `None` when the connection is to close (logged and, for a
/// deadline, counted): the client left, a frame was bad or too slow, the client was idle for
/// `--connections-max-idle` with no response due, or it did not authenticate by `login_by`.
async fn next_frame<R>(
    broker: &Broker,
    rd: &mut R,
    sasl: &SaslSession,
    login_by: tokio::time::Instant,
    in_flight: &AtomicUsize,
    peer: SocketAddr,
) -> Option<Vec<u8>>
where
    R: AsyncRead + Unpin,
{
    let config = &broker.config;
    let timed_out = |deadline: Deadline| {
        broker.metrics.connection_timed_out(deadline.label());
        let (flag, after) = match deadline {
            Deadline::Idle => ("--connections-max-idle", config.connections_max_idle),
            Deadline::SaslLogin => ("--sasl-login-timeout", config.sasl_login_timeout),
        };
        tracing::debug!(%peer, ?after, "closing connection: {flag} passed");
        None
    };
    let max = sasl.max_frame(config.max_request_bytes);
    let login_by = (!sasl.is_open()).then_some(login_by);
    loop {
        let now = tokio::time::Instant::now();
        if login_by.is_some_and(|by| now >= by) {
            return timed_out(Deadline::SaslLogin);
        }
        let (due, deadline) = frames::first_byte_due(now, config.connections_max_idle, login_by);
        match frames::read_frame(rd, max, due, config.request_read_timeout).await {
            Frame::Body(body) => return Some(body),
            Frame::Closed => return None,
            // A response is still due (a long poll, a rebalance): not idle.
            Frame::Quiet if deadline == Deadline::Idle && in_flight.load(Ordering::Relaxed) > 0 => {
            }
            Frame::Quiet => return timed_out(deadline),
            Frame::Bad(bad @ Bad::TooSlow { .. }) => {
                broker.metrics.connection_timed_out("request_read");
                tracing::warn!(%peer, reason = %bad, "closing connection");
                return None;
            }
            Frame::Bad(Bad::Truncated) => {
                tracing::debug!(%peer, "connection closed mid-request");
                return None;
            }
            Frame::Bad(bad) => {
                tracing::warn!(%peer, reason = %bad, "closing connection");
                return None;
            }
        }
    }
}

impl Broker {
    /// Serves `stream` as the bytes one client sent on a new connection from 127.0.0.1,
    /// through the same loop as a socket (framing, the SASL phase, requests, responses in
    /// order; the responses are discarded), until the connection would close. Used by the
    /// fuzz targets.
    #[doc(hidden)]
    pub async fn serve_bytes(self: &Arc<Self>, stream: Vec<u8>) {
        let peer = SocketAddr::from(([127, 0, 0, 1], 0));
        let caps = Caps {
            total: usize::MAX,
            per_ip: usize::MAX,
        };
        let Some(ticket) = Admission::new(caps, self.metrics.clone()).admit(peer.ip()) else {
            return;
        };
        let halves = (std::io::Cursor::new(stream), tokio::io::sink());
        serve(self.clone(), halves, peer, ticket).await;
    }

    /// Answers one request frame (without its length prefix) exactly as a connection would:
    /// the response frame, `None` when no response is due (produce with acks=0), or why the
    /// connection would be closed. Used by the fuzz tests. Each frame is answered as the first
    /// request of a new connection (with `--sasl-users`, only the SASL APIs and ApiVersions).
    ///
    /// # Errors
    /// [`Error::BadRequest`]: the reason the connection would be closed;
    /// [`Error::EncodeResponse`] when the response could not be encoded.
    pub async fn answer(self: &Arc<Self>, frame: Bytes) -> Result<Option<Bytes>> {
        let peer = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut sasl = SaslSession::new(
            self.security.sasl.clone(),
            self.scram.clone(),
            peer,
            self.metrics.clone(),
        );
        let dispatched = dispatch(self, frame, peer, &mut sasl)?;
        match dispatched.pending.await {
            Some(frame) if frame.is_empty() => Err(Error::EncodeResponse(
                "see the log line `cannot encode response`".into(),
            )),
            other => Ok(other),
        }
    }
}
