use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;

use super::*;

const S: u64 = 1000;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A decider for a revision with a target of exactly 10 (100 % utilization), tuned by `f`.
fn scaler(settings: Settings, f: impl FnOnce(&mut AutoscalingAnnotations)) -> Autoscaler {
    let mut a = AutoscalingAnnotations {
        target: Some(10.0),
        target_utilization_percentage: Some(100.0),
        ..Default::default()
    };
    f(&mut a);
    Autoscaler::new(RevisionScaling::resolve(&settings, &a, None))
}

fn load(concurrency: f64) -> Sample {
    Sample {
        concurrency,
        ..Default::default()
    }
}

/// Drives a decider tick by tick (2 s); ready replicas follow the decision instantly unless
/// `fixed_ready` is set.
struct Sim {
    a: Autoscaler,
    now: u64,
    ready: u32,
    fixed_ready: bool,
}

impl Sim {
    fn new(a: Autoscaler, ready: u32) -> Sim {
        Sim {
            a,
            now: 0,
            ready,
            fixed_ready: false,
        }
    }

    fn tick(&mut self, concurrency: f64) -> Decision {
        self.now += 2 * S;
        let sample = Sample {
            concurrency,
            requests: 0.0,
            ready_replicas: self.ready,
        };
        self.a.record(self.now, sample);
        let d = self.a.decide(self.now, self.ready);
        if !self.fixed_ready {
            self.ready = d.desired;
        }
        d
    }

    /// Ticks until `until_ms`, returning `(time, decision)` pairs.
    fn run_until(&mut self, until_ms: u64, concurrency: f64) -> Vec<(u64, Decision)> {
        let mut out = Vec::new();
        while self.now < until_ms {
            let d = self.tick(concurrency);
            out.push((self.now, d));
        }
        out
    }
}

#[test]
fn target_from_container_concurrency_annotations_and_defaults() {
    use ScalingMetric::{Concurrency, Rps};
    // (metric, containerConcurrency, target annotation, utilization annotation) → (total, target)
    let cases = [
        (Concurrency, None, None, None, 100.0, 70.0),
        (Concurrency, Some(0), None, None, 100.0, 70.0),
        (Concurrency, Some(10), None, None, 10.0, 7.0),
        (Concurrency, Some(10), Some(50.0), None, 10.0, 7.0),
        (Concurrency, Some(10), Some(5.0), None, 5.0, 3.5),
        (Concurrency, None, Some(50.0), Some(80.0), 50.0, 40.0),
        (Concurrency, Some(10), None, Some(100.0), 10.0, 10.0),
        (Rps, None, None, None, 200.0, 140.0),
        (Rps, Some(10), Some(30.0), None, 30.0, 21.0),
        (Rps, None, Some(30.0), Some(50.0), 30.0, 15.0),
        (Concurrency, None, Some(0.01), Some(1.0), 0.01, 0.01),
    ];
    for (metric, cc, target, utilization, total, want) in cases {
        let a = AutoscalingAnnotations {
            metric: Some(metric),
            target,
            target_utilization_percentage: utilization,
            ..Default::default()
        };
        let r = RevisionScaling::resolve(&Settings::default(), &a, cc);
        let case = format!("{metric:?} cc={cc:?} target={target:?} util={utilization:?}");
        assert!(
            (r.total_target - total).abs() < 1e-9,
            "{case}: total {}",
            r.total_target
        );
        assert!(
            (r.target - want).abs() < 1e-9,
            "{case}: target {}",
            r.target
        );
    }
}

