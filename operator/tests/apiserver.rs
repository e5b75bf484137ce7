//! The operator against a REAL Kubernetes API server (opt-in: set `FERRY_KUBE_BIN` to a directory
//! holding `kube-apiserver` and `etcd`, then run
//! `cargo nextest run -p ferry-operator --test apiserver --run-ignored only`; see
//! docs/operator.md). Each test starts its own etcd and API server on free ports, applies the
//! CRDs, runs the operator in this process with the embedded log and a dispatcher, applies
//! Knative manifests and waits for the conditions and the events a user would see.

mod kube;

use std::time::Duration;

use ::kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use ferry_api::duck::Status;
use ferry_api::eventing::{Broker, Trigger};
use ferry_api::messaging::{KafkaChannel, Subscription};
use ferry_testkit::sink::Sink;
use serde_json::json;

use kube::{Ferry, FerryOptions, KubeApi, eventually};

const IGNORE: &str = "needs a real kube-apiserver";

fn ready_of(status: &Status) -> Option<(String, Option<String>)> {
    status
        .condition("Ready")
        .map(|c| (format!("{:?}", c.status), c.reason.clone()))
}

async fn apply<K>(api: &Api<K>, manifest: serde_json::Value)
where
    K: ::kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + serde::Serialize,
{
    let name = manifest["metadata"]["name"]
        .as_str()
        .expect("named")
        .to_owned();
    api.patch(
        &name,
        &PatchParams::apply("ferry-e2e").force(),
        &Patch::Apply(&manifest),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {name}: {e}"));
}

/// Waits until `get` reports Ready with status `want` (and reason, when given).
async fn wait_ready<K, F>(
    api: &Api<K>,
    name: &str,
    want: &str,
    reason: Option<&str>,
    status: F,
) -> K
where
    K: ::kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    F: Fn(&K) -> Option<Status>,
{
    let what = format!("{name} Ready={want} {reason:?}");
    eventually(&what, Duration::from_secs(30), || {
        let api = api.clone();
        let status = &status;
        async move {
            let obj = api.get(name).await.ok()?;
            let (s, r) = ready_of(&status(&obj)?)?;
            (s == want && (reason.is_none() || r.as_deref() == reason)).then_some(obj)
        }
    })
    .await
}

async fn post_event(url: &str, id: &str, type_: &str) -> u16 {
    reqwest::Client::new()
        .post(url)
        .header("ce-specversion", "1.0")
        .header("ce-id", id)
        .header("ce-source", "/e2e")
        .header("ce-type", type_)
        .header("content-type", "application/json")
        .body(r#"{"hello":"world"}"#)
        .send()
        .await
        .expect("POST")
        .status()
        .as_u16()
}

fn topics_on(bootstrap: &str) -> Vec<String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    consumer
        .fetch_metadata(None, Duration::from_secs(5))
        .expect("metadata")
        .topics()
        .iter()
        .map(|t| t.name().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real kube-apiserver: set FERRY_KUBE_BIN (docs/operator.md)"]
async fn brokers_triggers_channels_and_subscriptions_deliver_events() {
    let _ = IGNORE;
    let kube = KubeApi::start().await;
    kube.install_crds().await;
    kube.namespace("ferry-system").await;
    kube.namespace("demo").await;
    let ferry = Ferry::start_default(&kube).await;
    let sink = Sink::start().await;
    let client = kube.admin();
    let brokers: Api<Broker> = Api::namespaced(client.clone(), "demo");
    let triggers: Api<Trigger> = Api::namespaced(client.clone(), "demo");

    // A Trigger whose Broker does not exist yet says so, and becomes Ready without any action
    // once the Broker appears.
    apply(
        &triggers,
        json!({
            "apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
            "metadata": {"name": "orders", "namespace": "demo"},
            "spec": {"broker": "default", "filter": {"attributes": {"type": "order.created"}},
                     "subscriber": {"uri": sink.url()}}
        }),
    )
    .await;
    wait_ready(
        &triggers,
        "orders",
        "False",
        Some("BrokerDoesNotExist"),
        |t| t.status.clone().map(|s| s.status),
    )
    .await;
    apply_ferry_broker(&brokers, "demo").await;
    let broker = wait_ready(&brokers, "default", "True", None, |b| {
        b.status.clone().map(|s| s.status)
    })
    .await;
    let address = broker
        .status
        .as_ref()
        .and_then(|s| s.address.address.clone())
        .and_then(|a| a.url)
        .expect("address");
    assert_eq!(address, format!("http://{}/demo/default", ferry.ingress));
    assert!(topics_on(&ferry.bootstrap).contains(&"knative-broker-demo-default".to_owned()));
    let trigger = wait_ready(&triggers, "orders", "True", None, |t| {
        t.status.clone().map(|s| s.status)
    })
    .await;
    let st = trigger.status.expect("status");
    assert_eq!(st.subscriber_uri.as_deref(), Some(sink.url().as_str()));
    for c in [
        "BrokerReady",
        "SubscriberResolved",
        "DependencyReady",
        "SubscriptionReady",
    ] {
        assert!(
            st.status.condition(c).is_some_and(|c| c.is_true()),
            "{c}: {:?}",
            st.status.conditions
        );
    }
    assert_eq!(st.status.observed_generation, trigger.metadata.generation);
    assert!(
        trigger
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"ferry.dev/consumer-group".to_owned())
    );
    // The API server accepted the Events about it: the warning, then Ready.
    let about_orders = events_about(&client, "demo", "orders").await;
    for (type_, reason) in [("Warning", "BrokerDoesNotExist"), ("Normal", "Ready")] {
        assert!(
            about_orders
                .iter()
                .any(|(t, r, by)| t == type_ && r == reason && by == "ferry-operator"),
            "{type_} {reason} Event about Trigger orders: {about_orders:?}"
        );
    }

    // Events flow: the filter passes order.created only.
    assert_eq!(post_event(&address, "e-1", "order.created").await, 202);
    assert_eq!(post_event(&address, "e-2", "order.cancelled").await, 202);
    let got = sink.wait_for_accepted(1, Duration::from_secs(20)).await;
    assert_eq!(got[0].attr("id").as_deref(), Some("e-1"));

    // A subscriber that does not resolve is reported on the Trigger and leaves the others alone.
    apply(&triggers, json!({
        "apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
        "metadata": {"name": "dangling", "namespace": "demo"},
        "spec": {"broker": "default",
                 "subscriber": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "nobody"}}}
    }))
    .await;
    let dangling = wait_ready(
        &triggers,
        "dangling",
        "False",
        Some("SubscriberNotResolved"),
        |t| t.status.clone().map(|s| s.status),
    )
    .await;
    let message = dangling
        .status
        .and_then(|s| s.status.condition("Ready").and_then(|c| c.message.clone()))
        .unwrap_or_default();
    assert!(
        message.contains("Service demo/nobody not found"),
        "{message}"
    );
    // An unsupported field is named.
    apply(&triggers, json!({
        "apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
        "metadata": {"name": "cross", "namespace": "demo"},
        "spec": {"brokerRef": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default", "namespace": "other"},
                 "subscriber": {"uri": sink.url()}}
    }))
    .await;
    let cross = wait_ready(&triggers, "cross", "False", Some("UnsupportedField"), |t| {
        t.status.clone().map(|s| s.status)
    })
    .await;
    let message = cross
        .status
        .and_then(|s| s.status.condition("Ready").and_then(|c| c.message.clone()))
        .unwrap_or_default();
    assert!(message.contains("spec.brokerRef"), "{message}");

    // KafkaChannel + Subscription.
    let channels: Api<KafkaChannel> = Api::namespaced(client.clone(), "demo");
    let subs: Api<Subscription> = Api::namespaced(client.clone(), "demo");
    apply(
        &channels,
        json!({
            "apiVersion": "messaging.knative.dev/v1beta1", "kind": "KafkaChannel",
            "metadata": {"name": "audit", "namespace": "demo"},
            "spec": {"numPartitions": 3, "replicationFactor": 1}
        }),
    )
    .await;
    apply(&subs, json!({
        "apiVersion": "messaging.knative.dev/v1", "kind": "Subscription",
        "metadata": {"name": "audit-sink", "namespace": "demo"},
        "spec": {"channel": {"apiVersion": "messaging.knative.dev/v1beta1", "kind": "KafkaChannel", "name": "audit"},
                 "subscriber": {"uri": sink.url_for("/audit")}}
    }))
    .await;
    let channel = wait_ready(&channels, "audit", "True", None, |c| {
        c.status.clone().map(|s| s.status)
    })
    .await;
    let sub = wait_ready(&subs, "audit-sink", "True", None, |s| {
        s.status.clone().map(|s| s.status)
    })
    .await;
    let channel = eventually(
        "channel lists its ready subscriber",
        Duration::from_secs(20),
        || {
            let channels = channels.clone();
            let uid = sub.metadata.uid.clone();
            let _ = &channel;
            async move {
                let c = channels.get("audit").await.ok()?;
                let st = c.status.clone()?;
                st.subscribers
                    .iter()
                    .any(|s| s.uid == uid && s.ready == ferry_api::duck::ConditionStatus::True)
                    .then_some(c)
            }
        },
    )
    .await;
    let channel_url = channel
        .status
        .and_then(|s| s.address.address)
        .and_then(|a| a.url)
        .expect("channel address");
    sink.clear();
    assert_eq!(post_event(&channel_url, "c-1", "audit.entry").await, 202);
    let got = sink.wait_for_accepted(1, Duration::from_secs(20)).await;
    assert_eq!(got[0].attr("id").as_deref(), Some("c-1"));

    // Deleting runs the finalizers: the consumer group, then the topic, go with the objects.
    triggers
        .delete("orders", &DeleteParams::default())
        .await
        .expect("delete trigger");
    eventually("trigger gone", Duration::from_secs(30), || {
        let triggers = triggers.clone();
        async move {
            triggers
                .get_opt("orders")
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await;
    for t in ["dangling", "cross"] {
        triggers
            .delete(t, &DeleteParams::default())
            .await
            .expect("delete trigger");
    }
    brokers
        .delete("default", &DeleteParams::default())
        .await
        .expect("delete broker");
    eventually("broker gone", Duration::from_secs(30), || {
        let brokers = brokers.clone();
        async move {
            brokers
                .get_opt("default")
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await;
    assert!(!topics_on(&ferry.bootstrap).contains(&"knative-broker-demo-default".to_owned()));

    // The operator's own endpoints.
    let metrics = ferry.operator_metrics().await;
    assert!(
        metrics.contains("ferry_operator_reconcile_total"),
        "{metrics}"
    );
    assert!(metrics.contains("ferry_operator_leader 1"), "{metrics}");
    let _ = PostParams::default();
}

/// Plays the Deployment controller (none runs here): reports `replicas` available.
async fn report_available(client: &::kube::Client, ns: &str, name: &str, replicas: i32) {
    let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), ns);
    let status = json!({"status": {"replicas": replicas, "readyReplicas": replicas,
        "availableReplicas": replicas, "updatedReplicas": replicas, "observedGeneration": 1,
        "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                       {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap_or_else(|e| panic!("deployment {name} status: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real kube-apiserver: set FERRY_KUBE_BIN (docs/operator.md)"]
async fn brokers_without_a_class_follow_config_br_defaults() {
    let kube = KubeApi::start().await;
    kube.install_crds().await;
    kube.namespace("ferry-system").await;
    kube.namespace("demo").await;
    kube.namespace("legacy").await;
    let client = kube.admin();
    // Knative's format: Ferry by default, another class in namespace "legacy", and a default
    // delivery whose dead-letter sink shows in the Broker's status.
    let configmaps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "ferry-system");
    let set_defaults = |yaml: &str| {
        let configmaps = configmaps.clone();
        let manifest = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "ferry-config-br-defaults", "namespace": "ferry-system"},
            "data": {"default-br-config": yaml}
        });
        async move { apply(&configmaps, manifest).await }
    };
    set_defaults("clusterDefault:\n  brokerClass: Ferry\n  delivery:\n    retry: 2\n    deadLetterSink: {uri: 'http://dls.example/'}\nnamespaceDefaults:\n  legacy:\n    brokerClass: MTChannelBasedBroker\n").await;
    let _ferry = Ferry::start_default(&kube).await;
    let classless = |ns: &str| {
        json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
               "metadata": {"name": "plain", "namespace": ns}})
    };
    let demo: Api<Broker> = Api::namespaced(client.clone(), "demo");
    apply(&demo, classless("demo")).await;
    let broker = wait_ready(&demo, "plain", "True", None, |b| {
        b.status.clone().map(|s| s.status)
    })
    .await;
    let status = broker.status.expect("status");
    assert!(
        status
            .status
            .condition("DeadLetterSinkResolved")
            .is_some_and(|c| c.is_true()),
        "the default delivery applies: {:?}",
        status.status.conditions
    );
    assert_eq!(
        status.delivery.dead_letter_sink_uri.as_deref(),
        Some("http://dls.example/")
    );
    // Its Triggers inherit it, into the contract.
    let triggers: Api<Trigger> = Api::namespaced(client.clone(), "demo");
    apply(
        &triggers,
        json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
               "metadata": {"name": "t", "namespace": "demo"},
               "spec": {"broker": "plain", "subscriber": {"uri": "http://sink.example/"}}}),
    )
    .await;
    let trigger = wait_ready(&triggers, "t", "True", None, |t| {
        t.status.clone().map(|s| s.status)
    })
    .await;
    assert_eq!(
        trigger.status.and_then(|s| s.delivery.dead_letter_sink_uri),
        Some("http://dls.example/".to_owned())
    );
    // The stored object is not rewritten: the defaults apply when the operator reads it.
    assert_eq!(broker.metadata.annotations, None);

    // Another class by default in "legacy": Ferry leaves the Broker alone.
    let legacy: Api<Broker> = Api::namespaced(client.clone(), "legacy");
    apply(&legacy, classless("legacy")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let untouched = legacy.get("plain").await.expect("broker");
    assert_eq!(untouched.status, None, "not Ferry's: {untouched:?}");

    // Changing the defaults hands it to Ferry without touching the Broker.
    set_defaults("clusterDefault:\n  brokerClass: Ferry\n").await;
    wait_ready(&legacy, "plain", "True", None, |b| {
        b.status.clone().map(|s| s.status)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real kube-apiserver: set FERRY_KUBE_BIN (docs/operator.md)"]
async fn services_stamp_revisions_deployments_and_routes() {
    use ferry_api::serving::{Configuration, KnativeService, Revision, Route};
    let kube = KubeApi::start().await;
    kube.install_crds().await;
    kube.namespace("ferry-system").await;
    kube.namespace("shop").await;
    let _ferry = Ferry::start_default(&kube).await;
    let client = kube.admin();
    let services: Api<KnativeService> = Api::namespaced(client.clone(), "shop");
    let configurations: Api<Configuration> = Api::namespaced(client.clone(), "shop");
    let revisions: Api<Revision> = Api::namespaced(client.clone(), "shop");
    let routes: Api<Route> = Api::namespaced(client.clone(), "shop");
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "shop");
    let core: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), "shop");
    let ksvc = |message: &str| {
        json!({
            "apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": "cart", "namespace": "shop"},
            "spec": {"template": {"spec": {"containerConcurrency": 4, "containers": [{
                "image": "ghcr.io/ferry-dev/cart:1", "ports": [{"containerPort": 8081}],
                "env": [{"name": "MESSAGE", "value": message}]}]}}}
        })
    };
    apply(&services, ksvc("one")).await;

    let rev1 = eventually("revision cart-00001", Duration::from_secs(30), || {
        let revisions = revisions.clone();
        async move { revisions.get_opt("cart-00001").await.ok()? }
    })
    .await;
    let labels = rev1.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("serving.knative.dev/configuration")
            .map(String::as_str),
        Some("cart")
    );
    assert_eq!(
        labels
            .get("serving.knative.dev/service")
            .map(String::as_str),
        Some("cart")
    );
    let deployment = eventually("deployment", Duration::from_secs(30), || {
        let deployments = deployments.clone();
        async move { deployments.get_opt("cart-00001-deployment").await.ok()? }
    })
    .await;
    let pod = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .expect("pod spec");
    let env: Vec<(String, Option<String>)> = pod.containers[0]
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.value))
        .collect();
    assert!(
        env.contains(&("PORT".into(), Some("8081".into()))),
        "{env:?}"
    );
    assert!(
        env.contains(&("K_REVISION".into(), Some("cart-00001".into()))),
        "{env:?}"
    );
    assert_eq!(deployment.spec.as_ref().and_then(|s| s.replicas), Some(1));
    assert_eq!(
        deployment.metadata.owner_references.unwrap_or_default()[0].name,
        "cart-00001"
    );
    let svc = eventually("revision service", Duration::from_secs(30), || {
        let core = core.clone();
        async move { core.get_opt("cart-00001").await.ok()? }
    })
    .await;
    assert_eq!(
        svc.spec.and_then(|s| s.ports).unwrap_or_default()[0].port,
        80
    );

    // Not available yet: the revision is not Ready, and neither is the Service.
    let pending = wait_ready(&services, "cart", "Unknown", None, |s| {
        s.status.clone().map(|s| s.status)
    })
    .await;
    assert!(pending.status.is_some());
    report_available(&client, "shop", "cart-00001-deployment", 1).await;
    wait_ready(&revisions, "cart-00001", "True", None, |r| {
        r.status.clone().map(|s| s.status)
    })
    .await;
    let cfg = wait_ready(&configurations, "cart", "True", None, |c| {
        c.status.clone().map(|s| s.status)
    })
    .await;
    assert_eq!(
        cfg.status
            .as_ref()
            .and_then(|s| s.fields.latest_ready_revision_name.clone())
            .as_deref(),
        Some("cart-00001")
    );
    let route = wait_ready(&routes, "cart", "True", None, |r| {
        r.status.clone().map(|s| s.status)
    })
    .await;
    let traffic = route
        .status
        .clone()
        .map(|s| s.fields.traffic)
        .unwrap_or_default();
    assert_eq!(traffic.len(), 1);
    assert_eq!(traffic[0].revision_name.as_deref(), Some("cart-00001"));
    assert_eq!(traffic[0].percent, Some(100));
    let service = wait_ready(&services, "cart", "True", None, |s| {
        s.status.clone().map(|s| s.status)
    })
    .await;
    let st = service.status.expect("status");
    assert_eq!(
        st.route.url.as_deref(),
        Some("http://cart.shop.svc.cluster.local"),
        "no config-domain: Knative's default domain"
    );

    // A template change stamps cart-00002; traffic follows the latest ready revision.
    apply(&services, ksvc("two")).await;
    eventually("revision cart-00002", Duration::from_secs(30), || {
        let revisions = revisions.clone();
        async move { revisions.get_opt("cart-00002").await.ok()? }
    })
    .await;
    eventually("deployment 2", Duration::from_secs(30), || {
        let deployments = deployments.clone();
        async move { deployments.get_opt("cart-00002-deployment").await.ok()? }
    })
    .await;
    report_available(&client, "shop", "cart-00002-deployment", 1).await;
    eventually("traffic on cart-00002", Duration::from_secs(30), || {
        let routes = routes.clone();
        async move {
            let r = routes.get("cart").await.ok()?;
            let t = r.status?.fields.traffic;
            (t.len() == 1 && t[0].revision_name.as_deref() == Some("cart-00002")).then_some(())
        }
    })
    .await;
    // The first revision is immutable and still there.
    let rev1_again = revisions.get("cart-00001").await.expect("cart-00001");
    assert_eq!(rev1_again.spec, rev1.spec);
}

