//! Knative's KPA scaling decision as a pure, deterministic state machine.
//!
//! Three layers, as in Knative Serving:
//!
//! - [`Settings`] are the cluster defaults, the data of Knative's `config-autoscaler` ConfigMap.
//! - [`RevisionScaling`] resolves one revision's parameters from the settings, its
//!   `autoscaling.knative.dev/*` annotations and its `containerConcurrency` (Knative's
//!   `MakeDecider` and `ResolveMetricTarget`).
//! - [`Autoscaler`] is the per-revision decider. The caller feeds it one [`Sample`] per tick
//!   ([`Autoscaler::record`]), a demand signal for requests held while the revision is at zero
//!   ([`Autoscaler::record_demand`]), and asks for a [`Decision`] ([`Autoscaler::decide`]).
//!
//! A decision runs the steps of Knative's `autoscaler.Scale` followed by the KPA reconciler's
//! `scaler.scale`:
//!
//! 1. averages of the metric over the stable and the panic window (no samples in the stable
//!    window: keep the previous decision, as Knative keeps the scale when it has no data);
//! 2. `ceil(average / target)` for each window, limited to
//!    `[floor(ready / max-scale-down-rate), ceil(ready × max-scale-up-rate)]`;
//! 3. panic mode: entered when the panic count is at least `panic-threshold-percentage` of the
//!    ready replicas, left one stable window after the last tick over the threshold; while
//!    panicking the decision never goes down;
//! 4. scale-down delay: the largest decision of the last `scale-down-delay`;
//! 5. demand at zero and `activation-scale`: a non-zero decision is at least the activation
//!    scale, and a held request asks for at least one replica;
//! 6. bounds: `min-scale` (raised to `initial-scale` until that many replicas were ready) and
//!    `max-scale` (0 = unbounded);
//! 7. scale to zero: only with `enable-scale-to-zero`, after a whole stable window without
//!    traffic or demand, and then `max(scale-to-zero-grace-period,
//!    scale-to-zero-pod-retention-period)` more; until then the revision keeps one replica.
//!
//! Time is a caller-supplied millisecond clock (`now_ms`); nothing here reads the system clock,
//! so the same calls always give the same decisions.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::duration::parse_go_duration;
use crate::serving::autoscaling::{AutoscalingAnnotations, ScalingMetric};
use crate::{Error, Result};

#[cfg(test)]
mod tests;

/// Smallest target per replica Knative accepts (`autoscaling.TargetMin`).
const TARGET_MIN: f64 = 0.01;
/// Knative's target utilization for the `rps` metric (not a ConfigMap key).
const RPS_TARGET_UTILIZATION_PERCENTAGE: f64 = 70.0;