#[test]
fn resolve_windows_bounds_and_overrides() {
    let d = RevisionScaling::resolve(
        &Settings::default(),
        &AutoscalingAnnotations::default(),
        Some(0),
    );
    assert_eq!(d.stable_window, secs(60));
    assert_eq!(d.panic_window, secs(6));
    assert_eq!(
        (
            d.min_scale,
            d.max_scale,
            d.initial_scale,
            d.activation_scale
        ),
        (0, 0, 1, 1)
    );

    // (window, panic %) → panic window: rounded to seconds, at least 1 s and one tick (2 s).
    for (window, pct, want) in [
        (60, 10.0, 6),
        (90, 15.0, 14),
        (10, 1.0, 2),
        (6, 10.0, 2),
        (100, 100.0, 100),
    ] {
        let a = AutoscalingAnnotations {
            window: Some(secs(window)),
            panic_window_percentage: Some(pct),
            ..Default::default()
        };
        let r = RevisionScaling::resolve(&Settings::default(), &a, None);
        assert_eq!(r.panic_window, secs(want), "window {window}s × {pct}%");
    }

    let settings = Settings {
        min_scale: 3,
        initial_scale: 2,
        ..Settings::default()
    };
    let a = AutoscalingAnnotations {
        max_scale: Some(2),
        initial_scale: Some(0),
        activation_scale: Some(4),
        scale_down_delay: Some(secs(15)),
        scale_to_zero_pod_retention_period: Some(secs(90)),
        panic_threshold_percentage: Some(300.0),
        ..Default::default()
    };
    let r = RevisionScaling::resolve(&settings, &a, None);
    assert_eq!(
        (r.min_scale, r.max_scale),
        (2, 2),
        "min-scale above max-scale is lowered"
    );
    assert_eq!(
        r.initial_scale, 2,
        "initial-scale 0 needs allow-zero-initial-scale"
    );
    assert_eq!(r.activation_scale, 4);
    assert_eq!(r.scale_down_delay, secs(15));
    assert_eq!(r.scale_to_zero_pod_retention_period, secs(90));
    assert_eq!(r.panic_threshold_percentage, 300.0);

    let allow = Settings {
        allow_zero_initial_scale: true,
        ..Settings::default()
    };
    assert_eq!(RevisionScaling::resolve(&allow, &a, None).initial_scale, 0);
}

#[test]
fn settings_from_config_map() {
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        Settings::from_config_map(&BTreeMap::new()).ok(),
        Some(Settings::default())
    );
    let s = Settings::from_config_map(&map(&[
        ("container-concurrency-target-default", "50"),
        ("container-concurrency-target-percentage", "0.5"),
        ("requests-per-second-target-default", "300"),
        ("target-burst-capacity", "211"),
        ("stable-window", "1m30s"),
        ("panic-window-percentage", "20"),
        ("panic-threshold-percentage", "150"),
        ("max-scale-up-rate", "10"),
        ("max-scale-down-rate", "4"),
        ("enable-scale-to-zero", "false"),
        ("scale-to-zero-grace-period", "45s"),
        ("scale-to-zero-pod-retention-period", "1m"),
        ("initial-scale", "0"),
        ("allow-zero-initial-scale", "true"),
        ("min-scale", "1"),
        ("max-scale", "8"),
        ("scale-down-delay", "15m"),
        ("activation-scale", "2"),
        ("_example", "ignored"),
    ]))
    .unwrap();
    assert_eq!(
        s,
        Settings {
            container_concurrency_target_default: 50.0,
            container_concurrency_target_percentage: 50.0,
            requests_per_second_target_default: 300.0,
            stable_window: secs(90),
            panic_window_percentage: 20.0,
            panic_threshold_percentage: 150.0,
            max_scale_up_rate: 10.0,
            max_scale_down_rate: 4.0,
            enable_scale_to_zero: false,
            scale_to_zero_grace_period: secs(45),
            scale_to_zero_pod_retention_period: secs(60),
            initial_scale: 0,
            allow_zero_initial_scale: true,
            min_scale: 1,
            max_scale: 8,
            scale_down_delay: secs(900),
            activation_scale: 2,
            tick_interval: secs(2),
        }
    );

    let errors: &[(&[(&str, &str)], &str)] = &[
        (
            &[("stable-window", "2s")],
            "`stable-window`: 2s is not a whole number of seconds in [6s, 1h]",
        ),
        (
            &[("stable-window", "60")],
            "`stable-window`: `60` is not a duration",
        ),
        (&[("stable-window", "60.5s")], "`stable-window`"),
        (
            &[("max-scale-down-rate", "1")],
            "`max-scale-down-rate`: 1 is not greater than 1",
        ),
        (
            &[("max-scale-up-rate", "fast")],
            "`max-scale-up-rate`: `fast` is not a number",
        ),
        (
            &[("enable-scale-to-zero", "yes")],
            "`enable-scale-to-zero`: `yes` is not a boolean",
        ),
        (
            &[("initial-scale", "0")],
            "`initial-scale`: 0 needs allow-zero-initial-scale",
        ),
        (
            &[("min-scale", "-1")],
            "`min-scale`: `-1` is not a whole number",
        ),
        (
            &[("min-scale", "5"), ("max-scale", "2")],
            "`min-scale`: 5 is above max-scale 2",
        ),
        (
            &[("container-concurrency-target-percentage", "150")],
            "outside (0, 100]",
        ),
        (
            &[("panic-window-percentage", "0.5")],
            "`panic-window-percentage`",
        ),
        (
            &[("panic-threshold-percentage", "100")],
            "outside [110, 1000]",
        ),
        (
            &[("scale-to-zero-grace-period", "0s")],
            "`scale-to-zero-grace-period`: must be positive",
        ),
        (&[("scale-down-delay", "1500ms")], "`scale-down-delay`"),
        (
            &[("requests-per-second-target-default", "0")],
            "`requests-per-second-target-default`",
        ),
        (
            &[("activation-scale", "0")],
            "`activation-scale`: must be at least 1",
        ),
    ];
    for (pairs, want) in errors {
        let err = Settings::from_config_map(&map(pairs))
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{pairs:?}: {err}");
        assert!(err.contains("; "), "{pairs:?}: error has no fix: {err}");
    }
}

