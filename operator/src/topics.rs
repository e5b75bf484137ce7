//! The log's admin API: topics for Brokers and KafkaChannels, the consumer groups of Triggers
//! and Subscriptions (a KafkaSource's group is the user's, named in its spec, and is left
//! alone), and whether a KafkaSource's topics exist. Speaks only the Kafka protocol (librdkafka), so it works the
//! same against the embedded log and a Kafka cluster.

use std::collections::HashMap;

use ferry_api::contract::ClientSettings;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

use crate::Error;

pub use ferry_control::topics::{PARTITIONS_KEY, REPLICATION_KEY, TopicSettings};

/// A Kafka admin client.
pub struct Topics {
    admin: std::sync::Arc<AdminClient<DefaultClientContext>>,
    timeout: Duration,
    /// Clients of KafkaSources' clusters, by bootstrap servers, with the settings they were
    /// made with (a change of credentials makes a new one).
    others: std::sync::Mutex<HashMap<String, (ClientSettings, Admin)>>,
}

type Admin = std::sync::Arc<AdminClient<DefaultClientContext>>;

/// A client configuration for `bootstrap` with `settings` (security protocol, SASL, TLS).
fn client(bootstrap: &str, settings: &ClientSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    for (key, value) in settings.iter() {
        config.set(key, value);
    }
    config
}

impl Topics {
    /// A client for `bootstrap_servers`, with SASL/TLS from the `FERRY_KAFKA_*` variables the
    /// Helm chart sets when it points Ferry at an external Kafka.
    ///
    /// # Errors
    /// librdkafka refused the configuration.
    pub fn new(bootstrap_servers: &str) -> crate::Result<Topics> {
        let settings = ferry_api::contract::log_client_settings(|var| std::env::var(var).ok());
        let admin = client(bootstrap_servers, &settings).create().map_err(|e| {
            Error::Config(format!(
                "cannot configure the Kafka admin client: {e}; fix --kafka-bootstrap-servers or the FERRY_KAFKA_* variables"
            ))
        })?;
        Ok(Topics {
            admin: std::sync::Arc::new(admin),
            timeout: Duration::from_secs(10),
            others: Default::default(),
        })
    }

    fn options(&self) -> AdminOptions {
        AdminOptions::new().operation_timeout(Some(self.timeout))
    }

    /// Creates `topic` unless it exists.
    ///
    /// # Errors
    /// What the log answered, e.g. a replication factor above the number of brokers.
    pub async fn ensure(&self, topic: &str, settings: TopicSettings) -> crate::Result<()> {
        let new = NewTopic::new(
            topic,
            settings.partitions,
            TopicReplication::Fixed(settings.replication),
        );
        let results = self
            .admin
            .create_topics([&new], &self.options())
            .await
            .map_err(|e| Error::Log(format!("cannot create topic {topic}: {e}")))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => {
                    return Err(Error::Log(format!("cannot create topic {topic}: {code}")));
                }
            }
        }
        Ok(())
    }

    /// Whether every one of `topics` exists on the cluster at `bootstrap` (a KafkaSource's,
    /// reached with its `spec.net` settings): KafkaSources read topics they do not own.
    ///
    /// # Errors
    /// The topics that are missing, or why the cluster could not be asked (e.g. refused
    /// credentials).
    pub async fn exist_on(
        &self,
        bootstrap: &str,
        settings: &ClientSettings,
        topics: &[String],
    ) -> Result<(), LookupError> {
        let admin = {
            let mut others = self.others.lock().unwrap_or_else(|e| e.into_inner());
            match others.get(bootstrap) {
                Some((s, admin)) if s == settings => admin.clone(),
                _ => {
                    let admin: Admin =
                        std::sync::Arc::new(client(bootstrap, settings).create().map_err(|e| {
                            LookupError::Unreachable(format!(
                                "cannot configure a Kafka client for {bootstrap}: {e}"
                            ))
                        })?);
                    others.insert(bootstrap.to_owned(), (settings.clone(), admin.clone()));
                    admin
                }
            }
        };
        // Shorter than the admin timeout: librdkafka keeps retrying a refused login until the
        // deadline, and the reason should reach the source's status within one reconcile.
        exist(admin, SOURCE_LOOKUP_TIMEOUT, topics).await
    }

    /// Deletes `topic`; a topic that is already gone is fine.
    ///
    /// # Errors
    /// What the log answered.
    pub async fn delete(&self, topic: &str) -> crate::Result<()> {
        let results = self
            .admin
            .delete_topics(&[topic], &self.options())
            .await
            .map_err(|e| Error::Log(format!("cannot delete topic {topic}: {e}")))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((_, code)) => {
                    return Err(Error::Log(format!("cannot delete topic {topic}: {code}")));
                }
            }
        }
        Ok(())
    }

    /// Deletes a consumer group; one that does not exist is fine. A group with members still
    /// connected cannot be deleted yet (the dispatchers leave it once the contract drops it).
    ///
    /// # Errors
    /// What the log answered.
    pub async fn delete_group(&self, group: &str) -> crate::Result<()> {
        let results = self
            .admin
            .delete_groups(&[group], &self.options())
            .await
            .map_err(|e| Error::Log(format!("cannot delete consumer group {group}: {e}")))?;
        for result in results {
            match result {
                Ok(_)
                | Err((_, RDKafkaErrorCode::GroupIdNotFound))
                | Err((_, RDKafkaErrorCode::NotCoordinator)) => {}
                Err((_, code)) => {
                    return Err(Error::Log(format!(
                        "cannot delete consumer group {group}: {code}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// How long a KafkaSource's cluster is given to answer a metadata request.
const SOURCE_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why topics could not be confirmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupError {
    /// The cluster answered, without these topics.
    Missing(String),
    /// The cluster could not be asked: unreachable, refused the credentials, or the client
    /// could not be configured (e.g. a PEM that is not one).
    Unreachable(String),
}

async fn exist(admin: Admin, timeout: Duration, topics: &[String]) -> Result<(), LookupError> {
    let metadata = tokio::task::spawn_blocking(move || admin.inner().fetch_metadata(None, timeout))
        .await
        .map_err(|e| LookupError::Unreachable(format!("metadata lookup stopped: {e}")))?
        .map_err(|e| LookupError::Unreachable(format!("cannot read the topics: {e}")))?;
    let missing: Vec<&str> = topics
        .iter()
        .filter(|t| {
            !metadata
                .topics()
                .iter()
                .any(|m| m.name() == t.as_str() && m.error().is_none())
        })
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(LookupError::Missing(format!(
            "topic(s) {} do not exist; create them or fix spec.topics (and spec.bootstrapServers)",
            missing.join(", ")
        )))
    }
}
