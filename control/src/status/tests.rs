//! Table-driven: each row is a name, the object (as Knative JSON), what was observed, and
//! the expected `Ready` plus every other condition as `Type=Status[:Reason]`.

use super::*;
use ConditionStatus::{False as F, True as T, Unknown as U};
use ferry_api::contract::{DeliveryPolicy, ObjectRef, RevisionTarget};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const NOW: i64 = 1_700_000_000;
const INGRESS: &str = "http://ingress.ferry.svc/";

fn at(secs: i64) -> Time {
    Time(Timestamp::from_second(secs).expect("valid timestamp"))
}

fn failed(reason: &'static str, message: &str) -> DataPlane {
    DataPlane::Failed(CompileError {
        object: ObjectRef::default(),
        reason,
        message: message.to_owned(),
    })
}

const APPLIED: DataPlane = DataPlane::Compiled { applied: true };
const WRITTEN: DataPlane = DataPlane::Compiled { applied: false };

fn obs(data_plane: DataPlane, topic: Topic) -> Observed {
    Observed {
        data_plane,
        topic,
        ..Observed::default()
    }
}

fn topic() -> Topic {
    Topic::Ready("t".to_owned())
}

/// An egress delivering to `destination`, with a resolved dead-letter sink and reply URL.
fn egress(destination: Target, dls: Option<&str>, reply: Option<&str>) -> Egress {
    Egress {
        uid: "egress-uid".to_owned(),
        reference: ObjectRef::default(),
        consumer_group: "group".to_owned(),
        destination,
        filter_attributes: BTreeMap::new(),
        filters: Vec::new(),
        delivery: DeliveryPolicy {
            dead_letter_sink: dls.map(str::to_owned),
            ..DeliveryPolicy::default()
        },
        reply: reply.map(|u| Reply::Url(u.to_owned())),
        ordering: Default::default(),
        initial_offset: Default::default(),
        source: None,
    }
}

fn url(u: &str) -> Target {
    Target::Url(u.to_owned())
}

/// A Knative object of `api_version`/`kind` named `ns/name`, generation 3, with `spec` and an
/// optional prior `status`.
fn object<K: serde::de::DeserializeOwned>(
    api_version: &str,
    kind: &str,
    name: &str,
    spec: Value,
    status: Option<Value>,
) -> K {
    let mut v = json!({
        "apiVersion": api_version, "kind": kind,
        "metadata": {"name": name, "namespace": "ns", "generation": 3, "uid": format!("uid-{name}")},
        "spec": spec,
    });
    if let Some(status) = status {
        v["status"] = status;
    }
    serde_json::from_value(v).unwrap_or_else(|e| panic!("{kind} {name}: {e}"))
}

/// Every condition as `Type=Status`, with `:Reason` when the status is not `True`.
fn rendered(status: &Status) -> Vec<String> {
    status
        .conditions
        .iter()
        .filter(|c| c.type_ != READY)
        .map(|c| match (&c.reason, c.status) {
            (Some(r), s) if s != T => format!("{}={s:?}:{r}", c.type_),
            (_, s) => format!("{}={s:?}", c.type_),
        })
        .collect()
}

/// Checks `Ready` (status, reason, and that its message contains `message`), the other
/// conditions exactly, their transition times (all `NOW` on a fresh object), and
/// `observedGeneration`.
fn check(
    row: &str,
    status: &Status,
    ready: (ConditionStatus, Option<&str>),
    message: &str,
    conditions: &[&str],
) {
    let r = status
        .condition(READY)
        .unwrap_or_else(|| panic!("{row}: no Ready"));
    assert_eq!((r.status, r.reason.as_deref()), ready, "{row}: Ready {r:?}");
    let got = r.message.as_deref().unwrap_or("");
    assert!(
        got.contains(message),
        "{row}: Ready message {got:?} lacks {message:?}"
    );
    if ready.0 == T {
        assert_eq!(r.message, None, "{row}: a True Ready has no message");
    }
    let mut want: Vec<String> = conditions.iter().map(|c| (*c).to_owned()).collect();
    want.sort();
    assert_eq!(rendered(status), want, "{row}: conditions");
    for c in &status.conditions {
        assert_eq!(
            c.last_transition_time,
            Some(at(NOW)),
            "{row}: {} time",
            c.type_
        );
    }
    assert_eq!(
        status.observed_generation,
        Some(3),
        "{row}: observedGeneration"
    );
}

fn address_url(a: &AddressStatus) -> Option<&str> {
    a.address.as_ref().and_then(|a| a.url.as_deref())
}

// ---------------------------------------------------------------------------------------
// Broker

fn broker(spec: Value, status: Option<Value>) -> Broker {
    object("eventing.knative.dev/v1", "Broker", "orders", spec, status)
}

fn dls_spec() -> Value {
    json!({"delivery": {"deadLetterSink": {"uri": "http://dls.ns.svc"}}})
}

