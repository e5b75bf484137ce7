//! `ferry trace --dispatcher`: the journal through a dispatcher's admin endpoint, as a user
//! runs it against a cluster through a port-forward — the embedded broker and a dispatcher in
//! this process, a recording sink from `ferry-testkit`, and `ferry` as a child process.

use std::io::BufRead;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ferry_api::contract::{
    Contract, ContractResource, DeliveryPolicy, Egress, Ingress, ObjectRef, Target,
};
use ferry_broker::{Broker, BrokerConfig};
use ferry_dispatcher::config::DispatcherConfig;
use ferry_testkit::process::{eventually, http_get};
use ferry_testkit::sink::Sink;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use serde_json::Value;

const TOPIC: &str = "orders";
const WAIT: Duration = Duration::from_secs(20);

fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env_remove("FERRY_DISPATCHER")
        .env_remove("FERRY_KAFKA")
        .output()
        .expect("ferry runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A Broker `default/orders` on `bootstrap` whose Trigger delivers everything to `sink`.
fn contract(bootstrap: &str, sink: &str) -> Contract {
    let trigger = Egress {
        uid: "trigger-all".into(),
        reference: ObjectRef::new("Trigger", "default", "all"),
        consumer_group: "group-all".into(),
        destination: Target::Url(sink.to_owned()),
        filter_attributes: Default::default(),
        filters: Vec::new(),
        delivery: DeliveryPolicy::default(),
        reply: None,
        ordering: Default::default(),
        initial_offset: ferry_api::sources::InitialOffset::Earliest,
        source: None,
    };
    Contract {
        generation: 1,
        resources: vec![ContractResource {
            uid: "broker-orders".into(),
            reference: ObjectRef::new("Broker", "default", "orders"),
            topics: vec![TOPIC.into()],
            bootstrap_servers: bootstrap.to_owned(),
            auth: None,
            ingress: Some(Ingress {
                path: "/default/orders".into(),
            }),
            egresses: vec![trigger],
        }],
        ..Contract::default()
    }
}

/// Starts `ferry trace … --follow` and hands its stdout lines over a channel.
fn follow(args: &[&str]) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .arg("--follow")
        .env_remove("FERRY_DISPATCHER")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ferry trace --follow starts");
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Lines from `rx` until they satisfy `done` (bounded by [`WAIT`]).
fn lines_until(rx: &mpsc::Receiver<String>, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no line ({e}) after {lines:?}"));
        lines.push(line);
        if done(&lines) {
            return lines;
        }
    }
}

/// Waits (bounded) for a child to exit and returns its code and stderr.
fn exited(mut child: std::process::Child) -> (Option<i32>, String) {
    let status = eventually("ferry trace --follow exits", WAIT, || {
        child.try_wait().expect("wait")
    });
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status.code(), err)
}

