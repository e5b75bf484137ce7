//! Per-topic configuration: the Kafka topic configs Ferry acts on, with the broker's values as
//! defaults and each topic's overrides kept as given.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::storage::{Compression, LogConfig};

/// Config names accepted in CreateTopics and shown by DescribeConfigs.
pub const SUPPORTED: &[&str] = &[
    "cleanup.policy",
    "compression.type",
    "delete.retention.ms",
    "max.message.bytes",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
];

/// What an inert config's value must look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A whole number (Kafka's LONG/INT configs; -1 and -2 are Kafka's sentinels).
    Long,
    /// `true` or `false`.
    Bool,
    /// A number from 0 to 1.
    Ratio,
    /// Any text (Kafka's lists of replicas).
    Text,
}

/// Topic configs Kafka has that are accepted, kept and shown but change nothing on this
/// broker, each with Kafka's default: `max.compaction.lag.ms` (a cleaning runs at every
/// retention check once the dirty ratio is reached, not on a deadline), replication's and
/// tiered storage's (one node, no remote tier), index and file tuning, and `flush.*` (the
/// broker-wide `--flush` policy decides when the log is synced; the default syncs before
/// every acknowledgement, more often than any `flush.*` value asks). Kafka accepts them on
/// every topic, and tools set them (librdkafka's admin tests among them).
pub const INERT: &[(&str, &str, Kind)] = &[
    ("file.delete.delay.ms", "60000", Kind::Long),
    ("flush.messages", "9223372036854775807", Kind::Long),
    ("flush.ms", "9223372036854775807", Kind::Long),
    ("follower.replication.throttled.replicas", "", Kind::Text),
    ("index.interval.bytes", "4096", Kind::Long),
    ("leader.replication.throttled.replicas", "", Kind::Text),
    ("local.retention.bytes", "-2", Kind::Long),
    ("local.retention.ms", "-2", Kind::Long),
    ("max.compaction.lag.ms", "9223372036854775807", Kind::Long),
    ("message.downconversion.enable", "true", Kind::Bool),
    ("preallocate", "false", Kind::Bool),
    ("segment.index.bytes", "10485760", Kind::Long),
    ("segment.jitter.ms", "0", Kind::Long),
    ("unclean.leader.election.enable", "false", Kind::Bool),
];

impl Kind {
    /// Whether `value` is of this kind; else what a value must look like.
    ///
    /// # Errors
    /// The description of a valid value.
    pub fn check(self, value: &str) -> std::result::Result<(), &'static str> {
        let (fits, expected) = match self {
            // -1 and -2 are Kafka's sentinels (no limit, as the broker).
            Kind::Long => (
                value.parse::<i64>().is_ok_and(|v| v >= -2),
                "a whole number",
            ),
            Kind::Bool => (value == "true" || value == "false", "true or false"),
            Kind::Ratio => (
                value.parse::<f64>().is_ok_and(|v| (0.0..=1.0).contains(&v)),
                "a number from 0 to 1",
            ),
            Kind::Text => (true, ""),
        };
        if fits { Ok(()) } else { Err(expected) }
    }
}

/// The inert config `name`, if it is one.
pub fn inert(name: &str) -> Option<&'static (&'static str, &'static str, Kind)> {
    INERT.iter().find(|(n, _, _)| *n == name)
}

/// A topic's `compression.type`: how its batches are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompressionType {
    /// `producer`: as the producer compressed them.
    Producer,
    /// `uncompressed`, `gzip`, `snappy`, `lz4` or `zstd`: re-compressed into this codec
    /// when the producer used another one.
    Codec(Compression),
}

impl CompressionType {
    /// What `expected` says a value must be.
    const EXPECTED: &'static str = "producer, uncompressed, gzip, snappy, lz4 or zstd";

    /// Kafka's name for a `compression.type` value, if it is one.
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "producer" => CompressionType::Producer,
            "uncompressed" => CompressionType::Codec(Compression::None),
            "gzip" => CompressionType::Codec(Compression::Gzip),
            "snappy" => CompressionType::Codec(Compression::Snappy),
            "lz4" => CompressionType::Codec(Compression::Lz4),
            "zstd" => CompressionType::Codec(Compression::Zstd),
            _ => return None,
        })
    }

    /// The value as Kafka names it.
    pub fn name(self) -> &'static str {
        match self {
            CompressionType::Producer => "producer",
            CompressionType::Codec(Compression::None) => "uncompressed",
            CompressionType::Codec(Compression::Gzip) => "gzip",
            CompressionType::Codec(Compression::Snappy) => "snappy",
            CompressionType::Codec(Compression::Lz4) => "lz4",
            CompressionType::Codec(Compression::Zstd) => "zstd",
            // `parse` never yields it.
            CompressionType::Codec(Compression::Unknown(_)) => "producer",
        }
    }
}

