//! The broker's settings, as `ferry-broker` flags: [`BrokerConfig`], and [`BrokerFlags`] for
//! a command line that also takes the flags' old millisecond spellings.

mod durations;
pub mod dynamic;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};
use ferry_runtime::duration;

use durations::MillisFlags;
pub use durations::Retention;

use crate::error::{Error, Result};
use crate::groups::GroupConfig;
use crate::security::{Mechanism, SecurityFiles};
use crate::storage::{FlushPolicy, LogConfig, Recovery};
use crate::topics::{TopicConfig, TopicDefaults};

/// Broker settings.
#[derive(Args, Clone, Debug)]
pub struct BrokerConfig {
    /// Address the Kafka protocol listens on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub listen: SocketAddr,
    /// HOST:PORT clients are told to connect to (default: the bound listen address).
    #[arg(long, value_name = "HOST:PORT")]
    pub advertised_listener: Option<String>,
    /// Address of the admin HTTP server: /metrics, /healthz, /readyz.
    #[arg(long, default_value = "127.0.0.1:9644")]
    pub admin_listen: SocketAddr,
    /// Directory holding topics and committed offsets.
    #[arg(long, default_value = ".ferry/broker")]
    pub data_dir: PathBuf,
    /// When appends reach the disk: `always` (group commit: an fsync starts as soon as a write
    /// waits and none runs, and every ack waits for the fsync covering its write; concurrent
    /// writers share fsyncs), `interval:<ms>` (acks wait for the next periodic fsync: a bounded
    /// fsync rate) or `os` (page cache only).
    #[arg(long, default_value = "always")]
    pub flush: FlushPolicy,
    /// Let recovery cut a partition's log at damage that valid batches follow (corruption in
    /// the middle, not a torn write from a crash), dropping them. Without it such a partition
    /// stops the broker from starting, with the file and position in the error.
    #[arg(long)]
    pub truncate_corrupt_segments: bool,
    /// Partitions of topics created without a count (and auto-created ones).
    #[arg(long, default_value_t = 1)]
    pub default_partitions: i32,
    /// How long the answer to a failed SASL authentication is held back before the connection
    /// closes (Kafka's `connection.failed.authentication.delay.ms`): slows password guessing.
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = duration::parse)]
    pub failed_authentication_delay: Duration,
    /// Most partitions the broker holds across all topics (each keeps three files open);
    /// CreateTopics and CreatePartitions past it fail with INVALID_PARTITIONS.
    #[arg(long, default_value_t = 10_000)]
    pub max_partitions: usize,
    /// Most bytes one Fetch response carries across partitions, whatever the request asks
    /// (Kafka's `fetch.max.bytes`; the first batch may exceed it so consumers progress).
    #[arg(long, default_value_t = 55 << 20)]
    pub fetch_max_bytes: usize,
    /// Create topics on first use by a producer or a metadata request that allows it.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub auto_create_topics: bool,
    /// Delete segments whose newest record is older than this; -1 (or `forever`) keeps them.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "168h",
        value_parser = durations::parse_retention,
        allow_hyphen_values = true
    )]
    pub retention: Retention,
    /// Delete the oldest segments while a partition is larger than this; -1 for no limit.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub retention_bytes: i64,
    /// How often retention runs.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration::parse)]
    pub retention_check_interval: Duration,
    /// Roll to a new segment at this size.
    #[arg(long, default_value_t = 1 << 30)]
    pub segment_bytes: u64,
    /// Roll to a new segment when the active one is this old.
    #[arg(long, value_name = "DURATION", default_value = "168h", value_parser = duration::parse)]
    pub segment_max_age: Duration,
    /// Largest record batch accepted (topic default of `max.message.bytes`).
    #[arg(long, default_value_t = 1 << 20)]
    pub max_message_bytes: usize,
    /// Largest request frame accepted; bigger ones close the connection, as Kafka's
    /// `socket.request.max.bytes` does.
    #[arg(long, default_value_t = 100 << 20)]
    pub max_request_bytes: usize,
    /// Open connections accepted in all; more are closed at accept.
    #[arg(long, default_value_t = 1000)]
    pub max_connections: usize,
    /// Open connections accepted from one client IP address (Kafka's
    /// `max.connections.per.ip`); more are closed at accept.
    #[arg(long, default_value_t = 200)]
    pub max_connections_per_ip: usize,
    /// A connection that sends no request for this long is closed (Kafka's
    /// `connections.max.idle.ms`); one waiting for a response is not idle.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = duration::parse)]
    pub connections_max_idle: Duration,
    /// A request frame must arrive whole within this long of its first byte; a slower one
    /// closes the connection.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration::parse)]
    pub request_read_timeout: Duration,
    /// With --sasl-users, a connection must authenticate within this long of connecting.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration::parse)]
    pub sasl_login_timeout: Duration,
    /// How long the first rebalance of an empty group waits for more members.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = duration::parse)]
    pub group_initial_rebalance_delay: Duration,
    /// Smallest session timeout a consumer may ask for.
    #[arg(long, value_name = "DURATION", default_value = "6s", value_parser = duration::parse)]
    pub group_min_session_timeout: Duration,
    /// Largest session timeout a consumer may ask for.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = duration::parse)]
    pub group_max_session_timeout: Duration,
    /// SASL users file, one `USER:PASSWORD` per line (`#` starts a comment line). When set,
    /// every connection must authenticate before any request but ApiVersions, SaslHandshake
    /// and SaslAuthenticate (clients use SASL_PLAINTEXT, or SASL_SSL with --tls-cert).
    #[arg(long, value_name = "PATH")]
    pub sasl_users: Option<PathBuf>,
    /// SASL mechanisms offered with --sasl-users, comma-separated.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
    )]
    pub sasl_mechanisms: Vec<Mechanism>,
    /// PEM certificate chain (leaf first) for the Kafka listener, which then speaks TLS
    /// (clients use SSL, or SASL_SSL with --sasl-users). Needs --tls-key.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates: clients must present a certificate they issued (mutual TLS).
    /// Needs --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Check every request against the ACLs (Kafka's StandardAuthorizer semantics; ACLs are
    /// managed with CreateAcls/DescribeAcls/DeleteAcls, e.g. kafka-acls.sh, and kept in the
    /// data directory). A client's principal is User:NAME after SASL, else User:ANONYMOUS.
    /// Off: nothing is checked and the ACL APIs answer SECURITY_DISABLED.
    #[arg(long)]
    pub authorizer: bool,
    /// With --authorizer, principals allowed everything, `;`-separated (Kafka's
    /// super.users), e.g. `User:admin;User:ferry`.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ';',
        requires = "authorizer"
    )]
    pub super_users: Vec<String>,
    /// With --authorizer, allow a request on a resource no ACL names (Kafka's
    /// allow.everyone.if.no.acl.found); otherwise it is denied.
    #[arg(long, requires = "authorizer")]
    pub allow_everyone_if_no_acl_found: bool,
}

