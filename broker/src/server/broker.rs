//! The broker's shared state: what every request handler reads (settings, topics, groups,
//! metrics, the listener's security) and what the broker persists about itself in
//! `<data-dir>/meta.json` (the cluster id and the producer-id block in use).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ferry_runtime::telemetry::Telemetry;
use kafka_protocol::messages::ResponseKind;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::BrokerConfig;
use crate::config::dynamic::DynamicConfigs;
use crate::error::{Error, Result, io_at};
use crate::groups::ConsumerGroupCoordinator;
use crate::groups::offsets::OffsetStore;
use crate::metrics::Metrics;
use crate::security::ListenerSecurity;
use crate::security::acl::Acls;
use crate::security::credentials::ScramCredentials;
use crate::storage::{Disk, FlushPolicy, RealDisk};
use crate::topics::{TopicDefaults, Topics};

/// A response still being computed; `None` means no response is sent (produce with acks=0).
pub(crate) type Respond = Pin<Box<dyn Future<Output = Option<ResponseKind>> + Send>>;

/// What a handler knows about the request besides its body.
#[derive(Clone, Debug)]
pub(crate) struct Ctx {
    pub version: i16,
    pub client_id: String,
    pub peer: SocketAddr,
    /// `User:<name>` after SASL, else `User:ANONYMOUS`: whom the ACLs are checked for.
    pub principal: Arc<str>,
}

impl Ctx {
    /// Whether this request's principal may perform `operation` on resource `name` of
    /// `resource_type` (always, without `--authorizer`).
    pub fn may(&self, broker: &Broker, operation: i8, resource_type: i8, name: &str) -> bool {
        broker.acls.authorize(
            &self.principal,
            Some(self.peer.ip()),
            operation,
            resource_type,
            name,
        )
    }
}

/// The broker's shared state.
#[derive(Debug)]
pub struct Broker {
    pub(super) config: BrokerConfig,
    pub(super) topics: Topics,
    /// Dynamic broker and group configs (AlterConfigs, DescribeConfigs).
    pub(super) dynamic: DynamicConfigs,
    /// SCRAM credentials set with the admin APIs.
    pub(super) scram: Arc<ScramCredentials>,
    /// ACLs and the authorizer.
    pub(super) acls: Acls,
    pub(super) groups: ConsumerGroupCoordinator,
    pub(super) metrics: Arc<Metrics>,
    /// Bumped whenever a high watermark moves or topics change; long polls wait on it.
    pub(super) data_version: Arc<watch::Sender<u64>>,
    producer_ids: Mutex<ProducerIds>,
    meta_path: PathBuf,
    pub(super) cluster_id: String,
    /// `(host, port)` clients are told to connect to.
    pub(super) advertised: (String, i32),
    pub(super) security: ListenerSecurity,
    pub(super) shutdown: watch::Receiver<bool>,
    /// Spans of Produce and Fetch; off unless the process turned it on.
    pub(super) telemetry: Arc<Telemetry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct MetaFile {
    cluster_id: String,
    producer_id_block_end: i64,
}

#[derive(Debug)]
struct ProducerIds {
    next: i64,
    block_end: i64,
}

/// Producer ids are handed out in blocks recorded durably before use, so ids stay unique
/// across restarts without a write per InitProducerId.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Replaces `meta.json` durably (a fsynced temporary file renamed over it, then the directory
/// fsynced, so the rename itself survives a power loss).
fn write_meta(path: &Path, meta: &MetaFile) -> Result<()> {
    RealDisk
        .replace(path, &serde_json::to_vec_pretty(meta).unwrap_or_default())
        .map_err(io_at(path))
}

/// `meta.json` as stored, or a new cluster id for a new data directory.
fn read_meta(path: &Path) -> Result<MetaFile> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Damaged {
            path: path.to_owned(),
            problem: e.to_string(),
        }),
        Err(_) => Ok(MetaFile {
            cluster_id: uuid::Uuid::new_v4().simple().to_string(),
            producer_id_block_end: 0,
        }),
    }
}

