//! The authorizer on the wire: without `--authorizer` the ACL APIs answer
//! `SECURITY_DISABLED` and nothing is checked; with it, a client's principal
//! (`User:ANONYMOUS` here, no SASL) is refused what a `DENY` binding names — Produce with
//! `TOPIC_AUTHORIZATION_FAILED`, the topic hidden from Metadata once `DESCRIBE` is denied —
//! and Describe responses' authorized operations follow the ACLs. (SASL users, ALLOW
//! bindings, super users and persistence: `tests/python/acls.py`.)

mod support;

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    CreateAclsRequest, DescribeAclsRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use support::BrokerProcess;
use support::clients::create_topic;
use support::wire::{Wire, batch, produce};

const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const INVALID_REQUEST: i16 = 42;
const SECURITY_DISABLED: i16 = 54;
const TOPIC: i8 = 2;
const LITERAL: i8 = 3;
const WRITE: i8 = 4;
const DESCRIBE: i8 = 8;
const ALL: i8 = 2;
const DENY: i8 = 2;
const ALLOW: i8 = 3;

fn deny(operation: i8, host: &str) -> AclCreation {
    binding(operation, DENY, host)
}

fn binding(operation: i8, permission: i8, host: &str) -> AclCreation {
    AclCreation::default()
        .with_resource_type(TOPIC)
        .with_resource_name(StrBytes::from_static_str("locked"))
        .with_resource_pattern_type(LITERAL)
        .with_principal(StrBytes::from_static_str("User:ANONYMOUS"))
        .with_host(StrBytes::from_string(host.to_owned()))
        .with_operation(operation)
        .with_permission_type(permission)
}

fn create(w: &mut Wire, creations: Vec<AclCreation>) -> Vec<(i16, Option<String>)> {
    w.call(&CreateAclsRequest::default().with_creations(creations), 3)
        .results
        .into_iter()
        .map(|r| (r.error_code, r.error_message.map(|m| m.to_string())))
        .collect()
}

/// Metadata (v10) of `locked` by name, and whether an all-topics request lists it:
/// `(error code, authorized operations, listed)`.
fn metadata(w: &mut Wire) -> (i16, i32, bool) {
    let named = w.call(
        &MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("locked")))),
            ]))
            .with_include_topic_authorized_operations(true),
        10,
    );
    let all = w.call(&MetadataRequest::default().with_topics(None), 10);
    let listed = all
        .topics
        .iter()
        .any(|t| t.name.as_ref().is_some_and(|n| n.as_str() == "locked"));
    let t = &named.topics[0];
    (t.error_code, t.topic_authorized_operations, listed)
}

#[test]
fn without_an_authorizer_the_acl_apis_say_so_and_nothing_is_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &[]);
    create_topic(&broker.bootstrap(), "locked", 1);
    let mut w = Wire::connect(broker.kafka);
    let results = create(&mut w, vec![deny(WRITE, "*")]);
    assert_eq!(results[0].0, SECURITY_DISABLED);
    assert!(
        results[0]
            .1
            .as_deref()
            .is_some_and(|m| m.contains("--authorizer"))
    );
    let described = w.call(&DescribeAclsRequest::default(), 3);
    assert_eq!(described.error_code, SECURITY_DISABLED);
    assert_eq!(produce(&mut w, "locked", 0, batch(&["free"])).0, 0);
}

#[test]
fn deny_bindings_refuse_produce_and_hide_the_topic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flags = ["--authorizer", "--allow-everyone-if-no-acl-found"];
    let broker = BrokerProcess::start(dir.path(), &flags);
    create_topic(&broker.bootstrap(), "locked", 1);
    let mut w = Wire::connect(broker.kafka);
    assert_eq!(
        produce(&mut w, "locked", 0, batch(&["before"])).0,
        0,
        "no ACL: allowed"
    );
    let (_, all_ops, _) = metadata(&mut w);

    // A bad binding is refused alone; the good ones are stored. Once a binding names the
    // topic, what none allows is denied (allow-everyone applies to unnamed resources only).
    let results = create(
        &mut w,
        vec![
            deny(WRITE, "localhost"),
            deny(WRITE, "*"),
            binding(ALL, ALLOW, "*"),
        ],
    );
    assert_eq!(results[0].0, INVALID_REQUEST);
    assert!(
        results[0]
            .1
            .as_deref()
            .is_some_and(|m| m.contains("localhost"))
    );
    assert_eq!((results[1].0, results[2].0), (0, 0));
    assert_eq!(
        produce(&mut w, "locked", 0, batch(&["after"])).0,
        TOPIC_AUTHORIZATION_FAILED
    );
    let (error, ops, listed) = metadata(&mut w);
    assert_eq!((error, listed), (0, true), "still described");
    assert_eq!(
        ops,
        all_ops & !(1 << WRITE),
        "WRITE is no longer authorized"
    );

    create(&mut w, vec![deny(DESCRIBE, "127.0.0.1")]);
    let (error, _, listed) = metadata(&mut w);
    assert_eq!(
        (error, listed),
        (TOPIC_AUTHORIZATION_FAILED, false),
        "hidden"
    );
}