#[test]
fn initial_scale_before_samples_and_until_ready() {
    // (initial-scale annotation, allow-zero-initial-scale) → decision before any sample.
    for (initial, allow, want) in [
        (None, false, 1),
        (Some(3), false, 3),
        (Some(0), false, 1),
        (Some(0), true, 0),
    ] {
        let settings = Settings {
            allow_zero_initial_scale: allow,
            ..Settings::default()
        };
        let mut a = scaler(settings, |a| a.initial_scale = initial);
        let d = a.decide(0, 0);
        assert_eq!(
            (d.desired, d.reason),
            (want, Reason::InitialScale),
            "{initial:?} {allow}"
        );
    }

    // With samples but fewer than 3 ready replicas, initial-scale is a floor.
    let mut a = scaler(Settings::default(), |a| a.initial_scale = Some(3));
    a.record(2 * S, load(0.0));
    assert_eq!(a.decide(2 * S, 1).desired, 3);
    a.record(4 * S, load(0.0));
    assert_eq!(a.decide(4 * S, 2).desired, 3);
    // Once 3 are ready, the metric decides (here limited by max-scale-down-rate 2).
    a.record(6 * S, load(0.0));
    let d = a.decide(6 * S, 3);
    assert_eq!((d.desired, d.reason), (1, Reason::MaxScaleDownRate));
}

#[test]
fn stable_count_is_ceil_of_average_over_target() {
    let mut sim = Sim::new(scaler(Settings::default(), |_| {}), 4);
    for c in [35.0, 35.0, 35.0, 35.0] {
        let d = sim.tick(c);
        assert_eq!(
            (d.desired, d.reason, d.panicking),
            (4, Reason::Stable, false)
        );
        assert_eq!(d.stable_value, Some(35.0));
    }
}

