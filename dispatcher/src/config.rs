//! Command-line configuration of `ferry-dispatcher`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::egress::EgressSettings;
use crate::log::ProducerSettings;

/// Which halves of the data plane a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// HTTP in, log out.
    Ingress,
    /// Log in, HTTP out.
    Egress,
    /// Both.
    All,
}

/// Flags of `ferry-dispatcher`.
#[derive(Args, Clone, Debug)]
pub struct DispatcherConfig {
    /// The contract file (JSON; a mounted ConfigMap). Reloaded when it changes.
    #[arg(long, env = "FERRY_CONTRACT")]
    pub contract: PathBuf,
    /// Which halves to run.
    #[arg(long, value_enum, default_value = "all")]
    pub role: Role,
    /// Ingress listener (HTTP/1.1 and h2c).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Admin listener: /metrics, /healthz, /readyz.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,
    /// Largest accepted request body; larger ones get 413.
    #[arg(long, default_value_t = 4 << 20)]
    pub max_body_bytes: usize,
    /// Ingress requests handled at once; beyond this, requests get 503 with Retry-After.
    #[arg(long, default_value_t = 1024)]
    pub max_ingress_in_flight: usize,
    /// How often the contract file is checked for changes.
    #[arg(long, default_value_t = 1000)]
    pub contract_poll_ms: u64,
    /// Events in flight per egress (consumed, not settled).
    #[arg(long, default_value_t = 256)]
    pub max_in_flight: usize,
    /// Consumer-group session timeout.
    #[arg(long, default_value_t = 10_000)]
    pub session_timeout_ms: u32,
    /// How often settled offsets are committed. After a crash, redelivered duplicates are at
    /// most the in-flight events plus those settled within one interval.
    #[arg(long, default_value_t = 200)]
    pub commit_interval_ms: u32,
    /// How long shutdown waits for in-flight deliveries.
    #[arg(long, default_value_t = 30_000)]
    pub drain_timeout_ms: u64,
    /// Producer `linger.ms`: added to every acknowledgement. 1 ms keeps ingress latency low;
    /// 5 ms (librdkafka's default) costs ~4 ms more per ack and saves ~35% of the dispatcher's
    /// CPU under load (librdkafka's broker thread wakes once per linger). See
    /// docs/benchmarks.md.
    #[arg(long, default_value_t = 1)]
    pub linger_ms: u32,
    /// How long a write to the log may take before ingress answers 503.
    #[arg(long, default_value_t = 10_000)]
    pub produce_timeout_ms: u64,
    /// Seed for traffic-split choices (reproducible tests); random when unset.
    #[arg(long)]
    pub traffic_seed: Option<u64>,
    /// Topic of the delivery journal `ferry trace` reads (on each resource's log); an empty
    /// value turns journalling off.
    #[arg(long, default_value = crate::journal::DEFAULT_TOPIC)]
    pub journal_topic: String,
    /// How long journal entries are kept (ms).
    #[arg(long, default_value_t = 24 * 3_600_000)]
    pub journal_retention_ms: i64,
    /// Size bound of the journal topic (bytes).
    #[arg(long, default_value_t = 256 << 20)]
    pub journal_retention_bytes: i64,
}

/// The flags as a command, to build a [`DispatcherConfig`] in code.
#[derive(clap::Parser)]
struct Flags {
    #[command(flatten)]
    config: DispatcherConfig,
}

/// `max.poll.interval.ms` of egress consumers: one that cannot take a new record for this long
/// (every in-flight slot busy) leaves the group and its records are redelivered.
const MAX_POLL_INTERVAL_MS: u32 = 300_000;
/// Memory librdkafka may use for prefetched records, per egress.
const PREFETCH_KBYTES: u32 = 1024;
/// Memory for records waiting to be sent to the log.
const PRODUCER_BUFFER_KBYTES: u32 = 16 * 1024;

impl DispatcherConfig {
    /// A configuration with `ferry-dispatcher`'s defaults for everything but the contract path
    /// and listeners (the defaults live once, in the flag definitions above).
    pub fn new(contract: PathBuf, listen: SocketAddr, admin_listen: SocketAddr) -> Self {
        let args: [&std::ffi::OsStr; 3] = [
            "ferry-dispatcher".as_ref(),
            "--contract".as_ref(),
            contract.as_os_str(),
        ];
        let mut config = <Flags as clap::Parser>::parse_from(args).config;
        config.listen = listen;
        config.admin_listen = admin_listen;
        config
    }

    /// Checks values clap cannot.
    ///
    /// # Errors
    /// A zero where a positive number is needed, named with its flag.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("--max-body-bytes", self.max_body_bytes as u64),
            ("--contract-poll-ms", self.contract_poll_ms),
            ("--max-in-flight", self.max_in_flight as u64),
            ("--max-ingress-in-flight", self.max_ingress_in_flight as u64),
            ("--session-timeout-ms", u64::from(self.session_timeout_ms)),
            ("--commit-interval-ms", u64::from(self.commit_interval_ms)),
        ];
        for (flag, value) in positive {
            if value == 0 {
                return Err(format!("{flag} must be greater than 0"));
            }
        }
        Ok(())
    }

    pub(crate) fn egress_settings(&self) -> EgressSettings {
        EgressSettings {
            max_in_flight: self.max_in_flight,
            session_timeout_ms: self.session_timeout_ms,
            commit_interval_ms: self.commit_interval_ms,
            drain_timeout: Duration::from_millis(self.drain_timeout_ms),
            seed: self.traffic_seed,
            max_poll_interval_ms: MAX_POLL_INTERVAL_MS,
            prefetch_kbytes: PREFETCH_KBYTES,
        }
    }

    /// The journal settings these flags give.
    pub fn journal_settings(&self) -> crate::journal::JournalSettings {
        crate::journal::JournalSettings {
            topic: Some(self.journal_topic.clone()).filter(|t| !t.is_empty()),
            retention_ms: self.journal_retention_ms,
            retention_bytes: self.journal_retention_bytes,
        }
    }

    /// The producer settings these flags give (for tools that write to the log like the dispatcher).
    pub fn producer_settings(&self) -> ProducerSettings {
        ProducerSettings {
            linger_ms: self.linger_ms,
            timeout: Duration::from_millis(self.produce_timeout_ms.max(1)),
            max_buffer_kbytes: PRODUCER_BUFFER_KBYTES,
        }
    }
}
