//! OpenTelemetry traces from a real dispatcher to a real OTLP receiver: one trace per event
//! from the caller's `traceparent` through ingress, the log append, each delivery attempt,
//! the dead-letter sink and a reply, with the subscriber seeing the same trace; configured by
//! the contract (Knative's `config-observability`) or by `OTEL_*`, and switched off at run
//! time.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_api::contract::Reply;
use ferry_api::observability::{Tracing, TracingProtocol};
use ferry_testkit::otlp::{OtlpReceiver, ReceivedSpan};
use support::*;

/// Spans are exported every 100 ms instead of the SDK's 5 s.
const QUICK_EXPORT: (&str, &str) = ("OTEL_BSP_SCHEDULE_DELAY", "100");
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const WAIT: Duration = Duration::from_secs(15);

fn only_type(mut egress: ferry_api::contract::Egress, ty: &str) -> ferry_api::contract::Egress {
    egress.filter_attributes = BTreeMap::from([("type".to_owned(), ty.to_owned())]);
    egress
}

fn of_event<'s>(spans: &'s [ReceivedSpan], id: &str) -> Vec<&'s ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.attr("cloudevents.event_id") == Some(id))
        .collect()
}

fn named<'s>(spans: &[&'s ReceivedSpan], name: &str) -> Vec<&'s ReceivedSpan> {
    spans.iter().copied().filter(|s| s.name == name).collect()
}

fn by_id<'s>(spans: &'s [ReceivedSpan], id: &str) -> &'s ReceivedSpan {
    spans
        .iter()
        .find(|s| s.span_id == id)
        .unwrap_or_else(|| panic!("no span {id} among {spans:#?}"))
}

