use super::*;
use crate::duck::KReference;
use crate::eventing::{Broker, Trigger};
use crate::messaging::{KafkaChannel, Subscription};
use crate::sources::KafkaSource;
use k8s_openapi::api::core::v1::SecretKeySelector;

fn parse<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
    serde_yaml::from_str(yaml).expect("fixture parses")
}

fn resolver(reference: &KReference) -> Option<Resolved> {
    match (reference.kind.as_str(), reference.name.as_str()) {
        ("Service", "display") => Some(Resolved::Url("http://display.default.svc".into())),
        ("Service", "split") => Some(Resolved::Revisions(vec![
            RevisionTarget {
                revision: "split-1".into(),
                url: "http://split-1.default".into(),
                percent: 80,
            },
            RevisionTarget {
                revision: "split-2".into(),
                url: "http://split-2.default".into(),
                percent: 20,
            },
        ])),
        ("Broker", "dlq") => Some(Resolved::Url("http://dispatcher/default/dlq".into())),
        _ => None,
    }
}

const BROKER: &str = r#"
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: orders, namespace: default, uid: b-1}
spec:
  delivery: {retry: 3, backoffPolicy: linear, backoffDelay: PT0.5S}
"#;

const TRIGGERS: [&str; 3] = [
    r#"
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: shipped
  namespace: default
  uid: t-1
  annotations: {kafka.eventing.knative.dev/delivery.order: ordered}
spec:
  broker: orders
  filter: {attributes: {type: order.shipped, source: ""}}
  subscriber: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: display}, uri: /hook}
  delivery:
    retry: 5
    timeout: PT2S
    deadLetterSink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: dlq}}
"#,
    r#"
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: split, namespace: default, uid: t-2}
spec:
  broker: orders
  filter: {attributes: {type: ignored}}
  filters: [{prefix: {type: order.}}]
  subscriber: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: split}}
"#,
    r#"
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: lost, namespace: default, uid: t-3}
spec:
  broker: orders
  subscriber: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: missing}}
"#,
];

fn compile_all(extra_triggers: &[&str]) -> (Contract, Vec<CompileError>) {
    let brokers: Vec<Broker> = vec![parse(BROKER)];
    let triggers: Vec<Trigger> = TRIGGERS
        .iter()
        .chain(extra_triggers)
        .map(|t| parse(t))
        .collect();
    let channels: Vec<KafkaChannel> = vec![parse(
        "{apiVersion: messaging.knative.dev/v1beta1, kind: KafkaChannel, metadata: {name: audit, namespace: ops, uid: c-1}, spec: {}}",
    )];
    let subscriptions: Vec<Subscription> = vec![parse(
        r#"
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: archive, namespace: ops, uid: s-1}
spec:
  channel: {apiVersion: messaging.knative.dev/v1beta1, kind: KafkaChannel, name: audit}
  subscriber: {uri: "http://archive.ops/in"}
  reply: {uri: "http://replies.ops/"}
"#,
    )];
    let sources: Vec<KafkaSource> = vec![parse(
        r#"
apiVersion: sources.knative.dev/v1beta1
kind: KafkaSource
metadata: {name: legacy, namespace: default, uid: k-1, labels: {kafkasources.sources.knative.dev/key-type: int}}
spec:
  bootstrapServers: [kafka-a:9092, kafka-b:9092]
  topics: [payments, refunds]
  consumerGroup: legacy-group
  initialOffset: earliest
  sink: {uri: "http://ledger.default/"}
  ceOverrides: {extensions: {team: payments}}
"#,
    )];
    compile(&CompileInput {
        generation: 7,
        bootstrap_servers: "127.0.0.1:9092",
        brokers: &brokers.iter().collect::<Vec<_>>(),
        triggers: &triggers.iter().collect::<Vec<_>>(),
        channels: &channels.iter().collect::<Vec<_>>(),
        subscriptions: &subscriptions.iter().collect::<Vec<_>>(),
        sources: &sources.iter().collect::<Vec<_>>(),
        resolve: &resolver,
        secret: &no_secrets,
    })
}

