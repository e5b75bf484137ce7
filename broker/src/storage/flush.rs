//! When appended data reaches the disk (`--flush always|interval:<ms>|os`).
//!
//! # Guarantees
//! - `always` (the default): group commit ([`super::GroupCommit`]). An fsync starts as soon as
//!   a write waits for one and none is running; it covers everything appended before it
//!   started, and writes arriving meanwhile share the next one. A produce is acknowledged
//!   only after the fsync covering it, so an acknowledged record survives power loss; a lone
//!   producer waits one fsync, not a timer.
//! - `interval:<ms>`: appends wait for the next periodic fsync (at most `ms` later): a bounded
//!   fsync rate, at the price of up to `ms` of extra ack latency. Survives power loss too.
//! - `os`: data sits in the page cache until the kernel writes it. An acknowledged record
//!   survives a broker crash (the kernel still has it) but not a machine crash.
//!
//! Under `always` and `interval`, a failed fsync fences the partition: the writes it covered
//! are answered with `KAFKA_STORAGE_ERROR`, nothing later is acknowledged, and the partition
//! takes no writes until a restart recovers the log from what reached the disk. A failed
//! write fences it too, under every policy — except a write the disk had no space for, which
//! is undone (the files cut back, memory untouched) and answered with the same retriable
//! `KAFKA_STORAGE_ERROR`, so producers' retries succeed once space is freed. A fenced
//! partition fails `/readyz` and counts in `ferry_broker_partitions_fenced`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::Error;

/// The fsync policy of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Group commit: fsync as soon as a write waits and none runs; acks wait for it.
    Always,
    /// fsync every interval; acknowledgements wait for it.
    Interval(Duration),
    /// Never fsync explicitly.
    Os,
}

impl FromStr for FlushPolicy {
    type Err = Error;

    /// # Errors
    /// [`Error::FlushPolicy`] for anything but `always`, `interval:<ms>` (ms > 0) or `os`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(FlushPolicy::Always),
            "os" => Ok(FlushPolicy::Os),
            _ => match s.strip_prefix("interval:").map(str::parse::<u64>) {
                Some(Ok(ms)) if ms > 0 => Ok(FlushPolicy::Interval(Duration::from_millis(ms))),
                _ => Err(Error::FlushPolicy(s.to_owned())),
            },
        }
    }
}

impl fmt::Display for FlushPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlushPolicy::Always => f.write_str("always"),
            FlushPolicy::Interval(d) => write!(f, "interval:{}", d.as_millis()),
            FlushPolicy::Os => f.write_str("os"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (text, want) in [
            ("always", FlushPolicy::Always),
            ("os", FlushPolicy::Os),
            (
                "interval:5",
                FlushPolicy::Interval(Duration::from_millis(5)),
            ),
        ] {
            assert_eq!(text.parse::<FlushPolicy>().ok(), Some(want));
            assert_eq!(want.to_string(), text);
        }
        for bad in [
            "",
            "never",
            "interval:",
            "interval:0",
            "interval:-1",
            "interval:5ms",
            "Always",
        ] {
            let err = bad.parse::<FlushPolicy>().expect_err(bad).to_string();
            assert!(err.contains("use always, interval:<ms>"), "{err}");
        }
    }
}