/// Renders the chart with `FERRY_HELM` and applies every object to the API server, the way
/// `helm template | kubectl apply -f -` would; returns the kinds applied.
/// Renders the chart and applies every object server-side as the field manager `helm`, as
/// Helm 4 does; `force` takes fields other managers own (an install), without it a field
/// another manager owns with a different value is a conflict (Helm 4's upgrade).
async fn apply_chart(client: &::kube::Client, namespace: &str, force: bool) -> Vec<String> {
    use ::kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    use ::kube::discovery::{Discovery, Scope};
    let helm = std::env::var("FERRY_HELM")
        .expect("FERRY_HELM names the helm binary (scripts/chart-test --install-helm)");
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/ferry");
    let out = std::process::Command::new(helm)
        .args(["template", "ferry", chart, "--namespace", namespace])
        .output()
        .expect("helm runs");
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let mut kinds = Vec::new();
    for doc in serde_yaml::Deserializer::from_slice(&out.stdout) {
        let value = serde_yaml::Value::deserialize(doc).expect("YAML");
        if value.is_null() {
            continue;
        }
        let obj: DynamicObject =
            serde_json::from_value(serde_json::to_value(&value).expect("JSON")).expect("an object");
        let types = obj.types.clone().expect("apiVersion and kind");
        let gvk = GroupVersionKind::try_from(&types).expect("gvk");
        let (resource, caps) = discovery
            .resolve_gvk(&gvk)
            .unwrap_or_else(|| panic!("the API server does not serve {gvk:?}"));
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(
                client.clone(),
                obj.metadata.namespace.as_deref().unwrap_or(namespace),
                &resource,
            ),
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        let name = obj.metadata.name.clone().expect("named");
        let params = PatchParams::apply("helm");
        let params = if force { params.force() } else { params };
        api.patch(&name, &params, &Patch::Apply(&obj))
            .await
            .unwrap_or_else(|e| panic!("{} {name} rejected: {e}", types.kind));
        let _: &ApiResource = &resource;
        kinds.push(types.kind);
    }
    kinds
}

