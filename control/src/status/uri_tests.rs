//! `status.subscriberUri` is the URL the dispatcher posts to, for every form a destination
//! takes: the contract compiler and status resolve destinations by the one rule in
//! [`ferry_api::contract::resolve_destination`].

use super::*;
use ferry_api::contract::{CompileInput, RevisionTarget, compile};
use serde_json::{Value, json};

const NS: &str = "shop";

/// The addresses referents publish (`status.address.url`, or a core Service's DNS name).
fn address(r: &KReference) -> Option<String> {
    let ns = r.namespace.as_deref()?;
    match r.kind.as_str() {
        "Broker" => Some(format!("http://ingress.ferry.svc/{ns}/{}", r.name)),
        "KafkaChannel" => Some(format!("http://ingress.ferry.svc/{ns}/{}/", r.name)),
        "Service" if r.api_version.as_deref() == Some("v1") => {
            Some(format!("http://{}.{ns}.svc.cluster.local", r.name))
        }
        "Service" => Some(format!("http://{}.{ns}.svc.cluster.local/", r.name)),
        _ => None,
    }
}

/// What the compiler delivers to: a Knative Service becomes its revisions; the rest their
/// address.
fn resolve(r: &KReference) -> Option<Resolved> {
    if r.api_version.as_deref() == Some("serving.knative.dev/v1") {
        let ns = r.namespace.as_deref()?;
        return Some(Resolved::Revisions(vec![RevisionTarget {
            revision: format!("{}-00001", r.name),
            url: format!("http://{}-00001.{ns}.svc.cluster.local", r.name),
            percent: 100,
        }]));
    }
    address(r).map(Resolved::Url)
}

fn object<K: serde::de::DeserializeOwned>(api: &str, kind: &str, name: &str, spec: Value) -> K {
    serde_json::from_value(json!({
        "apiVersion": api, "kind": kind,
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"), "generation": 1},
        "spec": spec,
    }))
    .expect("a valid object")
}

fn path_of(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    // `http://host` and `http://host/` name the same resource.
    after_scheme.find('/').map_or("/", |i| &after_scheme[i..])
}

#[test]
fn subscriber_uri_is_where_the_dispatcher_posts_for_every_destination_form() {
    let core_svc = json!({"apiVersion": "v1", "kind": "Service", "name": "hook"});
    let broker_ref =
        json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "other"});
    let channel_ref = json!({"apiVersion": "messaging.knative.dev/v1beta1",
                             "kind": "KafkaChannel", "name": "audit"});
    let ksvc = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "cart"});
    let forms: Vec<(&str, Value)> = vec![
        ("uri", json!({"uri": "http://sink.example.com/events?x=1"})),
        ("core Service ref", json!({"ref": core_svc})),
        (
            "ref + relative uri",
            json!({"ref": core_svc, "uri": "hooks/orders"}),
        ),
        (
            "ref + absolute-path uri",
            json!({"ref": core_svc, "uri": "/orders"}),
        ),
        ("Broker ref", json!({"ref": broker_ref})),
        ("Broker ref + path", json!({"ref": broker_ref, "uri": "x"})),
        (
            "channel ref (trailing /) + relative uri",
            json!({"ref": channel_ref, "uri": "y"}),
        ),
        (
            "namespaced ref",
            json!({"ref": {"apiVersion": "v1", "kind": "Service", "name": "hook", "namespace": "ops"}}),
        ),
        ("Knative Service ref", json!({"ref": ksvc})),
        (
            "Knative Service ref + uri",
            json!({"ref": ksvc, "uri": "/carts"}),
        ),
    ];
    let broker: ferry_api::eventing::Broker =
        object("eventing.knative.dev/v1", "Broker", "default", json!({}));
    let triggers: Vec<Trigger> = forms
        .iter()
        .enumerate()
        .map(|(i, (_, subscriber))| {
            object(
                "eventing.knative.dev/v1",
                "Trigger",
                &format!("t{i}"),
                json!({"broker": "default", "subscriber": subscriber}),
            )
        })
        .collect();
    let no_secret = |_: &str, _: &k8s_openapi::api::core::v1::SecretKeySelector| {
        Err(ferry_api::Error::SecretUnreadable(
            "no Secrets here".to_owned(),
        ))
    };
    let trigger_refs: Vec<&Trigger> = triggers.iter().collect();
    let (contract, errors) = compile(&CompileInput {
        generation: 1,
        bootstrap_servers: "127.0.0.1:9092",
        brokers: &[&broker],
        triggers: &trigger_refs,
        channels: &[],
        subscriptions: &[],
        sources: &[],
        resolve: &resolve,
        secret: &no_secret,
    });
    assert!(errors.is_empty(), "{errors:?}");
    let egresses = &contract.resources[0].egresses;
    assert_eq!(egresses.len(), forms.len());
    for ((form, _), (trigger, egress)) in forms.iter().zip(triggers.iter().zip(egresses)) {
        let uri = destination_uri(NS, Some(&trigger.spec.subscriber), &address)
            .unwrap_or_else(|| panic!("{form}: the subscriber resolves"));
        let obs = Observed {
            data_plane: DataPlane::Compiled { applied: true },
            egress: Some(egress.clone()),
            subscriber_uri: Some(uri.clone()),
            ..Observed::default()
        };
        let status = trigger_status(
            trigger,
            BrokerState::Present(true),
            &obs,
            &Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).expect("a time")),
        );
        assert_eq!(
            status.subscriber_uri.as_deref(),
            Some(uri.as_str()),
            "{form}"
        );
        match &egress.destination {
            Target::Url(posted) => assert_eq!(posted, &uri, "{form}"),
            // The dispatcher splits a Knative Service's traffic over its revisions: each
            // revision's URL carries the path status shows on the Service's address.
            Target::Revisions(revisions) => {
                for r in revisions {
                    assert_eq!(path_of(&r.url), path_of(&uri), "{form}: {}", r.url);
                }
            }
        }
    }
}
