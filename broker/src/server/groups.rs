//! The group APIs: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
//! DescribeGroups, ListGroups, DeleteGroups — thin mappings onto the coordinator.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::authorized::{Resource, authorized_operations};
use super::broker::{Broker, Ctx};
use crate::groups::offsets::Committed;
use crate::groups::state::{JoinRequest, Reply, code};
use crate::security::acl::{CLUSTER_NAME, op, resource};

const OFFSET_METADATA_TOO_LARGE: i16 = 12;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;
/// Kafka's `offset.metadata.max.bytes`.
const MAX_OFFSET_METADATA: usize = 4096;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn opt(v: &Option<StrBytes>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}

async fn settle<T: Default>(reply: Reply<T>, fallback: T) -> T {
    match reply {
        Reply::Now(t) => t,
        Reply::Later(rx) => rx.await.unwrap_or(fallback),
    }
}

/// The type Kafka 4 gives groups run by the JoinGroup/SyncGroup protocol (KIP-848 calls the
/// new protocol's groups `consumer`), the only kind this broker runs.
const CLASSIC_GROUP_TYPE: &str = "classic";

impl Broker {
    pub(super) async fn join_group(
        self: Arc<Self>,
        req: JoinGroupRequest,
        ctx: &Ctx,
    ) -> JoinGroupResponse {
        if !ctx.may(&self, op::READ, resource::GROUP, req.group_id.as_str()) {
            return JoinGroupResponse::default()
                .with_error_code(GROUP_AUTHORIZATION_FAILED)
                .with_generation_id(-1)
                .with_member_id(req.member_id.clone());
        }
        let ms = |v: i32| Duration::from_millis(u64::try_from(v).unwrap_or(0));
        let join = JoinRequest {
            member_id: req.member_id.to_string(),
            instance_id: opt(&req.group_instance_id),
            client_id: ctx.client_id.clone(),
            client_host: format!("/{}", ctx.peer.ip()),
            session_timeout: ms(req.session_timeout_ms),
            rebalance_timeout: if ctx.version >= 1 {
                ms(req.rebalance_timeout_ms)
            } else {
                ms(req.session_timeout_ms)
            },
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect(),
            require_known_member_id: ctx.version >= 4,
            supports_skip_assignment: ctx.version >= 9,
        };
        let reply = self.groups.join(req.group_id.as_str(), join);
        let fallback = crate::groups::state::JoinResult {
            error: code::REBALANCE_IN_PROGRESS,
            generation: -1,
            ..Default::default()
        };
        let r = settle(reply, fallback).await;
        let mut out = JoinGroupResponse::default()
            .with_error_code(r.error)
            .with_generation_id(r.generation)
            .with_protocol_name(Some(s(r.protocol.unwrap_or_default())))
            .with_leader(s(r.leader))
            .with_member_id(s(r.member_id))
            .with_members(
                r.members
                    .into_iter()
                    .map(|(id, instance, metadata)| {
                        JoinGroupResponseMember::default()
                            .with_member_id(s(id))
                            .with_group_instance_id(if ctx.version >= 5 {
                                instance.map(s)
                            } else {
                                None
                            })
                            .with_metadata(metadata)
                    })
                    .collect(),
            );
        if ctx.version >= 7 {
            out = out.with_protocol_type(r.protocol_type.map(s));
        }
        if ctx.version >= 9 {
            out = out.with_skip_assignment(r.skip_assignment);
        }
        out
    }

    pub(super) async fn sync_group(
        self: Arc<Self>,
        req: SyncGroupRequest,
        ctx: &Ctx,
    ) -> SyncGroupResponse {
        if !ctx.may(&self, op::READ, resource::GROUP, req.group_id.as_str()) {
            return SyncGroupResponse::default().with_error_code(GROUP_AUTHORIZATION_FAILED);
        }
        let assignments = req
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect();
        let reply = self.groups.sync(
            req.group_id.as_str(),
            req.member_id.as_str(),
            req.group_instance_id.as_ref().map(|i| i.as_str()),
            req.generation_id,
            assignments,
        );
        let fallback = crate::groups::state::SyncResult {
            error: code::REBALANCE_IN_PROGRESS,
            ..Default::default()
        };
        let mut r = settle(reply, fallback).await;
        if ctx.version >= 5 && r.error == code::NONE {
            let mismatch = |asked: &Option<StrBytes>, have: &Option<String>| {
                asked
                    .as_ref()
                    .is_some_and(|a| Some(a.as_str()) != have.as_deref())
            };
            if mismatch(&req.protocol_type, &r.protocol_type)
                || mismatch(&req.protocol_name, &r.protocol)
            {
                r.error = code::INCONSISTENT_GROUP_PROTOCOL;
            }
        }
        let mut out = SyncGroupResponse::default()
            .with_error_code(r.error)
            .with_assignment(r.assignment);
        if ctx.version >= 5 {
            out = out
                .with_protocol_type(r.protocol_type.map(s))
                .with_protocol_name(r.protocol.map(s));
        }
        out
    }

