//! Kafka's dynamic configs: broker configs altered at run time (for broker `0` and as the
//! cluster-wide default, resource name `""`) and group configs (KIP-848), kept in
//! `<data-dir>/configs.json` and applied at once.
//!
//! Broker configs come in three kinds here:
//! - [`ACTED`]: the `log.*` defaults of every topic (retention, segments, message size,
//!   compression, cleanup policy and the compaction settings). A change reaches every topic that does not override the setting, as in
//!   Kafka; precedence is Kafka's: broker `0`, then the cluster default, then the flags.
//! - [`INERT`]: Kafka's dynamic broker configs that change nothing on this broker (thread
//!   pools, the log cleaner's tuning, Kerberos, `log.flush.*`: one process, no GSSAPI,
//!   and `--flush` decides when the log is synced). Accepted, checked as Kafka checks their
//!   type, kept and described, as tools and client test suites set them.
//! - [`FLAGS`]: settings of Ferry's own flags (some dynamic in Kafka); refused, naming the flag.
//!
//! Group configs ([`GROUP`]) are Kafka 4.0's: they tune KIP-848 consumer groups and share
//! groups, which this broker does not have, so, as for a classic group in Kafka, they are kept
//! and described but change nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, io_at};
use crate::storage::{Disk, RealDisk};
use crate::topics::config::{Kind, TopicConfig};

/// Broker configs that set topic defaults: `(broker name, topic name)`.
pub const ACTED: &[(&str, &str)] = &[
    ("compression.type", "compression.type"),
    ("log.cleaner.delete.retention.ms", "delete.retention.ms"),
    (
        "log.cleaner.min.cleanable.ratio",
        "min.cleanable.dirty.ratio",
    ),
    ("log.cleaner.min.compaction.lag.ms", "min.compaction.lag.ms"),
    ("log.cleanup.policy", "cleanup.policy"),
    ("log.retention.bytes", "retention.bytes"),
    ("log.retention.ms", "retention.ms"),
    ("log.roll.ms", "segment.ms"),
    ("log.segment.bytes", "segment.bytes"),
    ("message.max.bytes", "max.message.bytes"),
];

/// Dynamic broker configs that change nothing here, with Kafka's default and type.
pub const INERT: &[(&str, &str, Kind)] = &[
    ("background.threads", "10", Kind::Long),
    ("log.cleaner.backoff.ms", "15000", Kind::Long),
    ("log.cleaner.dedupe.buffer.size", "134217728", Kind::Long),
    ("log.cleaner.io.buffer.load.factor", "0.9", Kind::Ratio),
    ("log.cleaner.io.buffer.size", "524288", Kind::Long),
    (
        "log.cleaner.io.max.bytes.per.second",
        "1.7976931348623157E308",
        Kind::Text,
    ),
    (
        "log.cleaner.max.compaction.lag.ms",
        "9223372036854775807",
        Kind::Long,
    ),
    ("log.cleaner.threads", "1", Kind::Long),
    (
        "log.flush.interval.messages",
        "9223372036854775807",
        Kind::Long,
    ),
    ("log.flush.interval.ms", "9223372036854775807", Kind::Long),
    ("log.index.interval.bytes", "4096", Kind::Long),
    ("log.index.size.max.bytes", "10485760", Kind::Long),
    ("log.preallocate", "false", Kind::Bool),
    ("log.segment.delete.delay.ms", "60000", Kind::Long),
    ("num.io.threads", "8", Kind::Long),
    ("num.network.threads", "3", Kind::Long),
    ("num.recovery.threads.per.data.dir", "2", Kind::Long),
    ("num.replica.fetchers", "1", Kind::Long),
    ("sasl.kerberos.kinit.cmd", "/usr/bin/kinit", Kind::Text),
    ("sasl.kerberos.min.time.before.relogin", "60000", Kind::Long),
    (
        "sasl.kerberos.principal.to.local.rules",
        "DEFAULT",
        Kind::Text,
    ),
    ("sasl.kerberos.service.name", "", Kind::Text),
    ("sasl.kerberos.ticket.renew.jitter", "0.05", Kind::Ratio),
    (
        "sasl.kerberos.ticket.renew.window.factor",
        "0.8",
        Kind::Ratio,
    ),
    ("unclean.leader.election.enable", "false", Kind::Bool),
];

