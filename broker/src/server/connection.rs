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

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{Broker, Ctx, Respond, metadata, versions};

const MAX_IN_FLIGHT: usize = 32;

pub(super) async fn accept_loop(broker: Arc<Broker>, listener: TcpListener) {
    let mut shutdown = broker.shutdown.clone();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    conns.spawn(serve(broker.clone(), stream, peer));
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

/// Why a connection is closed.
#[derive(Debug, PartialEq, Eq)]
pub enum Reject {
    /// Bytes that are not a request we can answer; the message says what.
    Close(String),
}

/// Decodes one request frame (without its length prefix).
///
/// # Errors
/// [`Reject::Close`] with the reason, for anything Kafka would also close the connection on.
pub fn decode(frame: Bytes) -> Result<(ApiKey, RequestHeader, RequestKind), Reject> {
    if frame.len() < 8 {
        return Err(Reject::Close(format!(
            "request of {} bytes is shorter than a request header",
            frame.len()
        )));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api =
        ApiKey::try_from(key).map_err(|()| Reject::Close(format!("unknown API key {key}")))?;
    let Some((lo, hi)) = versions::range(api) else {
        return Err(Reject::Close(format!("API {api:?} is not supported")));
    };
    // An ApiVersions request newer than ours is still answered (with v0 and
    // UNSUPPORTED_VERSION), so clients can negotiate; only its header is needed.
    let api_versions_probe = api == ApiKey::ApiVersions && version > hi;
    if !api_versions_probe && !(lo..=hi).contains(&version) {
        return Err(Reject::Close(format!(
            "{api:?} v{version} is not supported (supported: v{lo}..v{hi})"
        )));
    }
    let decoded = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let mut buf = frame.clone();
        let header = RequestHeader::decode(&mut buf, api.request_header_version(version))?;
        if api_versions_probe {
            return Ok((header, RequestKind::ApiVersions(Default::default())));
        }
        let body = RequestKind::decode(api, &mut buf, version)?;
        Ok::<_, anyhow::Error>((header, body))
    }));
    match decoded {
        Ok(Ok((header, body))) => Ok((api, header, body)),
        Ok(Err(e)) => Err(Reject::Close(format!("malformed {api:?} v{version}: {e}"))),
        Err(_) => Err(Reject::Close(format!(
            "malformed {api:?} v{version}: the decoder rejected it"
        ))),
    }
}

fn encode(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &kafka_protocol::messages::ResponseKind,
) -> anyhow::Result<Bytes> {
    let mut out = BytesMut::new();
    out.extend_from_slice(&[0; 4]);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut out, api.response_header_version(version))?;
    body.encode(&mut out, version)?;
    let len = i32::try_from(out.len() - 4)?;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(out.freeze())
}

/// Decodes and starts one request; the future yields the encoded response frame.
pub(super) fn dispatch(
    broker: &Arc<Broker>,
    frame: Bytes,
    peer: SocketAddr,
) -> Result<std::pin::Pin<Box<dyn std::future::Future<Output = Option<Bytes>> + Send>>, Reject> {
    let started = Instant::now();
    let (api, header, body) = decode(frame)?;
    let version = header.request_api_version;
    let correlation_id = header.correlation_id;
    tracing::trace!(%peer, api = ?api, version, correlation_id, "request");
    let (respond, version): (Respond, i16) = match versions::range(api) {
        Some((_, hi)) if api == ApiKey::ApiVersions && version > hi => {
            // Kafka answers a too-new ApiVersions with v0 and UNSUPPORTED_VERSION.
            (
                Box::pin(async {
                    Some(kafka_protocol::messages::ResponseKind::from(
                        metadata::api_versions(35),
                    ))
                }),
                0,
            )
        }
        _ => {
            let ctx = Ctx {
                version,
                client_id: header
                    .client_id
                    .as_ref()
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                peer,
            };
            (broker.handle(body, ctx), version)
        }
    };
    let broker = broker.clone();
    Ok(Box::pin(async move {
        let response = respond.await?;
        let frame = match encode(api, version, correlation_id, &response) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::error!(%peer, api = ?api, version, error = %e, "cannot encode response; closing");
                None
            }
        };
        broker.metrics.request(api_name(api), started.elapsed());
        Some(frame.unwrap_or_default())
    }))
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
        _ => "Other",
    }
}

type Pending = std::pin::Pin<Box<dyn std::future::Future<Output = Option<Bytes>> + Send>>;

async fn serve(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr) {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Pending>(MAX_IN_FLIGHT);
    let writer = tokio::spawn(async move {
        while let Some(pending) = rx.recv().await {
            match pending.await {
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
    });
    let mut shutdown = broker.shutdown.clone();
    let max = broker.config.max_request_bytes;
    loop {
        let mut len = [0u8; 4];
        tokio::select! {
            _ = shutdown.changed() => break,
            read = rd.read_exact(&mut len) => if read.is_err() { break },
        }
        let size = i32::from_be_bytes(len);
        let Ok(size) = usize::try_from(size) else {
            tracing::warn!(%peer, size, "closing connection: negative request size");
            break;
        };
        if size > max {
            tracing::warn!(%peer, size, max, "closing connection: request exceeds --max-request-bytes");
            break;
        }
        let mut frame = vec![0u8; size];
        if rd.read_exact(&mut frame).await.is_err() {
            tracing::debug!(%peer, "connection closed mid-request");
            break;
        }
        match dispatch(&broker, Bytes::from(frame), peer) {
            Ok(pending) => {
                if tx.send(pending).await.is_err() {
                    break;
                }
            }
            Err(Reject::Close(why)) => {
                tracing::warn!(%peer, reason = %why, "closing connection");
                break;
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}
