//! The dispatcher's Prometheus metrics, served as text on the admin port's `/metrics`.

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

fn latency() -> Histogram {
    // 100 µs .. ~52 s
    Histogram::new(exponential_buckets(0.000_1, 2.0, 20))
}

/// Everything the dispatcher counts.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
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
        };
        let mut registry = Registry::with_prefix("ferry_dispatcher");
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
        Metrics { registry, ..m }
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
