//! The Kafka protocol server: starting the [`Broker`] (its state, both listeners, the periodic
//! work) and stopping it; one module per family of APIs.

mod acls;
mod admission;
mod authorized;
mod broker;
mod configs;
mod connection;
mod credentials;
mod delete_records;
mod fetch;
mod frames;
mod groups;
mod metadata;
mod offset_delete;
mod produce;
mod route;
mod sasl;
mod spans;
mod topics;
mod transactions;
pub mod versions;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferry_runtime::telemetry::Telemetry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use broker::Broker;
pub(crate) use broker::now_ms;

use crate::config::BrokerConfig;
use crate::error::{Error, Result};
use crate::storage::FlushPolicy;

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
    pub async fn shutdown(mut self, grace: Duration) -> Result<()> {
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

/// Binds `addr`, set by `flag`; returns the listener and the address it got.
async fn bind(addr: SocketAddr, flag: &'static str) -> Result<(TcpListener, SocketAddr)> {
    let error = |source| Error::Bind { addr, flag, source };
    let listener = TcpListener::bind(addr).await.map_err(error)?;
    let bound = listener.local_addr().map_err(error)?;
    Ok((listener, bound))
}

impl Broker {
    /// Opens the data directory (recovering every partition), binds both listeners and
    /// starts serving, without tracing.
    ///
    /// # Errors
    /// As [`Broker::start_traced`].
    pub async fn start(config: BrokerConfig) -> Result<RunningBroker> {
        Self::start_traced(config, Telemetry::off()).await
    }

    /// Like [`Broker::start`], with a span in `telemetry` for each Produce and Fetch request
    /// while it is on. The caller owns `telemetry` and flushes it after shutdown.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`], [`Error::Bind`], the security files' errors, I/O errors
    /// and damaged files in the data directory.
    pub async fn start_traced(
        config: BrokerConfig,
        telemetry: Arc<Telemetry>,
    ) -> Result<RunningBroker> {
        config.validate()?;
        let (listener, kafka_addr) = bind(config.listen, "--listen").await?;
        let (admin, admin_addr) = bind(config.admin_listen, "--admin-listen").await?;
        let (stop, shutdown) = watch::channel(false);
        let data_dir = config.data_dir.clone();
        let broker = tokio::task::spawn_blocking(move || {
            Broker::open(config, kafka_addr, shutdown, telemetry)
        })
        .await
        .map_err(|e| Error::OpenPanicked(e.to_string()))??;
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
        tasks.spawn(crate::http::serve(
            admin,
            broker.clone(),
            broker.shutdown.clone(),
        ));
        tasks.spawn(background(broker.clone()));
        Ok(RunningBroker {
            kafka_addr,
            admin_addr,
            broker,
            stop,
            tasks,
        })
    }
}

/// At most this long between two runs of the group timers.
const GROUP_TICK: Duration = Duration::from_millis(100);

/// Periodic work: group timers (every 100 ms, and at the moment a session, pending member or
/// rebalance times out, so members expire on time as with Kafka's timers), interval
/// flushing, retention.
async fn background(broker: Arc<Broker>) {
    let mut shutdown = broker.shutdown.clone();
    // The groups' deadlines are on the system clock; waits are measured on it and slept on
    // tokio's (which a paused test runtime runs ahead of the system clock).
    let next_group_tick = |b: &Broker| {
        let wait = b.groups.next_deadline().map_or(GROUP_TICK, |d| {
            d.saturating_duration_since(std::time::Instant::now())
                .min(GROUP_TICK)
        });
        tokio::time::Instant::now() + wait
    };
    let groups = tokio::time::sleep_until(next_group_tick(&broker));
    tokio::pin!(groups);
    let flush_every = match broker.config.flush {
        FlushPolicy::Interval(d) => d,
        // Not used for flushing; the tick just finds nothing to do.
        FlushPolicy::Always | FlushPolicy::Os => Duration::from_secs(3600),
    };
    let mut flush = tokio::time::interval(flush_every);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut retention = tokio::time::interval(
        broker
            .config
            .retention_check_interval
            .max(Duration::from_millis(1)),
    );
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            () = &mut groups => {
                broker.groups.tick();
                groups.as_mut().reset(next_group_tick(&broker));
            }
            _ = flush.tick(), if matches!(broker.config.flush, FlushPolicy::Interval(_)) => {
                let b = broker.clone();
                let synced = tokio::task::spawn_blocking(move || {
                    for p in b.topics.all_partitions() {
                        p.sync_if_dirty(&b.metrics)?;
                    }
                    Ok::<_, Error>(())
                })
                .await;
                if let Ok(Err(e)) = synced {
                    tracing::error!(error = %e, "interval flush failed; the partition is fenced and its waiting acks get an error");
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
                        match p.compact(now) {
                            Ok(None) => {}
                            Ok(Some(done)) => {
                                b.metrics.compacted(p.topic(), &done);
                                tracing::info!(
                                    topic = p.topic(),
                                    partition = p.index(),
                                    segments_before = done.segments_before,
                                    segments_after = done.segments_after,
                                    bytes_before = done.bytes_before,
                                    bytes_after = done.bytes_after,
                                    records_removed = done.records_removed,
                                    "compacted"
                                );
                            }
                            Err(e) => {
                                b.metrics.compaction_failed(p.topic());
                                tracing::error!(topic = p.topic(), partition = p.index(), error = %e, "compaction failed; this partition is not compacted again until the broker restarts");
                            }
                        }
                    }
                })
                .await;
            }
        }
    }
}