    pub(super) fn heartbeat(&self, req: HeartbeatRequest, ctx: &Ctx) -> HeartbeatResponse {
        if !ctx.may(self, op::READ, resource::GROUP, req.group_id.as_str()) {
            return HeartbeatResponse::default().with_error_code(GROUP_AUTHORIZATION_FAILED);
        }
        HeartbeatResponse::default().with_error_code(self.groups.heartbeat(
            req.group_id.as_str(),
            req.member_id.as_str(),
            req.group_instance_id.as_ref().map(|i| i.as_str()),
            req.generation_id,
        ))
    }

    pub(super) fn leave_group(&self, req: LeaveGroupRequest, ctx: &Ctx) -> LeaveGroupResponse {
        if !ctx.may(self, op::READ, resource::GROUP, req.group_id.as_str()) {
            return LeaveGroupResponse::default().with_error_code(GROUP_AUTHORIZATION_FAILED);
        }
        if ctx.version < 3 {
            let codes = self
                .groups
                .leave(req.group_id.as_str(), &[(req.member_id.to_string(), None)]);
            return LeaveGroupResponse::default().with_error_code(codes[0]);
        }
        let members: Vec<(String, Option<String>)> = req
            .members
            .iter()
            .map(|m| (m.member_id.to_string(), opt(&m.group_instance_id)))
            .collect();
        let codes = self.groups.leave(req.group_id.as_str(), &members);
        LeaveGroupResponse::default().with_members(
            req.members
                .iter()
                .zip(codes)
                .map(|(m, code)| {
                    MemberResponse::default()
                        .with_member_id(m.member_id.clone())
                        .with_group_instance_id(m.group_instance_id.clone())
                        .with_error_code(code)
                })
                .collect(),
        )
    }

