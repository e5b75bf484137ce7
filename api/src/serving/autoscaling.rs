//! The `autoscaling.knative.dev/*` annotations on a revision template, parsed and checked.
//!
//! Names, units and bounds follow Knative Serving's KPA documentation. The autoscaler (a later
//! issue) consumes [`AutoscalingAnnotations`]; here they are only parsed, so a bad value is
//! reported when the manifest is applied rather than when the first event arrives.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::duration::parse_go_duration;
use crate::validation::{FieldErrors, Path};

/// Prefix of every autoscaling annotation.
pub const AUTOSCALING_PREFIX: &str = "autoscaling.knative.dev/";
/// The Knative Pod Autoscaler class, the only one Ferry implements.
pub const KPA_CLASS: &str = "kpa.autoscaling.knative.dev";

/// Autoscaling settings of one revision; `None` means "use the cluster default".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AutoscalingAnnotations {
    /// `metric`: `concurrency` or `rps`.
    pub metric: Option<ScalingMetric>,
    /// `target`: desired metric value per replica.
    pub target: Option<f64>,
    /// `target-utilization-percentage`: share of the target to aim for (1–100).
    pub target_utilization_percentage: Option<f64>,
    /// `window`: stable window (6s–1h).
    pub window: Option<Duration>,
    /// `panic-window-percentage`: panic window as a share of the stable window (1–100).
    pub panic_window_percentage: Option<f64>,
    /// `panic-threshold-percentage`: load that triggers panic mode (110–1000).
    pub panic_threshold_percentage: Option<f64>,
    /// `min-scale`.
    pub min_scale: Option<u32>,
    /// `max-scale` (0 = unbounded).
    pub max_scale: Option<u32>,
    /// `initial-scale`.
    pub initial_scale: Option<u32>,
    /// `activation-scale`: replicas to start with when scaling from zero.
    pub activation_scale: Option<u32>,
    /// `scale-down-delay` (0–1h).
    pub scale_down_delay: Option<Duration>,
    /// `scale-to-zero-pod-retention-period`.
    pub scale_to_zero_pod_retention_period: Option<Duration>,
}

/// What the autoscaler measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalingMetric {
    /// In-flight requests per replica.
    Concurrency,
    /// Requests per second per replica.
    Rps,
}

impl AutoscalingAnnotations {
    /// Parses every `autoscaling.knative.dev/*` annotation in `annotations`, reporting unknown
    /// keys, unsupported classes and out-of-range values under `path`.
    pub fn parse(
        annotations: &BTreeMap<String, String>,
        path: &Path,
        errs: &mut FieldErrors,
    ) -> Self {
        let mut out = AutoscalingAnnotations::default();
        for (key, value) in annotations {
            let Some(name) = key.strip_prefix(AUTOSCALING_PREFIX) else {
                continue;
            };
            let at = path.key(key);
            match name {
                "class" => {
                    if value != KPA_CLASS {
                        errs.push(&at, format!("class `{value}` is not supported"), format!("remove it or use {KPA_CLASS}"));
                    }
                }
                "metric" => match value.as_str() {
                    "concurrency" => out.metric = Some(ScalingMetric::Concurrency),
                    "rps" => out.metric = Some(ScalingMetric::Rps),
                    _ => errs.push(&at, format!("metric `{value}` is not supported"), "use concurrency or rps"),
                },
                "target" => out.target = number(value, 0.01, f64::MAX, &at, errs),
                "target-utilization-percentage" => {
                    out.target_utilization_percentage = number(value, 1.0, 100.0, &at, errs)
                }
                "panic-window-percentage" => out.panic_window_percentage = number(value, 1.0, 100.0, &at, errs),
                "panic-threshold-percentage" => {
                    out.panic_threshold_percentage = number(value, 110.0, 1000.0, &at, errs)
                }
                "window" => {
                    out.window = duration(value, Duration::from_secs(6), Duration::from_secs(3600), &at, errs)
                }
                "scale-down-delay" => {
                    out.scale_down_delay = duration(value, Duration::ZERO, Duration::from_secs(3600), &at, errs)
                }
                "scale-to-zero-pod-retention-period" => {
                    out.scale_to_zero_pod_retention_period =
                        duration(value, Duration::ZERO, Duration::from_secs(3600), &at, errs)
                }
                "min-scale" => out.min_scale = count(value, &at, errs),
                "max-scale" => out.max_scale = count(value, &at, errs),
                "initial-scale" => out.initial_scale = count(value, &at, errs),
                "activation-scale" => {
                    out.activation_scale = count(value, &at, errs);
                    if out.activation_scale == Some(0) {
                        errs.push(&at, "must be at least 1", "set 1 or more, or remove it");
                    }
                }
                _ => errs.push(
                    &at,
                    format!("`{key}` is not an autoscaling annotation Ferry knows"),
                    "check the spelling against Knative's autoscaling docs (min-scale, max-scale, target, metric, window, …)",
                ),
            }
        }
        if let (Some(min), Some(max)) = (out.min_scale, out.max_scale)
            && max > 0
            && min > max
        {
            errs.push(
                &path.key(&format!("{AUTOSCALING_PREFIX}min-scale")),
                format!("min-scale {min} is above max-scale {max}"),
                "make min-scale at most max-scale",
            );
        }
        out
    }
}