/// Broker configs that Ferry's flags set (dynamic or read-only in Kafka): `(config, the flag)`.
pub const FLAGS: &[(&str, &str)] = &[
    ("auto.create.topics.enable", "--auto-create-topics"),
    ("num.partitions", "--default-partitions"),
    ("socket.request.max.bytes", "--max-request-bytes"),
    ("max.connections", "--max-connections"),
    ("max.connections.per.ip", "--max-connections-per-ip"),
    ("sasl.enabled.mechanisms", "--sasl-mechanisms"),
    ("ssl.keystore.location", "--tls-cert and --tls-key"),
    ("ssl.truststore.location", "--tls-client-ca"),
    ("ssl.client.auth", "--tls-client-ca"),
];

/// Kafka 4.0's group configs: `(name, default, check)`.
pub const GROUP: &[(&str, &str, GroupCheck)] = &[
    (
        "consumer.heartbeat.interval.ms",
        "5000",
        GroupCheck::Range(5_000, 15_000, "milliseconds from 5000 to 15000"),
    ),
    (
        "consumer.session.timeout.ms",
        "45000",
        GroupCheck::Range(45_000, 60_000, "milliseconds from 45000 to 60000"),
    ),
    ("share.auto.offset.reset", "latest", GroupCheck::OffsetReset),
    (
        "share.heartbeat.interval.ms",
        "5000",
        GroupCheck::Range(5_000, 15_000, "milliseconds from 5000 to 15000"),
    ),
    (
        "share.record.lock.duration.ms",
        "30000",
        GroupCheck::Range(15_000, 60_000, "milliseconds from 15000 to 60000"),
    ),
    (
        "share.session.timeout.ms",
        "45000",
        GroupCheck::Range(45_000, 60_000, "milliseconds from 45000 to 60000"),
    ),
];

/// What a group config's value must be (Kafka's bounds are its broker defaults,
/// `group.consumer.min.session.timeout.ms` and the like).
#[derive(Clone, Copy, Debug)]
pub enum GroupCheck {
    /// A whole number from `.0` to `.1`, described by `.2`.
    Range(i64, i64, &'static str),
    /// `latest`, `earliest` or `by_duration:<ISO-8601 duration>`.
    OffsetReset,
}

impl GroupCheck {
    fn check(self, value: &str) -> std::result::Result<(), &'static str> {
        match self {
            GroupCheck::Range(min, max, expected) => value
                .parse::<i64>()
                .ok()
                .filter(|v| (min..=max).contains(v))
                .map(|_| ())
                .ok_or(expected),
            GroupCheck::OffsetReset => {
                let ok = matches!(value, "latest" | "earliest")
                    || value
                        .strip_prefix("by_duration:")
                        .is_some_and(|d| d.starts_with('P') && d.len() > 1);
                if ok {
                    Ok(())
                } else {
                    Err("latest, earliest or by_duration:<ISO-8601 duration, e.g. PT1H>")
                }
            }
        }
    }
}

/// Which broker resource a request names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokerScope {
    /// Broker `0`, the only one.
    Node,
    /// The cluster-wide default (resource name `""`).
    Cluster,
}

/// Where a described value comes from, as Kafka's `ConfigSource`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Set for broker `0` (`DYNAMIC_BROKER_CONFIG`).
    Node = 2,
    /// Set as the cluster default (`DYNAMIC_DEFAULT_BROKER_CONFIG`).
    Cluster = 3,
    /// A flag (`STATIC_BROKER_CONFIG`).
    Flag = 4,
    /// Kafka's default (`DEFAULT_CONFIG`).
    Default = 5,
    /// Set on the group (`GROUP_CONFIG`).
    Group = 8,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Stored {
    #[serde(default)]
    broker: BTreeMap<String, String>,
    #[serde(default)]
    cluster: BTreeMap<String, String>,
    #[serde(default)]
    groups: BTreeMap<String, BTreeMap<String, String>>,
}

/// The dynamic configs of the broker and its groups, as persisted.
#[derive(Debug)]
pub struct DynamicConfigs {
    path: PathBuf,
    /// The topic defaults the flags give.
    flags: TopicConfig,
    stored: Mutex<Stored>,
}

fn unknown(resource: &'static str, name: &str, supported: String) -> Error {
    Error::UnknownConfig {
        resource,
        name: name.to_owned(),
        supported,
    }
}

fn invalid(resource: &'static str, name: &str, value: &str, expected: &'static str) -> Error {
    Error::InvalidConfig {
        resource,
        name: name.to_owned(),
        value: value.to_owned(),
        expected,
    }
}