/// Cluster-wide autoscaler defaults: the keys of Knative's `config-autoscaler` ConfigMap.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// `container-concurrency-target-default`: concurrency per replica when the revision sets
    /// neither `containerConcurrency` nor a `target` annotation.
    pub container_concurrency_target_default: f64,
    /// `container-concurrency-target-percentage`: share of the concurrency target to aim for.
    pub container_concurrency_target_percentage: f64,
    /// `requests-per-second-target-default`: requests per second per replica for `metric: rps`.
    pub requests_per_second_target_default: f64,
    /// `stable-window`.
    pub stable_window: Duration,
    /// `panic-window-percentage`: panic window as a percentage of the stable window.
    pub panic_window_percentage: f64,
    /// `panic-threshold-percentage`: load, as a percentage of what the ready replicas handle,
    /// that starts panic mode.
    pub panic_threshold_percentage: f64,
    /// `max-scale-up-rate`: a decision is at most `ceil(rate × ready replicas)`.
    pub max_scale_up_rate: f64,
    /// `max-scale-down-rate`: a decision is at least `floor(ready replicas / rate)`.
    pub max_scale_down_rate: f64,
    /// `enable-scale-to-zero`.
    pub enable_scale_to_zero: bool,
    /// `scale-to-zero-grace-period`: how long an idle revision keeps its last replica.
    pub scale_to_zero_grace_period: Duration,
    /// `scale-to-zero-pod-retention-period`: minimum time the last replica stays once idle.
    pub scale_to_zero_pod_retention_period: Duration,
    /// `initial-scale`: replicas a new revision starts with.
    pub initial_scale: u32,
    /// `allow-zero-initial-scale`: whether `initial-scale` (setting or annotation) may be 0.
    pub allow_zero_initial_scale: bool,
    /// `min-scale`.
    pub min_scale: u32,
    /// `max-scale` (0 = unbounded).
    pub max_scale: u32,
    /// `scale-down-delay`: how long a lower decision must persist before it applies.
    pub scale_down_delay: Duration,
    /// `activation-scale`: least non-zero decision. Knative only has the annotation; Ferry also
    /// reads it from the ConfigMap.
    pub activation_scale: u32,
    /// Sampling period of the metric collector (Knative's fixed 2 s tick; not a ConfigMap key).
    /// Converts a sample's completed requests to requests per second, and is the shortest
    /// panic window.
    pub tick_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            container_concurrency_target_default: 100.0,
            container_concurrency_target_percentage: 70.0,
            requests_per_second_target_default: 200.0,
            stable_window: Duration::from_secs(60),
            panic_window_percentage: 10.0,
            panic_threshold_percentage: 200.0,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            enable_scale_to_zero: true,
            scale_to_zero_grace_period: Duration::from_secs(30),
            scale_to_zero_pod_retention_period: Duration::ZERO,
            initial_scale: 1,
            allow_zero_initial_scale: false,
            min_scale: 0,
            max_scale: 0,
            scale_down_delay: Duration::ZERO,
            activation_scale: 1,
            tick_interval: Duration::from_secs(2),
        }
    }
}

impl Settings {
    /// Parses the data of a `config-autoscaler` ConfigMap over [`Settings::default`], then
    /// [validates](Settings::validate) the result. Keys Ferry does not use (such as
    /// `target-burst-capacity` or `_example`) are ignored, as Knative ignores unknown keys.
    ///
    /// `container-concurrency-target-percentage` accepts a fraction in (0, 1] as Knative does
    /// for legacy reasons: `0.7` means 70 %.
    ///
    /// # Errors
    /// A value that does not parse or is out of range; the message names the key and the fix.
    pub fn from_config_map(data: &BTreeMap<String, String>) -> Result<Settings> {
        let mut s = Settings::default();
        let get = |key: &'static str| data.get(key).map(|v| (key, v.trim()));
        if let Some((k, v)) = get("container-concurrency-target-default") {
            s.container_concurrency_target_default = number(k, v)?;
        }
        if let Some((k, v)) = get("container-concurrency-target-percentage") {
            let p = number(k, v)?;
            s.container_concurrency_target_percentage = if p <= 1.0 { p * 100.0 } else { p };
        }
        if let Some((k, v)) = get("requests-per-second-target-default") {
            s.requests_per_second_target_default = number(k, v)?;
        }
        if let Some((k, v)) = get("panic-window-percentage") {
            s.panic_window_percentage = number(k, v)?;
        }
        if let Some((k, v)) = get("panic-threshold-percentage") {
            s.panic_threshold_percentage = number(k, v)?;
        }
        if let Some((k, v)) = get("max-scale-up-rate") {
            s.max_scale_up_rate = number(k, v)?;
        }
        if let Some((k, v)) = get("max-scale-down-rate") {
            s.max_scale_down_rate = number(k, v)?;
        }
        if let Some((k, v)) = get("stable-window") {
            s.stable_window = duration(k, v)?;
        }
        if let Some((k, v)) = get("scale-to-zero-grace-period") {
            s.scale_to_zero_grace_period = duration(k, v)?;
        }
        if let Some((k, v)) = get("scale-to-zero-pod-retention-period") {
            s.scale_to_zero_pod_retention_period = duration(k, v)?;
        }
        if let Some((k, v)) = get("scale-down-delay") {
            s.scale_down_delay = duration(k, v)?;
        }
        if let Some((k, v)) = get("enable-scale-to-zero") {
            s.enable_scale_to_zero = boolean(k, v)?;
        }
        if let Some((k, v)) = get("allow-zero-initial-scale") {
            s.allow_zero_initial_scale = boolean(k, v)?;
        }
        if let Some((k, v)) = get("initial-scale") {
            s.initial_scale = count(k, v)?;
        }
        if let Some((k, v)) = get("min-scale") {
            s.min_scale = count(k, v)?;
        }
        if let Some((k, v)) = get("max-scale") {
            s.max_scale = count(k, v)?;
        }
        if let Some((k, v)) = get("activation-scale") {
            s.activation_scale = count(k, v)?;
        }
        s.validate()?;
        Ok(s)
    }

