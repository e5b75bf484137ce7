//! The broker's settings, as `ferry-broker` flags (the `ferry` CLI embeds the same struct).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};

use crate::groups::GroupConfig;
use crate::security::Mechanism;
use crate::storage::{FlushPolicy, LogConfig};
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
    /// When appends reach the disk: `always` (fsync before each ack), `interval:<ms>` (group
    /// commit: acks wait for the next periodic fsync) or `os` (page cache only).
    #[arg(long, default_value = "interval:5")]
    pub flush: FlushPolicy,
    /// Partitions of topics created without a count (and auto-created ones).
    #[arg(long, default_value_t = 1)]
    pub default_partitions: i32,
    /// Create topics on first use by a producer or a metadata request that allows it.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub auto_create_topics: bool,
    /// Delete segments older than this (ms); -1 keeps them forever.
    #[arg(long, default_value_t = 7 * 24 * 3_600_000, allow_hyphen_values = true)]
    pub retention_ms: i64,
    /// Delete the oldest segments while a partition is larger than this; -1 for no limit.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub retention_bytes: i64,
    /// How often retention runs (ms).
    #[arg(long, default_value_t = 300_000)]
    pub retention_check_interval_ms: u64,
    /// Roll to a new segment at this size.
    #[arg(long, default_value_t = 1 << 30)]
    pub segment_bytes: u64,
    /// Roll to a new segment when the active one is this old (ms).
    #[arg(long, default_value_t = 7 * 24 * 3_600_000)]
    pub segment_ms: i64,
    /// Largest record batch accepted (topic default of `max.message.bytes`).
    #[arg(long, default_value_t = 1 << 20)]
    pub max_message_bytes: usize,
    /// Largest request frame accepted; bigger ones close the connection, as Kafka's
    /// `socket.request.max.bytes` does.
    #[arg(long, default_value_t = 100 << 20)]
    pub max_request_bytes: usize,
    /// How long the first rebalance of an empty group waits for more members (ms).
    #[arg(long, default_value_t = 3_000)]
    pub group_initial_rebalance_delay_ms: u64,
    /// Smallest session timeout a consumer may ask for (ms).
    #[arg(long, default_value_t = 6_000)]
    pub group_min_session_timeout_ms: u64,
    /// Largest session timeout a consumer may ask for (ms).
    #[arg(long, default_value_t = 1_800_000)]
    pub group_max_session_timeout_ms: u64,
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
}

/// The flags as a command, to build a [`BrokerConfig`] from arguments in code.
#[derive(clap::Parser)]
struct Flags {
    #[command(flatten)]
    config: BrokerConfig,
}

impl BrokerConfig {
    /// The defaults `ferry-broker` would use, with these flags on top (e.g. `["--flush", "os"]`).
    ///
    /// # Errors
    /// A flag clap rejects, with clap's message.
    pub fn from_flags<I: AsRef<str>>(flags: impl IntoIterator<Item = I>) -> Result<Self, String> {
        let args = std::iter::once("ferry-broker".to_owned())
            .chain(flags.into_iter().map(|f| f.as_ref().to_owned()));
        <Flags as clap::Parser>::try_parse_from(args)
            .map(|f| f.config)
            .map_err(|e| e.to_string())
    }

    /// A broker for one machine: data under `data_dir`, Kafka and admin listeners on free
    /// loopback ports, no initial rebalance delay; `extra` flags on top (a flag given there
    /// replaces these defaults, e.g. `["--listen", "127.0.0.1:9092"]`).
    pub fn local(data_dir: &std::path::Path, extra: &[&str]) -> Result<Self, String> {
        let dir = data_dir.to_string_lossy().into_owned();
        let defaults = [
            ("--listen", "127.0.0.1:0"),
            ("--admin-listen", "127.0.0.1:0"),
            ("--data-dir", dir.as_str()),
            ("--group-initial-rebalance-delay-ms", "0"),
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
    /// A message naming the flag and what to use.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=crate::topics::MAX_PARTITIONS).contains(&self.default_partitions) {
            return Err(format!(
                "--default-partitions {} is out of range; use 1..={}",
                self.default_partitions,
                crate::topics::MAX_PARTITIONS
            ));
        }
        if self.retention_ms < -1 || self.retention_bytes < -1 {
            return Err(
                "--retention-ms and --retention-bytes take -1 (no limit) or a value ≥ 0".into(),
            );
        }
        if self.segment_bytes < 1024 || self.segment_ms < 1 {
            return Err("--segment-bytes must be ≥ 1024 and --segment-ms ≥ 1".into());
        }
        if self.max_request_bytes < 1024 {
            return Err("--max-request-bytes must be ≥ 1024".into());
        }
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return Err(
                "--group-min-session-timeout-ms exceeds --group-max-session-timeout-ms".into(),
            );
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("--tls-cert and --tls-key go together: give both PEM files".into());
        }
        if self.tls_client_ca.is_some() && self.tls_cert.is_none() {
            return Err("--tls-client-ca needs --tls-cert and --tls-key".into());
        }
        if self.sasl_users.is_some() && self.sasl_mechanisms.is_empty() {
            return Err(
                "--sasl-mechanisms is empty; use PLAIN, SCRAM-SHA-256 and/or SCRAM-SHA-512".into(),
            );
        }
        if let Some(adv) = &self.advertised_listener {
            let ok = adv
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                return Err(format!(
                    "--advertised-listener `{adv}` is not HOST:PORT (e.g. broker.ferry:9092)"
                ));
            }
        }
        Ok(())
    }

    /// Topic defaults from the flags.
    pub fn topic_defaults(&self) -> TopicDefaults {
        TopicDefaults {
            partitions: self.default_partitions,
            config: TopicConfig {
                log: LogConfig {
                    segment_bytes: self.segment_bytes,
                    segment_ms: self.segment_ms,
                    retention_ms: (self.retention_ms >= 0).then_some(self.retention_ms),
                    retention_bytes: u64::try_from(self.retention_bytes).ok(),
                },
                max_message_bytes: self.max_message_bytes,
            },
        }
    }

    /// Group settings from the flags.
    pub fn group_config(&self) -> GroupConfig {
        GroupConfig {
            min_session_timeout: Duration::from_millis(self.group_min_session_timeout_ms),
            max_session_timeout: Duration::from_millis(self.group_max_session_timeout_ms),
            initial_rebalance_delay: Duration::from_millis(self.group_initial_rebalance_delay_ms),
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
    fn tls_flags_must_come_together() {
        let dir = std::path::Path::new("/tmp/ferry-config-test");
        for flags in [
            &["--tls-cert", "c.pem"][..],
            &["--tls-key", "k.pem"],
            &["--tls-client-ca", "ca.pem"],
        ] {
            let error = BrokerConfig::local(dir, flags).unwrap_err();
            assert!(error.contains("--tls-"), "{flags:?}: {error}");
        }
        let error = BrokerConfig::local(dir, &["--sasl-mechanisms", "GSSAPI"]).unwrap_err();
        assert!(error.contains("unknown SASL mechanism `GSSAPI`"), "{error}");
        // Configs built in code are checked too.
        let mut config = BrokerConfig::local(dir, &[]).unwrap();
        config.tls_cert = Some("c.pem".into());
        assert!(config.validate().unwrap_err().contains("--tls-key"));
    }
}
