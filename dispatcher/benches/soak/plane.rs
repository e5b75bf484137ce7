//! The data plane under test, every part its own process on 127.0.0.1 so that each can be
//! measured and killed: the release `ferry-broker` (default flush), a `ferry-dispatcher` in
//! role ingress and one in role egress (as the chart deploys them), a tally sink for the
//! subscriber and one for the dead-letter sink (this benchmark's own binary, started again).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ferry_api::contract::{DeliveryPolicy, Egress};
use ferry_api::eventing::DeliveryOrder;
use ferry_testkit::process::Process;
use ferry_testkit::tally::{Remote, TallySettings};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};

use crate::support::{self, Dispatcher, contract};

/// The release broker: `FERRY_BROKER_BIN`, else `ferry-broker` beside this build's
/// `ferry-dispatcher` (`cargo build --release -p ferry-broker`).
fn broker_bin() -> PathBuf {
    let bin = std::env::var_os("FERRY_BROKER_BIN").map_or_else(
        || {
            std::path::Path::new(env!("CARGO_BIN_EXE_ferry-dispatcher"))
                .with_file_name("ferry-broker")
        },
        PathBuf::from,
    );
    assert!(
        bin.exists(),
        "no broker binary at {}: run `cargo build --release -p ferry-broker` or set FERRY_BROKER_BIN",
        bin.display()
    );
    bin
}

/// A `ferry-broker` process with its data directory; restarts on the same port and data.
pub struct BrokerProcess {
    process: Option<Process>,
    pub kafka: SocketAddr,
    dir: tempfile::TempDir,
}

impl BrokerProcess {
    /// Starts a broker with its defaults (`--flush always`: group commit) on a new directory.
    pub fn start() -> BrokerProcess {
        let dir = tempfile::tempdir().expect("temporary directory");
        let process = spawn_broker(&dir, "127.0.0.1:0");
        BrokerProcess {
            kafka: process.addr("kafka"),
            process: Some(process),
            dir,
        }
    }

    pub fn bootstrap(&self) -> String {
        self.kafka.to_string()
    }

    pub fn pid(&self) -> u32 {
        self.process.as_ref().map_or(0, Process::pid)
    }

    pub fn kill9(&mut self) {
        self.process.take().expect("running").kill9();
    }

    /// Starts again on the same port (retrying the bind while the old socket lingers) and
    /// data directory.
    pub fn restart(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpListener::bind(self.kafka).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.process = Some(spawn_broker(&self.dir, &self.kafka.to_string()));
    }
}

fn spawn_broker(dir: &tempfile::TempDir, listen: &str) -> Process {
    let data = dir.path().join("log").display().to_string();
    let args = [
        "--listen",
        listen,
        "--admin-listen",
        "127.0.0.1:0",
        "--data-dir",
        &data,
    ];
    let log = std::env::var("FERRY_TEST_LOG").unwrap_or_else(|_| "warn".into());
    Process::start(broker_bin(), args, [("RUST_LOG", log)])
}

/// A tally sink in its own process: this benchmark's binary, which serves one when the
/// tally settings are in its environment.
pub struct SinkProcess {
    pub process: Process,
    pub remote: Remote,
}

impl SinkProcess {
    pub fn start(settings: &TallySettings) -> SinkProcess {
        let exe = std::env::current_exe().expect("this benchmark's path");
        let process = Process::start(exe, Vec::<String>::new(), settings.to_env());
        SinkProcess {
            remote: Remote(process.addr("http")),
            process,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.remote.0)
    }
}

/// What a run's plane is made of.
pub struct Shape {
    /// The Broker's name and topic.
    pub topic: &'static str,
    pub partitions: i32,
    /// Events the sinks count (every sequence number the generator may send).
    pub capacity: usize,
    /// Share of subscriber requests answered 500, and its seed.
    pub fail_ratio: f64,
    pub seed: u64,
    /// The Trigger's delivery spec (its dead-letter sink, when `dead_letter`, is set here).
    pub delivery: DeliveryPolicy,
    pub dead_letter: bool,
    pub ordering: DeliveryOrder,
}

impl Shape {
    /// Unordered delivery to a subscriber that accepts everything (retry 3, 100 ms linear
    /// backoff: the defaults the runs change from), on 4 partitions.
    pub fn plain(topic: &'static str, capacity: usize, seed: u64) -> Shape {
        Shape {
            topic,
            partitions: 4,
            capacity,
            fail_ratio: 0.0,
            seed,
            delivery: DeliveryPolicy {
                retry: 3,
                backoff_delay_ms: 100,
                ..DeliveryPolicy::default()
            },
            dead_letter: false,
            ordering: DeliveryOrder::Unordered,
        }
    }
}

