//! `ferry dev`'s data plane and its effects: the in-process dispatcher and embedded broker (or
//! `--kafka`), the topics the shared rule ([`ferry_control::topics`]) asks for, created through
//! the Kafka admin API, and the contract file the dispatcher follows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_api::contract::{Activation, Contract};
use ferry_broker::{Broker, BrokerConfig, RunningBroker};
use ferry_control::status::Topic;
use ferry_control::topics::{self, ConfigLookup, TopicSettings};
use ferry_dispatcher::RunningDispatcher;
use ferry_dispatcher::config::{DispatcherConfig, Role};
use ferry_runtime::telemetry::Telemetry;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use std::sync::Arc;

use super::DevOptions;
use super::desired::Desired;
use crate::Error;

/// The dispatcher, the log, and what was last written to them.
pub struct DataPlane {
    /// The in-process dispatcher.
    pub dispatcher: RunningDispatcher,
    /// The embedded log, and its spans (the manifests' `config-observability`, else `OTEL_*`).
    broker: Option<(RunningBroker, Arc<Telemetry>)>,
    admin: AdminClient<DefaultClientContext>,
    /// Bootstrap servers of the log.
    pub bootstrap: String,
    /// `http://<ingress>`.
    pub ingress_base: String,
    contract_path: PathBuf,
    /// The contract last written.
    pub contract: Contract,
    /// Every topic of the manifests, by name, as the log last answered.
    pub topics: BTreeMap<String, Topic>,
}

impl DataPlane {
    /// Starts the dispatcher on an empty contract, then the embedded broker (unless `--kafka`).
    ///
    /// # Errors
    /// A port in use or an unwritable data directory, naming the flag to change.
    pub async fn start(options: &DevOptions) -> crate::Result<DataPlane> {
        let contract_path = options.data_dir.join("contract.json");
        write_contract(&contract_path, &Contract::default()).map_err(|e| {
            Error::DevStart(format!("cannot write {} ({e})", contract_path.display()))
        })?;
        let mut config =
            DispatcherConfig::new(contract_path.clone(), options.ingress, options.admin);
        config.role = Role::All;
        config.contract_poll = Duration::from_millis(100);
        // Ctrl-C should not wait long: what is not delivered by then (an event held for a
        // revision at zero, say) is not committed either, and is delivered on the next start.
        config.drain_timeout = Duration::from_secs(5);
        let dispatcher = ferry_dispatcher::start(config).await.map_err(|e| match e {
            // A bad OTEL_* variable names itself; anything else is a listener's address.
            ferry_dispatcher::Error::Tracing(_) => Error::DevStart(e.to_string()),
            e => Error::DevStart(format!(
                "{e} (ingress: --ingress, dispatcher admin: --admin)"
            )),
        })?;
        let ingress = dispatcher.http_addr.unwrap_or(options.ingress);
        let (broker, bootstrap) = match &options.kafka {
            Some(bootstrap) => (None, bootstrap.clone()),
            None => {
                let running = start_broker(options).await?;
                let bootstrap = running.0.kafka_addr.to_string();
                (Some(running), bootstrap)
            }
        };
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .map_err(|e| Error::DevStart(format!("cannot create a Kafka admin client: {e}")))?;
        Ok(DataPlane {
            dispatcher,
            broker,
            admin,
            bootstrap,
            ingress_base: format!("http://{ingress}"),
            contract_path,
            contract: Contract::default(),
            topics: BTreeMap::new(),
        })
    }

    /// The generation the dispatcher has applied, if any.
    pub fn applied(&self) -> Option<u64> {
        self.dispatcher.generation()
    }

    /// Creates the topics of Brokers and KafkaChannels (and, on the embedded broker, of
    /// KafkaSources) that do not exist yet, as the shared rule sets them up.
    pub async fn ensure_topics(&mut self, desired: &Desired, partitions: i32, embedded: bool) {
        let defaults = TopicSettings {
            partitions,
            replication: 1,
        };
        let mut wanted: Vec<(String, Result<TopicSettings, String>)> = Vec::new();
        for broker in &desired.brokers {
            let lookup = match desired.config_map_of(broker) {
                None => ConfigLookup::NotNamed,
                Some(Some(data)) => ConfigLookup::Found(Some(data)),
                Some(None) => ConfigLookup::Missing,
            };
            wanted.push(topics::broker_topic_settings(broker, lookup, defaults));
        }
        for channel in &desired.channels {
            let (topic, settings) = topics::channel_topic_settings(channel, defaults);
            wanted.push((topic, Ok(settings)));
        }
        if embedded {
            for source in &desired.sources {
                wanted.extend(source.spec.topics.iter().map(|t| (t.clone(), Ok(defaults))));
            }
        }
        let mut create = Vec::new();
        for (topic, settings) in wanted {
            match settings {
                Err(e) => {
                    self.topics.insert(topic, Topic::Failed(e));
                }
                Ok(_) if matches!(self.topics.get(&topic), Some(Topic::Ready(_))) => {}
                Ok(s) => create.push((topic, s)),
            }
        }
        self.create(create).await;
    }

