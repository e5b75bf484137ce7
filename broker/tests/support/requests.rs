//! Valid requests of several APIs against topic `fuzz`: the seeds that the request fuzz tests
//! (the property test and the cargo-fuzz corpus) mutate.

#![allow(dead_code)]

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiVersionsRequest, CreateTopicsRequest, DeleteRecordsRequest, DescribeClusterRequest,
    DescribeGroupsRequest, FetchRequest, GroupId, JoinGroupRequest, MetadataRequest,
    OffsetCommitRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::wire::{batch, frame};

pub fn name(s: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(s))
}

pub fn produce(records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name("fuzz"))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ])
}

pub fn fetch(offset: i64) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(name("fuzz"))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ])
}

/// Valid request frames of several APIs, the seeds for mutation.
pub fn seeds() -> Vec<Vec<u8>> {
    vec![
        frame(&ApiVersionsRequest::default(), 3, 1).to_vec(),
        frame(&MetadataRequest::default().with_topics(None), 12, 2).to_vec(),
        frame(&produce(batch(&["x", "y"])), 9, 3).to_vec(),
        frame(&fetch(0), 12, 4).to_vec(),
        frame(
            &JoinGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![
                    JoinGroupRequestProtocol::default()
                        .with_name(StrBytes::from_static_str("range")),
                ]),
            5,
            5,
        )
        .to_vec(),
        frame(
            &OffsetCommitRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![
                    OffsetCommitRequestTopic::default()
                        .with_name(name("fuzz"))
                        .with_partitions(vec![
                            OffsetCommitRequestPartition::default().with_committed_offset(1),
                        ]),
                ]),
            8,
            6,
        )
        .to_vec(),
        frame(
            &CreateTopicsRequest::default().with_topics(vec![
                CreatableTopic::default()
                    .with_name(name("made"))
                    .with_num_partitions(1)
                    .with_replication_factor(1),
            ]),
            5,
            7,
        )
        .to_vec(),
        frame(
            &DeleteRecordsRequest::default()
                .with_timeout_ms(1000)
                .with_topics(vec![
                    DeleteRecordsTopic::default()
                        .with_name(name("fuzz"))
                        .with_partitions(vec![DeleteRecordsPartition::default().with_offset(1)]),
                ]),
            2,
            8,
        )
        .to_vec(),
        frame(
            &DescribeClusterRequest::default()
                .with_include_cluster_authorized_operations(true)
                .with_endpoint_type(1),
            1,
            9,
        )
        .to_vec(),
        frame(
            &DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(StrBytes::from_static_str("g"))])
                .with_include_authorized_operations(true),
            5,
            10,
        )
        .to_vec(),
    ]
}
