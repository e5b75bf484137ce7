//! Command-line configuration of `ferry-dispatcher`.
//!
//! Durations are Go durations (`--linger 5ms`, `--drain-timeout 30s`) as in every Ferry binary;
//! the names these flags had when they took milliseconds (`--linger-ms 5`) are still accepted,
//! hidden ([`MillisFlags`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use ferry_runtime::duration;

use crate::contract_feed::SecretRef;
use crate::egress::EgressSettings;
use crate::journal::{JournalSettings, Retention};
use crate::log::ProducerSettings;
use crate::{Error, Result};

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

/// What a dispatcher runs with: the flags of `ferry-dispatcher` (which also takes their old
/// names: [`DispatcherFlags`]).
#[derive(Args, Clone, Debug, PartialEq)]
pub struct DispatcherConfig {
    /// The contract file (JSON, or gzip JSON), or the operator's contract Secret's mounted
    /// directory (its `contract.gz` once the operator wrote it, else the chart's seed
    /// `contract.json`). Reloaded when it changes.
    #[arg(long, env = "FERRY_CONTRACT")]
    pub contract: PathBuf,
    /// Which halves to run.
    #[arg(long, value_enum, default_value = "all")]
    pub role: Role,
    /// Ingress listener (HTTP/1.1 and h2c).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// External HTTP entry (with ingress): serves only the URLs of Knative Services that are
    /// not cluster-local, by `Host`; no events. Off when unset.
    #[arg(long)]
    pub external_listen: Option<SocketAddr>,
    /// Admin listener: /metrics, /healthz, /readyz, and the delivery journal for `ferry trace
    /// --dispatcher` (/journal/events/{id}).
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,
    /// Largest accepted request body; larger ones get 413.
    #[arg(long, default_value_t = 4 << 20)]
    pub max_body_bytes: usize,
    /// Event posts being appended at once (a post takes a slot once its body has arrived);
    /// beyond this, posts get 503 with Retry-After.
    #[arg(long, default_value_t = 1024)]
    pub max_ingress_in_flight: usize,
    /// How long a request's headers may take to arrive (every listener); a slower client is
    /// disconnected.
    #[arg(long, value_parser = duration::parse, default_value = "30s")]
    pub header_read_timeout: Duration,
    /// How long an event post's body may take to arrive; a slower one gets 408.
    #[arg(long, value_parser = duration::parse, default_value = "30s")]
    pub body_read_timeout: Duration,
    /// Most events in one batched-mode post; more get 413.
    #[arg(long, default_value_t = 10_000)]
    pub max_batch_events: usize,
    /// How often the contract file is checked for changes.
    #[arg(long, value_parser = duration::parse, default_value = "1s")]
    pub contract_poll: Duration,
    /// In a cluster: also watch the contract Secret itself, `NAME` (in the service account's
    /// namespace) or `NAMESPACE/NAME`, through the API server, so a new contract applies within
    /// moments instead of on the kubelet's next sync of the mounted file. Needs get, list and
    /// watch on that Secret. The file stays the start and the fallback.
    #[arg(long, env = "FERRY_CONTRACT_SECRET")]
    pub contract_secret: Option<SecretRef>,
    /// This dispatcher's pod IP, as the contract's `activators` list it: with several
    /// dispatchers, each replica's containerConcurrency is split among them. Unset: it takes
    /// every slot (one dispatcher, or outside Kubernetes).
    #[arg(long, env = "FERRY_POD_IP")]
    pub pod_ip: Option<String>,
    /// Events in flight per egress (consumed, not settled).
    #[arg(long, default_value_t = 256)]
    pub max_in_flight: usize,
    /// Consumer-group session timeout.
    #[arg(long, value_parser = duration::parse, default_value = "10s")]
    pub session_timeout: Duration,
    /// How often settled offsets are committed. After a crash, redelivered duplicates are at
    /// most the in-flight events plus those settled within one interval.
    #[arg(long, value_parser = duration::parse, default_value = "200ms")]
    pub commit_interval: Duration,
    /// How long shutdown waits for in-flight deliveries.
    #[arg(long, value_parser = duration::parse, default_value = "30s")]
    pub drain_timeout: Duration,
    /// Producer `linger.ms`: added to every acknowledgement. 1ms keeps ingress latency low;
    /// 5ms (librdkafka's default) costs ~4 ms more per ack and saves ~35% of the dispatcher's
    /// CPU under load (librdkafka's broker thread wakes once per linger). See
    /// docs/benchmarks.md.
    #[arg(long, value_parser = duration::parse, default_value = "1ms")]
    pub linger: Duration,
    /// How long a write to the log may take before ingress answers 503.
    #[arg(long, value_parser = duration::parse, default_value = "10s")]
    pub produce_timeout: Duration,
    /// Seed for traffic-split choices (reproducible tests); random when unset.
    #[arg(long)]
    pub traffic_seed: Option<u64>,
    /// Topic of the delivery journal `ferry trace` reads (on each resource's log); an empty
    /// value turns journalling off.
    #[arg(long, default_value = crate::journal::DEFAULT_TOPIC)]
    pub journal_topic: String,
    /// How long journal entries are kept: a duration, or -1 to keep them until the size bound
    /// removes them.
    #[arg(long, value_parser = retention, default_value = "24h", allow_negative_numbers = true)]
    pub journal_retention: Retention,
    /// Size bound of the journal topic (bytes).
    #[arg(long, default_value_t = 256 << 20)]
    pub journal_retention_bytes: i64,
}