#[test]
fn burst_trips_panic_which_holds_until_a_stable_window_after_the_last_overload() {
    let mut sim = Sim::new(scaler(Settings::default(), |_| {}), 1);
    // Steady 5 in flight: one replica.
    for (_, d) in sim.run_until(20 * S, 5.0) {
        assert_eq!((d.desired, d.panicking), (1, false));
    }
    // Burst of 100: the panic window (6 s) sees it first.
    let d = sim.tick(100.0);
    assert!(d.panicking, "{d:?}");
    assert_eq!(sim.a.panicking_since(), Some(22 * S));
    assert!(d.panic_value.unwrap() > d.stable_value.unwrap());
    assert!(d.desired > 1);
    let burst = sim.run_until(40 * S, 100.0);
    // Load gone: panic holds the high-water mark.
    let after = sim.run_until(200 * S, 0.0);
    let decisions: Vec<_> = [(22 * S, d)]
        .into_iter()
        .chain(burst)
        .chain(after)
        .collect();
    let mut last_over = 0;
    let mut prev: Option<Decision> = None;
    for &(t, d) in &decisions {
        if let Some(p) = prev
            && p.panicking
            && d.panicking
        {
            assert!(
                d.desired >= p.desired,
                "scaled down during panic at {t}: {p:?} → {d:?}"
            );
        }
        let panic_count = (d.panic_value.unwrap() / 10.0).ceil();
        let ready = f64::from(prev.map_or(1, |p| p.desired).max(1));
        if panic_count / ready >= 2.0 {
            last_over = t;
        }
        let expect_panic = t <= last_over + 60 * S;
        assert_eq!(
            d.panicking, expect_panic,
            "at {t}: last over threshold at {last_over}"
        );
        prev = Some(d);
    }
    // Over the threshold only at 22 s (by 24 s four replicas are ready): panic ends at 84 s,
    // holding the high-water mark of 10 until then.
    assert_eq!(last_over, 22 * S);
    let at = |t: u64| decisions.iter().find(|(at, _)| *at == t * S).unwrap().1;
    assert_eq!((at(82).desired, at(82).panicking), (10, true));
    assert_eq!(
        (at(84).desired, at(84).panicking, at(84).reason),
        (5, false, Reason::MaxScaleDownRate)
    );
    // Last traffic at 40 s: zero after a quiet stable window and the grace period.
    let first_zero = decisions.iter().find(|(_, d)| d.desired == 0).unwrap();
    assert_eq!(
        (first_zero.0, first_zero.1.reason),
        (130 * S, Reason::ScaleToZero)
    );
}

#[test]
fn grace_period_then_zero() {
    let mut sim = Sim::new(scaler(Settings::default(), |_| {}), 1);
    sim.run_until(10 * S, 5.0); // last traffic at 10 s
    let idle = sim.run_until(120 * S, 0.0);
    // Zero after a quiet stable window (60 s, so at 70 s) plus the 30 s grace period.
    for &(t, d) in &idle {
        if t < 100 * S {
            assert_eq!(d.desired, 1, "at {t}: {d:?}");
            if t >= 70 * S {
                assert_eq!(d.reason, Reason::ScaleToZeroGrace, "at {t}");
            }
        } else {
            assert_eq!(d.desired, 0, "at {t}: {d:?}");
        }
    }
    assert_eq!(
        idle.iter().find(|(_, d)| d.desired == 0).unwrap().1.reason,
        Reason::ScaleToZero
    );

    // A pod retention period longer than the grace period keeps the last pod longer.
    let settings = Settings {
        scale_to_zero_pod_retention_period: secs(90),
        ..Settings::default()
    };
    let mut sim = Sim::new(scaler(settings, |_| {}), 1);
    sim.run_until(10 * S, 5.0);
    let first_zero = sim
        .run_until(300 * S, 0.0)
        .into_iter()
        .find(|(_, d)| d.desired == 0);
    assert_eq!(first_zero.map(|(t, _)| t), Some(160 * S));

    // min-scale 1, or scale to zero disabled: never zero.
    let disabled = Settings {
        enable_scale_to_zero: false,
        ..Settings::default()
    };
    for (settings, min, why) in [
        (Settings::default(), Some(1), Reason::MinScale),
        (disabled, None, Reason::ScaleToZeroDisabled),
    ] {
        let mut sim = Sim::new(scaler(settings, |a| a.min_scale = min), 1);
        sim.run_until(10 * S, 5.0);
        let idle = sim.run_until(600 * S, 0.0);
        assert!(idle.iter().all(|(_, d)| d.desired == 1), "{min:?}");
        assert_eq!(idle.last().unwrap().1.reason, why);
    }
}

