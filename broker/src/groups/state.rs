//! One consumer group's state machine (Kafka's classic group protocol): Empty →
//! PreparingRebalance → CompletingRebalance → Stable, and back on joins, leaves and expiry.
//!
//! Time is passed in (`now`) so every transition is a plain function call that tests drive
//! with a virtual clock; waiting clients are `oneshot` senders answered on transitions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

/// Kafka error codes the coordinator answers with.
pub mod code {
    /// No error.
    pub const NONE: i16 = 0;
    /// ILLEGAL_GENERATION
    pub const ILLEGAL_GENERATION: i16 = 22;
    /// COORDINATOR_NOT_AVAILABLE
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    /// INCONSISTENT_GROUP_PROTOCOL
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    /// INVALID_GROUP_ID
    pub const INVALID_GROUP_ID: i16 = 24;
    /// UNKNOWN_MEMBER_ID
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    /// INVALID_SESSION_TIMEOUT
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    /// REBALANCE_IN_PROGRESS
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    /// NON_EMPTY_GROUP
    pub const NON_EMPTY_GROUP: i16 = 68;
    /// GROUP_ID_NOT_FOUND
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    /// MEMBER_ID_REQUIRED
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    /// GROUP_SUBSCRIBED_TO_TOPIC
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
    /// KAFKA_STORAGE_ERROR
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    /// FENCED_INSTANCE_ID
    pub const FENCED_INSTANCE_ID: i16 = 82;
}

/// The states of a classic consumer group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    /// No members.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    /// Members have their assignments.
    Stable,
    /// Deleted.
    Dead,
}

impl GroupState {
    /// The name Kafka reports in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A JoinGroup request, decoded.
#[derive(Clone, Debug)]
pub struct JoinRequest {
    /// The member id ("" on first join).
    pub member_id: String,
    /// `group.instance.id` for static members.
    pub instance_id: Option<String>,
    /// Client id from the request header.
    pub client_id: String,
    /// Peer address.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout: Duration,
    /// Rebalance timeout.
    pub rebalance_timeout: Duration,
    /// Protocol type ("consumer").
    pub protocol_type: String,
    /// Protocols in preference order, with metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// Whether the client takes part in the MEMBER_ID_REQUIRED round (JoinGroup v4+).
    pub require_known_member_id: bool,
    /// Whether the client understands `SkipAssignment` (JoinGroup v9+, KIP-814).
    pub supports_skip_assignment: bool,
}

/// The answer to a JoinGroup.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JoinResult {
    /// Error code.
    pub error: i16,
    /// Generation joined.
    pub generation: i32,
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Chosen protocol.
    pub protocol: Option<String>,
    /// Leader's member id.
    pub leader: String,
    /// This member's id.
    pub member_id: String,
    /// Members with their metadata for the chosen protocol (leader only).
    pub members: Vec<(String, Option<String>, Bytes)>,
    /// The leader must not assign: a static leader rejoined a stable group (JoinGroup v9+).
    pub skip_assignment: bool,
}

impl JoinResult {
    fn error(error: i16, member_id: &str) -> Self {
        JoinResult {
            error,
            generation: -1,
            member_id: member_id.to_owned(),
            ..JoinResult::default()
        }
    }
}

/// The answer to a SyncGroup.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncResult {
    /// Error code.
    pub error: i16,
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Chosen protocol.
    pub protocol: Option<String>,
    /// This member's assignment.
    pub assignment: Bytes,
}

impl SyncResult {
    fn error(error: i16) -> Self {
        SyncResult {
            error,
            ..SyncResult::default()
        }
    }
}

/// Either an answer now or one to wait for.
#[derive(Debug)]
pub enum Reply<T> {
    /// Answered at once.
    Now(T),
    /// Answered when the rebalance moves on.
    Later(oneshot::Receiver<T>),
}

#[derive(Debug)]
struct Member {
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_seen: Instant,
    join: Option<oneshot::Sender<JoinResult>>,
    sync: Option<oneshot::Sender<SyncResult>>,
}

/// A described member.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Metadata for the chosen protocol.
    pub metadata: Bytes,
    /// Current assignment.
    pub assignment: Bytes,
}

/// One group.
#[derive(Debug)]
pub struct Group {
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    pending: HashMap<String, Instant>,
    statics: HashMap<String, String>,
    rebalance_started: Option<Instant>,
    not_before: Option<Instant>,
    initial_delay: Duration,
    rebalances: u64,
}

