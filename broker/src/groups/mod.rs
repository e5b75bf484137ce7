//! Consumer groups: the [`ConsumerGroupCoordinator`] over every group's state machine
//! ([`state::Group`]) and the durable [`offsets::OffsetStore`].

pub mod offsets;
pub mod state;
mod subscription;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::Result;
use crate::metrics::Metrics;
use offsets::{Committed, OffsetStore};
use state::{
    Group, GroupState, JoinRequest, JoinResult, MemberDescription, Reply, SyncResult, code,
};

/// Session-timeout bounds and the initial rebalance delay (Kafka's broker settings).
#[derive(Clone, Copy, Debug)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout: Duration,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout: Duration,
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay: Duration,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout: Duration::from_secs(6),
            max_session_timeout: Duration::from_secs(1800),
            initial_rebalance_delay: Duration::from_secs(3),
        }
    }
}

/// A group as ListGroups shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedGroup {
    /// Group id.
    pub group_id: String,
    /// Protocol type ("" when only committed offsets are known).
    pub protocol_type: String,
    /// State name.
    pub state: &'static str,
}

/// A group as DescribeGroups shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct DescribedGroup {
    /// State.
    pub state: GroupState,
    /// Protocol type.
    pub protocol_type: String,
    /// Chosen protocol.
    pub protocol: String,
    /// Members.
    pub members: Vec<MemberDescription>,
}

/// Every consumer group of the broker.
#[derive(Debug)]
pub struct ConsumerGroupCoordinator {
    config: GroupConfig,
    groups: Mutex<HashMap<String, Group>>,
    offsets: OffsetStore,
    metrics: Arc<Metrics>,
}

impl ConsumerGroupCoordinator {
    /// A coordinator storing offsets in `offsets`.
    pub fn new(config: GroupConfig, offsets: OffsetStore, metrics: Arc<Metrics>) -> Self {
        ConsumerGroupCoordinator {
            config,
            groups: Mutex::new(HashMap::new()),
            offsets,
            metrics,
        }
    }

    fn groups(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn counted<T>(&self, group: &Group, before: u64, out: T) -> T {
        for _ in before..group.rebalances() {
            self.metrics.rebalanced();
        }
        out
    }

    /// Handles a JoinGroup for `group_id`.
    pub fn join(&self, group_id: &str, req: JoinRequest) -> Reply<JoinResult> {
        let member_id = req.member_id.clone();
        let fail = |code| {
            Reply::Now(JoinResult {
                error: code,
                generation: -1,
                member_id: member_id.clone(),
                ..JoinResult::default()
            })
        };
        if group_id.is_empty() {
            return fail(code::INVALID_GROUP_ID);
        }
        if req.session_timeout < self.config.min_session_timeout
            || req.session_timeout > self.config.max_session_timeout
        {
            return fail(code::INVALID_SESSION_TIMEOUT);
        }
        let mut groups = self.groups();
        if !groups.contains_key(group_id) {
            if !req.member_id.is_empty() {
                return fail(code::UNKNOWN_MEMBER_ID);
            }
            groups.insert(
                group_id.to_owned(),
                Group::new(self.config.initial_rebalance_delay),
            );
        }
        let Some(group) = groups.get_mut(group_id) else {
            return fail(code::UNKNOWN_MEMBER_ID);
        };
        let before = group.rebalances();
        let client = if req.client_id.is_empty() {
            "member".to_owned()
        } else {
            req.client_id.clone()
        };
        let reply = group.join(req, Instant::now(), || {
            format!("{client}-{}", uuid::Uuid::new_v4())
        });
        self.counted(group, before, reply)
    }

    /// Handles a SyncGroup.
    pub fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> Reply<SyncResult> {
        let mut groups = self.groups();
        match groups.get_mut(group_id) {
            Some(g) => g.sync(
                member_id,
                instance_id,
                generation,
                assignments,
                Instant::now(),
            ),
            None => Reply::Now(SyncResult {
                error: code::UNKNOWN_MEMBER_ID,
                ..SyncResult::default()
            }),
        }
    }

    /// Handles a Heartbeat; returns the error code.
    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        let mut groups = self.groups();
        match groups.get_mut(group_id) {
            Some(g) => g.heartbeat(member_id, instance_id, generation, Instant::now()),
            None => code::UNKNOWN_MEMBER_ID,
        }
    }