#[test]
fn bounds_clamp_the_metric() {
    // (min, max, load) → desired
    for (min, max, load_c, want, why) in [
        (None, None, 35.0, 4, Reason::Stable),
        (Some(5), None, 35.0, 5, Reason::MinScale),
        (None, Some(3), 35.0, 3, Reason::MaxScale),
        (Some(2), Some(3), 0.5, 2, Reason::MinScale),
        (Some(2), Some(3), 1000.0, 3, Reason::MaxScale),
    ] {
        let mut sim = Sim::new(
            scaler(Settings::default(), |a| {
                a.min_scale = min;
                a.max_scale = max;
                a.panic_threshold_percentage = Some(1000.0);
            }),
            1,
        );
        sim.fixed_ready = true;
        let d = sim.tick(load_c);
        assert_eq!(
            (d.desired, d.reason),
            (want, why),
            "min {min:?} max {max:?} load {load_c}"
        );
    }
}

#[test]
fn max_scale_up_rate_limits_growth() {
    let settings = Settings {
        max_scale_up_rate: 2.0,
        ..Settings::default()
    };
    let mut sim = Sim::new(scaler(settings, |_| {}), 1);
    let mut ready = 1;
    for _ in 0..5 {
        let d = sim.tick(10_000.0);
        assert_eq!(d.desired, 2 * ready, "{d:?}");
        assert_eq!(d.reason, Reason::MaxScaleUpRate);
        ready = d.desired;
    }
    // The default rate (1000) lets one replica go straight to what the load needs.
    let mut sim = Sim::new(scaler(Settings::default(), |_| {}), 1);
    assert_eq!(sim.tick(10_000.0).desired, 1000);
}

#[test]
fn max_scale_down_rate_at_most_halves() {
    let mut sim = Sim::new(scaler(Settings::default(), |_| {}), 10);
    let mut prev = 10;
    for want in [5, 2, 1] {
        let d = sim.tick(0.5);
        assert_eq!(d.desired, want);
        assert!(d.desired >= prev / 2);
        assert_eq!(
            d.reason,
            if want > 1 {
                Reason::MaxScaleDownRate
            } else {
                Reason::Stable
            }
        );
        prev = d.desired;
    }
}

#[test]
fn scale_down_delay_holds_the_maximum() {
    let settings = Settings {
        scale_down_delay: secs(20),
        ..Settings::default()
    };
    let mut sim = Sim::new(
        scaler(settings, |a| {
            a.window = Some(secs(6));
            a.panic_threshold_percentage = Some(1000.0);
        }),
        5,
    );
    sim.fixed_ready = true;
    for (_, d) in sim.run_until(10 * S, 50.0) {
        assert_eq!(d.desired, 5);
    }
    // The last raw 5 was decided at 10 s; it is held until 30 s.
    for (t, d) in sim.run_until(40 * S, 10.0) {
        if t < 30 * S {
            assert_eq!(d.desired, 5, "at {t}");
            assert_eq!(d.reason, Reason::ScaleDownDelay, "at {t}");
        } else {
            assert!(d.desired < 5, "at {t}: {d:?}");
        }
    }

    // Without a delay the same drop shows at once.
    let mut sim = Sim::new(scaler(Settings::default(), |a| a.window = Some(secs(6))), 5);
    sim.fixed_ready = true;
    sim.run_until(10 * S, 50.0);
    assert!(sim.tick(10.0).desired < 5);
}

