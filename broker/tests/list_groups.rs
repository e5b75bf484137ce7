//! ListGroups on the wire, up to v5 (KIP-848): the state filter, the type filter, and every
//! group's type (`classic`: the broker runs the JoinGroup/SyncGroup protocol).

mod support;

use std::time::Duration;

use kafka_protocol::messages::{ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use support::BrokerProcess;
use support::clients::{consumer, create_topic};
use support::wire::Wire;

fn list(w: &mut Wire, version: i16, states: &[&str], types: &[&str]) -> ListGroupsResponse {
    let strs = |v: &[&str]| {
        v.iter()
            .map(|s| StrBytes::from_string((*s).to_owned()))
            .collect()
    };
    w.call(
        &ListGroupsRequest::default()
            .with_states_filter(if version >= 4 {
                strs(states)
            } else {
                Vec::new()
            })
            .with_types_filter(if version >= 5 {
                strs(types)
            } else {
                Vec::new()
            }),
        version,
    )
}

fn names(resp: &ListGroupsResponse) -> Vec<(String, String)> {
    resp.groups
        .iter()
        .map(|g| (g.group_id.to_string(), g.group_type.to_string()))
        .collect()
}

#[test]
fn list_groups_filters_by_state_and_type_and_names_the_classic_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "orders", 1);
    // A group with committed offsets and no members: Empty.
    let c = consumer(&bootstrap, "billing", &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("orders", 0, Offset::Offset(0))
        .expect("partition");
    c.commit(&tpl, CommitMode::Sync).expect("commit");
    drop(c);
    std::thread::sleep(Duration::from_millis(100));

    let mut w = Wire::connect(broker.kafka);
    let all = list(&mut w, 5, &[], &[]);
    assert_eq!(all.error_code, 0);
    assert_eq!(names(&all), [("billing".to_owned(), "classic".to_owned())]);
    assert_eq!(
        names(&list(&mut w, 5, &[], &["Classic"])),
        [("billing".to_owned(), "classic".to_owned())],
        "type filters match case-insensitively, as Kafka's"
    );
    assert!(names(&list(&mut w, 5, &[], &["consumer"])).is_empty());
    assert_eq!(names(&list(&mut w, 5, &["Empty"], &["classic"])).len(), 1);
    assert!(names(&list(&mut w, 5, &["Stable"], &[])).is_empty());
    // Older versions carry no type.
    let v4 = list(&mut w, 4, &["Empty"], &[]);
    assert_eq!(v4.groups.len(), 1);
    assert_eq!(v4.groups[0].group_id.to_string(), "billing");
}
