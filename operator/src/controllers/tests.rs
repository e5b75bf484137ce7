//! Controller tests: each reconcile runs against a scripted API server (kube-rs's `tower_test`
//! pattern, as in controller-rs) and, for the eventing kinds, the real embedded log on
//! loopback. The test plays the API server: it expects each request the reconcile makes, in
//! order, asserts what matters in it, and answers as Kubernetes would. Every wait is bounded,
//! so a request that never comes fails the test instead of hanging it.
//!
//! The publisher is put in the state its loop would reach with [`Cluster::compile`]: the
//! stores compiled into one contract generation, with the topics the log holds and the
//! generation the dispatchers report.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ferry_api::eventing::{Broker, Trigger};
use ferry_api::messaging::{KafkaChannel, Subscription};
use ferry_api::serving::{Configuration, Revision};
use ferry_api::sources::KafkaSource;
use http::{Method, Request, Response};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::watcher::Event;
use kube::{Client, Resource};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tower_test::mock::{self, Handle, SendResponse};

use super::Context;
use crate::args::Args;
use crate::error::Error;
use crate::http::Metrics;
use crate::publisher::{Publisher, compile_stores};
use crate::status::Topic;
use crate::topics::Topics;
use crate::world::Stores;
use ferry_control::contract_inputs::{Compiled, Environment};

/// How long any one step may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The query of every server-side apply the operator makes.
const SSA: &str = "?&force=true&fieldManager=ferry-operator";
/// The namespace every object lives in.
const NS: &str = "ns";
/// The dispatcher ingress the operator is configured with.
const INGRESS: &str = "http://ingress.test";
/// Where the event recorder creates Events about objects in [`NS`].
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/ns/events?";

// ---------------------------------------------------------------------------------------------
// The API server
// ---------------------------------------------------------------------------------------------

/// The API server's side of a test: takes the reconcile's requests one at a time.
struct ApiServer {
    handle: Handle<Request<Body>, Response<Body>>,
    pending: Option<SendResponse<Response<Body>>>,
}

impl ApiServer {
    /// Waits for the next request and returns its method, URI (path and query) and JSON body
    /// (`Null` when it has none). Answer it with [`ApiServer::reply`].
    async fn next(&mut self, waiting_for: &str) -> (Method, String, Value) {
        assert!(
            self.pending.is_none(),
            "the previous request was not answered"
        );
        let (request, send) = tokio::time::timeout(TIMEOUT, self.handle.next_request())
            .await
            .unwrap_or_else(|_| {
                panic!("no {waiting_for} within {TIMEOUT:?}; did the reconcile return early?")
            })
            .expect("the client is still alive");
        let (method, uri) = (request.method().clone(), request.uri().to_string());
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .expect("request body");
        self.pending = Some(send);
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON request body")
        };
        (method, uri, body)
    }

    /// Waits for the next request, asserts its method and URI (path and query), and returns its
    /// JSON body. Answer it with [`ApiServer::reply`].
    async fn expect(&mut self, method: Method, uri: &str) -> Value {
        let (got_method, got_uri, body) = self.next(&format!("{method} {uri}")).await;
        assert_eq!(
            (got_method, got_uri.as_str()),
            (method, uri),
            "unexpected request"
        );
        body
    }

    /// Answers the request last expected with `200 OK` and `body`.
    fn reply(&mut self, body: Value) {
        let send = self.pending.take().expect("a request to answer");
        let body = serde_json::to_vec(&body).expect("JSON");
        send.send_response(Response::new(Body::from(body)));
    }

    /// Answers the request last expected with `code` and a Kubernetes `Status` saying `reason`.
    fn reply_error(&mut self, code: u16, reason: &str) {
        let send = self.pending.take().expect("a request to answer");
        let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                          "reason": reason, "code": code, "message": reason});
        let mut response = Response::new(Body::from(serde_json::to_vec(&body).expect("JSON")));
        *response.status_mut() = http::StatusCode::from_u16(code).expect("a status code");
        send.send_response(response);
    }

    /// Asserts that no request arrives for a while.
    async fn expect_nothing(&mut self) {
        let next = tokio::time::timeout(Duration::from_millis(200), self.handle.next_request());
        if let Ok(Some((request, _))) = next.await {
            panic!("unexpected {} {}", request.method(), request.uri());
        }
    }

    /// Expects a Route's placeholder Service `name` to be read (answered with `existing`, or
    /// 404) and then applied; returns what was applied.
    async fn placeholder(
        &mut self,
        collection: &str,
        name: &str,
        existing: Option<Value>,
    ) -> Value {
        self.expect(Method::GET, &format!("{collection}/{name}"))
            .await;
        match existing {
            Some(v) => self.reply(v),
            None => self.reply_error(404, "NotFound"),
        }
        self.applied(collection, name).await
    }

    /// Expects the list of a Route's placeholder Services and answers with `items`.
    async fn placeholders_listed(&mut self, collection: &str, route: &str, items: Value) {
        self.expect(
            Method::GET,
            &format!("{collection}?&labelSelector=serving.knative.dev%2Froute%3D{route}"),
        )
        .await;
        self.reply(json!({"apiVersion": "v1", "kind": "ServiceList",
                          "metadata": {"resourceVersion": "1"}, "items": items}));
    }

    /// Expects kube's `finalizer()` adding `finalizer` to `obj` (which has none) by JSON patch
    /// on `collection/<name>`, and answers with the object carrying it.
    async fn finalizer_added<K: Resource + Serialize>(
        &mut self,
        collection: &str,
        obj: &K,
        finalizer: &str,
    ) {
        let patch = self
            .expect(Method::PATCH, &format!("{collection}/{}?", name_of(obj)))
            .await;
        assert_eq!(
            patch,
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": [finalizer]},
            ])
        );
        let mut answer = to_json(obj);
        answer["metadata"]["finalizers"] = json!([finalizer]);
        self.reply(answer);
    }

    /// Expects kube's `finalizer()` removing `finalizer` (the only one) from `obj`, and answers
    /// with the object without it.
    async fn finalizer_removed<K: Resource + Serialize>(
        &mut self,
        collection: &str,
        obj: &K,
        finalizer: &str,
    ) {
        let patch = self
            .expect(Method::PATCH, &format!("{collection}/{}?", name_of(obj)))
            .await;
        assert_eq!(
            patch,
            json!([
                {"op": "test", "path": "/metadata/finalizers/0", "value": finalizer},
                {"op": "remove", "path": "/metadata/finalizers/0"},
            ])
        );
        let mut answer = to_json(obj);
        answer["metadata"]["finalizers"] = json!([]);
        self.reply(answer);
    }

    /// Expects the server-side apply of `obj`'s status (`apiVersion`, `kind` and `status`
    /// only, field manager `ferry-operator`, forced) and answers with the object carrying it.
    /// Returns the status written and the object as the store sees it next.
    async fn status<K>(&mut self, collection: &str, obj: &K) -> (Value, K)
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    {
        let uri = format!("{collection}/{}/status{SSA}", name_of(obj));
        let body = self.expect(Method::PATCH, &uri).await;
        assert_eq!(body["apiVersion"], K::api_version(&()).as_ref(), "{body}");
        assert_eq!(body["kind"], K::kind(&()).as_ref(), "{body}");
        let keys: Vec<&String> = body.as_object().expect("an object").keys().collect();
        assert_eq!(
            keys,
            ["apiVersion", "kind", "status"],
            "only the status is applied"
        );
        let status = body["status"].clone();
        let updated = with_status(obj, status.clone());
        self.reply(to_json(&updated));
        (status, updated)
    }

    /// Expects the server-side apply of an owned object (`collection/<name>`) and answers with
    /// it. Returns the object applied.
    async fn applied(&mut self, collection: &str, name: &str) -> Value {
        let body = self
            .expect(Method::PATCH, &format!("{collection}/{name}{SSA}"))
            .await;
        assert_eq!(body["metadata"]["name"], name, "{body}");
        assert!(
            body.get("status").is_none(),
            "owned objects are applied without status"
        );
        self.reply(body.clone());
        body
    }

    /// Expects a Kubernetes Event about `regarding` of `type_` (`Normal`, `Warning`) and
    /// `reason`, and answers with it.
    async fn event(&mut self, regarding: &str, type_: &str, reason: &str) {
        let event = self.expect(Method::POST, EVENTS).await;
        assert_eq!(
            (
                event["regarding"]["name"].as_str(),
                event["type"].as_str(),
                event["reason"].as_str(),
            ),
            (Some(regarding), Some(type_), Some(reason)),
            "{event}"
        );
        assert_eq!(event["reportingController"], "ferry-operator");
        self.reply(event);
    }
}