#[test]
fn activation_from_zero() {
    let settings = Settings {
        allow_zero_initial_scale: true,
        ..Settings::default()
    };
    // (activation-scale, max-scale) → replicas for a request held at zero.
    for (activation, max, want, why) in [
        (None, None, 1, Reason::Activation),
        (Some(3), None, 3, Reason::Activation),
        (Some(3), Some(2), 2, Reason::MaxScale),
    ] {
        let mut a = scaler(settings.clone(), |a| {
            a.initial_scale = Some(0);
            a.activation_scale = activation;
            a.max_scale = max;
        });
        assert_eq!(a.decide(0, 0).desired, 0);
        a.record(2 * S, load(0.0));
        assert_eq!(
            a.decide(2 * S, 0).desired,
            0,
            "at zero without demand stays at zero"
        );

        a.record_demand(3 * S);
        let d = a.decide(3 * S, 0);
        assert_eq!((d.desired, d.reason), (want, why), "{activation:?} {max:?}");
        // Held while the replica starts, even though samples at zero show no traffic.
        for t in [4, 6, 30, 62] {
            a.record(t * S, load(0.0));
            assert!(a.decide(t * S, 0).desired >= 1, "at {t}s");
        }
    }

    // Before any sample, demand also wins over initial-scale 0.
    let mut a = scaler(settings, |a| a.initial_scale = Some(0));
    a.record_demand(0);
    assert_eq!(a.decide(0, 0).desired, 1);

    // activation-scale is the least non-zero decision (Knative applies it to any non-zero count).
    let mut sim = Sim::new(
        scaler(Settings::default(), |a| a.activation_scale = Some(3)),
        1,
    );
    let d = sim.tick(5.0);
    assert_eq!((d.desired, d.reason), (3, Reason::Activation));
}

#[test]
fn rps_metric() {
    let mut a = scaler(Settings::default(), |a| a.metric = Some(ScalingMetric::Rps));
    // 60 requests per 2 s tick = 30 rps; target 10 rps → 3 replicas.
    for t in 1..=5 {
        let sample = Sample {
            concurrency: 1.0,
            requests: 60.0,
            ready_replicas: 3,
        };
        a.record(2 * t * S, sample);
        let d = a.decide(2 * t * S, 3);
        assert_eq!((d.desired, d.stable_value), (3, Some(30.0)));
    }
}

#[test]
fn no_data_keeps_the_previous_decision() {
    let mut a = scaler(Settings::default(), |_| {});
    a.record(2 * S, load(35.0));
    assert_eq!(a.decide(2 * S, 1).desired, 4);
    // Metrics gap longer than the stable window: nothing to scale on.
    let d = a.decide(70 * S, 2);
    assert_eq!(
        (d.desired, d.reason, d.stable_value),
        (4, Reason::NoData, None)
    );
}

// ---- properties ----

#[derive(Clone, Debug)]
enum Op {
    Record {
        dt: u64,
        concurrency: f64,
        requests: f64,
    },
    Demand {
        dt: u64,
    },
    Decide {
        dt: u64,
        ready: u32,
    },
    /// Idle ticks (every 2 s, no traffic) with ready replicas following the decisions.
    Idle {
        ticks: u32,
    },
}

fn gap() -> impl Strategy<Value = u64> {
    prop_oneof![6 => 0u64..3_000, 1 => 0u64..120_000]
}

/// Idle half the time, so that scale to zero happens.
fn metric() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), 0.0f64..400.0]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (gap(), metric(), metric())
            .prop_map(|(dt, concurrency, requests)| Op::Record { dt, concurrency, requests }),
        1 => gap().prop_map(|dt| Op::Demand { dt }),
        8 => (gap(), 0u32..40).prop_map(|(dt, ready)| Op::Decide { dt, ready }),
        1 => (0u32..120).prop_map(|ticks| Op::Idle { ticks }),
    ]
}