impl Group {
    /// A new, empty group. `initial_delay` is how long the first rebalance of an empty
    /// group waits for more members (Kafka's `group.initial.rebalance.delay.ms`).
    pub fn new(initial_delay: Duration) -> Self {
        Group {
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            statics: HashMap::new(),
            rebalance_started: None,
            not_before: None,
            initial_delay,
            rebalances: 0,
        }
    }

    /// Current state.
    pub fn state(&self) -> GroupState {
        self.state
    }
    /// Current generation.
    pub fn generation(&self) -> i32 {
        self.generation
    }
    /// Protocol type of the members (or of the last members).
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }
    /// Chosen protocol.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }
    /// Number of members.
    pub fn size(&self) -> usize {
        self.members.len()
    }
    /// Rebalances completed so far.
    pub fn rebalances(&self) -> u64 {
        self.rebalances
    }

    /// Members, with metadata for the chosen protocol.
    pub fn describe(&self) -> Vec<MemberDescription> {
        self.members
            .iter()
            .map(|(id, m)| MemberDescription {
                member_id: id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: self
                    .protocol
                    .as_ref()
                    .and_then(|p| m.protocols.iter().find(|(n, _)| n == p))
                    .map(|(_, md)| md.clone())
                    .unwrap_or_default(),
                assignment: m.assignment.clone(),
            })
            .collect()
    }

    /// The topics the members subscribe to (their consumer-protocol metadata for the chosen
    /// protocol); `None` when not known — not the consumer protocol, no protocol chosen yet,
    /// or metadata that does not parse.
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let mut topics = BTreeSet::new();
        for m in self.describe() {
            topics.extend(super::subscription::topics(&m.metadata)?);
        }
        Some(topics)
    }

    fn supports(&self, req: &JoinRequest) -> bool {
        if self.members.is_empty() {
            return true;
        }
        let same_type = self
            .members
            .values()
            .all(|m| m.protocol_type == req.protocol_type);
        same_type
            && req.protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
    }

    fn fenced(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        instance_id
            .and_then(|i| self.statics.get(i))
            .is_some_and(|known| known != member_id)
    }

    /// Handles a JoinGroup; `mint` makes a new member id.
    pub fn join(
        &mut self,
        req: JoinRequest,
        now: Instant,
        mint: impl FnOnce() -> String,
    ) -> Reply<JoinResult> {
        if req.protocol_type.is_empty() || req.protocols.is_empty() || !self.supports(&req) {
            return Reply::Now(JoinResult::error(
                code::INCONSISTENT_GROUP_PROTOCOL,
                &req.member_id,
            ));
        }
        if req.member_id.is_empty() {
            let new_id = mint();
            if let Some(instance) = req.instance_id.clone() {
                if let Some(old_id) = self.statics.get(&instance).cloned() {
                    return self.replace_static(old_id, new_id, req, now);
                }
                self.statics.insert(instance, new_id.clone());
                return self.add_member(new_id, req, now);
            }
            if req.require_known_member_id {
                self.pending
                    .insert(new_id.clone(), now + req.session_timeout);
                return Reply::Now(JoinResult::error(code::MEMBER_ID_REQUIRED, &new_id));
            }
            return self.add_member(new_id, req, now);
        }
        if self.pending.remove(&req.member_id).is_some() {
            let id = req.member_id.clone();
            return self.add_member(id, req, now);
        }
        if self.fenced(&req.member_id, req.instance_id.as_deref()) {
            return Reply::Now(JoinResult::error(code::FENCED_INSTANCE_ID, &req.member_id));
        }
        if !self.members.contains_key(&req.member_id) {
            return Reply::Now(JoinResult::error(code::UNKNOWN_MEMBER_ID, &req.member_id));
        }
        self.rejoin(req, now)
    }

    fn new_member(req: &JoinRequest, now: Instant) -> Member {
        Member {
            instance_id: req.instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            session_timeout: req.session_timeout,
            rebalance_timeout: req.rebalance_timeout,
            protocol_type: req.protocol_type.clone(),
            protocols: req.protocols.clone(),
            assignment: Bytes::new(),
            last_seen: now,
            join: None,
            sync: None,
        }
    }

    fn add_member(&mut self, id: String, req: JoinRequest, now: Instant) -> Reply<JoinResult> {
        self.members.insert(id.clone(), Self::new_member(&req, now));
        self.protocol_type = Some(req.protocol_type);
        self.join_rebalance(&id, now)
    }

    /// `id` waits for the rebalance, which starts now unless one is being prepared.
    fn join_rebalance(&mut self, id: &str, now: Instant) -> Reply<JoinResult> {
        let (tx, rx) = oneshot::channel();
        if let Some(m) = self.members.get_mut(id) {
            m.join = Some(tx);
        }
        if self.state != GroupState::PreparingRebalance {
            self.prepare(now);
        }
        self.try_complete(now);
        Reply::Later(rx)
    }

    /// A static member came back with a new member id: it takes the old member's place.
    fn replace_static(
        &mut self,
        old_id: String,
        new_id: String,
        req: JoinRequest,
        now: Instant,
    ) -> Reply<JoinResult> {
        let Some(mut old) = self.members.remove(&old_id) else {
            self.statics
                .remove(req.instance_id.as_deref().unwrap_or_default());
            return self.join(req, now, || new_id);
        };
        if let Some(tx) = old.join.take() {
            let _ = tx.send(JoinResult::error(code::FENCED_INSTANCE_ID, &old_id));
        }
        if let Some(tx) = old.sync.take() {
            let _ = tx.send(SyncResult::error(code::FENCED_INSTANCE_ID));
        }
        let old_leader = self.leader.clone().unwrap_or_default();
        let leads = old_leader == old_id;
        let mut member = Self::new_member(&req, now);
        member.assignment = old.assignment;
        self.members.insert(new_id.clone(), member);
        if let Some(instance) = req.instance_id.clone() {
            self.statics.insert(instance, new_id.clone());
        }
        if leads {
            self.leader = Some(new_id.clone());
        }
        // Kafka's rule (KIP-345): a static member that comes back to a stable group takes its
        // old place without a rebalance unless the protocol the group would now choose
        // changes. Its answer names the leader as it was, so that a returning leader does not
        // assign again (which a stable group would not pass on); from JoinGroup v9 it is told
        // so instead (`SkipAssignment`, KIP-814) and gets the members.
        if self.state == GroupState::Stable && self.choose_protocol() == self.protocol {
            let skip = leads && req.supports_skip_assignment;
            return Reply::Now(JoinResult {
                leader: old_leader,
                members: if skip { self.member_list() } else { Vec::new() },
                skip_assignment: skip,
                ..self.current(&new_id)
            });
        }
        // Otherwise (or while the group completes a rebalance, whose assignment would name the
        // old member id) the group rebalances, as Kafka's coordinator does.
        self.join_rebalance(&new_id, now)
    }

    fn current(&self, member_id: &str) -> JoinResult {
        let leader = self.leader.clone().unwrap_or_default();
        JoinResult {
            error: code::NONE,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            members: if leader == member_id {
                self.member_list()
            } else {
                Vec::new()
            },
            leader,
            member_id: member_id.to_owned(),
            skip_assignment: false,
        }
    }

    fn member_list(&self) -> Vec<(String, Option<String>, Bytes)> {
        self.describe()
            .into_iter()
            .map(|d| (d.member_id, d.instance_id, d.metadata))
            .collect()
    }

    fn rejoin(&mut self, req: JoinRequest, now: Instant) -> Reply<JoinResult> {
        let id = req.member_id.clone();
        let is_leader = self.leader.as_deref() == Some(id.as_str());
        let Some(member) = self.members.get_mut(&id) else {
            return Reply::Now(JoinResult::error(code::UNKNOWN_MEMBER_ID, &id));
        };
        let unchanged = member.protocols == req.protocols;
        member.protocols = req.protocols;
        member.session_timeout = req.session_timeout;
        member.rebalance_timeout = req.rebalance_timeout;
        member.last_seen = now;
        let (tx, rx) = oneshot::channel();
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance if unchanged && !is_leader => {
                return Reply::Now(self.current(&id));
            }
            GroupState::PreparingRebalance => {}
            _ => self.prepare(now),
        }
        if let Some(m) = self.members.get_mut(&id) {
            m.join = Some(tx);
        }
        self.try_complete(now);
        Reply::Later(rx)
    }

    fn prepare(&mut self, now: Instant) {
        for m in self.members.values_mut() {
            if let Some(tx) = m.sync.take() {
                let _ = tx.send(SyncResult::error(code::REBALANCE_IN_PROGRESS));
            }
        }
        self.not_before = (self.state == GroupState::Empty).then(|| now + self.initial_delay);
        self.state = GroupState::PreparingRebalance;
        self.rebalance_started = Some(now);
    }

    fn try_complete(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = self.members.values().all(|m| m.join.is_some()) && self.pending.is_empty();
        let delay_over = self.not_before.is_none_or(|t| now >= t);
        if all_joined && delay_over {
            self.complete(now);
        }
    }

    fn choose_protocol(&self) -> Option<String> {
        let candidates: Vec<&String> = self
            .members
            .values()
            .next()?
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == *n))
            })
            .collect();
        // Each member votes for its most preferred candidate; most votes wins, ties go to
        // the earliest candidate (Kafka's selectProtocol).
        let mut votes: Vec<usize> = vec![0; candidates.len()];
        for m in self.members.values() {
            if let Some(i) = m
                .protocols
                .iter()
                .find_map(|(p, _)| candidates.iter().position(|c| *c == p))
            {
                votes[i] += 1;
            }
        }
        let best = votes.iter().max().copied()?;
        let i = votes.iter().position(|v| *v == best)?;
        candidates.get(i).map(|c| (*c).clone())
    }

    fn complete(&mut self, now: Instant) {
        self.rebalance_started = None;
        self.not_before = None;
        self.generation += 1;
        self.rebalances += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.protocol = self.choose_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let result = self.current(&id);
            if let Some(m) = self.members.get_mut(&id) {
                m.last_seen = now;
                m.assignment = Bytes::new();
                if let Some(tx) = m.join.take() {
                    let _ = tx.send(result);
                }
            }
        }
    }

    fn check_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), i16> {
        if self.fenced(member_id, instance_id) {
            return Err(code::FENCED_INSTANCE_ID);
        }
        if !self.members.contains_key(member_id) {
            return Err(code::UNKNOWN_MEMBER_ID);
        }
        Ok(())
    }

    /// Handles a SyncGroup; `assignments` is the leader's plan (empty from followers).
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Reply<SyncResult> {
        if let Err(e) = self.check_member(member_id, instance_id) {
            return Reply::Now(SyncResult::error(e));
        }
        if generation != self.generation {
            return Reply::Now(SyncResult::error(code::ILLEGAL_GENERATION));
        }
        match self.state {
            GroupState::PreparingRebalance => {
                Reply::Now(SyncResult::error(code::REBALANCE_IN_PROGRESS))
            }
            GroupState::Stable => Reply::Now(self.sync_result(member_id)),
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(member_id) {
                    m.last_seen = now;
                    m.sync = Some(tx);
                }
                if self.leader.as_deref() == Some(member_id) {
                    let mut plan: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for (id, m) in &mut self.members {
                        m.assignment = plan.remove(id).unwrap_or_default();
                    }
                    self.state = GroupState::Stable;
                    let ids: Vec<String> = self.members.keys().cloned().collect();
                    for id in ids {
                        let result = self.sync_result(&id);
                        if let Some(tx) = self.members.get_mut(&id).and_then(|m| m.sync.take()) {
                            let _ = tx.send(result);
                        }
                    }
                }
                Reply::Later(rx)
            }
            GroupState::Empty | GroupState::Dead => {
                Reply::Now(SyncResult::error(code::UNKNOWN_MEMBER_ID))
            }
        }
    }

    fn sync_result(&self, member_id: &str) -> SyncResult {
        SyncResult {
            error: code::NONE,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            assignment: self
                .members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    /// Handles a Heartbeat; returns the error code.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> i16 {
        if let Err(e) = self.check_member(member_id, instance_id) {
            return e;
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_seen = now;
        }
        if generation != self.generation {
            return code::ILLEGAL_GENERATION;
        }
        match self.state {
            GroupState::PreparingRebalance => code::REBALANCE_IN_PROGRESS,
            GroupState::CompletingRebalance | GroupState::Stable => code::NONE,
            GroupState::Empty | GroupState::Dead => code::UNKNOWN_MEMBER_ID,
        }
    }

    /// Whether an OffsetCommit from this member may be stored (a heartbeat too).
    ///
    /// Kafka's order (`ClassicGroup.validateOffsetCommit`): a simple commit (no generation)
    /// only into an empty group; then the member, then its generation; only a current member
    /// of the current generation gets `REBALANCE_IN_PROGRESS`, and only while the group awaits
    /// SyncGroup (CompletingRebalance). During PreparingRebalance the generation has not moved
    /// yet, so commits of the current generation are accepted — members commit what they
    /// processed before rejoining.
    ///
    /// # Errors
    /// The Kafka error code to answer with.
    pub fn check_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), i16> {
        if self.state == GroupState::Dead {
            return Err(code::COORDINATOR_NOT_AVAILABLE);
        }
        if generation < 0 && self.members.is_empty() {
            // A commit from a client not using group management (e.g. `assign()`).
            return Ok(());
        }
        if generation < 0 && member_id.is_empty() && instance_id.is_none() {
            return Err(code::UNKNOWN_MEMBER_ID);
        }
        self.check_member(member_id, instance_id)?;
        if generation != self.generation {
            return Err(code::ILLEGAL_GENERATION);
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(code::REBALANCE_IN_PROGRESS);
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_seen = now;
        }
        Ok(())
    }

    /// Handles one member of a LeaveGroup; returns the error code for it.
    pub fn leave(&mut self, member_id: &str, instance_id: Option<&str>, now: Instant) -> i16 {
        let id = match instance_id {
            Some(instance) => match self.statics.get(instance) {
                Some(known) if member_id.is_empty() || known == member_id => known.clone(),
                Some(_) => return code::FENCED_INSTANCE_ID,
                None => return code::UNKNOWN_MEMBER_ID,
            },
            None => member_id.to_owned(),
        };
        if self.pending.remove(&id).is_some() {
            self.try_complete(now);
            return code::NONE;
        }
        if !self.members.contains_key(&id) {
            return code::UNKNOWN_MEMBER_ID;
        }
        self.remove(&id, now);
        code::NONE
    }

    fn remove(&mut self, id: &str, now: Instant) {
        if let Some(mut m) = self.members.remove(id) {
            if let Some(tx) = m.join.take() {
                let _ = tx.send(JoinResult::error(code::UNKNOWN_MEMBER_ID, id));
            }
            if let Some(tx) = m.sync.take() {
                let _ = tx.send(SyncResult::error(code::UNKNOWN_MEMBER_ID));
            }
            if let Some(instance) = m.instance_id {
                self.statics.remove(&instance);
            }
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare(now);
                self.try_complete(now);
            }
            GroupState::PreparingRebalance => {
                if self.members.is_empty() {
                    self.complete(now);
                } else {
                    self.try_complete(now);
                }
            }
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Expires members whose session ran out and pending ids never used, ends rebalances
    /// past their timeout (dropping members that did not rejoin), and completes a delayed
    /// first rebalance.
    pub fn tick(&mut self, now: Instant) {
        let before = self.pending.len();
        self.pending.retain(|_, deadline| *deadline > now);
        let expired: Vec<String> = self
            .members
            .iter()
            // As Kafka's heartbeat timer: expired once the session timeout has passed.
            .filter(|(_, m)| m.join.is_none() && now >= m.last_seen + m.session_timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            tracing::info!(member = %id, "group member session expired");
            self.remove(&id, now);
        }
        if self.state == GroupState::PreparingRebalance {
            let timeout = self.rebalance_timeout();
            let started = self.rebalance_started.unwrap_or(now);
            if now.duration_since(started) > timeout {
                self.pending.clear();
                let late: Vec<String> = self
                    .members
                    .iter()
                    .filter(|(_, m)| m.join.is_none())
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in late {
                    self.members.remove(&id);
                    self.statics.retain(|_, m| *m != id);
                }
                self.complete(now);
            } else if before != self.pending.len() || self.not_before.is_some() {
                self.try_complete(now);
            }
        }
    }

    /// How long a rebalance may wait for members to rejoin: the longest of theirs.
    fn rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    /// The earliest time after `now` that [`Group::tick`] has something to do: a session or a
    /// pending member id running out, a rebalance timing out, the initial delay ending. Times
    /// already past are left out: a delay that has ended while members are still rejoining
    /// has nothing more to wake for (the periodic tick goes on).
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let sessions = self
            .members
            .values()
            .filter(|m| m.join.is_none())
            .map(|m| m.last_seen + m.session_timeout);
        let rebalance = (self.state == GroupState::PreparingRebalance)
            .then(|| {
                self.rebalance_started
                    .map(|t| t + self.rebalance_timeout() + Duration::from_millis(1))
                    .into_iter()
                    .chain(self.not_before)
            })
            .into_iter()
            .flatten();
        sessions
            .chain(self.pending.values().copied())
            .chain(rebalance)
            .filter(|d| *d > now)
            .min()
    }

    /// Marks the group deleted.
    pub fn kill(&mut self) {
        self.state = GroupState::Dead;
    }
}