/// The flags that took milliseconds before every Ferry binary took durations
/// (`--linger-ms 5`, now `--linger 5ms`). Hidden, and still accepted so that charts and
/// scripts written for them keep working; of an old and a new name, the later wins.
#[derive(Args, Clone, Debug)]
pub struct MillisFlags {
    /// Old name of `--contract-poll`.
    #[arg(long, hide = true, value_parser = duration::parse_millis, overrides_with = "contract_poll")]
    contract_poll_ms: Option<Duration>,
    /// Old name of `--session-timeout`.
    #[arg(long, hide = true, value_parser = duration::parse_millis, overrides_with = "session_timeout")]
    session_timeout_ms: Option<Duration>,
    /// Old name of `--commit-interval`.
    #[arg(long, hide = true, value_parser = duration::parse_millis, overrides_with = "commit_interval")]
    commit_interval_ms: Option<Duration>,
    /// Old name of `--drain-timeout`.
    #[arg(long, hide = true, value_parser = duration::parse_millis, overrides_with = "drain_timeout")]
    drain_timeout_ms: Option<Duration>,
    /// Old name of `--linger`.
    #[arg(long, hide = true, value_parser = duration::parse_millis, overrides_with = "linger")]
    linger_ms: Option<Duration>,
    /// Old name of `--produce-timeout`.
    #[arg(long, hide = true, value_parser = duration::parse_millis, overrides_with = "produce_timeout")]
    produce_timeout_ms: Option<Duration>,
    /// Old name of `--journal-retention` (`-1`: forever).
    #[arg(long, hide = true, value_parser = retention_millis, overrides_with = "journal_retention", allow_negative_numbers = true)]
    journal_retention_ms: Option<Retention>,
}

/// The command line of `ferry-dispatcher`: the flags of [`DispatcherConfig`] and their old
/// `*-ms` names.
#[derive(Args, Clone, Debug)]
pub struct DispatcherFlags {
    #[command(flatten)]
    config: DispatcherConfig,
    #[command(flatten)]
    millis: MillisFlags,
}

impl DispatcherFlags {
    /// The configuration the flags give, an old `*-ms` flag standing for its new name.
    pub fn into_config(self) -> DispatcherConfig {
        let DispatcherFlags { mut config, millis } = self;
        let c = &mut config;
        c.contract_poll = millis.contract_poll_ms.unwrap_or(c.contract_poll);
        c.session_timeout = millis.session_timeout_ms.unwrap_or(c.session_timeout);
        c.commit_interval = millis.commit_interval_ms.unwrap_or(c.commit_interval);
        c.drain_timeout = millis.drain_timeout_ms.unwrap_or(c.drain_timeout);
        c.linger = millis.linger_ms.unwrap_or(c.linger);
        c.produce_timeout = millis.produce_timeout_ms.unwrap_or(c.produce_timeout);
        c.journal_retention = millis.journal_retention_ms.unwrap_or(c.journal_retention);
        config
    }
}

/// `--journal-retention`: a Go duration, or `-1` (forever, as Kafka's `retention.ms`).
fn retention(text: &str) -> Result<Retention, String> {
    match text.trim() {
        "-1" => Ok(Retention::Forever),
        other => duration::parse(other).map(Retention::For),
    }
}

/// `--journal-retention-ms`: milliseconds, or `-1` (forever).
fn retention_millis(text: &str) -> Result<Retention, String> {
    match text.trim() {
        "-1" => Ok(Retention::Forever),
        other => duration::parse_millis(other).map(Retention::For),
    }
}

/// The flags as a command, to build a [`DispatcherConfig`] in code.
#[derive(clap::Parser)]
struct Flags {
    #[command(flatten)]
    config: DispatcherConfig,
}

