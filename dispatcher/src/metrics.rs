//! The dispatcher's Prometheus metrics, served as text on the admin port's `/metrics`.
//!
//! Ferry's own are prefixed `ferry_dispatcher_`. Beside them, the broker ingress and trigger
//! dispatcher metrics Knative's Kafka broker data plane exports, with its names, units and
//! labels, so dashboards and alerts written for Knative find them ([`Knative`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels2 = [(&'static str, String); 2];
type Labels1 = [(&'static str, String); 1];
type Labels3 = [(&'static str, String); 3];
/// Knative's label sets differ between ingress and dispatch: one family holds both.
type KnativeLabels = Vec<(&'static str, String)>;

/// Knative's latency buckets (milliseconds), its `LATENCY_SLOs`.
const KNATIVE_BUCKETS_MS: [f64; 6] = [50.0, 100.0, 500.0, 1_000.0, 5_000.0, 10_000.0];
/// Distinct `event_type` values kept per resource; later ones are counted as `other`, so a
/// client cannot create unbounded series.
const MAX_EVENT_TYPES: usize = 100;

/// The metrics of Knative's Kafka broker data plane (receiver and dispatcher):
/// `event_count_1_total`, `event_dispatch_latencies_ms` and `event_processing_latencies_ms`,
/// labelled `name` and `namespace_name` (the Broker or channel), `event_type`,
/// `response_code`, `response_code_class`, and `consumer_name` (the Trigger or Subscription)
/// for deliveries.
///
/// The data plane records through [`KnativeSeries`], resolved once per resource (ingress) or
/// consumer (egress): per event that is a read lock and a lookup by type, not a label set built,
/// hashed and looked up in every family.
#[derive(Debug)]
pub struct Knative {
    event_count: Family<KnativeLabels, Counter>,
    dispatch_ms: Family<KnativeLabels, Histogram>,
    processing_ms: Family<KnativeLabels, Histogram>,
    /// Event types seen per resource (`namespace/name`).
    types: Mutex<HashMap<String, HashSet<String>>>,
}

fn knative_histogram() -> Histogram {
    Histogram::new(KNATIVE_BUCKETS_MS)
}

impl Default for Knative {
    fn default() -> Self {
        Knative {
            event_count: Family::default(),
            dispatch_ms: Family::new_with_constructor(knative_histogram),
            processing_ms: Family::new_with_constructor(knative_histogram),
            types: Mutex::default(),
        }
    }
}

/// Whose deliveries a [`Knative`] observation is about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnativeConsumer {
    /// Namespace of the resource (and of the consumer).
    pub namespace: String,
    /// The Broker's or channel's name.
    pub name: String,
    /// The Trigger's, Subscription's or source's name.
    pub consumer: String,
}

impl Knative {
    /// Whether `ty` is counted under its own name for `resource`: it was seen before, or the
    /// resource has fewer than [`MAX_EVENT_TYPES`] types yet (then it is remembered).
    fn admits(&self, resource: &str, ty: &str) -> bool {
        let mut types = self.types.lock().unwrap_or_else(|e| e.into_inner());
        let seen = match types.get_mut(resource) {
            Some(seen) => seen,
            None => types.entry(resource.to_owned()).or_default(),
        };
        seen.contains(ty) || (seen.len() < MAX_EVENT_TYPES && seen.insert(ty.to_owned()))
    }

    /// The series of a Broker's or channel's ingress.
    pub fn ingress_series(self: &Arc<Self>, namespace: &str, name: &str) -> KnativeSeries {
        self.series(namespace, name, None)
    }

    /// The series of a consumer's deliveries.
    pub fn consumer_series(self: &Arc<Self>, to: &KnativeConsumer) -> KnativeSeries {
        self.series(&to.namespace, &to.name, Some(&to.consumer))
    }

    fn series(
        self: &Arc<Self>,
        namespace: &str,
        name: &str,
        consumer: Option<&str>,
    ) -> KnativeSeries {
        KnativeSeries(Arc::new(SeriesInner {
            knative: self.clone(),
            resource: format!("{namespace}/{name}"),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            consumer: consumer.map(str::to_owned),
            by_type: RwLock::default(),
        }))
    }
}

/// The Knative series of one resource's ingress or one consumer, by event type and response
/// code, resolved on first use. Cheap to clone.
#[derive(Clone, Debug)]
pub struct KnativeSeries(Arc<SeriesInner>);

#[derive(Debug)]
struct SeriesInner {
    knative: Arc<Knative>,
    /// `namespace/name`, the key of the resource's event types.
    resource: String,
    namespace: String,
    name: String,
    consumer: Option<String>,
    /// Per event type (a type the resource admits, or `other`): its series.
    by_type: RwLock<HashMap<String, TypeSeries>>,
}

/// One event type's series: per response code, the count and the dispatch latency; the
/// processing latency.
#[derive(Debug, Default)]
struct TypeSeries {
    by_code: Vec<(u16, Counter, Histogram)>,
    processing: Option<Histogram>,
}

/// The type label of the series an event of type `ty` is counted in.
const OTHER_TYPE: &str = "other";

impl KnativeSeries {
    /// One event answered by the ingress or one delivery attempt answered with `status`
    /// (`event_count_1`), and how long it took (`event_dispatch_latencies_ms`).
    pub fn answered(&self, ty: &str, status: u16, took: Duration) {
        let observe = |t: &TypeSeries| {
            let (_, count, latency) = t.by_code.iter().find(|(c, _, _)| *c == status)?;
            count.inc();
            latency.observe(millis(took));
            Some(())
        };
        if self.with_type(ty, observe).flatten().is_some() {
            return;
        }
        self.create(ty, |label, t| {
            if !t.by_code.iter().any(|(c, _, _)| *c == status) {
                let labels = self.0.labels(label, Some(status));
                let count = self.0.knative.event_count.get_or_create(&labels).clone();
                let latency = self.0.knative.dispatch_ms.get_or_create(&labels).clone();
                t.by_code.push((status, count, latency));
            }
        });
        self.with_type(ty, observe);
    }

    /// One event settled by a consumer, from when it was read to when it was settled
    /// (`event_processing_latencies_ms`).
    pub fn processed(&self, ty: &str, took: Duration) {
        let observe = |t: &TypeSeries| {
            t.processing.as_ref()?.observe(millis(took));
            Some(())
        };
        if self.with_type(ty, observe).flatten().is_some() {
            return;
        }
        self.create(ty, |label, t| {
            if t.processing.is_none() {
                let labels = self.0.labels(label, None);
                t.processing = Some(self.0.knative.processing_ms.get_or_create(&labels).clone());
            }
        });
        self.with_type(ty, observe);
    }

    /// Runs `f` on the series of `ty` (or of `other`, for a type the resource does not admit)
    /// when they exist.
    fn with_type<T>(&self, ty: &str, f: impl Fn(&TypeSeries) -> T) -> Option<T> {
        let by_type = self.0.by_type.read().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = by_type.get(ty) {
            return Some(f(t));
        }
        // A type not cached here is either new or beyond the cap: ask the resource.
        if !self.0.knative.admits(&self.0.resource, ty) {
            return by_type.get(OTHER_TYPE).map(f);
        }
        None
    }

    /// Creates what `add` adds to the series of `ty` (or `other`).
    fn create(&self, ty: &str, add: impl FnOnce(&str, &mut TypeSeries)) {
        let label = if self.0.knative.admits(&self.0.resource, ty) {
            ty
        } else {
            OTHER_TYPE
        };
        let mut by_type = self.0.by_type.write().unwrap_or_else(|e| e.into_inner());
        let series = match by_type.get_mut(label) {
            Some(series) => series,
            None => by_type.entry(label.to_owned()).or_default(),
        };
        add(label, series);
    }
}

impl SeriesInner {
    /// Knative's label set, in Knative's order.
    fn labels(&self, ty: &str, status: Option<u16>) -> KnativeLabels {
        let mut labels = vec![
            ("name", self.name.clone()),
            ("namespace_name", self.namespace.clone()),
            ("event_type", ty.to_owned()),
        ];
        if let Some(code) = status {
            labels.push(("response_code", code.to_string()));
            labels.push(("response_code_class", format!("{}xx", code / 100)));
        }
        if let Some(consumer) = &self.consumer {
            labels.push(("consumer_name", consumer.clone()));
        }
        labels
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

fn latency() -> Histogram {
    // 100 µs .. ~52 s
    Histogram::new(exponential_buckets(0.000_1, 2.0, 20))
}

/// Everything the dispatcher counts.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Knative's names and labels for the same events.
    pub knative: Arc<Knative>,
    ingress: Family<Labels2, Counter>,
    route_requests: Family<Labels2, Counter>,
    egress: Family<Labels2, Counter>,
    delivery_seconds: Family<Labels1, Histogram>,
    end_to_end_seconds: Family<Labels1, Histogram>,
    in_flight: Family<Labels1, Gauge>,
    lag: Family<Labels3, Gauge>,
    ready_replicas: Family<Labels1, Gauge>,
    /// The revisions `ready_replicas` has series for, to drop those the contract no longer lists.
    activated: Mutex<Vec<String>>,
    generation: Gauge<u64, AtomicU64>,
    contract_rejected: Counter,
    journal_dropped: Counter,
}

/// Outcomes an egress counts per event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EgressOutcome {
    /// Delivered with a 2xx.
    Delivered,
    /// One retry scheduled.
    Retried,
    /// Sent to the dead-letter sink.
    DeadLettered,
    /// Given up without a dead-letter sink (or the sink failed too).
    Dropped,
    /// Did not pass the filters.
    Filtered,
    /// A record that is not a valid CloudEvent.
    Malformed,
}

impl EgressOutcome {
    /// In declaration order, so `outcome as usize` indexes it.
    const ALL: [EgressOutcome; 6] = [
        EgressOutcome::Delivered,
        EgressOutcome::Retried,
        EgressOutcome::DeadLettered,
        EgressOutcome::Dropped,
        EgressOutcome::Filtered,
        EgressOutcome::Malformed,
    ];

    /// The outcome's name in metrics and the delivery journal.
    pub fn label(self) -> &'static str {
        match self {
            EgressOutcome::Delivered => "delivered",
            EgressOutcome::Retried => "retried",
            EgressOutcome::DeadLettered => "dead_lettered",
            EgressOutcome::Dropped => "dropped",
            EgressOutcome::Filtered => "filtered",
            EgressOutcome::Malformed => "malformed",
        }
    }
}

/// One egress's metrics (handles into the registry's families).
#[derive(Clone, Debug)]
pub struct EgressMetrics {
    outcomes: [Counter; 6],
    attempt: Histogram,
    end_to_end: Histogram,
    in_flight: Gauge,
}

impl EgressMetrics {
    /// Counts one outcome.
    pub fn count(&self, outcome: EgressOutcome) {
        self.outcomes[outcome as usize].inc();
    }

    /// Records one attempt's duration.
    pub fn attempt(&self, took: Duration) {
        self.attempt.observe(took.as_secs_f64());
    }

    /// Records append-to-delivery latency.
    pub fn end_to_end(&self, took: Duration) {
        self.end_to_end.observe(took.as_secs_f64());
    }

    /// Sets the number of events in flight.
    pub fn in_flight(&self, n: usize) {
        self.in_flight.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            ingress: Family::default(),
            route_requests: Family::default(),
            egress: Family::default(),
            delivery_seconds: Family::new_with_constructor(latency),
            end_to_end_seconds: Family::new_with_constructor(latency),
            in_flight: Family::default(),
            lag: Family::default(),
            ready_replicas: Family::default(),
            activated: Mutex::default(),
            generation: Gauge::default(),
            contract_rejected: Counter::default(),
            journal_dropped: Counter::default(),
            registry: Registry::default(),
            knative: Arc::default(),
        };
        let mut root = Registry::default();
        root.register(
            "event_count_1",
            "Knative: events received (ingress) or dispatch attempts answered (consumers), by response code",
            m.knative.event_count.clone(),
        );
        root.register(
            "event_dispatch_latencies_ms",
            "Knative: how long an ingress request or a dispatch attempt took, in milliseconds",
            m.knative.dispatch_ms.clone(),
        );
        root.register(
            "event_processing_latencies_ms",
            "Knative: from an event read by a consumer until it was settled, in milliseconds",
            m.knative.processing_ms.clone(),
        );
        let registry = root.sub_registry_with_prefix("ferry_dispatcher");
        // A table: one line a metric, `name, help => handle`.
        macro_rules! register {
            ($($name:literal, $help:literal => $metric:expr;)*) => {
                $(registry.register($name, $help, $metric.clone());)*
            };
        }
        register! {
            "ingress_events", "Events posted to ingress, by path and outcome (accepted or the rejection reason)" => m.ingress;
            "route_requests", "HTTP requests to Knative Service URLs, by route (namespace/name, #tag) and response code class" => m.route_requests;
            "egress_events", "Events handled by an egress, by outcome" => m.egress;
            "delivery_attempt_duration_seconds", "Duration of each delivery attempt, per egress" => m.delivery_seconds;
            "delivery_latency_seconds", "Time from the event's append to the log until it was delivered, per egress" => m.end_to_end_seconds;
            "in_flight_events", "Events consumed and not yet settled, per egress" => m.in_flight;
            "consumer_lag", "Records behind the end of the partition, per egress" => m.lag;
            "revision_ready_replicas", "Ready replicas of each activated revision (namespace/name) in the contract in force: where deliveries to it go" => m.ready_replicas;
            "contract_generation", "Generation of the contract in force" => m.generation;
            "contract_rejected", "Contract files rejected (the previous one stays in force)" => m.contract_rejected;
            "journal_dropped", "Delivery-journal entries not written (producer buffer full or log unreachable)" => m.journal_dropped;
        }
        Metrics {
            registry: root,
            ..m
        }
    }
}

impl Metrics {
    /// Counts an ingress request's outcome (`accepted`, `invalid`, `too_large`, `unknown_path`,
    /// `unavailable`, `method`).
    pub fn ingress(&self, path: &str, outcome: &str, events: u64) {
        self.ingress
            .get_or_create(&[("path", path.to_owned()), ("outcome", outcome.to_owned())])
            .inc_by(events);
    }

    /// The counter of ingress requests to `path` with `outcome`, to count many without looking
    /// it up each time.
    pub fn ingress_counter(&self, path: &str, outcome: &str) -> Counter {
        self.ingress
            .get_or_create(&[("path", path.to_owned()), ("outcome", outcome.to_owned())])
            .clone()
    }

    /// Counts one request to a Knative Service URL by its answer's class (`2xx`…`5xx`).
    pub fn route_request(&self, route: &str, status: http::StatusCode) {
        let class = format!("{}xx", status.as_u16() / 100);
        self.route_requests
            .get_or_create(&[("route", route.to_owned()), ("code_class", class)])
            .inc();
    }

    /// The per-egress counters, histograms and gauge, resolved once so the delivery path does
    /// not build label sets per event.
    pub fn for_egress(&self, egress: &str) -> EgressMetrics {
        let one = || [("egress", egress.to_owned())];
        let outcome = |o: EgressOutcome| {
            self.egress
                .get_or_create(&[
                    ("egress", egress.to_owned()),
                    ("outcome", o.label().to_owned()),
                ])
                .clone()
        };
        EgressMetrics {
            outcomes: EgressOutcome::ALL.map(outcome),
            attempt: self.delivery_seconds.get_or_create(&one()).clone(),
            end_to_end: self.end_to_end_seconds.get_or_create(&one()).clone(),
            in_flight: self.in_flight.get_or_create(&one()).clone(),
        }
    }

    /// Sets the lag of one partition.
    pub fn lag(&self, egress: &str, topic: &str, partition: i32, lag: i64) {
        self.lag
            .get_or_create(&[
                ("egress", egress.to_owned()),
                ("topic", topic.to_owned()),
                ("partition", partition.to_string()),
            ])
            .set(lag);
    }

    /// Sets the ready replicas of every activated revision, `(namespace/name, replicas)`, from
    /// the contract in force; revisions it no longer lists lose their series.
    pub fn ready_replicas<'a>(&self, revisions: impl IntoIterator<Item = (&'a str, usize)>) {
        let mut activated = self.activated.lock().unwrap_or_else(|e| e.into_inner());
        let now: Vec<(&str, usize)> = revisions.into_iter().collect();
        for gone in activated
            .iter()
            .filter(|r| !now.iter().any(|(n, _)| n == r))
        {
            self.ready_replicas.remove(&[("revision", gone.clone())]);
        }
        for (revision, replicas) in &now {
            self.ready_replicas
                .get_or_create(&[("revision", (*revision).to_owned())])
                .set(i64::try_from(*replicas).unwrap_or(i64::MAX));
        }
        *activated = now.into_iter().map(|(r, _)| r.to_owned()).collect();
    }

    /// Records the contract generation in force.
    pub fn contract_applied(&self, generation: u64) {
        self.generation.set(generation);
    }

    /// Counts a rejected contract.
    pub fn contract_rejected(&self) {
        self.contract_rejected.inc();
    }

    /// Counts a journal entry that could not be handed to the log.
    pub fn journal_dropped(&self) {
        self.journal_dropped.inc();
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_beyond_the_cap_are_counted_as_other() {
        let k = Knative::default();
        for i in 0..MAX_EVENT_TYPES {
            assert!(k.admits("ns/b", &format!("t{i}")));
        }
        assert!(!k.admits("ns/b", "one-too-many"));
        assert!(k.admits("ns/b", "t7"), "known types keep their name");
        assert!(k.admits("ns/other", "new"), "the cap is per resource");
    }

    /// The lines of `render()` that start with `prefix`, sorted.
    fn lines(metrics: &Metrics, prefix: &str) -> Vec<String> {
        let mut found: Vec<String> = metrics
            .render()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_owned)
            .collect();
        found.sort();
        found
    }

    #[test]
    fn ready_replicas_follow_the_contract_and_drop_revisions_no_longer_listed() {
        let metrics = Metrics::default();
        metrics.ready_replicas([("ns/a-00001", 0), ("ns/b-00001", 2)]);
        metrics.ready_replicas([("ns/a-00001", 1)]);
        assert_eq!(
            lines(&metrics, "ferry_dispatcher_revision_ready_replicas{"),
            [r#"ferry_dispatcher_revision_ready_replicas{revision="ns/a-00001"} 1"#]
        );
    }

    #[test]
    fn series_record_under_knatives_labels() {
        let metrics = Metrics::default();
        let ingress = metrics.knative.ingress_series("ns", "b");
        let trigger = metrics.knative.consumer_series(&KnativeConsumer {
            namespace: "ns".into(),
            name: "b".into(),
            consumer: "t".into(),
        });
        ingress.answered("order.created", 202, Duration::from_millis(3));
        ingress.answered("order.created", 202, Duration::from_millis(60));
        ingress.answered("order.created", 400, Duration::from_millis(1));
        trigger.answered("order.created", 503, Duration::from_millis(2));
        trigger.processed("order.created", Duration::from_millis(700));
        assert_eq!(
            lines(&metrics, "event_count_1_total"),
            [
                r#"event_count_1_total{name="b",namespace_name="ns",event_type="order.created",response_code="202",response_code_class="2xx"} 2"#,
                r#"event_count_1_total{name="b",namespace_name="ns",event_type="order.created",response_code="400",response_code_class="4xx"} 1"#,
                r#"event_count_1_total{name="b",namespace_name="ns",event_type="order.created",response_code="503",response_code_class="5xx",consumer_name="t"} 1"#,
            ]
        );
        let dispatch = lines(
            &metrics,
            r#"event_dispatch_latencies_ms_bucket{le="50.0",name="b",namespace_name="ns",event_type="order.created",response_code="202",response_code_class="2xx"}"#,
        );
        assert_eq!(dispatch.len(), 1);
        assert!(
            dispatch[0].ends_with(" 1"),
            "one of two under 50 ms: {dispatch:?}"
        );
        assert_eq!(
            lines(&metrics, "event_processing_latencies_ms_count"),
            [
                r#"event_processing_latencies_ms_count{name="b",namespace_name="ns",event_type="order.created",consumer_name="t"} 1"#
            ]
        );
    }

    #[test]
    fn series_beyond_the_type_cap_share_other_across_ingress_and_consumers() {
        let metrics = Metrics::default();
        let ingress = metrics.knative.ingress_series("ns", "b");
        let trigger = metrics.knative.consumer_series(&KnativeConsumer {
            namespace: "ns".into(),
            name: "b".into(),
            consumer: "t".into(),
        });
        for i in 0..MAX_EVENT_TYPES {
            ingress.answered(&format!("t{i}"), 202, Duration::ZERO);
        }
        ingress.answered("late", 202, Duration::ZERO);
        ingress.answered("later", 202, Duration::ZERO);
        trigger.answered("t0", 200, Duration::ZERO);
        trigger.answered("late", 200, Duration::ZERO);
        let other = lines(
            &metrics,
            r#"event_count_1_total{name="b",namespace_name="ns",event_type="other""#,
        );
        assert_eq!(
            other,
            [
                r#"event_count_1_total{name="b",namespace_name="ns",event_type="other",response_code="200",response_code_class="2xx",consumer_name="t"} 1"#,
                r#"event_count_1_total{name="b",namespace_name="ns",event_type="other",response_code="202",response_code_class="2xx"} 2"#,
            ]
        );
        assert_eq!(
            lines(
                &metrics,
                r#"event_count_1_total{name="b",namespace_name="ns",event_type="t0""#
            )
            .len(),
            2,
            "an admitted type keeps its name for the consumer too"
        );
    }
}