fn revision() -> impl Strategy<Value = RevisionScaling> {
    (
        (
            0u32..4,
            proptest::option::of(1u32..10),
            any::<bool>(),
            any::<bool>(),
        ),
        (
            proptest::option::of(0u32..5),
            any::<bool>(),
            1u32..4,
            0u64..30,
        ),
        (
            110.0f64..1000.0,
            1.1f64..20.0,
            1.1f64..5.0,
            6u64..120,
            1.0f64..100.0,
        ),
        (any::<bool>(), 0.5f64..50.0, proptest::option::of(0i64..20)),
    )
        .prop_map(
            |(
                (min, extra, enable, rps),
                (initial, allow_zero, activation, delay),
                (threshold, up, down, window, panic_pct),
                (cc_default, target, cc),
            )| {
                let settings = Settings {
                    enable_scale_to_zero: enable,
                    allow_zero_initial_scale: allow_zero,
                    max_scale_up_rate: up,
                    max_scale_down_rate: down,
                    scale_down_delay: secs(delay),
                    ..Settings::default()
                };
                let a = AutoscalingAnnotations {
                    metric: Some(if rps {
                        ScalingMetric::Rps
                    } else {
                        ScalingMetric::Concurrency
                    }),
                    target: (!cc_default).then_some(target),
                    min_scale: Some(min),
                    max_scale: Some(extra.map_or(0, |e| min + e)),
                    initial_scale: initial,
                    activation_scale: Some(activation),
                    window: Some(secs(window)),
                    panic_window_percentage: Some(panic_pct),
                    panic_threshold_percentage: Some(threshold),
                    ..Default::default()
                };
                RevisionScaling::resolve(&settings, &a, cc)
            },
        )
}

fn run(scaling: &RevisionScaling, ops: &[Op]) -> (Vec<Decision>, Autoscaler) {
    let mut a = Autoscaler::new(scaling.clone());
    let mut now = 0;
    let mut out = Vec::new();
    for op in ops {
        match *op {
            Op::Record {
                dt,
                concurrency,
                requests,
            } => {
                now += dt;
                let sample = Sample {
                    concurrency,
                    requests,
                    ready_replicas: 1,
                };
                a.record(now, sample);
            }
            Op::Demand { dt } => {
                now += dt;
                a.record_demand(now);
            }
            Op::Decide { dt, ready } => {
                now += dt;
                out.push(a.decide(now, ready));
            }
            Op::Idle { ticks } => {
                for _ in 0..ticks {
                    now += 2 * S;
                    let ready = out.last().map_or(0, |d: &Decision| d.desired);
                    let sample = Sample {
                        ready_replicas: ready,
                        ..Sample::default()
                    };
                    a.record(now, sample);
                    out.push(a.decide(now, ready));
                }
            }
        }
    }
    (out, a)
}

proptest! {
    #[test]
    fn decisions_stay_within_bounds(scaling in revision(), ops in proptest::collection::vec(op(), 1..120)) {
        for d in run(&scaling, &ops).0 {
            prop_assert!(d.desired >= scaling.min_scale, "{d:?} below min {}", scaling.min_scale);
            if scaling.max_scale > 0 {
                prop_assert!(d.desired <= scaling.max_scale, "{d:?} above max {}", scaling.max_scale);
            }
        }
    }

    #[test]
    fn never_scales_down_while_panicking(scaling in revision(), ops in proptest::collection::vec(op(), 1..120)) {
        let decisions = run(&scaling, &ops).0;
        for pair in decisions.windows(2) {
            if pair[0].panicking && pair[1].panicking {
                prop_assert!(pair[1].desired >= pair[0].desired, "{:?} → {:?}", pair[0], pair[1]);
            }
        }
    }

    #[test]
    fn zero_only_when_allowed(scaling in revision(), ops in proptest::collection::vec(op(), 1..120)) {
        for d in run(&scaling, &ops).0 {
            if d.desired == 0 {
                prop_assert!(scaling.min_scale == 0 && scaling.enable_scale_to_zero, "{d:?}");
            }
        }
    }

    #[test]
    fn deterministic(scaling in revision(), ops in proptest::collection::vec(op(), 1..120)) {
        prop_assert_eq!(run(&scaling, &ops), run(&scaling, &ops));
    }
}