// ---------------------------------------------------------------------------------------------
// The operator's world
// ---------------------------------------------------------------------------------------------

/// Writers of the stores the tests fill (the others stay empty).
struct Writers {
    brokers: Writer<Broker>,
    triggers: Writer<Trigger>,
    channels: Writer<KafkaChannel>,
    subscriptions: Writer<Subscription>,
    sources: Writer<KafkaSource>,
    configurations: Writer<Configuration>,
    revisions: Writer<Revision>,
    deployments: Writer<Deployment>,
}

/// A store that has seen its initial (empty) list.
fn synced<K>() -> (Store<K>, Writer<K>)
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&Event::Init);
    writer.apply_watcher_event(&Event::InitDone);
    (store, writer)
}

/// Adds or replaces `obj` in a store, as a watch event would.
fn put<K>(writer: &mut Writer<K>, obj: &K)
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    writer.apply_watcher_event(&Event::Apply(obj.clone()));
}

/// A reconcile's world: its context (stores, publisher, the log's admin client), the writers that
/// fill the stores, and the API server the test plays.
struct Cluster {
    ctx: Arc<Context>,
    api: ApiServer,
    put: Writers,
}

impl Cluster {
    /// A cluster whose Kafka log is at `bootstrap`.
    fn new(bootstrap: &str) -> Cluster {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let mut args = Args::defaults();
        args.kafka_bootstrap_servers = bootstrap.to_owned();
        args.ingress_url = INGRESS.to_owned();
        let (brokers, brokers_w) = synced();
        let (triggers, triggers_w) = synced();
        let (channels, channels_w) = synced();
        let (subscriptions, subscriptions_w) = synced();
        let (sources, sources_w) = synced();
        let (configurations, configurations_w) = synced();
        let (revisions, revisions_w) = synced();
        let (deployments, deployments_w) = synced();
        let stores = Stores {
            brokers,
            triggers,
            channels,
            subscriptions,
            sources,
            services: synced().0,
            configurations,
            revisions,
            routes: synced().0,
            deployments,
            endpoints: synced().0,
        };
        let topics = Topics::new(bootstrap).expect("a Kafka admin client");
        let ctx = Context::new(
            client,
            args,
            stores,
            Arc::new(Publisher::default()),
            Arc::new(topics),
            Arc::new(Metrics::new()),
        );
        Cluster {
            ctx: Arc::new(ctx),
            api: ApiServer {
                handle,
                pending: None,
            },
            put: Writers {
                brokers: brokers_w,
                triggers: triggers_w,
                channels: channels_w,
                subscriptions: subscriptions_w,
                sources: sources_w,
                configurations: configurations_w,
                revisions: revisions_w,
                deployments: deployments_w,
            },
        }
    }

    /// A cluster without a log (the serving controllers never talk to it).
    fn without_log() -> Cluster {
        Cluster::new("127.0.0.1:9")
    }

    /// Puts the publisher where its loop is after writing contract `generation` compiled from
    /// the stores, with the `ready` topics existing, and the dispatchers reporting `applied`.
    fn compile(&self, generation: u64, ready: &[&str], applied: Option<u64>) {
        let args = &self.ctx.args;
        let topics: HashMap<String, Topic> = ready
            .iter()
            .map(|t| (t.to_string(), Topic::Ready(t.to_string())))
            .collect();
        let env = Environment {
            topics: &topics,
            broker_defaults: &Default::default(),
            secrets: &self.ctx.publisher.secrets(),
            bootstrap_servers: &args.kafka_bootstrap_servers,
            claim_classless: args.claim_brokers_without_class,
        };
        let Compiled {
            mut contract,
            errors,
            objects,
        } = compile_stores(&self.ctx.stores, &env, &args.cluster_domain);
        contract.generation = generation;
        self.ctx.publisher.record(contract, errors, &objects);
        self.ctx.publisher.set_applied(applied);
    }

    /// Starts `reconcile` on `obj` in the background, so the test can answer its requests.
    fn reconcile<K, F, Fut>(&self, reconcile: F, obj: &K) -> JoinHandle<Result<Action, Error>>
    where
        K: Clone,
        F: FnOnce(Arc<K>, Arc<Context>) -> Fut,
        Fut: Future<Output = Result<Action, Error>> + Send + 'static,
    {
        tokio::spawn(reconcile(Arc::new(obj.clone()), self.ctx.clone()))
    }
}

/// Waits for a reconcile started by [`Cluster::reconcile`] and returns its action.
async fn finished(run: JoinHandle<Result<Action, Error>>) -> Action {
    tokio::time::timeout(TIMEOUT, run)
        .await
        .expect("the reconcile finishes: every request it made was answered")
        .expect("the reconcile does not panic")
        .expect("the reconcile succeeds")
}

// ---------------------------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------------------------

fn name_of<K: Resource>(obj: &K) -> &str {
    obj.meta().name.as_deref().expect("a name")
}

fn to_json<K: Serialize>(obj: &K) -> Value {
    serde_json::to_value(obj).expect("JSON")
}

fn from_json<K: DeserializeOwned>(value: Value) -> K {
    serde_json::from_value(value).expect("a valid object")
}

/// The metadata every test object starts with: in [`NS`], uid `<name>-uid`, generation 1.
fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": NS, "uid": format!("{name}-uid"), "generation": 1})
}

/// `obj` carrying `finalizer`, as after its first reconcile.
fn finalized<K: Resource>(mut obj: K, finalizer: &str) -> K {
    obj.meta_mut().finalizers = Some(vec![finalizer.to_owned()]);
    obj
}