use serde::Deserialize as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real kube-apiserver and helm: set FERRY_KUBE_BIN and FERRY_HELM (docs/operator.md)"]
async fn the_chart_installs_and_its_service_account_is_enough() {
    use ferry_api::serving::{KnativeService, Revision};
    let kube = KubeApi::start().await;
    kube.install_crds().await;
    kube.namespace("ferry-system").await;
    kube.namespace("demo").await;
    let admin = kube.admin();
    let kinds = apply_chart(&admin, "ferry-system", true).await;
    for kind in [
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ServiceAccount",
        "Deployment",
        "StatefulSet",
        "ConfigMap",
        "Secret",
        "Service",
        "PodDisruptionBudget",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "{kind} missing from {kinds:?}"
        );
    }

    // The operator runs with the chart's ServiceAccount token: what the chart's RBAC grants,
    // and nothing more.
    let ferry = Ferry::start(
        &kube,
        FerryOptions {
            namespace: "ferry-system".into(),
            client: chart_client(&kube, "ferry-operator").await,
            args: vec![],
            // The dispatcher follows the contract by its watch alone, with the chart's egress
            // ServiceAccount.
            mount_sync: None,
            dispatcher_client: Some(chart_client(&kube, "ferry-dispatcher").await),
        },
    )
    .await;
    let sink = Sink::start().await;
    let brokers: Api<Broker> = Api::namespaced(admin.clone(), "demo");
    let triggers: Api<Trigger> = Api::namespaced(admin.clone(), "demo");
    apply_ferry_broker(&brokers, "demo").await;
    apply(
        &triggers,
        json!({
            "apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
            "metadata": {"name": "all", "namespace": "demo"},
            "spec": {"broker": "default", "subscriber": {"uri": sink.url()}}
        }),
    )
    .await;
    let broker = wait_ready(&brokers, "default", "True", None, |b| {
        b.status.clone().map(|s| s.status)
    })
    .await;
    wait_ready(&triggers, "all", "True", None, |t| {
        t.status.clone().map(|s| s.status)
    })
    .await;
    let address = broker
        .status
        .and_then(|s| s.address.address)
        .and_then(|a| a.url)
        .expect("address");
    assert_eq!(post_event(&address, "chart-1", "any").await, 202);
    sink.wait_for_accepted(1, Duration::from_secs(20)).await;

    // An upgrade after the operator wrote its contract: Helm 4 applies the chart server-side
    // without forcing. The chart never renders the operator's key, so nothing conflicts, and
    // the contract in force is not reset.
    use k8s_openapi::api::core::v1::Secret;
    let contract_secrets: Api<Secret> = Api::namespaced(admin.clone(), "ferry-system");
    let written = ferry_operator::contract_secret::contract_in(
        &contract_secrets
            .get("ferry-contract")
            .await
            .expect("contract Secret"),
    )
    .expect("a contract")
    .expect("the operator wrote one");
    assert!(written.generation > 0, "generation {}", written.generation);
    apply_chart(&admin, "ferry-system", false).await;
    let after = contract_secrets
        .get("ferry-contract")
        .await
        .expect("contract Secret");
    assert_eq!(
        ferry_operator::contract_secret::contract_in(&after)
            .expect("a contract")
            .map(|c| c.generation),
        Some(written.generation),
        "the upgrade kept the operator's contract"
    );
    let owners: Vec<(String, String)> = after
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| {
            m.fields_v1.as_ref().is_some_and(|f| {
                f.0.pointer(&format!(
                    "/f:data/f:{}",
                    ferry_operator::contract_secret::CONTRACT_KEY
                ))
                .is_some()
            })
        })
        .map(|m| {
            (
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        !owners.is_empty() && owners.iter().all(|(manager, _)| manager != "helm"),
        "only the operator owns its key: {owners:?}"
    );
    assert_eq!(post_event(&address, "chart-2", "any").await, 202);
    sink.wait_for_accepted(2, Duration::from_secs(20)).await;

    let services: Api<KnativeService> = Api::namespaced(admin.clone(), "demo");
    apply(
        &services,
        json!({
            "apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": "hello", "namespace": "demo"},
            "spec": {"template": {"spec": {"containers": [{"image": "ghcr.io/ferry-dev/hello:1"}]}}}
        }),
    )
    .await;
    let revisions: Api<Revision> = Api::namespaced(admin.clone(), "demo");
    eventually("revision hello-00001", Duration::from_secs(30), || {
        let revisions = revisions.clone();
        async move { revisions.get_opt("hello-00001").await.ok()? }
    })
    .await;
    report_available(&admin, "demo", "hello-00001-deployment", 1).await;
    wait_ready(&services, "hello", "True", None, |s| {
        s.status.clone().map(|s| s.status)
    })
    .await;

    // Deleting (finalizers) works with the chart's permissions too.
    triggers
        .delete("all", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("trigger gone", Duration::from_secs(30), || {
        let triggers = triggers.clone();
        async move { triggers.get_opt("all").await.ok()?.is_none().then_some(()) }
    })
    .await;
    // Events are created with the chart's permissions (a refusal would only be logged).
    let about_broker = events_about(&admin, "demo", "default").await;
    assert!(
        about_broker
            .iter()
            .any(|(t, r, by)| t == "Normal" && r == "Ready" && by == "ferry-operator"),
        "Ready Event about Broker default: {about_broker:?}"
    );
    let metrics = ferry.operator_metrics().await;
    assert!(
        !metrics.contains("reason=\"forbidden\""),
        "the chart's RBAC denied something:\n{metrics}"
    );
    assert!(metrics.contains("ferry_operator_leader 1"), "{metrics}");

    // An ingress pod's token reads its own contract, by name, and no other Secret: not the full
    // contract, which carries KafkaSource credentials.
    let ingress = chart_client(&kube, "ferry-dispatcher-ingress").await;
    let secrets: Api<Secret> = Api::namespaced(ingress, "ferry-system");
    secrets
        .get("ferry-contract-ingress")
        .await
        .expect("the ingress contract");
    let by_name = ::kube::api::ListParams::default().fields("metadata.name=ferry-contract-ingress");
    assert_eq!(
        secrets
            .list(&by_name)
            .await
            .expect("list by name")
            .items
            .len(),
        1
    );
    for denied in [
        secrets.get("ferry-contract").await.err(),
        secrets.list(&Default::default()).await.err(),
    ] {
        assert!(
            matches!(&denied, Some(::kube::Error::Api(e)) if e.code == 403),
            "{denied:?}"
        );
    }
}

/// A client with a token of one of the chart's ServiceAccounts (after [`apply_chart`]): what the
/// chart's RBAC grants, and nothing more.
async fn chart_client(kube: &KubeApi, service_account: &str) -> ::kube::Client {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let sa: Api<ServiceAccount> = Api::namespaced(kube.admin(), "ferry-system");
    let token = sa
        .create_token_request(
            service_account,
            &PostParams::default(),
            &TokenRequest {
                spec: TokenRequestSpec {
                    audiences: vec![],
                    expiration_seconds: Some(3600),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("token")
        .status
        .expect("token status")
        .token;
    kube.client(&token)
}

/// `(type, reason, reportingController)` of the events.k8s.io Events about objects named `name`
/// in `ns`.
async fn events_about(
    client: &::kube::Client,
    ns: &str,
    name: &str,
) -> Vec<(String, String, String)> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    events
        .list(&Default::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.reporting_controller.unwrap_or_default(),
            )
        })
        .collect()
}

/// Plays the EndpointSlice controller: the revision's Service has one ready endpoint.
async fn publish_endpoint(client: &::kube::Client, ns: &str, revision: &str, ip: &str, port: u16) {
    let api: Api<k8s_openapi::api::discovery::v1::EndpointSlice> =
        Api::namespaced(client.clone(), ns);
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{revision}-abcde"), "namespace": ns,
                     "labels": {"kubernetes.io/service-name": revision, "serving.knative.dev/revision": revision}},
        // The API server refuses loopback IPs in EndpointSlices; the test sink's host name
        // (an FQDN slice) stands in for a pod IP.
        "addressType": "FQDN",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}]
    });
    api.patch(
        &format!("{revision}-abcde"),
        &PatchParams::apply("endpointslice-controller").force(),
        &Patch::Apply(&slice),
    )
    .await
    .expect("endpoint slice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real kube-apiserver: set FERRY_KUBE_BIN (docs/operator.md)"]
