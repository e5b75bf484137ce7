//! OffsetCommit while a group rebalances, on the wire, as Kafka's classic group coordinator
//! answers it: a member of the current generation may commit while the group is
//! PreparingRebalance (it commits what it processed before rejoining); once the join phase
//! ends, the old generation is fenced (ILLEGAL_GENERATION) and the new one waits for
//! SyncGroup (REBALANCE_IN_PROGRESS).

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, OffsetCommitRequest, OffsetFetchRequest,
    SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use support::BrokerProcess;
use support::clients::create_topic;
use support::wire::{Wire, frame, response};

const GROUP: &str = "rebalancing";
const REBALANCE_IN_PROGRESS: i16 = 27;
const ILLEGAL_GENERATION: i16 = 22;
const MEMBER_ID_REQUIRED: i16 = 79;

fn group() -> GroupId {
    GroupId(StrBytes::from_static_str(GROUP))
}

fn join_request(member: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(group())
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(30_000)
        .with_member_id(StrBytes::from_string(member.to_owned()))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(Bytes::from_static(b"subscription")),
        ])
}

/// The member id the broker hands out (KIP-394's first JoinGroup).
fn member_id(w: &mut Wire) -> String {
    let first = w.call(&join_request(""), 5);
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    first.member_id.to_string()
}

fn commit(w: &mut Wire, member: &str, generation: i32, offset: i64) -> i16 {
    let resp = w.call(
        &OffsetCommitRequest::default()
            .with_group_id(group())
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(StrBytes::from_string(member.to_owned()))
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("events")))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(offset),
                    ]),
            ]),
        7,
    );
    resp.topics[0].partitions[0].error_code
}

fn committed(w: &mut Wire) -> i64 {
    let resp = w.call(
        &OffsetFetchRequest::default()
            .with_group_id(group())
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("events")))
                    .with_partition_indexes(vec![0]),
            ])),
        5,
    );
    resp.topics[0].partitions[0].committed_offset
}

fn sync(w: &mut Wire, member: &str, generation: i32, plan: &[&str]) -> i16 {
    let resp = w.call(
        &SyncGroupRequest::default()
            .with_group_id(group())
            .with_generation_id(generation)
            .with_member_id(StrBytes::from_string(member.to_owned()))
            .with_assignments(
                plan.iter()
                    .map(|m| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(StrBytes::from_string((*m).to_owned()))
                            .with_assignment(Bytes::from_static(b"assignment"))
                    })
                    .collect(),
            ),
        3,
    );
    resp.error_code
}

fn heartbeat(w: &mut Wire, member: &str, generation: i32) -> i16 {
    w.call(
        &HeartbeatRequest::default()
            .with_group_id(group())
            .with_generation_id(generation)
            .with_member_id(StrBytes::from_string(member.to_owned())),
        3,
    )
    .error_code
}

#[test]
fn commits_follow_kafka_during_a_rebalance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &[]);
    create_topic(&broker.bootstrap(), "events", 1);

    // A alone: generation 1, Stable.
    let mut a = Wire::connect(broker.kafka);
    let id_a = member_id(&mut a);
    let joined = a.call(&join_request(&id_a), 5);
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    assert_eq!(sync(&mut a, &id_a, 1, &[&id_a]), 0);
    assert_eq!(commit(&mut a, &id_a, 1, 10), 0, "stable");

    // B joins; its JoinGroup waits for A to rejoin: PreparingRebalance.
    let mut b = Wire::connect(broker.kafka);
    let id_b = member_id(&mut b);
    b.send_frame(&frame(&join_request(&id_b), 5, 99));
    let deadline = Instant::now() + Duration::from_secs(10);
    while heartbeat(&mut a, &id_a, 1) != REBALANCE_IN_PROGRESS {
        assert!(
            Instant::now() < deadline,
            "the group never started rebalancing"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        commit(&mut a, &id_a, 1, 20),
        0,
        "PreparingRebalance: the current generation may commit"
    );
    assert_eq!(committed(&mut a), 20);
    assert_eq!(commit(&mut a, &id_a, 0, 21), ILLEGAL_GENERATION);

    // A rejoins: generation 2, CompletingRebalance until the leader syncs.
    let rejoined = a.call(&join_request(&id_a), 5);
    assert_eq!((rejoined.error_code, rejoined.generation_id), (0, 2));
    let (_, b_joined) = response::<JoinGroupRequest>(b.read_frame().expect("B's join"), 5);
    assert_eq!(b_joined.generation_id, 2);
    assert_eq!(
        commit(&mut a, &id_a, 2, 30),
        REBALANCE_IN_PROGRESS,
        "CompletingRebalance: wait for SyncGroup"
    );
    assert_eq!(
        commit(&mut a, &id_a, 1, 30),
        ILLEGAL_GENERATION,
        "the old generation is fenced"
    );
    assert_eq!(committed(&mut a), 20, "refused commits store nothing");

    let leader = rejoined.leader.to_string();
    let (mut lw, mut fw, follower) = if leader == id_a {
        (a, b, id_b.clone())
    } else {
        (b, a, id_a.clone())
    };
    assert_eq!(sync(&mut lw, &leader, 2, &[&id_a, &id_b]), 0);
    assert_eq!(sync(&mut fw, &follower, 2, &[]), 0);
    assert_eq!(commit(&mut fw, &follower, 2, 40), 0, "stable again");
    assert_eq!(committed(&mut lw), 40);
    broker.stop();
}
