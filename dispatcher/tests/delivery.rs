//! Egress against real sinks: Knative's retry table, dead letters with their extensions,
//! dropped events, Retry-After, replies, every filter dialect, traffic splitting.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_api::contract::{ContractResource, Egress, ObjectRef, Reply, RevisionTarget, Target};
use ferry_api::duck::BackoffPolicy;
use support::*;

fn only_type(mut egress: Egress, ty: &str) -> Egress {
    egress.filter_attributes = BTreeMap::from([("type".to_owned(), ty.to_owned())]);
    egress
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_dead_letters_and_drops_follow_knatives_rules() {
    let log = Log::start().await;
    log.create_topic("orders", 1).await;
    let (flaky, refuses, broken, gone, dls) = (
        Sink::start().await,
        Sink::start().await,
        Sink::start().await,
        Sink::start().await,
        Sink::start().await,
    );
    flaky.push(Rule::status(503).times(2));
    refuses.push(Rule::status(400).body("bad order"));
    broken.push(Rule::status(500).body("db down"));
    gone.push(Rule::status(500));

    let mut t_flaky = only_type(trigger("flaky", &flaky.url()), "flaky");
    t_flaky.delivery.retry = 3;
    let mut t_refuses = only_type(trigger("refuses", &refuses.url()), "refuses");
    t_refuses.delivery.retry = 3;
    t_refuses.delivery.dead_letter_sink = Some(dls.url());
    let mut t_broken = only_type(trigger("broken", &broken.url()), "broken");
    t_broken.delivery.retry = 2;
    t_broken.delivery.backoff_policy = BackoffPolicy::Linear;
    t_broken.delivery.dead_letter_sink = Some(dls.url());
    let t_gone = only_type(trigger("gone", &gone.url()), "gone");

    let egresses = vec![t_flaky, t_refuses, t_broken, t_gone];
    let d = Dispatcher::start(
        &contract(1, vec![broker("orders", &log.bootstrap, egresses)]),
        &[],
    );
    let client = reqwest::Client::new();
    for ty in ["flaky", "refuses", "broken", "gone"] {
        let (status, _) = post_event(
            &client,
            &d.url("/default/orders"),
            &format!("{ty}-1"),
            ty,
            &[],
            r#"{"sku":"A"}"#,
        )
        .await;
        assert_eq!(status, 202);
    }

    // 503 twice, then accepted: three attempts, delivered once.
    let got = accepted(&flaky, 1).await;
    assert_eq!(got[0].attr("id").as_deref(), Some("flaky-1"));
    assert_eq!(flaky.received().len(), 3);

    // 400 is not retried: straight to the dead-letter sink; 500 is retried twice first.
    let dead = accepted(&dls, 2).await;
    let by_id = |id: &str| {
        dead.iter()
            .find(|r| r.attr("id").as_deref() == Some(id))
            .unwrap_or_else(|| panic!("{id} dead-lettered"))
    };
    let refused = by_id("refuses-1");
    assert_eq!(refused.attr("knativeerrordest"), Some(refuses.url()));
    assert_eq!(refused.attr("knativeerrorcode").as_deref(), Some("400"));
    assert_eq!(
        refused.attr("knativeerrordata").as_deref(),
        Some("bad order")
    );
    assert_eq!(
        refused.data(),
        br#"{"sku":"A"}"#,
        "the original data travels with it"
    );
    assert_eq!(refuses.received().len(), 1, "400 is not retried");
    let broke = by_id("broken-1");
    assert_eq!(broke.attr("knativeerrorcode").as_deref(), Some("500"));
    assert_eq!(broke.attr("knativeerrordata").as_deref(), Some("db down"));
    assert_eq!(broken.received().len(), 3, "first attempt + retry 2");

    // No dead-letter sink: dropped, counted.
    eventually("the drop is counted", Duration::from_secs(10), || {
        (d.metric("ferry_dispatcher_egress_events_total{egress=\"Trigger default/gone\",outcome=\"dropped\"}") == 1.0).then_some(())
    });
    assert_eq!(gone.received().len(), 1, "retry 0 = one attempt");
    assert_eq!(d.metric("ferry_dispatcher_egress_events_total{egress=\"Trigger default/flaky\",outcome=\"retried\"}"), 2.0);
    assert_eq!(d.metric("ferry_dispatcher_egress_events_total{egress=\"Trigger default/broken\",outcome=\"dead_lettered\"}"), 1.0);

    // The same events under Knative's Kafka-broker names and labels.
    let metrics = d.admin_get("/metrics");
    let knative = |metric: &str, labels: &[(&str, &str)]| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(&format!("{metric}{{")))
            .filter(|l| {
                // An empty value: the label must be absent.
                labels.iter().all(|(k, v)| match *v {
                    "" => !l.contains(&format!("{k}=")),
                    v => l.contains(&format!("{k}=\"{v}\"")),
                })
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let broker = [("name", "orders"), ("namespace_name", "default")];
    let ingress = [
        broker[0],
        broker[1],
        ("response_code", "202"),
        ("response_code_class", "2xx"),
        ("consumer_name", ""),
    ];
    assert_eq!(
        knative(
            "event_count_1_total",
            &[&ingress[..], &[("event_type", "flaky")]].concat()
        ),
        1.0,
        "{metrics}"
    );
    let flaky_503 = [
        broker[0],
        broker[1],
        ("consumer_name", "flaky"),
        ("response_code", "503"),
    ];
    assert_eq!(knative("event_count_1_total", &flaky_503), 2.0, "{metrics}");
    let flaky_2xx = [
        broker[0],
        broker[1],
        ("consumer_name", "flaky"),
        ("response_code_class", "2xx"),
    ];
    assert_eq!(knative("event_count_1_total", &flaky_2xx), 1.0, "{metrics}");
    assert_eq!(
        knative(
            "event_dispatch_latencies_ms_count",
            &[("consumer_name", "broken"), ("response_code", "500")]
        ),
        3.0,
        "three attempts timed"
    );
    assert!(
        metrics.contains("event_dispatch_latencies_ms_bucket{") && metrics.contains("le=\"50.0\""),
        "Knative's buckets in ms: {metrics}"
    );
    assert_eq!(
        knative(
            "event_processing_latencies_ms_count",
            &[("consumer_name", "refuses"), ("event_type", "refuses")]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_is_honoured_and_capped() {
    let log = Log::start().await;
    log.create_topic("orders", 1).await;
    let (honours, capped) = (Sink::start().await, Sink::start().await);
    honours.push(Rule::status(429).retry_after("1").times(1));
    capped.push(Rule::status(503).retry_after("30").times(1));
    let mut a = only_type(trigger("honours", &honours.url()), "a");
    a.delivery.retry = 1;
    let mut b = only_type(trigger("capped", &capped.url()), "b");
    b.delivery.retry = 1;
    b.delivery.retry_after_max_ms = Some(300);
    let d = Dispatcher::start(
        &contract(1, vec![broker("orders", &log.bootstrap, vec![a, b])]),
        &[],
    );
    let client = reqwest::Client::new();
    post_event(&client, &d.url("/default/orders"), "a-1", "a", &[], "{}").await;
    post_event(&client, &d.url("/default/orders"), "b-1", "b", &[], "{}").await;
    for (sink, at_least, below) in [(&honours, 950, 5_000), (&capped, 280, 5_000)] {
        accepted(sink, 1).await;
        let r = sink.received();
        let gap = r[1].at.duration_since(r[0].at).as_millis();
        assert!(
            gap >= at_least && gap < below,
            "retry came {gap} ms after the first attempt"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replies_go_back_into_the_broker_and_to_reply_urls() {
    let log = Log::start().await;
    log.create_topic("orders", 1).await;
    log.create_topic("audit", 1).await;
    let (placer, confirmations, echo, replies) = (
        Sink::start().await,
        Sink::start().await,
        Sink::start().await,
        Sink::start().await,
    );
    let reply = |id: &str, ty: &str| {
        use cloudevents::{EventBuilder, EventBuilderV10};
        EventBuilderV10::new()
            .id(id)
            .source("/replier")
            .ty(ty)
            .data("text/plain", "ok")
            .build()
            .unwrap()
    };
    placer.push(Rule::status(200).reply(reply("c-1", "order.confirmed")));
    echo.push(Rule::status(200).reply(reply("e-1", "audit.echo")));

    let mut placed = only_type(trigger("placed", &placer.url()), "order.placed");
    placed.reply = Some(Reply::Resource);
    let confirmed = only_type(
        trigger("confirmed", &confirmations.url()),
        "order.confirmed",
    );
    let mut subscription = trigger("archive", &echo.url());
    subscription.reference = ObjectRef::new("Subscription", "default", "archive");
    subscription.reply = Some(Reply::Url(replies.url()));
    let channel = ContractResource {
        reference: ObjectRef::new("KafkaChannel", "default", "audit"),
        uid: "channel-audit".into(),
        ..broker("audit", &log.bootstrap, vec![subscription])
    };
    let d = Dispatcher::start(
        &contract(
            1,
            vec![
                broker("orders", &log.bootstrap, vec![placed, confirmed]),
                channel,
            ],
        ),
        &[],
    );
    let client = reqwest::Client::new();
    assert_eq!(
        post_event(
            &client,
            &d.url("/default/orders"),
            "o-1",
            "order.placed",
            &[],
            "{}"
        )
        .await
        .0,
        202
    );
    assert_eq!(
        post_event(
            &client,
            &d.url("/default/audit"),
            "a-1",
            "audit.entry",
            &[],
            "{}"
        )
        .await
        .0,
        202
    );

    let got = accepted(&confirmations, 1).await;
    assert_eq!(
        got[0].attr("id").as_deref(),
        Some("c-1"),
        "the Trigger's reply came back through the Broker"
    );
    let got = accepted(&replies, 1).await;
    assert_eq!(
        got[0].attr("type").as_deref(),
        Some("audit.echo"),
        "the Subscription's reply went to spec.reply"
    );
    assert_eq!(
        log.records("orders", 1),
        2,
        "the reply is stored in the broker's topic"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_filter_dialect() {
    let log = Log::start().await;
    log.create_topic("orders", 1).await;
    let table: [(&str, &str, &[&str]); 8] = [
        ("legacy", r#"null"#, &["1", "3"]),
        (
            "exact",
            r#"{"exact": {"type": "order.created"}}"#,
            &["1", "3"],
        ),
        (
            "prefix",
            r#"{"prefix": {"type": "order."}}"#,
            &["1", "2", "3"],
        ),
        ("suffix", r#"{"suffix": {"source": "/eu"}}"#, &["1", "2"]),
        (
            "all",
            r#"{"all": [{"prefix": {"type": "order."}}, {"exact": {"region": "eu"}}]}"#,
            &["1", "2"],
        ),
        (
            "any",
            r#"{"any": [{"exact": {"type": "user.deleted"}}, {"exact": {"region": "us"}}]}"#,
            &["3", "4"],
        ),
        ("not", r#"{"not": {"prefix": {"type": "order."}}}"#, &["4"]),
        (
            "cesql",
            r#"{"cesql": "type LIKE 'order.%' AND amount > 10"}"#,
            &["2", "3"],
        ),
    ];
    let mut sinks = Vec::new();
    let mut egresses = Vec::new();
    for (name, filter, _) in &table {
        let sink = Sink::start().await;
        let mut egress = trigger(name, &sink.url());
        if *name == "legacy" {
            egress.filter_attributes = BTreeMap::from([
                ("type".to_owned(), "order.created".to_owned()),
                ("region".to_owned(), String::new()),
            ]);
        } else {
            egress.filters = vec![serde_json::from_str(filter).unwrap()];
        }
        egresses.push(egress);
        sinks.push(sink);
    }
    let d = Dispatcher::start(
        &contract(1, vec![broker("orders", &log.bootstrap, egresses)]),
        &[],
    );
    let client = reqwest::Client::new();
    let events = [
        ("1", "order.created", "/shop/eu", "eu", "5"),
        ("2", "order.shipped", "/shop/eu", "eu", "20"),
        ("3", "order.created", "/shop/us", "us", "30"),
        ("4", "user.deleted", "/users", "us", "0"),
    ];
    for (id, ty, source, region, amount) in events {
        let response = client
            .post(d.url("/default/orders"))
            .header("ce-specversion", "1.0")
            .header("ce-id", id)
            .header("ce-source", source)
            .header("ce-type", ty)
            .header("ce-region", region)
            .header("ce-amount", amount)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }
    // Each sink gets exactly the events its filter lets through.
    for ((name, _, want), sink) in table.iter().zip(&sinks) {
        let got = accepted(sink, want.len()).await;
        let mut ids: Vec<String> = got.iter().filter_map(|r| r.attr("id")).collect();
        ids.sort();
        assert_eq!(ids, *want, "filter {name}");
    }
    // Nothing more arrives once the filtered-out events have been settled.
    eventually("all events settled", Duration::from_secs(10), || {
        let filtered = d
            .admin_get("/metrics")
            .lines()
            .filter(|l| l.contains("outcome=\"filtered\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        let expected: usize = table.iter().map(|(_, _, want)| 4 - want.len()).sum();
        (filtered as usize == expected).then_some(())
    });
    for ((name, _, want), sink) in table.iter().zip(&sinks) {
        assert_eq!(
            sink.received().len(),
            want.len(),
            "filter {name} let nothing else through"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn traffic_split_follows_percents() {
    let log = Log::start().await;
    log.create_topic("orders", 1).await;
    let (blue, green) = (Sink::start().await, Sink::start().await);
    let mut split = trigger("split", "http://unused/");
    split.destination = Target::Revisions(vec![
        RevisionTarget {
            revision: "app-1".into(),
            url: blue.url(),
            percent: 80,
        },
        RevisionTarget {
            revision: "app-2".into(),
            url: green.url(),
            percent: 20,
        },
    ]);
    let d = Dispatcher::start(
        &contract(1, vec![broker("orders", &log.bootstrap, vec![split])]),
        &["--traffic-seed", "42"],
    );
    let client = reqwest::Client::new();
    for i in 0..200 {
        assert_eq!(
            post_event(
                &client,
                &d.url("/default/orders"),
                &i.to_string(),
                "t",
                &[],
                "{}"
            )
            .await
            .0,
            202
        );
    }
    eventually("200 deliveries", Duration::from_secs(20), || {
        (blue.accepted().len() + green.accepted().len() == 200).then_some(())
    });
    let b = blue.accepted().len();
    assert!((130..=190).contains(&b), "blue (80%) got {b} of 200");
}

#[tokio::test(flavor = "multi_thread")]
async fn timeouts_are_retried_structured_format_and_traceparent_carried() {
    let log = Log::start().await;
    log.create_topic("orders", 1).await;
    let (slow, structured) = (Sink::start().await, Sink::start().await);
    slow.push(
        Rule::status(202)
            .delay(Duration::from_millis(1500))
            .times(1),
    );
    let mut t_slow = only_type(trigger("slow", &slow.url()), "slow");
    t_slow.delivery.retry = 1;
    t_slow.delivery.timeout_ms = 300;
    let mut t_json = only_type(trigger("json", &structured.url()), "json");
    t_json.delivery.format = ferry_api::duck::DeliveryFormat::Json;
    let d = Dispatcher::start(
        &contract(
            1,
            vec![broker("orders", &log.bootstrap, vec![t_slow, t_json])],
        ),
        &[],
    );
    let client = reqwest::Client::new();
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    post_event(
        &client,
        &d.url("/default/orders"),
        "s-1",
        "slow",
        &[("traceparent", traceparent)],
        "{}",
    )
    .await;
    post_event(
        &client,
        &d.url("/default/orders"),
        "j-1",
        "json",
        &[],
        r#"{"a":1}"#,
    )
    .await;

    // The first attempt times out after 300 ms (the sink answers it late); the retry succeeds.
    let got = slow.wait_for_received(2, Duration::from_secs(15)).await;
    let gap = got[1].at.duration_since(got[0].at).as_millis();
    assert!(
        (250..1400).contains(&gap),
        "the retry came {gap} ms after the first attempt, not after the sink's answer"
    );
    // traceparent travels from the ingress request to every delivery attempt.
    assert_eq!(
        got[1].headers.get("traceparent").map(String::as_str),
        Some(traceparent)
    );
    assert_eq!(got[1].attr("traceparent").as_deref(), Some(traceparent));

    let got = accepted(&structured, 1).await;
    assert_eq!(
        got[0].headers.get("content-type").map(String::as_str),
        Some("application/cloudevents+json")
    );
    assert_eq!(got[0].attr("id").as_deref(), Some("j-1"));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&got[0].data()).unwrap(),
        serde_json::json!({"a": 1})
    );
}

/// Deliveries follow redirects as Knative's dispatcher (Go's HTTP client) does: `307`/`308`
/// keep the POST and its event, `301`/`302`/`303` become a `GET` without the body, each hop
/// carries a `Referer`, credentials from a URL's user info go only to their host, and more
/// than 10 hops fail the attempt.
#[tokio::test(flavor = "multi_thread")]
async fn redirects_are_followed_as_knatives_dispatcher_does() {
    let log = Log::start().await;
    log.create_topic("orders", 1).await;
    let (sink, other, dls) = (
        Sink::start().await,
        Sink::start().await,
        Sink::start().await,
    );
    sink.push(Rule::status(307).at("/old").location("/new"));
    sink.push(Rule::status(303).at("/see").location("/other"));
    sink.push(Rule::status(302).at("/loop").location("/loop"));
    sink.push(
        Rule::status(308)
            .at("/away")
            .location(&other.url_for("/there")),
    );
    let with_user = sink
        .url_for("/away")
        .replace("http://", "http://al%40ice:s3cret@");
    let mut t_loop = only_type(trigger("loop", &sink.url_for("/loop")), "loop");
    t_loop.delivery.retry = 0;
    t_loop.delivery.dead_letter_sink = Some(dls.url());
    let d = Dispatcher::start(
        &contract(
            1,
            vec![broker(
                "orders",
                &log.bootstrap,
                vec![
                    only_type(trigger("old", &sink.url_for("/old")), "old"),
                    only_type(trigger("see", &sink.url_for("/see")), "see"),
                    t_loop,
                    only_type(trigger("away", &with_user), "away"),
                ],
            )],
        ),
        &[],
    );
    let client = reqwest::Client::new();
    for ty in ["old", "see", "loop", "away"] {
        let id = format!("{ty}-1");
        post_event(&client, &d.url("/default/orders"), &id, ty, &[], "{}").await;
    }

    // /old, /new, /see, /other, /away, and /loop 11 times.
    sink.wait_for_received(16, Duration::from_secs(20)).await;
    let got = dls.wait_for_accepted(1, Duration::from_secs(20)).await;
    assert_eq!(got[0].attr("id").as_deref(), Some("loop-1"));
    assert_eq!(
        got[0].attr("knativeerrordest").as_deref(),
        Some(sink.url_for("/loop").as_str()),
        "the 11th redirect fails the attempt and the event is dead-lettered"
    );
    let at = |path: &str| -> Vec<_> {
        sink.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    };
    assert_eq!(at("/loop").len(), 11, "the first request and 10 redirects");
    // 307: the same POST, event and all, at the new path, with the old URL as Referer.
    let new = at("/new");
    assert_eq!(new.len(), 1);
    assert_eq!(new[0].method, "POST");
    assert_eq!(new[0].attr("id").as_deref(), Some("old-1"));
    assert_eq!(
        new[0].headers.get("referer").map(String::as_str),
        Some(sink.url_for("/old").as_str())
    );
    // 303: a GET without the event's body or content headers.
    let other_path = at("/other");
    assert_eq!(other_path.len(), 1);
    assert_eq!(other_path[0].method, "GET");
    assert!(other_path[0].body.is_empty());
    assert!(!other_path[0].headers.contains_key("content-type"));
    assert!(!other_path[0].headers.contains_key("content-length"));
    // User info is sent as basic authentication to its own host only; 308 keeps the POST.
    let away = at("/away");
    assert_eq!(away.len(), 1);
    assert_eq!(
        away[0].headers.get("authorization").map(String::as_str),
        Some("Basic YWxAaWNlOnMzY3JldA=="),
        "base64 of al@ice:s3cret"
    );
    let there = other.wait_for_accepted(1, Duration::from_secs(10)).await;
    assert_eq!(there[0].path, "/there");
    assert_eq!(there[0].method, "POST");
    assert_eq!(there[0].attr("id").as_deref(), Some("away-1"));
    assert!(!there[0].headers.contains_key("authorization"));
    assert_eq!(
        there[0].headers.get("referer").map(String::as_str),
        Some(sink.url_for("/away").as_str())
    );
    eventually(
        "the redirected events count as delivered",
        Duration::from_secs(10),
        || {
            ["old", "see", "away"]
            .iter()
            .all(|t| {
                d.metric(&format!("ferry_dispatcher_egress_events_total{{egress=\"Trigger default/{t}\",outcome=\"delivered\"}}")) == 1.0
            })
            .then_some(())
        },
    );
}
