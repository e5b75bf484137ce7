//! The delivery spec: retries, backoff, timeouts and the dead-letter sink (Knative
//! `eventingduckv1.DeliverySpec`), shared by Broker, Trigger, KafkaChannel, Subscription and
//! KafkaSource.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Destination;
use crate::duration::parse_duration;
use crate::validation::{FieldErrors, Path};

/// How the delay between retries grows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackoffPolicy {
    /// `backoffDelay × attempt`.
    Linear,
    /// `backoffDelay × 2^attempt` (Knative's default).
    Exponential,
}

/// How an event is put on the wire when delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryFormat {
    /// Structured mode: the whole event as `application/cloudevents+json`.
    Json,
    /// Binary mode: attributes as `ce-` headers, data as the body.
    Binary,
}

/// How hard to try to deliver an event, and where it goes when that fails.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliverySpec {
    /// Where events go after the last retry fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink: Option<Destination>,
    /// Retries after the first attempt (Knative: "the minimum number of retries").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub retry: Option<i32>,
    /// Per-attempt timeout, ISO-8601 (e.g. `PT30S`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// `linear` or `exponential`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_policy: Option<BackoffPolicy>,
    /// Base delay between retries, ISO-8601 (e.g. `PT0.2S`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_delay: Option<String>,
    /// Upper bound for a single backoff delay, ISO-8601. A Ferry extension of Knative's spec:
    /// exponential backoff without a cap grows past any useful wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_max: Option<String>,
    /// Upper bound for waits a subscriber requests with `Retry-After`, ISO-8601.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_max: Option<String>,
    /// `json` (structured) or `binary`; unset means binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<DeliveryFormat>,
}

/// The resolved dead-letter sink a resource reports (Knative `DeliveryStatus`), inlined.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStatus {
    /// Resolved URL of the dead-letter sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink_uri: Option<String>,
    /// CA certificates of the dead-letter sink.
    #[serde(
        default,
        rename = "deadLetterSinkCACerts",
        skip_serializing_if = "Option::is_none"
    )]
    pub dead_letter_sink_ca_certs: Option<String>,
    /// OIDC audience of the dead-letter sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink_audience: Option<String>,
}

impl DeliverySpec {
    /// Checks Knative's delivery rules: a valid dead-letter sink, `retry ≥ 0`, durations that
    /// parse (a zero `timeout` is rejected, as in Knative), and `backoffMax ≥ backoffDelay`.
    pub fn validate(&self, path: &Path, errs: &mut FieldErrors) {
        if let Some(dls) = &self.dead_letter_sink {
            dls.validate(&path.field("deadLetterSink"), errs);
        }
        if let Some(retry) = self.retry
            && retry < 0
        {
            errs.push(
                &path.field("retry"),
                format!("must be 0 or more (got {retry})"),
                "set the number of retries after the first attempt, e.g. 3",
            );
        }
        let timeout = duration_field(&self.timeout, &path.field("timeout"), errs);
        if timeout == Some(Duration::ZERO) {
            errs.push(
                &path.field("timeout"),
                "must be longer than zero",
                "set a per-attempt timeout such as PT30S, or remove the field",
            );
        }
        let delay = duration_field(&self.backoff_delay, &path.field("backoffDelay"), errs);
        let max = duration_field(&self.backoff_max, &path.field("backoffMax"), errs);
        duration_field(&self.retry_after_max, &path.field("retryAfterMax"), errs);
        if let (Some(delay), Some(max)) = (delay, max)
            && max < delay
        {
            errs.push(
                &path.field("backoffMax"),
                "is shorter than backoffDelay",
                "make backoffMax at least backoffDelay, or remove it",
            );
        }
    }
}

/// Parses an optional ISO-8601 field, recording an error at `path` when it does not parse.
pub(crate) fn duration_field(
    value: &Option<String>,
    path: &Path,
    errs: &mut FieldErrors,
) -> Option<Duration> {
    let text = value.as_deref()?;
    match parse_duration(text) {
        Ok(d) => Some(d),
        Err(e) => {
            errs.push(path, e.to_string(), "write an ISO-8601 duration");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(spec: &DeliverySpec) -> String {
        let mut errs = FieldErrors::default();
        spec.validate(&Path::root("spec.delivery"), &mut errs);
        errs.to_string()
    }

    #[test]
    fn valid_spec_passes() {
        let spec: DeliverySpec = serde_json::from_value(serde_json::json!({
            "deadLetterSink": {"uri": "http://dls"},
            "retry": 5,
            "backoffPolicy": "exponential",
            "backoffDelay": "PT0.2S",
            "backoffMax": "PT10S",
            "timeout": "PT30S",
            "retryAfterMax": "PT60S",
            "format": "json"
        }))
        .expect("parses");
        assert_eq!(errors(&spec), "");
        assert_eq!(spec.format, Some(DeliveryFormat::Json));
    }

    #[test]
    fn each_rule_names_its_field() {
        let cases: [(DeliverySpec, &str); 6] = [
            (
                DeliverySpec {
                    retry: Some(-1),
                    ..Default::default()
                },
                "spec.delivery.retry: must be 0 or more (got -1)",
            ),
            (
                DeliverySpec {
                    timeout: Some("PT0S".into()),
                    ..Default::default()
                },
                "spec.delivery.timeout: must be longer than zero",
            ),
            (
                DeliverySpec {
                    backoff_delay: Some("2s".into()),
                    ..Default::default()
                },
                "spec.delivery.backoffDelay: `2s` is not an ISO-8601 duration",
            ),
            (
                DeliverySpec {
                    retry_after_max: Some("P1M".into()),
                    ..Default::default()
                },
                "spec.delivery.retryAfterMax: `P1M`",
            ),
            (
                DeliverySpec {
                    backoff_delay: Some("PT2S".into()),
                    backoff_max: Some("PT1S".into()),
                    ..Default::default()
                },
                "spec.delivery.backoffMax: is shorter than backoffDelay",
            ),
            (
                DeliverySpec {
                    dead_letter_sink: Some(Destination::default()),
                    ..Default::default()
                },
                "spec.delivery.deadLetterSink: a destination needs",
            ),
        ];
        for (spec, want) in cases {
            let got = errors(&spec);
            assert!(got.contains(want), "want {want:?} in {got:?}");
        }
    }

    #[test]
    fn unknown_backoff_policy_is_rejected_at_parse() {
        let err =
            serde_json::from_value::<DeliverySpec>(serde_json::json!({"backoffPolicy": "random"}))
                .expect_err("random is not a policy")
                .to_string();
        assert!(
            err.contains("linear") && err.contains("exponential"),
            "{err}"
        );
    }
}
