//! Activation: the dispatcher stands in front of every revision the contract lists under
//! `activation`, as Knative's activator does. A delivery to such a revision waits for a ready
//! replica with room (at most `containerConcurrency` deliveries in flight per replica), so
//! events never reach a revision that is not there: at zero replicas they are held — which
//! the autoscaler sees as demand — and go out as soon as a replica is ready.
//!
//! The activator also measures what the autoscaler scales on: per revision, the average
//! number of deliveries in flight and the requests completed since the last look.
//!
//! Several dispatchers activate the same revisions (every egress and ingress pod), and Ferry
//! has no proxy inside the revision's pod to hold the excess, so each replica's
//! `containerConcurrency` is split among them ([`Share`]): numbering the revision's slots
//! replica by replica (`cc` each), slot `k` belongs to dispatcher `k mod n`. Together they never
//! exceed `cc` on a replica (while the replicas stay in place: when one is removed from the middle
//! of the list, the slots after it move, and a dispatcher finishing deliveries under the old
//! numbering can briefly overlap with another's under the new). When the replicas are too few for every dispatcher to get a slot
//! (`cc × replicas < n`), a dispatcher left without one takes one slot on replica `i mod
//! replicas` rather than hold its events until the revision scales up, which it may never do
//! at its max scale: then a replica can get up to `n − cc × replicas` more than `cc`, as with
//! Knative's activators.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ferry_api::contract::Activation;
use tokio::sync::Notify;

/// Every activated revision, by URL.
#[derive(Default)]
pub struct Activator {
    gates: RwLock<HashMap<String, Arc<Gate>>>,
}

/// This dispatcher's place among those that activate (the contract's `activators`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Share {
    /// Its position.
    pub index: usize,
    /// How many there are; 0 or 1: it is alone and takes every slot.
    pub of: usize,
}

impl Share {
    /// The share of the dispatcher at `me` (its pod IP) among `activators`: alone when the list
    /// is empty or it does not know its address; the last of one more when it is not listed yet
    /// (a new pod, until the operator lists it).
    pub fn among(activators: &[String], me: Option<&str>) -> Share {
        match me {
            Some(me) if !activators.is_empty() => match activators.iter().position(|a| a == me) {
                Some(index) => Share {
                    index,
                    of: activators.len(),
                },
                None => Share {
                    index: activators.len(),
                    of: activators.len() + 1,
                },
            },
            _ => Share::default(),
        }
    }

    /// Deliveries this dispatcher may have in flight to each of `replicas` replicas of a
    /// revision with `container_concurrency` (0: no limit, `u32::MAX` each).
    pub fn limits(self, container_concurrency: u32, replicas: usize) -> Vec<u32> {
        if container_concurrency == 0 {
            return vec![u32::MAX; replicas];
        }
        let n = self.of.max(1);
        if n == 1 {
            return vec![container_concurrency; replicas];
        }
        // Slot k of the revision (replica k / cc) belongs to dispatcher k mod n: every replica's
        // slots add up to cc, and each dispatcher gets its fair part of all of them.
        let cc = container_concurrency as usize;
        let mine_below = |k: usize| (k + n - 1 - self.index % n) / n;
        let mut limits: Vec<u32> = (0..replicas)
            .map(|j| {
                let count = mine_below((j + 1) * cc) - mine_below(j * cc);
                u32::try_from(count).unwrap_or(u32::MAX)
            })
            .collect();
        if replicas > 0 && limits.iter().all(|&l| l == 0) {
            limits[self.index % replicas] = 1;
        }
        limits
    }
}

pub use ferry_api::reports::RevisionStats;

/// One revision: its replicas and how busy each is.
pub struct Gate {
    state: Mutex<GateState>,
    changed: Notify,
}

struct GateState {
    revision: String,
    /// Replica URL → deliveries in flight to it.
    endpoints: Vec<(String, u32)>,
    /// Per replica (as `endpoints`): the most this dispatcher may have in flight there.
    limits: Vec<u32>,
    waiting: u32,
    /// In-flight × seconds since `since`, for the average.
    integral: f64,
    last_change: Instant,
    since: Instant,
    requests: u64,
    request_limits: RequestLimits,
}