fn no_secrets(ns: &str, r: &SecretKeySelector) -> crate::Result<String> {
    Err(crate::Error::SecretUnreadable(format!(
        "Secret {ns}/{} not found",
        r.name
    )))
}

/// The Secrets of the `spec.net` tests: `payments/kafka-creds` with SASL and TLS material.
fn secrets(ns: &str, r: &SecretKeySelector) -> crate::Result<String> {
    if (ns, r.name.as_str()) != ("payments", "kafka-creds") {
        return no_secrets(ns, r);
    }
    let data: std::collections::BTreeMap<String, Vec<u8>> = [
        ("user", "ledger"),
        ("password", "hunter2"),
        ("saslType", "SCRAM-SHA-512\n"),
        ("ca.crt", "-----BEGIN CERTIFICATE-----CA"),
        ("tls.crt", "-----BEGIN CERTIFICATE-----C"),
        ("tls.key", "-----BEGIN PRIVATE KEY-----K"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.as_bytes().to_vec()))
    .chain([("der".to_owned(), vec![0xff, 0xfe])])
    .collect();
    crate::sources::secret_key_value(ns, r, &data)
}

fn compile_sources(sources: &[KafkaSource]) -> (Contract, Vec<CompileError>) {
    compile(&CompileInput {
        generation: 1,
        bootstrap_servers: "127.0.0.1:9092",
        brokers: &[],
        triggers: &[],
        channels: &[],
        subscriptions: &[],
        sources: &sources.iter().collect::<Vec<_>>(),
        resolve: &resolver,
        secret: &secrets,
    })
}

fn net_source(name: &str, net: &str) -> KafkaSource {
    parse(&format!(
        "{{apiVersion: sources.knative.dev/v1beta1, kind: KafkaSource,
          metadata: {{name: {name}, namespace: payments, uid: {name}-uid}},
          spec: {{bootstrapServers: [kafka:9093], topics: [t], sink: {{uri: 'http://s/'}}, net: {net}}}}}"
    ))
}

#[test]
fn kafka_source_net_becomes_the_resources_auth_with_the_secret_material() {
    let sk = |key: &str| format!("{{secretKeyRef: {{name: kafka-creds, key: {key}}}}}");
    let cases: Vec<(&str, String, Result<serde_json::Value, &str>)> = vec![
        ("plain", "{}".into(), Ok(serde_json::json!({}))),
        (
            "disabled",
            // Knative reads net.sasl / net.tls only when enabled.
            format!(
                "{{sasl: {{enable: false, user: {}, password: {}}}}}",
                sk("nope"),
                sk("nope")
            ),
            Ok(serde_json::json!({})),
        ),
        (
            "scram-tls",
            format!(
                "{{sasl: {{enable: true, user: {}, password: {}, type: {}}},
                   tls: {{enable: true, caCert: {}, cert: {}, key: {}}}}}",
                sk("user"),
                sk("password"),
                sk("saslType"),
                sk("ca.crt"),
                sk("tls.crt"),
                sk("tls.key")
            ),
            Ok(serde_json::json!({
                "sasl": {"mechanism": "SCRAM-SHA-512", "username": "ledger", "password": "hunter2"},
                "tls": {"caCert": "-----BEGIN CERTIFICATE-----CA",
                        "cert": "-----BEGIN CERTIFICATE-----C",
                        "key": "-----BEGIN PRIVATE KEY-----K"}})),
        ),
        (
            "plain-default",
            format!(
                "{{sasl: {{enable: true, user: {}, password: {}}}}}",
                sk("user"),
                sk("password")
            ),
            Ok(serde_json::json!({
                "sasl": {"mechanism": "PLAIN", "username": "ledger", "password": "hunter2"}})),
        ),
        (
            "system-cas",
            "{tls: {enable: true}}".into(),
            Ok(serde_json::json!({"tls": {}})),
        ),
        (
            "missing-key",
            format!(
                "{{sasl: {{enable: true, user: {}, password: {}}}}}",
                sk("user"),
                sk("pw")
            ),
            Err(
                "Secret payments/kafka-creds has no key `pw`; add it or fix the secretKeyRef; spec.net cannot be applied",
            ),
        ),
        (
            "binary",
            format!("{{tls: {{enable: true, caCert: {}}}}}", sk("der")),
            Err(
                "Secret payments/kafka-creds key `der` is not UTF-8 text; store PEM, not DER; spec.net cannot be applied",
            ),
        ),
        (
            "bad-type",
            format!(
                "{{sasl: {{enable: true, user: {}, password: {}, type: {}}}}}",
                sk("user"),
                sk("password"),
                sk("user")
            ),
            Err(
                "spec.net.sasl.type: SASL mechanism `LEDGER` is not supported; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; spec.net cannot be applied",
            ),
        ),
    ];
    for (name, net, want) in cases {
        let (contract, errors) = compile_sources(&[net_source(name, &net)]);
        match want {
            Ok(auth) => {
                assert!(errors.is_empty(), "{name}: {errors:?}");
                contract.validate().expect("compiled contract validates");
                let got =
                    serde_json::to_value(contract.resources[0].auth.as_ref().unwrap()).unwrap();
                assert_eq!(got, auth, "{name}");
            }
            Err(message) => {
                assert!(contract.resources.is_empty(), "{name}");
                assert_eq!(errors.len(), 1, "{name}");
                assert_eq!(errors[0].reason, "NetSecretNotResolved", "{name}");
                assert_eq!(errors[0].message, message, "{name}");
            }
        }
    }
    // Brokers and channels leave auth to the dispatcher's own log settings.
    let (contract, _) = compile_all(&[]);
    for r in &contract.resources {
        assert_eq!(r.auth.is_some(), r.reference.kind == "KafkaSource", "{r:?}");
    }
}