    /// Checks the ranges Knative's `config-autoscaler` validation enforces (and that
    /// `panic-threshold-percentage` is within the annotation's 110–1000 and `activation-scale`
    /// is at least 1).
    ///
    /// # Errors
    /// The first out-of-range value, naming its key and the fix.
    pub fn validate(&self) -> Result<()> {
        let mut checks = (self.target_checks().into_iter())
            .chain(self.window_checks())
            .chain(self.scale_checks());
        match checks.find(|(ok, ..)| !ok) {
            None => Ok(()),
            Some((_, key, problem, fix)) => Err(Error::AutoscalerSetting { key, problem, fix }),
        }
    }

    /// The targets per replica: concurrency (with its percentage) and requests per second.
    fn target_checks(&self) -> [Check; 3] {
        let cc_pct = self.container_concurrency_target_percentage;
        let cc_target = self.container_concurrency_target_default * cc_pct / 100.0;
        [
            (
                cc_pct > 0.0 && cc_pct <= 100.0,
                "container-concurrency-target-percentage",
                format!("{cc_pct} is outside (0, 100]"),
                "set a percentage such as 70",
            ),
            (
                cc_target >= TARGET_MIN,
                "container-concurrency-target-default",
                format!(
                    "with the target percentage it gives a target of {cc_target}, below {TARGET_MIN}"
                ),
                "raise container-concurrency-target-default or container-concurrency-target-percentage",
            ),
            (
                self.requests_per_second_target_default >= TARGET_MIN,
                "requests-per-second-target-default",
                format!(
                    "{} is below {TARGET_MIN}",
                    self.requests_per_second_target_default
                ),
                "set a positive rate such as 200",
            ),
        ]
    }

    /// The windows averaged over, when to panic, and how fast to scale up and down.
    fn window_checks(&self) -> [Check; 5] {
        [
            (
                (Duration::from_secs(6)..=Duration::from_secs(3600)).contains(&self.stable_window)
                    && whole_secs(self.stable_window),
                "stable-window",
                format!(
                    "{:?} is not a whole number of seconds in [6s, 1h]",
                    self.stable_window
                ),
                "set a duration such as 60s",
            ),
            (
                (1.0..=100.0).contains(&self.panic_window_percentage),
                "panic-window-percentage",
                format!("{} is outside [1, 100]", self.panic_window_percentage),
                "set a percentage such as 10",
            ),
            (
                (110.0..=1000.0).contains(&self.panic_threshold_percentage),
                "panic-threshold-percentage",
                format!("{} is outside [110, 1000]", self.panic_threshold_percentage),
                "set a percentage such as 200",
            ),
            (
                self.max_scale_up_rate > 1.0,
                "max-scale-up-rate",
                format!("{} is not greater than 1", self.max_scale_up_rate),
                "set a rate above 1 such as 1000",
            ),
            (
                self.max_scale_down_rate > 1.0,
                "max-scale-down-rate",
                format!("{} is not greater than 1", self.max_scale_down_rate),
                "set a rate above 1 such as 2",
            ),
        ]
    }

