//! Leader election on a `coordination.k8s.io/v1` Lease, the way client-go's `leaderelection`
//! works (kube-rs has none built in).
//!
//! Every replica runs a [`LeaderElector`]; they race to hold one Lease. [`decide`] is the pure
//! part (who may hold the Lease now); [`LeaderElector::run`] reads the Lease, calls it, and
//! writes with a `resourceVersion`-guarded create or replace, so that when two replicas race the
//! API server lets exactly one write win and the other sees `409 Conflict`.
//!
//! # Guarantees
//!
//! - A replica reports `true` only after its own write to the Lease succeeded.
//! - A leader that cannot renew for [`LeaseConfig::renew_deadline`] reports `false`, and does
//!   so before the Lease it last wrote expires for the others ([`LeaseConfig::lease_duration`]),
//!   so two replicas never both believe they lead, as long as their clocks agree to within
//!   `lease_duration - renew_deadline`: expiry compares the holder's `renewTime` with the
//!   reader's clock (client-go instead times, on its own clock, how long it has seen the record
//!   unchanged, which tolerates any skew).
//! - On shutdown a leader reports `false` first and then releases the Lease, so a standby can
//!   take over within one [`LeaseConfig::retry_period`] instead of waiting for expiry.

use std::{future::Future, pin::pin, time::Duration};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::{SignedDuration, Timestamp},
};
use kube::{Api, Client, api::PostParams};
use tokio::{sync::watch, time::Instant};
use tracing::Instrument;

/// How long a Lease is valid after its last renewal, unless the Lease says otherwise.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
/// How long a leader keeps trying to renew before it steps down.
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How long to wait between attempts to acquire or renew.
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);

/// Which Lease to compete for, as whom, and how fast.
///
/// The durations must satisfy `retry_period < renew_deadline < lease_duration`: the gap between
/// `renew_deadline` and `lease_duration` is the margin that keeps a stepping-down leader from
/// overlapping with its successor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Namespace of the Lease (usually the operator's own).
    pub namespace: String,
    /// Name of the Lease, shared by every replica of the operator.
    pub name: String,
    /// This replica's identity (usually the pod name); unique among the replicas.
    pub identity: String,
    /// How long others must wait after the last renewal before they may take the Lease.
    pub lease_duration: Duration,
    /// How long the leader keeps failing to renew before it steps down.
    pub renew_deadline: Duration,
    /// Time between attempts to acquire or renew.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// A config with client-go's default durations (15 s / 10 s / 2 s).
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_deadline: DEFAULT_RENEW_DEADLINE,
            retry_period: DEFAULT_RETRY_PERIOD,
        }
    }
}

/// What a replica should do about a Lease, given what it read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds the Lease (no Lease yet, no or empty holder, or the holder let it expire):
    /// take it.
    Acquire,
    /// This replica holds the Lease: renew it.
    Renew,
    /// Another replica holds a Lease that has not expired: stand by.
    Follow {
        /// The current holder's identity.
        holder: String,
    },
}

/// Decides what replica `me` should do about `lease` at time `now`.
///
/// `lease` is `None` when there is no Lease (or it has no spec). A Lease expires
/// `leaseDurationSeconds` (or `lease_duration`, if the Lease does not say) after its
/// `renewTime`, or after its `acquireTime` when `renewTime` is missing; one with neither is
/// expired. A Lease held by `me` is renewed even if it expired, since nobody took it over.
pub fn decide(
    lease: Option<&LeaseSpec>,
    me: &str,
    now: Timestamp,
    lease_duration: Duration,
) -> Decision {
    let Some(spec) = lease else {
        return Decision::Acquire;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() {
        return Decision::Acquire;
    }
    if holder == me {
        return Decision::Renew;
    }
    let valid_for = spec
        .lease_duration_seconds
        .filter(|seconds| *seconds > 0)
        .map_or_else(
            || SignedDuration::try_from(lease_duration).unwrap_or(SignedDuration::MAX),
            |seconds| SignedDuration::from_secs(i64::from(seconds)),
        );
    let last_renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref());
    let expired = last_renewed.is_none_or(|renewed| {
        renewed
            .0
            .checked_add(valid_for)
            .is_ok_and(|expiry| expiry < now)
    });
    if expired {
        Decision::Acquire
    } else {
        Decision::Follow {
            holder: holder.to_owned(),
        }
    }
}