/// `max.poll.interval.ms` of egress consumers: one that cannot take a new record for this long
/// (every in-flight slot busy) leaves the group and its records are redelivered.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(300);
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
    /// [`Error::NotPositive`]: a zero where a positive number or duration is needed (a
    /// duration under 1ms counts as zero), named with its flag.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("--max-body-bytes", self.max_body_bytes > 0),
            ("--contract-poll", self.contract_poll.as_millis() > 0),
            ("--max-in-flight", self.max_in_flight > 0),
            ("--max-ingress-in-flight", self.max_ingress_in_flight > 0),
            (
                "--header-read-timeout",
                self.header_read_timeout.as_millis() > 0,
            ),
            (
                "--body-read-timeout",
                self.body_read_timeout.as_millis() > 0,
            ),
            ("--max-batch-events", self.max_batch_events > 0),
            ("--session-timeout", self.session_timeout.as_millis() > 0),
            ("--commit-interval", self.commit_interval.as_millis() > 0),
        ];
        match positive.into_iter().find(|(_, positive)| !positive) {
            Some((flag, _)) => Err(Error::NotPositive { flag }),
            None => Ok(()),
        }
    }

    pub(crate) fn egress_settings(&self) -> EgressSettings {
        EgressSettings {
            max_in_flight: self.max_in_flight,
            session_timeout: self.session_timeout,
            commit_interval: self.commit_interval,
            drain_timeout: self.drain_timeout,
            seed: self.traffic_seed,
            max_poll_interval: MAX_POLL_INTERVAL,
            prefetch_kbytes: PREFETCH_KBYTES,
        }
    }

    /// The journal settings these flags give.
    pub fn journal_settings(&self) -> JournalSettings {
        JournalSettings {
            topic: Some(self.journal_topic.clone()).filter(|t| !t.is_empty()),
            retention: self.journal_retention,
            retention_bytes: self.journal_retention_bytes,
        }
    }

    /// The producer settings these flags give (for tools that write to the log like the dispatcher).
    pub fn producer_settings(&self) -> ProducerSettings {
        ProducerSettings {
            linger: self.linger,
            timeout: self.produce_timeout.max(Duration::from_millis(1)),
            max_buffer_kbytes: PRODUCER_BUFFER_KBYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    /// `ferry-dispatcher`'s command line.
    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        flags: DispatcherFlags,
    }

    fn parse(flags: &[&str]) -> std::result::Result<DispatcherConfig, String> {
        let args = ["ferry-dispatcher", "--contract", "contract.json"];
        Command::try_parse_from(args.iter().chain(flags))
            .map(|c| c.flags.into_config())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn old_millisecond_flags_mean_what_the_new_durations_say() {
        // What the Helm chart passes, against the same values in the new names.
        let chart = parse(&[
            "--contract-poll-ms=2000",
            "--linger-ms=5",
            "--produce-timeout-ms=1500",
            "--drain-timeout-ms=60000",
            "--journal-retention-ms=3600000",
            "--session-timeout-ms=45000",
            "--commit-interval-ms=1000",
        ]);
        let new = parse(&[
            "--contract-poll=2s",
            "--linger=5ms",
            "--produce-timeout=1.5s",
            "--drain-timeout=1m",
            "--journal-retention=1h",
            "--session-timeout=45s",
            "--commit-interval=1s",
        ]);
        assert_eq!(chart, new);
        let new = new.unwrap();
        assert_ne!(Ok(new.clone()), parse(&[]), "none of these is a default");
        assert_eq!(new.linger, Duration::from_millis(5));
        assert_eq!(
            new.journal_retention,
            Retention::For(Duration::from_secs(3600))
        );
    }

    #[test]
    fn the_later_of_an_old_and_a_new_name_wins() {
        let linger = |flags: &[&str]| parse(flags).map(|c| c.linger);
        let ms = Duration::from_millis;
        assert_eq!(linger(&[]), Ok(ms(1)));
        assert_eq!(linger(&["--linger-ms", "5", "--linger", "7ms"]), Ok(ms(7)));
        assert_eq!(linger(&["--linger", "7ms", "--linger-ms", "5"]), Ok(ms(5)));
    }

    #[test]
    fn journal_retention_minus_one_is_forever_in_either_name() {
        for flags in [["--journal-retention-ms=-1"], ["--journal-retention=-1"]] {
            let config = parse(&flags).unwrap();
            assert_eq!(config.journal_retention, Retention::Forever, "{flags:?}");
            assert_eq!(config.journal_settings().retention.retention_ms(), -1);
        }
    }

    #[test]
    fn bad_values_are_named_and_old_names_stay_out_of_help() {
        let err = parse(&["--linger", "5"]).unwrap_err();
        assert!(err.contains("500ms, 10s"), "{err}");
        let err = parse(&["--linger-ms", "5ms"]).unwrap_err();
        assert!(err.contains("milliseconds"), "{err}");
        let zero = parse(&["--contract-poll", "0"]).unwrap().validate();
        assert!(
            matches!(
                zero,
                Err(Error::NotPositive {
                    flag: "--contract-poll"
                })
            ),
            "{zero:?}"
        );
        let help = Command::command().render_long_help().to_string();
        assert!(help.contains("--linger <LINGER>"), "{help}");
        assert!(!help.contains("-ms"), "{help}");
    }

    #[test]
    fn new_gives_the_flag_defaults() {
        let config = DispatcherConfig::new(
            "contract.json".into(),
            ([127, 0, 0, 1], 1).into(),
            ([127, 0, 0, 1], 2).into(),
        );
        assert_eq!(config.contract_poll, Duration::from_secs(1));
        assert_eq!(config.drain_timeout, Duration::from_secs(30));
        assert_eq!(config.producer_settings().timeout, Duration::from_secs(10));
        assert_eq!(
            config.egress_settings().commit_interval,
            Duration::from_millis(200)
        );
        assert!(config.validate().is_ok());
    }
}