/// The command line of `ferry-broker`: [`BrokerConfig`]'s flags and, hidden, the old
/// millisecond spellings of its duration flags (`--retention-ms`, `--segment-ms`,
/// `--group-initial-rebalance-delay-ms`, ...), kept for the Helm chart and scripts written
/// for them. Of an old and a new name, the later wins.
#[derive(Args, Clone, Debug)]
pub struct BrokerFlags {
    #[command(flatten)]
    config: BrokerConfig,
    #[command(flatten)]
    millis: MillisFlags,
}

impl BrokerFlags {
    /// The settings the flags give, an old `*-ms` flag standing for its new name.
    pub fn into_config(self) -> BrokerConfig {
        let BrokerFlags { mut config, millis } = self;
        let c = &mut config;
        c.retention = millis.retention_ms.unwrap_or(c.retention);
        c.retention_check_interval =
            (millis.retention_check_interval_ms).unwrap_or(c.retention_check_interval);
        c.segment_max_age = millis.segment_ms.unwrap_or(c.segment_max_age);
        c.group_initial_rebalance_delay =
            (millis.group_initial_rebalance_delay_ms).unwrap_or(c.group_initial_rebalance_delay);
        c.group_min_session_timeout =
            (millis.group_min_session_timeout_ms).unwrap_or(c.group_min_session_timeout);
        c.group_max_session_timeout =
            (millis.group_max_session_timeout_ms).unwrap_or(c.group_max_session_timeout);
        config
    }
}