/// A topic's `cleanup.policy`: what happens to old segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cleanup {
    /// `delete`: segments past `retention.ms` / `retention.bytes` are deleted.
    pub delete: bool,
    /// `compact`: closed segments keep only the latest record of each key.
    pub compact: bool,
}

impl Cleanup {
    /// Kafka's list value, `delete`, `compact` or `compact,delete` (`""` for neither).
    pub fn name(self) -> &'static str {
        match (self.compact, self.delete) {
            (true, true) => "compact,delete",
            (true, false) => "compact",
            (false, true) => "delete",
            (false, false) => "",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        let mut c = Cleanup {
            delete: false,
            compact: false,
        };
        for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item {
                "delete" => c.delete = true,
                "compact" => c.compact = true,
                _ => return None,
            }
        }
        Some(c)
    }
}

/// The effective settings of one topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicConfig {
    /// Segment rolling and retention.
    pub log: LogConfig,
    /// Largest record batch accepted, in bytes.
    pub max_message_bytes: usize,
    /// How batches are stored.
    pub compression: CompressionType,
    /// `cleanup.policy`.
    pub cleanup: Cleanup,
    /// `delete.retention.ms`: how long a compacted topic keeps a tombstone.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: how old a record must be before compaction may remove it.
    pub min_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`, in millionths: the share of the closed segments not yet
    /// cleaned that starts a cleaning.
    pub min_cleanable_dirty_ratio_ppm: u32,
}

impl TopicConfig {
    /// Applies `overrides` (Kafka config names) on top of `defaults`.
    ///
    /// # Errors
    /// [`Error::UnknownConfig`] or [`Error::InvalidConfig`] for the first bad entry.
    pub fn with_overrides(
        defaults: TopicConfig,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let mut c = defaults;
        for (name, value) in overrides {
            let invalid = |expected| Error::InvalidConfig {
                resource: "topic",
                name: name.clone(),
                value: value.clone(),
                expected,
            };
            let int = |min: i64| value.parse::<i64>().ok().filter(|v| *v >= min);
            match name.as_str() {
                "retention.ms" => {
                    let v =
                        int(-1).ok_or_else(|| invalid("milliseconds ≥ 0, or -1 for forever"))?;
                    c.log.retention_ms = (v >= 0).then_some(v);
                }
                "retention.bytes" => {
                    let v = int(-1).ok_or_else(|| invalid("bytes ≥ 0, or -1 for no limit"))?;
                    c.log.retention_bytes = u64::try_from(v).ok();
                }
                "segment.bytes" => {
                    let v = int(14).ok_or_else(|| invalid("bytes ≥ 14"))?;
                    c.log.segment_bytes = u64::try_from(v).unwrap_or(u64::MAX);
                }
                "segment.ms" => {
                    c.log.segment_ms = int(1).ok_or_else(|| invalid("milliseconds ≥ 1"))?;
                }
                "max.message.bytes" => {
                    let v = int(0).ok_or_else(|| invalid("bytes ≥ 0"))?;
                    c.max_message_bytes = usize::try_from(v).unwrap_or(usize::MAX);
                }
                "cleanup.policy" => {
                    c.cleanup = Cleanup::parse(value)
                        .ok_or_else(|| invalid("a list of `delete` and `compact`"))?;
                }
                "delete.retention.ms" => {
                    c.delete_retention_ms = int(0).ok_or_else(|| invalid("milliseconds ≥ 0"))?;
                }
                "min.compaction.lag.ms" => {
                    c.min_compaction_lag_ms = int(0).ok_or_else(|| invalid("milliseconds ≥ 0"))?;
                }
                "min.cleanable.dirty.ratio" => {
                    let ratio = value
                        .parse::<f64>()
                        .ok()
                        .filter(|r| (0.0..=1.0).contains(r))
                        .ok_or_else(|| invalid("a number from 0 to 1"))?;
                    c.min_cleanable_dirty_ratio_ppm = (ratio * 1e6).round() as u32;
                }
                "compression.type" => {
                    c.compression = CompressionType::parse(value)
                        .ok_or_else(|| invalid(CompressionType::EXPECTED))?;
                }
                "message.timestamp.type" if value != "CreateTime" => {
                    return Err(invalid("`CreateTime`"));
                }
                "min.insync.replicas" if value != "1" => {
                    return Err(invalid("1 (the embedded broker is a single replica)"));
                }
                "message.timestamp.type" | "min.insync.replicas" => {}
                other if inert(other).is_some() => {
                    if let Some((_, _, kind)) = inert(other) {
                        kind.check(value).map_err(invalid)?;
                    }
                }
                _ => {
                    return Err(Error::UnknownConfig {
                        resource: "topic",
                        name: name.clone(),
                        supported: SUPPORTED.join(", "),
                    });
                }
            }
        }
        Ok(c)
    }

    /// Every supported config with its effective value, in [`SUPPORTED`] order.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        let opt = |v: Option<i64>| v.map_or_else(|| "-1".to_owned(), |v| v.to_string());
        SUPPORTED
            .iter()
            .map(|&name| {
                let value = match name {
                    "cleanup.policy" => self.cleanup.name().to_owned(),
                    "compression.type" => self.compression.name().to_owned(),
                    "delete.retention.ms" => self.delete_retention_ms.to_string(),
                    "min.compaction.lag.ms" => self.min_compaction_lag_ms.to_string(),
                    "min.cleanable.dirty.ratio" => {
                        (f64::from(self.min_cleanable_dirty_ratio_ppm) / 1e6).to_string()
                    }
                    "max.message.bytes" => self.max_message_bytes.to_string(),
                    "message.timestamp.type" => "CreateTime".to_owned(),
                    "min.insync.replicas" => "1".to_owned(),
                    "retention.bytes" => opt(self
                        .log
                        .retention_bytes
                        .map(|b| b.try_into().unwrap_or(i64::MAX))),
                    "retention.ms" => opt(self.log.retention_ms),
                    "segment.bytes" => self.log.segment_bytes.to_string(),
                    _ => self.log.segment_ms.to_string(),
                };
                (name, value)
            })
            .collect()
    }
}

impl Default for TopicConfig {
    /// Kafka's defaults (`message.max.bytes` is 1 MiB + overhead there; Ferry uses 1 MiB).
    fn default() -> Self {
        TopicConfig {
            log: LogConfig::default(),
            max_message_bytes: 1 << 20,
            compression: CompressionType::Producer,
            cleanup: Cleanup {
                delete: true,
                compact: false,
            },
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            min_cleanable_dirty_ratio_ppm: 500_000,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A config map from `(name, value)` pairs.
    pub(crate) fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn overrides_apply_and_show() {
        let c = TopicConfig::with_overrides(
            TopicConfig::default(),
            &map(&[
                ("retention.ms", "-1"),
                ("retention.bytes", "1000"),
                ("segment.bytes", "4096"),
                ("cleanup.policy", "delete"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.log.retention_ms, None);
        assert_eq!(c.log.retention_bytes, Some(1000));
        assert_eq!(c.log.segment_bytes, 4096);
        let entries = c.entries();
        assert!(entries.contains(&("retention.ms", "-1".to_owned())));
        assert!(entries.contains(&("segment.bytes", "4096".to_owned())));
        assert_eq!(entries.len(), SUPPORTED.len());
        assert!(entries.contains(&("compression.type", "producer".to_owned())));
    }

    #[test]
    fn compression_types_round_trip() {
        for name in ["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"] {
            let c = TopicConfig::with_overrides(
                TopicConfig::default(),
                &map(&[("compression.type", name)]),
            )
            .expect("valid");
            assert_eq!(c.compression.name(), name);
            assert!(c.entries().contains(&("compression.type", name.to_owned())));
        }
    }

    #[test]
    fn bad_configs_are_named() {
        for (pairs, want) in [
            (
                vec![("cleanup.policy", "compact,shred")],
                "`cleanup.policy` = `compact,shred` is invalid: use a list of `delete` and `compact`",
            ),
            (
                vec![("min.cleanable.dirty.ratio", "2")],
                "a number from 0 to 1",
            ),
            (vec![("delete.retention.ms", "-1")], "milliseconds ≥ 0"),
            (
                vec![("retention.ms", "soon")],
                "`retention.ms` = `soon` is invalid",
            ),
            (vec![("segment.bytes", "1")], "bytes ≥ 14"),
            (
                vec![("flush.msec", "1")],
                "unknown topic config `flush.msec`",
            ),
            (vec![("flush.ms", "soon")], "flush.ms"),
            (vec![("preallocate", "yes")], "true or false"),
            (vec![("min.insync.replicas", "2")], "single replica"),
            (
                vec![("compression.type", "brotli")],
                "`compression.type` = `brotli` is invalid: use producer, uncompressed",
            ),
            // The producer's name for no compression; topics call it `uncompressed`.
            (vec![("compression.type", "none")], "`none` is invalid"),
        ] {
            let err = TopicConfig::with_overrides(TopicConfig::default(), &map(&pairs))
                .expect_err("invalid")
                .to_string();
            assert!(err.contains(want), "{err}");
        }
    }
}