/// The spec `me` writes to acquire or renew `current`: a renewal keeps `acquireTime` and
/// `leaseTransitions`; taking over from someone else (or from nobody) counts a transition.
fn held_spec(
    current: Option<&LeaseSpec>,
    me: &str,
    now: Timestamp,
    lease_duration: Duration,
) -> LeaseSpec {
    let seconds = i32::try_from(lease_duration.as_secs())
        .unwrap_or(i32::MAX)
        .max(1);
    let renewing = current.and_then(|spec| spec.holder_identity.as_deref()) == Some(me);
    let (acquire_time, transitions) = match current {
        Some(spec) if renewing => (spec.acquire_time.clone(), spec.lease_transitions),
        Some(spec) => (
            Some(MicroTime(now)),
            Some(spec.lease_transitions.unwrap_or(0).saturating_add(1)),
        ),
        None => (Some(MicroTime(now)), Some(0)),
    };
    LeaseSpec {
        holder_identity: Some(me.to_owned()),
        lease_duration_seconds: Some(seconds),
        acquire_time: acquire_time.or(Some(MicroTime(now))),
        renew_time: Some(MicroTime(now)),
        lease_transitions: transitions,
        ..current.cloned().unwrap_or_default()
    }
}

/// The spec a leader writes when it lets go: no holder, valid for one second, so any replica
/// may take it at once (client-go's `ReleaseOnCancel`).
fn released_spec(current: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        ..current.cloned().unwrap_or_default()
    }
}

/// What one attempt to acquire or renew found.
enum Attempt {
    /// Our write succeeded; this is the Lease as stored.
    Holding(Box<Lease>),
    /// Someone else holds the Lease.
    Following(String),
    /// Another writer got there first (`409`); read again next round.
    LostRace,
}

/// Competes for a Lease and reports, through a `watch` channel, whether this replica leads.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
}

impl LeaderElector {
    /// An elector for `config`'s Lease, talking to the API server through `client`.
    ///
    /// # Panics
    ///
    /// If the durations do not satisfy `0 < retry_period < renew_deadline < lease_duration`;
    /// with such timings a stepping-down leader could overlap with its successor.
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        assert!(
            !config.retry_period.is_zero()
                && config.retry_period < config.renew_deadline
                && config.renew_deadline < config.lease_duration,
            "leader election needs 0 < retry_period ({:?}) < renew_deadline ({:?}) < \
             lease_duration ({:?})",
            config.retry_period,
            config.renew_deadline,
            config.lease_duration,
        );
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    /// Competes for the Lease until `shutdown` completes, sending `true` to `is_leader` when
    /// this replica becomes leader and `false` when it stops being one.
    ///
    /// Every `retry_period` it reads the Lease and, if [`decide`] says so, creates, takes or
    /// renews it. API errors and conflicts are logged and retried; every call is bounded by
    /// `renew_deadline`. A leader that has not renewed for `renew_deadline` sends `false` (the
    /// caller stops its controllers) and keeps competing as a follower.
    ///
    /// On `shutdown` a leader sends `false`, then releases the Lease so a standby can take it
    /// at once.
    pub async fn run(self, is_leader: watch::Sender<bool>, shutdown: impl Future<Output = ()>) {
        let span = tracing::info_span!(
            "leader_election",
            lease = %format_args!("{}/{}", self.config.namespace, self.config.name),
            identity = %self.config.identity,
        );
        self.compete(is_leader, shutdown).instrument(span).await;
    }