#[test]
fn compiles_brokers_triggers_channels_subscriptions_and_sources() {
    let (contract, errors) = compile_all(&[]);
    assert_eq!(contract.generation, 7);
    contract.validate().expect("compiled contract validates");

    let broker = &contract.resources[0];
    assert_eq!(
        broker.reference,
        ObjectRef::new("Broker", "default", "orders")
    );
    assert_eq!(broker.topics, ["knative-broker-default-orders"]);
    assert_eq!(broker.ingress.as_ref().unwrap().path, "/default/orders");
    assert_eq!(
        broker.egresses.len(),
        2,
        "the unresolvable trigger is left out"
    );

    let shipped = &broker.egresses[0];
    assert_eq!(shipped.consumer_group, "knative-trigger-default-shipped");
    assert_eq!(
        shipped.destination,
        Target::Url("http://display.default.svc/hook".into())
    );
    assert_eq!(
        shipped.filter_attributes.get("type").map(String::as_str),
        Some("order.shipped")
    );
    assert_eq!(shipped.ordering, DeliveryOrder::Ordered);
    assert_eq!(shipped.reply, Some(Reply::Resource));
    // The trigger's own delivery replaces the broker's wholesale, as in Knative.
    assert_eq!(shipped.delivery.retry, 5);
    assert_eq!(shipped.delivery.timeout_ms, 2000);
    assert_eq!(shipped.delivery.backoff_policy, BackoffPolicy::Exponential);
    assert_eq!(
        shipped.delivery.dead_letter_sink.as_deref(),
        Some("http://dispatcher/default/dlq")
    );

    let split = &broker.egresses[1];
    assert!(
        split.filter_attributes.is_empty(),
        "filters win over filter"
    );
    assert_eq!(split.filters.len(), 1);
    assert!(matches!(&split.destination, Target::Revisions(r) if r.len() == 2));
    assert_eq!(split.delivery.retry, 3, "broker delivery is the default");
    assert_eq!(split.delivery.backoff_policy, BackoffPolicy::Linear);
    assert_eq!(split.delivery.backoff_delay_ms, 500);
    assert_eq!(split.ordering, DeliveryOrder::Unordered);

    let channel = &contract.resources[1];
    assert_eq!(channel.topics, ["knative-messaging-kafka.ops.audit"]);
    assert_eq!(channel.ingress.as_ref().unwrap().path, "/ops/audit");
    assert_eq!(
        channel.egresses[0].reply,
        Some(Reply::Url("http://replies.ops/".into()))
    );
    assert_eq!(
        channel.egresses[0].destination,
        Target::Url("http://archive.ops/in".into())
    );

    let source = &contract.resources[2];
    assert!(source.ingress.is_none());
    assert_eq!(source.topics, ["payments", "refunds"]);
    assert_eq!(source.bootstrap_servers, "kafka-a:9092,kafka-b:9092");
    let egress = &source.egresses[0];
    assert_eq!(egress.consumer_group, "legacy-group");
    assert_eq!(egress.initial_offset, InitialOffset::Earliest);
    let mapping = egress.source.as_ref().unwrap();
    assert_eq!(mapping.key_type, KeyType::Int);
    assert_eq!(
        mapping.ce_overrides.get("team").map(String::as_str),
        Some("payments")
    );

    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].object,
        ObjectRef::new("Trigger", "default", "lost")
    );
    assert_eq!(errors[0].reason, "SubscriberNotResolved");
    assert!(
        errors[0]
            .message
            .contains("Service default/missing not found"),
        "{}",
        errors[0].message
    );
}

