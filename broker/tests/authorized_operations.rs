//! Authorized operations in Describe responses (KIP-430) on the wire: with no ACLs the
//! broker answers, when asked, every operation that applies to the resource type — the bit
//! sets a Kafka broker without an authorizer answers — and Kafka's "not requested" sentinel
//! otherwise. Also DescribeCluster and the new APIs' ApiVersions entries.

mod support;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, DescribeClusterRequest, DescribeGroupsRequest, GroupId,
    MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use support::BrokerProcess;
use support::clients::create_topic;
use support::wire::Wire;

const NOT_REQUESTED: i32 = i32::MIN;
/// READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
const TOPIC_OPERATIONS: i32 =
    1 << 3 | 1 << 4 | 1 << 5 | 1 << 6 | 1 << 7 | 1 << 8 | 1 << 10 | 1 << 11;
/// READ, DELETE, DESCRIBE.
const GROUP_OPERATIONS: i32 = 1 << 3 | 1 << 6 | 1 << 8;
/// CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
const CLUSTER_OPERATIONS: i32 = 1 << 5 | 1 << 7 | 1 << 8 | 1 << 9 | 1 << 10 | 1 << 11 | 1 << 12;
const UNSUPPORTED_ENDPOINT_TYPE: i16 = 115;

/// Metadata for `seen` and a missing topic: `(cluster operations, [topic operations])`.
fn metadata(w: &mut Wire, version: i16, cluster: bool, topics: bool) -> (i32, Vec<i32>) {
    let wanted = ["seen", "missing"].map(|t| {
        MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_static_str(t))))
    });
    let resp = w.call(
        &MetadataRequest::default()
            .with_topics(Some(wanted.to_vec()))
            .with_allow_auto_topic_creation(false)
            .with_include_cluster_authorized_operations(cluster)
            .with_include_topic_authorized_operations(topics),
        version,
    );
    let ops = resp
        .topics
        .iter()
        .map(|t| t.topic_authorized_operations)
        .collect();
    (resp.cluster_authorized_operations, ops)
}

#[test]
fn describe_responses_answer_every_applicable_operation_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &[]);
    create_topic(&broker.bootstrap(), "seen", 1);
    let mut w = Wire::connect(broker.kafka);

    let all_topics = vec![TOPIC_OPERATIONS; 2];
    let none = vec![NOT_REQUESTED; 2];
    let cases = [
        (
            "v8, both asked",
            8,
            true,
            true,
            (CLUSTER_OPERATIONS, all_topics.clone()),
        ),
        (
            "v10, cluster only",
            10,
            true,
            false,
            (CLUSTER_OPERATIONS, none.clone()),
        ),
        (
            "v9, none asked",
            9,
            false,
            false,
            (NOT_REQUESTED, none.clone()),
        ),
        // v11 moved the cluster's operations to DescribeCluster.
        (
            "v12, topics asked",
            12,
            false,
            true,
            (NOT_REQUESTED, all_topics),
        ),
        ("v12, none asked", 12, false, false, (NOT_REQUESTED, none)),
    ];
    for (name, version, cluster, topics, expected) in cases {
        assert_eq!(
            metadata(&mut w, version, cluster, topics),
            expected,
            "{name}"
        );
    }

    for (version, asked, expected) in [
        (5, true, GROUP_OPERATIONS),
        (5, false, NOT_REQUESTED),
        (3, true, GROUP_OPERATIONS),
    ] {
        let resp = w.call(
            &DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(StrBytes::from_static_str("nobody"))])
                .with_include_authorized_operations(asked),
            version,
        );
        assert_eq!(
            resp.groups[0].authorized_operations, expected,
            "DescribeGroups v{version}, asked: {asked}"
        );
    }
    broker.stop();
}

#[test]
fn describe_cluster_names_the_broker_and_its_operations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut w = Wire::connect(broker.kafka);
    let cluster_id = w
        .call(
            &MetadataRequest::default().with_topics(Some(Vec::new())),
            12,
        )
        .cluster_id
        .expect("cluster id");

    for (version, asked, expected) in [(0, true, CLUSTER_OPERATIONS), (2, false, NOT_REQUESTED)] {
        let resp = w.call(
            &DescribeClusterRequest::default()
                .with_include_cluster_authorized_operations(asked)
                .with_endpoint_type(1),
            version,
        );
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.cluster_id, cluster_id);
        assert_eq!(resp.brokers.len(), 1);
        assert_eq!(
            (resp.brokers[0].broker_id.0, resp.brokers[0].port),
            (0, i32::from(broker.kafka.port()))
        );
        assert_eq!(resp.cluster_authorized_operations, expected, "v{version}");
    }
    let controllers = w.call(&DescribeClusterRequest::default().with_endpoint_type(2), 1);
    assert_eq!(controllers.error_code, UNSUPPORTED_ENDPOINT_TYPE);
    assert!(controllers.brokers.is_empty());

    let versions = w.call(&ApiVersionsRequest::default(), 3);
    for (api, max) in [(ApiKey::DeleteRecords, 2), (ApiKey::DescribeCluster, 2)] {
        let entry = versions
            .api_keys
            .iter()
            .find(|k| k.api_key == api as i16)
            .unwrap_or_else(|| panic!("{api:?} advertised"));
        assert_eq!((entry.min_version, entry.max_version), (0, max), "{api:?}");
    }
    broker.stop();
}