    async fn create(&mut self, wanted: Vec<(String, TopicSettings)>) {
        if wanted.is_empty() {
            return;
        }
        let new: Vec<NewTopic<'_>> = wanted
            .iter()
            .map(|(t, s)| NewTopic::new(t, s.partitions, TopicReplication::Fixed(s.replication)))
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
        match self.admin.create_topics(&new, &options).await {
            Ok(results) => {
                for result in results {
                    let (topic, state) = match result {
                        Ok(topic) | Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                            (topic.clone(), Topic::Ready(topic))
                        }
                        Err((topic, code)) => {
                            eprintln!("ferry dev: cannot create topic {topic}: {code}; retrying");
                            let why = format!("cannot create topic {topic}: {code}");
                            (topic, Topic::Failed(why))
                        }
                    };
                    self.topics.insert(topic, state);
                }
            }
            Err(e) => eprintln!("ferry dev: cannot create topics: {e}; retrying"),
        }
    }

    /// Hands `contract` (without a generation yet) to the dispatcher when it differs from the
    /// last one: replicas of the same revisions go to the in-process activator at once, the
    /// rest through a new generation of the contract file.
    pub fn publish(&mut self, contract: Contract) {
        let same_revisions = contract.activation.len() == self.contract.activation.len()
            && contract
                .activation
                .iter()
                .zip(&self.contract.activation)
                .all(|(a, b)| a.url == b.url);
        if same_revisions && contract.activation != self.contract.activation {
            self.apply_replicas(&contract.activation);
        }
        // Every field counts: a change of tracing or tag-header routing alone is a generation.
        let mut contract = Contract {
            generation: self.contract.generation,
            ..contract
        };
        if contract == self.contract {
            return;
        }
        contract.generation += 1;
        // The embedded log follows the manifests' tracing settings too, as the chart's does.
        if let Some((_, telemetry)) = &self.broker {
            telemetry.apply(contract.tracing.as_ref());
        }
        match write_contract(&self.contract_path, &contract) {
            Ok(()) => self.contract = contract,
            Err(e) => eprintln!(
                "ferry dev: cannot write {} ({e}); retrying",
                self.contract_path.display()
            ),
        }
    }

    fn apply_replicas(&self, activation: &[Activation]) {
        // One dispatcher: it takes every slot of each replica.
        let share = ferry_dispatcher::activator::Share::default();
        self.dispatcher.activator().apply(activation, share);
    }

    /// Drains the dispatcher, stops the revisions, then syncs and stops the log.
    pub async fn shutdown_with(self, serving: super::serving::Serving) {
        self.dispatcher.shutdown().await;
        serving.shutdown().await;
        if let Some((broker, telemetry)) = self.broker {
            if let Err(e) = broker.shutdown(Duration::from_secs(5)).await {
                eprintln!("ferry dev: the log's final sync failed: {e}");
            }
            let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
        }
    }
}

async fn start_broker(options: &DevOptions) -> crate::Result<(RunningBroker, Arc<Telemetry>)> {
    let listen = options.broker_listen.to_string();
    let config = BrokerConfig::local(&options.data_dir.join("broker"), &["--listen", &listen])
        .map_err(|e| Error::DevStart(e.to_string()))?;
    let telemetry = Telemetry::from_env("ferry-broker")
        .map_err(|e| Error::DevStart(format!("tracing settings: {e}")))?;
    let running = Broker::start_traced(config, telemetry.clone())
        .await
        .map_err(|e| Error::DevStart(e.to_string().replace("--listen", "--broker-listen")))?;
    Ok((running, telemetry))
}

/// Writes the contract atomically (the dispatcher must never read half a file), readable by
/// its owner only: it carries KafkaSources' `spec.net` credentials.
fn write_contract(path: &Path, contract: &Contract) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    // A leftover from a crash keeps its mode when truncated: start from a new file.
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&serde_json::to_vec_pretty(contract)?)?;
    drop(file);
    std::fs::rename(tmp, path)
}
