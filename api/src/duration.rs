//! ISO-8601 durations as Knative writes them: `PT0.2S`, `PT10M`, `PT168H`, `P1DT12H`, `P2W`.
//!
//! Knative parses these with `rickb777/date/period` and then converts to a time span. Ferry
//! accepts weeks, days, hours, minutes and seconds (fractions allowed on any component, with
//! `.` or `,`). Years and months are rejected: their length depends on the calendar, and a
//! delivery timeout of "one month" is almost certainly a mistake — write `P30D` instead.
//! Negative durations are rejected: no Knative field that takes a duration gives them a meaning.

use std::time::Duration;

use thiserror::Error;

/// Why a duration string was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("`{input}` is not {format}: {reason} (examples: {examples})")]
pub struct DurationError {
    /// The rejected text.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
    /// The format expected: ISO-8601 (Knative's delivery durations) or Go's (flags and
    /// autoscaling settings).
    pub format: &'static str,
    /// Examples of that format.
    pub examples: &'static str,
}

/// Parses an ISO-8601 duration such as `PT1.5S` into a [`Duration`].
///
/// # Errors
/// Text that is not `P[nW][nD][T[nH][nM][nS]]` with at least one component, uses years or
/// months, is negative, repeats or misorders a unit, or overflows.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let fail = |reason: &str| DurationError {
        input: input.to_owned(),
        reason: reason.to_owned(),
        format: "an ISO-8601 duration",
        examples: "PT0.5S, PT10M, PT168H, P1DT12H",
    };
    if input.starts_with('-') {
        return Err(fail("negative durations are not allowed"));
    }
    let body = input
        .strip_prefix('P')
        .ok_or_else(|| fail("it must start with `P`"))?;
    if body.is_empty() {
        return Err(fail("it has no components after `P`"));
    }
    let (date, time) = match body.split_once('T') {
        Some((_, "")) => return Err(fail("`T` must be followed by hours, minutes or seconds")),
        Some((d, t)) => (d, Some(t)),
        None => (body, None),
    };
    let mut nanos: u128 = 0;
    let mut seen_any = false;
    let mut walk = |part: &str, units: &[(char, u128)], bad: &[(char, &str)]| {
        let mut next_unit = 0usize;
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' || c == ',' {
                number.push(if c == ',' { '.' } else { c });
                continue;
            }
            if let Some((_, why)) = bad.iter().find(|(u, _)| *u == c) {
                return Err(fail(why));
            }
            let Some(pos) = units.iter().position(|(u, _)| *u == c) else {
                return Err(fail(&format!("`{c}` is not a duration unit here")));
            };
            if pos < next_unit {
                return Err(fail(&format!("`{c}` is repeated or out of order")));
            }
            if number.is_empty() {
                return Err(fail(&format!("`{c}` has no number before it")));
            }
            nanos = nanos
                .checked_add(
                    scaled(&number, units[pos].1)
                        .ok_or_else(|| fail("a number is malformed or too large"))?,
                )
                .ok_or_else(|| fail("it is too large"))?;
            number.clear();
            next_unit = pos + 1;
            seen_any = true;
        }
        if number.is_empty() {
            Ok(())
        } else {
            Err(fail(&format!("`{number}` has no unit after it")))
        }
    };
    const SEC: u128 = 1_000_000_000;
    walk(
        date,
        &[('W', 7 * 24 * 3600 * SEC), ('D', 24 * 3600 * SEC)],
        &[
            (
                'Y',
                "years are not allowed (their length varies); use days, e.g. P365D",
            ),
            (
                'M',
                "months are not allowed in the date part (their length varies); use days, e.g. P30D, or PT…M for minutes",
            ),
        ],
    )?;
    if let Some(time) = time {
        walk(time, &[('H', 3600 * SEC), ('M', 60 * SEC), ('S', SEC)], &[])?;
    }
    if !seen_any {
        return Err(fail("it has no components"));
    }
    let secs = u64::try_from(nanos / SEC).map_err(|_| fail("it is too large"))?;
    // The remainder is below one second, so it always fits in u32.
    let sub = u32::try_from(nanos % SEC).map_err(|_| fail("it is too large"))?;
    Ok(Duration::new(secs, sub))
}

/// `number` (digits with an optional fraction) times `unit` nanoseconds, rounded down to whole
/// nanoseconds; `None` when malformed or overflowing.
fn scaled(number: &str, unit: u128) -> Option<u128> {
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return None;
    }
    let whole: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut total = whole.checked_mul(unit)?;
    if !frac.is_empty() {
        let digits = &frac[..frac.len().min(18)];
        let numerator: u128 = digits.parse().ok()?;
        let denominator = 10u128.pow(u32::try_from(digits.len()).ok()?);
        total = total.checked_add(numerator.checked_mul(unit)? / denominator)?;
    }
    Some(total)
}

