//! The group state machine driven with a virtual clock.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::state::{Group, GroupState, JoinRequest, JoinResult, Reply, SyncResult, code};

const SESSION: Duration = Duration::from_secs(10);
const REBALANCE: Duration = Duration::from_secs(30);

fn req(member: &str, instance: Option<&str>) -> JoinRequest {
    JoinRequest {
        member_id: member.to_owned(),
        instance_id: instance.map(str::to_owned),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout: SESSION,
        rebalance_timeout: REBALANCE,
        protocol_type: "consumer".into(),
        protocols: vec![
            ("range".into(), Bytes::from_static(b"r")),
            ("roundrobin".into(), Bytes::from_static(b"rr")),
        ],
        require_known_member_id: true,
        supports_skip_assignment: false,
    }
}

struct Ids(u32);
impl Ids {
    fn mint(&mut self) -> impl FnOnce() -> String + use<> {
        self.0 += 1;
        let id = format!("m{}", self.0);
        move || id
    }
}

fn now_result<T: std::fmt::Debug>(r: Reply<T>) -> T {
    match r {
        Reply::Now(t) => t,
        Reply::Later(_) => panic!("expected an immediate answer"),
    }
}

fn later<T: std::fmt::Debug>(r: Reply<T>) -> tokio::sync::oneshot::Receiver<T> {
    match r {
        Reply::Later(rx) => rx,
        Reply::Now(t) => panic!("expected to wait, got {t:?}"),
    }
}

fn ready<T>(rx: &mut tokio::sync::oneshot::Receiver<T>) -> T {
    rx.try_recv().expect("answered")
}

/// Two-step join (MEMBER_ID_REQUIRED, then with the id); returns the id and the wait.
fn join(
    g: &mut Group,
    ids: &mut Ids,
    t: Instant,
) -> (String, tokio::sync::oneshot::Receiver<JoinResult>) {
    let first = now_result(g.join(req("", None), t, ids.mint()));
    assert_eq!(first.error, code::MEMBER_ID_REQUIRED);
    let id = first.member_id;
    (id.clone(), later(g.join(req(&id, None), t, ids.mint())))
}

fn sync_all(g: &mut Group, t: Instant, leader: &str, members: &[&str]) -> Vec<SyncResult> {
    let gen_ = g.generation();
    let mut waits: Vec<_> = members
        .iter()
        .filter(|m| **m != leader)
        .map(|m| later(g.sync(m, None, gen_, vec![], t)))
        .collect();
    let plan = members
        .iter()
        .map(|m| ((*m).to_owned(), Bytes::from(format!("for {m}"))))
        .collect();
    let mut out = vec![ready(&mut later(g.sync(leader, None, gen_, plan, t)))];
    out.extend(waits.iter_mut().map(ready));
    out
}

#[test]
fn join_sync_rejoin_and_leave() {
    let t = Instant::now();
    let mut ids = Ids(0);
    let mut g = Group::new(Duration::ZERO);
    let (a, mut wa) = join(&mut g, &mut ids, t);
    let ra = ready(&mut wa);
    assert_eq!(
        (ra.error, ra.generation, ra.leader.as_str()),
        (0, 1, a.as_str())
    );
    assert_eq!(ra.protocol.as_deref(), Some("range"));
    assert_eq!(ra.members.len(), 1, "the leader gets the member list");
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    let synced = sync_all(&mut g, t, &a, &[&a]);
    assert_eq!(synced[0].assignment, Bytes::from(format!("for {a}")));
    assert_eq!(g.state(), GroupState::Stable);

    // A second member triggers a rebalance; the first learns through its heartbeat.
    let (b, mut wb) = join(&mut g, &mut ids, t);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert!(wb.try_recv().is_err(), "waits for the others to rejoin");
    assert_eq!(g.heartbeat(&a, None, 1, t), code::REBALANCE_IN_PROGRESS);
    let mut wa = later(g.join(req(&a, None), t, ids.mint()));
    let (ra, rb) = (ready(&mut wa), ready(&mut wb));
    assert_eq!((ra.generation, rb.generation), (2, 2));
    assert_eq!(ra.members.len(), 2);
    assert!(rb.members.is_empty(), "followers get no member list");
    let synced = sync_all(&mut g, t, &a, &[&a, &b]);
    assert_eq!(synced[1].assignment, Bytes::from(format!("for {b}")));
    assert_eq!(g.heartbeat(&b, None, 2, t), code::NONE);
    assert_eq!(g.heartbeat(&b, None, 1, t), code::ILLEGAL_GENERATION);
    assert_eq!(g.heartbeat("nobody", None, 2, t), code::UNKNOWN_MEMBER_ID);
    assert_eq!(
        g.check_commit(&b, None, 1, t),
        Err(code::ILLEGAL_GENERATION)
    );
    assert_eq!(g.check_commit(&b, None, 2, t), Ok(()));
    assert_eq!(
        g.check_commit("", None, -1, t),
        Err(code::UNKNOWN_MEMBER_ID)
    );

    // Both leave at once: the group ends Empty, not stuck in a rebalance.
    assert_eq!(g.leave(&a, None, t), code::NONE);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(g.leave(&b, None, t), code::NONE);
    assert_eq!(g.state(), GroupState::Empty);
    assert_eq!(g.leave(&b, None, t), code::UNKNOWN_MEMBER_ID);
    assert_eq!(
        g.check_commit("", None, -1, t),
        Ok(()),
        "simple commits when empty"
    );
}