    async fn compete(&self, is_leader: watch::Sender<bool>, shutdown: impl Future<Output = ()>) {
        let LeaseConfig {
            renew_deadline,
            retry_period,
            ..
        } = self.config;
        let mut shutdown = pin!(shutdown);
        // While leading: the Lease as we last wrote it, and when that write started.
        let mut held: Option<(Box<Lease>, Instant)> = None;
        loop {
            let started = Instant::now();
            // A leader may only wait until its deadline; a follower one deadline per attempt.
            let budget = held.as_ref().map_or(renew_deadline, |(_, renewed)| {
                renew_deadline.saturating_sub(renewed.elapsed())
            });
            let attempt = tokio::select! {
                () = &mut shutdown => break,
                attempt = tokio::time::timeout(budget, self.try_acquire_or_renew()) => attempt,
            };
            match attempt {
                Ok(Ok(Attempt::Holding(lease))) => {
                    if held.is_none() {
                        tracing::info!("became leader");
                    }
                    held = Some((lease, started));
                    set(&is_leader, true);
                }
                Ok(Ok(Attempt::Following(holder))) => {
                    if held.take().is_some() {
                        tracing::warn!(%holder, "lost the lease to another replica; stepping down");
                    }
                    tracing::trace!(%holder, "standing by");
                    set(&is_leader, false);
                }
                Ok(Ok(Attempt::LostRace)) => {
                    tracing::debug!("another replica wrote the lease first")
                }
                Ok(Err(error)) => tracing::warn!(%error, "could not acquire or renew the lease"),
                Err(_elapsed) => {
                    tracing::warn!(?budget, "acquiring or renewing the lease timed out")
                }
            }
            if held
                .as_ref()
                .is_some_and(|(_, renewed)| renewed.elapsed() >= renew_deadline)
            {
                tracing::warn!(
                    ?renew_deadline,
                    "could not renew the lease in time; stepping down"
                );
                held = None;
                set(&is_leader, false);
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(retry_period) => {}
            }
        }
        if let Some((lease, _)) = held {
            set(&is_leader, false);
            self.release(*lease).await;
        }
    }

    async fn try_acquire_or_renew(&self) -> Result<Attempt, kube::Error> {
        let LeaseConfig {
            name,
            identity,
            lease_duration,
            ..
        } = &self.config;
        let current = self.api.get_opt(name).await?;
        let now = Timestamp::now();
        let spec = current.as_ref().and_then(|lease| lease.spec.as_ref());
        if let Decision::Follow { holder } = decide(spec, identity, now, *lease_duration) {
            return Ok(Attempt::Following(holder));
        }
        let spec = held_spec(spec, identity, now, *lease_duration);
        let written = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            // `replace` sends the resourceVersion we read: the server rejects it if anyone
            // wrote in between.
            Some(lease) => {
                let lease = Lease {
                    spec: Some(spec),
                    ..lease
                };
                self.api.replace(name, &PostParams::default(), &lease).await
            }
        };
        match written {
            Ok(lease) => Ok(Attempt::Holding(Box::new(lease))),
            Err(kube::Error::Api(status)) if status.is_conflict() || status.is_already_exists() => {
                Ok(Attempt::LostRace)
            }
            Err(error) => Err(error),
        }
    }

    /// Lets go of the Lease we last wrote, unless someone else has written it since.
    async fn release(&self, lease: Lease) {
        let spec = released_spec(lease.spec.as_ref(), Timestamp::now());
        let lease = Lease {
            spec: Some(spec),
            ..lease
        };
        let params = PostParams::default();
        let release = self.api.replace(&self.config.name, &params, &lease);
        match tokio::time::timeout(self.config.renew_deadline, release).await {
            Ok(Ok(_)) => tracing::info!("released the lease"),
            Ok(Err(error)) => tracing::warn!(%error, "could not release the lease; it will expire"),
            Err(_elapsed) => tracing::warn!("releasing the lease timed out; it will expire"),
        }
    }
}