async fn events_reach_ready_revision_endpoints_and_idle_revisions_scale_to_zero() {
    use ferry_api::serving::KnativeService;
    use k8s_openapi::api::apps::v1::Deployment;
    let kube = KubeApi::start().await;
    kube.install_crds().await;
    kube.namespace("ferry-system").await;
    kube.namespace("shop").await;
    let admin = kube.admin();
    // Knative's config-autoscaler with short windows, as a cluster admin would set it.
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(admin.clone(), "ferry-system");
    apply(&cms, json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "ferry-config-autoscaler", "namespace": "ferry-system"},
        "data": {"stable-window": "6s", "scale-to-zero-grace-period": "1s", "tick-interval": "1s"}
    }))
    .await;
    let ferry = Ferry::start(
        &kube,
        FerryOptions {
            namespace: "ferry-system".into(),
            client: admin.clone(),
            args: vec![],
            mount_sync: Some(Duration::from_millis(100)),
            dispatcher_client: None,
        },
    )
    .await;
    let replica = Sink::start().await;
    let services: Api<KnativeService> = Api::namespaced(admin.clone(), "shop");
    apply(
        &services,
        json!({
            "apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": "cart", "namespace": "shop"},
            "spec": {"template": {"spec": {"containerConcurrency": 2,
                "containers": [{"image": "ghcr.io/ferry-dev/cart:1"}]}}}
        }),
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), "shop");
    eventually("deployment", Duration::from_secs(30), || {
        let deployments = deployments.clone();
        async move { deployments.get_opt("cart-00001-deployment").await.ok()? }
    })
    .await;
    report_available(&admin, "shop", "cart-00001-deployment", 1).await;
    // The pod's address is the test sink: events for the revision must reach it.
    publish_endpoint(
        &admin,
        "shop",
        "cart-00001",
        "127.0.0.1",
        replica.addr().port(),
    )
    .await;
    wait_ready(&services, "cart", "True", None, |s| {
        s.status.clone().map(|s| s.status)
    })
    .await;

    let brokers: Api<Broker> = Api::namespaced(admin.clone(), "shop");
    let triggers: Api<Trigger> = Api::namespaced(admin.clone(), "shop");
    apply_ferry_broker(&brokers, "shop").await;
    apply(&triggers, json!({
        "apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
        "metadata": {"name": "to-cart", "namespace": "shop"},
        "spec": {"broker": "default",
                 "subscriber": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "cart"}}}
    }))
    .await;
    let broker = wait_ready(&brokers, "default", "True", None, |b| {
        b.status.clone().map(|s| s.status)
    })
    .await;
    wait_ready(&triggers, "to-cart", "True", None, |t| {
        t.status.clone().map(|s| s.status)
    })
    .await;

    // The contract routes the Trigger to the revision and lists its ready endpoint.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(admin.clone(), "ferry-system");
    let stored = secrets.get("ferry-contract").await.expect("contract");
    let contract = ferry_operator::contract_secret::contract_in(&stored)
        .expect("valid")
        .expect("present");
    let activation = contract
        .activation
        .iter()
        .find(|a| a.revision == "shop/cart-00001")
        .expect("activation for the revision");
    assert_eq!(activation.url, "http://cart-00001.shop.svc.cluster.local");
    assert_eq!(
        activation.endpoints,
        vec![format!("http://127.0.0.1:{}", replica.addr().port())]
    );
    assert_eq!(activation.container_concurrency, 2);

    let address = broker
        .status
        .and_then(|s| s.address.address)
        .and_then(|a| a.url)
        .expect("address");
    for i in 0..5 {
        assert_eq!(
            post_event(&address, &format!("cart-{i}"), "cart.item.added").await,
            202
        );
    }
    let got = replica.wait_for_accepted(5, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 5);

    // Idle: the autoscaler (stable window 6 s + grace 1 s) takes the Deployment to zero.
    eventually(
        "the idle revision scaled to zero",
        Duration::from_secs(60),
        || {
            let deployments = deployments.clone();
            async move {
                let d = deployments.get("cart-00001-deployment").await.ok()?;
                (d.spec?.replicas == Some(0)).then_some(())
            }
        },
    )
    .await;
    let _ = &ferry;
}

