//! Retry-or-give-up decisions of Knative's delivery spec, as pure functions.

use std::time::{Duration, SystemTime};

use ferry_api::contract::DeliveryPolicy;
use ferry_api::duck::BackoffPolicy;

/// What one delivery attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The subscriber answered with this status.
    Status {
        /// HTTP status code.
        code: u16,
        /// The `Retry-After` header, when present.
        retry_after: Option<String>,
    },
    /// No answer within the timeout.
    Timeout,
    /// Connecting or sending failed.
    Connection,
}

/// What to do after an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: delivered.
    Delivered,
    /// Try again after this long.
    RetryAfter(Duration),
    /// Out of retries, or the answer says retrying cannot help: dead-letter or drop.
    GiveUp,
}

/// Knative's retryable answers: 404, 409, 429, 5xx, timeouts and connection errors.
pub fn retryable(attempt: &Attempt) -> bool {
    match attempt {
        Attempt::Status { code, .. } => {
            matches!(code, 404 | 409 | 429) || (500..600).contains(code)
        }
        Attempt::Timeout | Attempt::Connection => true,
    }
}

/// Decides after attempt number `attempt` (1 = the first try).
pub fn decide(
    policy: &DeliveryPolicy,
    attempt: u32,
    outcome: &Attempt,
    now: SystemTime,
) -> Verdict {
    if let Attempt::Status {
        code: 200..=299, ..
    } = outcome
    {
        return Verdict::Delivered;
    }
    if !retryable(outcome) || attempt > policy.retry {
        return Verdict::GiveUp;
    }
    let mut delay = backoff(policy, attempt);
    if let Attempt::Status {
        code: 429 | 503,
        retry_after: Some(header),
    } = outcome
        && let Some(asked) = parse_retry_after(header, now)
    {
        // Knative: the larger of the backoff and Retry-After (capped by retryAfterMax; PT0S
        // turns Retry-After off).
        let asked = policy
            .retry_after_max_ms
            .map_or(asked, |max| asked.min(Duration::from_millis(max)));
        delay = delay.max(asked);
    }
    Verdict::RetryAfter(delay)
}

/// Delay before retry number `retry` (1-based): `delay × retry` (linear) or `delay × 2^retry`
/// (exponential, Knative's formula), capped by `backoffMax`.
pub fn backoff(policy: &DeliveryPolicy, retry: u32) -> Duration {
    let base = policy.backoff_delay_ms;
    let ms = match policy.backoff_policy {
        BackoffPolicy::Linear => base.saturating_mul(u64::from(retry)),
        BackoffPolicy::Exponential => {
            base.saturating_mul(1u64.checked_shl(retry.min(63)).unwrap_or(u64::MAX))
        }
    };
    Duration::from_millis(policy.backoff_max_ms.map_or(ms, |max| ms.min(max)))
}

/// `Retry-After` as delta-seconds or an HTTP date.
pub fn parse_retry_after(header: &str, now: SystemTime) -> Option<Duration> {
    let header = header.trim();
    if let Ok(secs) = header.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(header).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(retry: u32, backoff: BackoffPolicy) -> DeliveryPolicy {
        DeliveryPolicy {
            retry,
            backoff_policy: backoff,
            backoff_delay_ms: 100,
            ..DeliveryPolicy::default()
        }
    }

    fn status(code: u16) -> Attempt {
        Attempt::Status {
            code,
            retry_after: None,
        }
    }

    #[test]
    fn knative_retry_table() {
        let p = policy(3, BackoffPolicy::Linear);
        let now = SystemTime::now();
        for code in [200, 201, 202, 204] {
            assert_eq!(decide(&p, 1, &status(code), now), Verdict::Delivered);
        }
        for code in [404, 409, 429, 500, 502, 503, 504] {
            assert!(
                matches!(decide(&p, 1, &status(code), now), Verdict::RetryAfter(_)),
                "{code}"
            );
        }
        for code in [400, 401, 403, 405, 410, 413, 422, 301] {
            assert_eq!(decide(&p, 1, &status(code), now), Verdict::GiveUp, "{code}");
        }
        assert!(matches!(
            decide(&p, 1, &Attempt::Timeout, now),
            Verdict::RetryAfter(_)
        ));
        assert!(matches!(
            decide(&p, 3, &Attempt::Connection, now),
            Verdict::RetryAfter(_)
        ));
        assert_eq!(
            decide(&p, 4, &status(500), now),
            Verdict::GiveUp,
            "retry 3 = 4 attempts"
        );
        assert_eq!(
            decide(&policy(0, BackoffPolicy::Linear), 1, &status(500), now),
            Verdict::GiveUp
        );
    }

    #[test]
    fn backoff_linear_exponential_and_capped() {
        let ms = |p: &DeliveryPolicy, n| backoff(p, n).as_millis();
        let linear = policy(5, BackoffPolicy::Linear);
        assert_eq!([1, 2, 3].map(|n| ms(&linear, n)), [100, 200, 300]);
        let mut exp = policy(5, BackoffPolicy::Exponential);
        assert_eq!([1, 2, 3].map(|n| ms(&exp, n)), [200, 400, 800]);
        exp.backoff_max_ms = Some(500);
        assert_eq!([1, 2, 3].map(|n| ms(&exp, n)), [200, 400, 500]);
        assert_eq!(
            ms(&policy(100, BackoffPolicy::Exponential), 90),
            u128::from(u64::MAX)
        );
    }

    #[test]
    fn retry_after_for_429_and_503_only_capped_by_retry_after_max() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut p = policy(3, BackoffPolicy::Linear);
        let with = |code, h: &str| Attempt::Status {
            code,
            retry_after: Some(h.to_owned()),
        };
        assert_eq!(
            decide(&p, 1, &with(429, "2"), now),
            Verdict::RetryAfter(Duration::from_secs(2))
        );
        assert_eq!(
            decide(&p, 1, &with(500, "2"), now),
            Verdict::RetryAfter(Duration::from_millis(100))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(5));
        assert_eq!(
            decide(&p, 1, &with(503, &date), now),
            Verdict::RetryAfter(Duration::from_secs(5))
        );
        p.retry_after_max_ms = Some(1500);
        assert_eq!(
            decide(&p, 1, &with(429, "60"), now),
            Verdict::RetryAfter(Duration::from_millis(1500))
        );
        p.retry_after_max_ms = Some(0);
        assert_eq!(
            decide(&p, 1, &with(429, "60"), now),
            Verdict::RetryAfter(Duration::from_millis(100))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