/// The flags as a command, to build a [`BrokerConfig`] from arguments in code.
#[derive(clap::Parser)]
struct Flags {
    #[command(flatten)]
    flags: BrokerFlags,
}

impl BrokerConfig {
    /// The defaults `ferry-broker` would use, with these flags on top (e.g. `["--flush", "os"]`;
    /// the old `*-ms` names work too).
    ///
    /// # Errors
    /// [`Error::Flags`]: a flag clap rejects, with clap's message.
    pub fn from_flags<I: AsRef<str>>(flags: impl IntoIterator<Item = I>) -> Result<Self> {
        let args = std::iter::once("ferry-broker".to_owned())
            .chain(flags.into_iter().map(|f| f.as_ref().to_owned()));
        <Flags as clap::Parser>::try_parse_from(args)
            .map(|f| f.flags.into_config())
            .map_err(|e| Error::Flags(e.to_string()))
    }

    /// A broker for one machine: data under `data_dir`, Kafka and admin listeners on free
    /// loopback ports, no initial rebalance delay; `extra` flags on top (a flag given there
    /// replaces these defaults, e.g. `["--listen", "127.0.0.1:9092"]`).
    ///
    /// # Errors
    /// [`BrokerConfig::from_flags`]' error as text, ready for an embedding command to show.
    pub fn local(data_dir: &std::path::Path, extra: &[&str]) -> Result<Self> {
        let dir = data_dir.to_string_lossy().into_owned();
        let defaults = [
            ("--listen", "127.0.0.1:0"),
            ("--admin-listen", "127.0.0.1:0"),
            ("--data-dir", dir.as_str()),
            ("--group-initial-rebalance-delay", "0s"),
        ];
        let mut flags: Vec<&str> = defaults
            .iter()
            .filter(|(flag, _)| !extra.contains(flag))
            .flat_map(|(flag, value)| [*flag, *value])
            .collect();
        flags.extend_from_slice(extra);
        Self::from_flags(flags)
    }

    /// Checks values clap cannot.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] naming the flag and what to use.
    pub fn validate(&self) -> Result<()> {
        self.problem()
            .map_or(Ok(()), |p| Err(Error::InvalidSetting(p)))
    }

