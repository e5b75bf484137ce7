//! The `autoscaling.knative.dev/*` annotations on a revision template, parsed and checked.
//!
//! Names, units and bounds follow Knative Serving's KPA documentation. The autoscaler (a later
//! issue) consumes [`AutoscalingAnnotations`]; here they are only parsed, so a bad value is
//! reported when the manifest is applied rather than when the first event arrives.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::duration::parse_go_duration;
use crate::validation::{FieldError, FieldErrors, Path};

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
    /// `target-burst-capacity`: spare capacity to keep before the activator leaves the path
    /// (`-1` = unlimited, `0` = none).
    pub target_burst_capacity: Option<f64>,
    /// `metric-aggregation-algorithm`: how the window's samples are averaged.
    pub metric_aggregation_algorithm: Option<AggregationAlgorithm>,
}

/// How samples over the stable window are averaged (`metric-aggregation-algorithm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregationAlgorithm {
    /// Every sample weighs the same (Knative's default).
    Linear,
    /// Recent samples weigh more.
    WeightedExponential,
}

/// Every annotation Knative's `autoscaling` package reads, by its kebab-case name, with the
/// older camelCase spelling Knative still reads (`kmap.KeyPriority`: the kebab-case key wins
/// when both are set).
pub const KEYS: &[(&str, Option<&str>)] = &[
    ("class", None),
    ("metric", None),
    ("target", None),
    (
        "target-utilization-percentage",
        Some("targetUtilizationPercentage"),
    ),
    ("target-burst-capacity", Some("targetBurstCapacity")),
    ("window", None),
    ("panic-window-percentage", Some("panicWindowPercentage")),
    (
        "panic-threshold-percentage",
        Some("panicThresholdPercentage"),
    ),
    ("min-scale", Some("minScale")),
    ("max-scale", Some("maxScale")),
    ("initial-scale", Some("initialScale")),
    ("activation-scale", Some("activationScale")),
    ("scale-down-delay", Some("scaleDownDelay")),
    (
        "scale-to-zero-pod-retention-period",
        Some("scaleToZeroPodRetentionPeriod"),
    ),
    (
        "metric-aggregation-algorithm",
        Some("metricAggregationAlgorithm"),
    ),
];

/// The kebab-case name of an autoscaling annotation (without the prefix), for either spelling;
/// `None` for a key Knative does not read.
pub fn canonical_key(name: &str) -> Option<&'static str> {
    KEYS.iter()
        .find(|(kebab, camel)| *kebab == name || *camel == Some(name))
        .map(|(kebab, _)| *kebab)
}

/// `metric-aggregation-algorithm`: `linear` or `weighted-exponential` (Knative also reads
/// `weightedExponential`).
fn algorithm(value: &str, at: &Path, errs: &mut FieldErrors) -> Option<AggregationAlgorithm> {
    match value {
        "linear" => Some(AggregationAlgorithm::Linear),
        "weighted-exponential" | "weightedExponential" => {
            Some(AggregationAlgorithm::WeightedExponential)
        }
        _ => {
            errs.push(
                at,
                format!("algorithm `{value}` is not one Knative knows"),
                "use linear or weighted-exponential",
            );
            None
        }
    }
}

/// Whether the annotations leave the revision to the Knative Pod Autoscaler (no class, or
/// the KPA class), the only autoscaler Ferry runs.
fn is_kpa(annotations: &BTreeMap<String, String>) -> bool {
    annotations
        .get(&format!("{AUTOSCALING_PREFIX}class"))
        .is_none_or(|c| c == KPA_CLASS)
}

/// An autoscaler class other than KPA (e.g. `hpa.autoscaling.knative.dev`, which scales on
/// CPU or memory): valid in Knative, not run by Ferry.
pub fn unsupported_class(
    annotations: &BTreeMap<String, String>,
    path: &Path,
    out: &mut Vec<FieldError>,
) {
    let key = format!("{AUTOSCALING_PREFIX}class");
    if let Some(class) = annotations.get(&key)
        && class != KPA_CLASS
    {
        crate::validation::unsupported(
            out,
            &path.key(&key),
            &format!(
                "Ferry's autoscaler is Knative's KPA; class `{class}` is not run: remove the annotation or use {KPA_CLASS}"
            ),
        );
    }
}