#[test]
fn broker_rows() {
    struct Row {
        name: &'static str,
        spec: Value,
        prior: Option<Value>,
        obs: Observed,
        ingress: &'static str,
        ready: (ConditionStatus, Option<&'static str>),
        message: &'static str,
        conditions: &'static [&'static str],
        url: Option<&'static str>,
    }
    let rows = [
        Row {
            name: "topic pending",
            spec: json!({}),
            prior: None,
            obs: obs(DataPlane::Pending, Topic::Pending),
            ingress: INGRESS,
            ready: (U, Some("TopicNotCreated")),
            message: "creating the topic",
            conditions: &[
                "ConfigParsed=True",
                "TopicReady=Unknown:TopicNotCreated",
                "ConfigMapUpdated=Unknown:Compiling",
                "DataPlaneAvailable=Unknown:Compiling",
                "Addressable=Unknown:NoAddress",
            ],
            url: None,
        },
        Row {
            name: "topic failed",
            spec: json!({}),
            prior: None,
            obs: obs(
                APPLIED,
                Topic::Failed("replication factor 3 exceeds the 1 available broker".into()),
            ),
            ingress: INGRESS,
            ready: (F, Some("TopicCreationFailed")),
            message: "replication factor 3 exceeds the 1 available broker",
            conditions: &[
                "ConfigParsed=True",
                "TopicReady=False:TopicCreationFailed",
                "ConfigMapUpdated=True",
                "DataPlaneAvailable=True",
                "Addressable=Unknown:NoAddress",
            ],
            url: None,
        },
        Row {
            name: "compiled, not applied by the dispatchers",
            spec: json!({}),
            prior: None,
            obs: obs(WRITTEN, topic()),
            ingress: INGRESS,
            ready: (U, Some("DispatcherNotReady")),
            message: "waiting for the dispatchers",
            conditions: &[
                "ConfigParsed=True",
                "TopicReady=True",
                "ConfigMapUpdated=True",
                "DataPlaneAvailable=Unknown:DispatcherNotReady",
                "Addressable=Unknown:NoAddress",
            ],
            url: None,
        },
        Row {
            name: "applied, topic ready, ingress base with trailing slash",
            spec: json!({"config": {"apiVersion": "v1", "kind": "ConfigMap", "name": "kafka-broker-config"}}),
            prior: None,
            obs: obs(APPLIED, topic()),
            ingress: "http://ingress.ferry.svc/",
            ready: (T, None),
            message: "",
            conditions: &[
                "ConfigParsed=True",
                "TopicReady=True",
                "ConfigMapUpdated=True",
                "DataPlaneAvailable=True",
                "Addressable=True",
            ],
            url: Some("http://ingress.ferry.svc/ns/orders"),
        },
        Row {
            name: "applied, ingress base without trailing slash",
            spec: json!({}),
            prior: None,
            obs: obs(APPLIED, topic()),
            ingress: "http://ingress.ferry.svc:8080",
            ready: (T, None),
            message: "",
            conditions: &[
                "ConfigParsed=True",
                "TopicReady=True",
                "ConfigMapUpdated=True",
                "DataPlaneAvailable=True",
                "Addressable=True",
            ],
            url: Some("http://ingress.ferry.svc:8080/ns/orders"),
        },
        Row {
            name: "applied but topic gone: no address",
            spec: json!({}),
            prior: Some(json!({"address": {"url": "http://ingress.ferry.svc/ns/orders"}})),
            obs: obs(APPLIED, Topic::Pending),
            ingress: INGRESS,
            ready: (U, Some("TopicNotCreated")),
            message: "",
            conditions: &[
                "ConfigParsed=True",
                "TopicReady=Unknown:TopicNotCreated",
                "ConfigMapUpdated=True",
                "DataPlaneAvailable=True",
                "Addressable=Unknown:NoAddress",
            ],
            url: None,
        },
        Row {
            name: "spec.config is a Secret: unsupported, address withdrawn",
            spec: json!({"config": {"apiVersion": "v1", "kind": "Secret", "name": "creds"}}),
            prior: Some(json!({
                "address": {"url": "http://ingress.ferry.svc/ns/orders"},
                "conditions": [{"type": "TopicReady", "status": "True"}],
            })),
            obs: obs(APPLIED, topic()),
            ingress: INGRESS,
            ready: (F, Some(UNSUPPORTED_FIELD)),
            message: "spec.config: is not supported by Ferry; it refers to v1 Secret, but Ferry reads broker settings from a ConfigMap",
            conditions: &[],
            url: None,
        },
        Row {
            name: "dead-letter sink configured",
            spec: dls_spec(),
            prior: None,
            obs: Observed {
                dead_letter_sink_uri: Some("http://dls.ns.svc".into()),
                ..obs(APPLIED, topic())
            },
            ingress: INGRESS,
            ready: (T, None),
            message: "",
            conditions: &[
                "ConfigParsed=True",
                "TopicReady=True",
                "ConfigMapUpdated=True",
                "DataPlaneAvailable=True",
                "Addressable=True",
                "DeadLetterSinkResolved=True",
            ],
            url: Some("http://ingress.ferry.svc/ns/orders"),
        },
        Row {
            name: "dead-letter sink ref not resolved",
            spec: json!({"delivery": {"deadLetterSink": {"ref": {"apiVersion": "v1", "kind": "Service", "name": "dlq"}}}}),
            prior: None,
            obs: obs(APPLIED, topic()),
            ingress: INGRESS,
            ready: (F, Some("DeadLetterSinkNotResolved")),
            message: "spec.delivery.deadLetterSink: Service dlq not found",
            conditions: &[
                "ConfigParsed=True",
                "TopicReady=True",
                "ConfigMapUpdated=True",
                "DataPlaneAvailable=True",
                "Addressable=True",
                "DeadLetterSinkResolved=False:DeadLetterSinkNotResolved",
            ],
            url: Some("http://ingress.ferry.svc/ns/orders"),
        },
    ];
    for row in rows {
        let b = broker(row.spec, row.prior);
        let s = broker_status(&b, &row.obs, row.ingress, &at(NOW));
        check(row.name, &s.status, row.ready, row.message, row.conditions);
        assert_eq!(
            s.delivery.dead_letter_sink_uri, row.obs.dead_letter_sink_uri,
            "{}: deadLetterSinkUri",
            row.name
        );
        assert_eq!(address_url(&s.address), row.url, "{}: address", row.name);
        assert_eq!(
            s.address.addresses.len(),
            usize::from(row.url.is_some()),
            "{}: addresses",
            row.name
        );
    }
}