/// Checks broker configs `set` (name to value); the topic overrides the acted ones mean.
fn check_broker(set: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    let mut topic = BTreeMap::new();
    for (name, value) in set {
        if let Some((_, as_topic)) = ACTED.iter().find(|(n, _)| n == name) {
            // Validated as the topic config it sets, but named as the broker's.
            let one = BTreeMap::from([((*as_topic).to_owned(), value.clone())]);
            TopicConfig::with_overrides(TopicConfig::default(), &one).map_err(|e| match e {
                Error::InvalidConfig { expected, .. } => invalid("broker", name, value, expected),
                other => other,
            })?;
            topic.insert((*as_topic).to_owned(), value.clone());
        } else if let Some((_, _, kind)) = INERT.iter().find(|(n, _, _)| n == name) {
            kind.check(value)
                .map_err(|expected| invalid("broker", name, value, expected))?;
        } else if let Some((_, flag)) = FLAGS.iter().find(|(n, _)| n == name) {
            return Err(Error::ConfigRefused(format!(
                "broker config `{name}` is set by ferry-broker's {flag} flag, not at run time"
            )));
        } else {
            let names: Vec<&str> = ACTED
                .iter()
                .map(|(n, _)| *n)
                .chain(INERT.iter().map(|(n, _, _)| *n))
                .collect();
            return Err(unknown(
                "broker",
                name,
                format!("these dynamic broker configs: {}", names.join(", ")),
            ));
        }
    }
    Ok(topic)
}

/// Checks group configs `set`.
fn check_group(set: &BTreeMap<String, String>) -> Result<()> {
    for (name, value) in set {
        let Some((_, _, check)) = GROUP.iter().find(|(n, _, _)| n == name) else {
            let names: Vec<&str> = GROUP.iter().map(|(n, _, _)| *n).collect();
            return Err(unknown("group", name, names.join(", ")));
        };
        check
            .check(value)
            .map_err(|expected| invalid("group", name, value, expected))?;
    }
    let ms = |key: &str| set.get(key).and_then(|v| v.parse::<i64>().ok());
    for prefix in ["consumer", "share"] {
        let heartbeat = ms(&format!("{prefix}.heartbeat.interval.ms")).unwrap_or(5_000);
        let session = ms(&format!("{prefix}.session.timeout.ms")).unwrap_or(45_000);
        if heartbeat >= session {
            return Err(Error::ConfigRefused(format!(
                "group config {prefix}.heartbeat.interval.ms ({heartbeat}) must be less than {prefix}.session.timeout.ms ({session})"
            )));
        }
    }
    Ok(())
}