    /// Scaling to and from zero, the replica bounds, and the tick.
    fn scale_checks(&self) -> [Check; 6] {
        [
            (
                !self.scale_to_zero_grace_period.is_zero(),
                "scale-to-zero-grace-period",
                "must be positive".to_owned(),
                "set a duration such as 30s",
            ),
            (
                whole_secs(self.scale_down_delay),
                "scale-down-delay",
                format!(
                    "{:?} is not a whole number of seconds",
                    self.scale_down_delay
                ),
                "set a duration such as 0s or 15m",
            ),
            (
                self.initial_scale > 0 || self.allow_zero_initial_scale,
                "initial-scale",
                "0 needs allow-zero-initial-scale: \"true\"".to_owned(),
                "set initial-scale to 1 or more, or allow-zero-initial-scale to \"true\"",
            ),
            (
                self.max_scale == 0 || self.min_scale <= self.max_scale,
                "min-scale",
                format!("{} is above max-scale {}", self.min_scale, self.max_scale),
                "make min-scale at most max-scale, or set max-scale to 0 (unbounded)",
            ),
            (
                self.activation_scale >= 1,
                "activation-scale",
                "must be at least 1".to_owned(),
                "set 1 or more",
            ),
            (
                !self.tick_interval.is_zero(),
                "tick_interval",
                "must be positive".to_owned(),
                "set it to the collector's sampling period, e.g. 2s",
            ),
        ]
    }
}

/// One range check of [`Settings::validate`]: whether the value is in range, its key, what is
/// wrong with it and the fix.
type Check = (bool, &'static str, String, &'static str);

fn whole_secs(d: Duration) -> bool {
    d.subsec_nanos() == 0
}

/// The error of a `config-autoscaler` value that does not parse.
fn unparsed(key: &'static str, problem: String, fix: &'static str) -> Error {
    Error::AutoscalerSetting { key, problem, fix }
}

fn number(key: &'static str, value: &str) -> Result<f64> {
    value
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| {
            unparsed(
                key,
                format!("`{value}` is not a number"),
                "write a number such as 70 or 2.5",
            )
        })
}

fn count(key: &'static str, value: &str) -> Result<u32> {
    value.parse::<u32>().map_err(|_| {
        unparsed(
            key,
            format!("`{value}` is not a whole number ≥ 0"),
            "write e.g. 0, 1 or 10",
        )
    })
}

fn boolean(key: &'static str, value: &str) -> Result<bool> {
    // Go's strconv.ParseBool, which Knative's ConfigMap parser uses.
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(unparsed(
            key,
            format!("`{value}` is not a boolean"),
            "write \"true\" or \"false\"",
        )),
    }
}

/// A Go duration (`30s`, `1m30s`), as Knative's `config-autoscaler` writes them.
fn duration(key: &'static str, value: &str) -> Result<Duration> {
    parse_go_duration(value).map_err(|e| {
        unparsed(
            key,
            format!("`{value}` is not a duration ({})", e.reason),
            "write e.g. 30s, 1m or 1m30s",
        )
    })
}

/// One revision's effective autoscaling parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct RevisionScaling {
    /// The metric scaled on.
    pub metric: ScalingMetric,
    /// Metric value one replica may carry (Knative's `TotalValue`): the `target` annotation
    /// (capped by `containerConcurrency` for concurrency), else `containerConcurrency`, else the
    /// default target.
    pub total_target: f64,
    /// Utilization percentage applied to [`total_target`](Self::total_target).
    pub target_utilization_percentage: f64,
    /// Metric value per replica used for scaling (Knative's `TargetValue`):
    /// `total_target × utilization / 100`, at least 0.01.
    pub target: f64,
    /// Stable window.
    pub stable_window: Duration,
    /// Panic window: stable window × panic-window-percentage, rounded to whole seconds, at least
    /// one second and one tick.
    pub panic_window: Duration,
    /// Panic threshold, percent of what the ready replicas handle.
    pub panic_threshold_percentage: f64,
    /// Lower bound.
    pub min_scale: u32,
    /// Upper bound (0 = unbounded).
    pub max_scale: u32,
    /// Replicas to start with.
    pub initial_scale: u32,
    /// Least non-zero decision (at least 1).
    pub activation_scale: u32,
    /// Scale-down delay.
    pub scale_down_delay: Duration,
    /// Maximum scale-up rate.
    pub max_scale_up_rate: f64,
    /// Maximum scale-down rate.
    pub max_scale_down_rate: f64,
    /// Whether the revision may scale to zero (the cluster switch).
    pub enable_scale_to_zero: bool,
    /// Scale-to-zero grace period.
    pub scale_to_zero_grace_period: Duration,
    /// Scale-to-zero pod retention period.
    pub scale_to_zero_pod_retention_period: Duration,
    /// Collector sampling period.
    pub tick_interval: Duration,
}

