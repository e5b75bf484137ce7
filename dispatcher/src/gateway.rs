//! HTTP at Knative Service URLs: the ingress answers requests whose `Host` names a Route of
//! the contract (`routes`) by proxying them to one of the Route's revisions — chosen by the
//! traffic split, or the tagged revision for a tag's host — as Knative's gateway and activator
//! do together.
//!
//! - A revision listed under `activation` is reached through the [`Activator`]: a request waits
//!   for a ready replica with room (at zero that wait is demand the autoscaler sees) and holds
//!   its slot until the answer's last byte, so requests and events share the revision's
//!   `containerConcurrency` and its stats.
//! - Bodies stream both ways: nothing is buffered whole, so uploads and long answers of any
//!   size pass, and `Upgrade` requests (WebSocket) are spliced once the revision answers `101`.
//! - The revision's timeouts apply: `responseStartTimeoutSeconds` until the answer starts (then
//!   `504`), `timeoutSeconds` for the whole exchange, `idleTimeoutSeconds` between bytes of the
//!   answer (past those the answer is cut).
//! - With Knative's `tag-header-based-routing` on (the contract says), a request to a Route's own
//!   host carrying `Knative-Serving-Tag: <tag>` goes to that tag's revision; an unknown tag gets
//!   the split.
//! - A host without a dot (`http://cart` from a pod of the Route's namespace) is served when one
//!   namespace has that Route; when several do, the answer names the full names to use.
//!
//! The external listener (`--external-listen`) answers only the hosts of Routes that are not
//! cluster-local, and nothing else.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ferry_api::contract::{Contract, RevisionTarget};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::rngs::SmallRng;
use tokio::time::{Instant, Sleep};

use crate::activator::{Activator, Lease};
use crate::egress::traffic;
use crate::metrics::Metrics;

/// Knative's header naming the tag a request wants (with `tag-header-based-routing`).
const TAG_HEADER: &str = "knative-serving-tag";

/// How long a request waits for a replica when its revision sets no timeout.
const UNLIMITED_WAIT: Duration = Duration::from_secs(600);

/// One served address: a Route's split, or one tag's revision.
#[derive(Debug)]
struct Served {
    /// `namespace/name` (and `#tag`), for metrics and messages.
    label: String,
    /// `namespace/name` of the Route.
    route: String,
    /// The tag, for a tag's address.
    tag: Option<String>,
    targets: Vec<RevisionTarget>,
}

/// What a host leads to.
enum Lookup {
    Found(Arc<Served>),
    /// A short name several namespaces use: their full names.
    Ambiguous(Vec<String>),
    Unknown,
}

#[derive(Default)]
struct Hosts {
    /// `Knative-Serving-Tag` picks a tag of the Route a request names.
    tag_header: bool,
    /// (route, tag) → the tag's address.
    tags: HashMap<(String, String), Arc<Served>>,
    cluster: HashMap<String, Arc<Served>>,
    external: HashMap<String, Arc<Served>>,
    /// Short names (no dot) → the `<name>.<namespace>` hosts that claim them.
    short: HashMap<String, Vec<(String, Arc<Served>)>>,
}

impl Hosts {
    fn from_contract(contract: &Contract) -> Hosts {
        let mut hosts = Hosts {
            tag_header: contract.tag_header_routing,
            ..Hosts::default()
        };
        for route in &contract.routes {
            let label = match &route.tag {
                Some(tag) => format!("{}#{tag}", route.route),
                None => route.route.clone(),
            };
            let served = Arc::new(Served {
                label,
                route: route.route.clone(),
                tag: route.tag.clone(),
                targets: route.targets.clone(),
            });
            if let Some(tag) = &route.tag {
                hosts
                    .tags
                    .insert((route.route.clone(), tag.clone()), served.clone());
            }
            let qualified = route
                .hosts
                .iter()
                .find(|h| h.contains('.'))
                .cloned()
                .unwrap_or_default();
            for host in &route.hosts {
                if host.contains('.') {
                    hosts.cluster.insert(host.clone(), served.clone());
                } else {
                    hosts
                        .short
                        .entry(host.clone())
                        .or_default()
                        .push((qualified.clone(), served.clone()));
                }
            }
            for host in &route.external_hosts {
                hosts.external.insert(host.clone(), served.clone());
            }
        }
        hosts
    }

    /// With tag-header routing on, the tag a request to a Route's own host names
    /// (`Knative-Serving-Tag`), when the Route has it; else `served` itself.
    fn by_tag_header(&self, served: Arc<Served>, headers: &HeaderMap) -> Arc<Served> {
        if !self.tag_header || served.tag.is_some() {
            return served;
        }
        headers
            .get(TAG_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|tag| {
                self.tags
                    .get(&(served.route.clone(), tag.trim().to_owned()))
            })
            .cloned()
            .unwrap_or(served)
    }

