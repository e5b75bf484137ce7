//! kill -9 of the dispatcher mid-stream: after a restart every accepted event is delivered at
//! least once, and the duplicates stay within what was in flight or settled but not yet
//! committed when it died.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use support::*;

const EVENTS: usize = 400;
const MAX_IN_FLIGHT: usize = 16;
const COMMIT_MS: u64 = 100;
const SINK_DELAY_MS: u64 = 50;

#[tokio::test(flavor = "multi_thread")]
async fn every_accepted_event_is_delivered_after_sigkill() {
    let log = Log::start().await;
    log.create_topic("orders", 2).await;
    let sink = Sink::start().await;
    sink.push(Rule::status(202).delay(Duration::from_millis(SINK_DELAY_MS)));
    let flags = ["--max-in-flight", "16", "--commit-interval", "100ms"];
    // Accept everything first, then start delivering, so that the kill lands mid-stream.
    let mut d = Dispatcher::start(
        &contract(1, vec![broker("orders", &log.bootstrap, vec![])]),
        &flags,
    );
    let client = reqwest::Client::new();
    for i in 0..EVENTS {
        let (status, body) = post_event(
            &client,
            &d.url("/default/orders"),
            &format!("e-{i}"),
            "t",
            &[("ce-partitionkey", &format!("k{}", i % 7))],
            "{}",
        )
        .await;
        assert_eq!(status, 202, "{body}");
    }
    d.write_contract(&contract(
        2,
        vec![broker(
            "orders",
            &log.bootstrap,
            vec![trigger("t", &sink.url())],
        )],
    ));
    // Let delivery get going, then kill it without warning.
    sink.wait_for_accepted(EVENTS / 4, Duration::from_secs(30))
        .await;
    d.kill9();
    let before = sink.accepted().len();
    assert!(
        before < EVENTS,
        "the kill came mid-stream ({before} of {EVENTS} delivered)"
    );
    d.restart();

    eventually("every event delivered", Duration::from_secs(60), || {
        let ids: std::collections::HashSet<String> = sink
            .accepted()
            .iter()
            .filter_map(|r| r.attr("id"))
            .collect();
        (ids.len() == EVENTS).then_some(())
    });
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in sink.accepted() {
        *counts.entry(r.attr("id").unwrap()).or_default() += 1;
    }
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    // In flight (per partition consumer, all partitions share one bound) plus what settled in
    // the last commit interval: at most MAX_IN_FLIGHT per SINK_DELAY_MS.
    let bound = MAX_IN_FLIGHT + MAX_IN_FLIGHT * (COMMIT_MS / SINK_DELAY_MS + 1) as usize;
    eprintln!(
        "delivered before kill: {before}; duplicates after restart: {duplicates} (bound {bound})"
    );
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates, more than {bound}"
    );
    d.stop();
}
