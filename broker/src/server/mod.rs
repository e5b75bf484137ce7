//! The Kafka protocol server: the shared [`Broker`] state, the listener, and one module per
//! family of APIs.

mod admin;
mod connection;
mod fetch;
mod groups;
mod metadata;
mod produce;
mod sasl;
pub mod versions;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_protocol::messages::{RequestKind, ResponseKind};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::BrokerConfig;
use crate::groups::ConsumerGroupCoordinator;
use crate::groups::offsets::OffsetStore;
use crate::metrics::Metrics;
use crate::security::{ListenerSecurity, SecurityError};
use crate::storage::{FlushPolicy, StorageError};
use crate::topics::{TopicError, Topics};

/// A response still being computed; `None` means no response is sent (produce with acks=0).
pub(crate) type Respond = Pin<Box<dyn Future<Output = Option<ResponseKind>> + Send>>;

/// What a handler knows about the request besides its body.
#[derive(Clone, Debug)]
pub(crate) struct Ctx {
    pub version: i16,
    pub client_id: String,
    pub peer: SocketAddr,
}

/// The broker's shared state.
#[derive(Debug)]
pub struct Broker {
    config: BrokerConfig,
    topics: Topics,
    groups: ConsumerGroupCoordinator,
    metrics: Arc<Metrics>,
    data_version: Arc<watch::Sender<u64>>,
    producer_ids: Mutex<ProducerIds>,
    meta_path: PathBuf,
    cluster_id: String,
    advertised: (String, i32),
    security: ListenerSecurity,
    shutdown: watch::Receiver<bool>,
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

fn write_meta(path: &Path, meta: &MetaFile) -> Result<(), StorageError> {
    let io = |source| StorageError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(meta).unwrap_or_default()).map_err(io)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad settings.
    #[error("{0}")]
    Config(String),
    /// The data directory could not be opened or recovered.
    #[error(transparent)]
    Topics(#[from] TopicError),
    /// The data directory could not be opened or recovered.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A TLS PEM file or the SASL users file is unreadable or invalid.
    #[error(transparent)]
    Security(#[from] SecurityError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}; choose another address with {flag}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Which flag sets it.
        flag: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A running broker.
#[derive(Debug)]
pub struct RunningBroker {
    /// Where the Kafka protocol listens.
    pub kafka_addr: SocketAddr,
    /// Where /metrics, /healthz and /readyz are served.
    pub admin_addr: SocketAddr,
    broker: Arc<Broker>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl RunningBroker {
    /// The broker's shared state (for embedding).
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Stops accepting, lets in-flight requests finish (up to `grace`), fsyncs every
    /// partition and the offset store.
    ///
    /// # Errors
    /// The first I/O error of the final sync.
    pub async fn shutdown(mut self, grace: Duration) -> Result<(), StorageError> {
        let _ = self.stop.send(true);
        let drained = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("connections still open after the grace period; closing them");
            self.tasks.abort_all();
        }
        let broker = self.broker.clone();
        tokio::task::spawn_blocking(move || broker.sync_all())
            .await
            .unwrap_or(Ok(()))
    }
}

impl Broker {
    /// Opens the data directory (recovering every partition), binds both listeners and
    /// starts serving.
    ///
    /// # Errors
    /// [`StartError`] naming what failed.
    pub async fn start(config: BrokerConfig) -> Result<RunningBroker, StartError> {
        config.validate().map_err(StartError::Config)?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    flag: "--listen",
                    source,
                })?;
        let admin = TcpListener::bind(config.admin_listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.admin_listen,
                flag: "--admin-listen",
                source,
            })?;
        let kafka_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            flag: "--listen",
            source,
        })?;
        let admin_addr = admin.local_addr().map_err(|source| StartError::Bind {
            addr: config.admin_listen,
            flag: "--admin-listen",
            source,
        })?;
        let (stop, shutdown) = watch::channel(false);
        let data_dir = config.data_dir.clone();
        let cfg = config.clone();
        let broker = tokio::task::spawn_blocking(move || Broker::open(cfg, kafka_addr, shutdown))
            .await
            .map_err(|e| StartError::Config(format!("recovery panicked: {e}")))??;
        let broker = Arc::new(broker);
        tracing::info!(
            data_dir = %data_dir.display(),
            topics = broker.topics.list().len(),
            flush = %broker.config.flush,
            security_protocol = broker.security.protocol(),
            "broker opened"
        );
        let mut tasks = JoinSet::new();
        tasks.spawn(connection::accept_loop(broker.clone(), listener));
        tasks.spawn(crate::admin::serve(broker.clone(), admin));
        tasks.spawn(background(broker.clone()));
        Ok(RunningBroker {
            kafka_addr,
            admin_addr,
            broker,
            stop,
            tasks,
        })
    }

    fn open(
        config: BrokerConfig,
        kafka_addr: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Broker, StartError> {
        // First, so a bad PEM or users file fails before the data directory is touched.
        let security = ListenerSecurity::load(&config)?;
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(|source| StorageError::Io {
            path: dir.clone(),
            source,
        })?;
        let meta_path = dir.join("meta.json");
        let mut meta = match std::fs::read(&meta_path) {
            Ok(bytes) => {
                serde_json::from_slice::<MetaFile>(&bytes).map_err(|e| StorageError::Io {
                    path: meta_path.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                })?
            }
            Err(_) => MetaFile {
                cluster_id: uuid::Uuid::new_v4().simple().to_string(),
                producer_id_block_end: 0,
            },
        };
        let next = meta.producer_id_block_end;
        meta.producer_id_block_end += PRODUCER_ID_BLOCK;
        write_meta(&meta_path, &meta)?;
        let (data_version, _) = watch::channel(0u64);
        let data_version = Arc::new(data_version);
        let topics = Topics::open(dir, config.topic_defaults(), data_version.clone())?;
        let metrics = Arc::new(Metrics::default());
        let offsets = OffsetStore::open(dir, config.flush != FlushPolicy::Os)?;
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

    /// A receiver that changes when shutdown begins.
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// Whether shutdown has begun.
    pub(crate) fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    fn next_producer_id(&self) -> Result<i64, StorageError> {
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

    /// Answers one request frame (without its length prefix) exactly as a connection would:
    /// the response frame, `None` when no response is due (produce with acks=0), or why the
    /// connection would be closed. Used by the fuzz tests. Each frame is answered as the first
    /// request of a new connection (with `--sasl-users`, only the SASL APIs and ApiVersions).
    ///
    /// # Errors
    /// The reason the connection would be closed.
    pub async fn answer(
        self: &Arc<Self>,
        frame: bytes::Bytes,
    ) -> Result<Option<bytes::Bytes>, String> {
        let peer = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut sasl =
            sasl::SaslSession::new(self.security.sasl.clone(), peer, self.metrics.clone());
        let dispatched = connection::dispatch(self, frame, peer, &mut sasl)
            .map_err(|connection::Reject::Close(why)| why)?;
        match dispatched.pending.await {
            Some(frame) if frame.is_empty() => Err("the response could not be encoded".into()),
            other => Ok(other),
        }
    }

    /// Fsyncs every partition and the offset store.
    ///
    /// # Errors
    /// The first I/O error.
    pub fn sync_all(&self) -> Result<(), StorageError> {
        for p in self.topics.all_partitions() {
            p.sync_through(i64::MAX, &self.metrics)?;
        }
        self.groups.flush_offsets()
    }

    /// Runs one request: the synchronous part now (appends happen in request order), the
    /// rest in the returned future.
    pub(crate) fn handle(self: &Arc<Self>, req: RequestKind, ctx: Ctx) -> Respond {
        let b = self.clone();
        macro_rules! later {
            ($f:expr) => {
                Box::pin(async move { Some(ResponseKind::from($f)) })
            };
        }
        match req {
            RequestKind::Produce(r) => self.produce(r, &ctx),
            RequestKind::Fetch(r) => later!(b.fetch(r, &ctx).await),
            RequestKind::ListOffsets(r) => later!(b.list_offsets(r, &ctx)),
            RequestKind::Metadata(r) => later!(b.metadata(r, &ctx)),
            RequestKind::ApiVersions(_) => later!(metadata::api_versions(0)),
            RequestKind::FindCoordinator(r) => later!(b.find_coordinator(r, &ctx)),
            RequestKind::DescribeConfigs(r) => later!(b.describe_configs(r, &ctx)),
            RequestKind::InitProducerId(r) => later!(b.init_producer_id(r)),
            RequestKind::CreateTopics(r) => later!(b.create_topics(r, &ctx)),
            RequestKind::DeleteTopics(r) => later!(b.delete_topics(r, &ctx)),
            RequestKind::CreatePartitions(r) => later!(b.create_partitions(r)),
            RequestKind::JoinGroup(r) => later!(b.join_group(r, &ctx).await),
            RequestKind::SyncGroup(r) => later!(b.sync_group(r, &ctx).await),
            RequestKind::Heartbeat(r) => later!(b.heartbeat(r)),
            RequestKind::LeaveGroup(r) => later!(b.leave_group(r, &ctx)),
            RequestKind::OffsetCommit(r) => later!(b.offset_commit(r, &ctx).await),
            RequestKind::OffsetFetch(r) => later!(b.offset_fetch(r, &ctx)),
            RequestKind::DescribeGroups(r) => later!(b.describe_groups(r)),
            RequestKind::ListGroups(r) => later!(b.list_groups(r)),
            RequestKind::DeleteGroups(r) => later!(b.delete_groups(r)),
            // `connection` only decodes the APIs in `versions::SUPPORTED`.
            _ => Box::pin(async { None }),
        }
    }
}

/// Periodic work: group timers (100 ms), interval flushing, retention.
async fn background(broker: Arc<Broker>) {
    let mut shutdown = broker.shutdown.clone();
    let mut groups = tokio::time::interval(Duration::from_millis(100));
    let flush_every = match broker.config.flush {
        FlushPolicy::Interval(d) => d,
        // Not used for flushing; the tick just finds nothing to do.
        FlushPolicy::Always | FlushPolicy::Os => Duration::from_secs(3600),
    };
    let mut flush = tokio::time::interval(flush_every);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut retention = tokio::time::interval(Duration::from_millis(
        broker.config.retention_check_interval_ms.max(1),
    ));
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = groups.tick() => broker.groups.tick(),
            _ = flush.tick(), if matches!(broker.config.flush, FlushPolicy::Interval(_)) => {
                let b = broker.clone();
                let synced = tokio::task::spawn_blocking(move || {
                    for p in b.topics.all_partitions() {
                        p.sync_if_dirty(&b.metrics)?;
                    }
                    Ok::<_, StorageError>(())
                })
                .await;
                if let Ok(Err(e)) = synced {
                    tracing::error!(error = %e, "interval flush failed; acks wait until it succeeds");
                }
            }
            _ = retention.tick() => {
                let b = broker.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    let now = now_ms();
                    for p in b.topics.all_partitions() {
                        match p.apply_retention(now) {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(topic = p.topic(), partition = p.index(), segments = n, "retention deleted segments"),
                            Err(e) => tracing::error!(topic = p.topic(), partition = p.index(), error = %e, "retention failed"),
                        }
                    }
                })
                .await;
            }
        }
    }
}