/// The (trace id, parent span id) a subscriber's `traceparent` header names.
fn traceparent_of(r: &ferry_testkit::sink::Received) -> (String, String) {
    let tp = r
        .headers
        .get("traceparent")
        .unwrap_or_else(|| panic!("no traceparent in {:?}", r.headers));
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    (parts[1].to_owned(), parts[2].to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn one_trace_from_the_caller_through_every_attempt_dead_letter_and_reply() {
    let otlp = OtlpReceiver::start().await;
    let log = Log::start().await;
    log.create_topic("orders", 1).await;
    let (flaky, broken, dls, placer, confirmations) = (
        Sink::start().await,
        Sink::start().await,
        Sink::start().await,
        Sink::start().await,
        Sink::start().await,
    );
    flaky.push(Rule::status(503).times(1));
    broken.push(Rule::status(500).body("db down"));
    let reply = {
        use cloudevents::{EventBuilder, EventBuilderV10};
        EventBuilderV10::new()
            .id("c-1")
            .source("/replier")
            .ty("order.confirmed")
            .build()
            .unwrap()
    };
    placer.push(Rule::status(200).reply(reply));

    let mut flaky_t = only_type(trigger("flaky", &flaky.url()), "flaky");
    flaky_t.delivery.retry = 2;
    let mut broken_t = only_type(trigger("broken", &broken.url()), "broken");
    broken_t.delivery.retry = 1;
    broken_t.delivery.dead_letter_sink = Some(dls.url());
    let mut placed = only_type(trigger("placed", &placer.url()), "order.placed");
    placed.reply = Some(Reply::Resource);
    let confirmed = only_type(
        trigger("confirmed", &confirmations.url()),
        "order.confirmed",
    );
    let mut c = contract(
        1,
        vec![broker(
            "orders",
            &log.bootstrap,
            vec![flaky_t, broken_t, placed, confirmed],
        )],
    );
    c.tracing = Some(Tracing {
        protocol: TracingProtocol::HttpProtobuf,
        endpoint: otlp.http_endpoint(),
        sampling_rate: 1.0,
    });
    let d = Dispatcher::start_with_env(&c, &[], &[QUICK_EXPORT]);
    let client = reqwest::Client::new();
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    for (id, ty) in [("f-1", "flaky"), ("b-1", "broken"), ("o-1", "order.placed")] {
        let (status, body) = post_event(
            &client,
            &d.url("/default/orders"),
            id,
            ty,
            &[("traceparent", &caller)],
            "{}",
        )
        .await;
        assert_eq!(status, 202, "{body}");
    }
    let delivered = accepted(&flaky, 1).await;
    accepted(&dls, 1).await;
    accepted(&confirmations, 1).await;

    // Each event: ingress ← append ← deliver ← attempts (+ dead-letter, reply).
    let spans = otlp
        .wait_for(WAIT, |s| {
            named(&of_event(s, "f-1"), "deliver")
                .first()
                .is_some_and(|d| s.iter().filter(|a| a.parent_span_id == d.span_id).count() == 2)
                && named(&of_event(s, "b-1"), "dead-letter").len() == 1
                && named(&of_event(s, "c-1"), "deliver").len() == 1
        })
        .await;
    assert!(
        spans.iter().all(|s| s.trace_id == CALLER_TRACE),
        "every span continues the caller's trace: {spans:#?}"
    );
    assert!(
        spans
            .iter()
            .all(|s| s.service == "ferry-dispatcher" && s.protocol == "http")
    );

    let flaky_spans = of_event(&spans, "f-1");
    let ingress = named(&flaky_spans, "ingress");
    assert_eq!(ingress.len(), 1, "{flaky_spans:#?}");
    let ingress = ingress[0];
    assert_eq!(ingress.parent_span_id, CALLER_SPAN, "a child of the caller");
    assert_eq!(ingress.kind, 2, "server");
    assert_eq!(
        ingress.attr("ferry.resource"),
        Some("Broker default/orders")
    );
    assert_eq!(ingress.attr("http.response.status_code"), Some("202"));
    let append = spans
        .iter()
        .find(|s| s.name == "append" && s.parent_span_id == ingress.span_id)
        .expect("the append span under ingress");
    assert_eq!(append.attr("messaging.destination.name"), Some("orders"));
    assert!(append.attr("messaging.kafka.offset").is_some());
    let deliver = named(&flaky_spans, "deliver");
    assert_eq!(deliver.len(), 1);
    let deliver = deliver[0];
    assert_eq!(
        deliver.parent_span_id, append.span_id,
        "deliveries continue the append"
    );
    assert_eq!(deliver.attr("ferry.egress"), Some("Trigger default/flaky"));
    assert_eq!(deliver.attr("ferry.outcome"), Some("delivered"));
    let mut attempts: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "attempt" && s.parent_span_id == deliver.span_id)
        .collect();
    attempts.sort_by_key(|s| s.attr("ferry.attempt").map(str::to_owned));
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert_eq!(attempts[0].attr("http.response.status_code"), Some("503"));
    assert_eq!(attempts[0].status, 2, "the failed attempt is an error");
    assert_eq!(attempts[1].attr("http.response.status_code"), Some("202"));
    assert_ne!(attempts[1].status, 2);
    assert_eq!(attempts[1].kind, 3, "client");
    // The subscriber got the second attempt's context: its spans join the trace.
    let (trace, parent) = traceparent_of(delivered.last().unwrap());
    assert_eq!(
        (trace.as_str(), parent.as_str()),
        (CALLER_TRACE, attempts[1].span_id.as_str())
    );

    // Retries exhausted, then the dead-letter sink, in the same trace.
    let broken_spans = of_event(&spans, "b-1");
    let deliver = named(&broken_spans, "deliver")[0];
    assert_eq!(deliver.attr("ferry.outcome"), Some("dead_lettered"));
    assert_eq!(deliver.status, 2);
    assert_eq!(deliver.attr("ferry.attempts"), Some("2"));
    let dead = named(&broken_spans, "dead-letter")[0];
    assert_eq!(dead.parent_span_id, deliver.span_id);
    let to_dls = spans
        .iter()
        .find(|s| s.name == "attempt" && s.parent_span_id == dead.span_id)
        .expect("the dead-letter sink's attempt");
    let (trace, parent) = traceparent_of(&accepted(&dls, 1).await[0]);
    assert_eq!(
        (trace.as_str(), parent.as_str()),
        (CALLER_TRACE, to_dls.span_id.as_str())
    );

    // The reply went back into the Broker under a `reply` span; its delivery continues it.
    let reply = spans
        .iter()
        .find(|s| s.name == "reply")
        .expect("a reply span");
    assert_eq!(
        by_id(&spans, &reply.parent_span_id).attr("ferry.egress"),
        Some("Trigger default/placed")
    );
    let confirmed = named(&of_event(&spans, "c-1"), "deliver")[0];
    assert_eq!(confirmed.parent_span_id, reply.span_id);
    drop(d);
}

#[tokio::test(flavor = "multi_thread")]
async fn otel_variables_start_grpc_export_and_the_contract_turns_it_off() {
    let otlp = OtlpReceiver::start().await;
    let log = Log::start().await;
    log.create_topic("orders", 1).await;
    let sink = Sink::start().await;
    let c = contract(
        1,
        vec![broker(
            "orders",
            &log.bootstrap,
            vec![trigger("all", &sink.url())],
        )],
    );
    let endpoint = otlp.grpc_endpoint();
    let d = Dispatcher::start_with_env(
        &c,
        &[],
        &[
            QUICK_EXPORT,
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_SERVICE_NAME", "dispatcher-a"),
        ],
    );
    let client = reqwest::Client::new();
    let url = d.url("/default/orders");
    assert_eq!(
        post_event(&client, &url, "g-1", "t", &[], "{}").await.0,
        202
    );
    let got = accepted(&sink, 1).await;
    let spans = otlp
        .wait_for(WAIT, |s| {
            named(&of_event(s, "g-1"), "deliver")
                .first()
                .is_some_and(|d| s.iter().any(|a| a.parent_span_id == d.span_id))
        })
        .await;
    let mine = of_event(&spans, "g-1");
    let ingress = named(&mine, "ingress");
    assert_eq!(ingress.len(), 1, "{spans:#?}");
    assert_eq!(
        ingress[0].parent_span_id, "",
        "no caller context: a new trace"
    );
    assert!(
        mine.iter()
            .all(|s| s.protocol == "grpc" && s.service == "dispatcher-a")
    );
    let (trace, _) = traceparent_of(&got[0]);
    assert_eq!(
        trace, ingress[0].trace_id,
        "the subscriber joins the new trace"
    );

    // config-observability says none: the next event makes no span, and the subscriber gets
    // no traceparent (the event had none of its own).
    let mut off = c.clone();
    off.generation = 2;
    off.tracing = Some(Tracing::default());
    d.write_contract(&off);
    d.wait_for_generation(2);
    assert_eq!(
        post_event(&client, &url, "g-2", "t", &[], "{}").await.0,
        202
    );
    let got = accepted(&sink, 2).await;
    assert!(
        !got[1].headers.contains_key("traceparent"),
        "{:?}",
        got[1].headers
    );
    // Whatever was buffered has had time to go; nothing came for g-2.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(of_event(&otlp.spans(), "g-2").is_empty());
    // With tracing off, a caller's traceparent is passed through untouched.
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    assert_eq!(
        post_event(&client, &url, "g-3", "t", &[("traceparent", &caller)], "{}")
            .await
            .0,
        202
    );
    let got = accepted(&sink, 3).await;
    assert_eq!(got[2].headers.get("traceparent"), Some(&caller));
    drop(d);
}
