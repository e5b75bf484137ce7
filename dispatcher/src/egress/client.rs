//! The HTTP client deliveries go through: hyper's pooled HTTP/1 client, with what Knative's
//! dispatcher (Go's `net/http` client) adds on top of a connection: redirects followed (at most
//! 10, `301`/`302`/`303` as `GET` without the body, `307`/`308` with method and body, a
//! `Referer` on each), user info in a URL sent as basic authentication, and a deadline over the
//! whole exchange.
//!
//! It replaced `reqwest`, whose layers over the same hyper client (its redirect policy, two
//! parses of the URL per request, a timeout future, a header merge) cost about a tenth of a
//! delivered event's instructions (docs/benchmarks.md).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as Pool;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Redirects followed before an attempt fails (Go's and reqwest's limit).
pub const MAX_REDIRECTS: usize = 10;

/// Most URLs kept parsed: a deliverer's destination (or split), reply and dead-letter sink,
/// and the replicas of activated revisions. Others are parsed per request.
const PARSED_URLS_MAX: usize = 64;

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Nothing answered within the deadline (connecting included).
    Timeout,
    /// Connecting or sending failed, the URL is not an `http` URL, or redirects went on for
    /// more than [`MAX_REDIRECTS`] hops; the text says which.
    Failed(String),
}

/// A URL as sent: the request target and, when the URL carries user info, its
/// `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    uri: Uri,
    authorization: Option<HeaderValue>,
}

impl Target {
    /// Parses `url` as a browser (and reqwest) would: IDNA hosts, percent-encoding of what
    /// needs it; user info becomes basic authentication.
    ///
    /// # Errors
    /// The parser's message, naming what is wrong with the URL.
    pub fn parse(url: &str) -> Result<Target, String> {
        let mut parsed = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
        let authorization = if parsed.username().is_empty() && parsed.password().is_none() {
            None
        } else {
            let user = percent_decoded(parsed.username());
            let password = parsed.password().map(percent_decoded).unwrap_or_default();
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            Some(
                HeaderValue::try_from(format!("Basic {token}"))
                    .map_err(|e| format!("{url}: user info: {e}"))?,
            )
        };
        parsed.set_fragment(None);
        let uri = parsed
            .as_str()
            .parse::<Uri>()
            .map_err(|e| format!("{url}: {e}"))?;
        Ok(Target { uri, authorization })
    }

    /// The request target.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }
}