#[tokio::test(flavor = "multi_thread")]
async fn trace_through_the_dispatcher_reads_what_the_log_holds() {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig::local(&dir.path().join("log"), &[]).expect("flags");
    let broker = Broker::start(config).await.expect("broker");
    let bootstrap = broker.kafka_addr.to_string();
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let topic = NewTopic::new(TOPIC, 1, TopicReplication::Fixed(1));
    for r in admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .expect("create topics")
    {
        r.expect("topic created");
    }
    let sink = Sink::start().await;
    let contract_path = dir.path().join("contract.json");
    let contract = contract(&bootstrap, &sink.url());
    std::fs::write(&contract_path, serde_json::to_vec(&contract).unwrap()).unwrap();
    let mut config = DispatcherConfig::new(
        contract_path,
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    );
    config.contract_poll = Duration::from_millis(50);
    let dispatcher = ferry_dispatcher::start(config).await.expect("dispatcher");
    for _ in 0..200 {
        if dispatcher.generation() == Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(dispatcher.generation(), Some(1), "the contract applies");
    let ingress = format!("http://{}", dispatcher.http_addr.unwrap());
    let admin_addr = dispatcher.admin_addr;
    let url = format!("http://{admin_addr}");
    let rt = tokio::runtime::Handle::current();
    let children = tokio::task::spawn_blocking(move || {
        let client = reqwest::Client::new();
        let post = |id: &str| {
            let request = client
                .post(format!("{ingress}/default/orders"))
                .header("ce-specversion", "1.0")
                .header("ce-id", id)
                .header("ce-source", "/tests")
                .header("ce-type", "order.created")
                .header("content-type", "application/json")
                .body("{}");
            let response = rt.block_on(request.send()).expect("post");
            assert_eq!(response.status().as_u16(), 202, "{id} is accepted");
        };
        // Right after the post, trace waits for the journal instead of "never accepted".
        post("e-1");
        let o = ferry(&["trace", "e-1", "--dispatcher", &url, "-o", "json"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let entries: Vec<Value> = serde_json::from_slice(&o.stdout).expect("a JSON array");
        assert!(
            entries.iter().any(|e| e["outcome"] == "accepted"),
            "at once after the post: {entries:?}"
        );

        // Accepted by the Broker and delivered by the Trigger, as the log itself says.
        let entries: Vec<Value> = eventually("e-1 is delivered", WAIT, || {
            let o = ferry(&["trace", "e-1", "--dispatcher", &url, "-o", "json"]);
            let entries: Vec<Value> = serde_json::from_slice(&o.stdout).ok()?;
            entries
                .iter()
                .any(|e| e["outcome"] == "delivered")
                .then_some(entries)
        });
        assert_eq!(entries[0]["outcome"], "accepted", "{entries:?}");
        assert_eq!(entries[0]["by"], "Broker default/orders");
        assert_eq!(entries[1]["by"], "Trigger default/all");
        assert_eq!(entries[1]["code"], 202);
        for output in ["json", "table"] {
            let through = ferry(&["trace", "e-1", "--dispatcher", &url, "-o", output]);
            let direct = ferry(&["trace", "e-1", "--kafka", &bootstrap, "-o", output]);
            assert_eq!(through.status.code(), Some(0), "{}", stderr(&through));
            assert_eq!(stdout(&through), stdout(&direct), "-o {output}");
        }
        let table = stdout(&ferry(&["trace", "e-1", "--dispatcher", &url]));
        assert!(table.starts_with("TIME"), "{table}");
        assert!(table.contains("delivered"), "{table}");
        // The environment variable does what the flag does.
        let o = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["trace", "e-1", "--source", "/tests", "-o", "json"])
            .env("FERRY_DISPATCHER", &url)
            .env("FERRY_KAFKA", "127.0.0.1:1")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let o = ferry(&[
            "trace",
            "e-1",
            "--source",
            "/other",
            "--dispatcher",
            &url,
            "--wait",
            "0s",
        ]);
        assert_eq!(o.status.code(), Some(1), "another source: {}", stderr(&o));

        // An id the journal never saw: exit 1, saying so.
        let o = ferry(&[
            "trace",
            "no-such-event",
            "--dispatcher",
            &url,
            "--wait",
            "0s",
        ]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("no journal entry for event \"no-such-event\" at the dispatcher")
                && stderr(&o).contains("never accepted"),
            "{}",
            stderr(&o)
        );

        // Bad parameters get a 400 naming the parameter; ferry trace exits 2 with it.
        for (path, parameter) in [
            ("/journal/events/e-1?since=yesterday", "since: "),
            ("/journal/events/e-1?wait=5", "wait: "),
            ("/journal/events/e-1?wait=10m", "wait: "),
            ("/journal/events/e-1?follow=maybe", "follow: "),
            ("/journal/events/e-1?source=", "source: "),
            ("/journal/events/e-1?sinse=0", "sinse: "),
            ("/journal/events/", "id: "),
            ("/journal/events/%20", "id: "),
        ] {
            let response = http_get(admin_addr, path);
            assert!(response.starts_with("HTTP/1.1 400"), "{path}: {response}");
            assert!(response.contains(parameter), "{path}: {response}");
        }
        let o = ferry(&["trace", "e-1", "--dispatcher", &url, "--wait", "5m"]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("400: wait: "), "{}", stderr(&o));
        let o = ferry(&["trace", "e-1", "--dispatcher", "127.0.0.1:9090"]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let o = ferry(&["trace", "e-1", "--dispatcher", "http://127.0.0.1:1"]);
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("cannot reach the dispatcher"),
            "{}",
            stderr(&o)
        );

        // --follow prints what is there, then a later delivery; table and JSON alike.
        let (json, json_lines) = follow(&[
            "trace",
            "e-2",
            "--dispatcher",
            &url,
            "-o",
            "json",
            "--wait",
            "0s",
        ]);
        let (table, table_lines) = follow(&["trace", "e-1", "--dispatcher", &url]);
        let first = lines_until(&table_lines, |l| l.iter().any(|l| l.contains("delivered")));
        assert!(first[0].starts_with("TIME"), "{first:?}");
        post("e-2");
        // An egress may settle the event before ingress journals its ack: either order.
        let followed = lines_until(&json_lines, |lines| {
            ["\"accepted\"", "\"delivered\""]
                .iter()
                .all(|o| lines.iter().any(|l| l.contains(o)))
        });
        let outcomes: Vec<String> = followed
            .iter()
            .map(|l| {
                let e: Value = serde_json::from_str(l).expect("one JSON entry per line");
                assert_eq!(e["event_id"], "e-2");
                e["outcome"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(outcomes.len(), 2, "{outcomes:?}");
        (json, table)
    })
    .await
    .expect("the trace checks pass");

    // Stopping the dispatcher ends the follow streams (it does not wait on them), and
    // ferry trace says the stream ended: exit 3.
    let stopped = tokio::time::timeout(Duration::from_secs(15), dispatcher.shutdown()).await;
    assert!(
        stopped.is_ok(),
        "the dispatcher stops with follow streams open"
    );
    let (json, table) = children;
    for child in [json, table] {
        let (code, err) = tokio::task::spawn_blocking(move || exited(child))
            .await
            .unwrap();
        assert_eq!(code, Some(3), "{err}");
        assert!(err.contains("ended the stream"), "{err}");
    }
    drop(broker);
}