/// `obj` being deleted: `deletionTimestamp` set, its finalizers still there.
fn deleting<K: Resource>(mut obj: K) -> K {
    obj.meta_mut().deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
    obj
}

/// `obj` with `status` as the API server stores it.
fn with_status<K: Serialize + DeserializeOwned>(obj: &K, status: Value) -> K {
    let mut value = to_json(obj);
    value["status"] = status;
    from_json(value)
}

/// A status whose `Ready` is `True`.
fn ready_status() -> Value {
    json!({"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]})
}

/// `(status, reason)` of condition `type_` in a status; the reason is `""` when absent.
fn condition<'a>(status: &'a Value, type_: &str) -> (&'a str, &'a str) {
    let c = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("condition {type_} in {status}"));
    (
        c["status"].as_str().expect("a condition status"),
        c["reason"].as_str().unwrap_or(""),
    )
}

// ---------------------------------------------------------------------------------------------
// The log
// ---------------------------------------------------------------------------------------------

/// The embedded log, running in the test's runtime, and a plain Kafka client to inspect it.
struct Log {
    bootstrap: String,
    _running: ferry_broker::RunningBroker,
    _dir: tempfile::TempDir,
}

impl Log {
    async fn start() -> Log {
        Log::start_with(&[]).await
    }

    /// The log with extra broker flags (e.g. `--sasl-users`).
    async fn start_with(flags: &[&str]) -> Log {
        let dir = tempfile::tempdir().expect("a temp dir");
        let config =
            ferry_broker::BrokerConfig::local(&dir.path().join("log"), flags).expect("log flags");
        let running = ferry_broker::Broker::start(config)
            .await
            .expect("the log starts");
        Log {
            bootstrap: running.kafka_addr.to_string(),
            _running: running,
            _dir: dir,
        }
    }

    fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        config
    }

    /// The topics on the log, with their number of partitions (a Metadata request).
    async fn topics(&self) -> BTreeMap<String, usize> {
        let consumer: BaseConsumer = self.client().create().expect("a consumer");
        tokio::task::spawn_blocking(move || {
            let metadata = consumer.fetch_metadata(None, TIMEOUT).expect("metadata");
            metadata
                .topics()
                .iter()
                .filter(|t| t.error().is_none())
                .map(|t| (t.name().to_owned(), t.partitions().len()))
                .collect()
        })
        .await
        .expect("the metadata lookup finishes")
    }

    async fn create_topic(&self, name: &str) {
        let admin: AdminClient<_> = self.client().create().expect("an admin client");
        let topic = NewTopic::new(name, 1, TopicReplication::Fixed(1));
        for result in admin
            .create_topics(
                [&topic],
                &AdminOptions::new().request_timeout(Some(TIMEOUT)),
            )
            .await
            .expect("CreateTopics")
        {
            result.expect("the topic is created");
        }
    }

    /// Commits offset 0 of `topic`'s partition 0 for `group`, so the log knows the group.
    async fn commit(&self, group: &str, topic: &str) {
        let consumer: BaseConsumer = self
            .client()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("a consumer");
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(topic, 0, Offset::Offset(0))
            .expect("an offset");
        tokio::task::spawn_blocking(move || consumer.commit(&offsets, CommitMode::Sync))
            .await
            .expect("the commit finishes")
            .expect("the offset is committed");
    }

    /// The consumer groups the log knows (a ListGroups request).
    async fn groups(&self) -> Vec<String> {
        let consumer: BaseConsumer = self.client().create().expect("a consumer");
        tokio::task::spawn_blocking(move || {
            let groups = consumer.fetch_group_list(None, TIMEOUT).expect("groups");
            groups
                .groups()
                .iter()
                .map(|g| g.name().to_owned())
                .collect()
        })
        .await
        .expect("the group listing finishes")
    }
}

// ---------------------------------------------------------------------------------------------
// Brokers
// ---------------------------------------------------------------------------------------------

mod broker {
    use super::*;
    use crate::controllers::eventing::topic_owners::{TOPIC_FINALIZER, reconcile_broker};

    const BROKERS: &str = "/apis/eventing.knative.dev/v1/namespaces/ns/brokers";
    const TOPIC: &str = "knative-broker-ns-orders";

