//! The sink over real loopback HTTP/1.1, spoken by hand so no client library is needed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cloudevents::{EventBuilder, EventBuilderV10};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Rule, Sink};

const WAIT: Duration = Duration::from_secs(5);

/// POSTs `body` after the `head` lines; returns the status and the whole response.
async fn post(addr: SocketAddr, path: &str, head: &str, body: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: sink\r\nConnection: close\r\n{head}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_string(&mut response));
    read.await.expect("answered in time").expect("read");
    (response[9..12].parse().expect("status code"), response)
}

/// POSTs a binary-mode event with this id.
async fn post_event(addr: SocketAddr, id: &str) -> u16 {
    let head = format!(
        "ce-specversion: 1.0\r\nce-id: {id}\r\nce-source: /orders\r\nce-type: order.created\r\n\
         content-type: application/json\r\n"
    );
    post(addr, "/", &head, r#"{"n":1}"#).await.0
}

#[tokio::test]
async fn a_limited_rule_fails_twice_then_the_sink_accepts() {
    let sink = Sink::start().await;
    sink.push(Rule::status(503).times(2).retry_after("1"));

    let mut statuses = Vec::new();
    for id in ["a", "b", "c"] {
        statuses.push(post_event(sink.addr(), id).await);
    }

    assert_eq!(statuses, [503, 503, 202]);
    let received = sink.received();
    let ids: Vec<_> = received.iter().filter_map(|r| r.attr("id")).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert_eq!(received[2].data(), br#"{"n":1}"#);
    assert_eq!(
        sink.wait_for_accepted(1, WAIT).await[0].attr("id").unwrap(),
        "c"
    );
}

#[tokio::test]
async fn rules_match_attributes_reply_events_and_record_non_events() {
    let sink = Sink::start().await;
    let reply = EventBuilderV10::new()
        .id("r-1")
        .source("/sink")
        .ty("order.confirmed");
    let rule = Rule::status(200).when("type", "order.created");
    sink.push(rule.reply(reply.build().expect("reply event")));

    let structured = r#"{"specversion":"1.0","id":"s-1","source":"/x","type":"order.created"}"#;
    let head = "content-type: application/cloudevents+json\r\n";
    let (status, response) = post(sink.addr(), "/orders", head, structured).await;
    assert_eq!(status, 200);
    assert!(response.contains("ce-id: r-1"), "{response}");
    assert_eq!(post(sink.addr(), "/other", "", "not an event").await.0, 202);

    let received = sink.wait_for_received(2, WAIT).await;
    assert_eq!(received[0].path, "/orders");
    assert_eq!(received[0].attr("id").as_deref(), Some("s-1"));
    assert!(received[1].event.is_err());
    assert_eq!(received[1].data(), b"not an event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_answer_does_not_hold_up_other_requests() {
    let sink = Sink::start().await;
    sink.push(
        Rule::status(200)
            .when("id", "slow")
            .delay(Duration::from_secs(3)),
    );
    let slow = tokio::spawn(post_event(sink.addr(), "slow"));
    sink.wait_for_received(1, WAIT).await;

    let started = Instant::now();
    assert_eq!(post_event(sink.addr(), "fast").await, 202);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(slow.await.expect("slow request"), 200);
}

#[tokio::test]
#[should_panic(expected = "got 0 accepted of 1 received")]
async fn waiting_too_long_says_what_arrived() {
    let sink = Sink::start().await;
    sink.push(Rule::status(500));
    post_event(sink.addr(), "x").await;
    sink.wait_for_accepted(1, Duration::from_millis(200)).await;
}