/// Everything the process logs through `tracing`, from [`capture_logs`] on.
#[derive(Clone, Default)]
struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs a process-wide `tracing` subscriber at `debug` (the operator and the dispatcher run
/// in this process) that keeps every line; `None` if another subscriber was installed first.
fn capture_logs() -> Option<CapturedLogs> {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter("debug,hyper=info,hyper_util=info,h2=info,tower=info,rustls=info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .ok()
        .map(|()| logs)
}

/// Creates `topic` on the log at `bootstrap`.
async fn create_topic_with(client: &rdkafka::ClientConfig, topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = client.create().expect("admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().request_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("topic {t}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real kube-apiserver and helm: set FERRY_KUBE_BIN and FERRY_HELM (docs/operator.md)"]
async fn kafka_source_net_secrets_reach_the_contract_secret_and_never_the_log() {
    use ferry_api::sources::KafkaSource;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    // Installed before anything logs, so the operator's whole output is kept.
    let logs = capture_logs();
    let kube = KubeApi::start().await;
    kube.install_crds().await;
    kube.namespace("ferry-system").await;
    kube.namespace("demo").await;
    let admin = kube.admin();
    // The chart's objects and the operator with the chart's ServiceAccount: its RBAC (get on
    // Secrets by name; the contract Secret written in the release namespace) is enough.
    apply_chart(&admin, "ferry-system", true).await;
    let ferry = Ferry::start(
        &kube,
        FerryOptions {
            namespace: "ferry-system".into(),
            client: chart_client(&kube, "ferry-operator").await,
            args: vec![],
            mount_sync: Some(Duration::from_millis(100)),
            dispatcher_client: None,
        },
    )
    .await;
    // The source reads its own cluster, which takes only SCRAM-SHA-512 over TLS.
    const PASSWORD: &str = "pw-9c1f0e7d-never-in-a-log";
    const USER: &str = "payments-reader";
    let dir = tempfile::tempdir().expect("a temp dir");
    let certs = ferry_testkit::tls::TestCertificates::generate(dir.path());
    let users = dir.path().join("users");
    std::fs::write(&users, format!("{USER}:{PASSWORD}\n")).expect("users file");
    let path = |p: &std::path::Path| p.to_str().expect("UTF-8 path").to_owned();
    let theirs = ferry_broker::Broker::start(
        ferry_broker::BrokerConfig::local(
            &dir.path().join("log"),
            &[
                "--sasl-users",
                &path(&users),
                "--sasl-mechanisms",
                "SCRAM-SHA-512",
                "--tls-cert",
                &path(&certs.server_cert),
                "--tls-key",
                &path(&certs.server_key),
            ],
        )
        .expect("broker flags"),
    )
    .await
    .expect("their cluster starts");
    let their_bootstrap = theirs.kafka_addr.to_string();
    let mut their_client = rdkafka::ClientConfig::new();
    their_client
        .set("bootstrap.servers", &their_bootstrap)
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", USER)
        .set("sasl.password", PASSWORD)
        .set("ssl.ca.location", path(&certs.ca));
    create_topic_with(&their_client, "payments").await;
    let sink = Sink::start().await;

    // Every spec.net value comes from one Secret that does not exist yet.
    let key = |k: &str| json!({"secretKeyRef": {"name": "kafka-creds", "key": k}});
    let sources: Api<KafkaSource> = Api::namespaced(admin.clone(), "demo");
    apply(
        &sources,
        json!({
            "apiVersion": "sources.knative.dev/v1beta1", "kind": "KafkaSource",
            "metadata": {"name": "payments", "namespace": "demo"},
            "spec": {
                "bootstrapServers": [their_bootstrap.clone()],
                "topics": ["payments"],
                "net": {
                    "sasl": {"enable": true, "user": key("user"), "password": key("password"),
                             "type": key("saslType")},
                    "tls": {"enable": true, "caCert": key("ca.crt")},
                },
                "sink": {"uri": sink.url()},
            }
        }),
    )
    .await;
    let waiting = wait_ready(
        &sources,
        "payments",
        "False",
        Some("NetSecretNotResolved"),
        |s| s.status.clone().map(|s| s.status),
    )
    .await;
    let message = waiting
        .status
        .as_ref()
        .and_then(|s| s.status.condition("Ready"))
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("demo/kafka-creds"),
        "the condition names the Secret: {message}"
    );

    // The Secret appears. Nothing watches Secrets (the operator may only get them by name), so
    // the source picks it up at its next re-read (every 10 s while one is missing).
    let ca = std::fs::read_to_string(&certs.ca).expect("the CA's PEM");
    let user_secrets: Api<Secret> = Api::namespaced(admin.clone(), "demo");
    apply(
        &user_secrets,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "kafka-creds", "namespace": "demo"},
            "type": "Opaque",
            "stringData": {"user": USER, "password": PASSWORD, "saslType": "SCRAM-SHA-512",
                           "ca.crt": ca},
        }),
    )
    .await;
    eventually(
        "KafkaSource payments Ready=True",
        Duration::from_secs(60),
        || {
            let sources = sources.clone();
            async move {
                let s = sources.get("payments").await.ok()?;
                let (ready, _) = ready_of(&s.status?.status)?;
                (ready == "True").then_some(())
            }
        },
    )
    .await;

    // The contract, in the Secret (and in no ConfigMap), carries the credentials.
    let contract_secrets: Api<Secret> = Api::namespaced(admin.clone(), "ferry-system");
    let stored = contract_secrets
        .get("ferry-contract")
        .await
        .expect("the contract Secret");
    assert_eq!(stored.type_.as_deref(), Some("Opaque"));
    let contract = ferry_operator::contract_secret::contract_in(&stored)
        .expect("a valid contract")
        .expect("present");
    let resource = contract
        .resources
        .iter()
        .find(|r| r.reference.kind == "KafkaSource" && r.reference.name == "payments")
        .expect("the KafkaSource's resource");
    let auth = serde_json::to_value(&resource.auth).expect("JSON");
    assert_eq!(
        auth["sasl"]["mechanism"], "SCRAM-SHA-512",
        "{:?}",
        resource.auth
    );
    assert_eq!(auth["sasl"]["username"], USER);
    assert!(
        auth["sasl"]["password"] == PASSWORD,
        "the contract carries the password"
    );
    assert_eq!(auth["tls"]["caCert"], ca.as_str());
    let configmaps: Api<ConfigMap> = Api::namespaced(admin.clone(), "ferry-system");
    assert!(
        configmaps
            .get_opt("ferry-contract")
            .await
            .expect("get")
            .is_none(),
        "no contract ConfigMap"
    );

    // The dispatcher reads their cluster with those credentials: a record becomes an event.
    let producer: rdkafka::producer::FutureProducer =
        their_client.create().expect("their producer");
    producer
        .send(
            rdkafka::producer::FutureRecord::to("payments")
                .key("p-1")
                .payload("{\"amount\":3}"),
            Duration::from_secs(10),
        )
        .await
        .expect("produced to their cluster");
    let got = sink.wait_for_accepted(1, Duration::from_secs(30)).await;
    assert_eq!(
        got[0].attr("type").as_deref(),
        Some("dev.knative.kafka.event")
    );
    assert_eq!(got[0].attr("key").as_deref(), Some("p-1"));

    let metrics = ferry.operator_metrics().await;
    assert!(
        !metrics.contains("reason=\"forbidden\""),
        "the chart's RBAC denied something:\n{metrics}"
    );
    match logs {
        Some(logs) => {
            let text = logs.text();
            assert!(
                text.contains("contract written"),
                "the operator's log was captured:\n{text}"
            );
            assert!(
                !text.contains(PASSWORD),
                "the SASL password reached the log"
            );
        }
        None => eprintln!("another tracing subscriber was installed first; log not checked"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real kube-apiserver: set FERRY_KUBE_BIN (docs/operator.md)"]
async fn v1_kafka_sources_and_multi_container_services_are_kept_and_reconciled() {
    use ::kube::api::{ApiResource, DynamicObject, GroupVersionKind, PatchParams};
    use ferry_api::serving::{KnativeService, Revision};
    use ferry_api::sources::KafkaSource;
    let kube = KubeApi::start().await;
    kube.install_crds().await;
    kube.namespace("ferry-system").await;
    kube.namespace("shop").await;
    let ferry = Ferry::start_default(&kube).await;
    let client = kube.admin();

    // A KafkaSource written at sources.knative.dev/v1, as Knative's docs write them. The API
    // server stores it (v1beta1 is the storage version, same schema) and serves it at both
    // versions; the operator, which watches v1beta1, reconciles it.
    let v1 = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("sources.knative.dev", "v1", "KafkaSource"),
        "kafkasources",
    );
    let dynamic: Api<DynamicObject> = Api::namespaced_with(client.clone(), "shop", &v1);
    let source = json!({
        "apiVersion": "sources.knative.dev/v1", "kind": "KafkaSource",
        "metadata": {"name": "orders-source", "namespace": "shop"},
        "spec": {
            "consumerGroup": "orders-group",
            "bootstrapServers": [ferry.bootstrap.clone()],
            "topics": ["orders"],
            "sink": {"uri": "http://sink.shop.svc.cluster.local"}
        }
    });
    dynamic
        .patch(
            "orders-source",
            &PatchParams::apply("e2e").force(),
            &::kube::api::Patch::Apply(&source),
        )
        .await
        .expect("the API server accepts a v1 KafkaSource");
    let at_v1 = dynamic.get("orders-source").await.expect("served at v1");
    assert_eq!(
        at_v1.types.as_ref().map(|t| t.api_version.as_str()),
        Some("sources.knative.dev/v1")
    );
    let sources: Api<KafkaSource> = Api::namespaced(client.clone(), "shop");
    let at_v1beta1 = sources
        .get("orders-source")
        .await
        .expect("served at v1beta1");
    assert_eq!(at_v1beta1.spec.topics, ["orders"]);
    let reconciled = eventually(
        "the operator reconciles the v1 source",
        Duration::from_secs(30),
        || {
            let sources = sources.clone();
            async move {
                let s = sources.get_opt("orders-source").await.ok()??;
                let status = s.status.clone()?;
                (status.status.observed_generation == s.metadata.generation
                    && status.status.condition("Ready").is_some())
                .then_some(s)
            }
        },
    )
    .await;
    assert!(reconciled.status.is_some());

    // A multi-container Service: the serving container names the port, the sidecar runs
    // beside it in the same pod.
    let services: Api<KnativeService> = Api::namespaced(client.clone(), "shop");
    let revisions: Api<Revision> = Api::namespaced(client.clone(), "shop");
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "shop");
    apply(
        &services,
        json!({
            "apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": "duo", "namespace": "shop"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "ghcr.io/ferry-dev/app:1",
                 "ports": [{"containerPort": 8881}]},
                {"name": "helper", "image": "ghcr.io/ferry-dev/helper:1"}
            ]}}}
        }),
    )
    .await;
    let deployment = eventually(
        "the multi-container deployment",
        Duration::from_secs(30),
        || {
            let deployments = deployments.clone();
            async move { deployments.get_opt("duo-00001-deployment").await.ok()? }
        },
    )
    .await;
    let pod = deployment
        .spec
        .and_then(|s| s.template.spec)
        .expect("pod spec");
    let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["app", "helper"]);
    let port = |c: &k8s_openapi::api::core::v1::Container| {
        c.env
            .clone()
            .unwrap_or_default()
            .into_iter()
            .find(|e| e.name == "PORT")
            .and_then(|e| e.value)
    };
    assert_eq!(port(&pod.containers[0]).as_deref(), Some("8881"));
    assert_eq!(port(&pod.containers[1]), None);
    report_available(&client, "shop", "duo-00001-deployment", 1).await;
    wait_ready(&revisions, "duo-00001", "True", None, |r| {
        r.status.clone().map(|s| s.status)
    })
    .await;
    wait_ready(&services, "duo", "True", None, |s| {
        s.status.clone().map(|s| s.status)
    })
    .await;
}