    pub(super) async fn offset_commit(
        self: Arc<Self>,
        req: OffsetCommitRequest,
        ctx: &Ctx,
    ) -> OffsetCommitResponse {
        let group = req.group_id.to_string();
        let allowed = if ctx.may(&self, op::READ, resource::GROUP, &group) {
            self.groups.check_commit(
                &group,
                req.member_id.as_str(),
                req.group_instance_id.as_ref().map(|i| i.as_str()),
                req.generation_id_or_member_epoch,
            )
        } else {
            Err(GROUP_AUTHORIZATION_FAILED)
        };
        let mut to_store = Vec::new();
        let mut topics: Vec<OffsetCommitResponseTopic> = req
            .topics
            .iter()
            .map(|t| {
                let topic = self.topics.get(t.name.as_str());
                let readable = ctx.may(&self, op::READ, resource::TOPIC, t.name.as_str());
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let error = if let Err(e) = allowed {
                            e
                        } else if !readable {
                            TOPIC_AUTHORIZATION_FAILED
                        } else if topic
                            .as_ref()
                            .and_then(|t| t.partition(p.partition_index))
                            .is_none()
                        {
                            UNKNOWN_TOPIC_OR_PARTITION
                        } else if p
                            .committed_metadata
                            .as_ref()
                            .is_some_and(|m| m.len() > MAX_OFFSET_METADATA)
                        {
                            OFFSET_METADATA_TOO_LARGE
                        } else {
                            to_store.push((
                                t.name.to_string(),
                                p.partition_index,
                                Committed {
                                    offset: p.committed_offset,
                                    leader_epoch: p.committed_leader_epoch,
                                    metadata: opt(&p.committed_metadata),
                                },
                            ));
                            code::NONE
                        };
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(error)
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        if !to_store.is_empty() {
            let b = self.clone();
            let g = group.clone();
            let stored = tokio::task::spawn_blocking(move || b.groups.commit(&g, to_store)).await;
            if !matches!(stored, Ok(Ok(()))) {
                tracing::error!(group = %group, "storing committed offsets failed");
                for t in &mut topics {
                    for p in &mut t.partitions {
                        if p.error_code == code::NONE {
                            p.error_code = COORDINATOR_NOT_AVAILABLE;
                        }
                    }
                }
            }
        }
        OffsetCommitResponse::default().with_topics(topics)
    }

    pub(super) fn offset_fetch(&self, req: OffsetFetchRequest, ctx: &Ctx) -> OffsetFetchResponse {
        let group = req.group_id.as_str();
        let described = |topic: &str| ctx.may(self, op::DESCRIBE, resource::TOPIC, topic);
        // v2+ carries a refused group's error at the top; every version in each partition.
        let group_refused = !ctx.may(self, op::DESCRIBE, resource::GROUP, group);
        let entry = |p: i32, c: Option<Committed>| {
            let c = c.unwrap_or(Committed {
                offset: -1,
                leader_epoch: -1,
                metadata: Some(String::new()),
            });
            let mut out = OffsetFetchResponsePartition::default()
                .with_partition_index(p)
                .with_committed_offset(c.offset)
                .with_metadata(Some(s(c.metadata.unwrap_or_default())));
            if ctx.version >= 5 {
                out = out.with_committed_leader_epoch(c.leader_epoch);
            }
            out
        };
        let topics = match &req.topics {
            Some(topics) => topics
                .iter()
                .map(|t| {
                    OffsetFetchResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partition_indexes
                                .iter()
                                .map(|p| {
                                    if group_refused {
                                        return entry(*p, None)
                                            .with_error_code(GROUP_AUTHORIZATION_FAILED);
                                    }
                                    if !described(t.name.as_str()) {
                                        return entry(*p, None)
                                            .with_error_code(TOPIC_AUTHORIZATION_FAILED);
                                    }
                                    entry(*p, self.groups.committed(group, t.name.as_str(), *p))
                                })
                                .collect(),
                        )
                })
                .collect(),
            None => {
                let mut by_topic: std::collections::BTreeMap<
                    String,
                    Vec<OffsetFetchResponsePartition>,
                > = std::collections::BTreeMap::new();
                for (t, p, c) in self.groups.committed_all(group) {
                    if !group_refused && described(&t) {
                        by_topic.entry(t).or_default().push(entry(p, Some(c)));
                    }
                }
                by_topic
                    .into_iter()
                    .map(|(t, parts)| {
                        OffsetFetchResponseTopic::default()
                            .with_name(TopicName(s(t)))
                            .with_partitions(parts)
                    })
                    .collect()
            }
        };
        let out = OffsetFetchResponse::default().with_topics(topics);
        if group_refused {
            out.with_error_code(GROUP_AUTHORIZATION_FAILED)
        } else {
            out
        }
    }

    pub(super) fn describe_groups(
        &self,
        req: DescribeGroupsRequest,
        ctx: &Ctx,
    ) -> DescribeGroupsResponse {
        // KIP-430, v3+.
        let operations = |id: &str| {
            authorized_operations(
                self,
                ctx,
                Resource::Group,
                id,
                ctx.version >= 3 && req.include_authorized_operations,
            )
        };
        let groups = req
            .groups
            .iter()
            .map(|id| {
                if !ctx.may(self, op::DESCRIBE, resource::GROUP, id.as_str()) {
                    return DescribedGroup::default()
                        .with_group_id(id.clone())
                        .with_error_code(GROUP_AUTHORIZATION_FAILED)
                        .with_authorized_operations(operations(id.as_str()));
                }
                let d = self.groups.describe(id.as_str());
                DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_group_state(s(d.state.name()))
                    .with_protocol_type(s(d.protocol_type))
                    .with_protocol_data(s(d.protocol))
                    .with_authorized_operations(operations(id.as_str()))
                    .with_members(
                        d.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(s(m.member_id))
                                    .with_group_instance_id(m.instance_id.map(s))
                                    .with_client_id(s(m.client_id))
                                    .with_client_host(s(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    )
            })
            .collect();
        DescribeGroupsResponse::default().with_groups(groups)
    }

    /// ListGroups up to v5: the state and (v5) type filters; each group's type is `classic`.
    pub(super) fn list_groups(&self, req: ListGroupsRequest, ctx: &Ctx) -> ListGroupsResponse {
        // DESCRIBE on the cluster lists every group; otherwise those the caller may describe.
        let all = ctx.may(self, op::DESCRIBE, resource::CLUSTER, CLUSTER_NAME);
        let groups = self
            .groups
            .list()
            .into_iter()
            .filter(|g| all || ctx.may(self, op::DESCRIBE, resource::GROUP, &g.group_id))
            .filter(|g| {
                req.states_filter.is_empty()
                    || req
                        .states_filter
                        .iter()
                        .any(|f| f.as_str().eq_ignore_ascii_case(g.state))
            })
            // ListGroups v5 (KIP-848): every group here is a classic one (JoinGroup/SyncGroup).
            .filter(|_| {
                req.types_filter.is_empty()
                    || req
                        .types_filter
                        .iter()
                        .any(|f| f.as_str().eq_ignore_ascii_case(CLASSIC_GROUP_TYPE))
            })
            .map(|g| {
                ListedGroup::default()
                    .with_group_id(GroupId(s(g.group_id)))
                    .with_protocol_type(s(g.protocol_type))
                    .with_group_state(s(g.state))
                    .with_group_type(s(CLASSIC_GROUP_TYPE))
            })
            .collect();
        ListGroupsResponse::default().with_groups(groups)
    }

    pub(super) fn delete_groups(
        &self,
        req: DeleteGroupsRequest,
        ctx: &Ctx,
    ) -> DeleteGroupsResponse {
        DeleteGroupsResponse::default().with_results(
            req.groups_names
                .iter()
                .map(|g| {
                    let error = if ctx.may(self, op::DELETE, resource::GROUP, g.as_str()) {
                        self.groups.delete(g.as_str())
                    } else {
                        GROUP_AUTHORIZATION_FAILED
                    };
                    DeletableGroupResult::default()
                        .with_group_id(g.clone())
                        .with_error_code(error)
                })
                .collect(),
        )
    }
}