#[test]
fn trigger_for_a_missing_broker_is_reported() {
    let orphan = "{apiVersion: eventing.knative.dev/v1, kind: Trigger, metadata: {name: orphan, namespace: default}, spec: {broker: nope, subscriber: {uri: 'http://x/'}}}";
    let (_, errors) = compile_all(&[orphan]);
    let e = errors
        .iter()
        .find(|e| e.object.name == "orphan")
        .expect("reported");
    assert_eq!(e.reason, "BrokerDoesNotExist");
    assert_eq!(
        e.message,
        "broker default/nope not found; create it or fix spec.broker"
    );
}

#[test]
fn tracing_settings_round_trip_and_bad_ones_are_refused() {
    let json = br#"{"generation": 3, "tracing": {"protocol": "http/protobuf", "endpoint": "http://c:4318/v1/traces", "samplingRate": 0.5}}"#;
    let contract = Contract::from_json(json).unwrap();
    let tracing = contract.tracing.clone().unwrap();
    assert_eq!(tracing.sampling_rate, 0.5);
    let again = Contract::from_json(&serde_json::to_vec(&contract).unwrap()).unwrap();
    assert_eq!(again, contract);
    assert_eq!(contract.for_ingress().tracing, Some(tracing));
    let bad = br#"{"generation": 3, "tracing": {"protocol": "grpc", "endpoint": "c:4317", "samplingRate": 1}}"#;
    let e = Contract::from_json(bad).unwrap_err().to_string();
    assert!(
        e.contains("tracing") && e.contains("http:// or https://"),
        "{e}"
    );
    let unknown = br#"{"generation": 3, "tracing": {"protocol": "zipkin"}}"#;
    assert!(Contract::from_json(unknown).is_err());
}

#[test]
fn contract_json_round_trips() {
    let (contract, _) = compile_all(&[]);
    let json = serde_json::to_vec_pretty(&contract).unwrap();
    assert_eq!(Contract::from_json(&json).unwrap(), contract);
    assert_eq!(Contract::from_bytes(&json).unwrap(), contract);
    let gz = contract.to_gzip();
    assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    assert!(gz.len() < json.len());
    assert_eq!(Contract::from_bytes(&gz).unwrap(), contract);
    let mut corrupt = gz.clone();
    corrupt.truncate(gz.len() / 2);
    let e = Contract::from_bytes(&corrupt).unwrap_err().to_string();
    assert!(e.starts_with("contract is not valid gzip"), "{e}");
}