    /// Handles a LeaveGroup; one error code per leaving member.
    pub fn leave(&self, group_id: &str, members: &[(String, Option<String>)]) -> Vec<i16> {
        let mut groups = self.groups();
        let Some(g) = groups.get_mut(group_id) else {
            return vec![code::UNKNOWN_MEMBER_ID; members.len()];
        };
        let before = g.rebalances();
        let now = Instant::now();
        let codes = members
            .iter()
            .map(|(m, i)| g.leave(m, i.as_deref(), now))
            .collect();
        self.counted(g, before, codes)
    }

    /// Advances every group's timers (session expiry, rebalance timeouts, initial delay).
    pub fn tick(&self) {
        let now = Instant::now();
        let mut groups = self.groups();
        for g in groups.values_mut() {
            self.run_timers(g, now);
        }
    }

    /// Runs `g`'s timers that are due at `now` (sessions, pending members, rebalances).
    fn run_timers(&self, g: &mut Group, now: Instant) {
        let before = g.rebalances();
        g.tick(now);
        self.counted(g, before, ());
    }

    /// The earliest time after now that [`ConsumerGroupCoordinator::tick`] has something to
    /// do, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        let now = Instant::now();
        self.groups()
            .values()
            .filter_map(|g| g.next_deadline(now))
            .min()
    }

    /// Checks an OffsetCommit against the group's membership and generation.
    ///
    /// # Errors
    /// The Kafka error code to answer with.
    pub fn check_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), i16> {
        if group_id.is_empty() {
            return Err(code::INVALID_GROUP_ID);
        }
        let mut groups = self.groups();
        match groups.get_mut(group_id) {
            Some(g) => g.check_commit(member_id, instance_id, generation, Instant::now()),
            None if generation < 0 => Ok(()),
            None => Err(code::ILLEGAL_GENERATION),
        }
    }

    /// Stores committed offsets (after [`Self::check_commit`]).
    ///
    /// # Errors
    /// I/O errors.
    pub fn commit(&self, group_id: &str, offsets: Vec<(String, i32, Committed)>) -> Result<()> {
        self.offsets.commit(group_id, offsets)
    }

    /// The committed offset for a partition.
    pub fn committed(&self, group_id: &str, topic: &str, partition: i32) -> Option<Committed> {
        self.offsets.fetch(group_id, topic, partition)
    }

    /// Every committed offset of a group.
    pub fn committed_all(&self, group_id: &str) -> Vec<(String, i32, Committed)> {
        self.offsets.group(group_id)
    }

    /// OffsetDelete: forgets `group_id`'s committed offsets for `partitions`, as Kafka's
    /// coordinator does — any offsets of an empty group; for a live consumer group only those
    /// of topics no member subscribes to. Returns one error code per partition.
    ///
    /// # Errors
    /// The group-level error code: `GROUP_ID_NOT_FOUND`, `NON_EMPTY_GROUP` (a live group not
    /// using the consumer protocol), or `KAFKA_STORAGE_ERROR`.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<i16>, i16> {
        let groups = self.groups();
        let live = groups.get(group_id);
        let known = live.is_some() || !self.offsets.group(group_id).is_empty();
        if !known || live.is_some_and(|g| g.state() == GroupState::Dead) {
            return Err(code::GROUP_ID_NOT_FOUND);
        }
        let codes = match live.filter(|g| g.size() > 0) {
            None => vec![code::NONE; partitions.len()],
            Some(g) if g.protocol_type() != Some("consumer") => {
                return Err(code::NON_EMPTY_GROUP);
            }
            Some(g) => {
                // Unknown subscriptions count as subscribed to everything.
                let subscribed = g.subscribed_topics();
                partitions
                    .iter()
                    .map(|(topic, _)| {
                        if subscribed.as_ref().is_none_or(|s| s.contains(topic)) {
                            code::GROUP_SUBSCRIBED_TO_TOPIC
                        } else {
                            code::NONE
                        }
                    })
                    .collect()
            }
        };
        let deletable: Vec<(String, i32)> = partitions
            .iter()
            .zip(&codes)
            .filter(|(_, c)| **c == code::NONE)
            .map(|(p, _)| p.clone())
            .collect();
        if let Err(e) = self.offsets.delete_offsets(group_id, &deletable) {
            tracing::error!(group = group_id, error = %e, "deleting committed offsets failed");
            return Err(code::KAFKA_STORAGE_ERROR);
        }
        Ok(codes)
    }

    /// Forgets committed offsets of a deleted topic.
    ///
    /// # Errors
    /// I/O errors.
    pub fn topic_deleted(&self, topic: &str) -> Result<()> {
        self.offsets.delete_topic(topic)
    }

    /// Describes a group (Dead when unknown, as Kafka answers).
    pub fn describe(&self, group_id: &str) -> DescribedGroup {
        let mut groups = self.groups();
        if let Some(g) = groups.get_mut(group_id) {
            self.run_timers(g, Instant::now());
        }
        match groups.get(group_id) {
            Some(g) => DescribedGroup {
                state: g.state(),
                protocol_type: g.protocol_type().unwrap_or_default().to_owned(),
                protocol: g.protocol().unwrap_or_default().to_owned(),
                members: g.describe(),
            },
            None if !self.offsets.group(group_id).is_empty() => DescribedGroup {
                state: GroupState::Empty,
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            },
            None => DescribedGroup {
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            },
        }
    }

    /// Every known group: live ones and those that only have committed offsets.
    pub fn list(&self) -> Vec<ListedGroup> {
        let groups = self.groups();
        let mut out: Vec<ListedGroup> = groups
            .iter()
            .map(|(id, g)| ListedGroup {
                group_id: id.clone(),
                protocol_type: g.protocol_type().unwrap_or_default().to_owned(),
                state: g.state().name(),
            })
            .collect();
        for id in self.offsets.groups() {
            if !groups.contains_key(&id) {
                out.push(ListedGroup {
                    group_id: id,
                    protocol_type: "consumer".to_owned(),
                    state: GroupState::Empty.name(),
                });
            }
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// Deletes an empty group and its offsets; returns the error code.
    pub fn delete(&self, group_id: &str) -> i16 {
        let mut groups = self.groups();
        // Timers due now count before the group is judged: a member whose session ran out
        // a moment ago is gone even if the timer task has not run yet (a loaded machine
        // wakes it late).
        if let Some(g) = groups.get_mut(group_id) {
            self.run_timers(g, Instant::now());
        }
        let known = groups.contains_key(group_id) || !self.offsets.group(group_id).is_empty();
        if !known {
            return code::GROUP_ID_NOT_FOUND;
        }
        if groups.get(group_id).is_some_and(|g| g.size() > 0) {
            return code::NON_EMPTY_GROUP;
        }
        if let Some(mut g) = groups.remove(group_id) {
            g.kill();
        }
        match self.offsets.delete_group(group_id) {
            Ok(()) => code::NONE,
            Err(e) => {
                tracing::error!(group = group_id, error = %e, "deleting group offsets failed");
                56
            }
        }
    }

    /// Whether the offset store stopped taking writes after a failed write or fsync.
    pub fn offsets_fenced(&self) -> bool {
        self.offsets.fenced()
    }

    /// Forces committed offsets to disk.
    ///
    /// # Errors
    /// I/O errors.
    pub fn flush_offsets(&self) -> Result<()> {
        self.offsets.sync()
    }
}