#[test]
fn transition_times_move_only_when_a_status_changes() {
    let b = broker(json!({}), None);
    let first = broker_status(
        &b,
        &obs(DataPlane::Pending, Topic::Pending),
        INGRESS,
        &at(10),
    );
    let time = |s: &BrokerStatus, t: &str| {
        s.status
            .condition(t)
            .and_then(|c| c.last_transition_time.clone())
    };

    // Same statuses, later `now`: every time is kept.
    let mut b = b;
    b.status = Some(first.clone());
    let again = broker_status(
        &b,
        &obs(DataPlane::Pending, Topic::Pending),
        INGRESS,
        &at(20),
    );
    assert_eq!(again.status.conditions, first.status.conditions);

    // Ready stays Unknown with another reason: its time is kept, its reason is not.
    b.status = Some(again);
    let waiting = broker_status(&b, &obs(WRITTEN, topic()), INGRESS, &at(30));
    let ready = waiting.status.condition(READY).expect("ready");
    assert_eq!(
        (ready.status, ready.reason.as_deref()),
        (U, Some("DispatcherNotReady"))
    );
    assert_eq!(ready.last_transition_time, Some(at(10)));
    assert_eq!(time(&waiting, "TopicReady"), Some(at(30)), "Unknown → True");
    assert_eq!(time(&waiting, "ConfigMapUpdated"), Some(at(30)));
    assert_eq!(
        time(&waiting, "DataPlaneAvailable"),
        Some(at(10)),
        "still Unknown"
    );
    assert_eq!(time(&waiting, "ConfigParsed"), Some(at(10)), "still True");

    // Ready becomes True: stamped now; unchanged conditions keep their times.
    b.status = Some(waiting);
    let ready = broker_status(&b, &obs(APPLIED, topic()), INGRESS, &at(40));
    assert_eq!(time(&ready, READY), Some(at(40)));
    assert_eq!(time(&ready, "DataPlaneAvailable"), Some(at(40)));
    assert_eq!(time(&ready, "Addressable"), Some(at(40)));
    assert_eq!(time(&ready, "TopicReady"), Some(at(30)));
    assert_eq!(time(&ready, "ConfigParsed"), Some(at(10)));
    assert!(ready.status.is_ready());
}

#[test]
fn conditions_no_longer_reported_are_dropped() {
    // A dead-letter sink removed from the spec takes its condition along.
    let mut b = broker(dls_spec(), None);
    let with = broker_status(&b, &obs(APPLIED, topic()), INGRESS, &at(10));
    assert!(with.status.condition("DeadLetterSinkResolved").is_some());
    b.spec.delivery = None;
    b.status = Some(with);
    let without = broker_status(&b, &obs(APPLIED, topic()), INGRESS, &at(20));
    assert_eq!(without.status.condition("DeadLetterSinkResolved"), None);
    assert_eq!(
        without.status.conditions.len(),
        6,
        "{:?}",
        without.status.conditions
    );

    // A spec failure keeps only Ready; a fixed spec brings the set back, stamped anew.
    let mut bad = b.clone();
    bad.status = Some(without);
    bad.spec.config =
        serde_json::from_value(json!({"kind": "Secret", "name": "x", "apiVersion": "v1"})).ok();
    let failed = broker_status(&bad, &obs(APPLIED, topic()), INGRESS, &at(30));
    let types: Vec<_> = failed
        .status
        .conditions
        .iter()
        .map(|c| c.type_.as_str())
        .collect();
    assert_eq!(types, [READY]);
    bad.spec.config = None;
    bad.status = Some(failed);
    let fixed = broker_status(&bad, &obs(APPLIED, topic()), INGRESS, &at(40));
    assert!(fixed.status.is_ready());
    assert_eq!(fixed.status.conditions.len(), 6);
    assert!(
        fixed
            .status
            .conditions
            .iter()
            .all(|c| c.last_transition_time == Some(at(40)))
    );
}

#[test]
fn observed_generation_follows_metadata() {
    let mut b = broker(json!({}), None);
    b.metadata.generation = Some(9);
    let s = broker_status(&b, &obs(APPLIED, topic()), INGRESS, &at(NOW));
    assert_eq!(s.status.observed_generation, Some(9));
    // Also on the spec-failure path.
    b.spec.config =
        serde_json::from_value(json!({"kind": "Secret", "name": "x", "apiVersion": "v1"})).ok();
    b.metadata.generation = Some(10);
    let s = broker_status(&b, &obs(APPLIED, topic()), INGRESS, &at(NOW));
    assert_eq!(s.status.observed_generation, Some(10));
}

#[test]
fn ingress_urls() {
    for (base, want) in [
        ("http://in", "http://in/ns/b"),
        ("http://in/", "http://in/ns/b"),
        ("http://in//", "http://in/ns/b"),
        ("http://in/prefix/", "http://in/prefix/ns/b"),
    ] {
        assert_eq!(ingress_url(base, "ns", "b"), want, "{base}");
    }
}

// ---------------------------------------------------------------------------------------
// Trigger

fn trigger(spec: Value) -> Trigger {
    object("eventing.knative.dev/v1", "Trigger", "on-order", spec, None)
}