    /// What [`BrokerConfig::validate`] refuses, if anything.
    fn problem(&self) -> Option<String> {
        let max_partitions = crate::topics::MAX_PARTITIONS;
        if !(1..=max_partitions).contains(&self.default_partitions) {
            return Some(format!(
                "--default-partitions {} is out of range; use 1..={max_partitions}",
                self.default_partitions,
            ));
        }
        let checks = [
            (
                self.max_partitions == 0 || self.fetch_max_bytes == 0,
                "--max-partitions and --fetch-max-bytes must be positive",
            ),
            (
                self.retention_bytes < -1,
                "--retention-bytes takes -1 (no limit) or a value ≥ 0",
            ),
            (
                self.segment_bytes < 1024 || self.segment_max_age < Duration::from_millis(1),
                "--segment-bytes must be ≥ 1024 and --segment-max-age ≥ 1ms",
            ),
            (
                self.max_request_bytes < 1024,
                "--max-request-bytes must be ≥ 1024",
            ),
            (
                self.max_connections == 0 || self.max_connections_per_ip == 0,
                "--max-connections and --max-connections-per-ip must be ≥ 1",
            ),
            (
                [
                    self.connections_max_idle,
                    self.request_read_timeout,
                    self.sasl_login_timeout,
                ]
                .iter()
                .any(|d| d.is_zero()),
                "--connections-max-idle, --request-read-timeout and --sasl-login-timeout must be > 0 (e.g. 10m, 30s, 10s)",
            ),
            (
                self.group_min_session_timeout > self.group_max_session_timeout,
                "--group-min-session-timeout exceeds --group-max-session-timeout",
            ),
            (
                self.tls_cert.is_some() != self.tls_key.is_some(),
                "--tls-cert and --tls-key go together: give both PEM files",
            ),
            (
                self.tls_client_ca.is_some() && self.tls_cert.is_none(),
                "--tls-client-ca needs --tls-cert and --tls-key",
            ),
            (
                self.sasl_users.is_some() && self.sasl_mechanisms.is_empty(),
                "--sasl-mechanisms is empty; use PLAIN, SCRAM-SHA-256 and/or SCRAM-SHA-512",
            ),
            (
                self.super_users.iter().any(|p| {
                    !p.split_once(':')
                        .is_some_and(|(k, n)| !k.is_empty() && !n.is_empty())
                }),
                "--super-users takes principals TYPE:NAME separated by `;` (e.g. User:admin;User:ferry)",
            ),
        ];
        if let Some((_, problem)) = checks.iter().find(|(bad, _)| *bad) {
            return Some((*problem).to_owned());
        }
        let adv = self.advertised_listener.as_deref()?;
        let host_port = adv
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        (!host_port).then(|| {
            format!("--advertised-listener `{adv}` is not HOST:PORT (e.g. broker.ferry:9092)")
        })
    }

    /// The authorizer's settings from the flags.
    pub fn authorizer_config(&self) -> crate::security::acl::AuthorizerConfig {
        crate::security::acl::AuthorizerConfig {
            enabled: self.authorizer,
            super_users: self.super_users.clone(),
            allow_if_no_acl: self.allow_everyone_if_no_acl_found,
        }
    }

    /// Topic defaults from the flags.
    pub fn topic_defaults(&self) -> TopicDefaults {
        TopicDefaults {
            partitions: self.default_partitions,
            max_total_partitions: self.max_partitions,
            config: TopicConfig {
                log: LogConfig {
                    segment_bytes: self.segment_bytes,
                    segment_ms: i64::try_from(self.segment_max_age.as_millis()).unwrap_or(i64::MAX),
                    retention_ms: self.retention.as_millis(),
                    retention_bytes: u64::try_from(self.retention_bytes).ok(),
                },
                max_message_bytes: self.max_message_bytes,
                ..TopicConfig::default()
            },
        }
    }

    /// How recovery treats a damaged segment, from `--truncate-corrupt-segments`.
    pub fn recovery(&self) -> Recovery {
        if self.truncate_corrupt_segments {
            Recovery::Truncate
        } else {
            Recovery::Refuse
        }
    }

    /// Group settings from the flags.
    pub fn group_config(&self) -> GroupConfig {
        GroupConfig {
            min_session_timeout: self.group_min_session_timeout,
            max_session_timeout: self.group_max_session_timeout,
            initial_rebalance_delay: self.group_initial_rebalance_delay,
        }
    }