impl RevisionScaling {
    /// Resolves a revision's parameters: annotations override settings, and the target
    /// follows Knative's `ResolveMetricTarget`. If `min-scale` is above a non-zero
    /// `max-scale` (possible when one comes from the settings and the other from an
    /// annotation), `min-scale` is lowered to `max-scale`.
    pub fn resolve(
        settings: &Settings,
        annotations: &AutoscalingAnnotations,
        container_concurrency: Option<i64>,
    ) -> RevisionScaling {
        let a = annotations;
        let metric = a.metric.unwrap_or(ScalingMetric::Concurrency);
        let cc = container_concurrency.filter(|&c| c > 0).map(|c| c as f64);
        let (total_target, default_utilization) = match metric {
            ScalingMetric::Rps => (
                a.target
                    .unwrap_or(settings.requests_per_second_target_default),
                RPS_TARGET_UTILIZATION_PERCENTAGE,
            ),
            ScalingMetric::Concurrency => {
                let total = match (a.target, cc) {
                    (Some(target), Some(cc)) => target.min(cc),
                    (Some(target), None) => target,
                    (None, Some(cc)) => cc,
                    (None, None) => settings.container_concurrency_target_default,
                };
                (total, settings.container_concurrency_target_percentage)
            }
        };
        let utilization = a
            .target_utilization_percentage
            .unwrap_or(default_utilization);
        let target = (total_target * utilization / 100.0).max(TARGET_MIN);

        let stable_window = a.window.unwrap_or(settings.stable_window);
        let panic_pct = a
            .panic_window_percentage
            .unwrap_or(settings.panic_window_percentage);
        let panic_secs = (stable_window.as_secs_f64() * panic_pct / 100.0).round();
        let panic_window = if panic_secs.is_finite() && panic_secs > 0.0 {
            Duration::from_secs(panic_secs as u64)
        } else {
            Duration::ZERO
        }
        .max(Duration::from_secs(1))
        .max(settings.tick_interval);

        let max_scale = a.max_scale.unwrap_or(settings.max_scale);
        let mut min_scale = a.min_scale.unwrap_or(settings.min_scale);
        if max_scale > 0 {
            min_scale = min_scale.min(max_scale);
        }
        let initial_scale = a
            .initial_scale
            .filter(|&s| s > 0 || settings.allow_zero_initial_scale)
            .unwrap_or(settings.initial_scale);

        RevisionScaling {
            metric,
            total_target,
            target_utilization_percentage: utilization,
            target,
            stable_window,
            panic_window,
            panic_threshold_percentage: a
                .panic_threshold_percentage
                .unwrap_or(settings.panic_threshold_percentage),
            min_scale,
            max_scale,
            initial_scale,
            activation_scale: a
                .activation_scale
                .unwrap_or(settings.activation_scale)
                .max(1),
            scale_down_delay: a.scale_down_delay.unwrap_or(settings.scale_down_delay),
            max_scale_up_rate: settings.max_scale_up_rate,
            max_scale_down_rate: settings.max_scale_down_rate,
            enable_scale_to_zero: settings.enable_scale_to_zero,
            scale_to_zero_grace_period: settings.scale_to_zero_grace_period,
            scale_to_zero_pod_retention_period: a
                .scale_to_zero_pod_retention_period
                .unwrap_or(settings.scale_to_zero_pod_retention_period),
            tick_interval: settings.tick_interval,
        }
    }
}

