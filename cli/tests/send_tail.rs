//! `ferry send` and `ferry tail` as a user runs them, against the embedded broker and a
//! dispatcher started in this process.

use std::process::{Command, Output};
use std::time::Duration;

use ferry_api::contract::{Contract, ContractResource, Ingress, ObjectRef, broker_topic};
use ferry_broker::{Broker, BrokerConfig};
use ferry_dispatcher::config::DispatcherConfig;

fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .output()
        .expect("ferry runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn send_then_tail_round_trips_through_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig::local(&dir.path().join("log"), &[]).expect("flags");
    let broker = Broker::start(config).await.expect("broker");
    let bootstrap = broker.kafka_addr.to_string();
    let contract = Contract {
        generation: 1,
        resources: vec![ContractResource {
            uid: "b".into(),
            reference: ObjectRef::new("Broker", "default", "orders"),
            topics: vec![broker_topic("default", "orders")],
            bootstrap_servers: bootstrap.clone(),
            auth: None,
            ingress: Some(Ingress {
                path: "/default/orders".into(),
            }),
            egresses: vec![],
        }],
        activation: Vec::new(),
        routes: Vec::new(),
        tag_header_routing: false,
        tracing: None,
        activators: Vec::new(),
    };
    let contract_path = dir.path().join("contract.json");
    std::fs::write(&contract_path, serde_json::to_vec(&contract).unwrap()).unwrap();
    let mut config = DispatcherConfig::new(
        contract_path,
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    );
    config.contract_poll = std::time::Duration::from_millis(50);
    let dispatcher = ferry_dispatcher::start(config).await.expect("dispatcher");
    for _ in 0..100 {
        if dispatcher.generation() == Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ingress = format!("http://{}", dispatcher.http_addr.unwrap());

    let send = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            ferry(&args.iter().map(String::as_str).collect::<Vec<_>>())
        })
    };
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = [
            "send",
            "default/orders",
            "--ingress",
            &ingress,
            "--type",
            "cart.created",
            "--source",
            "/cli",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a
    };
    let out = send(args(&[
        "--id",
        "c-1",
        "--data",
        r#"{"cart":"c-1"}"#,
        "--ext",
        "partitionkey=c-1",
    ]))
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert!(text(&out).0.starts_with("202"), "{:?}", text(&out));
    let out = send(args(&["--id", "c-2"])).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert!(
        text(&out).0.starts_with("202 id=c-2"),
        "the id is printed for ferry trace: {:?}",
        text(&out)
    );

    // Bad arguments: exit 2 and a message naming the flag.
    let out = send(args(&["--data", "{nope"])).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("--data is not valid JSON"),
        "{:?}",
        text(&out)
    );
    // Rejected by ingress: exit 1 with the status and reason.
    let unknown = vec![
        "send".into(),
        format!("{ingress}/default/missing"),
        "--type".into(),
        "t".into(),
        "--source".into(),
        "/s".into(),
    ];
    let out = send(unknown).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .0
            .starts_with("404 no Broker or KafkaChannel at /default/missing"),
        "{:?}",
        text(&out)
    );
    // Nobody listening: exit 3.
    let out = send(vec![
        "send".into(),
        "http://127.0.0.1:1/default/orders".into(),
        "--type".into(),
        "t".into(),
        "--source".into(),
        "/s".into(),
    ])
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out).1.contains("cannot reach"), "{:?}", text(&out));

    let b = bootstrap.clone();
    let out = tokio::task::spawn_blocking(move || {
        ferry(&[
            "tail",
            "default/orders",
            "--kafka",
            &b,
            "--from",
            "earliest",
            "--max",
            "2",
            "-o",
            "json",
        ])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let lines: Vec<serde_json::Value> = text(&out)
        .0
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["event"]["id"], "c-1");
    assert_eq!(lines[0]["event"]["partitionkey"], "c-1");
    assert_eq!(lines[0]["offset"], 0);
    assert_eq!(lines[1]["event"]["id"], "c-2");

    let b = bootstrap.clone();
    let out = tokio::task::spawn_blocking(move || {
        ferry(&[
            "tail",
            "default/orders",
            "--kafka",
            &b,
            "--from",
            "1",
            "--max",
            "1",
        ])
    })
    .await
    .unwrap();
    let (stdout, _) = text(&out);
    assert!(
        stdout.lines().next().unwrap().starts_with("PART"),
        "{stdout}"
    );
    assert!(
        stdout.lines().nth(1).unwrap().contains("cart.created"),
        "{stdout}"
    );
    assert!(stdout.lines().nth(1).unwrap().ends_with("c-2"), "{stdout}");

    let b = bootstrap.clone();
    let out = tokio::task::spawn_blocking(move || {
        ferry(&["tail", "nothing-here", "--kafka", &b, "--max", "1"])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("topic nothing-here not found"),
        "{:?}",
        text(&out)
    );

    dispatcher.shutdown().await;
    broker.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// The log tools read a broker that requires SASL with the `FERRY_KAFKA_*` variables Ferry's
/// components use.
#[tokio::test(flavor = "multi_thread")]
async fn the_log_tools_authenticate_with_ferry_kafka_variables() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.txt");
    std::fs::write(&users, "ferry:s3cret\n").unwrap();
    let config = BrokerConfig::local(
        &dir.path().join("log"),
        &[
            "--sasl-users",
            users.to_str().unwrap(),
            "--auto-create-topics",
            "true",
        ],
    )
    .expect("flags");
    let broker = Broker::start(config).await.expect("broker");
    let kafka = broker.kafka_addr.to_string();
    let sasl = [
        ("FERRY_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
        ("FERRY_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
        ("FERRY_KAFKA_SASL_USERNAME", "ferry"),
        ("FERRY_KAFKA_SASL_PASSWORD", "s3cret"),
    ];
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &kafka)
            .set("security.protocol", "SASL_PLAINTEXT")
            .set("sasl.mechanism", "SCRAM-SHA-512")
            .set("sasl.username", "ferry")
            .set("sasl.password", "s3cret")
            .create()
            .unwrap();
    let journal = rdkafka::admin::NewTopic::new(
        ferry_dispatcher::journal::DEFAULT_TOPIC,
        1,
        rdkafka::admin::TopicReplication::Fixed(1),
    );
    for r in admin
        .create_topics([&journal], &rdkafka::admin::AdminOptions::new())
        .await
        .unwrap()
    {
        r.unwrap();
    }
    let trace = move |env: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["trace", "some-id", "--kafka", &kafka, "--wait", "0s"])
            .envs(env.iter().copied())
            .output()
            .expect("ferry runs")
    };
    let anonymous = tokio::task::spawn_blocking({
        let trace = trace.clone();
        move || trace(&[])
    })
    .await
    .unwrap();
    assert_eq!(anonymous.status.code(), Some(3), "{:?}", text(&anonymous));
    let signed_in = tokio::task::spawn_blocking(move || trace(&sasl))
        .await
        .unwrap();
    let (_, stderr) = text(&signed_in);
    assert_eq!(signed_in.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no journal entry"),
        "read the journal: {stderr}"
    );
    broker.shutdown(Duration::from_secs(5)).await.unwrap();
}