/// An activated revision's HTTP request timeouts (`None`: no limit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestLimits {
    /// The whole exchange, waiting for a replica included (`timeoutSeconds`).
    pub total: Option<Duration>,
    /// Until the answer starts (`responseStartTimeoutSeconds`).
    pub response_start: Option<Duration>,
    /// Between bytes of the answer (`idleTimeoutSeconds`).
    pub idle: Option<Duration>,
}

impl RequestLimits {
    fn of(a: &Activation) -> RequestLimits {
        let ms = |v: u64| (v > 0).then(|| Duration::from_millis(v));
        RequestLimits {
            total: ms(a.timeout_ms),
            response_start: ms(a.response_start_timeout_ms),
            idle: ms(a.idle_timeout_ms),
        }
    }
}

impl GateState {
    fn in_flight(&self) -> u32 {
        self.endpoints.iter().map(|(_, n)| n).sum()
    }

    /// Accumulates the in-flight integral up to now.
    fn touch(&mut self, now: Instant) {
        let dt = now
            .saturating_duration_since(self.last_change)
            .as_secs_f64();
        self.integral += f64::from(self.in_flight()) * dt;
        self.last_change = now;
    }
}

/// A delivery's hold on a replica; gives the slot back when dropped.
pub struct Lease {
    gate: Arc<Gate>,
    /// The replica to deliver to.
    pub endpoint: String,
}

impl Drop for Lease {
    fn drop(&mut self) {
        {
            let mut s = self.gate.lock();
            s.touch(Instant::now());
            s.requests += 1;
            if let Some((_, n)) = s.endpoints.iter_mut().find(|(e, _)| *e == self.endpoint) {
                *n = n.saturating_sub(1);
            }
        }
        self.gate.changed.notify_waiters();
    }
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The revision's HTTP request timeouts.
    pub fn timeouts(&self) -> RequestLimits {
        self.lock().request_limits
    }

    /// Deliveries waiting for a replica now (a revision at zero with demand wants one at once).
    pub fn waiting(&self) -> u32 {
        self.lock().waiting
    }