/// Applies the Ferry-class Broker `default` in `ns`.
async fn apply_ferry_broker(brokers: &Api<Broker>, ns: &str) {
    apply(
        brokers,
        json!({
            "apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
            "metadata": {"name": "default", "namespace": ns,
                         "annotations": {"eventing.knative.dev/broker.class": "Ferry"}},
        }),
    )
    .await;
}

/// Waits for Broker `name` to be Ready; its address.
async fn ready_broker_address(brokers: &Api<Broker>, name: &str) -> String {
    let broker = wait_ready(brokers, name, "True", None, |b| {
        b.status.clone().map(|s| s.status)
    })
    .await;
    broker
        .status
        .and_then(|s| s.address.address)
        .and_then(|a| a.url)
        .expect("address")
}

/// Applies Trigger `name` of Broker `default` in `demo`, delivering to `uri`, and waits until
/// it is Ready.
async fn apply_ready_trigger(triggers: &Api<Trigger>, name: &str, uri: &str) {
    apply(
        triggers,
        json!({
            "apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
            "metadata": {"name": name, "namespace": "demo"},
            "spec": {"broker": "default", "subscriber": {"uri": uri}}
        }),
    )
    .await;
    wait_ready(triggers, name, "True", None, |t| {
        t.status.clone().map(|s| s.status)
    })
    .await;
}