/// A running plane: broker, ingress, egress, sinks; everything stops when dropped.
pub struct Plane {
    // Field order is drop order: dispatchers drain while the broker and sinks still run.
    pub ingress: Dispatcher,
    pub egress: Dispatcher,
    pub subscriber: SinkProcess,
    pub dead_letter: Option<SinkProcess>,
    pub broker: BrokerProcess,
    /// The ingress URL the generator posts to (a restarted ingress has a new port).
    pub target: Arc<RwLock<String>>,
}

impl Plane {
    pub async fn start(shape: &Shape) -> Plane {
        let broker = BrokerProcess::start();
        create_topic(&broker.bootstrap(), shape.topic, shape.partitions).await;
        let sink_settings = |fail_ratio, seed| TallySettings {
            capacity: shape.capacity,
            fail_ratio,
            seed,
            record_order: shape.ordering == DeliveryOrder::Ordered,
        };
        let subscriber = SinkProcess::start(&sink_settings(shape.fail_ratio, shape.seed));
        let dead_letter = shape
            .dead_letter
            .then(|| SinkProcess::start(&sink_settings(0.0, 0)));
        let egress = Egress {
            delivery: DeliveryPolicy {
                dead_letter_sink: dead_letter.as_ref().map(SinkProcess::url),
                ..shape.delivery.clone()
            },
            ordering: shape.ordering,
            ..support::trigger(shape.topic, &subscriber.url())
        };
        let resource = support::broker(shape.topic, &broker.bootstrap(), vec![egress]);
        let contract = contract(1, vec![resource]);
        let ingress = Dispatcher::start(&contract, &["--role", "ingress"]);
        let egress = Dispatcher::start(&contract, &["--role", "egress"]);
        let target = Arc::new(RwLock::new(
            ingress.url(&format!("/default/{}", shape.topic)),
        ));
        Plane {
            ingress,
            egress,
            subscriber,
            dead_letter,
            broker,
            target,
        }
    }

    /// Processes to measure, by name.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        let pid = |d: &Dispatcher| d.process.as_ref().map_or(0, Process::pid);
        let mut pids = vec![
            ("broker", self.broker.pid()),
            ("ingress", pid(&self.ingress)),
            ("egress", pid(&self.egress)),
            ("sink", self.subscriber.process.pid()),
        ];
        if let Some(d) = &self.dead_letter {
            pids.push(("dead-letter sink", d.process.pid()));
        }
        pids.push(("generator", std::process::id()));
        pids
    }

    /// Kills the ingress with SIGKILL, starts it again and points the generator at it.
    pub fn kill9_ingress(&mut self, topic: &str) {
        self.ingress.kill9();
        self.ingress.restart();
        *self.target.write().unwrap() = self.ingress.url(&format!("/default/{topic}"));
    }
}

async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for r in admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .expect("create topics")
    {
        r.expect("topic created");
    }
}

/// Per partition key, the ids of `topic`'s events in log order (key and id as numbers).
pub fn log_order(bootstrap: &str, topic: &str, partitions: i32) -> BTreeMap<u32, Vec<u32>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "soak-log-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = rdkafka::TopicPartitionList::new();
    let mut left: i64 = 0;
    for p in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("watermarks");
        left += high - low;
        assignment
            .add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
    let mut order: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while left > 0 {
        assert!(Instant::now() < deadline, "{left} records not read back");
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m.expect("a record");
        left -= 1;
        let number = |bytes: &[u8]| std::str::from_utf8(bytes).ok()?.parse::<u32>().ok();
        let key = m.key().and_then(number).unwrap_or(u32::MAX);
        let id = m
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "ce_id")?.value.and_then(number));
        order.entry(key).or_default().extend(id);
    }
    order
}

/// Waits until `settled` says every accepted event arrived (asked every 2 s), or `timeout`;
/// says which on stderr.
pub fn wait_settled(what: &str, timeout: Duration, mut settled: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    loop {
        let done = settled();
        if done || started.elapsed() > timeout {
            let verdict = if done { "yes" } else { "NO" };
            eprintln!("{what}: {verdict} after {:.0?}", started.elapsed());
            return done;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}
