//! Duration flags, one style for every binary: Go durations as Kubernetes components take them
//! (`100ms`, `5s`, `1m30s`), parsed by [`ferry_api::duration::parse_go_duration`] — the parser
//! Knative's autoscaling settings use too.
//!
//! A flag that used to take milliseconds (`--contract-poll-ms 1000`) keeps that name as a hidden
//! alias: declare the new flag with [`parse`] and the old one with [`parse_millis`], both into
//! the same field (clap `overrides_with`), so charts and scripts written for the old name work.

use std::time::Duration;

/// Parses a Go duration flag (`250ms`, `5s`, `1m`, `0`).
///
/// # Errors
/// A message naming the text and showing the expected form.
pub fn parse(text: &str) -> Result<Duration, String> {
    ferry_api::duration::parse_go_duration(text.trim()).map_err(|e| e.to_string())
}

/// Parses an old `*-ms` flag: a whole number of milliseconds.
///
/// # Errors
/// A message naming the text.
pub fn parse_millis(text: &str) -> Result<Duration, String> {
    text.trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| format!("`{text}` is not a whole number of milliseconds"))
}

/// Renders a duration as a flag value [`parse`] reads back (`1500ms`, `5s`), for defaults
/// and messages.
pub fn format(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}us", d.as_micros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_and_old_milliseconds() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        let err = parse("5").unwrap_err();
        assert!(err.starts_with("`5` is not a duration"), "{err}");
        assert!(err.contains("500ms, 10s"), "{err}");
        assert_eq!(parse_millis("1000"), Ok(Duration::from_secs(1)));
        assert!(parse_millis("1s").unwrap_err().contains("milliseconds"));
        for d in [
            Duration::from_secs(5),
            Duration::from_millis(1500),
            Duration::from_micros(7),
        ] {
            assert_eq!(parse(&format(d)), Ok(d), "{}", format(d));
        }
    }
}
