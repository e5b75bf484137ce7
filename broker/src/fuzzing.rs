//! Entry points of the coverage-guided fuzz targets in `fuzz/` (cargo-fuzz), kept in the crate
//! so that `tests/fuzz_corpus.rs` replays their corpora and every input that once failed
//! through the same code on a stable `cargo test`. Not part of the broker's API.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::error::io_at;
use crate::storage::{self, BATCH_HEADER_LEN, BatchHeader, Compression};
use crate::topics::{CompressionType, TopicConfig};
use crate::{Broker, BrokerConfig, Result, RunningBroker};

/// The user the SASL broker knows.
pub const SASL_USER: &str = "alice";
/// Her password.
pub const SASL_PASSWORD: &str = "alice-s3cret";

/// How long (in the runtime's time) one input's connection may last; a client that sent a long
/// poll or joined a group with a long rebalance timeout is cut off here, as a quiet client
/// would be.
const CONNECTION_LIMIT: Duration = Duration::from_secs(10);

/// Inputs served before both brokers are replaced by fresh ones, so that the groups, topics
/// and logs the inputs created do not pile up (and slow every later input down).
const RESTART_EVERY: usize = 10_000;

/// Two running brokers in a scratch directory: one open, one with `--sasl-users` (PLAIN,
/// SCRAM-SHA-256 and SCRAM-SHA-512), replaced by fresh ones every [`RESTART_EVERY`] inputs.
pub struct Connections {
    brokers: Brokers,
    served: usize,
}

struct Brokers {
    open: RunningBroker,
    sasl: RunningBroker,
    dir: PathBuf,
}

impl Connections {
    /// Starts both brokers. Call inside a Tokio runtime; the fuzz targets use a current-thread
    /// runtime with paused time, so long polls, rebalances and timeouts pass at once.
    ///
    /// # Errors
    /// [`Broker::start`]'s, and I/O errors creating the scratch directory.
    pub async fn start() -> Result<Self> {
        Ok(Connections {
            brokers: Brokers::start().await?,
            served: 0,
        })
    }

    /// Serves one input: its first byte picks the broker (odd: the SASL one), the rest is what
    /// one client sent on a connection.
    ///
    /// # Errors
    /// Only when fresh brokers do not start.
    pub async fn serve(&mut self, data: &[u8]) -> Result<()> {
        self.served += 1;
        if self.served.is_multiple_of(RESTART_EVERY) {
            self.replace().await?;
        }
        let Some((&pick, stream)) = data.split_first() else {
            return Ok(());
        };
        let broker = if pick % 2 == 1 {
            self.brokers.sasl.broker()
        } else {
            self.brokers.open.broker()
        };
        let served = broker.serve_bytes(stream.to_vec());
        let _ = tokio::time::timeout(CONNECTION_LIMIT, served).await;
        Ok(())
    }

    /// The broker without SASL.
    pub fn open(&self) -> &Arc<Broker> {
        self.brokers.open.broker()
    }

    /// Both brokers, as weak references: gone once the brokers are replaced and freed.
    pub fn weak(&self) -> [std::sync::Weak<Broker>; 2] {
        [
            Arc::downgrade(self.brokers.open.broker()),
            Arc::downgrade(self.brokers.sasl.broker()),
        ]
    }

    /// Replaces both brokers by fresh ones in a new scratch directory.
    ///
    /// # Errors
    /// When the fresh brokers do not start.
    pub async fn replace(&mut self) -> Result<()> {
        self.brokers = Brokers::start().await?;
        Ok(())
    }
}

impl Brokers {
    async fn start() -> Result<Self> {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ferry-fuzz-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        let users = dir.join("users.txt");
        std::fs::write(&users, format!("{SASL_USER}:{SASL_PASSWORD}\n")).map_err(io_at(&users))?;
        let users = users.to_string_lossy().into_owned();
        let common = [
            "--flush",
            "os",
            "--failed-authentication-delay",
            "0ms",
            // Each partition is three files: a few keep every input quick.
            "--max-partitions",
            "64",
            // The log stays small however many batches the fuzzer appends.
            "--retention-bytes",
            "262144",
            "--segment-bytes",
            "65536",
            "--retention-check-interval",
            "10s",
        ];
        let start = |name: &str, extra: &[&str]| {
            let mut flags = common.to_vec();
            flags.extend_from_slice(extra);
            BrokerConfig::local(&dir.join(name), &flags).map(Broker::start)
        };
        let open = start("open", &[])?.await?;
        let sasl = start("sasl", &["--sasl-users", &users])?.await?;
        Ok(Brokers { open, sasl, dir })
    }
}

impl Drop for Brokers {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Feeds one input to produce's checks and to the stored form of a topic: the first byte picks
/// the topic's `compression.type`, the rest is a producer's record batches, whose CRCs are set
/// first (a fuzzer cannot find them). What passes [`storage::check_produced`] must be stored
/// as batches that pass it too, with the same counts.
///
/// # Panics
/// When the stored form breaks that rule: a bug.
pub fn produced_batches(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mut records = rest.to_vec();
    set_crcs(&mut records);
    if storage::check_produced(&records).is_err() {
        return;
    }
    let compression = match pick % 6 {
        0 => CompressionType::Producer,
        1 => CompressionType::Codec(Compression::None),
        2 => CompressionType::Codec(Compression::Gzip),
        3 => CompressionType::Codec(Compression::Snappy),
        4 => CompressionType::Codec(Compression::Lz4),
        _ => CompressionType::Codec(Compression::Zstd),
    };
    let config = TopicConfig {
        compression,
        ..TopicConfig::default()
    };
    let produced = storage::count(&records);
    if let Ok(found) = crate::topics::partition::stored_form(&config, &mut records) {
        if let Err(e) = storage::check_produced(&records) {
            panic!("the stored form of valid batches is invalid: {e}");
        }
        assert_eq!(storage::count(&records), produced, "records were lost");
        assert_eq!(found.len() as u64, produced.batches, "batches were lost");
    }
}

/// Sets the CRC of every whole batch at the start of `data`.
fn set_crcs(data: &mut [u8]) {
    let mut at = 0;
    while let Ok(header) = BatchHeader::parse(&data[at..]) {
        let len = header.total_len();
        if len < BATCH_HEADER_LEN || len > data.len() - at {
            return;
        }
        let batch = &mut data[at..at + len];
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        at += len;
    }
}
