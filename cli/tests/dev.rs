//! `ferry dev` as a user runs it: the real binary on the cart example, driven over HTTP with
//! `ferry send` and `ferry replay`, and its refusals of bad input.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use ferry_testkit::otlp::{OtlpReceiver, ReceivedSpan};
use ferry_testkit::process::eventually;
use ferry_testkit::sink::Sink;
use serde_json::Value;
use support::*;

fn send(ingress: &str, ty: &str, data: &str) {
    send_id(ingress, ty, data, &uuid::Uuid::new_v4().to_string());
}

fn send_id(ingress: &str, ty: &str, data: &str, id: &str) {
    let o = ferry(&[
        "send",
        "--id",
        id,
        "default/default",
        "--ingress",
        ingress,
        "--type",
        ty,
        "--source",
        "/shop",
        "--ext",
        "partitionkey=c1",
        "--data",
        data,
    ]);
    assert!(o.status.success(), "send {ty}: {}", stderr(&o));
}

fn cart(service: &str, id: &str) -> Option<Value> {
    match http::get(&format!("{service}/carts/{id}"))? {
        (200, body) => Some(body),
        _ => None,
    }
}

#[test]
fn cart_walkthrough_replay_and_traffic_split() {
    let bin = example_binaries();
    let dir = tempfile::tempdir().unwrap();
    let manifests = example("cart", dir.path(), &bin, &[]);
    let dev = Dev::start(&manifests, &dir.path().join("data"), &[]);
    let status = dev.ready();
    let ingress = dev.ingress();
    assert_eq!(status["ingress"], ingress.as_str());
    // A second ferry dev on the same data directory is refused and changes nothing.
    let data = dir.path().join("data");
    let second = ferry(&[
        "dev",
        "-f",
        &manifests.to_string_lossy(),
        "--data-dir",
        &data.to_string_lossy(),
        "--ingress",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--broker-listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(second.status.code(), Some(3), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("another ferry dev is using"),
        "{}",
        stderr(&second)
    );
    assert_eq!(dev.status().unwrap()["generation"], status["generation"]);
    // The contract may carry KafkaSources' credentials: its owner's only.
    let mode = std::fs::metadata(data.join("contract.json"))
        .expect("the contract file")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let broker = dev.row("Broker", "default").unwrap();
    assert_eq!(broker["url"], format!("{ingress}/default/default"));

    // Create cart, add A, add B, remove A → the cart holds B.
    send(&ingress, "com.example.cart.created", r#"{"cart":"c1"}"#);
    send(
        &ingress,
        "com.example.cart.item.added",
        r#"{"cart":"c1","item":"A"}"#,
    );
    send(
        &ingress,
        "com.example.cart.item.added",
        r#"{"cart":"c1","item":"B"}"#,
    );
    send(
        &ingress,
        "com.example.cart.item.removed",
        r#"{"cart":"c1","item":"A"}"#,
    );
    let service = dev.url("Service", "cart-projection");
    let want = serde_json::json!({"cart": "c1", "created": true, "events": 4, "items": {"B": 1},
        "revisions": {"cart-projection-00001": 4}});
    eventually("the projection holds B", WAIT, || {
        cart(&service, "c1").filter(|c| *c == want)
    });

    // An event the projection rejects (400, not retried) goes to the dead-letter sink.

    send_id(
        &ingress,
        "com.example.cart.item.added",
        r#"{"cart":"not a cart id","item":"A"}"#,
        "bad-1",
    );
    let recorder = dev.url("Service", "dead-letters");
    let dead = eventually("the bad event is dead-lettered", WAIT, || {
        let (_, events) = http::get(&format!("{recorder}/events"))?;
        events.as_array()?.first().cloned()
    });
    assert_eq!(dead["knativeerrorcode"], "400");
    assert!(
        dead["knativeerrordata"]
            .as_str()
            .unwrap()
            .contains("invalid cart id"),
        "{dead}"
    );

    // `ferry trace` says where it went: stored by the Broker, filtered out by one Trigger,
    // dead-lettered by the other after the 400.
    let kafka = dev.process.as_ref().unwrap().addr("kafka").to_string();
    let trace = |id: &str| ferry(&["trace", id, "--kafka", &kafka, "-o", "json"]);
    let entries: Vec<Value> = eventually("the journal holds the bad event", WAIT, || {
        let o = trace("bad-1");
        let entries: Vec<Value> = serde_json::from_slice(&o.stdout).ok()?;
        (entries.len() >= 3).then_some(entries)
    });
    let find = |by: &str| {
        entries
            .iter()
            .find(|e| e["by"] == by)
            .unwrap_or_else(|| panic!("no entry by {by} in {entries:?}"))
    };
    let accepted = find("Broker default/default");
    assert_eq!(accepted["outcome"], "accepted");
    assert_eq!(accepted["topic"], "knative-broker-default-default");
    assert_eq!(find("Trigger default/cart-created")["outcome"], "filtered");
    let items = find("Trigger default/cart-items");
    assert_eq!(items["outcome"], "dead_lettered");
    assert_eq!(items["code"], 400);
    assert_eq!(items["attempts"], 1);
    assert_eq!(items["offset"], accepted["offset"]);
    assert!(items["dead_letter_sink"].as_str().is_some());
    let o = trace("no-such-event");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("no journal entry"), "{}", stderr(&o));

    // Wipe the projection, replay both triggers from the log → B again.
    assert_eq!(http::delete(&format!("{service}/carts")), Some(204));
    assert_eq!(
        http::get(&format!("{service}/carts/c1")).map(|r| r.0),
        Some(404)
    );
    let contract = dir.path().join("data/contract.json");
    for trigger in ["default/cart-created", "default/cart-items"] {
        let o = ferry(&[
            "replay",
            trigger,
            "--from",
            "earliest",
            "--contract",
            &contract.to_string_lossy(),
            "-o",
            "json",
        ]);
        let summary: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("replay prints JSON ({e}): {}", stderr(&o)));
        // The rejected event matches cart-items and is dead-lettered again: exit 1 says so.
        let (delivered, dead_lettered) = if trigger.ends_with("items") {
            (3, 1)
        } else {
            (1, 0)
        };
        assert_eq!(summary["total"], 5, "{summary}");
        assert_eq!(summary["delivered"], delivered, "{summary}");
        assert_eq!(summary["dead_lettered"], dead_lettered, "{summary}");
        assert_eq!(
            o.status.code(),
            Some(if dead_lettered == 0 { 0 } else { 1 })
        );
    }
    assert_eq!(cart(&service, "c1"), Some(want));
    let o = ferry(&[
        "replay",
        "default/nope",
        "--from",
        "0",
        "--contract",
        &contract.to_string_lossy(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("default/cart-items"), "{}", stderr(&o));

    // Right after `ferry send`, `ferry trace` waits for the journal instead of answering
    // "never accepted"; `--follow` prints the deliveries as they are written.
    let mut follow = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "trace", "fresh-1", "--kafka", &kafka, "-o", "json", "--follow",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("ferry trace --follow starts");
    let lines = std::io::BufRead::lines(std::io::BufReader::new(follow.stdout.take().unwrap()));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    send_id(
        &ingress,
        "com.example.cart.item.added",
        r#"{"cart":"c7","item":"C"}"#,
        "fresh-1",
    );
    let o = trace("fresh-1");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let entries: Vec<Value> = serde_json::from_slice(&o.stdout).expect("JSON");
    assert!(
        entries.iter().any(|e| e["outcome"] == "accepted"),
        "at once after send: {entries:?}"
    );
    let mut followed = Vec::new();
    while !followed.iter().any(|e: &Value| e["outcome"] == "delivered") {
        let line = rx
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("--follow printed no delivery; got {followed:?}"));
        followed.push(serde_json::from_str(&line).expect("one JSON object per line"));
    }
    assert!(followed.iter().all(|e| e["event_id"] == "fresh-1"));
    assert!(
        follow.try_wait().unwrap().is_none(),
        "--follow keeps running"
    );
    let _ = follow.kill();
    let _ = follow.wait();

    // A template change cuts revision 00002; the Service's traffic then splits 50/50.
    let services = manifests.join("services.yaml");
    let text = std::fs::read_to_string(&services).unwrap();
    let changed = text.replacen(
        "            - name: CART_STATE_DIR",
        "            - name: CART_FLAVOR\n              value: v2\n            - name: CART_STATE_DIR",
        1,
    );
    assert_ne!(text, changed);
    std::fs::write(&services, changed).unwrap();
    eventually("revision 00002 takes half the traffic", WAIT, || {
        let row = dev.row("Service", "cart-projection")?;
        (row["ready"] == true
            && row["detail"].as_str().is_some_and(|d| {
                d.starts_with("cart-projection-00001 50%, cart-projection-00002 50%")
            }))
        .then_some(())
    });
    eventually("the trigger delivers to both revisions", WAIT, || {
        let row = dev.row("Trigger", "cart-items")?;
        (row["detail"] == "→ cart-projection-00001 50%, cart-projection-00002 50%").then_some(())
    });
    const EVENTS: u64 = 200;
    for i in 0..EVENTS {
        let status = http::post_event(
            &format!("{ingress}/default/default"),
            &format!("split-{i}"),
            "com.example.cart.created",
            &format!("s{i}"),
            &format!(r#"{{"cart":"s{i}"}}"#),
        );
        assert_eq!(status, Some(202));
    }
    // Each cart s<i> says which revision applied its one event.
    let mut by_revision = std::collections::BTreeMap::<String, u64>::new();
    for i in 0..EVENTS {
        let cart = eventually(&format!("cart s{i}"), WAIT, || {
            cart(&service, &format!("s{i}"))
        });
        for (revision, n) in cart["revisions"].as_object().unwrap() {
            *by_revision.entry(revision.clone()).or_default() += n.as_u64().unwrap();
        }
    }
    let counts: Vec<u64> = by_revision.values().copied().collect();
    assert_eq!(by_revision.len(), 2, "{by_revision:?}");
    assert_eq!(counts.iter().sum::<u64>(), EVENTS);
    // Binomial(200, 0.5): 60..=140 holds with probability 1 - 1e-8.
    for n in &counts {
        assert!((60..=140).contains(n), "split {by_revision:?} of {EVENTS}");
    }
    // Each tag reaches its own revision.
    let tags = dev.row("Service", "cart-projection").unwrap()["tags"].clone();
    for (tag, revision) in [
        ("first", "cart-projection-00001"),
        ("latest", "cart-projection-00002"),
    ] {
        let url = tags[tag]
            .as_str()
            .unwrap_or_else(|| panic!("no tag {tag} in {tags}"));
        let addr = url.trim_start_matches("http://").parse().unwrap();
        for _ in 0..5 {
            let response = ferry_testkit::process::http_get(addr, "/carts/s1");
            assert!(
                response
                    .to_ascii_lowercase()
                    .contains(&format!("x-revision: {revision}")),
                "tag {tag}: {response}"
            );
        }
    }
    // The Service's own URL splits requests too, and always answers.
    for _ in 0..10 {
        assert!(cart(&service, "s1").is_some());
    }
    // The ingress answers the names the Service and its tags have in a cluster, by Host.
    let ingress_addr = ingress.trim_start_matches("http://").parse().unwrap();
    for (host, revision) in [
        ("first-cart-projection.default", "cart-projection-00001"),
        (
            "latest-cart-projection.default.svc.cluster.local",
            "cart-projection-00002",
        ),
        ("cart-projection.default.svc", "cart-projection-0000"),
    ] {
        let response = ferry_testkit::process::http_get_host(ingress_addr, host, "/carts/s1");
        assert!(
            response.starts_with("HTTP/1.1 200")
                && response
                    .to_ascii_lowercase()
                    .contains(&format!("x-revision: {revision}")),
            "{host}: {response}"
        );
    }
}

#[test]
fn bad_input_is_refused_naming_file_field_or_port() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    };
    let broker = "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: default}\n";
    let cases = [
        (
            write("yaml.yaml", "kind: [unclosed\n"),
            vec!["yaml.yaml", "not valid YAML"],
        ),
        (
            write(
                "kind.yaml",
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n",
            ),
            vec!["kind.yaml", "apps/v1/Deployment is not a kind Ferry serves"],
        ),
        (
            write(
                "unsupported.yaml",
                &format!(
                    "{broker}---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {{name: t}}\nspec:\n  broker: default\n  subscriber: {{uri: 'http://127.0.0.1:1/', audience: me}}\n"
                ),
            ),
            vec!["unsupported.yaml", "document 2", "spec.subscriber.audience"],
        ),
        (
            write(
                "nobroker.yaml",
                "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: t}\nspec:\n  broker: missing\n  subscriber: {uri: 'http://127.0.0.1:1/'}\n",
            ),
            vec![
                "nobroker.yaml",
                "document 1",
                "Trigger default/t",
                "spec.broker",
                "BrokerDoesNotExist",
            ],
        ),
        (
            write(
                "nocommand.yaml",
                "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: s}\nspec:\n  template:\n    spec:\n      containers: [{image: 'x'}]\n",
            ),
            vec!["nocommand.yaml", "containers[0].command"],
        ),
    ];
    for (file, wants) in cases {
        let o = ferry(&[
            "dev",
            "-f",
            &file,
            "--data-dir",
            &dir.path().join("data").to_string_lossy(),
        ]);
        assert_eq!(o.status.code(), Some(1), "{file}: {}", stderr(&o));
        for want in wants {
            assert!(
                stderr(&o).contains(want),
                "{file}: want {want:?} in {}",
                stderr(&o)
            );
        }
    }

    // A port in use: exit 3 naming the address and the flag.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = taken.local_addr().unwrap();
    let ok = write("ok.yaml", broker);
    let o = ferry(&[
        "dev",
        "-f",
        &ok,
        "--data-dir",
        &dir.path().join("data").to_string_lossy(),
        "--ingress",
        &addr.to_string(),
        "--broker-listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains(&addr.to_string()), "{}", stderr(&o));
    assert!(stderr(&o).contains("--ingress"), "{}", stderr(&o));

    // Bad arguments: exit 2.
    let o = ferry(&["dev", "-f", &ok, "--ingress", "not-an-address"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// A Broker's `spec.config` names a ConfigMap with Knative's `kafka-broker-config` keys: its
/// topic gets those partitions, as in a cluster (the shared topic rule); a ConfigMap missing
/// from the manifests keeps the Broker not Ready, saying which one to add.
#[test]
fn broker_config_map_sets_the_topic_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("m");
    std::fs::create_dir_all(&manifests).unwrap();
    let broker = |name: &str, config: &str| {
        format!(
            "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {{name: {name}}}\n\
             spec:\n  config: {{apiVersion: v1, kind: ConfigMap, name: {config}}}\n"
        )
    };
    std::fs::write(
        manifests.join("brokers.yaml"),
        format!(
            "{}---\n{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: three}}\n\
             data: {{default.topic.partitions: \"3\", default.topic.replication.factor: \"1\"}}\n",
            broker("orders", "three"),
            broker("audit", "absent"),
        ),
    )
    .unwrap();
    let dev = Dev::start(&manifests, &dir.path().join("data"), &[]);
    let orders = eventually("the orders Broker is ready", WAIT, || {
        dev.row("Broker", "orders").filter(|r| r["ready"] == true)
    });
    assert_eq!(orders["detail"], "topic knative-broker-default-orders");
    let audit = eventually("the audit Broker says what is missing", WAIT, || {
        dev.row("Broker", "audit").filter(|r| {
            r["detail"]
                .as_str()
                .is_some_and(|d| d.contains("ConfigMap default/absent does not exist"))
        })
    });
    assert_eq!(audit["ready"], false);
    let kafka = dev.status().unwrap()["kafka"].as_str().unwrap().to_owned();
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &kafka)
        .create()
        .unwrap();
    let metadata = rdkafka::consumer::Consumer::fetch_metadata(
        &consumer,
        Some("knative-broker-default-orders"),
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(metadata.topics()[0].partitions().len(), 3);
}

/// A process's environment, from `/proc`.
fn environ(pid: u32) -> Option<std::collections::BTreeMap<String, String>> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    Some(
        raw.split(|&b| b == 0)
            .filter_map(|kv| {
                let kv = String::from_utf8_lossy(kv);
                let (k, v) = kv.split_once('=')?;
                Some((k.to_owned(), v.to_owned()))
            })
            .collect(),
    )
}

/// A Service of two containers (Knative's multi-container revision): the one listing a port
/// serves, the other runs beside it as a sidecar, each its own local process with its own env.
/// The Service becomes Ready with both running, a Trigger's event reaches the serving
/// container, the sidecar answers on the port its own env gives it, and stopping ferry dev
/// stops both.
#[test]
fn a_sidecar_runs_beside_the_serving_container_and_stops_with_it() {
    let bin = example_binaries();
    let dir = tempfile::tempdir().unwrap();
    let sidecar_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let recorder = bin.join("event-recorder");
    let manifests = dir.path().join("m");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(
        manifests.join("sidecar.yaml"),
        format!(
            r#"apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: recorded}}
spec:
  broker: default
  subscriber:
    ref: {{apiVersion: serving.knative.dev/v1, kind: Service, name: recorder}}
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: recorder}}
spec:
  template:
    spec:
      containers:
        - name: app
          image: event-recorder
          command: [{recorder:?}]
          ports: [{{containerPort: 8080}}]
          env:
            - {{name: EVENTS_FILE, value: {app:?}}}
        - name: logger
          image: event-recorder
          command: [{recorder:?}]
          env:
            - {{name: PORT, value: "{sidecar_port}"}}
            - {{name: EVENTS_FILE, value: {sidecar:?}}}
"#,
            app = dir.path().join("app.jsonl"),
            sidecar = dir.path().join("sidecar.jsonl"),
        ),
    )
    .unwrap();
    let mut dev = Dev::start(&manifests, &dir.path().join("data"), &[]);
    dev.ready();
    assert_eq!(dev.row("Service", "recorder").unwrap()["ready"], true);

    // An event through the Broker and the Trigger reaches the serving container.
    let status = http::post_event(
        &format!("{}/default/default", dev.ingress()),
        "sidecar-1",
        "com.example.recorded",
        "k",
        "{}",
    );
    assert_eq!(status, Some(202));
    let service = dev.url("Service", "recorder");
    let event = eventually("the serving container records the event", WAIT, || {
        let (_, events) = http::get(&format!("{service}/events"))?;
        events.as_array()?.first().cloned()
    });
    assert_eq!(event["id"], "sidecar-1");

    // The sidecar answers on its own port, and received nothing.
    let (code, events) = http::get(&format!("http://127.0.0.1:{sidecar_port}/events"))
        .expect("the sidecar answers on its port");
    assert_eq!((code, events), (200, serde_json::json!([])));

    // Two processes: the serving container with ferry dev's PORT, the sidecar with its own;
    // both know their revision.
    let detail = dev.row("Revision", "recorder-00001").unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    let pids: Vec<u32> = detail
        .split(", ")
        .find_map(|part| part.strip_prefix("pid "))
        .unwrap_or_else(|| panic!("no pids in {detail:?}"))
        .split(' ')
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "{detail}");
    let (app, logger) = (environ(pids[0]).unwrap(), environ(pids[1]).unwrap());
    assert_eq!(logger["PORT"], sidecar_port.to_string());
    assert_ne!(app["PORT"], sidecar_port.to_string());
    for env in [&app, &logger] {
        assert_eq!(env["K_REVISION"], "recorder-00001");
        assert_eq!(env["K_SERVICE"], "recorder");
        assert_eq!(env["K_CONFIGURATION"], "recorder");
    }

    // Stopping ferry dev stops both.
    dev.process.take().unwrap().stop();
    for pid in pids {
        eventually(&format!("process {pid} is gone"), WAIT, || {
            (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
        });
    }
    assert!(http::get(&format!("http://127.0.0.1:{sidecar_port}/events")).is_none());
}

/// The spans of `event`'s trace through ferry dev's dispatcher, when all have arrived:
/// `ingress` (naming the event) ← `append` ← `deliver` ← `attempt`, each the child of the one
/// before.
fn event_spans<'s>(spans: &'s [ReceivedSpan], event: &str) -> Option<[&'s ReceivedSpan; 4]> {
    let child = |parent: &ReceivedSpan, name: &str| {
        spans
            .iter()
            .find(|s| s.name == name && s.parent_span_id == parent.span_id)
    };
    let ingress = spans
        .iter()
        .find(|s| s.name == "ingress" && s.attr("cloudevents.event_id") == Some(event))?;
    let append = child(ingress, "append")?;
    let deliver = child(append, "deliver")?;
    let attempt = child(deliver, "attempt")?;
    Some([ingress, append, deliver, attempt])
}

/// Knative's `config-observability` among the manifests sends the dispatcher's spans to its
/// collector, in the caller's trace, over the `OTEL_*` environment of ferry dev; with the
/// ConfigMap's file removed while ferry dev runs, that environment decides again.
#[test]
fn config_observability_sends_spans_over_otlp_and_otel_env_is_the_fallback() {
    const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const CALLER_SPAN: &str = "00f067aa0ba902b7";
    const SPANS_WAIT: Duration = Duration::from_secs(15);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (configured, from_env, sink) = runtime.block_on(async {
        (
            OtlpReceiver::start().await,
            OtlpReceiver::start().await,
            Sink::start().await,
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("m");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(
        manifests.join("broker.yaml"),
        format!(
            "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {{name: default}}\n---\n\
             apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {{name: all}}\n\
             spec:\n  broker: default\n  subscriber: {{uri: '{}'}}\n",
            sink.url()
        ),
    )
    .unwrap();
    let observability = manifests.join("observability.yaml");
    std::fs::write(
        &observability,
        format!(
            "apiVersion: v1\nkind: ConfigMap\n\
             metadata: {{name: config-observability, namespace: knative-eventing}}\n\
             data:\n  tracing-protocol: http/protobuf\n  tracing-endpoint: {}\n  \
             tracing-sampling-rate: \"1\"\n",
            configured.http_endpoint()
        ),
    )
    .unwrap();
    // OTEL_EXPORTER_OTLP_ENDPOINT is the collector's base URL: `/v1/traces` is appended.
    let env_endpoint = from_env.grpc_endpoint();
    let dev = Dev::start_with_env(
        &manifests,
        &dir.path().join("data"),
        &[],
        &[
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &env_endpoint),
        ],
    );
    let status = dev.ready();
    let broker = format!("{}/default/default", dev.ingress());
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let post = |id: &str| {
        let headers = [("traceparent", caller.as_str())];
        let status = http::post_event_with(&broker, id, "com.example.traced", "k", "{}", &headers);
        assert_eq!(status, Some(202), "{id}");
    };

    post("traced-1");
    runtime.block_on(sink.wait_for_accepted(1, WAIT));
    let spans =
        runtime.block_on(configured.wait_for(SPANS_WAIT, |s| event_spans(s, "traced-1").is_some()));
    let [ingress, _, deliver, _] =
        event_spans(&spans, "traced-1").unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(ingress.parent_span_id, CALLER_SPAN, "a child of the caller");
    assert_eq!(deliver.attr("ferry.egress"), Some("Trigger default/all"));
    let dispatcher: Vec<_> = spans
        .iter()
        .filter(|s| s.service == "ferry-dispatcher")
        .collect();
    assert!(
        dispatcher
            .iter()
            .all(|s| s.trace_id == CALLER_TRACE && s.protocol == "http"),
        "{spans:#?}"
    );
    // The embedded log follows the ConfigMap too: its produce and fetch spans come here.
    let spans = runtime.block_on(configured.wait_for(SPANS_WAIT, |s| {
        s.iter()
            .any(|s| s.service == "ferry-broker" && s.name == "produce")
    }));
    assert!(
        spans
            .iter()
            .any(|s| s.service == "ferry-broker" && s.name == "produce"),
        "{spans:#?}"
    );
    assert!(
        from_env.spans().is_empty(),
        "the ConfigMap overrides OTEL_*"
    );

    // Without the ConfigMap, ferry dev's OTEL_* environment applies to a new contract.
    std::fs::remove_file(&observability).unwrap();
    let before = status["generation"].as_u64().unwrap();
    eventually("the contract without tracing applies", WAIT, || {
        let status = dev.status()?;
        let generation = status["generation"].as_u64()?;
        (generation > before && status["applied"].as_u64() == Some(generation)).then_some(())
    });
    post("traced-2");
    let spans =
        runtime.block_on(from_env.wait_for(SPANS_WAIT, |s| event_spans(s, "traced-2").is_some()));
    assert!(event_spans(&spans, "traced-2").is_some(), "{spans:#?}");
    assert!(event_spans(&configured.spans(), "traced-2").is_none());
}