    fn is_empty(&self) -> bool {
        self.cluster.is_empty() && self.external.is_empty() && self.short.is_empty()
    }

    fn lookup(&self, host: &str, external: bool) -> Lookup {
        if external {
            return self
                .external
                .get(host)
                .map_or(Lookup::Unknown, |s| Lookup::Found(s.clone()));
        }
        if let Some(s) = self.cluster.get(host) {
            return Lookup::Found(s.clone());
        }
        match self.short.get(host).map(Vec::as_slice) {
            Some([(_, only)]) => Lookup::Found(only.clone()),
            Some(several) => Lookup::Ambiguous(several.iter().map(|(q, _)| q.clone()).collect()),
            None => Lookup::Unknown,
        }
    }
}

/// The HTTP gateway of Knative Routes.
pub struct Gateway {
    hosts: RwLock<Arc<Hosts>>,
    activator: Arc<Activator>,
    client: Client<HttpConnector, Body>,
    metrics: Arc<Metrics>,
    rng: Mutex<SmallRng>,
}

impl Gateway {
    /// A gateway with no routes, activating through `activator`; `seed` makes the traffic
    /// split's draws reproducible (`--traffic-seed`).
    pub fn new(activator: Arc<Activator>, metrics: Arc<Metrics>, seed: Option<u64>) -> Gateway {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Gateway {
            hosts: RwLock::new(Arc::new(Hosts::default())),
            activator,
            client: Client::builder(TokioExecutor::new()).build(connector),
            metrics,
            rng: traffic::seeded_rng(seed),
        }
    }

    /// Follows a contract's `routes`.
    pub fn apply(&self, contract: &Contract) {
        *self.hosts.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(Hosts::from_contract(contract));
    }

    /// Whether a request is for a Route (by its `Host`); when it is, the answer.
    ///
    /// `external`: the request came in on the external listener, where only the hosts of
    /// Routes that are not cluster-local are served.
    pub async fn serve(&self, request: Request, external: bool) -> Result<Response, Request> {
        let hosts = self.hosts.read().unwrap_or_else(|p| p.into_inner()).clone();
        // No Route: every request is an event post (the common case costs one lock read).
        if hosts.is_empty() {
            return Err(request);
        }
        let Some(host) = request_host(request.headers(), request.uri()) else {
            return Err(request);
        };
        match hosts.lookup(&host, external) {
            Lookup::Found(served) => {
                let served = hosts.by_tag_header(served, request.headers());
                Ok(self.forward(&served.targets, &served.label, request).await)
            }
            Lookup::Ambiguous(names) => Ok(plain(
                StatusCode::NOT_FOUND,
                format!(
                    "{host} is a Route in several namespaces; call one of {}",
                    names.join(", ")
                ),
            )),
            Lookup::Unknown => Err(request),
        }
    }

    /// Proxies `request` to one of `targets` (drawn by percent), through activation when the
    /// revision is activated; `label` names the route in metrics and messages.
    pub async fn forward(
        &self,
        targets: &[RevisionTarget],
        label: &str,
        request: Request,
    ) -> Response {
        let response = self.forward_counted(targets, label, request).await;
        self.metrics.route_request(label, response.status());
        response
    }

    async fn forward_counted(
        &self,
        targets: &[RevisionTarget],
        label: &str,
        mut request: Request,
    ) -> Response {
        if targets.is_empty() {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{label} has no ready revision yet"),
            );
        }
        let started = Instant::now();
        let url = {
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            traffic::choose_revision(targets, &mut *rng).to_owned()
        };
        let gate = self.activator.gate(&url);
        let limits = gate.as_ref().map(|g| g.timeouts()).unwrap_or_default();
        let deadline = limits.total.map(|t| started + t);
        let lease = match &gate {
            Some(gate) => match gate.acquire(limits.total.unwrap_or(UNLIMITED_WAIT)).await {
                Some(lease) => Some(lease),
                None => {
                    return plain(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("{label}: no replica of {url} had room in time"),
                    );
                }
            },
            None => None,
        };
        let base = lease.as_ref().map_or(url.as_str(), |l| l.endpoint.as_str());
        let upgrade = wants_upgrade(request.headers());
        let downstream = upgrade.then(|| hyper::upgrade::on(&mut request));
        let outgoing = match upstream_request(base, request, upgrade) {
            Ok(r) => r,
            Err(message) => return plain(StatusCode::BAD_REQUEST, message),
        };
        let start_limit = limits.response_start.or(limits.total);
        let sent = self.client.request(outgoing);
        let answered = match start_limit {
            Some(limit) => match tokio::time::timeout(limit, sent).await {
                Ok(answered) => answered,
                Err(_) => {
                    return plain(
                        StatusCode::GATEWAY_TIMEOUT,
                        format!(
                            "{label}: {base} did not start answering within {} s (the revision's responseStartTimeoutSeconds)",
                            limit.as_secs()
                        ),
                    );
                }
            },
            None => sent.await,
        };
        let mut answer = match answered {
            Ok(answer) => answer,
            Err(e) => {
                return plain(
                    StatusCode::BAD_GATEWAY,
                    format!("{label}: {base} did not answer: {e}"),
                );
            }
        };
        if answer.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some(downstream) = downstream
        {
            let upstream = hyper::upgrade::on(&mut answer);
            tokio::spawn(splice(downstream, upstream, lease));
            let (parts, _) = answer.into_parts();
            return Response::from_parts(parts, Body::empty());
        }
        let (mut parts, body) = answer.into_parts();
        strip_hop_by_hop(&mut parts.headers, false);
        let timed = Timed {
            inner: body,
            deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
            idle: limits
                .idle
                .map(|d| (d, Box::pin(tokio::time::sleep_until(Instant::now() + d)))),
            _lease: lease,
        };
        Response::from_parts(parts, Body::new(timed))
    }
}

