//! Ingress over real HTTP into the embedded broker: every mode accepted with 202 after the
//! write, and every kind of bad input answered with its status and reason, writing nothing.

mod support;

use std::time::Duration;

use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn accepts_binary_structured_and_batched_events() {
    let log = Log::start().await;
    log.create_topic("orders", 1).await;
    let d = Dispatcher::start(
        &contract(1, vec![broker("orders", &log.bootstrap, vec![])]),
        &[],
    );
    let client = reqwest::Client::new();
    let url = d.url("/default/orders");

    let (status, _) = post_event(&client, &url, "b-1", "order.created", &[], r#"{"n":1}"#).await;
    assert_eq!(status, 202);
    let structured =
        r#"{"specversion":"1.0","id":"s-1","source":"/t","type":"order.created","data":{"n":2}}"#;
    let r = client
        .post(&url)
        .header("content-type", "application/cloudevents+json")
        .body(structured)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let batch = r#"[{"specversion":"1.0","id":"m-1","source":"/t","type":"x"},{"specversion":"1.0","id":"m-2","source":"/t","type":"x"}]"#;
    let r = client
        .post(&url)
        .header("content-type", "application/cloudevents-batch+json")
        .body(batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // h2c (prior knowledge) on the same port.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let (status, _) = post_event(&h2, &url, "h2-1", "order.created", &[], "{}").await;
    assert_eq!(status, 202);
    assert_eq!(log.records("orders", 1), 5, "202 means written");
    let (headers, key, value) = log.first_record("orders").await;
    assert_eq!(key.as_deref(), None, "no partitionkey, no key");
    assert!(
        headers.contains(&("ce_id".to_owned(), "b-1".to_owned())),
        "{headers:?}"
    );
    assert!(headers.contains(&("ce_type".to_owned(), "order.created".to_owned())));
    assert!(headers.contains(&("content-type".to_owned(), "application/json".to_owned())));
    assert_eq!(
        value, br#"{"n":1}"#,
        "data is the record value (binary content mode)"
    );
    let (status, _) = post_event(
        &client,
        &url,
        "k-1",
        "t",
        &[("ce-partitionkey", "cart-7")],
        "{}",
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(
        log.last_record("orders").await.1.as_deref(),
        Some("cart-7"),
        "keyed by partitionkey"
    );
    assert!(
        d.metric(
            "ferry_dispatcher_ingress_events_total{path=\"/default/orders\",outcome=\"accepted\"}"
        ) >= 5.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_exact_status_and_reason_and_writes_nothing() {
    let log = Log::start().await;
    log.create_topic("orders", 1).await;
    let d = Dispatcher::start(
        &contract(1, vec![broker("orders", &log.bootstrap, vec![])]),
        &["--max-body-bytes", "1024"],
    );
    let client = reqwest::Client::new();
    let url = d.url("/default/orders");
    let structured = |body: &'static str| {
        client
            .post(&url)
            .header("content-type", "application/cloudevents+json")
            .body(body)
    };

    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (structured("{not json"), 400, "malformed JSON"),
        (
            structured(r#"{"specversion":"1.0","source":"/t","type":"x"}"#),
            400,
            "missing required attribute id",
        ),
        (
            structured(r#"{"specversion":"0.3","id":"1","source":"/t","type":"x"}"#),
            400,
            "specversion \"0.3\" is not supported; send CloudEvents 1.0",
        ),
        (
            structured(r#"{"specversion":"1.0","id":"1","source":"/t","type":"x","Bad-Name":"v"}"#),
            400,
            "extension name \"Bad-Name\" is invalid",
        ),
        (
            client
                .post(&url)
                .header("ce-specversion", "1.0")
                .header("ce-id", "1")
                .header("ce-source", "/t"),
            400,
            "invalid CloudEvent",
        ),
        (
            client
                .post(&url)
                .header("ce-specversion", "2.0")
                .header("ce-id", "1")
                .header("ce-source", "/t")
                .header("ce-type", "x"),
            400,
            "specversion \"2.0\" is not supported",
        ),
        (client.post(&url).body("hello"), 400, "not a CloudEvent"),
        (
            client
                .post(&url)
                .header("content-type", "application/cloudevents-batch+json")
                .body(r#"{"a":1}"#),
            400,
            "a batch must be a JSON array",
        ),
        (
            structured(Box::leak(
                format!(
                    r#"{{"specversion":"1.0","id":"1","source":"/t","type":"x","data":"{}"}}"#,
                    "x".repeat(2000)
                )
                .into_boxed_str(),
            )),
            413,
            "body exceeds the 1024 byte limit",
        ),
        (
            client.post(d.url("/default/missing")),
            404,
            "no Broker or KafkaChannel at /default/missing",
        ),
        (client.get(&url), 405, "GET is not accepted"),
    ];
    for (request, status, reason) in cases {
        let response = request.send().await.unwrap();
        let got = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert_eq!(got, status, "{body}");
        assert!(body.contains(reason), "expected {reason:?} in {body:?}");
    }
    assert_eq!(log.records("orders", 1), 0, "nothing written");
    assert_eq!(
        d.metric(
            "ferry_dispatcher_ingress_events_total{path=\"/default/orders\",outcome=\"invalid\"}"
        ),
        8.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unavailable_log_answers_503_with_retry_after() {
    // Nothing listens on the log's address: the write is never acknowledged.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let d = Dispatcher::start(
        &contract(1, vec![broker("ghost", &closed, vec![])]),
        &[
            "--produce-timeout",
            "1500ms",
            "--max-ingress-in-flight",
            "1",
        ],
    );
    let client = reqwest::Client::new();
    // While one request waits for the log, a second one is shed at once.
    let ghost = d.url("/default/ghost");
    let waiting = post_event(&client, &ghost, "0", "x", &[], "{}");
    let shed = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        post_event(&client, &ghost, "00", "x", &[], "{}").await
    };
    let ((first, _), (second, body)) = tokio::join!(waiting, shed);
    assert_eq!((first, second), (503, 503));
    assert!(body.contains("too many requests in flight"), "{body}");
    let response = client
        .post(d.url("/default/ghost"))
        .header("ce-specversion", "1.0")
        .header("ce-id", "1")
        .header("ce-source", "/t")
        .header("ce-type", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body = response.text().await.unwrap();
    assert!(
        body.contains("the log did not acknowledge the write"),
        "{body}"
    );
}

/// `FERRY_LOG_FORMAT=json`: each log line is one JSON object with the level and the message.
#[test]
fn logs_are_json_lines_on_request() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let contract = dir.path().join("contract.json");
    std::fs::write(&contract, b"{not a contract").unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferry-dispatcher"))
        .args(["--contract", &contract.display().to_string()])
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .env("FERRY_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let line = stderr
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("contract rejected"))
        .expect("the bad contract is logged");
    let _ = child.kill();
    let _ = child.wait();
    let entry: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(entry["level"], "ERROR", "{line}");
    assert!(
        entry["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("contract rejected")),
        "{line}"
    );
    assert!(!line.contains('\u{1b}'), "no terminal colour codes: {line}");
}

/// Sends `head` (and maybe part of a body) on a new connection and returns the stream.
fn stalled(addr: std::net::SocketAddr, head: &str) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s
}

/// What the server sends before it closes the connection.
fn until_closed(mut s: std::net::TcpStream) -> String {
    use std::io::Read;
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_hold_no_slot() {
    let log = Log::start().await;
    log.create_topic("orders", 1).await;
    let d = Dispatcher::start(
        &contract(1, vec![broker("orders", &log.bootstrap, vec![])]),
        &[
            "--header-read-timeout",
            "1s",
            "--body-read-timeout",
            "1s",
            "--max-ingress-in-flight",
            "2",
            "--max-batch-events",
            "3",
        ],
    );
    let addr: std::net::SocketAddr = d.http.trim_start_matches("http://").parse().unwrap();

    // Headers that never end: the connection is closed after the header deadline.
    let headers = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let answer = until_closed(stalled(
            addr,
            "POST /default/orders HTTP/1.1\r\nHost: x\r\n",
        ));
        (answer, started.elapsed())
    });
    // Bodies that never end: 408 after the body deadline; meanwhile they hold no slot.
    let bodies: Vec<_> = (0..4)
        .map(|_| {
            tokio::task::spawn_blocking(move || {
                until_closed(stalled(
                    addr,
                    "POST /default/orders HTTP/1.1\r\nHost: x\r\nce-specversion: 1.0\r\n\
                     ce-id: slow\r\nce-source: /t\r\nce-type: t\r\nContent-Length: 100\r\n\r\n0123456789",
                ))
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = reqwest::Client::new();
    let (status, body) =
        post_event(&client, &d.url("/default/orders"), "fast", "t", &[], "{}").await;
    assert_eq!(
        status, 202,
        "four stalled uploads and a two-slot limit: {body}"
    );
    for b in bodies {
        let answer = b.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("did not arrive within 1000 ms"), "{answer}");
    }
    let (answer, took) = headers.await.unwrap();
    assert!(
        !answer.contains("202"),
        "the headers never completed: {answer}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "closed at the 1 s header deadline (the read timeout is 10 s): {took:?}"
    );
    assert_eq!(
        log.records("orders", 1),
        1,
        "only the fast event was written"
    );

    // A batch over --max-batch-events: 413 naming the flag, nothing written.
    let batch = r#"[{"specversion":"1.0","id":"1","source":"/t","type":"t"},
                    {"specversion":"1.0","id":"2","source":"/t","type":"t"},
                    {"specversion":"1.0","id":"3","source":"/t","type":"t"},
                    {"specversion":"1.0","id":"4","source":"/t","type":"t"}]"#;
    let response = client
        .post(d.url("/default/orders"))
        .header("content-type", "application/cloudevents-batch+json")
        .body(batch)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("4 events in one batch; at most 3 (--max-batch-events)"),
        "{text}"
    );
    assert_eq!(log.records("orders", 1), 1);

    // Metric labels name the Broker's path, whatever the request path looked like.
    let (status, _) =
        post_event(&client, &d.url("/default/orders/"), "slash", "t", &[], "{}").await;
    assert_eq!(status, 202);
    let metrics = d.admin_get("/metrics");
    let paths: std::collections::BTreeSet<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("ferry_dispatcher_ingress_events_total{"))
        .filter_map(|l| l.split("path=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(
        paths,
        std::collections::BTreeSet::from(["/default/orders"]),
        "{metrics}"
    );
}