#[test]
fn leaving_during_a_rebalance_completes_it() {
    let t = Instant::now();
    let mut ids = Ids(0);
    let mut g = Group::new(Duration::ZERO);
    let (a, mut wa) = join(&mut g, &mut ids, t);
    ready(&mut wa);
    let (b, mut wb) = join(&mut g, &mut ids, t);
    // `a` never rejoins but leaves: the rebalance completes with `b` alone.
    assert_eq!(g.leave(&a, None, t), code::NONE);
    let rb = ready(&mut wb);
    assert_eq!((rb.error, rb.leader.as_str()), (0, b.as_str()));
    assert_eq!(g.size(), 1);
}

#[test]
fn expired_sessions_and_late_members_are_removed() {
    let t = Instant::now();
    let mut ids = Ids(0);
    let mut g = Group::new(Duration::ZERO);
    let (a, mut wa) = join(&mut g, &mut ids, t);
    ready(&mut wa);
    sync_all(&mut g, t, &a, &[&a]);
    let (b, mut wb) = join(&mut g, &mut ids, t);
    let _ = b;
    // `a` keeps heartbeating but never rejoins: after the rebalance timeout it is dropped.
    for s in [8, 16, 24] {
        let at = t + Duration::from_secs(s);
        assert_eq!(g.heartbeat(&a, None, 1, at), code::REBALANCE_IN_PROGRESS);
        g.tick(at);
        assert!(wb.try_recv().is_err(), "still waiting at {s}s");
    }
    g.tick(t + REBALANCE + Duration::from_secs(1));
    let rb = ready(&mut wb);
    assert_eq!((rb.error, rb.members.len()), (0, 1));
    assert!(!g.describe().iter().any(|m| m.member_id == a));

    // A member silent for its session timeout is expired at that moment, as by Kafka's
    // heartbeat timer, and the group says when that is.
    let t2 = t + REBALANCE + Duration::from_secs(1);
    sync_all(&mut g, t2, &rb.member_id, &[&rb.member_id]);
    assert_eq!(g.next_deadline(t2), Some(t2 + SESSION));
    g.tick(t2 + SESSION - Duration::from_millis(1));
    assert_eq!(g.size(), 1, "not before");
    g.tick(t2 + SESSION);
    assert_eq!(g.size(), 0);
    assert_eq!(g.next_deadline(t2 + SESSION), None, "nothing left to time");
    assert_eq!(g.state(), GroupState::Empty);

    // Pending member ids that are never used expire too.
    let first = now_result(g.join(req("", None), t2, ids.mint()));
    assert_eq!(first.error, code::MEMBER_ID_REQUIRED);
    g.tick(t2 + SESSION * 3);
    let again = now_result(g.join(req(&first.member_id, None), t2, ids.mint()));
    assert_eq!(again.error, code::UNKNOWN_MEMBER_ID);
}

#[test]
fn initial_delay_waits_for_more_members() {
    let t = Instant::now();
    let mut ids = Ids(0);
    let mut g = Group::new(Duration::from_secs(3));
    let (_a, mut wa) = join(&mut g, &mut ids, t);
    let (_b, mut wb) = join(&mut g, &mut ids, t + Duration::from_secs(1));
    g.tick(t + Duration::from_secs(2));
    assert!(wa.try_recv().is_err());
    g.tick(t + Duration::from_secs(4));
    let (ra, rb) = (ready(&mut wa), ready(&mut wb));
    assert_eq!(
        (ra.generation, rb.generation),
        (1, 1),
        "one rebalance for both"
    );
}

/// Once the initial delay is over but a member is still to join, the group names no time in
/// the past to wake at (the broker's timer task would otherwise spin until the rebalance
/// ends).
#[test]
fn no_deadline_in_the_past_while_a_rebalance_waits() {
    let t = Instant::now();
    let mut ids = Ids(0);
    let mut g = Group::new(Duration::from_secs(3));
    let (_a, mut wa) = join(&mut g, &mut ids, t);
    // A second client got its member id but has not joined with it yet.
    let first = now_result(g.join(req("", None), t, ids.mint()));
    assert_eq!(first.error, code::MEMBER_ID_REQUIRED);
    let after_delay = t + Duration::from_secs(4);
    g.tick(after_delay);
    assert!(wa.try_recv().is_err(), "waits for the pending member");
    let next = g
        .next_deadline(after_delay)
        .expect("the pending id and the rebalance time out");
    assert!(next > after_delay, "{next:?} is not after {after_delay:?}");
}