    pub(super) fn broker(name: &str) -> Broker {
        let mut meta = meta(name);
        meta["annotations"] = json!({"eventing.knative.dev/broker.class": "Ferry"});
        from_json(json!({
            "apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
            "metadata": meta, "spec": {},
        }))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_broker_gets_its_topic_then_its_address_once_the_dispatchers_serve_it() {
        let log = Log::start().await;
        let mut cluster = Cluster::new(&log.bootstrap);

        // Created: the finalizer comes first, and nothing else happens in that reconcile.
        let orders = broker("orders");
        let run = cluster.reconcile(reconcile_broker, &orders);
        cluster
            .api
            .finalizer_added(BROKERS, &orders, TOPIC_FINALIZER)
            .await;
        assert_eq!(finished(run).await, Action::await_change());
        assert!(!log.topics().await.contains_key(TOPIC));

        // With the finalizer: the topic is created (the default 10 partitions); the publisher has not
        // compiled the broker yet, so it is not Ready and has no address.
        let orders = finalized(orders, TOPIC_FINALIZER);
        let run = cluster.reconcile(reconcile_broker, &orders);
        let (status, orders) = cluster.api.status(BROKERS, &orders).await;
        assert_eq!(condition(&status, "TopicReady"), ("True", ""));
        assert_eq!(condition(&status, "Ready"), ("Unknown", "Compiling"));
        assert_eq!(status["observedGeneration"], 1);
        assert!(status.get("address").is_none(), "{status}");
        assert_eq!(finished(run).await, Action::await_change());
        assert_eq!(log.topics().await.get(TOPIC), Some(&10));
        assert_eq!(
            cluster.ctx.publisher.topic(TOPIC),
            Topic::Ready(TOPIC.into())
        );

        // In the contract, not yet applied by the dispatchers: still no address.
        put(&mut cluster.put.brokers, &orders);
        cluster.compile(1, &[TOPIC], None);
        let run = cluster.reconcile(reconcile_broker, &orders);
        let (status, orders) = cluster.api.status(BROKERS, &orders).await;
        assert_eq!(condition(&status, "ConfigMapUpdated"), ("True", ""));
        assert_eq!(
            condition(&status, "Ready"),
            ("Unknown", "DispatcherNotReady")
        );
        assert!(status.get("address").is_none(), "{status}");
        assert_eq!(finished(run).await, Action::await_change());

        // Applied: Ready, addressed at the ingress.
        cluster.ctx.publisher.set_applied(Some(1));
        let run = cluster.reconcile(reconcile_broker, &orders);
        let (status, orders) = cluster.api.status(BROKERS, &orders).await;
        assert_eq!(condition(&status, "Ready"), ("True", ""));
        assert_eq!(condition(&status, "Addressable"), ("True", ""));
        assert_eq!(status["address"]["url"], format!("{INGRESS}/ns/orders"));
        cluster.api.event("orders", "Normal", "Ready").await;
        assert_eq!(finished(run).await, Action::await_change());

        // Nothing changed: nothing is written.
        let run = cluster.reconcile(reconcile_broker, &orders);
        assert_eq!(finished(run).await, Action::await_change());
        cluster.api.expect_nothing().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deleting_a_broker_deletes_its_topic_then_the_finalizer() {
        let log = Log::start().await;
        log.create_topic(TOPIC).await;
        let mut cluster = Cluster::new(&log.bootstrap);
        cluster
            .ctx
            .publisher
            .set_topic(TOPIC, Topic::Ready(TOPIC.into()));
        let orders = deleting(finalized(broker("orders"), TOPIC_FINALIZER));

        let run = cluster.reconcile(reconcile_broker, &orders);
        cluster
            .api
            .finalizer_removed(BROKERS, &orders, TOPIC_FINALIZER)
            .await;
        assert_eq!(finished(run).await, Action::await_change());
        assert!(!log.topics().await.contains_key(TOPIC));
        assert_eq!(cluster.ctx.publisher.topic(TOPIC), Topic::Pending);
    }
}

// ---------------------------------------------------------------------------------------------
// Triggers
// ---------------------------------------------------------------------------------------------

mod trigger {
    use super::broker::broker;
    use super::*;
    use crate::controllers::eventing::group_owners::{GROUP_FINALIZER, reconcile_trigger};

    const TRIGGERS: &str = "/apis/eventing.knative.dev/v1/namespaces/ns/triggers";
    const SINK: &str = "http://sink.ns.svc.cluster.local";

    /// Trigger `name` of Broker `orders`, delivering to the core Service `sink`, finalized.
    fn trigger(name: &str) -> Trigger {
        let trigger: Trigger = from_json(json!({
            "apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
            "metadata": meta(name),
            "spec": {
                "broker": "orders",
                "subscriber": {"ref": {"apiVersion": "v1", "kind": "Service", "name": "sink"}},
            },
        }));
        finalized(trigger, GROUP_FINALIZER)
    }

    #[tokio::test]
    async fn a_trigger_follows_its_broker_and_its_spec() {
        let mut cluster = Cluster::without_log();

        // The broker does not exist: the compile leaves the trigger out, and its status says why.
        let audit = trigger("audit");
        put(&mut cluster.put.triggers, &audit);
        cluster.compile(1, &[], Some(1));
        let run = cluster.reconcile(reconcile_trigger, &audit);
        let (status, audit) = cluster.api.status(TRIGGERS, &audit).await;
        assert_eq!(
            condition(&status, "BrokerReady"),
            ("False", "BrokerDoesNotExist")
        );
        assert_eq!(condition(&status, "Ready"), ("False", "BrokerDoesNotExist"));
        cluster
            .api
            .event("audit", "Warning", "BrokerDoesNotExist")
            .await;
        assert_eq!(finished(run).await, Action::await_change());

        // The broker appears, Ready, and the dispatchers apply the contract that carries the
        // trigger.
        let orders = with_status(
            &broker("orders"),
            json!({"conditions": [{"type": "Ready", "status": "True"}],
                   "address": {"url": format!("{INGRESS}/ns/orders")}}),
        );
        put(&mut cluster.put.brokers, &orders);
        cluster.compile(2, &["knative-broker-ns-orders"], Some(2));
        let run = cluster.reconcile(reconcile_trigger, &audit);
        let (status, audit) = cluster.api.status(TRIGGERS, &audit).await;
        assert_eq!(condition(&status, "BrokerReady"), ("True", ""));
        assert_eq!(condition(&status, "SubscriptionReady"), ("True", ""));
        assert_eq!(condition(&status, "Ready"), ("True", ""));
        assert_eq!(status["subscriberUri"], SINK);
        cluster.api.event("audit", "Normal", "Ready").await;
        assert_eq!(finished(run).await, Action::await_change());

        // A new spec waits for the publisher to compile it: nothing is written before.
        let mut audit = audit;
        audit.metadata.generation = Some(2);
        audit.spec.subscriber = from_json(json!({"uri": "http://audit.example/events"}));
        put(&mut cluster.put.triggers, &audit);
        let run = cluster.reconcile(reconcile_trigger, &audit);
        assert_eq!(finished(run).await, Action::await_change());
        cluster.api.expect_nothing().await;

        // Compiled and applied: the status observes generation 2 and its new subscriber. Ready
        // stays True, so no Event.
        cluster.compile(3, &["knative-broker-ns-orders"], Some(3));
        let run = cluster.reconcile(reconcile_trigger, &audit);
        let (status, _) = cluster.api.status(TRIGGERS, &audit).await;
        assert_eq!(status["observedGeneration"], 2);
        assert_eq!(status["subscriberUri"], "http://audit.example/events");
        assert_eq!(condition(&status, "Ready"), ("True", ""));
        assert_eq!(finished(run).await, Action::await_change());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deleting_a_trigger_deletes_its_consumer_group_then_the_finalizer() {
        let log = Log::start().await;
        let group = "knative-trigger-ns-audit";
        log.create_topic("knative-broker-ns-orders").await;
        log.commit(group, "knative-broker-ns-orders").await;
        assert!(log.groups().await.iter().any(|g| g == group));
        let mut cluster = Cluster::new(&log.bootstrap);
        let orders = with_status(&broker("orders"), ready_status());
        put(&mut cluster.put.brokers, &orders);

        // Being deleted, the trigger has left the contract.
        let audit = deleting(trigger("audit"));
        put(&mut cluster.put.triggers, &audit);
        cluster.compile(1, &["knative-broker-ns-orders"], Some(1));
        let run = cluster.reconcile(reconcile_trigger, &audit);
        cluster
            .api
            .finalizer_removed(TRIGGERS, &audit, GROUP_FINALIZER)
            .await;
        assert_eq!(finished(run).await, Action::await_change());
        assert!(!log.groups().await.iter().any(|g| g == group));

        // A group that is already gone is fine.
        let run = cluster.reconcile(reconcile_trigger, &audit);
        cluster
            .api
            .finalizer_removed(TRIGGERS, &audit, GROUP_FINALIZER)
            .await;
        assert_eq!(finished(run).await, Action::await_change());
    }

    #[tokio::test]
    async fn a_trigger_of_another_class_of_broker_is_left_alone() {
        let mut cluster = Cluster::without_log();
        let mut other = broker("orders");
        other.metadata.annotations = Some(BTreeMap::from([(
            "eventing.knative.dev/broker.class".to_owned(),
            "MTChannelBasedBroker".to_owned(),
        )]));
        put(&mut cluster.put.brokers, &other);
        let mut audit = trigger("audit");
        audit.metadata.finalizers = None;
        put(&mut cluster.put.triggers, &audit);
        cluster.compile(1, &[], Some(1));

        let run = cluster.reconcile(reconcile_trigger, &audit);
        assert_eq!(finished(run).await, Action::await_change());
        cluster.api.expect_nothing().await;
    }
}

// ---------------------------------------------------------------------------------------------
// KafkaChannels and Subscriptions
// ---------------------------------------------------------------------------------------------

mod channel {
    use super::*;
    use crate::controllers::eventing::group_owners::{GROUP_FINALIZER, reconcile_subscription};
    use crate::controllers::eventing::topic_owners::{TOPIC_FINALIZER, reconcile_channel};

    const CHANNELS: &str = "/apis/messaging.knative.dev/v1beta1/namespaces/ns/kafkachannels";
    const SUBSCRIPTIONS: &str = "/apis/messaging.knative.dev/v1/namespaces/ns/subscriptions";
    const TOPIC: &str = "knative-messaging-kafka.ns.events";

    fn channel(name: &str) -> KafkaChannel {
        let channel = from_json(json!({
            "apiVersion": "messaging.knative.dev/v1beta1", "kind": "KafkaChannel",
            "metadata": meta(name), "spec": {},
        }));
        finalized(channel, TOPIC_FINALIZER)
    }

    /// Subscription `name` of KafkaChannel `events`, delivering to a URI, finalized.
    fn subscription(name: &str) -> Subscription {
        let sub = from_json(json!({
            "apiVersion": "messaging.knative.dev/v1", "kind": "Subscription",
            "metadata": meta(name),
            "spec": {
                "channel": {
                    "apiVersion": "messaging.knative.dev/v1beta1",
                    "kind": "KafkaChannel",
                    "name": "events",
                },
                "subscriber": {"uri": "http://sink.ns.svc.cluster.local/"},
            },
        }));
        finalized(sub, GROUP_FINALIZER)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_channel_lists_its_subscriptions_and_they_see_it_ready() {
        let log = Log::start().await;
        let mut cluster = Cluster::new(&log.bootstrap);
        let sub = subscription("to-sink");
        put(&mut cluster.put.subscriptions, &sub);

        // The topic is created (one partition, the KafkaChannel default); the subscription is
        // listed, waiting for the dispatchers.
        let events = channel("events");
        let run = cluster.reconcile(reconcile_channel, &events);
        let (status, events) = cluster.api.status(CHANNELS, &events).await;
        assert_eq!(condition(&status, "TopicReady"), ("True", ""));
        assert_eq!(condition(&status, "Ready"), ("Unknown", "Compiling"));
        assert_eq!(status["subscribers"][0]["uid"], "to-sink-uid");
        assert_eq!(status["subscribers"][0]["ready"], "Unknown");
        assert_eq!(finished(run).await, Action::await_change());
        assert_eq!(log.topics().await.get(TOPIC), Some(&1));

        // Compiled and applied: the channel is Ready and addressed, its subscriber ready.
        put(&mut cluster.put.channels, &events);
        cluster.compile(1, &[TOPIC], Some(1));
        let run = cluster.reconcile(reconcile_channel, &events);
        let (status, events) = cluster.api.status(CHANNELS, &events).await;
        assert_eq!(condition(&status, "Ready"), ("True", ""));
        assert_eq!(status["address"]["url"], format!("{INGRESS}/ns/events"));
        assert_eq!(
            status["subscribers"],
            json!([{"uid": "to-sink-uid", "observedGeneration": 1, "ready": "True"}])
        );
        cluster.api.event("events", "Normal", "Ready").await;
        assert_eq!(finished(run).await, Action::await_change());

        // The subscription sees its channel Ready and its subscriber resolved.
        put(&mut cluster.put.channels, &events);
        let run = cluster.reconcile(reconcile_subscription, &sub);
        let (status, _) = cluster.api.status(SUBSCRIPTIONS, &sub).await;
        assert_eq!(condition(&status, "ChannelReady"), ("True", ""));
        assert_eq!(condition(&status, "AddedToChannel"), ("True", ""));
        assert_eq!(condition(&status, "Ready"), ("True", ""));
        assert_eq!(
            status["physicalSubscription"]["subscriberUri"],
            "http://sink.ns.svc.cluster.local/"
        );
        cluster.api.event("to-sink", "Normal", "Ready").await;
        assert_eq!(finished(run).await, Action::await_change());
    }

    #[tokio::test]
    async fn a_subscription_to_a_missing_channel_says_so() {
        let mut cluster = Cluster::without_log();
        let sub = subscription("to-sink");
        put(&mut cluster.put.subscriptions, &sub);
        cluster.compile(1, &[], Some(1));

        let run = cluster.reconcile(reconcile_subscription, &sub);
        let (status, _) = cluster.api.status(SUBSCRIPTIONS, &sub).await;
        assert_eq!(
            condition(&status, "ChannelReady"),
            ("False", "ChannelNotFound")
        );
        assert_eq!(condition(&status, "Ready"), ("False", "ChannelNotFound"));
        cluster
            .api
            .event("to-sink", "Warning", "ChannelNotFound")
            .await;
        assert_eq!(finished(run).await, Action::await_change());
    }
}

// ---------------------------------------------------------------------------------------------
// KafkaSources
// ---------------------------------------------------------------------------------------------

mod source {
    use super::*;
    use crate::controllers::eventing::sources::reconcile_source;

    const SOURCES: &str = "/apis/sources.knative.dev/v1beta1/namespaces/ns/kafkasources";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_source_is_ready_once_its_topics_exist() {
        let log = Log::start().await;
        let mut cluster = Cluster::new(&log.bootstrap);
        let payments: KafkaSource = from_json(json!({
            "apiVersion": "sources.knative.dev/v1beta1", "kind": "KafkaSource",
            "metadata": meta("payments"),
            "spec": {
                "bootstrapServers": [log.bootstrap],
                "topics": ["payments"],
                "sink": {"ref": {"apiVersion": "v1", "kind": "Service", "name": "ledger"}},
            },
        }));
        put(&mut cluster.put.sources, &payments);
        cluster.compile(1, &[], Some(1));

        // The topic does not exist: not connected, and looked up again in 10 s.
        let run = cluster.reconcile(reconcile_source, &payments);
        let (status, payments) = cluster.api.status(SOURCES, &payments).await;
        assert_eq!(condition(&status, "SinkProvided"), ("True", ""));
        assert_eq!(
            condition(&status, "ConnectionEstablished"),
            ("False", "TopicsNotFound")
        );
        assert_eq!(condition(&status, "Ready"), ("False", "TopicsNotFound"));
        assert_eq!(status["sinkUri"], "http://ledger.ns.svc.cluster.local");
        cluster
            .api
            .event("payments", "Warning", "TopicsNotFound")
            .await;
        assert_eq!(
            finished(run).await,
            Action::requeue(Duration::from_secs(10))
        );

        // Someone creates it.
        log.create_topic("payments").await;
        let run = cluster.reconcile(reconcile_source, &payments);
        let (status, _) = cluster.api.status(SOURCES, &payments).await;
        assert_eq!(condition(&status, "ConnectionEstablished"), ("True", ""));
        assert_eq!(condition(&status, "Ready"), ("True", ""));
        cluster.api.event("payments", "Normal", "Ready").await;
        assert_eq!(finished(run).await, Action::await_change());
    }

    /// Answers the GET of Secret `kafka-creds` with SASL PLAIN credentials for `ledger`.
    async fn creds(cluster: &mut Cluster) {
        creds_with_password(cluster, "aHVudGVyMg==").await // hunter2
    }

    /// The same, with this base64 password.
    async fn creds_with_password(cluster: &mut Cluster, password: &str) {
        cluster
            .api
            .expect(Method::GET, "/api/v1/namespaces/ns/secrets/kafka-creds")
            .await;
        cluster.api.reply(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "kafka-creds", "namespace": "ns"},
            // ledger / PLAIN
            "data": {"user": "bGVkZ2Vy", "password": password, "type": "UExBSU4="},
        }));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_source_with_spec_net_reads_its_secret_and_its_own_sasl_cluster() {
        // Ferry's log, and the source's own cluster, which requires SASL PLAIN.
        let log = Log::start().await;
        let dir = tempfile::tempdir().expect("a temp dir");
        let users = dir.path().join("users");
        std::fs::write(&users, "ledger:hunter2\n").expect("users file");
        let theirs = Log::start_with(&["--sasl-users", users.to_str().unwrap()]).await;
        let mut cluster = Cluster::new(&log.bootstrap);
        let secret = |key: &str| json!({"secretKeyRef": {"name": "kafka-creds", "key": key}});
        let payments: KafkaSource = from_json(json!({
            "apiVersion": "sources.knative.dev/v1beta1", "kind": "KafkaSource",
            "metadata": meta("payments"),
            "spec": {
                "bootstrapServers": [theirs.bootstrap],
                "topics": ["payments"],
                "sink": {"uri": "http://ledger.example/"},
                "net": {"sasl": {
                    "enable": true,
                    "user": secret("user"),
                    "password": secret("password"),
                    "type": secret("type"),
                }},
            },
        }));
        put(&mut cluster.put.sources, &payments);
        // Compiled before the Secret was read: left out, saying so.
        cluster.compile(1, &[], Some(1));
        let run = cluster.reconcile(reconcile_source, &payments);
        creds(&mut cluster).await;
        let (status, payments) = cluster.api.status(SOURCES, &payments).await;
        assert_eq!(
            condition(&status, "ConnectionEstablished"),
            ("False", "NetSecretNotResolved")
        );
        cluster
            .api
            .event("payments", "Warning", "NetSecretNotResolved")
            .await;
        // The topic does not exist on their cluster yet (it was asked, with the credentials).
        assert_eq!(
            finished(run).await,
            Action::requeue(Duration::from_secs(10))
        );

        // The topic is created on their cluster (only there), and the publisher compiles again.
        let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> = theirs
            .client()
            .set("security.protocol", "SASL_PLAINTEXT")
            .set("sasl.mechanism", "PLAIN")
            .set("sasl.username", "ledger")
            .set("sasl.password", "hunter2")
            .create()
            .expect("an admin client");
        let topic = rdkafka::admin::NewTopic::new(
            "payments",
            1,
            rdkafka::admin::TopicReplication::Fixed(1),
        );
        for r in admin
            .create_topics([&topic], &rdkafka::admin::AdminOptions::new())
            .await
            .expect("create topics")
        {
            r.expect("topic created");
        }
        assert!(!log.topics().await.contains_key("payments"));
        cluster.compile(2, &[], Some(2));
        let run = cluster.reconcile(reconcile_source, &payments);
        creds(&mut cluster).await;
        let (status, _) = cluster.api.status(SOURCES, &payments).await;
        assert_eq!(condition(&status, "ConnectionEstablished"), ("True", ""));
        assert_eq!(condition(&status, "Ready"), ("True", ""));
        cluster.api.event("payments", "Normal", "Ready").await;
        // Nothing watches Secrets: read again in a minute for rotations.
        assert_eq!(
            finished(run).await,
            Action::requeue(Duration::from_secs(60))
        );
        let creds = ("ns".to_owned(), "kafka-creds".to_owned());
        assert!(cluster.ctx.publisher.secrets().contains_key(&creds));

        // The password is rotated in the Secret but not on their cluster: refused.
        let run = cluster.reconcile(reconcile_source, &payments);
        creds_with_password(&mut cluster, "d3Jvbmc=").await; // "wrong"
        let (status, _) = cluster.api.status(SOURCES, &payments).await;
        assert_eq!(
            condition(&status, "ConnectionEstablished"),
            ("False", "ConnectionFailed")
        );
        cluster
            .api
            .event("payments", "Warning", "ConnectionFailed")
            .await;
        assert_eq!(
            finished(run).await,
            Action::requeue(Duration::from_secs(10))
        );
        // Still referenced: kept. The source deleted: the credentials go with it.
        cluster
            .ctx
            .publisher
            .forget_unreferenced_secrets(&cluster.ctx.stores);
        assert!(cluster.ctx.publisher.secrets().contains_key(&creds));
        cluster
            .put
            .sources
            .apply_watcher_event(&Event::Delete(payments.clone()));
        cluster
            .ctx
            .publisher
            .forget_unreferenced_secrets(&cluster.ctx.stores);
        assert!(cluster.ctx.publisher.secrets().is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// Serving
// ---------------------------------------------------------------------------------------------

mod serving {
    use super::*;
    use crate::controllers::serving::{
        reconcile_configuration, reconcile_revision, reconcile_route, reconcile_service,
    };
    use ferry_api::serving::{KnativeService, Route};

    const SERVING: &str = "/apis/serving.knative.dev/v1/namespaces/ns";

    fn service() -> KnativeService {
        from_json(json!({
            "apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": meta("cart"),
            "spec": {"template": {"spec": {"containers": [{"image": "cart:v1"}]}}},
        }))
    }

    /// The Configuration the Service owns, as the API server stores it.
    fn configuration() -> Configuration {
        let mut cfg = crate::serving::configuration_for(&service());
        cfg.metadata.uid = Some("cart-cfg-uid".into());
        cfg.metadata.generation = Some(1);
        cfg
    }

    /// The Revision the Configuration stamps, as the API server stores it.
    fn revision() -> Revision {
        let mut rev = crate::serving::revision_for(&configuration(), &[])
            .expect("a revision")
            .expect("a new revision");
        rev.metadata.uid = Some("cart-00001-uid".into());
        rev.metadata.generation = Some(1);
        rev
    }

    /// The owner reference to `kind` `name` (uid `uid`) that every owned object carries.
    fn owner(kind: &str, name: &str, uid: &str) -> Value {
        json!([{
            "apiVersion": "serving.knative.dev/v1", "kind": kind, "name": name, "uid": uid,
            "controller": true, "blockOwnerDeletion": true,
        }])
    }

    #[tokio::test]
    async fn a_service_applies_its_configuration_and_route_then_its_status() {
        let mut cluster = Cluster::without_log();
        let cart = service();
        let run = cluster.reconcile(reconcile_service, &cart);

        let cfg = cluster
            .api
            .applied(&format!("{SERVING}/configurations"), "cart")
            .await;
        assert_eq!(cfg["kind"], "Configuration");
        assert_eq!(
            cfg["metadata"]["ownerReferences"],
            owner("Service", "cart", "cart-uid")
        );
        assert_eq!(
            cfg["metadata"]["labels"]["serving.knative.dev/service"],
            "cart"
        );
        assert_eq!(cfg["spec"]["template"], to_json(&cart)["spec"]["template"]);

        let route = cluster
            .api
            .applied(&format!("{SERVING}/routes"), "cart")
            .await;
        assert_eq!(route["kind"], "Route");
        assert_eq!(
            route["metadata"]["ownerReferences"],
            owner("Service", "cart", "cart-uid")
        );
        assert_eq!(
            route["spec"]["traffic"],
            json!([{"configurationName": "cart", "latestRevision": true, "percent": 100}])
        );

        // Neither has reached the store yet.
        let (status, _) = cluster
            .api
            .status(&format!("{SERVING}/services"), &cart)
            .await;
        assert_eq!(
            condition(&status, "ConfigurationsReady"),
            ("Unknown", "OutOfDate")
        );
        assert_eq!(condition(&status, "RoutesReady"), ("Unknown", "OutOfDate"));
        assert_eq!(condition(&status, "Ready"), ("Unknown", "OutOfDate"));
        assert_eq!(finished(run).await, Action::await_change());
    }

    #[tokio::test]
    async fn a_configuration_creates_its_revision_once() {
        let mut cluster = Cluster::without_log();
        let configurations = format!("{SERVING}/configurations");
        let cfg = configuration();

        let run = cluster.reconcile(reconcile_configuration, &cfg);
        let rev = cluster
            .api
            .expect(Method::POST, &format!("{SERVING}/revisions?"))
            .await;
        assert_eq!(rev["metadata"]["name"], "cart-00001");
        assert_eq!(
            rev["metadata"]["labels"],
            json!({
                "serving.knative.dev/configuration": "cart",
                "serving.knative.dev/configurationGeneration": "1",
                "serving.knative.dev/configurationUID": "cart-cfg-uid",
                "serving.knative.dev/service": "cart",
                "serving.knative.dev/serviceUID": "cart-uid",
            })
        );
        assert_eq!(
            rev["metadata"]["ownerReferences"],
            owner("Configuration", "cart", "cart-cfg-uid")
        );
        assert_eq!(rev["spec"]["containers"][0]["image"], "cart:v1");
        let mut created = rev.clone();
        created["metadata"]["uid"] = json!("cart-00001-uid");
        cluster.api.reply(created.clone());
        cluster.api.event("cart", "Normal", "Created").await;
        let (status, cfg) = cluster.api.status(&configurations, &cfg).await;
        assert_eq!(condition(&status, "Ready"), ("Unknown", ""));
        // The status counts the revision it just created.
        assert_eq!(status["latestCreatedRevisionName"], "cart-00001");
        assert_eq!(finished(run).await, Action::await_change());

        // The revision reached the store: it is not created again, and it is the latest.
        put(&mut cluster.put.revisions, &from_json(created));
        // Its status already says so: nothing is written at all.
        let run = cluster.reconcile(reconcile_configuration, &cfg);
        cluster.api.expect_nothing().await;
        assert_eq!(finished(run).await, Action::await_change());
    }

    #[tokio::test]
    async fn a_revision_applies_its_deployment_at_the_initial_scale_and_its_service() {
        let mut cluster = Cluster::without_log();
        let rev = revision();

        let run = cluster.reconcile(reconcile_revision, &rev);
        let deployment = cluster
            .api
            .applied(
                "/apis/apps/v1/namespaces/ns/deployments",
                "cart-00001-deployment",
            )
            .await;
        assert_eq!(deployment["kind"], "Deployment");
        assert_eq!(deployment["spec"]["replicas"], 1);
        assert_eq!(
            deployment["spec"]["selector"]["matchLabels"],
            json!({"serving.knative.dev/revision": "cart-00001"})
        );
        assert_eq!(
            deployment["metadata"]["ownerReferences"],
            owner("Revision", "cart-00001", "cart-00001-uid")
        );
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "cart:v1");

        let svc = cluster
            .api
            .applied("/api/v1/namespaces/ns/services", "cart-00001")
            .await;
        assert_eq!(svc["kind"], "Service");
        assert_eq!(svc["spec"]["ports"][0]["port"], 80);
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
        assert_eq!(
            svc["metadata"]["ownerReferences"],
            owner("Revision", "cart-00001", "cart-00001-uid")
        );

        // The Deployment is not in the store yet.
        let (status, _) = cluster
            .api
            .status(&format!("{SERVING}/revisions"), &rev)
            .await;
        assert_eq!(
            condition(&status, "ResourcesAvailable"),
            ("Unknown", "Deploying")
        );
        assert_eq!(condition(&status, "Ready"), ("Unknown", "Deploying"));
        assert_eq!(status["desiredReplicas"], 1);
        assert_eq!(finished(run).await, Action::await_change());
    }

    #[tokio::test]
    async fn a_revision_created_at_zero_gets_no_pod_and_is_ready() {
        let mut cluster = Cluster::without_log();
        cluster.ctx.scale.set_settings(
            ferry_api::autoscaler::Settings::from_config_map(
                &[
                    ("allow-zero-initial-scale".to_owned(), "true".to_owned()),
                    ("initial-scale".to_owned(), "0".to_owned()),
                ]
                .into(),
            )
            .expect("valid settings"),
        );
        let rev = revision();
        let run = cluster.reconcile(reconcile_revision, &rev);
        let deployment = cluster
            .api
            .applied(
                "/apis/apps/v1/namespaces/ns/deployments",
                "cart-00001-deployment",
            )
            .await;
        assert_eq!(deployment["spec"]["replicas"], 0);
        cluster
            .api
            .applied("/api/v1/namespaces/ns/services", "cart-00001")
            .await;
        let (status, _) = cluster
            .api
            .status(&format!("{SERVING}/revisions"), &rev)
            .await;
        assert_eq!(status["desiredReplicas"], 0);
        finished(run).await;

        // The Deployment exists at zero replicas and never had a pod: the revision is Ready
        // (Knative: created at zero, the first request starts it), only Active=False.
        let d: Deployment = from_json(deployment);
        put(&mut cluster.put.deployments, &d);
        let run = cluster.reconcile(reconcile_revision, &rev);
        cluster
            .api
            .applied(
                "/apis/apps/v1/namespaces/ns/deployments",
                "cart-00001-deployment",
            )
            .await;
        cluster
            .api
            .applied("/api/v1/namespaces/ns/services", "cart-00001")
            .await;
        let (status, _) = cluster
            .api
            .status(&format!("{SERVING}/revisions"), &rev)
            .await;
        assert_eq!(condition(&status, "Ready").0, "True", "{status}");
        assert_eq!(condition(&status, "Active").0, "False", "{status}");
        cluster.api.event("cart-00001", "Normal", "Ready").await;
        assert_eq!(finished(run).await, Action::await_change());
    }

    #[tokio::test]
    async fn a_field_behind_a_disabled_flag_runs_nothing_until_config_features_enables_it() {
        let mut cluster = Cluster::without_log();
        let mut rev = revision();
        rev.spec
            .pod
            .insert("nodeSelector".into(), json!({"disk": "ssd"}));

        // Knative's default: kubernetes.podspec-nodeselector is disabled. No Deployment, no
        // Service; the status names the field and the flag.
        let run = cluster.reconcile(reconcile_revision, &rev);
        let (status, _) = cluster
            .api
            .status(&format!("{SERVING}/revisions"), &rev)
            .await;
        let (ready, reason) = condition(&status, "Ready");
        assert_eq!((ready, reason), ("False", "InvalidSpec"));
        let message = status["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .and_then(|c| c["message"].as_str())
            .unwrap_or_default()
            .to_owned();
        assert!(
            message.contains("spec.nodeSelector: must not set the field(s)")
                && message.contains("kubernetes.podspec-nodeselector: enabled"),
            "{message}"
        );
        cluster
            .api
            .event("cart-00001", "Warning", "InvalidSpec")
            .await;
        assert_eq!(finished(run).await, Action::await_change());

        // The cluster's config-features turns the flag on: the field reaches the pods.
        let (features, _) = ferry_api::serving::features::Features::from_data(
            &[(
                "kubernetes.podspec-nodeselector".to_owned(),
                "enabled".to_owned(),
            )]
            .into(),
        );
        assert!(cluster.ctx.set_features(features.clone()));
        assert!(!cluster.ctx.set_features(features), "unchanged");
        let run = cluster.reconcile(reconcile_revision, &rev);
        let deployment = cluster
            .api
            .applied(
                "/apis/apps/v1/namespaces/ns/deployments",
                "cart-00001-deployment",
            )
            .await;
        assert_eq!(
            deployment["spec"]["template"]["spec"]["nodeSelector"],
            json!({"disk": "ssd"})
        );
        cluster
            .api
            .applied("/api/v1/namespaces/ns/services", "cart-00001")
            .await;
        cluster
            .api
            .status(&format!("{SERVING}/revisions"), &rev)
            .await;
        assert_eq!(finished(run).await, Action::await_change());
    }

    #[tokio::test]
    async fn a_route_sends_its_traffic_to_the_latest_ready_revision() {
        let mut cluster = Cluster::without_log();
        ready_configuration(&mut cluster);
        let route = route_of(&service());

        let run = cluster.reconcile(reconcile_route, &route);
        let services = "/api/v1/namespaces/ns/services";
        let placeholder = cluster.api.placeholder(services, "cart", None).await;
        assert_eq!(placeholder["spec"]["type"], "ExternalName");
        assert_eq!(
            placeholder["spec"]["externalName"], "ingress.test",
            "the host of --ingress-url"
        );
        assert_eq!(
            placeholder["metadata"]["ownerReferences"],
            owner("Route", "cart", "cart-route-uid")
        );
        cluster
            .api
            .placeholders_listed(services, "cart", json!([]))
            .await;
        let (status, _) = cluster
            .api
            .status(&format!("{SERVING}/routes"), &route)
            .await;
        assert_eq!(
            status["traffic"],
            json!([{"revisionName": "cart-00001", "latestRevision": true, "percent": 100}])
        );
        // No config-domain: Knative's default domain, the route's in-cluster name.
        assert_eq!(status["url"], "http://cart.ns.svc.cluster.local");
        assert_eq!(status["address"]["url"], "http://cart.ns.svc.cluster.local");
        assert_eq!(condition(&status, "AllTrafficAssigned"), ("True", ""));
        assert_eq!(condition(&status, "Ready"), ("True", ""));
        assert_eq!(status["observedGeneration"], 1);
        cluster.api.event("cart", "Normal", "Ready").await;
        assert_eq!(finished(run).await, Action::await_change());
    }

    /// A Route with a tag: `latest` at 100 %, tagged `current`.
    fn tagged_route() -> Route {
        let mut svc = service();
        svc.spec.traffic = vec![
            serde_json::from_value(
                json!({"latestRevision": true, "percent": 100, "tag": "current"}),
            )
            .expect("a traffic target"),
        ];
        route_of(&svc)
    }

    /// The Route of `svc` as the API server holds it.
    fn route_of(svc: &KnativeService) -> Route {
        let mut route: Route = crate::serving::route_for(svc);
        route.metadata.uid = Some("cart-route-uid".into());
        route.metadata.generation = Some(1);
        route
    }

    fn ready_configuration(cluster: &mut Cluster) {
        let cfg = with_status(
            &configuration(),
            json!({"observedGeneration": 1,
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "latestCreatedRevisionName": "cart-00001",
                   "latestReadyRevisionName": "cart-00001"}),
        );
        put(&mut cluster.put.configurations, &cfg);
        put(
            &mut cluster.put.revisions,
            &with_status(&revision(), ready_status()),
        );
    }

    #[tokio::test]
    async fn config_domain_names_the_url_and_each_tag_gets_a_service_and_stale_ones_go() {
        let mut cluster = Cluster::without_log();
        ready_configuration(&mut cluster);
        let data = BTreeMap::from([("example.com".to_owned(), String::new())]);
        assert!(
            cluster
                .ctx
                .set_domains(ferry_api::serving::domain::Domains::from_data(&data).expect("valid"))
        );
        let route = tagged_route();
        let run = cluster.reconcile(reconcile_route, &route);
        let services = "/api/v1/namespaces/ns/services";
        // Sorted by name: the Route's Service, then the tag's.
        cluster.api.placeholder(services, "cart", None).await;
        cluster
            .api
            .placeholder(services, "current-cart", None)
            .await;
        let stale = json!({"metadata": {"name": "old-cart", "namespace": "ns",
            "labels": {"serving.knative.dev/route": "cart"},
            "ownerReferences": owner("Route", "cart", "cart-route-uid")}});
        cluster
            .api
            .placeholders_listed(services, "cart", json!([stale]))
            .await;
        cluster
            .api
            .expect(Method::DELETE, &format!("{services}/old-cart?"))
            .await;
        cluster.api.reply(stale);
        let (status, _) = cluster
            .api
            .status(&format!("{SERVING}/routes"), &route)
            .await;
        assert_eq!(status["url"], "http://cart.ns.example.com");
        assert_eq!(
            status["traffic"][0]["url"],
            "http://current-cart.ns.example.com"
        );
        assert_eq!(condition(&status, "Ready"), ("True", ""));
        cluster.api.event("cart", "Normal", "Ready").await;
        assert_eq!(finished(run).await, Action::await_change());
    }

    #[tokio::test]
    async fn a_service_of_the_routes_name_owned_by_someone_else_is_left_alone() {
        let mut cluster = Cluster::without_log();
        ready_configuration(&mut cluster);
        let route = route_of(&service());
        let run = cluster.reconcile(reconcile_route, &route);
        let services = "/api/v1/namespaces/ns/services";
        let theirs = json!({"metadata": {"name": "cart", "namespace": "ns"},
                            "spec": {"type": "ClusterIP"}});
        cluster
            .api
            .expect(Method::GET, &format!("{services}/cart"))
            .await;
        cluster.api.reply(theirs);
        cluster
            .api
            .placeholders_listed(services, "cart", json!([]))
            .await;
        let (status, _) = cluster
            .api
            .status(&format!("{SERVING}/routes"), &route)
            .await;
        assert_eq!(condition(&status, "IngressReady"), ("False", "NotOwned"));
        assert_eq!(condition(&status, "Ready"), ("False", "NotOwned"));
        cluster.api.event("cart", "Warning", "NotOwned").await;
        assert_eq!(finished(run).await, Action::await_change());
    }
}