fn percent_decoded(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// URLs parsed once instead of per request (parsing one cost a few thousand instructions, a
/// few percent of an event's delivery).
#[derive(Default)]
pub struct ParsedUrls(Mutex<HashMap<String, Target>>);

impl ParsedUrls {
    /// `url` parsed, from the cache when it was parsed before.
    ///
    /// # Errors
    /// What is wrong with the URL.
    pub fn get(&self, url: &str) -> Result<Target, String> {
        let mut urls = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(parsed) = urls.get(url) {
            return Ok(parsed.clone());
        }
        let parsed = Target::parse(url)?;
        if urls.len() < PARSED_URLS_MAX {
            urls.insert(url.to_owned(), parsed.clone());
        }
        Ok(parsed)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// A pooled HTTP client (cheap to clone: clones share the pool).
#[derive(Clone)]
pub struct HttpClient {
    pool: Pool<HttpConnector, Full<Bytes>>,
}

impl HttpClient {
    /// A client keeping up to `idle_per_host` idle connections per host for `idle_timeout`,
    /// connecting within `connect_timeout`.
    pub fn new(idle_per_host: usize, idle_timeout: Duration, connect_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        let pool = Pool::builder(TokioExecutor::new())
            .pool_idle_timeout(idle_timeout)
            .pool_max_idle_per_host(idle_per_host)
            .build(connector);
        HttpClient { pool }
    }

    /// POSTs `body` with `headers` to `target`, following redirects, and returns the final
    /// response (its body still to be read) unless nothing answered within `timeout`.
    ///
    /// # Errors
    /// [`SendError`]: no response.
    pub async fn post(
        &self,
        target: &Target,
        headers: HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Response<Incoming>, SendError> {
        tokio::time::timeout(timeout, self.follow(target, headers, body))
            .await
            .unwrap_or(Err(SendError::Timeout))
    }

    async fn follow(
        &self,
        target: &Target,
        mut headers: HeaderMap,
        mut body: Bytes,
    ) -> Result<Response<Incoming>, SendError> {
        if !headers.contains_key(header::ACCEPT) {
            headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        }
        let mut method = Method::POST;
        let mut target = target.clone();
        let mut hops = 0;
        loop {
            let mut request = Request::builder()
                .method(method.clone())
                .uri(target.uri.clone())
                .body(Full::new(body.clone()))
                .map_err(|e| SendError::Failed(e.to_string()))?;
            *request.headers_mut() = headers.clone();
            if let Some(auth) = &target.authorization {
                request
                    .headers_mut()
                    .insert(header::AUTHORIZATION, auth.clone());
            }
            let response = self.pool.request(request).await.map_err(|e| {
                if timed_out(&e) {
                    SendError::Timeout
                } else {
                    SendError::Failed(chain(&e))
                }
            })?;
            let Some(next) = redirect(&response, &target) else {
                return Ok(response);
            };
            hops += 1;
            if hops > MAX_REDIRECTS {
                return Err(SendError::Failed(format!(
                    "stopped after {MAX_REDIRECTS} redirects (last from {})",
                    target.uri
                )));
            }
            if matches!(
                response.status(),
                StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND | StatusCode::SEE_OTHER
            ) && method != Method::HEAD
            {
                method = Method::GET;
                body = Bytes::new();
                for name in [
                    header::CONTENT_TYPE,
                    header::CONTENT_LENGTH,
                    header::CONTENT_ENCODING,
                    header::TRANSFER_ENCODING,
                ] {
                    headers.remove(name);
                }
            }
            if next.uri.authority() != target.uri.authority() {
                // As Go and reqwest: credentials stay with the host they were meant for.
                for name in [
                    header::AUTHORIZATION,
                    header::COOKIE,
                    header::PROXY_AUTHORIZATION,
                ] {
                    headers.remove(name);
                }
            }
            if let Ok(referer) = HeaderValue::try_from(target.uri.to_string()) {
                headers.insert(header::REFERER, referer);
            }
            target = next;
        }
    }
}

/// Where a redirect response points, resolved against the URL that answered; `None` when the
/// response is not a redirect or has no usable `Location` (it is then the answer, as in Go).
fn redirect(response: &Response<Incoming>, from: &Target) -> Option<Target> {
    if !matches!(
        response.status(),
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    ) {
        return None;
    }
    let location = response.headers().get(header::LOCATION)?.to_str().ok()?;
    let base = url::Url::parse(&from.uri.to_string()).ok()?;
    let next = base.join(location).ok()?;
    Target::parse(next.as_str()).ok()
}

fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        source = e.source();
    }
    false
}

fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::{PARSED_URLS_MAX, ParsedUrls, Target};

    #[test]
    fn urls_are_parsed_once_and_the_cache_is_bounded() {
        let urls = ParsedUrls::default();
        let sink = "http://sink.default.svc.cluster.local/a?b=1";
        assert_eq!(urls.get(sink).unwrap().uri().to_string(), sink);
        assert_eq!(urls.len(), 1, "cached");
        let error = urls.get("not a url").unwrap_err();
        assert!(error.contains("not a url"), "{error}");
        for i in 0..2 * PARSED_URLS_MAX {
            let url = format!("http://replica-{i}:8080/");
            assert_eq!(urls.get(&url).unwrap().uri().to_string(), url);
        }
        assert_eq!(urls.len(), PARSED_URLS_MAX);
    }

    #[test]
    fn urls_are_normalized_and_user_info_becomes_basic_auth() {
        let t = Target::parse("http://Sink.Example/a b#frag").unwrap();
        assert_eq!(t.uri().to_string(), "http://sink.example/a%20b");
        assert_eq!(t.authorization, None);
        let t = Target::parse("http://al%40ice:p%3Ass@sink:8080/x").unwrap();
        assert_eq!(t.uri().to_string(), "http://sink:8080/x");
        // base64("al@ice:p:ss")
        assert_eq!(
            t.authorization.unwrap().to_str().unwrap(),
            "Basic YWxAaWNlOnA6c3M="
        );
        assert!(Target::parse("http://").is_err());
    }
}