/// Sends `leading` if it differs from the last value sent; no receivers is fine.
fn set(is_leader: &watch::Sender<bool>, leading: bool) {
    is_leader.send_if_modified(|current| std::mem::replace(current, leading) != leading);
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::{Arc, Mutex};

    use http::{Method, Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::{Value, json};
    use tokio::{sync::oneshot, task::JoinHandle};
    use tower_test::mock;

    const ME: &str = "ferry-operator-a";
    const OTHER: &str = "ferry-operator-b";
    const LEASE_URL: &str = "/apis/coordination.k8s.io/v1/namespaces/ferry/leases/ferry-operator";

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + second).unwrap()
    }

    fn spec(holder: Option<&str>, renewed: Option<i64>, seconds: Option<i32>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            renew_time: renewed.map(|s| MicroTime(at(s))),
            lease_duration_seconds: seconds,
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn decide_follows_the_table() {
        let follow = || Decision::Follow {
            holder: OTHER.to_owned(),
        };
        let cases = [
            ("no lease", None, Decision::Acquire),
            (
                "no holder",
                Some(spec(None, Some(99), Some(15))),
                Decision::Acquire,
            ),
            (
                "empty holder",
                Some(spec(Some(""), Some(99), Some(15))),
                Decision::Acquire,
            ),
            (
                "held by me",
                Some(spec(Some(ME), Some(99), Some(15))),
                Decision::Renew,
            ),
            (
                "held by me, expired",
                Some(spec(Some(ME), Some(0), Some(15))),
                Decision::Renew,
            ),
            (
                "held by other, fresh",
                Some(spec(Some(OTHER), Some(90), Some(15))),
                follow(),
            ),
            (
                "held by other, expires now",
                Some(spec(Some(OTHER), Some(85), Some(15))),
                follow(),
            ),
            (
                "held by other, expired",
                Some(spec(Some(OTHER), Some(84), Some(15))),
                Decision::Acquire,
            ),
            (
                "lease's duration wins",
                Some(spec(Some(OTHER), Some(60), Some(60))),
                follow(),
            ),
            (
                "default duration",
                Some(spec(Some(OTHER), Some(90), None)),
                follow(),
            ),
            (
                "default duration, expired",
                Some(spec(Some(OTHER), Some(80), None)),
                Decision::Acquire,
            ),
            (
                "zero duration",
                Some(spec(Some(OTHER), Some(90), Some(0))),
                follow(),
            ),
            (
                "no renew or acquire time",
                Some(spec(Some(OTHER), None, Some(15))),
                Decision::Acquire,
            ),
            (
                "no renew time, fresh acquire time",
                Some(LeaseSpec {
                    acquire_time: Some(MicroTime(at(95))),
                    ..spec(Some(OTHER), None, Some(15))
                }),
                follow(),
            ),
        ];
        for (name, lease, expected) in cases {
            let got = decide(lease.as_ref(), ME, at(100), DEFAULT_LEASE_DURATION);
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn held_spec_counts_transitions_only_on_takeover() {
        let created = held_spec(None, ME, at(0), DEFAULT_LEASE_DURATION);
        assert_eq!(created.holder_identity.as_deref(), Some(ME));
        assert_eq!(created.lease_duration_seconds, Some(15));
        assert_eq!(created.lease_transitions, Some(0));
        assert_eq!(created.acquire_time, Some(MicroTime(at(0))));

        let renewed = held_spec(Some(&created), ME, at(5), DEFAULT_LEASE_DURATION);
        assert_eq!(renewed.lease_transitions, Some(0));
        assert_eq!(renewed.acquire_time, Some(MicroTime(at(0))));
        assert_eq!(renewed.renew_time, Some(MicroTime(at(5))));

        let taken = held_spec(Some(&renewed), OTHER, at(30), DEFAULT_LEASE_DURATION);
        assert_eq!(taken.holder_identity.as_deref(), Some(OTHER));
        assert_eq!(taken.lease_transitions, Some(1));
        assert_eq!(taken.acquire_time, Some(MicroTime(at(30))));

        let released = released_spec(Some(&taken), at(40));
        assert_eq!(released.holder_identity, None);
        assert_eq!(released.lease_transitions, Some(1));
        assert_eq!(
            decide(Some(&released), ME, at(40), DEFAULT_LEASE_DURATION),
            Decision::Acquire
        );
    }

    #[test]
    #[should_panic(expected = "renew_deadline")]
    fn new_rejects_a_deadline_longer_than_the_lease() {
        let (service, _handle) = mock::pair::<Request<Body>, Response<Body>>();
        let config = LeaseConfig {
            renew_deadline: Duration::from_secs(20),
            ..LeaseConfig::new("ferry", "ferry-operator", ME)
        };
        // `Client::new` spawns its buffer worker, so it needs a runtime.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        LeaderElector::new(Client::new(service, "default"), config);
    }

    /// How the fake API server answers.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Mode {
        /// Like a real API server, with optimistic concurrency on `resourceVersion`.
        Healthy,
        /// Every request gets `500`.
        Failing,
        /// Requests are never answered.
        Hanging,
        /// Just before any write, another replica takes the Lease, so the write conflicts.
        Racing,
    }

    /// A request the fake API server saw.
    #[derive(Debug)]
    struct Seen {
        method: Method,
        path: String,
        body: Option<Value>,
    }

    #[derive(Default)]
    struct State {
        lease: Option<Lease>,
        version: u64,
        mode: Option<Mode>,
        seen: Vec<Seen>,
    }

    /// One in-memory Lease behind as many mock clients as there are replicas.
    #[derive(Clone, Default)]
    struct FakeApiServer(Arc<Mutex<State>>);

    impl FakeApiServer {
        fn with_lease(spec: LeaseSpec) -> Self {
            let server = Self::default();
            server.store(spec);
            server
        }

        fn set_mode(&self, mode: Mode) {
            self.0.lock().unwrap().mode = Some(mode);
        }

        fn store(&self, spec: LeaseSpec) {
            let mut state = self.0.lock().unwrap();
            state.version += 1;
            state.lease = Some(Lease {
                metadata: ObjectMeta {
                    name: Some("ferry-operator".into()),
                    namespace: Some("ferry".into()),
                    resource_version: Some(state.version.to_string()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec),
            });
        }

        fn holder(&self) -> Option<String> {
            let state = self.0.lock().unwrap();
            state.lease.as_ref()?.spec.as_ref()?.holder_identity.clone()
        }

        fn requests(&self) -> Vec<(Method, String)> {
            let state = self.0.lock().unwrap();
            let seen = state.seen.iter();
            seen.map(|seen| (seen.method.clone(), seen.path.clone()))
                .collect()
        }

        fn writes(&self) -> Vec<(Method, Value)> {
            let state = self.0.lock().unwrap();
            let writes = state.seen.iter().filter(|seen| seen.method != Method::GET);
            writes
                .map(|seen| (seen.method.clone(), seen.body.clone().unwrap()))
                .collect()
        }

        /// A client whose requests this server answers, until the client is dropped.
        fn client(&self) -> Client {
            let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
            let server = self.clone();
            tokio::spawn(async move {
                let mut handle = pin!(handle);
                let mut unanswered = Vec::new();
                while let Some((request, respond)) = handle.next_request().await {
                    match server.answer(request).await {
                        Some(response) => respond.send_response(response),
                        None => unanswered.push(respond),
                    }
                }
            });
            Client::new(service, "default")
        }

        async fn answer(&self, request: Request<Body>) -> Option<Response<Body>> {
            let (parts, body) = request.into_parts();
            let body = body.collect_bytes().await.unwrap();
            let body: Option<Lease> = serde_json::from_slice(&body).ok();
            let mut state = self.0.lock().unwrap();
            state.seen.push(Seen {
                method: parts.method.clone(),
                path: parts.uri.path().to_owned(),
                body: body
                    .as_ref()
                    .map(|lease| serde_json::to_value(lease).unwrap()),
            });
            let mode = state.mode.unwrap_or(Mode::Healthy);
            match mode {
                Mode::Hanging => return None,
                Mode::Failing => return Some(status(500, "InternalError")),
                Mode::Racing if parts.method != Method::GET => {
                    drop(state);
                    self.store(spec(Some(OTHER), None, Some(15)).with_renew_now());
                    state = self.0.lock().unwrap();
                }
                Mode::Healthy | Mode::Racing => {}
            }
            let stored_version = state
                .lease
                .as_ref()
                .and_then(|lease| lease.metadata.resource_version.clone());
            let response = match (parts.method, stored_version, body) {
                (Method::GET, Some(_), _) => ok(StatusCode::OK, state.lease.as_ref().unwrap()),
                (Method::GET, None, _) => status(404, "NotFound"),
                (Method::POST, Some(_), _) => status(409, "AlreadyExists"),
                (Method::PUT, None, _) => status(404, "NotFound"),
                (Method::PUT, Some(stored), Some(lease))
                    if lease.metadata.resource_version.as_ref() != Some(&stored) =>
                {
                    status(409, "Conflict")
                }
                (method @ (Method::POST | Method::PUT), _, Some(mut lease)) => {
                    state.version += 1;
                    lease.metadata.resource_version = Some(state.version.to_string());
                    state.lease = Some(lease);
                    let code = if method == Method::POST {
                        StatusCode::CREATED
                    } else {
                        StatusCode::OK
                    };
                    ok(code, state.lease.as_ref().unwrap())
                }
                (method, ..) => panic!("unexpected {method} {}", parts.uri),
            };
            Some(response)
        }
    }

    trait RenewNow {
        fn with_renew_now(self) -> Self;
    }

    impl RenewNow for LeaseSpec {
        fn with_renew_now(self) -> Self {
            LeaseSpec {
                renew_time: Some(MicroTime(Timestamp::now())),
                ..self
            }
        }
    }

    fn ok(code: StatusCode, lease: &Lease) -> Response<Body> {
        Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(lease).unwrap()))
            .unwrap()
    }

    fn status(code: u16, reason: &str) -> Response<Body> {
        let body = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": reason, "reason": reason, "code": code,
        });
        Response::builder()
            .status(StatusCode::from_u16(code).unwrap())
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap()
    }

    /// A running elector: its leadership channel, and a way to stop it.
    struct Replica {
        is_leader: watch::Receiver<bool>,
        stop: oneshot::Sender<()>,
        task: JoinHandle<()>,
    }

    impl Replica {
        fn start(server: &FakeApiServer, identity: &str) -> Self {
            let elector = LeaderElector::new(
                server.client(),
                LeaseConfig::new("ferry", "ferry-operator", identity),
            );
            let (tx, is_leader) = watch::channel(false);
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(elector.run(tx, async {
                stopped.await.ok();
            }));
            Self {
                is_leader,
                stop,
                task,
            }
        }

        /// Waits (in paused time) until this replica reports `leading`.
        async fn until(&mut self, leading: bool) -> Duration {
            let started = Instant::now();
            let wait = self.is_leader.wait_for(|now| *now == leading);
            tokio::time::timeout(Duration::from_secs(60), wait)
                .await
                .expect("leadership did not change in time")
                .unwrap();
            started.elapsed()
        }

        async fn shut_down(self) -> bool {
            self.stop.send(()).unwrap();
            tokio::time::timeout(Duration::from_secs(60), self.task)
                .await
                .expect("elector did not stop")
                .unwrap();
            *self.is_leader.borrow()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn creates_a_missing_lease_leads_and_releases_it_on_shutdown() {
        let server = FakeApiServer::default();
        let mut replica = Replica::start(&server, ME);
        replica.until(true).await;

        let writes = server.writes();
        let (method, created) = &writes[0];
        assert_eq!(method, Method::POST);
        assert_eq!(created["spec"]["holderIdentity"], ME);
        assert_eq!(created["spec"]["leaseDurationSeconds"], 15);
        assert_eq!(created["spec"]["leaseTransitions"], 0);
        assert!(created["spec"]["acquireTime"].is_string());
        assert!(created["spec"]["renewTime"].is_string());
        assert_eq!(server.requests()[0], (Method::GET, LEASE_URL.to_owned()));

        assert!(!replica.shut_down().await, "still leader after shutdown");
        let writes = server.writes();
        let (method, released) = writes.last().unwrap();
        assert_eq!(method, Method::PUT);
        assert!(
            released["spec"].get("holderIdentity").is_none(),
            "{released}"
        );
        assert_eq!(server.holder(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn follows_a_fresh_lease_held_by_someone_else() {
        let server = FakeApiServer::with_lease(spec(Some(OTHER), None, Some(15)).with_renew_now());
        let replica = Replica::start(&server, ME);
        tokio::time::sleep(Duration::from_secs(11)).await;

        assert!(!replica.is_leader.has_changed().unwrap());
        assert!(!replica.shut_down().await);
        assert!(server.writes().is_empty(), "{:?}", server.writes());
        assert_eq!(server.requests().len(), 6, "a GET every 2 s");
        assert_eq!(server.holder().as_deref(), Some(OTHER));
    }

    #[tokio::test(start_paused = true)]
    async fn losing_the_race_for_an_expired_lease_is_not_an_error() {
        let server = FakeApiServer::with_lease(spec(Some(OTHER), Some(0), Some(15)));
        server.set_mode(Mode::Racing);
        let replica = Replica::start(&server, ME);
        tokio::time::sleep(Duration::from_secs(5)).await;

        assert!(!replica.is_leader.has_changed().unwrap());
        assert!(!replica.shut_down().await);
        let writes = server.writes();
        assert_eq!(writes.len(), 1, "one PUT that conflicted, then following");
        assert_eq!(writes[0].1["spec"]["holderIdentity"], ME);
        assert_eq!(writes[0].1["spec"]["leaseTransitions"], 1);
        assert_eq!(server.holder().as_deref(), Some(OTHER));
    }

    #[tokio::test(start_paused = true)]
    async fn steps_down_within_the_renew_deadline_when_the_api_server_fails_or_hangs() {
        for mode in [Mode::Failing, Mode::Hanging] {
            let server = FakeApiServer::default();
            let mut replica = Replica::start(&server, ME);
            replica.until(true).await;
            server.set_mode(mode);

            let took = replica.until(false).await;
            assert!(took <= DEFAULT_RENEW_DEADLINE, "{mode:?}: {took:?}");
            assert!(
                took >= DEFAULT_RENEW_DEADLINE - DEFAULT_RETRY_PERIOD,
                "{mode:?}: {took:?}"
            );
            assert!(!replica.shut_down().await);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn two_replicas_never_both_lead_and_the_standby_takes_over_on_release() {
        let server = FakeApiServer::default();
        let mut a = Replica::start(&server, ME);
        a.until(true).await;
        let mut b = Replica::start(&server, OTHER);

        for _ in 0..30 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert!(*a.is_leader.borrow() && !*b.is_leader.borrow());
        }

        assert!(!a.shut_down().await);
        let took = b.until(true).await;
        assert!(
            took <= DEFAULT_RETRY_PERIOD,
            "standby waited {took:?}, not for expiry"
        );
        let lease = server.0.lock().unwrap().lease.clone().unwrap();
        let spec = lease.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some(OTHER));
        assert_eq!(spec.lease_transitions, Some(1));
        assert!(!b.shut_down().await);
    }
}
