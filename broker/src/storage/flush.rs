//! When appended data reaches the disk (`--flush always|interval:<ms>|os`).
//!
//! # Guarantees
//! - `always`: the partition file is fsynced before a produce is acknowledged; an acknowledged
//!   record survives power loss.
//! - `interval:<ms>`: group commit. Appends wait for the next periodic fsync (at most `ms`
//!   later), so an acknowledged record survives power loss and many producers share one fsync.
//! - `os`: data sits in the page cache until the kernel writes it. An acknowledged record
//!   survives a broker crash (the kernel still has it) but not a machine crash.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::Error;

/// The fsync policy of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushPolicy {
    /// fsync before every acknowledgement.
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