/// Autoscaling annotations Knative does not read: warnings, not errors (Knative ignores them
/// too), so a typo is pointed out without refusing the manifest.
pub fn unknown_keys(annotations: &BTreeMap<String, String>, path: &Path) -> Vec<FieldError> {
    annotations
        .keys()
        .filter_map(|key| {
            let name = key.strip_prefix(AUTOSCALING_PREFIX)?;
            canonical_key(name).is_none().then(|| FieldError {
                path: path.key(key).to_string(),
                message: format!("`{key}` is not an autoscaling annotation Knative reads; it is ignored"),
                fix: "check the spelling against Knative's autoscaling docs (min-scale, max-scale, target, metric, window, …)".to_owned(),
            })
        })
        .collect()
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
        // Kebab-case first, so it wins over the camelCase spelling of the same setting.
        let mut entries: Vec<(&'static str, &String, &String)> = annotations
            .iter()
            .filter_map(|(key, value)| {
                let name = key.strip_prefix(AUTOSCALING_PREFIX)?;
                Some((canonical_key(name)?, key, value))
            })
            .collect();
        entries.sort_by_key(|(name, key, _)| (*name, !key.ends_with(name)));
        entries.dedup_by_key(|(name, _, _)| *name);
        for (name, key, value) in entries {
            let at = path.key(key);
            match name {
                // Another class (Knative's HPA, a custom autoscaler) is valid Knative that
                // Ferry does not run: reported by `unsupported_class`, its metrics unchecked.
                "metric" if !is_kpa(annotations) => {}
                "metric" => match value.as_str() {
                    "concurrency" => out.metric = Some(ScalingMetric::Concurrency),
                    "rps" => out.metric = Some(ScalingMetric::Rps),
                    _ => errs.push(
                        &at,
                        format!("metric `{value}` is not supported"),
                        "use concurrency or rps",
                    ),
                },
                "target" => out.target = number(value, 0.01, f64::MAX, &at, errs),
                "target-utilization-percentage" => {
                    out.target_utilization_percentage = number(value, 1.0, 100.0, &at, errs)
                }
                "panic-window-percentage" => {
                    out.panic_window_percentage = number(value, 1.0, 100.0, &at, errs)
                }
                "panic-threshold-percentage" => {
                    out.panic_threshold_percentage = number(value, 110.0, 1000.0, &at, errs)
                }
                "window" => {
                    out.window = duration(
                        value,
                        Duration::from_secs(6),
                        Duration::from_secs(3600),
                        &at,
                        errs,
                    )
                }
                "scale-down-delay" => {
                    out.scale_down_delay =
                        duration(value, Duration::ZERO, Duration::from_secs(3600), &at, errs)
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
                "target-burst-capacity" => {
                    out.target_burst_capacity = match value.parse::<f64>() {
                        Ok(v) if v.is_finite() && (v >= 0.0 || v == -1.0) => Some(v),
                        _ => {
                            errs.push(
                                &at,
                                format!("`{value}` is not a number ≥ 0 or -1"),
                                "set 0 or more, or -1 for unlimited",
                            );
                            None
                        }
                    }
                }
                "metric-aggregation-algorithm" => {
                    out.metric_aggregation_algorithm = algorithm(value, &at, errs);
                }
                // The KPA class; unknown keys are warnings (`unknown_keys`) and never get here.
                _ => {}
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
            (("minScale", "x"), "minScale\"]: `x` is not a whole number"),
            (("target-burst-capacity", "-2"), "is not a number ≥ 0 or -1"),
            (
                ("metric-aggregation-algorithm", "median"),
                "algorithm `median`",
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
        let (_, errs) = parse(&[("minScale", "5"), ("maxScale", "2")]);
        assert!(errs.contains("min-scale 5 is above max-scale 2"), "{errs}");
    }

    #[test]
    fn camel_case_keys_mean_the_same_and_kebab_case_wins() {
        let (a, errs) = parse(&[
            ("minScale", "1"),
            ("maxScale", "3"),
            ("initialScale", "2"),
            ("targetBurstCapacity", "-1"),
            ("panicWindowPercentage", "20"),
            ("panicThresholdPercentage", "150"),
            ("targetUtilizationPercentage", "70"),
            ("scaleDownDelay", "30s"),
            ("activationScale", "2"),
            ("metricAggregationAlgorithm", "weightedExponential"),
        ]);
        assert_eq!(errs, "");
        assert_eq!(
            (a.min_scale, a.max_scale, a.initial_scale),
            (Some(1), Some(3), Some(2))
        );
        assert_eq!(a.target_burst_capacity, Some(-1.0));
        assert_eq!(
            (a.panic_window_percentage, a.panic_threshold_percentage),
            (Some(20.0), Some(150.0))
        );
        assert_eq!(a.target_utilization_percentage, Some(70.0));
        assert_eq!(a.scale_down_delay, Some(Duration::from_secs(30)));
        assert_eq!(a.activation_scale, Some(2));
        assert_eq!(
            a.metric_aggregation_algorithm,
            Some(AggregationAlgorithm::WeightedExponential)
        );

        let (a, errs) = parse(&[
            ("min-scale", "4"),
            ("minScale", "1"),
            ("target-burst-capacity", "0"),
        ]);
        assert_eq!(errs, "");
        assert_eq!((a.min_scale, a.target_burst_capacity), (Some(4), Some(0.0)));
    }

    #[test]
    fn unknown_keys_are_warnings() {
        let map: BTreeMap<String, String> = [
            (format!("{AUTOSCALING_PREFIX}minscale"), "1".to_owned()),
            (format!("{AUTOSCALING_PREFIX}min-scale"), "1".to_owned()),
            ("example.com/x".to_owned(), "1".to_owned()),
        ]
        .into();
        let path = Path::root("spec.template.metadata.annotations");
        let mut errs = FieldErrors::default();
        AutoscalingAnnotations::parse(&map, &path, &mut errs);
        assert!(errs.is_empty(), "{errs}");
        let warnings = unknown_keys(&map, &path);
        assert_eq!(warnings.len(), 1);
        assert_eq!(
            warnings[0].path,
            "spec.template.metadata.annotations[\"autoscaling.knative.dev/minscale\"]"
        );
    }
}
