//! Ordering per key, KafkaSource records from a plain Kafka producer, and contract changes
//! applied live.

mod support;

use std::time::Duration;

use ferry_api::contract::{
    Activation, Contract, ContractResource, Egress, ObjectRef, SourceMapping,
};
use ferry_api::eventing::DeliveryOrder;
use ferry_api::sources::KeyType;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn ordered_delivery_keeps_key_order_and_a_slow_key_holds_back_nothing_else() {
    let log = Log::start().await;
    log.create_topic("orders", 1).await;
    let sink = Sink::start().await;
    sink.push(
        Rule::status(202)
            .when("partitionkey", "slow")
            .delay(Duration::from_millis(400)),
    );
    let mut ordered = trigger("ordered", &sink.url());
    ordered.ordering = DeliveryOrder::Ordered;
    let d = Dispatcher::start(
        &contract(1, vec![broker("orders", &log.bootstrap, vec![ordered])]),
        &[],
    );
    let client = reqwest::Client::new();
    // All on one partition: 3 slow events first, then 40 events over 4 other keys.
    let mut posted = Vec::new();
    for i in 0..3 {
        posted.push(("slow".to_owned(), format!("slow-{i}")));
    }
    for i in 0..40 {
        posted.push((format!("k{}", i % 4), format!("fast-{i}")));
    }
    for (key, id) in &posted {
        let (status, _) = post_event(
            &client,
            &d.url("/default/orders"),
            id,
            "t",
            &[("ce-partitionkey", key)],
            "{}",
        )
        .await;
        assert_eq!(status, 202);
    }
    let got = accepted(&sink, posted.len()).await;
    // Same key: arrival order is log order.
    for key in ["slow", "k0", "k1", "k2", "k3"] {
        let arrived: Vec<String> = got
            .iter()
            .filter(|r| r.attr("partitionkey").as_deref() == Some(key))
            .filter_map(|r| r.attr("id"))
            .collect();
        let sent: Vec<String> = posted
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, id)| id.clone())
            .collect();
        assert_eq!(arrived, sent, "order of key {key}");
    }
    // The slow key (3 × 400 ms, one at a time) did not hold back the others.
    let last_fast = got
        .iter()
        .filter(|r| r.attr("partitionkey").as_deref() != Some("slow"))
        .map(|r| r.at)
        .max()
        .unwrap();
    let last_slow = got
        .iter()
        .filter(|r| r.attr("partitionkey").as_deref() == Some("slow"))
        .map(|r| r.at)
        .max()
        .unwrap();
    assert!(
        last_fast < last_slow,
        "fast keys finished before the slow key's last event arrived"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_source_maps_plain_records_and_passes_cloudevents_through() {
    let log = Log::start().await;
    log.create_topic("payments", 2).await;
    let sink = Sink::start().await;
    let mut egress = trigger("legacy", &sink.url());
    egress.reference = ObjectRef::new("KafkaSource", "default", "legacy");
    egress.source = Some(SourceMapping {
        key_type: KeyType::Int,
        ce_overrides: [("team".to_owned(), "payments".to_owned())].into(),
    });
    let source = ContractResource {
        uid: "source-legacy/topics".into(),
        reference: ObjectRef::new("KafkaSource", "default", "legacy"),
        topics: vec!["payments".into()],
        bootstrap_servers: log.bootstrap.clone(),
        // KafkaSources always carry their spec.net; empty is plaintext.
        auth: Some(Default::default()),
        ingress: None,
        egresses: vec![egress],
    };
    let d = Dispatcher::start(&contract(1, vec![source]), &[]);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &log.bootstrap)
        .create()
        .unwrap();
    let key = 7i32.to_be_bytes();
    let plain = FutureRecord::to("payments")
        .partition(1)
        .key(&key[..])
        .payload(r#"{"amount":5}"#)
        .timestamp(1_700_000_000_123)
        .headers(
            OwnedHeaders::new()
                .insert(Header {
                    key: "content-type",
                    value: Some("application/json"),
                })
                .insert(Header {
                    key: "X-Trace",
                    value: Some("abc"),
                }),
        );
    let delivery = producer
        .send(plain, Duration::from_secs(5))
        .await
        .expect("produced");
    let (partition, offset) = (delivery.partition, delivery.offset);
    let ce = FutureRecord::<(), _>::to("payments")
        .partition(0)
        .payload("raw")
        .headers(
            OwnedHeaders::new()
                .insert(Header {
                    key: "ce_specversion",
                    value: Some("1.0"),
                })
                .insert(Header {
                    key: "ce_id",
                    value: Some("already-an-event"),
                })
                .insert(Header {
                    key: "ce_source",
                    value: Some("/producer"),
                })
                .insert(Header {
                    key: "ce_type",
                    value: Some("thing.done"),
                }),
        );
    producer
        .send(ce, Duration::from_secs(5))
        .await
        .expect("produced");

    let got = accepted(&sink, 2).await;
    let mapped = got
        .iter()
        .find(|r| r.attr("type").as_deref() == Some("dev.knative.kafka.event"))
        .expect("mapped record");
    assert_eq!(
        mapped.attr("id"),
        Some(format!("partition:{partition}/offset:{offset}"))
    );
    assert_eq!(
        mapped.attr("source").as_deref(),
        Some("/apis/v1/namespaces/default/kafkasources/legacy#payments")
    );
    assert_eq!(
        mapped.attr("subject"),
        Some(format!("partition:{partition}#{offset}"))
    );
    let time = chrono::DateTime::parse_from_rfc3339(&mapped.attr("time").unwrap()).unwrap();
    assert_eq!(
        time.timestamp_millis(),
        1_700_000_000_123,
        "time is the record timestamp"
    );
    assert_eq!(
        mapped.attr("datacontenttype").as_deref(),
        Some("application/json")
    );
    assert_eq!(mapped.attr("key").as_deref(), Some("7"));
    assert_eq!(mapped.attr("kafkaheaderxtrace").as_deref(), Some("abc"));
    assert_eq!(mapped.attr("team").as_deref(), Some("payments"));
    assert_eq!(mapped.data(), br#"{"amount":5}"#);
    let passed = got
        .iter()
        .find(|r| r.attr("id").as_deref() == Some("already-an-event"))
        .expect("CloudEvent record");
    assert_eq!(passed.attr("type").as_deref(), Some("thing.done"));
    assert_eq!(
        passed.attr("team").as_deref(),
        Some("payments"),
        "ceOverrides apply to passed-through events too"
    );
    drop(d);
}

#[tokio::test(flavor = "multi_thread")]
async fn contract_changes_apply_live_and_bad_contracts_are_rejected() {
    let log = Log::start().await;
    log.create_topic("orders", 1).await;
    log.create_topic("refunds", 1).await;
    let (first, second) = (Sink::start().await, Sink::start().await);
    let one = contract(
        1,
        vec![broker(
            "orders",
            &log.bootstrap,
            vec![trigger("first", &first.url())],
        )],
    );
    let d = Dispatcher::start(&one, &[]);
    let client = reqwest::Client::new();
    post_event(&client, &d.url("/default/orders"), "e-1", "t", &[], "{}").await;
    accepted(&first, 1).await;

    // Generation 2 adds a trigger and a second broker; the first trigger keeps its place.
    let two = contract(
        2,
        vec![
            broker(
                "orders",
                &log.bootstrap,
                vec![
                    trigger("first", &first.url()),
                    trigger("second", &second.url()),
                ],
            ),
            broker("refunds", &log.bootstrap, vec![]),
        ],
    );
    d.write_contract(&two);
    d.wait_for_generation(2);
    post_event(&client, &d.url("/default/orders"), "e-2", "t", &[], "{}").await;
    assert_eq!(
        post_event(&client, &d.url("/default/refunds"), "r-1", "t", &[], "{}")
            .await
            .0,
        202
    );
    let ids = |s: &Sink| {
        let mut ids = s
            .accepted()
            .iter()
            .filter_map(|r| r.attr("id"))
            .collect::<Vec<_>>();
        ids.sort(); // unordered delivery
        ids
    };
    accepted(&first, 2).await;
    assert_eq!(
        ids(&first),
        ["e-1", "e-2"],
        "the untouched egress delivered e-1 once and went on"
    );
    accepted(&second, 2).await;
    assert_eq!(
        ids(&second),
        ["e-1", "e-2"],
        "the new egress starts from the earliest offset"
    );

    // Invalid contracts: rejected, counted, generation 2 stays in force.
    d.write_raw(b"{ not json");
    eventually("a rejection", Duration::from_secs(10), || {
        (d.metric("ferry_dispatcher_contract_rejected_total") >= 1.0).then_some(())
    });
    let mut bad = two.clone();
    bad.generation = 3;
    bad.resources[1].ingress = bad.resources[0].ingress.clone();
    d.write_contract(&bad);
    eventually("a second rejection", Duration::from_secs(10), || {
        (d.metric("ferry_dispatcher_contract_rejected_total") >= 2.0).then_some(())
    });
    assert!(d.admin_get("/readyz").contains("generation 2"));
    assert_eq!(d.metric("ferry_dispatcher_contract_generation"), 2.0);
    assert_eq!(
        post_event(&client, &d.url("/default/refunds"), "r-2", "t", &[], "{}")
            .await
            .0,
        202,
        "routes of generation 2 still serve"
    );

    // Removing the brokers: their paths answer 404.
    d.write_contract(&contract(4, vec![]));
    d.wait_for_generation(4);
    assert_eq!(
        post_event(&client, &d.url("/default/orders"), "e-3", "t", &[], "{}")
            .await
            .0,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ingress_and_egress_roles_run_as_separate_processes() {
    let log = Log::start().await;
    log.create_topic("orders", 1).await;
    let sink = Sink::start().await;
    let c = contract(
        1,
        vec![broker(
            "orders",
            &log.bootstrap,
            vec![trigger("t", &sink.url())],
        )],
    );
    let ingress = Dispatcher::start(&c, &["--role", "ingress"]);
    let egress = Dispatcher::start(&c, &["--role", "egress"]);
    let client = reqwest::Client::new();
    assert_eq!(
        post_event(
            &client,
            &ingress.url("/default/orders"),
            "x-1",
            "t",
            &[],
            "{}"
        )
        .await
        .0,
        202
    );
    let got = accepted(&sink, 1).await;
    assert_eq!(got[0].attr("id").as_deref(), Some("x-1"));
    eventually(
        "the egress process counts the delivery",
        Duration::from_secs(10),
        || {
            (egress.metric("ferry_dispatcher_egress_events_total{egress=\"Trigger default/t\",outcome=\"delivered\"}") >= 1.0).then_some(())
        },
    );
    assert_eq!(
        ingress.metric("ferry_dispatcher_egress_events_total"),
        0.0,
        "the ingress process runs no egress"
    );
}

/// A restarted egress resumes where its group was on every partition — also on partitions
/// that never carried an event for it, which keep no commit of their own. Without the pinned
/// initial offsets, the replacement resolved `latest` there and skipped what arrived while it
/// joined (seen as lost events when a Service's traffic changed under `ferry dev`).
#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_egress_skips_nothing_on_partitions_it_never_read() {
    let log = Log::start().await;
    log.create_topic("carts", 4).await;
    let (first, second) = (Sink::start().await, Sink::start().await);
    let latest = |url: &str| Egress {
        initial_offset: ferry_api::sources::InitialOffset::Latest,
        ..trigger("carts", url)
    };
    let one = contract(
        1,
        vec![broker("carts", &log.bootstrap, vec![latest(&first.url())])],
    );
    let d = Dispatcher::start(&one, &[]);
    let client = reqwest::Client::new();
    // Wait until the egress has joined and reads (the trigger is new: `latest` applies).
    let mut n = 0;
    eventually("the new egress delivers", Duration::from_secs(20), || {
        n += 1;
        let id = format!("warm-{n}");
        let rt = tokio::runtime::Handle::current();
        let key = [("ce-partitionkey", "one-key")];
        tokio::task::block_in_place(|| {
            rt.block_on(post_event(
                &client,
                &d.url("/default/carts"),
                &id,
                "t",
                &key,
                "{}",
            ))
        });
        std::thread::sleep(Duration::from_millis(300));
        (!first.accepted().is_empty()).then_some(())
    });

    // The destination changes: the egress is replaced, and events spread over every
    // partition are posted the moment the new generation is in force.
    d.write_contract(&contract(
        2,
        vec![broker("carts", &log.bootstrap, vec![latest(&second.url())])],
    ));
    d.wait_for_generation(2);
    const EVENTS: usize = 100;
    for i in 0..EVENTS {
        let key = format!("k{i}");
        let (status, _) = post_event(
            &client,
            &d.url("/default/carts"),
            &format!("after-{i}"),
            "t",
            &[("ce-partitionkey", &key)],
            "{}",
        )
        .await;
        assert_eq!(status, 202);
    }
    let received = second
        .wait_for_accepted(EVENTS, Duration::from_secs(30))
        .await;
    let after: std::collections::BTreeSet<String> = received
        .iter()
        .filter_map(|r| r.attr("id"))
        .filter(|id| id.starts_with("after-"))
        .collect();
    assert_eq!(
        after.len(),
        EVENTS,
        "every event posted after the change arrives"
    );
}

/// Activation: deliveries to a revision at zero are held (and show as demand), go out when a
/// replica is ready, and never exceed containerConcurrency in flight at that replica.
#[tokio::test(flavor = "multi_thread")]
async fn a_revision_at_zero_holds_events_until_a_replica_is_ready() {
    let log = Log::start().await;
    log.create_topic("cold", 1).await;
    let replica = Sink::start().await;
    replica.push(Rule::status(200).delay(Duration::from_millis(50)));
    let revision_url = "http://rev-00001.default.svc.cluster.local";
    let egress = Egress {
        destination: ferry_api::contract::Target::Revisions(vec![
            ferry_api::contract::RevisionTarget {
                revision: "rev-00001".into(),
                url: revision_url.into(),
                percent: 100,
            },
        ]),
        ..trigger("cold", &replica.url())
    };
    let at = |generation, endpoints: Vec<String>| Contract {
        activation: vec![Activation {
            url: revision_url.into(),
            revision: "default/rev-00001".into(),
            endpoints,
            container_concurrency: 2,
            ..Activation::default()
        }],
        ..contract(
            generation,
            vec![broker("cold", &log.bootstrap, vec![egress.clone()])],
        )
    };
    let d = Dispatcher::start(&at(1, vec![]), &[]);
    let client = reqwest::Client::new();
    const EVENTS: usize = 20;
    for i in 0..EVENTS {
        let (status, _) = post_event(
            &client,
            &d.url("/default/cold"),
            &format!("c{i}"),
            "t",
            &[],
            "{}",
        )
        .await;
        assert_eq!(status, 202);
    }
    let demand = eventually(
        "the held events show as demand",
        Duration::from_secs(20),
        || {
            let stats: serde_json::Value =
                serde_json::from_str(d.admin_get("/autoscaler/stats").split("\r\n\r\n").nth(1)?)
                    .ok()?;
            let waiting = stats[0]["waiting"].as_u64()?;
            (waiting > 0).then_some(waiting)
        },
    );
    assert!(demand <= EVENTS as u64);
    assert!(
        replica.accepted().is_empty(),
        "nothing reaches a revision with no replica"
    );

    d.write_contract(&at(2, vec![replica.url()]));
    let received = replica
        .wait_for_accepted(EVENTS, Duration::from_secs(30))
        .await;
    assert_eq!(received.len(), EVENTS);
    // At each arrival, the requests that arrived within the sink's 50 ms delay before it are
    // still in flight: never more than containerConcurrency.
    let window = Duration::from_millis(50);
    let most = received
        .iter()
        .map(|r| {
            received
                .iter()
                .filter(|o| o.at <= r.at && r.at.duration_since(o.at) < window)
                .count()
        })
        .max()
        .unwrap();
    assert!(
        most <= 2,
        "{most} deliveries in flight at one replica with containerConcurrency 2"
    );
    assert_eq!(d.metric("ferry_dispatcher_egress_events_total{egress=\"Trigger default/cold\",outcome=\"dropped\"}"), 0.0);
}
