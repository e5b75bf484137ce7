//! A CloudEvents sink: a real HTTP server on loopback that records every request and
//! answers by [`Rule`]s, so tests can make it fail, slow down or reply on purpose.

mod received;
mod rule;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use tokio::sync::{oneshot, watch};

pub use received::Received;
pub use rule::Rule;

/// Larger bodies are not read; such requests are recorded with an empty body and no event.
const MAX_BODY: usize = 64 << 20;

/// A running sink on `127.0.0.1`; stops accepting when dropped and closes its connections
/// once in-flight answers are sent.
///
/// It serves HTTP/1.1 and h2c on every path, concurrently, on the tokio runtime that
/// started it (use a multi-thread runtime if the test blocks that thread).
pub struct Sink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _stop: oneshot::Sender<()>,
}

/// State shared with the request handler.
struct Shared {
    state: Mutex<Recorded>,
    /// Bumped after every recorded request, to wake waiters.
    changed: watch::Sender<u64>,
}

#[derive(Default)]
struct Recorded {
    rules: Vec<Rule>,
    received: Vec<Received>,
}

impl Sink {
    /// Starts a sink on an ephemeral loopback port.
    ///
    /// # Panics
    /// When it cannot bind the port.
    pub async fn start() -> Sink {
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            changed: watch::Sender::new(0),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (addr, stop) = crate::serve_on_loopback(app, "sink").await;
        Sink {
            addr,
            shared,
            _stop: stop,
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// `http://127.0.0.1:PORT/<path>`; every path is accepted and recorded.
    pub fn url_for(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// Adds a rule after the existing ones.
    pub fn push(&self, rule: Rule) {
        self.shared.lock().rules.push(rule);
    }

    /// Every request so far, in arrival order, whatever was answered.
    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().received.clone()
    }

    /// The requests answered with a 2xx status, in arrival order.
    pub fn accepted(&self) -> Vec<Received> {
        accepted(&self.shared.lock().received)
    }

    /// Waits until at least `n` requests were accepted and returns all accepted ones.
    ///
    /// # Panics
    /// After `timeout`, saying how many arrived and were accepted.
    pub async fn wait_for_accepted(&self, n: usize, timeout: Duration) -> Vec<Received> {
        self.wait_for(n, "accepted", timeout, accepted).await
    }

    /// Waits until at least `n` requests arrived and returns all of them.
    ///
    /// # Panics
    /// After `timeout`, saying how many arrived.
    pub async fn wait_for_received(&self, n: usize, timeout: Duration) -> Vec<Received> {
        self.wait_for(n, "received", timeout, <[Received]>::to_vec)
            .await
    }

    /// Forgets the recorded requests (rules stay).
    pub fn clear(&self) {
        self.shared.lock().received.clear();
    }

    async fn wait_for(
        &self,
        n: usize,
        what: &str,
        timeout: Duration,
        select: fn(&[Received]) -> Vec<Received>,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        // Subscribed before the first check, so no request recorded meanwhile is missed.
        let mut changes = self.shared.changed.subscribe();
        loop {
            let (all, selected) = {
                let state = self.shared.lock();
                (state.received.len(), select(&state.received))
            };
            if selected.len() >= n {
                return selected;
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                panic!(
                    "sink {}: waited {timeout:?} for {n} {what} requests, \
                     got {} {what} of {all} received",
                    self.addr,
                    selected.len()
                );
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Recorded> {
        // A panicking test thread must not hide what the sink recorded.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn accepted(received: &[Received]) -> Vec<Received> {
    received
        .iter()
        .filter(|r| r.is_accepted())
        .cloned()
        .collect()
}

/// Records the request, picks the answer, then sends it after the rule's delay.
async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let at = Instant::now();
    let (parts, body) = request.into_parts();
    let (body, event) = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => {
            let event = cloudevents::binding::http::to_event(&parts.headers, body.to_vec())
                .map_err(|e| e.to_string());
            (body, event)
        }
        Err(e) => (bytes::Bytes::new(), Err(format!("body not read: {e}"))),
    };
    let mut headers = BTreeMap::<String, String>::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|joined| *joined = format!("{joined}, {value}"))
            .or_insert_with(|| value.into_owned());
    }
    let mut received = Received {
        at,
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        headers,
        body,
        event,
        status: 0,
    };
    let answer = {
        let mut state = shared.lock();
        let answer = state
            .rules
            .iter_mut()
            .find_map(|rule| rule.take(&received))
            .unwrap_or_else(|| Rule::status(202));
        received.status = answer.status.as_u16();
        state.received.push(received);
        answer
    };
    shared.changed.send_modify(|n| *n += 1);
    if let Some(delay) = answer.delay {
        tokio::time::sleep(delay).await;
    }
    answer.respond()
}
