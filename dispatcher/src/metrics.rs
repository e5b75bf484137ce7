//! The dispatcher's Prometheus metrics, served as text on the admin port's `/metrics`.
//!
//! Ferry's own are prefixed `ferry_dispatcher_`. Beside them, the broker ingress and trigger
//! dispatcher metrics Knative's Kafka broker data plane exports, with its names, units and
//! labels, so dashboards and alerts written for Knative find them ([`Knative`]).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
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
    /// `ty`, or `other` once the resource has [`MAX_EVENT_TYPES`] other types.
    fn event_type(&self, resource: &str, ty: &str) -> String {
        let mut types = self.types.lock().unwrap_or_else(|e| e.into_inner());
        let seen = types.entry(resource.to_owned()).or_default();
        if seen.contains(ty) || (seen.len() < MAX_EVENT_TYPES && seen.insert(ty.to_owned())) {
            ty.to_owned()
        } else {
            "other".to_owned()
        }
    }

    fn labels(&self, namespace: &str, name: &str, ty: &str, status: Option<u16>) -> KnativeLabels {
        let mut labels = vec![
            ("name", name.to_owned()),
            ("namespace_name", namespace.to_owned()),
            (
                "event_type",
                self.event_type(&format!("{namespace}/{name}"), ty),
            ),
        ];
        if let Some(code) = status {
            labels.push(("response_code", code.to_string()));
            labels.push(("response_code_class", format!("{}xx", code / 100)));
        }
        labels
    }

    /// One event answered by the ingress (its type, or `unknown` when it was not read), and
    /// how long the request took.
    pub fn ingress(&self, namespace: &str, name: &str, ty: &str, status: u16, took: Duration) {
        let labels = self.labels(namespace, name, ty, Some(status));
        self.event_count.get_or_create(&labels).inc();
        self.dispatch_ms
            .get_or_create(&labels)
            .observe(millis(took));
    }

    /// One delivery attempt answered with `status`, and how long it took.
    pub fn dispatch(&self, to: &KnativeConsumer, ty: &str, status: u16, took: Duration) {
        let mut labels = self.labels(&to.namespace, &to.name, ty, Some(status));
        labels.push(("consumer_name", to.consumer.clone()));
        self.event_count.get_or_create(&labels).inc();
        self.dispatch_ms
            .get_or_create(&labels)
            .observe(millis(took));
    }

    /// One event settled by a consumer, from when it was read to when it was settled.
    pub fn processing(&self, to: &KnativeConsumer, ty: &str, took: Duration) {
        let mut labels = self.labels(&to.namespace, &to.name, ty, None);
        labels.push(("consumer_name", to.consumer.clone()));
        self.processing_ms
            .get_or_create(&labels)
            .observe(millis(took));
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
    pub knative: Knative,
    ingress: Family<Labels2, Counter>,
    route_requests: Family<Labels2, Counter>,
    egress: Family<Labels2, Counter>,
    delivery_seconds: Family<Labels1, Histogram>,
    end_to_end_seconds: Family<Labels1, Histogram>,
    in_flight: Family<Labels1, Gauge>,
    lag: Family<Labels3, Gauge>,
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
            generation: Gauge::default(),
            contract_rejected: Counter::default(),
            journal_dropped: Counter::default(),
            registry: Registry::default(),
            knative: Knative::default(),
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
            assert_eq!(k.event_type("ns/b", &format!("t{i}")), format!("t{i}"));
        }
        assert_eq!(k.event_type("ns/b", "one-too-many"), "other");
        assert_eq!(
            k.event_type("ns/b", "t7"),
            "t7",
            "known types keep their name"
        );
        assert_eq!(
            k.event_type("ns/other", "new"),
            "new",
            "the cap is per resource"
        );
    }
}
