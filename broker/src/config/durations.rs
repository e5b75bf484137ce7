//! Duration flags in one style across Ferry's binaries: Go durations (`--retention 168h`,
//! `--group-initial-rebalance-delay 3s`) parsed by [`ferry_runtime::duration`], and the
//! millisecond flags they replace (`--retention-ms`, `--segment-ms`, ...) still accepted as
//! hidden aliases.

use std::time::Duration;

use clap::Args;
use ferry_runtime::duration;

use crate::error::{Error, Result};

/// The duration flags' old millisecond spellings (`--retention-ms 604800000`), hidden from
/// `--help`; `BrokerFlags::into_config` puts each one given in place of its new name's value.
#[derive(Args, Clone, Debug)]
pub(super) struct MillisFlags {
    /// `--retention` in ms (Kafka's `retention.ms`); -1 keeps segments forever.
    #[arg(
        long,
        hide = true,
        allow_hyphen_values = true,
        value_parser = parse_retention_ms,
        overrides_with = "retention"
    )]
    pub(super) retention_ms: Option<Retention>,
    /// `--retention-check-interval` in ms.
    #[arg(
        long,
        hide = true,
        value_parser = duration::parse_millis,
        overrides_with = "retention_check_interval"
    )]
    pub(super) retention_check_interval_ms: Option<Duration>,
    /// `--segment-max-age` in ms (Kafka's `segment.ms`).
    #[arg(
        long,
        hide = true,
        value_parser = duration::parse_millis,
        overrides_with = "segment_max_age"
    )]
    pub(super) segment_ms: Option<Duration>,
    /// `--group-initial-rebalance-delay` in ms.
    #[arg(
        long,
        hide = true,
        value_parser = duration::parse_millis,
        overrides_with = "group_initial_rebalance_delay"
    )]
    pub(super) group_initial_rebalance_delay_ms: Option<Duration>,
    /// `--group-min-session-timeout` in ms.
    #[arg(
        long,
        hide = true,
        value_parser = duration::parse_millis,
        overrides_with = "group_min_session_timeout"
    )]
    pub(super) group_min_session_timeout_ms: Option<Duration>,
    /// `--group-max-session-timeout` in ms.
    #[arg(
        long,
        hide = true,
        value_parser = duration::parse_millis,
        overrides_with = "group_max_session_timeout"
    )]
    pub(super) group_max_session_timeout_ms: Option<Duration>,
}

/// How long segments are kept (`--retention`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// Never delete segments by age.
    Forever,
    /// Delete segments whose newest record is older than this.
    For(Duration),
}

impl Retention {
    /// As Kafka's `retention.ms`: `None` keeps segments forever.
    pub fn as_millis(self) -> Option<i64> {
        match self {
            Retention::Forever => None,
            Retention::For(d) => Some(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        }
    }
}

/// Parses `--retention`: a duration, or `-1` (as Kafka's `retention.ms`) or `forever`.
pub(super) fn parse_retention(text: &str) -> Result<Retention> {
    match text.trim() {
        "-1" | "forever" => Ok(Retention::Forever),
        other => duration::parse(other).map(Retention::For).map_err(|e| {
            Error::InvalidSetting(format!("{e}, or -1 (forever) to keep segments forever"))
        }),
    }
}

/// Parses `--retention-ms`: milliseconds, or -1 for forever.
fn parse_retention_ms(text: &str) -> Result<Retention> {
    match text.trim() {
        "-1" => Ok(Retention::Forever),
        ms => duration::parse_millis(ms)
            .map(Retention::For)
            .map_err(|e| Error::InvalidSetting(format!("{e}; use -1 to keep segments forever"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BrokerConfig, Flags};

    #[test]
    fn durations_take_go_format_and_the_old_ms_flags_still_work() {
        let dir = std::path::Path::new("/tmp/ferry-config-test");
        let config = |flags: &[&str]| BrokerConfig::local(dir, flags).unwrap();
        let defaults = config(&[]);
        assert_eq!(
            defaults.retention,
            Retention::For(Duration::from_secs(7 * 24 * 3600))
        );
        assert_eq!(defaults.retention_check_interval, Duration::from_secs(300));
        assert_eq!(defaults.group_initial_rebalance_delay, Duration::ZERO);
        assert_eq!(
            defaults.group_config().max_session_timeout,
            Duration::from_secs(1800)
        );

        assert_eq!(config(&["--retention", "-1"]).retention, Retention::Forever);
        let new = config(&[
            "--retention",
            "forever",
            "--retention-check-interval",
            "5m",
            "--segment-max-age",
            "1h",
            "--group-initial-rebalance-delay",
            "3s",
            "--group-min-session-timeout",
            "1s",
            "--group-max-session-timeout",
            "1m",
        ]);
        let old = config(&[
            "--retention-ms=-1",
            "--retention-check-interval-ms",
            "300000",
            "--segment-ms",
            "3600000",
            "--group-initial-rebalance-delay-ms",
            "3000",
            "--group-min-session-timeout-ms",
            "1000",
            "--group-max-session-timeout-ms",
            "60000",
        ]);
        for c in [&new, &old] {
            assert_eq!(c.retention, Retention::Forever);
            assert_eq!(c.topic_defaults().config.log.retention_ms, None);
            assert_eq!(c.retention_check_interval, Duration::from_secs(300));
            assert_eq!(c.topic_defaults().config.log.segment_ms, 3_600_000);
            let groups = c.group_config();
            assert_eq!(groups.initial_rebalance_delay, Duration::from_secs(3));
            assert_eq!(groups.min_session_timeout, Duration::from_secs(1));
            assert_eq!(groups.max_session_timeout, Duration::from_secs(60));
        }
        let retained = config(&["--retention-ms", "86400000"]);
        assert_eq!(
            retained.topic_defaults().config.log.retention_ms,
            Some(86_400_000)
        );

        // Whichever spelling comes last wins.
        let last = config(&[
            "--retention-check-interval-ms",
            "1000",
            "--retention-check-interval",
            "2s",
        ]);
        assert_eq!(last.retention_check_interval, Duration::from_secs(2));
        let last = config(&[
            "--retention-check-interval",
            "2s",
            "--retention-check-interval-ms",
            "1000",
        ]);
        assert_eq!(last.retention_check_interval, Duration::from_secs(1));

        for (flags, want) in [
            (&["--retention-check-interval", "300"][..], "500ms, 10s"),
            (&["--retention=-2"], "forever"),
            (&["--retention-ms", "-2"], "-1"),
            (&["--segment-ms", "1h"], "milliseconds"),
        ] {
            let error = BrokerConfig::local(dir, flags).unwrap_err().to_string();
            assert!(error.contains(want), "{flags:?}: {error}");
        }
        let help = <Flags as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        assert!(
            help.contains("--retention-check-interval <DURATION>"),
            "{help}"
        );
        for old in [
            "--retention-ms",
            "--segment-ms",
            "--group-initial-rebalance-delay-ms",
        ] {
            assert!(!help.contains(old), "{old} is hidden: {help}");
        }
    }
}