    /// Waits up to `timeout` for a ready replica with room and takes a slot on the least busy.
    /// `None`: none became available in time. A wait that is given up (the caller's future
    /// dropped: an HTTP client that went away) stops counting as demand at once.
    pub async fn acquire(self: &Arc<Self>, timeout: Duration) -> Option<Lease> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut waiting = Waiting {
            gate: self,
            counted: false,
        };
        loop {
            // Register for wake-ups before checking, so a release in between is not missed.
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.lock();
                let pick = s
                    .endpoints
                    .iter()
                    .zip(&s.limits)
                    .enumerate()
                    .filter(|(_, ((_, n), limit))| n < limit)
                    .min_by_key(|(_, ((_, n), _))| *n)
                    .map(|(i, _)| i);
                if let Some(i) = pick {
                    s.touch(Instant::now());
                    s.endpoints[i].1 += 1;
                    waiting.stop(&mut s);
                    return Some(Lease {
                        gate: self.clone(),
                        endpoint: s.endpoints[i].0.clone(),
                    });
                }
                if !waiting.counted {
                    s.touch(Instant::now());
                    s.waiting += 1;
                    waiting.counted = true;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

/// A wait counted in a gate's `waiting` (demand); uncounted when it ends, however it ends.
struct Waiting<'a> {
    gate: &'a Gate,
    counted: bool,
}

impl Waiting<'_> {
    fn stop(&mut self, s: &mut GateState) {
        if std::mem::take(&mut self.counted) {
            s.touch(Instant::now());
            s.waiting -= 1;
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.counted {
            let mut s = self.gate.lock();
            self.stop(&mut s);
        }
    }
}

impl Activator {
    /// Follows the contract: new revisions get a gate, replicas change in place (deliveries in
    /// flight keep their slots), revisions no longer listed are dropped; each replica's
    /// `containerConcurrency` is this dispatcher's `share` of it.
    pub fn apply(&self, activation: &[Activation], share: Share) {
        let mut gates = self.gates.write().unwrap_or_else(|p| p.into_inner());
        gates.retain(|url, _| activation.iter().any(|a| &a.url == url));
        for a in activation {
            let now = Instant::now();
            let gate = gates.entry(a.url.clone()).or_insert_with(|| {
                Arc::new(Gate {
                    state: Mutex::new(GateState {
                        revision: a.revision.clone(),
                        endpoints: Vec::new(),
                        limits: Vec::new(),
                        waiting: 0,
                        integral: 0.0,
                        last_change: now,
                        since: now,
                        requests: 0,
                        request_limits: RequestLimits::default(),
                    }),
                    changed: Notify::new(),
                })
            });
            {
                let mut s = gate.lock();
                s.touch(now);
                s.revision = a.revision.clone();
                s.limits = share.limits(a.container_concurrency, a.endpoints.len());
                s.request_limits = RequestLimits::of(a);
                let old = std::mem::take(&mut s.endpoints);
                s.endpoints = a
                    .endpoints
                    .iter()
                    .map(|e| {
                        let busy = old.iter().find(|(o, _)| o == e).map_or(0, |(_, n)| *n);
                        (e.clone(), busy)
                    })
                    .collect();
            }
            gate.changed.notify_waiters();
        }
    }

    /// The gate of the revision served at `url`, when it is activated.
    pub fn gate(&self, url: &str) -> Option<Arc<Gate>> {
        self.gates
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(url)
            .cloned()
    }

    /// Per revision: what the autoscaler scales on, averaged since the previous call.
    pub fn stats(&self) -> Vec<RevisionStats> {
        let gates = self.gates.read().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        gates
            .values()
            .map(|gate| {
                let mut s = gate.lock();
                s.touch(now);
                let elapsed = now.saturating_duration_since(s.since).as_secs_f64();
                let concurrency = if elapsed > 0.0 {
                    s.integral / elapsed
                } else {
                    f64::from(s.in_flight())
                };
                let stats = RevisionStats {
                    revision: s.revision.clone(),
                    ready: u32::try_from(s.endpoints.len()).unwrap_or(u32::MAX),
                    concurrency,
                    requests: s.requests,
                    waiting: s.waiting,
                    in_flight: s.in_flight(),
                };
                s.integral = 0.0;
                s.since = now;
                s.requests = 0;
                stats
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activation(endpoints: &[&str], cc: u32) -> Activation {
        Activation {
            url: "http://rev".into(),
            revision: "default/rev".into(),
            endpoints: endpoints.iter().map(|e| (*e).to_owned()).collect(),
            container_concurrency: cc,
            ..Activation::default()
        }
    }

    #[test]
    fn dispatchers_split_each_replicas_concurrency_and_never_exceed_it_together() {
        let activators: Vec<String> = (0..4).map(|i| format!("10.0.0.{i}")).collect();
        for cc in [1u32, 2, 3, 4, 5, 10, 100] {
            for replicas in [1usize, 2, 3, 7] {
                let limits: Vec<Vec<u32>> = activators
                    .iter()
                    .map(|me| Share::among(&activators, Some(me)).limits(cc, replicas))
                    .collect();
                for j in 0..replicas {
                    let total: u32 = limits.iter().map(|l| l[j]).sum();
                    if cc as usize * replicas >= activators.len() {
                        assert_eq!(total, cc, "cc {cc}, {replicas} replicas, replica {j}");
                    } else {
                        // Too few slots for four dispatchers: each still gets one.
                        assert!(total <= cc + 3, "cc {cc}, {replicas} replicas: {total}");
                    }
                }
                for (i, l) in limits.iter().enumerate() {
                    assert!(
                        l.iter().sum::<u32>() >= 1,
                        "dispatcher {i} can deliver: {l:?}"
                    );
                }
            }
        }
        // Alone, unlisted (no address) or with no list: every slot.
        assert_eq!(Share::among(&[], Some("10.0.0.9")).limits(10, 2), [10, 10]);
        assert_eq!(Share::among(&activators, None).limits(10, 2), [10, 10]);
        // Listed yet: the last of one more.
        assert_eq!(
            Share::among(&activators, Some("10.0.0.9")),
            Share { index: 4, of: 5 }
        );
        // No limit stays no limit.
        assert_eq!(
            Share::among(&activators, Some("10.0.0.1")).limits(0, 1),
            [u32::MAX]
        );
    }

    #[tokio::test]
    async fn a_dispatcher_sends_a_replica_only_its_share() {
        let a = Arc::new(Activator::default());
        let activators = ["10.0.0.1".to_owned(), "10.0.0.2".to_owned()];
        a.apply(
            &[activation(&["http://r1"], 3)],
            Share::among(&activators, Some("10.0.0.2")),
        );
        let gate = a.gate("http://rev").unwrap();
        // Of 3 slots, the second of two dispatchers gets 1 (the first gets 2).
        let first = gate.acquire(Duration::from_secs(1)).await.expect("a slot");
        assert!(gate.acquire(Duration::from_millis(50)).await.is_none());
        drop(first);
        assert!(gate.acquire(Duration::from_millis(50)).await.is_some());
    }

    #[tokio::test]
    async fn holds_at_zero_and_releases_when_a_replica_is_ready() {
        let a = Arc::new(Activator::default());
        a.apply(&[activation(&[], 1)], Share::default());
        let gate = a.gate("http://rev").unwrap();
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move {
                gate.acquire(Duration::from_secs(5))
                    .await
                    .map(|l| l.endpoint.clone())
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(a.stats()[0].waiting, 1, "the held delivery is demand");
        a.apply(&[activation(&["http://r1"], 1)], Share::default());
        assert_eq!(waiting.await.unwrap().as_deref(), Some("http://r1"));
        assert_eq!(a.stats()[0].waiting, 0);
    }

    #[tokio::test]
    async fn a_wait_given_up_is_no_longer_demand() {
        let a = Arc::new(Activator::default());
        a.apply(&[activation(&[], 1)], Share::default());
        let gate = a.gate("http://rev").unwrap();
        let held = tokio::spawn({
            let gate = gate.clone();
            async move { gate.acquire(Duration::from_secs(30)).await.is_some() }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(gate.waiting(), 1);
        held.abort();
        let _ = held.await;
        assert_eq!(
            gate.waiting(),
            0,
            "the client went away: no demand left behind"
        );
        assert!(gate.acquire(Duration::from_millis(10)).await.is_none());
        assert_eq!(gate.waiting(), 0, "a timed-out wait is uncounted too");
    }

    #[tokio::test]
    async fn never_more_in_flight_than_container_concurrency_per_replica() {
        let a = Activator::default();
        a.apply(
            &[activation(&["http://r1", "http://r2"], 2)],
            Share::default(),
        );
        let gate = a.gate("http://rev").unwrap();
        let mut leases = Vec::new();
        for _ in 0..4 {
            leases.push(gate.acquire(Duration::from_millis(10)).await.unwrap());
        }
        let per: Vec<usize> = ["http://r1", "http://r2"]
            .iter()
            .map(|e| leases.iter().filter(|l| l.endpoint == *e).count())
            .collect();
        assert_eq!(per, [2, 2], "spread over the least busy replicas");
        assert!(
            gate.acquire(Duration::from_millis(20)).await.is_none(),
            "full: it waits, then times out"
        );
        drop(leases.pop());
        assert!(
            gate.acquire(Duration::from_millis(20)).await.is_some(),
            "a freed slot is taken"
        );
        let stats = &a.stats()[0];
        assert_eq!((stats.ready, stats.waiting), (2, 0));
        assert!(stats.requests >= 1);
    }

    #[tokio::test]
    async fn unlimited_concurrency_and_removed_revisions() {
        let a = Activator::default();
        a.apply(&[activation(&["http://r1"], 0)], Share::default());
        let gate = a.gate("http://rev").unwrap();
        let leases: Vec<Lease> =
            futures::future::join_all((0..50).map(|_| gate.acquire(Duration::from_millis(10))))
                .await
                .into_iter()
                .map(Option::unwrap)
                .collect();
        assert_eq!(leases.len(), 50);
        assert!((a.stats()[0].in_flight) == 50);
        a.apply(&[], Share::default());
        assert!(a.gate("http://rev").is_none());
    }
}
