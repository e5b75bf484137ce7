//! A whole data plane on 127.0.0.1 for the dispatcher's tests: the embedded broker (in this
//! process), the `ferry-dispatcher` binary (a real child process, so it can be killed), and
//! test sinks from `ferry-testkit`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use ferry_api::contract::{
    Contract, ContractResource, DeliveryPolicy, Egress, Ingress, ObjectRef, Target,
};
use ferry_broker::{Broker, BrokerConfig, RunningBroker};
use ferry_testkit::process::{Process, http_get};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

pub use ferry_testkit::process::eventually;
#[allow(unused_imports)]
pub use ferry_testkit::sink::{Rule, Sink};

/// The embedded broker, started in this process on a temporary directory.
pub struct Log {
    pub running: Option<RunningBroker>,
    pub bootstrap: String,
    /// librdkafka settings this test's own clients need (SASL/TLS of a secured broker).
    pub client_settings: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Log {
    pub async fn start() -> Log {
        Self::start_with(&[]).await
    }

    /// Starts the broker with extra flags (e.g. `--flush os`).
    pub async fn start_with(extra: &[&str]) -> Log {
        Self::start_secured(tempfile::tempdir().unwrap(), extra, Vec::new()).await
    }

    /// Starts the broker in `dir` with `extra` flags (e.g. SASL and TLS), and gives this
    /// test's clients `client_settings` to connect to it.
    pub async fn start_secured(
        dir: tempfile::TempDir,
        extra: &[&str],
        client_settings: Vec<(String, String)>,
    ) -> Log {
        let config = BrokerConfig::local(&dir.path().join("log"), extra).expect("broker flags");
        let running = Broker::start(config).await.expect("broker starts");
        let bootstrap = running.kafka_addr.to_string();
        Log {
            running: Some(running),
            bootstrap,
            client_settings,
            _dir: dir,
        }
    }

    /// A client configuration for this broker.
    pub fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        for (k, v) in &self.client_settings {
            config.set(k, v);
        }
        config
    }

    pub async fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = self.client().create().unwrap();
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let results = admin
            .create_topics([&topic], &AdminOptions::new())
            .await
            .expect("create topics");
        for r in results {
            r.expect("topic created");
        }
    }

    /// Headers, key and value of the first record of partition 0.
    pub async fn first_record(
        &self,
        topic: &str,
    ) -> (Vec<(String, String)>, Option<String>, Vec<u8>) {
        self.record_at(topic, 0).await
    }

    /// Headers, key and value of the last record of partition 0.
    pub async fn last_record(
        &self,
        topic: &str,
    ) -> (Vec<(String, String)>, Option<String>, Vec<u8>) {
        let high = self.records(topic, 1);
        self.record_at(topic, high - 1).await
    }

    async fn record_at(
        &self,
        topic: &str,
        offset: i64,
    ) -> (Vec<(String, String)>, Option<String>, Vec<u8>) {
        use rdkafka::Message;
        use rdkafka::consumer::StreamConsumer;
        use rdkafka::message::Headers;
        let consumer: StreamConsumer = self.client().set("group.id", "reader").create().unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, rdkafka::Offset::Offset(offset))
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let m = tokio::time::timeout(Duration::from_secs(10), consumer.recv())
            .await
            .expect("a record")
            .expect("readable");
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        (
            headers,
            m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            m.payload().unwrap_or_default().to_vec(),
        )
    }

    /// Records in a topic (sum of high watermarks).
    pub fn records(&self, topic: &str, partitions: i32) -> i64 {
        let consumer: BaseConsumer = self
            .client()
            .set("group.id", "watermarks")
            .create()
            .unwrap();
        (0..partitions)
            .map(|p| {
                consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(5))
                    .map(|(_, high)| high)
                    .unwrap_or(0)
            })
            .sum()
    }
}

/// A `ferry-dispatcher` child process with its contract file.
pub struct Dispatcher {
    pub process: Option<Process>,
    pub contract_path: PathBuf,
    pub http: String,
    pub admin: std::net::SocketAddr,
    extra: Vec<String>,
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Dispatcher {
    /// Starts a dispatcher (role all) on `contract` and waits until it applied it.
    pub fn start(contract: &Contract, extra: &[&str]) -> Dispatcher {
        Self::start_with_env(contract, extra, &[])
    }

    /// [`Dispatcher::start`] with extra environment variables (e.g. `FERRY_KAFKA_*`).
    pub fn start_with_env(contract: &Contract, extra: &[&str], env: &[(&str, &str)]) -> Dispatcher {
        let dir = tempfile::tempdir().unwrap();
        let contract_path = dir.path().join("contract.json");
        std::fs::write(&contract_path, serde_json::to_vec_pretty(contract).unwrap()).unwrap();
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let (process, http, admin) = spawn(&contract_path, &extra, &env);
        let d = Dispatcher {
            process: Some(process),
            contract_path,
            http,
            admin,
            extra,
            env,
            _dir: dir,
        };
        d.wait_for_generation(contract.generation);
        d
    }

    /// Writes a new contract file (the dispatcher polls it).
    pub fn write_contract(&self, contract: &Contract) {
        let tmp = self.contract_path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(contract).unwrap()).unwrap();
        std::fs::rename(tmp, &self.contract_path).unwrap();
    }