/// Posts `type_` events to `address` every 20 ms until `sink` has `count` in all; the time from
/// the first post to that delivery.
async fn post_until_delivered(address: &str, sink: &Sink, count: usize, id: &str) -> Duration {
    let start = std::time::Instant::now();
    for attempt in 0..500 {
        let _ = post_event(address, &format!("{id}-{attempt}"), "order.created").await;
        if sink.accepted().len() >= count {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no delivery for {id} within 500 posts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real kube-apiserver: set FERRY_KUBE_BIN (docs/operator.md)"]
async fn contract_changes_reach_the_dispatcher_by_watch_and_outlive_the_api_server() {
    let mut kube = KubeApi::start().await;
    kube.install_crds().await;
    kube.namespace("ferry-system").await;
    kube.namespace("demo").await;
    let client = kube.admin();
    // The mounted file never changes: a kubelet that has not synced the Secret yet (it does so
    // only on its sync period, a minute or more). Every change must come by the watch.
    let ferry = Ferry::start(
        &kube,
        FerryOptions {
            namespace: "ferry-system".into(),
            client: client.clone(),
            args: vec![],
            mount_sync: None,
            dispatcher_client: None,
        },
    )
    .await;
    let sink = Sink::start().await;
    let brokers: Api<Broker> = Api::namespaced(client.clone(), "demo");
    let triggers: Api<Trigger> = Api::namespaced(client.clone(), "demo");
    apply_ferry_broker(&brokers, "demo").await;
    let address = ready_broker_address(&brokers, "default").await;

    // Apply → Ready → first delivery, with the file still the empty contract.
    let applied = std::time::Instant::now();
    apply_ready_trigger(&triggers, "orders", &sink.url()).await;
    let ready = applied.elapsed();
    post_until_delivered(&address, &sink, 1, "first").await;
    let delivered = applied.elapsed();
    // The file never changed, so the watch carried the contract.
    eprintln!("Trigger applied → Ready {ready:?} → first delivery {delivered:?}");
    let generation = ferry.dispatcher.generation().expect("a contract in force");
    assert!(generation > 0, "generation {generation}");

    // The API server goes away: the contract in force keeps delivering. (Counted by id: a
    // "first-N" post before the first delivery may still arrive meanwhile.)
    kube.stop_apiserver();
    for i in 0..5 {
        assert_eq!(
            post_event(&address, &format!("outage-{i}"), "order.created").await,
            202
        );
    }
    let outage_delivered = || {
        let ids: std::collections::BTreeSet<String> = sink
            .accepted()
            .into_iter()
            .filter_map(|r| r.headers.get("ce-id").cloned())
            .filter(|id| id.starts_with("outage-"))
            .collect();
        ids.len()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while outage_delivered() < 5 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        outage_delivered(),
        5,
        "every event posted during the outage delivered"
    );
    assert_eq!(ferry.dispatcher.generation(), Some(generation));
}

/// Knative's `config-observability` in the cluster: the operator reads it, the contract carries
/// it to the dispatcher, and both export spans to the collector it names. An event posted with
/// a `traceparent` yields one trace from the ingress to the subscriber, who sees it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real kube-apiserver: set FERRY_KUBE_BIN (docs/operator.md)"]
async fn config_observability_sends_the_dispatchers_and_the_operators_spans() {
    use ferry_testkit::otlp::OtlpReceiver;
    let kube = KubeApi::start().await;
    kube.install_crds().await;
    kube.namespace("ferry-system").await;
    kube.namespace("demo").await;
    let collector = OtlpReceiver::start().await;
    let client = kube.admin();
    let configmaps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "ferry-system");
    apply(
        &configmaps,
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "ferry-config-observability", "namespace": "ferry-system"},
            "data": {"tracing-protocol": "grpc",
                     "tracing-endpoint": collector.grpc_endpoint(),
                     "tracing-sampling-rate": "1"}
        }),
    )
    .await;
    let ferry = Ferry::start_default(&kube).await;
    let sink = Sink::start().await;
    let brokers: Api<Broker> = Api::namespaced(client.clone(), "demo");
    let triggers: Api<Trigger> = Api::namespaced(client.clone(), "demo");
    apply_ferry_broker(&brokers, "demo").await;
    let address = ready_broker_address(&brokers, "default").await;
    apply_ready_trigger(&triggers, "all", &sink.url()).await;
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let response = reqwest::Client::new()
        .post(&address)
        .header("ce-specversion", "1.0")
        .header("ce-id", "traced-1")
        .header("ce-source", "/e2e")
        .header("ce-type", "t")
        .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 202);
    let got = sink.wait_for_accepted(1, Duration::from_secs(30)).await;
    let header = got[0]
        .headers
        .get("traceparent")
        .cloned()
        .unwrap_or_default();
    assert!(header.starts_with(&format!("00-{trace}-")), "{header}");

    // The SDK sends its batch every 5 s.
    let spans = collector
        .wait_for(Duration::from_secs(30), |s| {
            let names: Vec<&str> = s
                .iter()
                .filter(|s| s.trace_id == trace)
                .map(|s| s.name.as_str())
                .collect();
            ["ingress", "append", "deliver", "attempt"]
                .iter()
                .all(|n| names.contains(n))
                && s.iter().any(|s| {
                    s.service == "ferry-operator" && s.attr("k8s.resource.kind") == Some("Trigger")
                })
        })
        .await;
    let in_trace: Vec<_> = spans.iter().filter(|s| s.trace_id == trace).collect();
    for name in ["ingress", "append", "deliver", "attempt"] {
        assert!(
            in_trace
                .iter()
                .any(|s| s.name == name && s.service == "ferry-dispatcher"),
            "{name} in the caller's trace: {spans:#?}"
        );
    }
    let attempt = in_trace.iter().find(|s| s.name == "attempt").unwrap();
    assert!(
        header.contains(&attempt.span_id),
        "the subscriber's parent is the attempt"
    );
    let reconcile = spans
        .iter()
        .find(|s| s.service == "ferry-operator" && s.attr("k8s.resource.kind") == Some("Trigger"))
        .expect("a reconcile span");
    assert_eq!(reconcile.name, "reconcile");
    assert_eq!(reconcile.attr("k8s.namespace.name"), Some("demo"));
    assert_eq!(reconcile.attr("k8s.resource.name"), Some("all"));
    assert!(spans.iter().all(|s| s.protocol == "grpc"));
    drop(ferry);
}