impl Broker {
    /// Loads the security files, then opens the data directory (recovering every partition).
    /// Blocking.
    ///
    /// # Errors
    /// The security files' errors, I/O errors and damaged metadata files.
    pub(super) fn open(
        config: BrokerConfig,
        kafka_addr: SocketAddr,
        shutdown: watch::Receiver<bool>,
        telemetry: Arc<Telemetry>,
    ) -> Result<Broker> {
        // First, so a bad PEM or users file fails before the data directory is touched.
        let security = ListenerSecurity::load(&config.security_files())?;
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(io_at(dir))?;
        let meta_path = dir.join("meta.json");
        let mut meta = read_meta(&meta_path)?;
        let next = meta.producer_id_block_end;
        meta.producer_id_block_end += PRODUCER_ID_BLOCK;
        write_meta(&meta_path, &meta)?;
        let (data_version, _) = watch::channel(0u64);
        let data_version = Arc::new(data_version);
        let metrics = Arc::new(Metrics::default());
        let flags = config.topic_defaults();
        let dynamic = DynamicConfigs::open(dir, flags.config)?;
        let scram = Arc::new(ScramCredentials::open(dir)?);
        let acls = Acls::open(dir, config.authorizer_config())?;
        let topics = Topics::open(
            dir,
            TopicDefaults {
                config: dynamic.topic_defaults()?,
                ..flags
            },
            data_version.clone(),
            config.recovery(),
            metrics.clone(),
        )?;
        let offsets = OffsetStore::open(dir, config.flush != FlushPolicy::Os, metrics.clone())?;
        let groups = ConsumerGroupCoordinator::new(config.group_config(), offsets, metrics.clone());
        let advertised = match &config.advertised_listener {
            Some(a) => {
                let (h, p) = a.rsplit_once(':').unwrap_or((a, "9092"));
                (h.to_owned(), p.parse().unwrap_or(9092))
            }
            None => (kafka_addr.ip().to_string(), i32::from(kafka_addr.port())),
        };
        Ok(Broker {
            config,
            topics,
            dynamic,
            scram,
            acls,
            groups,
            metrics,
            data_version,
            producer_ids: Mutex::new(ProducerIds {
                next,
                block_end: next + PRODUCER_ID_BLOCK,
            }),
            meta_path,
            cluster_id: meta.cluster_id,
            advertised,
            security,
            shutdown,
            telemetry,
        })
    }

    /// The broker's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The listener's security protocol as a Kafka client names it: `PLAINTEXT`, `SSL`,
    /// `SASL_PLAINTEXT` or `SASL_SSL`.
    pub fn security_protocol(&self) -> &'static str {
        self.security.protocol()
    }

    /// The topic registry.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// Why `/readyz` fails, if it does: shutdown has begun, or a failed disk write or fsync
    /// fenced a partition (named, so the operator knows which disk and topic to look at).
    pub(crate) fn unready(&self) -> Option<String> {
        if self.stopping() {
            return Some("shutting down".to_owned());
        }
        let mut fenced: Vec<String> = self
            .topics
            .all_partitions()
            .iter()
            .filter(|p| p.fenced())
            .map(|p| format!("partition {}-{}", p.topic(), p.index()))
            .collect();
        if self.groups.offsets_fenced() {
            fenced.push("the committed-offsets store".to_owned());
        }
        (!fenced.is_empty()).then(|| {
            format!(
                "fenced after a disk write or fsync failed: {}; check the disk under --data-dir (the log names the error), then restart the broker",
                fenced.join(", ")
            )
        })
    }

    /// Whether shutdown has begun.
    pub(crate) fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// A fresh producer id, from the block recorded in `meta.json` (recording the next block
    /// first when this one is used up).
    ///
    /// # Errors
    /// I/O errors writing `meta.json`.
    pub(super) fn next_producer_id(&self) -> Result<i64> {
        let mut ids = self.producer_ids.lock().unwrap_or_else(|e| e.into_inner());
        if ids.next >= ids.block_end {
            let end = ids.block_end + PRODUCER_ID_BLOCK;
            write_meta(
                &self.meta_path,
                &MetaFile {
                    cluster_id: self.cluster_id.clone(),
                    producer_id_block_end: end,
                },
            )?;
            ids.block_end = end;
        }
        let id = ids.next;
        ids.next += 1;
        Ok(id)
    }

    /// Fsyncs every partition and the offset store.
    ///
    /// # Errors
    /// The first I/O error.
    pub fn sync_all(&self) -> Result<()> {
        for p in self.topics.all_partitions() {
            p.sync_through(i64::MAX, &self.metrics)?;
        }
        self.groups.flush_offsets()
    }
}