/// The request's host: `Host` (HTTP/1) or the URI's authority (HTTP/2), lowercase, without
/// port or trailing dot.
fn request_host(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let raw = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))?;
    let without_port = match raw.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => raw,
    };
    let host = without_port.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Headers that belong to one connection (RFC 9110 §7.6.1), and those `Connection` names. An
/// upgrade keeps `Connection: upgrade` and `Upgrade`, which the next hop needs.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::try_from(t.trim()).ok())
        .filter(|n| !(upgrade && *n == header::UPGRADE))
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
    ] {
        headers.remove(name);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
}

/// The request to the revision: same method, path, headers (`Host` kept, as Knative keeps it)
/// and streaming body, over HTTP/1.1 to `base`.
fn upstream_request(
    base: &str,
    request: Request,
    upgrade: bool,
) -> Result<http::Request<Body>, String> {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let uri: Uri = format!("{}{path}", base.trim_end_matches('/'))
        .parse()
        .map_err(|e| format!("cannot address {base}{path}: {e}"))?;
    if !parts.headers.contains_key(header::HOST)
        && let Some(host) = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        parts.headers.insert(header::HOST, host);
    }
    strip_hop_by_hop(&mut parts.headers, upgrade);
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    Ok(http::Request::from_parts(parts, body))
}

/// Copies bytes both ways between the client's and the revision's upgraded connections until
/// either side closes; the replica's slot is held meanwhile.
async fn splice(
    downstream: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    lease: Option<Lease>,
) {
    let (Ok(down), Ok(up)) = (downstream.await, upstream.await) else {
        return;
    };
    let (mut down, mut up) = (TokioIo::new(down), TokioIo::new(up));
    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
    drop(lease);
}

fn plain(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message + "\n",
    )
        .into_response()
}

/// A revision's answer on its way to the client: cut when the whole exchange's deadline
/// passes or no byte came for the idle timeout; holds the replica's slot until dropped.
struct Timed {
    inner: hyper::body::Incoming,
    deadline: Option<Pin<Box<Sleep>>>,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
    _lease: Option<Lease>,
}

impl HttpBody for Timed {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some((every, sleep)) = &mut this.idle {
                    sleep.as_mut().reset(Instant::now() + *every);
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(other) => return Poll::Ready(other.map(|r| r.map_err(Into::into))),
            Poll::Pending => {}
        }
        if let Some(deadline) = &mut this.deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Some(Err(
                "the revision's timeoutSeconds passed; the answer was cut".into(),
            )));
        }
        if let Some((_, sleep)) = &mut this.idle
            && sleep.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Some(Err(
                "no byte within the revision's idleTimeoutSeconds; the answer was cut".into(),
            )));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_compared_without_port_case_or_trailing_dot() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("Cart.Shop.:8080"));
        assert_eq!(
            request_host(&headers, &Uri::from_static("/")).as_deref(),
            Some("cart.shop")
        );
        let h2: Uri = "http://cart.shop.svc/x".parse().expect("uri");
        assert_eq!(
            request_host(&HeaderMap::new(), &h2).as_deref(),
            Some("cart.shop.svc")
        );
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-hop"),
        );
        headers.insert("x-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-end", HeaderValue::from_static("1"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        let mut upgrade = headers.clone();
        strip_hop_by_hop(&mut headers, false);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-end"]);
        strip_hop_by_hop(&mut upgrade, true);
        assert_eq!(upgrade[header::CONNECTION], "upgrade");
        assert_eq!(upgrade[header::UPGRADE], "websocket");
        assert!(!upgrade.contains_key("x-hop"));
    }
}