#[test]
fn invalid_contracts_name_every_problem() {
    let (mut contract, _) = compile_all(&[]);
    let mut twin = contract.resources[0].clone();
    twin.uid = "b-2".into();
    twin.egresses.clear();
    contract.resources.push(twin);
    if let Target::Revisions(r) = &mut contract.resources[0].egresses[1].destination {
        r[0].percent = 10;
    }
    contract.resources[1].egresses[0].destination = Target::Url("archive.ops/in".into());
    contract.resources[2].topics.clear();
    let text = contract.validate().unwrap_err().to_string();
    for expected in [
        "resources[3].ingress.path: /default/orders is used by two resources",
        "resources[0].egresses[1].destination.revisions: percents sum to 30",
        "resources[1].egresses[0].destination.url: \"archive.ops/in\" is not an absolute http(s) URL",
        "resources[2].topics: no topic",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(
        Contract::from_json(b"{\"generation\": 1, \"resourcez\": []}")
            .unwrap_err()
            .to_string()
            .contains("unknown field")
    );
}

#[test]
fn routes_are_checked_host_by_host() {
    let route = |name: &str, ns: &str, hosts: &[&str], percent: u32| HttpRoute {
        route: format!("{ns}/{name}"),
        tag: None,
        hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        external_hosts: vec![format!("{name}.{ns}.example.com")],
        targets: vec![RevisionTarget {
            revision: format!("{name}-1"),
            url: format!("http://{name}-1.{ns}.svc"),
            percent,
        }],
    };
    let fine = Contract {
        routes: vec![
            route("cart", "shop", &["cart", "cart.shop"], 100),
            route("cart", "outlet", &["cart", "cart.outlet"], 100),
        ],
        ..Contract::default()
    };
    assert_eq!(
        fine.validate(),
        Ok(()),
        "a short name may be two namespaces'"
    );
    let bad = Contract {
        routes: vec![
            route("cart", "shop", &["cart.shop", "Cart.Shop:80"], 100),
            route("cart", "shop", &["cart.shop"], 60),
            HttpRoute {
                route: "no-namespace".into(),
                hosts: vec![],
                ..route("x", "y", &[], 100)
            },
        ],
        ..Contract::default()
    };
    let text = bad.validate().unwrap_err().to_string();
    for expected in [
        "routes[0].hosts[1]: \"Cart.Shop:80\" is not a lowercase DNS name",
        "routes[1].hosts[0]: cart.shop is served by two routes",
        "routes[1].externalHosts[0]: cart.shop.example.com is served by two routes",
        "routes[1].targets: percents sum to 60",
        "routes[2].route: \"no-namespace\" is not <namespace>/<name>",
        "routes[2].hosts: no host",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn the_ingress_contract_holds_no_kafka_source_and_no_egress() {
    let (contract, _) = compile_all(&[]);
    assert!(
        contract
            .resources
            .iter()
            .any(|r| r.reference.kind == "KafkaSource"),
        "the full contract has the source"
    );
    let ingress = contract.for_ingress();
    assert_eq!(ingress.generation, contract.generation);
    let kinds: Vec<&str> = ingress
        .resources
        .iter()
        .map(|r| r.reference.kind.as_str())
        .collect();
    assert_eq!(kinds, ["Broker", "KafkaChannel"]);
    assert!(
        ingress
            .resources
            .iter()
            .all(|r| r.egresses.is_empty() && r.auth.is_none())
    );
    assert!(ingress.resources.iter().all(|r| r.ingress.is_some()));
    assert_eq!(ingress.validate(), Ok(()));
    let text = serde_json::to_string(&ingress).unwrap();
    assert!(
        !text.contains("kafka-a:9092"),
        "nothing of the source: {text}"
    );
}

#[test]
fn activators_are_listed_once_each() {
    let fine = Contract {
        activators: vec!["10.0.0.1".into(), "10.0.0.2".into()],
        ..Contract::default()
    };
    assert_eq!(fine.validate(), Ok(()));
    let bad = Contract {
        activators: vec!["10.0.0.1".into(), "10.0.0.1".into(), " ".into()],
        ..Contract::default()
    };
    let text = bad.validate().unwrap_err().to_string();
    for i in [1, 2] {
        assert!(
            text.contains(&format!(
                "activators[{i}]: empty or duplicate dispatcher address"
            )),
            "{text}"
        );
    }
    assert!(!text.contains("activators[0]"), "{text}");
}