impl DynamicConfigs {
    /// Loads `data_dir/configs.json` (none yet: nothing set); `flags` are the topic defaults
    /// the flags give.
    ///
    /// # Errors
    /// An unreadable file, or one whose configs no longer pass the checks.
    pub fn open(data_dir: &Path, flags: TopicConfig) -> Result<Self> {
        let path = data_dir.join("configs.json");
        let damaged = |problem: String| Error::Damaged {
            path: path.clone(),
            problem,
        };
        let stored = match RealDisk.read(&path) {
            Ok(bytes) => {
                let s: Stored =
                    serde_json::from_slice(&bytes).map_err(|e| damaged(e.to_string()))?;
                check_broker(&s.broker).map_err(|e| damaged(e.to_string()))?;
                check_broker(&s.cluster).map_err(|e| damaged(e.to_string()))?;
                for set in s.groups.values() {
                    check_group(set).map_err(|e| damaged(e.to_string()))?;
                }
                s
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Stored::default(),
            Err(e) => return Err(io_at(&path)(e)),
        };
        Ok(DynamicConfigs {
            path,
            flags,
            stored: Mutex::new(stored),
        })
    }

    fn stored(&self) -> std::sync::MutexGuard<'_, Stored> {
        self.stored.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn topic_defaults_of(&self, s: &Stored) -> Result<TopicConfig> {
        // The node's settings win over the cluster's, which win over the flags.
        let mut topic = check_broker(&s.cluster)?;
        topic.extend(check_broker(&s.broker)?);
        TopicConfig::with_overrides(self.flags, &topic)
    }

    /// Every topic's defaults: the flags' with the dynamic broker configs applied.
    ///
    /// # Errors
    /// None in practice: stored configs were checked when set and when loaded.
    pub fn topic_defaults(&self) -> Result<TopicConfig> {
        self.topic_defaults_of(&self.stored())
    }

    /// The configs set for `scope`.
    pub fn broker(&self, scope: BrokerScope) -> BTreeMap<String, String> {
        let s = self.stored();
        match scope {
            BrokerScope::Node => s.broker.clone(),
            BrokerScope::Cluster => s.cluster.clone(),
        }
    }

    /// The configs set on `group`.
    pub fn group(&self, group: &str) -> BTreeMap<String, String> {
        self.stored().groups.get(group).cloned().unwrap_or_default()
    }

    /// Replaces the configs of `scope` with `set`, persisted, and returns the topic defaults
    /// that follow; with `validate_only` only checks. `apply` gets the new defaults while the
    /// store is held, so concurrent changes reach the topics in order.
    ///
    /// # Errors
    /// A bad config (nothing changes), I/O errors writing `configs.json` or applying.
    pub fn set_broker(
        &self,
        scope: BrokerScope,
        set: BTreeMap<String, String>,
        validate_only: bool,
        apply: impl FnOnce(TopicConfig) -> Result<()>,
    ) -> Result<()> {
        check_broker(&set)?;
        let mut s = self.stored();
        let mut next = s.clone();
        match scope {
            BrokerScope::Node => next.broker = set,
            BrokerScope::Cluster => next.cluster = set,
        }
        let defaults = self.topic_defaults_of(&next)?;
        if validate_only {
            return Ok(());
        }
        self.persist(&next)?;
        *s = next;
        apply(defaults)
    }

    /// Replaces the configs of `group` with `set`, persisted; with `validate_only` only checks.
    ///
    /// # Errors
    /// An empty group id, a bad config (nothing changes), I/O errors.
    pub fn set_group(
        &self,
        group: &str,
        set: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<()> {
        if group.is_empty() {
            return Err(Error::ConfigRefused(
                "a group config needs a group id; the empty name is no group".into(),
            ));
        }
        check_group(&set)?;
        if validate_only {
            return Ok(());
        }
        let mut s = self.stored();
        let mut next = s.clone();
        if set.is_empty() {
            next.groups.remove(group);
        } else {
            next.groups.insert(group.to_owned(), set);
        }
        self.persist(&next)?;
        *s = next;
        Ok(())
    }

    fn persist(&self, s: &Stored) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(s).unwrap_or_default();
        RealDisk
            .replace(&self.path, &bytes)
            .map_err(io_at(&self.path))
    }

    /// Broker `scope`'s dynamic configs as described: `(name, value, source)` for every
    /// [`ACTED`] and [`INERT`] config (for the cluster default, only those set there, as Kafka
    /// describes it).
    pub fn describe_broker(&self, scope: BrokerScope) -> Vec<(&'static str, String, Source)> {
        let s = self.stored();
        let flags = self.flags.entries();
        let flag_value = |topic_name: &str| {
            flags
                .iter()
                .find(|(n, _)| *n == topic_name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let names = ACTED
            .iter()
            .map(|(n, t)| (*n, flag_value(t), Source::Flag))
            .chain(
                INERT
                    .iter()
                    .map(|(n, d, _)| (*n, (*d).to_owned(), Source::Default)),
            );
        names
            .filter_map(|(name, fallback, fallback_source)| match scope {
                BrokerScope::Cluster => s
                    .cluster
                    .get(name)
                    .map(|v| (name, v.clone(), Source::Cluster)),
                BrokerScope::Node => Some(
                    s.broker
                        .get(name)
                        .map(|v| (name, v.clone(), Source::Node))
                        .or_else(|| {
                            s.cluster
                                .get(name)
                                .map(|v| (name, v.clone(), Source::Cluster))
                        })
                        .unwrap_or((name, fallback, fallback_source)),
                ),
            })
            .collect()
    }

    /// `group`'s configs as described: every [`GROUP`] config, set or default.
    pub fn describe_group(&self, group: &str) -> Vec<(&'static str, String, Source)> {
        let set = self.group(group);
        GROUP
            .iter()
            .map(|(name, default, _)| match set.get(*name) {
                Some(v) => (*name, v.clone(), Source::Group),
                None => (*name, (*default).to_owned(), Source::Default),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::config::tests::map;

    #[test]
    fn broker_configs_are_checked_and_named() {
        assert!(check_broker(&map(&[("sasl.kerberos.min.time.before.relogin", "58000")])).is_ok());
        let topic = check_broker(&map(&[("log.retention.ms", "5000")])).expect("valid");
        assert_eq!(topic.get("retention.ms").map(String::as_str), Some("5000"));
        for (pairs, want) in [
            (
                vec![("log.retention.ms", "soon")],
                "broker config `log.retention.ms` = `soon` is invalid",
            ),
            (
                vec![("log.cleanup.policy", "shred")],
                "broker config `log.cleanup.policy` = `shred` is invalid: use a list of `delete` and `compact`",
            ),
            (
                vec![("background.threads", "many")],
                "`background.threads` = `many` is invalid: use a whole number",
            ),
            (
                vec![("max.connections", "10")],
                "set by ferry-broker's --max-connections flag",
            ),
            (
                vec![("log.dirs", "/tmp")],
                "unknown broker config `log.dirs`; Ferry supports these dynamic broker configs: compression.type",
            ),
        ] {
            let err = check_broker(&map(&pairs)).expect_err("invalid").to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn group_configs_follow_kafka_bounds() {
        assert!(check_group(&map(&[("consumer.session.timeout.ms", "50000")])).is_ok());
        assert!(check_group(&map(&[("share.auto.offset.reset", "by_duration:PT1H")])).is_ok());
        for (pairs, want) in [
            (
                vec![("consumer.session.timeout.ms", "1000")],
                "milliseconds from 45000 to 60000",
            ),
            (
                vec![("consumer.heartbeat.interval.ms", "16000")],
                "milliseconds from 5000 to 15000",
            ),
            (
                vec![("share.auto.offset.reset", "soonest")],
                "latest, earliest or by_duration",
            ),
            (
                vec![("session.timeout.ms", "45000")],
                "unknown group config",
            ),
        ] {
            let err = check_group(&map(&pairs)).expect_err("invalid").to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn precedence_persistence_and_describe() {
        let dir = tempfile::tempdir().expect("tempdir");
        let flags = TopicConfig::default();
        let configs = DynamicConfigs::open(dir.path(), flags).expect("open");
        let mut applied = Vec::new();
        configs
            .set_broker(
                BrokerScope::Cluster,
                map(&[("log.retention.ms", "1000"), ("num.io.threads", "4")]),
                false,
                |d| {
                    applied.push(d.log.retention_ms);
                    Ok(())
                },
            )
            .expect("cluster");
        configs
            .set_broker(
                BrokerScope::Node,
                map(&[("log.retention.ms", "2000")]),
                false,
                |d| {
                    applied.push(d.log.retention_ms);
                    Ok(())
                },
            )
            .expect("node");
        assert_eq!(applied, vec![Some(1000), Some(2000)]);
        // validate_only changes nothing and applies nothing.
        configs
            .set_broker(BrokerScope::Node, BTreeMap::new(), true, |_| {
                panic!("validate_only applied")
            })
            .expect("validate");
        configs
            .set_group("g", map(&[("consumer.session.timeout.ms", "50000")]), false)
            .expect("group");

        let reopened = DynamicConfigs::open(dir.path(), flags).expect("reopen");
        assert_eq!(
            reopened
                .topic_defaults()
                .expect("defaults")
                .log
                .retention_ms,
            Some(2000)
        );
        let node = reopened.describe_broker(BrokerScope::Node);
        let find = |list: &[(&str, String, Source)], name: &str| {
            list.iter()
                .find(|(n, _, _)| *n == name)
                .map(|(_, v, s)| (v.clone(), *s))
        };
        assert_eq!(
            find(&node, "log.retention.ms"),
            Some(("2000".into(), Source::Node))
        );
        assert_eq!(
            find(&node, "num.io.threads"),
            Some(("4".into(), Source::Cluster))
        );
        assert_eq!(
            find(&node, "log.segment.bytes"),
            Some((flags.log.segment_bytes.to_string(), Source::Flag))
        );
        assert_eq!(
            find(&node, "background.threads"),
            Some(("10".into(), Source::Default))
        );
        let cluster = reopened.describe_broker(BrokerScope::Cluster);
        assert_eq!(cluster.len(), 2, "{cluster:?}");
        let group = reopened.describe_group("g");
        assert_eq!(
            find(&group, "consumer.session.timeout.ms"),
            Some(("50000".into(), Source::Group))
        );
        assert_eq!(
            find(
                &reopened.describe_group("other"),
                "consumer.session.timeout.ms"
            ),
            Some(("45000".into(), Source::Default))
        );
        // A bad change leaves the file as it was.
        assert!(
            reopened
                .set_group("g", map(&[("consumer.session.timeout.ms", "5")]), false)
                .is_err()
        );
        assert_eq!(
            reopened.group("g"),
            map(&[("consumer.session.timeout.ms", "50000")])
        );
    }

    #[test]
    fn a_damaged_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("configs.json"), "{\"broker\": 5}").expect("write");
        let err = DynamicConfigs::open(dir.path(), TopicConfig::default())
            .expect_err("damaged")
            .to_string();
        assert!(err.contains("configs.json"), "{err}");
    }
}