/// A stable group of two static members, `pod-a` and `pod-b`, each synced: the group, the id
/// source, the time, the two member ids, the leader's id and the generation.
fn stable_static_pair() -> (Group, Ids, Instant, String, String, String, i32) {
    let t = Instant::now();
    let mut ids = Ids(0);
    let mut g = Group::new(Duration::ZERO);
    let mut wa = later(g.join(req("", Some("pod-a")), t, ids.mint()));
    let a = ready(&mut wa).member_id;
    let mut wb = later(g.join(req("", Some("pod-b")), t, ids.mint()));
    let mut wa = later(g.join(req(&a, Some("pod-a")), t, ids.mint()));
    let (ra, rb) = (ready(&mut wa), ready(&mut wb));
    let b = rb.member_id.clone();
    let leader = ra.leader.clone();
    sync_all(&mut g, t, &leader, &[&a, &b]);
    let generation = g.generation();
    (g, ids, t, a, b, leader, generation)
}

#[test]
fn static_members_rejoin_without_a_rebalance_and_fence_old_ids() {
    let (mut g, mut ids, t, a, b, leader, generation) = stable_static_pair();

    // The follower restarts (new process, same instance id, no member id).
    let follower = if leader == a {
        ("pod-b", b.clone())
    } else {
        ("pod-a", a.clone())
    };
    let back = now_result(g.join(req("", Some(follower.0)), t, ids.mint()));
    assert_eq!(
        (back.error, back.generation),
        (0, generation),
        "no rebalance"
    );
    assert_ne!(back.member_id, follower.1);
    assert_eq!(g.state(), GroupState::Stable);
    assert_eq!(
        g.heartbeat(&follower.1, Some(follower.0), generation, t),
        code::FENCED_INSTANCE_ID,
        "the old member id is fenced"
    );
    let resync = now_result(g.sync(&back.member_id, Some(follower.0), generation, vec![], t));
    assert_eq!(
        resync.assignment,
        Bytes::from(format!("for {}", follower.1)),
        "keeps its assignment"
    );
}

/// Kafka's rule for a static member coming back to a stable group: no rebalance unless the
/// protocol the group would choose changes — whatever else its metadata says (a restarted
/// consumer owns no partitions), and a returning leader too (librdkafka 0102).
#[test]
fn static_rejoin_rebalances_only_when_the_chosen_protocol_changes() {
    let (mut g, mut ids, t, a, _, leader, generation) = stable_static_pair();
    let (leader_instance, follower_instance) = if leader == a {
        ("pod-a", "pod-b")
    } else {
        ("pod-b", "pod-a")
    };

    // The follower restarts with other metadata for the same protocols.
    let mut changed = req("", Some(follower_instance));
    changed.protocols = vec![
        ("range".into(), Bytes::from_static(b"r, owning nothing")),
        (
            "roundrobin".into(),
            Bytes::from_static(b"rr, owning nothing"),
        ),
    ];
    let back = now_result(g.join(changed, t, ids.mint()));
    assert_eq!((back.error, back.generation), (0, generation));
    assert_eq!(g.state(), GroupState::Stable, "no rebalance");

    // The leader restarts (JoinGroup before v9): told the leader it replaced, so it does not
    // assign; it syncs and keeps its assignment.
    let back = now_result(g.join(req("", Some(leader_instance)), t, ids.mint()));
    assert_eq!((back.error, back.generation), (0, generation));
    assert_eq!(back.leader, leader, "the old leader id, not its own");
    assert!(back.members.is_empty() && !back.skip_assignment);
    assert_eq!(g.state(), GroupState::Stable, "no rebalance");
    let resync = now_result(g.sync(
        &back.member_id,
        Some(leader_instance),
        generation,
        vec![],
        t,
    ));
    assert_eq!(resync.assignment, Bytes::from(format!("for {leader}")));

    // Again with JoinGroup v9: it gets the members and SkipAssignment.
    let mut v9 = req("", Some(leader_instance));
    v9.supports_skip_assignment = true;
    let back = now_result(g.join(v9, t, ids.mint()));
    assert_eq!(back.error, 0);
    assert!(back.skip_assignment);
    assert_eq!(back.members.len(), 2);
    assert_eq!(g.state(), GroupState::Stable, "no rebalance");

    // The follower comes back supporting only roundrobin: the group's choice would change
    // from range, so the group rebalances.
    let mut other = req("", Some(follower_instance));
    other.protocols = vec![("roundrobin".into(), Bytes::from_static(b"rr"))];
    let _pending = later(g.join(other, t, ids.mint()));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
}