/// What the collector observed for a revision during one tick.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    /// In-flight requests of the whole revision (summed over its replicas), averaged over the
    /// tick — Knative's `AverageConcurrentRequests` summed over pods.
    pub concurrency: f64,
    /// Requests the revision completed during the tick; divided by the tick interval for `rps`.
    pub requests: f64,
    /// Replicas ready when the sample was taken. Kept for the record only: the decision uses
    /// the ready count passed to [`Autoscaler::decide`], as Knative reads it at decision time.
    pub ready_replicas: u32,
}

/// Which rule settled a [`Decision`] (the last one that changed the value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// No sample yet, or not yet `initial-scale` ready replicas: the initial scale.
    InitialScale,
    /// No sample in the stable window: the previous decision is kept.
    NoData,
    /// `ceil(stable average / target)`.
    Stable,
    /// Panic mode: the larger of the stable and panic counts, never lower than before.
    Panic,
    /// Limited by `max-scale-up-rate`.
    MaxScaleUpRate,
    /// Limited by `max-scale-down-rate`.
    MaxScaleDownRate,
    /// Held by `scale-down-delay`.
    ScaleDownDelay,
    /// Raised to `activation-scale`, or to one replica for a request held at zero.
    Activation,
    /// Raised to `min-scale`.
    MinScale,
    /// Lowered to `max-scale`.
    MaxScale,
    /// Would be zero, but one replica stays until a stable window without traffic and then the
    /// grace period (and pod retention period) have passed.
    ScaleToZeroGrace,
    /// Would be zero, but `enable-scale-to-zero` is off.
    ScaleToZeroDisabled,
    /// Scaled to zero (or stays there).
    ScaleToZero,
}

/// The desired replica count and why.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    /// Replicas the revision should have.
    pub desired: u32,
    /// Whether the autoscaler is in panic mode.
    pub panicking: bool,
    /// The rule that settled `desired`.
    pub reason: Reason,
    /// Average of the metric over the stable window (`None`: no data).
    pub stable_value: Option<f64>,
    /// Average of the metric over the panic window (`None`: no data).
    pub panic_value: Option<f64>,
}

#[derive(Clone, Debug, PartialEq)]
struct PanicState {
    since_ms: u64,
    last_over_threshold_ms: u64,
    max_pods: u32,
}

/// The per-revision decider: samples, panic state and delay window, all plain data.
#[derive(Clone, Debug, PartialEq)]
pub struct Autoscaler {
    scaling: RevisionScaling,
    /// Samples of the last stable window, by time.
    samples: Vec<(u64, Sample)>,
    seen_sample: bool,
    /// Last time with traffic or demand; the first call counts as activity.
    last_activity_ms: Option<u64>,
    last_demand_ms: Option<u64>,
    panic: Option<PanicState>,
    /// Decisions of the last `scale-down-delay`, by time.
    delay_window: Vec<(u64, u32)>,
    /// When the decision first became zero after a quiet stable window.
    idle_since_ms: Option<u64>,
    /// Whether `initial-scale` replicas have been ready.
    initialized: bool,
    last_desired: Option<u32>,
}

impl Autoscaler {
    /// A decider with no history.
    pub fn new(scaling: RevisionScaling) -> Autoscaler {
        Autoscaler {
            scaling,
            samples: Vec::new(),
            seen_sample: false,
            last_activity_ms: None,
            last_demand_ms: None,
            panic: None,
            delay_window: Vec::new(),
            idle_since_ms: None,
            initialized: false,
            last_desired: None,
        }
    }

    /// The parameters this decider runs with.
    pub fn scaling(&self) -> &RevisionScaling {
        &self.scaling
    }

    /// Since when the decider has been panicking, if it is.
    pub fn panicking_since(&self) -> Option<u64> {
        self.panic.as_ref().map(|p| p.since_ms)
    }