    /// Writes raw bytes as the contract file.
    pub fn write_raw(&self, bytes: &[u8]) {
        std::fs::write(&self.contract_path, bytes).unwrap();
    }

    pub fn wait_for_generation(&self, generation: u64) {
        let want = format!("generation {generation}");
        eventually(&want, Duration::from_secs(15), || {
            self.admin_get("/readyz").contains(&want).then_some(())
        });
    }

    pub fn admin_get(&self, path: &str) -> String {
        http_get(self.admin, path)
    }

    /// The value of a metric line starting with `prefix` (0 when absent).
    pub fn metric(&self, prefix: &str) -> f64 {
        self.admin_get("/metrics")
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.http)
    }

    pub fn kill9(&mut self) {
        self.process.take().expect("running").kill9();
    }

    pub fn stop(&mut self) {
        self.process.take().expect("running").stop();
    }

    /// Starts again on the same contract file and flags (new ports).
    pub fn restart(&mut self) {
        let (process, http, admin) = spawn(&self.contract_path, &self.extra, &self.env);
        self.process = Some(process);
        self.http = http;
        self.admin = admin;
    }
}

fn spawn(
    contract: &std::path::Path,
    extra: &[String],
    env: &[(String, String)],
) -> (Process, String, std::net::SocketAddr) {
    let mut args: Vec<String> = vec![
        "--contract".into(),
        contract.display().to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--admin-listen".into(),
        "127.0.0.1:0".into(),
        "--contract-poll".into(),
        "100ms".into(),
        "--session-timeout".into(),
        "6s".into(),
    ];
    args.extend(extra.iter().cloned());
    let log = std::env::var("FERRY_TEST_LOG").unwrap_or_else(|_| "warn".into());
    let mut vars = vec![("RUST_LOG".to_owned(), log)];
    vars.extend(env.iter().cloned());
    let process = Process::start(env!("CARGO_BIN_EXE_ferry-dispatcher"), args, vars);
    // An egress-only dispatcher has no ingress listener.
    let egress_only = extra
        .windows(2)
        .any(|w| w[0] == "--role" && w[1] == "egress");
    let http = if egress_only {
        String::new()
    } else {
        format!("http://{}", process.addr("http"))
    };
    let admin = process.addr("admin");
    (process, http, admin)
}

/// A Broker resource with an ingress at `/default/<name>` on topic `<name>`.
pub fn broker(name: &str, bootstrap: &str, egresses: Vec<Egress>) -> ContractResource {
    ContractResource {
        uid: format!("broker-{name}"),
        reference: ObjectRef::new("Broker", "default", name),
        topics: vec![name.to_owned()],
        bootstrap_servers: bootstrap.to_owned(),
        auth: None,
        ingress: Some(Ingress {
            path: format!("/default/{name}"),
        }),
        egresses,
    }
}

/// A Trigger egress delivering to `url` from the earliest offset.
pub fn trigger(name: &str, url: &str) -> Egress {
    Egress {
        uid: format!("trigger-{name}"),
        reference: ObjectRef::new("Trigger", "default", name),
        consumer_group: format!("group-{name}"),
        destination: Target::Url(url.to_owned()),
        filter_attributes: Default::default(),
        filters: Vec::new(),
        delivery: DeliveryPolicy {
            backoff_delay_ms: 20,
            ..DeliveryPolicy::default()
        },
        reply: None,
        ordering: Default::default(),
        initial_offset: ferry_api::sources::InitialOffset::Earliest,
        source: None,
    }
}

pub fn contract(generation: u64, resources: Vec<ContractResource>) -> Contract {
    Contract {
        generation,
        resources,
        ..Contract::default()
    }
}

/// Posts a binary-mode event; returns (status, body).
pub async fn post_event(
    client: &reqwest::Client,
    url: &str,
    id: &str,
    ty: &str,
    extra: &[(&str, &str)],
    data: &str,
) -> (u16, String) {
    let mut request = client
        .post(url)
        .header("ce-specversion", "1.0")
        .header("ce-id", id)
        .header("ce-source", "/tests")
        .header("ce-type", ty)
        .header("content-type", "application/json");
    for (k, v) in extra {
        request = request.header(*k, *v);
    }
    let response = request.body(data.to_owned()).send().await.expect("post");
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

/// Waits for `sink` to have accepted `n` events (15 s).
pub async fn accepted(sink: &Sink, n: usize) -> Vec<ferry_testkit::sink::Received> {
    sink.wait_for_accepted(n, Duration::from_secs(15)).await
}