/// Formats a [`Duration`] as the shortest ISO-8601 text that [`parse_duration`] reads back
/// exactly, e.g. `PT0.2S`, `PT10M`, `PT168H`.
pub fn format_duration(d: Duration) -> String {
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    let nanos = d.subsec_nanos();
    let mut out = String::from("PT");
    if h > 0 {
        out.push_str(&format!("{h}H"));
    }
    if m > 0 {
        out.push_str(&format!("{m}M"));
    }
    if s > 0 || nanos > 0 || (h == 0 && m == 0) {
        if nanos > 0 {
            let frac = format!("{nanos:09}");
            out.push_str(&format!("{s}.{}S", frac.trim_end_matches('0')));
        } else {
            out.push_str(&format!("{s}S"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_knative_examples() {
        let cases = [
            ("PT0.2S", Duration::from_millis(200)),
            ("PT1S", Duration::from_secs(1)),
            ("PT10M", Duration::from_secs(600)),
            ("PT168H", Duration::from_secs(168 * 3600)),
            ("P7D", Duration::from_secs(7 * 86400)),
            ("P2W", Duration::from_secs(14 * 86400)),
            ("P1DT12H", Duration::from_secs(36 * 3600)),
            ("PT1H30M15.5S", Duration::from_millis(5_415_500)),
            ("PT0,5S", Duration::from_millis(500)),
            ("PT1.5M", Duration::from_secs(90)),
            ("PT0S", Duration::ZERO),
            ("PT.25S", Duration::from_millis(250)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn rejects_with_reason() {
        let cases = [
            ("", "must start with `P`"),
            ("10s", "must start with `P`"),
            ("P", "no components"),
            ("PT", "`T` must be followed"),
            ("P1Y", "years are not allowed"),
            ("P1M", "months are not allowed"),
            ("-PT1S", "negative"),
            ("PT1S1M", "out of order"),
            ("PT1M1M", "repeated or out of order"),
            ("PTS", "no number before"),
            ("PT1", "has no unit"),
            ("PT1X", "`X` is not a duration unit"),
            ("PT1.2.3S", "malformed"),
            ("PT99999999999999999999999999999999999999H", "too large"),
        ];
        for (text, want) in cases {
            let err = parse_duration(text).expect_err(text).to_string();
            assert!(err.contains(want), "{text}: {err}");
            assert!(err.contains("PT0.5S"), "error shows examples: {err}");
        }
    }

    #[test]
    fn format_round_trips() {
        for d in [
            Duration::ZERO,
            Duration::from_millis(200),
            Duration::from_secs(61),
            Duration::from_secs(168 * 3600),
            Duration::new(3725, 5_000),
        ] {
            let text = format_duration(d);
            assert_eq!(parse_duration(&text), Ok(d), "{text}");
        }
        assert_eq!(format_duration(Duration::from_millis(200)), "PT0.2S");
        assert_eq!(format_duration(Duration::from_secs(3600 * 168)), "PT168H");
    }
}

/// Parses a Go `time.Duration` string as Knative's autoscaling annotations use them: `60s`,
/// `1m30s`, `500ms`, `1.5h`. Units: `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`.
///
/// # Errors
/// Text without a unit, with an unknown unit, negative, or overflowing.
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let fail = |reason: &str| DurationError {
        input: input.to_owned(),
        reason: reason.to_owned(),
        format: "a duration",
        examples: "500ms, 10s, 1m30s, 1.5h",
    };
    if input == "0" {
        return Ok(Duration::ZERO);
    }
    if input.starts_with('-') {
        return Err(fail("negative durations are not allowed"));
    }
    let mut rest = input.strip_prefix('+').unwrap_or(input);
    if rest.is_empty() {
        return Err(fail("it is empty"));
    }
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(num_len);
        if number.is_empty() {
            return Err(fail("a unit has no number before it"));
        }
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(fail("a number has no unit (use e.g. 60s)")),
            other => {
                return Err(fail(&format!(
                    "`{other}` is not a unit (use ns, us, ms, s, m, h)"
                )));
            }
        };
        let part =
            scaled(number, scale).ok_or_else(|| fail("a number is malformed or too large"))?;
        nanos = nanos
            .checked_add(part)
            .ok_or_else(|| fail("it is too large"))?;
        rest = next;
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| fail("it is too large"))?;
    let sub = u32::try_from(nanos % 1_000_000_000).map_err(|_| fail("it is too large"))?;
    Ok(Duration::new(secs, sub))
}

#[cfg(test)]
mod go_tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "60", "-1s", "1d", "s", "1..5s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }
}