    /// Records the tick's sample taken at `now_ms`. Negative or NaN values count as 0.
    pub fn record(&mut self, now_ms: u64, sample: Sample) {
        self.touch(now_ms);
        let sample = Sample {
            concurrency: sample.concurrency.max(0.0),
            requests: sample.requests.max(0.0),
            ..sample
        };
        if sample.concurrency > 0.0 || sample.requests > 0.0 {
            self.activity(now_ms);
        }
        self.samples.push((now_ms, sample));
        self.seen_sample = true;
        let newest = self.samples.iter().map(|(t, _)| *t).max().unwrap_or(now_ms);
        let window = millis(self.scaling.stable_window);
        self.samples
            .retain(|(t, _)| newest.saturating_sub(*t) < window);
    }

    /// Records that a request for the revision is being held (the activator's signal while the
    /// revision is at zero). For a stable window the revision then wants at least one replica.
    pub fn record_demand(&mut self, now_ms: u64) {
        self.touch(now_ms);
        self.activity(now_ms);
        self.last_demand_ms = Some(self.last_demand_ms.map_or(now_ms, |t| t.max(now_ms)));
    }

    /// Decides the replica count at `now_ms`, given the replicas ready now.
    pub fn decide(&mut self, now_ms: u64, ready_replicas: u32) -> Decision {
        self.touch(now_ms);
        if ready_replicas >= self.scaling.initial_scale {
            self.initialized = true;
        }
        let stable = self.window_average(now_ms, self.scaling.stable_window);
        let panic = stable.map(|_| {
            self.window_average(now_ms, self.scaling.panic_window)
                .unwrap_or(0.0)
        });
        let (desired, reason) = match (stable, panic) {
            (Some(stable), Some(panic)) => {
                self.scale_on_metrics(now_ms, ready_replicas, stable, panic)
            }
            _ if !self.seen_sample => (self.scaling.initial_scale, Reason::InitialScale),
            _ => (self.last_desired.unwrap_or(ready_replicas), Reason::NoData),
        };
        let (desired, reason) = self.finish(now_ms, ready_replicas, desired, reason);
        if let Some(p) = &mut self.panic {
            p.max_pods = p.max_pods.max(desired);
        }
        self.last_desired = Some(desired);
        Decision {
            desired,
            panicking: self.panic.is_some(),
            reason,
            stable_value: stable,
            panic_value: panic,
        }
    }

    fn touch(&mut self, now_ms: u64) {
        self.last_activity_ms.get_or_insert(now_ms);
    }

    fn activity(&mut self, now_ms: u64) {
        self.last_activity_ms = Some(self.last_activity_ms.map_or(now_ms, |t| t.max(now_ms)));
    }

    /// Mean metric value of the samples in `(now - window, now]`.
    fn window_average(&self, now_ms: u64, window: Duration) -> Option<f64> {
        let window = millis(window);
        let tick_secs = self.scaling.tick_interval.as_secs_f64().max(0.001);
        let values: Vec<f64> = self
            .samples
            .iter()
            .filter(|(t, _)| *t <= now_ms && now_ms - t < window)
            .map(|(_, s)| match self.scaling.metric {
                ScalingMetric::Concurrency => s.concurrency,
                ScalingMetric::Rps => s.requests / tick_secs,
            })
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    }