fn number(value: &str, min: f64, max: f64, at: &Path, errs: &mut FieldErrors) -> Option<f64> {
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() && (min..=max).contains(&v) => Some(v),
        _ => {
            let range = if max == f64::MAX {
                format!("at least {min}")
            } else {
                format!("between {min} and {max}")
            };
            errs.push(
                at,
                format!("`{value}` is not a number {range}"),
                format!("set a number {range}"),
            );
            None
        }
    }
}

fn count(value: &str, at: &Path, errs: &mut FieldErrors) -> Option<u32> {
    match value.parse::<u32>() {
        Ok(v) => Some(v),
        Err(_) => {
            errs.push(
                at,
                format!("`{value}` is not a whole number ≥ 0"),
                "set a whole number such as 0, 1 or 10",
            );
            None
        }
    }
}

fn duration(
    value: &str,
    min: Duration,
    max: Duration,
    at: &Path,
    errs: &mut FieldErrors,
) -> Option<Duration> {
    match parse_go_duration(value) {
        Ok(d) if d >= min && d <= max => Some(d),
        Ok(_) => {
            errs.push(
                at,
                format!("`{value}` is out of range"),
                format!("set a duration between {min:?} and {max:?}, e.g. 60s"),
            );
            None
        }
        Err(e) => {
            errs.push(at, e.to_string(), "write a duration such as 60s or 1m30s");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> (AutoscalingAnnotations, String) {
        let map = pairs
            .iter()
            .map(|(k, v)| (format!("{AUTOSCALING_PREFIX}{k}"), v.to_string()))
            .collect();
        let mut errs = FieldErrors::default();
        let a = AutoscalingAnnotations::parse(
            &map,
            &Path::root("spec.template.metadata.annotations"),
            &mut errs,
        );
        (a, errs.to_string())
    }

    #[test]
    fn valid_annotations() {
        let (a, errs) = parse(&[
            ("min-scale", "0"),
            ("max-scale", "5"),
            ("target", "10"),
            ("metric", "concurrency"),
            ("window", "60s"),
            ("panic-window-percentage", "10"),
            ("panic-threshold-percentage", "200"),
            ("scale-down-delay", "15m"),
            ("initial-scale", "1"),
            ("class", KPA_CLASS),
        ]);
        assert_eq!(errs, "");
        assert_eq!(a.max_scale, Some(5));
        assert_eq!(a.window, Some(Duration::from_secs(60)));
        assert_eq!(a.metric, Some(ScalingMetric::Concurrency));
    }

    #[test]
    fn invalid_annotations_name_the_key() {
        let cases = [
            (
                ("min-scale", "-1"),
                "min-scale\"]: `-1` is not a whole number",
            ),
            (
                ("target", "0"),
                "target\"]: `0` is not a number at least 0.01",
            ),
            (("window", "2s"), "window\"]: `2s` is out of range"),
            (("window", "60"), "has no unit"),
            (("metric", "cpu"), "metric `cpu` is not supported"),
            (("class", "hpa.autoscaling.knative.dev"), "is not supported"),
            (
                ("minScale", "1"),
                "is not an autoscaling annotation Ferry knows",
            ),
            (
                ("panic-threshold-percentage", "100"),
                "between 110 and 1000",
            ),
        ];
        for ((k, v), want) in cases {
            let (_, errs) = parse(&[(k, v)]);
            assert!(errs.contains(want), "{k}={v}: {errs}");
        }
        let (_, errs) = parse(&[("min-scale", "5"), ("max-scale", "2")]);
        assert!(errs.contains("min-scale 5 is above max-scale 2"), "{errs}");
    }
}