    /// The files the security flags name.
    pub fn security_files(&self) -> SecurityFiles<'_> {
        SecurityFiles {
            tls_cert: self.tls_cert.as_deref(),
            tls_key: self.tls_key.as_deref(),
            tls_client_ca: self.tls_client_ca.as_deref(),
            sasl_users: self.sasl_users.as_deref(),
            sasl_mechanisms: &self.sasl_mechanisms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_flags_default_and_parse() {
        let dir = std::path::Path::new("/tmp/ferry-config-test");
        let config = BrokerConfig::local(dir, &[]).unwrap();
        assert_eq!(config.sasl_mechanisms, Mechanism::ALL.to_vec());
        assert!(config.sasl_users.is_none() && config.tls_cert.is_none());
        let config = BrokerConfig::local(
            dir,
            &[
                "--sasl-users",
                "users.txt",
                "--sasl-mechanisms",
                "SCRAM-SHA-512,scram-sha-256",
                "--tls-cert",
                "c.pem",
                "--tls-key",
                "k.pem",
                "--tls-client-ca",
                "ca.pem",
            ],
        )
        .unwrap();
        assert_eq!(
            config.sasl_mechanisms,
            [Mechanism::ScramSha512, Mechanism::ScramSha256]
        );
        config.validate().unwrap();
    }

    #[test]
    fn flush_defaults_to_group_commit() {
        let dir = std::path::Path::new("/tmp/ferry-config-test");
        let config = BrokerConfig::local(dir, &[]).unwrap();
        assert_eq!(config.flush, FlushPolicy::Always);
        let config = BrokerConfig::local(dir, &["--flush", "interval:5"]).unwrap();
        assert_eq!(
            config.flush,
            FlushPolicy::Interval(Duration::from_millis(5))
        );
    }

    #[test]
    fn recovery_refuses_corruption_unless_told() {
        let dir = std::path::Path::new("/tmp/ferry-config-test");
        let config = BrokerConfig::local(dir, &[]).unwrap();
        assert_eq!(config.recovery(), Recovery::Refuse);
        let config = BrokerConfig::local(dir, &["--truncate-corrupt-segments"]).unwrap();
        assert_eq!(config.recovery(), Recovery::Truncate);
    }

    #[test]
    fn connection_bounds_default_and_parse() {
        let dir = std::path::Path::new("/tmp/ferry-config-test");
        let c = BrokerConfig::local(dir, &[]).unwrap();
        assert_eq!((c.max_connections, c.max_connections_per_ip), (1000, 200));
        assert_eq!(c.connections_max_idle, Duration::from_secs(600));
        assert_eq!(c.request_read_timeout, Duration::from_secs(30));
        assert_eq!(c.sasl_login_timeout, Duration::from_secs(10));
        let c = BrokerConfig::local(
            dir,
            &[
                "--max-connections",
                "5",
                "--max-connections-per-ip",
                "2",
                "--connections-max-idle",
                "1m30s",
                "--request-read-timeout",
                "500ms",
                "--sasl-login-timeout",
                "2s",
            ],
        )
        .unwrap();
        assert_eq!((c.max_connections, c.max_connections_per_ip), (5, 2));
        assert_eq!(c.connections_max_idle, Duration::from_secs(90));
        assert_eq!(c.request_read_timeout, Duration::from_millis(500));
        assert_eq!(c.sasl_login_timeout, Duration::from_secs(2));
        for flags in [
            &["--max-connections", "0"][..],
            &["--request-read-timeout", "0s"],
        ] {
            let c = BrokerConfig::local(dir, flags).unwrap();
            let error = c.validate().unwrap_err().to_string();
            assert!(error.contains(flags[0]), "{flags:?}: {error}");
        }
    }

    #[test]
    fn tls_flags_must_come_together() {
        let dir = std::path::Path::new("/tmp/ferry-config-test");
        for flags in [
            &["--tls-cert", "c.pem"][..],
            &["--tls-key", "k.pem"],
            &["--tls-client-ca", "ca.pem"],
        ] {
            let error = BrokerConfig::local(dir, flags).unwrap_err().to_string();
            assert!(error.contains("--tls-"), "{flags:?}: {error}");
        }
        let error = BrokerConfig::local(dir, &["--sasl-mechanisms", "GSSAPI"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown SASL mechanism `GSSAPI`"), "{error}");
        // Configs built in code are checked too.
        let mut config = BrokerConfig::local(dir, &[]).unwrap();
        config.tls_cert = Some("c.pem".into());
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("--tls-key"), "{error}");
    }
}