    /// Steps 2–4: counts per window, rate limits, panic mode, scale-down delay.
    fn scale_on_metrics(
        &mut self,
        now_ms: u64,
        ready: u32,
        stable: f64,
        panic: f64,
    ) -> (u32, Reason) {
        let s = &self.scaling;
        let ready = f64::from(ready.max(1));
        let max_up = (s.max_scale_up_rate * ready).ceil();
        let max_down = (ready / s.max_scale_down_rate).floor();
        let limit = |want: f64| {
            if want > max_up {
                (max_up, Some(Reason::MaxScaleUpRate))
            } else if want < max_down {
                (max_down, Some(Reason::MaxScaleDownRate))
            } else {
                (want, None)
            }
        };
        let desired_stable = (stable / s.target).ceil();
        let desired_panic = (panic / s.target).ceil();
        let (stable_pods, stable_limit) = limit(desired_stable);
        let (panic_pods, panic_limit) = limit(desired_panic);

        let over_threshold = desired_panic / ready >= s.panic_threshold_percentage / 100.0;
        let stable_ms = millis(s.stable_window);
        match &mut self.panic {
            Some(p) if over_threshold => p.last_over_threshold_ms = now_ms,
            None if over_threshold => {
                self.panic = Some(PanicState {
                    since_ms: now_ms,
                    last_over_threshold_ms: now_ms,
                    max_pods: 0,
                });
            }
            Some(p) if p.last_over_threshold_ms.saturating_add(stable_ms) < now_ms => {
                self.panic = None
            }
            _ => {}
        }

        let (mut desired, mut reason) =
            (stable_pods as u32, stable_limit.unwrap_or(Reason::Stable));
        if let Some(p) = &self.panic {
            let (pods, limited) = if panic_pods > stable_pods {
                (panic_pods as u32, panic_limit)
            } else {
                (desired, stable_limit)
            };
            (desired, reason) = (pods, limited.unwrap_or(Reason::Panic));
            if desired < p.max_pods {
                (desired, reason) = (p.max_pods, Reason::Panic);
            }
        }

        let delay = millis(s.scale_down_delay);
        if delay > 0 {
            self.delay_window.push((now_ms, desired));
            self.delay_window
                .retain(|(t, _)| now_ms.saturating_sub(*t) < delay);
            let held = self
                .delay_window
                .iter()
                .map(|(_, d)| *d)
                .max()
                .unwrap_or(desired);
            if held > desired {
                (desired, reason) = (held, Reason::ScaleDownDelay);
            }
        }
        (desired, reason)
    }

    /// Steps 5–7: demand and activation scale, bounds, scale to zero.
    fn finish(
        &mut self,
        now_ms: u64,
        ready: u32,
        mut desired: u32,
        mut reason: Reason,
    ) -> (u32, Reason) {
        let s = &self.scaling;
        let stable_ms = millis(s.stable_window);
        let demand = self
            .last_demand_ms
            .is_some_and(|t| now_ms.saturating_sub(t) < stable_ms);
        if demand && desired == 0 {
            (desired, reason) = (1, Reason::Activation);
        }
        if desired > 0 && desired < s.activation_scale {
            (desired, reason) = (s.activation_scale, Reason::Activation);
        }

        let upper = if s.max_scale > 0 {
            s.max_scale
        } else {
            u32::MAX
        };
        let lower = if self.initialized {
            s.min_scale
        } else {
            s.min_scale.max(s.initial_scale)
        }
        .min(upper);
        if desired < lower {
            let why = if lower > s.min_scale {
                Reason::InitialScale
            } else {
                Reason::MinScale
            };
            (desired, reason) = (lower, why);
        } else if desired > upper {
            (desired, reason) = (upper, Reason::MaxScale);
        }

        if desired > 0 {
            self.idle_since_ms = None;
            return (desired, reason);
        }
        if !s.enable_scale_to_zero {
            return (1, Reason::ScaleToZeroDisabled);
        }
        if ready == 0 && self.last_desired.unwrap_or(0) == 0 {
            // Already at zero.
            let reason = match reason {
                Reason::InitialScale | Reason::NoData => reason,
                _ => Reason::ScaleToZero,
            };
            return (0, reason);
        }
        let quiet = self
            .last_activity_ms
            .is_none_or(|t| now_ms.saturating_sub(t) >= stable_ms);
        if !quiet {
            self.idle_since_ms = None;
            return (1, Reason::ScaleToZeroGrace);
        }
        let idle_since = *self.idle_since_ms.get_or_insert(now_ms);
        let wait = millis(
            s.scale_to_zero_grace_period
                .max(s.scale_to_zero_pod_retention_period),
        );
        if now_ms.saturating_sub(idle_since) >= wait {
            (0, Reason::ScaleToZero)
        } else {
            (1, Reason::ScaleToZeroGrace)
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