fn subscriber() -> Value {
    json!({"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "cart"}})
}

#[test]
fn trigger_rows() {
    struct Row {
        name: &'static str,
        spec: Value,
        broker: BrokerState,
        obs: Observed,
        ready: (ConditionStatus, Option<&'static str>),
        message: &'static str,
        conditions: &'static [&'static str],
        subscriber_uri: Option<&'static str>,
        dead_letter_sink_uri: Option<&'static str>,
    }
    let plain = json!({"broker": "orders", "subscriber": subscriber()});
    let with_dls = json!({
        "broker": "orders", "subscriber": subscriber(),
        "delivery": {"deadLetterSink": {"uri": "http://dls.ns.svc"}},
    });
    let resolved = |dp: DataPlane, dls: Option<&str>| Observed {
        data_plane: dp,
        subscriber_uri: Some("http://cart.ns.svc".into()),
        egress: Some(egress(url("http://cart-00001.ns.svc"), dls, None)),
        ..Observed::default()
    };
    let rows = [
        Row {
            name: "broker missing",
            spec: plain.clone(),
            broker: BrokerState::Missing,
            obs: obs(
                failed("BrokerDoesNotExist", "broker ns/orders not found"),
                Topic::Pending,
            ),
            ready: (F, Some("BrokerDoesNotExist")),
            message: "Broker orders does not exist",
            conditions: &[
                "BrokerReady=False:BrokerDoesNotExist",
                "SubscriberResolved=Unknown:Resolving",
                "DependencyReady=True",
                "SubscriptionReady=Unknown:Compiling",
            ],
            subscriber_uri: None,
            dead_letter_sink_uri: None,
        },
        Row {
            name: "broker of another class",
            spec: plain.clone(),
            broker: BrokerState::OtherClass,
            obs: obs(
                failed("BrokerDoesNotExist", "broker ns/orders not found"),
                Topic::Pending,
            ),
            ready: (F, Some("BrokerNotFerry")),
            message: "eventing.knative.dev/broker.class: Ferry",
            conditions: &[
                "BrokerReady=False:BrokerNotFerry",
                "SubscriberResolved=Unknown:Resolving",
                "DependencyReady=True",
                "SubscriptionReady=Unknown:Compiling",
            ],
            subscriber_uri: None,
            dead_letter_sink_uri: None,
        },
        Row {
            name: "broker not ready",
            spec: plain.clone(),
            broker: BrokerState::Present(false),
            obs: resolved(APPLIED, None),
            ready: (U, Some("BrokerNotReady")),
            message: "Broker orders is not Ready",
            conditions: &[
                "BrokerReady=Unknown:BrokerNotReady",
                "SubscriberResolved=True",
                "DependencyReady=True",
                "SubscriptionReady=True",
            ],
            subscriber_uri: Some("http://cart.ns.svc"),
            dead_letter_sink_uri: None,
        },
        Row {
            name: "broker failed: its reason is copied (Knative's PropagateBrokerCondition)",
            spec: plain.clone(),
            broker: BrokerState::Failed {
                reason: "TopicNotCreated".into(),
                message: "cannot create topic knative-broker-ns-orders".into(),
            },
            obs: resolved(APPLIED, None),
            ready: (F, Some("TopicNotCreated")),
            message: "Broker orders is not Ready: cannot create topic knative-broker-ns-orders",
            conditions: &[
                "BrokerReady=False:TopicNotCreated",
                "SubscriberResolved=True",
                "DependencyReady=True",
                "SubscriptionReady=True",
            ],
            subscriber_uri: Some("http://cart.ns.svc"),
            dead_letter_sink_uri: None,
        },
        Row {
            name: "subscriber not resolved",
            spec: plain.clone(),
            broker: BrokerState::Present(true),
            obs: obs(
                failed(
                    "SubscriberNotResolved",
                    "spec.subscriber: Service ns/cart not found",
                ),
                Topic::Pending,
            ),
            ready: (F, Some("SubscriberNotResolved")),
            message: "spec.subscriber: Service ns/cart not found",
            conditions: &[
                "BrokerReady=True",
                "SubscriberResolved=False:SubscriberNotResolved",
                "DependencyReady=True",
                "SubscriptionReady=False:SubscriberNotResolved",
            ],
            subscriber_uri: None,
            dead_letter_sink_uri: None,
        },
        Row {
            name: "compiled, not applied",
            spec: plain.clone(),
            broker: BrokerState::Present(true),
            obs: resolved(WRITTEN, None),
            ready: (U, Some("DispatcherNotReady")),
            message: "waiting for the dispatchers",
            conditions: &[
                "BrokerReady=True",
                "SubscriberResolved=True",
                "DependencyReady=True",
                "SubscriptionReady=Unknown:DispatcherNotReady",
            ],
            subscriber_uri: Some("http://cart.ns.svc"),
            dead_letter_sink_uri: None,
        },
        Row {
            name: "applied: subscriberUri from the observed address",
            spec: plain.clone(),
            broker: BrokerState::Present(true),
            obs: resolved(APPLIED, None),
            ready: (T, None),
            message: "",
            conditions: &[
                "BrokerReady=True",
                "SubscriberResolved=True",
                "DependencyReady=True",
                "SubscriptionReady=True",
            ],
            subscriber_uri: Some("http://cart.ns.svc"),
            dead_letter_sink_uri: None,
        },
        Row {
            name: "applied: subscriberUri from the egress URL",
            spec: json!({"broker": "orders", "subscriber": {"uri": "http://hook.example"}}),
            broker: BrokerState::Present(true),
            obs: Observed {
                data_plane: APPLIED,
                egress: Some(egress(url("http://hook.example"), None, None)),
                ..Observed::default()
            },
            ready: (T, None),
            message: "",
            conditions: &[
                "BrokerReady=True",
                "SubscriberResolved=True",
                "DependencyReady=True",
                "SubscriptionReady=True",
            ],
            subscriber_uri: Some("http://hook.example"),
            dead_letter_sink_uri: None,
        },
        Row {
            name: "applied: a traffic split has no single subscriberUri",
            spec: plain.clone(),
            broker: BrokerState::Present(true),
            obs: Observed {
                data_plane: APPLIED,
                egress: Some(egress(
                    Target::Revisions(vec![RevisionTarget {
                        revision: "cart-00001".into(),
                        url: "http://cart-00001.ns.svc".into(),
                        percent: 100,
                    }]),
                    None,
                    None,
                )),
                ..Observed::default()
            },
            ready: (T, None),
            message: "",
            conditions: &[
                "BrokerReady=True",
                "SubscriberResolved=True",
                "DependencyReady=True",
                "SubscriptionReady=True",
            ],
            subscriber_uri: None,
            dead_letter_sink_uri: None,
        },
        Row {
            name: "dead-letter sink resolved",
            spec: with_dls.clone(),
            broker: BrokerState::Present(true),
            obs: resolved(APPLIED, Some("http://dls.ns.svc")),
            ready: (T, None),
            message: "",
            conditions: &[
                "BrokerReady=True",
                "SubscriberResolved=True",
                "DeadLetterSinkResolved=True",
                "DependencyReady=True",
                "SubscriptionReady=True",
            ],
            subscriber_uri: Some("http://cart.ns.svc"),
            dead_letter_sink_uri: Some("http://dls.ns.svc"),
        },
        Row {
            name: "dead-letter sink inherited from the broker",
            spec: plain.clone(),
            broker: BrokerState::Present(true),
            obs: resolved(APPLIED, Some("http://broker-dls.ns.svc")),
            ready: (T, None),
            message: "",
            conditions: &[
                "BrokerReady=True",
                "SubscriberResolved=True",
                "DeadLetterSinkResolved=True",
                "DependencyReady=True",
                "SubscriptionReady=True",
            ],
            subscriber_uri: Some("http://cart.ns.svc"),
            dead_letter_sink_uri: Some("http://broker-dls.ns.svc"),
        },
        Row {
            name: "dead-letter sink not resolved",
            spec: with_dls.clone(),
            broker: BrokerState::Present(true),
            obs: Observed {
                data_plane: failed(
                    "DeadLetterSinkNotResolved",
                    "spec.delivery.deadLetterSink: Service ns/dls not found",
                ),
                subscriber_uri: Some("http://cart.ns.svc".into()),
                ..Observed::default()
            },
            ready: (F, Some("DeadLetterSinkNotResolved")),
            message: "spec.delivery.deadLetterSink: Service ns/dls not found",
            conditions: &[
                "BrokerReady=True",
                "SubscriberResolved=True",
                "DeadLetterSinkResolved=False:DeadLetterSinkNotResolved",
                "DependencyReady=True",
                "SubscriptionReady=False:DeadLetterSinkNotResolved",
            ],
            subscriber_uri: Some("http://cart.ns.svc"),
            dead_letter_sink_uri: None,
        },
        Row {
            name: "broker's dead-letter sink not resolved",
            spec: plain.clone(),
            broker: BrokerState::Present(true),
            obs: obs(
                failed(
                    "DeadLetterSinkNotResolved",
                    "spec.delivery.deadLetterSink: not found",
                ),
                Topic::Pending,
            ),
            ready: (F, Some("DeadLetterSinkNotResolved")),
            message: "not found",
            conditions: &[
                "BrokerReady=True",
                "SubscriberResolved=True",
                "DeadLetterSinkResolved=False:DeadLetterSinkNotResolved",
                "DependencyReady=True",
                "SubscriptionReady=False:DeadLetterSinkNotResolved",
            ],
            subscriber_uri: None,
            dead_letter_sink_uri: None,
        },
        Row {
            name: "delivery spec does not compile",
            spec: with_dls.clone(),
            broker: BrokerState::Present(true),
            obs: obs(
                failed(
                    "InvalidDelivery",
                    "spec.delivery.timeout: `soon` is not a duration",
                ),
                Topic::Pending,
            ),
            ready: (F, Some("InvalidDelivery")),
            message: "spec.delivery.timeout",
            conditions: &[
                "BrokerReady=True",
                "SubscriberResolved=True",
                "DeadLetterSinkResolved=Unknown:Resolving",
                "DependencyReady=True",
                "SubscriptionReady=False:InvalidDelivery",
            ],
            subscriber_uri: None,
            dead_letter_sink_uri: None,
        },
        Row {
            name: "spec.brokerRef is unsupported",
            spec: json!({
                "brokerRef": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "orders", "namespace": "other"},
                "subscriber": subscriber(),
            }),
            broker: BrokerState::Missing,
            obs: obs(failed("BrokerDoesNotExist", "x"), Topic::Pending),
            ready: (F, Some(UNSUPPORTED_FIELD)),
            message: "spec.brokerRef: is not supported by Ferry",
            conditions: &[],
            subscriber_uri: None,
            dead_letter_sink_uri: None,
        },
        Row {
            name: "no broker named: InvalidSpec",
            spec: json!({"broker": "", "subscriber": subscriber()}),
            broker: BrokerState::Missing,
            obs: Observed::default(),
            ready: (F, Some(INVALID_SPEC)),
            message: "spec.broker: is empty",
            conditions: &[],
            subscriber_uri: None,
            dead_letter_sink_uri: None,
        },
    ];
    for row in rows {
        let t = trigger(row.spec);
        let s = trigger_status(&t, row.broker, &row.obs, &at(NOW));
        check(row.name, &s.status, row.ready, row.message, row.conditions);
        assert_eq!(
            s.subscriber_uri.as_deref(),
            row.subscriber_uri,
            "{}: subscriberUri",
            row.name
        );
        assert_eq!(
            s.delivery.dead_letter_sink_uri.as_deref(),
            row.dead_letter_sink_uri,
            "{}: deadLetterSinkUri",
            row.name
        );
    }
}

// ---------------------------------------------------------------------------------------
// KafkaChannel

fn channel(spec: Value, status: Option<Value>) -> KafkaChannel {
    object(
        "messaging.knative.dev/v1beta1",
        "KafkaChannel",
        "events",
        spec,
        status,
    )
}

fn subscription(name: &str, spec: Value) -> Subscription {
    object("messaging.knative.dev/v1", "Subscription", name, spec, None)
}

fn sub_spec() -> Value {
    json!({
        "channel": {"apiVersion": "messaging.knative.dev/v1beta1", "kind": "KafkaChannel", "name": "events"},
        "subscriber": subscriber(),
    })
}

#[test]
fn channel_rows() {
    struct Row {
        name: &'static str,
        spec: Value,
        prior: Option<Value>,
        obs: Observed,
        ready: (ConditionStatus, Option<&'static str>),
        message: &'static str,
        conditions: &'static [&'static str],
        url: Option<&'static str>,
    }
    let rows = [
        Row {
            name: "topic pending",
            spec: json!({}),
            prior: None,
            obs: obs(DataPlane::Pending, Topic::Pending),
            ready: (U, Some("TopicNotCreated")),
            message: "",
            conditions: &[
                "ConfigurationReady=True",
                "TopicReady=Unknown:TopicNotCreated",
                "ChannelServiceReady=Unknown:Compiling",
                "Addressable=Unknown:NoAddress",
            ],
            url: None,
        },
        Row {
            name: "topic failed",
            spec: json!({"numPartitions": 3}),
            prior: None,
            obs: obs(APPLIED, Topic::Failed("not enough brokers".into())),
            ready: (F, Some("TopicCreationFailed")),
            message: "not enough brokers",
            conditions: &[
                "ConfigurationReady=True",
                "TopicReady=False:TopicCreationFailed",
                "ChannelServiceReady=True",
                "Addressable=Unknown:NoAddress",
            ],
            url: None,
        },
        Row {
            name: "compiled, not applied: no address yet",
            spec: json!({}),
            prior: None,
            obs: obs(WRITTEN, topic()),
            ready: (U, Some("DispatcherNotReady")),
            message: "",
            conditions: &[
                "ConfigurationReady=True",
                "TopicReady=True",
                "ChannelServiceReady=Unknown:DispatcherNotReady",
                "Addressable=Unknown:NoAddress",
            ],
            url: None,
        },
        Row {
            name: "applied",
            spec: json!({"numPartitions": 3, "replicationFactor": 1, "retentionDuration": "PT24H"}),
            prior: None,
            obs: obs(APPLIED, topic()),
            ready: (T, None),
            message: "",
            conditions: &[
                "ConfigurationReady=True",
                "TopicReady=True",
                "ChannelServiceReady=True",
                "Addressable=True",
            ],
            url: Some("http://ingress.ferry.svc/ns/events"),
        },
        Row {
            name: "numPartitions 0: InvalidSpec, address withdrawn",
            spec: json!({"numPartitions": 0}),
            prior: Some(json!({"address": {"url": "http://ingress.ferry.svc/ns/events"}})),
            obs: obs(APPLIED, topic()),
            ready: (F, Some(INVALID_SPEC)),
            message: "spec.numPartitions: must be at least 1 (got 0)",
            conditions: &[],
            url: None,
        },
    ];
    for row in rows {
        let c = channel(row.spec, row.prior);
        let s = channel_status(&c, &row.obs, &[], INGRESS, &at(NOW));
        check(row.name, &s.status, row.ready, row.message, row.conditions);
        assert_eq!(address_url(&s.address), row.url, "{}: address", row.name);
    }
}

#[test]
fn channel_lists_subscribers_by_uid() {
    let mut subs = [
        subscription("d-pending", sub_spec()),
        subscription("a-applied", sub_spec()),
        subscription("c-written", sub_spec()),
        subscription("b-failed", sub_spec()),
    ];
    subs[1].metadata.generation = Some(5);
    let dps = [
        DataPlane::Pending,
        APPLIED,
        WRITTEN,
        failed(
            "SubscriberNotResolved",
            "spec.subscriber: Service ns/cart not found",
        ),
    ];
    let pairs: Vec<(&Subscription, DataPlane)> = subs.iter().zip(dps).collect();
    let c = channel(json!({}), None);
    let s = channel_status(&c, &obs(APPLIED, topic()), &pairs, INGRESS, &at(NOW));
    let got: Vec<_> = s
        .subscribers
        .iter()
        .map(|s| {
            (
                s.uid.as_deref().unwrap_or(""),
                s.observed_generation,
                s.ready,
                s.message.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("uid-a-applied", Some(5), T, None),
            (
                "uid-b-failed",
                Some(3),
                F,
                Some("spec.subscriber: Service ns/cart not found")
            ),
            (
                "uid-c-written",
                Some(3),
                U,
                Some("waiting for the dispatchers")
            ),
            (
                "uid-d-pending",
                Some(3),
                U,
                Some("waiting for the dispatchers")
            ),
        ]
    );
    // A failing subscriber is the Subscription's problem, not the channel's.
    assert!(s.status.is_ready());

    // Subscribers that went away leave the list.
    let mut c = c;
    c.status = Some(s);
    let s = channel_status(&c, &obs(APPLIED, topic()), &pairs[..1], INGRESS, &at(NOW));
    assert_eq!(s.subscribers.len(), 1);
    assert_eq!(s.subscribers[0].uid.as_deref(), Some("uid-d-pending"));
}

// ---------------------------------------------------------------------------------------
// Subscription

#[test]
fn subscription_rows() {
    struct Row {
        name: &'static str,
        spec: Value,
        channel: ChannelState,
        obs: Observed,
        ready: (ConditionStatus, Option<&'static str>),
        message: &'static str,
        conditions: &'static [&'static str],
        physical: [Option<&'static str>; 3],
    }
    let with_reply = {
        let mut s = sub_spec();
        s["reply"] = json!({"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "replies"}});
        s
    };
    let rows = [
        Row {
            name: "channel missing",
            spec: sub_spec(),
            channel: ChannelState::Missing,
            obs: obs(
                failed(
                    "ChannelNotFound",
                    "channel KafkaChannel ns/events not found",
                ),
                Topic::Pending,
            ),
            ready: (F, Some("ChannelNotFound")),
            message: "KafkaChannel events does not exist in this namespace; create it or fix spec.channel",
            conditions: &[
                "ChannelReady=False:ChannelNotFound",
                "ReferencesResolved=Unknown:Resolving",
                "AddedToChannel=Unknown:Compiling",
            ],
            physical: [None, None, None],
        },
        Row {
            name: "channel not ready",
            spec: sub_spec(),
            channel: ChannelState::Present(false),
            obs: Observed {
                data_plane: APPLIED,
                subscriber_uri: Some("http://cart.ns.svc".into()),
                ..Observed::default()
            },
            ready: (U, Some("ChannelNotReady")),
            message: "",
            conditions: &[
                "ChannelReady=Unknown:ChannelNotReady",
                "ReferencesResolved=True",
                "AddedToChannel=True",
            ],
            physical: [Some("http://cart.ns.svc"), None, None],
        },
        Row {
            name: "reply not resolved",
            spec: with_reply.clone(),
            channel: ChannelState::Present(true),
            obs: obs(
                failed(
                    "ReplyNotResolved",
                    "spec.reply: Broker ns/replies not found",
                ),
                Topic::Pending,
            ),
            ready: (F, Some("ReplyNotResolved")),
            message: "spec.reply: Broker ns/replies not found",
            conditions: &[
                "ChannelReady=True",
                "ReferencesResolved=False:ReplyNotResolved",
                "AddedToChannel=Unknown:Compiling",
            ],
            physical: [None, None, None],
        },
        Row {
            name: "subscriber not resolved",
            spec: sub_spec(),
            channel: ChannelState::Present(true),
            obs: obs(
                failed(
                    "SubscriberNotResolved",
                    "spec.subscriber: Service ns/cart not found",
                ),
                Topic::Pending,
            ),
            ready: (F, Some("SubscriberNotResolved")),
            message: "Service ns/cart not found",
            conditions: &[
                "ChannelReady=True",
                "ReferencesResolved=False:SubscriberNotResolved",
                "AddedToChannel=Unknown:Compiling",
            ],
            physical: [None, None, None],
        },
        Row {
            name: "compiled, not applied",
            spec: sub_spec(),
            channel: ChannelState::Present(true),
            obs: Observed {
                data_plane: WRITTEN,
                egress: Some(egress(url("http://cart.ns.svc"), None, None)),
                ..Observed::default()
            },
            ready: (U, Some("DispatcherNotReady")),
            message: "",
            conditions: &[
                "ChannelReady=True",
                "ReferencesResolved=True",
                "AddedToChannel=Unknown:DispatcherNotReady",
            ],
            physical: [Some("http://cart.ns.svc"), None, None],
        },
        Row {
            name: "applied: physicalSubscription from the observed URLs",
            spec: with_reply.clone(),
            channel: ChannelState::Present(true),
            obs: Observed {
                data_plane: APPLIED,
                subscriber_uri: Some("http://cart.ns.svc".into()),
                reply_uri: Some("http://ingress.ferry.svc/ns/replies".into()),
                egress: Some(egress(
                    url("http://cart-00001.ns.svc"),
                    Some("http://dls.ns.svc"),
                    Some("http://elsewhere"),
                )),
                ..Observed::default()
            },
            ready: (T, None),
            message: "",
            conditions: &[
                "ChannelReady=True",
                "ReferencesResolved=True",
                "AddedToChannel=True",
            ],
            physical: [
                Some("http://cart.ns.svc"),
                Some("http://ingress.ferry.svc/ns/replies"),
                Some("http://dls.ns.svc"),
            ],
        },
        Row {
            name: "applied: physicalSubscription from the egress",
            spec: with_reply.clone(),
            channel: ChannelState::Present(true),
            obs: Observed {
                data_plane: APPLIED,
                egress: Some(egress(
                    url("http://cart.ns.svc"),
                    None,
                    Some("http://ingress.ferry.svc/ns/replies"),
                )),
                ..Observed::default()
            },
            ready: (T, None),
            message: "",
            conditions: &[
                "ChannelReady=True",
                "ReferencesResolved=True",
                "AddedToChannel=True",
            ],
            physical: [
                Some("http://cart.ns.svc"),
                Some("http://ingress.ferry.svc/ns/replies"),
                None,
            ],
        },
        Row {
            name: "neither subscriber nor reply: InvalidSpec",
            spec: json!({"channel": {"apiVersion": "messaging.knative.dev/v1beta1", "kind": "KafkaChannel", "name": "events"}}),
            channel: ChannelState::Present(true),
            obs: Observed::default(),
            ready: (F, Some(INVALID_SPEC)),
            message: "spec: has neither subscriber nor reply",
            conditions: &[],
            physical: [None, None, None],
        },
        Row {
            name: "subscriber audience: UnsupportedField",
            spec: {
                let mut s = sub_spec();
                s["subscriber"]["audience"] = json!("cart");
                s
            },
            channel: ChannelState::Present(true),
            obs: obs(APPLIED, Topic::Pending),
            ready: (F, Some(UNSUPPORTED_FIELD)),
            message: "spec.subscriber.audience: is not supported by Ferry",
            conditions: &[],
            physical: [None, None, None],
        },
    ];
    for row in rows {
        let sub = subscription("to-cart", row.spec);
        let s = subscription_status(&sub, row.channel, &row.obs, &at(NOW));
        check(row.name, &s.status, row.ready, row.message, row.conditions);
        let p = &s.physical_subscription;
        assert_eq!(
            [
                p.subscriber_uri.as_deref(),
                p.reply_uri.as_deref(),
                p.dead_letter_sink_uri.as_deref()
            ],
            row.physical,
            "{}: physicalSubscription",
            row.name
        );
    }
}

// ---------------------------------------------------------------------------------------
// KafkaSource

fn source(spec: Value) -> KafkaSource {
    object(
        "sources.knative.dev/v1beta1",
        "KafkaSource",
        "orders-src",
        spec,
        None,
    )
}

fn source_spec() -> Value {
    json!({
        "bootstrapServers": ["my-cluster-kafka-bootstrap.kafka:9092"],
        "topics": ["orders"],
        "sink": subscriber(),
    })
}

#[test]
fn source_rows() {
    struct Row {
        name: &'static str,
        spec: Value,
        obs: Observed,
        topics: Topic,
        ready: (ConditionStatus, Option<&'static str>),
        message: &'static str,
        conditions: &'static [&'static str],
        sink_uri: Option<&'static str>,
    }
    let sink = |dp: DataPlane| Observed {
        data_plane: dp,
        subscriber_uri: Some("http://cart.ns.svc".into()),
        ..Observed::default()
    };
    let rows = [
        Row {
            name: "topics missing",
            spec: source_spec(),
            obs: sink(APPLIED),
            topics: Topic::Failed("topic orders does not exist".into()),
            ready: (F, Some("TopicsNotFound")),
            message: "topic orders does not exist",
            conditions: &[
                "SinkProvided=True",
                "ConnectionEstablished=False:TopicsNotFound",
                "InitialOffsetsCommitted=True",
                "Deployed=True",
            ],
            sink_uri: Some("http://cart.ns.svc"),
        },
        Row {
            name: "their cluster refused the credentials",
            spec: source_spec(),
            obs: sink(APPLIED),
            topics: Topic::Unreachable(
                "cannot read the topics: Meta data fetch error: Authentication".into(),
            ),
            ready: (F, Some("ConnectionFailed")),
            message: "Authentication",
            conditions: &[
                "SinkProvided=True",
                "ConnectionEstablished=False:ConnectionFailed",
                "InitialOffsetsCommitted=True",
                "Deployed=True",
            ],
            sink_uri: Some("http://cart.ns.svc"),
        },
        Row {
            name: "topics not looked up yet",
            spec: source_spec(),
            obs: sink(APPLIED),
            topics: Topic::Pending,
            ready: (U, Some("Connecting")),
            message: "",
            conditions: &[
                "SinkProvided=True",
                "ConnectionEstablished=Unknown:Connecting",
                "InitialOffsetsCommitted=True",
                "Deployed=True",
            ],
            sink_uri: Some("http://cart.ns.svc"),
        },
        Row {
            name: "sink not resolved",
            spec: source_spec(),
            obs: obs(
                failed(
                    "SubscriberNotResolved",
                    "spec.sink: Service ns/cart not found",
                ),
                Topic::Pending,
            ),
            topics: topic(),
            ready: (F, Some("SubscriberNotResolved")),
            message: "spec.sink: Service ns/cart not found",
            conditions: &[
                "SinkProvided=False:SubscriberNotResolved",
                "ConnectionEstablished=True",
                "InitialOffsetsCommitted=Unknown:Compiling",
                "Deployed=Unknown:Compiling",
            ],
            sink_uri: None,
        },
        Row {
            name: "dead-letter sink not resolved: the sink is fine, nothing is deployed",
            spec: source_spec(),
            obs: sink(failed(
                "DeadLetterSinkNotResolved",
                "spec.delivery.deadLetterSink: Service ns/dls not found",
            )),
            topics: topic(),
            ready: (F, Some("DeadLetterSinkNotResolved")),
            message: "spec.delivery.deadLetterSink",
            conditions: &[
                "SinkProvided=True",
                "ConnectionEstablished=True",
                "InitialOffsetsCommitted=Unknown:Compiling",
                "Deployed=False:DeadLetterSinkNotResolved",
            ],
            sink_uri: Some("http://cart.ns.svc"),
        },
        Row {
            name: "spec.net Secret missing: cannot connect, nothing deployed",
            spec: source_spec(),
            obs: sink(failed(
                "NetSecretNotResolved",
                "Secret ns/kafka-creds not found; create it or fix spec.net; spec.net cannot be applied",
            )),
            topics: Topic::Pending,
            ready: (F, Some("NetSecretNotResolved")),
            message: "Secret ns/kafka-creds not found",
            conditions: &[
                "SinkProvided=True",
                "ConnectionEstablished=False:NetSecretNotResolved",
                "InitialOffsetsCommitted=Unknown:Compiling",
                "Deployed=False:NetSecretNotResolved",
            ],
            sink_uri: Some("http://cart.ns.svc"),
        },
        Row {
            name: "compiled, not applied",
            spec: source_spec(),
            obs: sink(WRITTEN),
            topics: topic(),
            ready: (U, Some("DispatcherNotReady")),
            message: "",
            conditions: &[
                "SinkProvided=True",
                "ConnectionEstablished=True",
                "InitialOffsetsCommitted=Unknown:DispatcherNotReady",
                "Deployed=Unknown:DispatcherNotReady",
            ],
            sink_uri: Some("http://cart.ns.svc"),
        },
        Row {
            name: "applied",
            spec: source_spec(),
            obs: sink(APPLIED),
            topics: topic(),
            ready: (T, None),
            message: "",
            conditions: &[
                "SinkProvided=True",
                "ConnectionEstablished=True",
                "InitialOffsetsCommitted=True",
                "Deployed=True",
            ],
            sink_uri: Some("http://cart.ns.svc"),
        },
        Row {
            name: "applied: sinkUri from the egress",
            spec: {
                let mut s = source_spec();
                s["sink"] = json!({"uri": "http://hook.example"});
                s
            },
            obs: Observed {
                data_plane: APPLIED,
                egress: Some(egress(url("http://hook.example"), None, None)),
                ..Observed::default()
            },
            topics: topic(),
            ready: (T, None),
            message: "",
            conditions: &[
                "SinkProvided=True",
                "ConnectionEstablished=True",
                "InitialOffsetsCommitted=True",
                "Deployed=True",
            ],
            sink_uri: Some("http://hook.example"),
        },
        Row {
            name: "bootstrap server without port: InvalidSpec",
            spec: {
                let mut s = source_spec();
                s["bootstrapServers"] = json!(["kafka"]);
                s
            },
            obs: sink(APPLIED),
            topics: topic(),
            ready: (F, Some(INVALID_SPEC)),
            message: "spec.bootstrapServers[0]: `kafka` is not host:port",
            conditions: &[],
            sink_uri: None,
        },
        Row {
            name: "sink CACerts: UnsupportedField",
            spec: {
                let mut s = source_spec();
                s["sink"]["CACerts"] = json!("-----BEGIN CERTIFICATE-----");
                s
            },
            obs: sink(APPLIED),
            topics: topic(),
            ready: (F, Some(UNSUPPORTED_FIELD)),
            message: "spec.sink.CACerts",
            conditions: &[],
            sink_uri: None,
        },
    ];
    for row in rows {
        let src = source(row.spec);
        let s = source_status(&src, &row.obs, &row.topics, &at(NOW));
        check(row.name, &s.status, row.ready, row.message, row.conditions);
        assert_eq!(s.sink_uri.as_deref(), row.sink_uri, "{}: sinkUri", row.name);
    }
}

#[test]
fn spec_problems_report_validation_before_unsupported_fields() {
    let both = trigger(json!({
        "broker": "orders",
        "brokerRef": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "orders"},
        "subscriber": subscriber(),
    }));
    let (reason, message) = spec_problem(&Resource::Trigger(both)).expect("a problem");
    assert_eq!(reason, INVALID_SPEC);
    assert!(
        message.contains("spec.brokerRef: is set together with broker"),
        "{message}"
    );
    assert!(!message.contains('\n'), "one line: {message}");

    let two = trigger(json!({"broker": "", "subscriber": {}}));
    let (_, message) = spec_problem(&Resource::Trigger(two)).expect("a problem");
    assert!(message.contains("spec.broker: is empty"), "{message}");
    assert!(
        message.contains("; spec.subscriber: a destination needs"),
        "{message}"
    );

    assert_eq!(
        spec_problem(&Resource::Trigger(trigger(
            json!({"broker": "b", "subscriber": subscriber()})
        ))),
        None
    );
}