#[test]
fn inconsistent_protocols_are_refused() {
    let t = Instant::now();
    let mut ids = Ids(0);
    let mut g = Group::new(Duration::ZERO);
    let (_a, mut wa) = join(&mut g, &mut ids, t);
    ready(&mut wa);
    let mut other = req("", None);
    other.protocols = vec![("sticky".into(), Bytes::new())];
    assert_eq!(
        now_result(g.join(other, t, ids.mint())).error,
        code::INCONSISTENT_GROUP_PROTOCOL
    );
    let mut connect = req("", None);
    connect.protocol_type = "connect".into();
    assert_eq!(
        now_result(g.join(connect, t, ids.mint())).error,
        code::INCONSISTENT_GROUP_PROTOCOL
    );
}

#[test]
fn commits_during_a_rebalance_follow_kafka() {
    let t = Instant::now();
    let mut ids = Ids(0);
    let mut g = Group::new(Duration::ZERO);
    let (a, mut wa) = join(&mut g, &mut ids, t);
    ready(&mut wa);
    sync_all(&mut g, t, &a, &[&a]);
    assert_eq!(g.state(), GroupState::Stable);

    // B joins: PreparingRebalance, generation still 1.
    let (b, mut wb) = join(&mut g, &mut ids, t);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    let preparing = [
        ("current generation is accepted", a.as_str(), 1, Ok(())),
        (
            "an old generation is not",
            a.as_str(),
            0,
            Err(code::ILLEGAL_GENERATION),
        ),
        (
            "nor a future one",
            a.as_str(),
            2,
            Err(code::ILLEGAL_GENERATION),
        ),
        ("a member not yet in a generation", b.as_str(), 1, Ok(())),
        (
            "an unknown member",
            "nobody",
            1,
            Err(code::UNKNOWN_MEMBER_ID),
        ),
        (
            "a simple commit into a live group",
            "",
            -1,
            Err(code::UNKNOWN_MEMBER_ID),
        ),
    ];
    for (name, member, generation, expected) in preparing {
        assert_eq!(
            g.check_commit(member, None, generation, t),
            expected,
            "{name}"
        );
    }

    // A rejoins: generation 2, CompletingRebalance until SyncGroup.
    let mut wa = later(g.join(req(&a, None), t, ids.mint()));
    ready(&mut wa);
    ready(&mut wb);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    let completing = [
        (
            "current generation awaits sync",
            a.as_str(),
            2,
            Err(code::REBALANCE_IN_PROGRESS),
        ),
        (
            "the old generation is fenced",
            a.as_str(),
            1,
            Err(code::ILLEGAL_GENERATION),
        ),
        (
            "an unknown member",
            "nobody",
            2,
            Err(code::UNKNOWN_MEMBER_ID),
        ),
    ];
    for (name, member, generation, expected) in completing {
        assert_eq!(
            g.check_commit(member, None, generation, t),
            expected,
            "{name}"
        );
    }
    sync_all(&mut g, t, &a, &[&a, &b]);
    assert_eq!(g.check_commit(&b, None, 2, t), Ok(()), "stable again");
}

/// DeleteGroups and DescribeGroups run the group's due timers first: a static member whose
/// session ran out a moment ago is gone though the periodic timer task has not run (on a
/// loaded machine it wakes late; librdkafka's 0081 deletes its groups exactly one session
/// timeout after closing their members).
#[test]
fn deleting_a_group_expires_its_run_out_members_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let offsets =
        super::offsets::OffsetStore::open(dir.path(), false, Default::default()).expect("offsets");
    let config = super::GroupConfig {
        min_session_timeout: Duration::from_millis(1),
        max_session_timeout: Duration::from_secs(60),
        initial_rebalance_delay: Duration::ZERO,
    };
    let coordinator = super::ConsumerGroupCoordinator::new(config, offsets, Default::default());
    let short = |member: &str| JoinRequest {
        session_timeout: Duration::from_millis(50),
        rebalance_timeout: Duration::from_millis(50),
        ..req(member, Some("static-1"))
    };
    let mut waiting = match coordinator.join("g", short("")) {
        Reply::Later(rx) => rx,
        Reply::Now(r) => panic!("a first join waits for the rebalance: {r:?}"),
    };
    // The rebalance (no initial delay) completes at the next timer run.
    coordinator.tick();
    assert_eq!(ready(&mut waiting).error, code::NONE, "joined");
    assert_eq!(coordinator.delete("g"), code::NON_EMPTY_GROUP);
    std::thread::sleep(Duration::from_millis(120));
    // No tick ran: the request itself finds the session over.
    assert_eq!(coordinator.describe("g").members.len(), 0);
    assert_eq!(coordinator.delete("g"), code::NONE);
}
