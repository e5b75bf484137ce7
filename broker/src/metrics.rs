//! The broker's Prometheus metrics, served as text on the admin port's `/metrics`.

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = [(&'static str, String); 1];

fn histogram() -> Histogram {
    // 50 µs .. ~13 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 19))
}

/// Counters and histograms of one broker. Each is registered under its field's name.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    bytes_in: Family<Labels, Counter>,
    records_in: Family<Labels, Counter>,
    bytes_out: Family<Labels, Counter>,
    records_out: Family<Labels, Counter>,
    request_duration_seconds: Family<Labels, Histogram>,
    group_rebalances: Counter,
    fsync_duration_seconds: Histogram,
    fsync_failures: Counter,
    partitions_fenced: Gauge,
    storage_write_failures: Family<[(&'static str, String); 2], Counter>,
    recovery_truncated_bytes: Family<[(&'static str, String); 2], Counter>,
    sasl_authentications: Family<[(&'static str, String); 2], Counter>,
    tls_handshake_failures: Counter,
    connections_open: Gauge,
    connections_refused: Family<Labels, Counter>,
    connections_timed_out: Family<Labels, Counter>,
    compactions: Family<Labels, Counter>,
    compaction_removed_records: Family<Labels, Counter>,
    compaction_reclaimed_bytes: Family<Labels, Counter>,
    compaction_failures: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("ferry_broker"),
            bytes_in: Family::default(),
            records_in: Family::default(),
            bytes_out: Family::default(),
            records_out: Family::default(),
            request_duration_seconds: Family::new_with_constructor(histogram),
            group_rebalances: Counter::default(),
            fsync_duration_seconds: histogram(),
            fsync_failures: Counter::default(),
            partitions_fenced: Gauge::default(),
            storage_write_failures: Family::default(),
            recovery_truncated_bytes: Family::default(),
            sasl_authentications: Family::default(),
            tls_handshake_failures: Counter::default(),
            connections_open: Gauge::default(),
            connections_refused: Family::default(),
            connections_timed_out: Family::default(),
            compactions: Family::default(),
            compaction_removed_records: Family::default(),
            compaction_reclaimed_bytes: Family::default(),
            compaction_failures: Family::default(),
        };
        // `field: help`, one a metric: registers `m.field` as `ferry_broker_<field>`.
        macro_rules! register {
            ($($metric:ident: $help:literal,)*) => {
                $(m.registry.register(stringify!($metric), $help, m.$metric.clone());)*
            };
        }
        register! {
            bytes_in: "Record-batch bytes appended, per topic",
            records_in: "Records appended, per topic",
            bytes_out: "Record-batch bytes returned to fetches, per topic",
            records_out: "Records returned to fetches, per topic",
            request_duration_seconds: "Time from a request's arrival to its response, per Kafka API",
            group_rebalances: "Consumer-group rebalances completed",
            fsync_duration_seconds: "Duration of each fsync of a partition log",
            fsync_failures: "Failed fsyncs of a partition log; each stops (fences) its partition's writes until a restart",
            partitions_fenced: "Partitions that take no writes since a disk write or fsync failed (until a restart); /readyz fails while any is",
            storage_write_failures: "Failed disk writes, per store (log, offsets) and outcome: rolled_back (undone, the request may be retried) or fenced (the store takes no more writes until a restart)",
            recovery_truncated_bytes: "Bytes dropped by crash recovery at start, per store (log, offsets) and reason: torn_tail (an incomplete last write) or corrupt (damage followed by valid data, dropped only when allowed)",
            sasl_authentications: "SASL authentications, per mechanism and result (success or failure)",
            tls_handshake_failures: "TLS handshakes on the Kafka listener that failed or timed out",
            connections_open: "Open connections on the Kafka listener",
            connections_refused: "Connections closed at accept, per cap reached (max_connections, max_connections_per_ip)",
            connections_timed_out: "Connections closed by a deadline: idle, request_read or sasl_login",
            compactions: "Cleanings of a compacted topic's partitions, per topic",
            compaction_removed_records: "Records compaction removed (superseded, expired tombstones, keyless), per topic",
            compaction_reclaimed_bytes: "Bytes compaction freed, per topic",
            compaction_failures: "Cleanings that failed, per topic; the partition is not compacted again until a restart",
        }
        m
    }
}

impl Metrics {
    /// Counts an append of `records` records in `bytes` bytes to `topic`.
    pub fn appended(&self, topic: &str, records: u64, bytes: u64) {
        let l = [("topic", topic.to_owned())];
        self.bytes_in.get_or_create(&l).inc_by(bytes);
        self.records_in.get_or_create(&l).inc_by(records);
    }

    /// Counts `records` records in `bytes` bytes returned from `topic`.
    pub fn fetched(&self, topic: &str, records: u64, bytes: u64) {
        let l = [("topic", topic.to_owned())];
        self.bytes_out.get_or_create(&l).inc_by(bytes);
        self.records_out.get_or_create(&l).inc_by(records);
    }

    /// Records how long a request of `api` took.
    pub fn request(&self, api: &str, took: Duration) {
        self.request_duration_seconds
            .get_or_create(&[("api", api.to_owned())])
            .observe(took.as_secs_f64());
    }

    /// Counts a completed rebalance.
    pub fn rebalanced(&self) {
        self.group_rebalances.inc();
    }

    /// Records an fsync's duration.
    pub fn fsynced(&self, took: Duration) {
        self.fsync_duration_seconds.observe(took.as_secs_f64());
    }

    /// Counts a failed fsync (which fenced its partition).
    pub fn fsync_failed(&self) {
        self.fsync_failures.inc();
    }

    /// Counts a partition whose writes just stopped (once per partition).
    pub fn partition_fenced(&self) {
        self.partitions_fenced.inc();
    }

    /// Counts a failed disk write to `store` (`log`, `offsets`) and its `outcome`
    /// (`rolled_back`, `fenced`).
    pub fn storage_write_failed(&self, store: &str, outcome: &str) {
        self.storage_write_failures
            .get_or_create(&[("store", store.to_owned()), ("outcome", outcome.to_owned())])
            .inc();
    }

    /// Counts `bytes` dropped from `store` by recovery for `reason` (`torn_tail`, `corrupt`).
    pub fn recovery_truncated(&self, store: &str, reason: &str, bytes: u64) {
        self.recovery_truncated_bytes
            .get_or_create(&[("store", store.to_owned()), ("reason", reason.to_owned())])
            .inc_by(bytes);
    }

    /// Counts a cleaning of one of `topic`'s partitions.
    pub fn compacted(&self, topic: &str, done: &crate::storage::Cleaned) {
        let l = [("topic", topic.to_owned())];
        self.compactions.get_or_create(&l).inc();
        self.compaction_removed_records
            .get_or_create(&l)
            .inc_by(done.records_removed);
        self.compaction_reclaimed_bytes
            .get_or_create(&l)
            .inc_by(done.bytes_before.saturating_sub(done.bytes_after));
    }

    /// Counts a failed cleaning of one of `topic`'s partitions.
    pub fn compaction_failed(&self, topic: &str) {
        self.compaction_failures
            .get_or_create(&[("topic", topic.to_owned())])
            .inc();
    }

    /// Counts a SASL authentication that succeeded (`ok`) or failed. `mechanism` is a
    /// mechanism name, `unsupported` or `none` (a request before any handshake).
    pub fn authenticated(&self, mechanism: &str, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.sasl_authentications
            .get_or_create(&[
                ("mechanism", mechanism.to_owned()),
                ("result", result.to_owned()),
            ])
            .inc();
    }

    /// Counts a failed TLS handshake.
    pub fn tls_handshake_failed(&self) {
        self.tls_handshake_failures.inc();
    }

    /// Counts a connection admitted (open until [`Metrics::connection_closed`]).
    pub fn connection_opened(&self) {
        self.connections_open.inc();
    }

    /// Counts an admitted connection's end.
    pub fn connection_closed(&self) {
        self.connections_open.dec();
    }

    /// Counts a connection refused at accept because the cap `reason` was reached.
    pub fn connection_refused(&self, reason: &str) {
        self.connections_refused
            .get_or_create(&[("reason", reason.to_owned())])
            .inc();
    }

    /// Counts a connection closed by the deadline `reason` (`idle`, `request_read`,
    /// `sasl_login`).
    pub fn connection_timed_out(&self, reason: &str) {
        self.connections_timed_out
            .get_or_create(&[("reason", reason.to_owned())])
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labelled_series() {
        let m = Metrics::default();
        m.appended("orders", 3, 300);
        m.fetched("orders", 2, 200);
        m.request("Produce", Duration::from_millis(2));
        m.rebalanced();
        m.fsynced(Duration::from_micros(500));
        m.fsync_failed();
        m.partition_fenced();
        m.storage_write_failed("log", "rolled_back");
        m.recovery_truncated("log", "torn_tail", 40);
        m.authenticated("SCRAM-SHA-512", true);
        m.authenticated("PLAIN", false);
        m.tls_handshake_failed();
        m.connection_opened();
        m.connection_refused("max_connections");
        m.connection_timed_out("idle");
        let text = m.render();
        for want in [
            "ferry_broker_bytes_in_total{topic=\"orders\"} 300",
            "ferry_broker_records_in_total{topic=\"orders\"} 3",
            "ferry_broker_records_out_total{topic=\"orders\"} 2",
            "ferry_broker_request_duration_seconds_count{api=\"Produce\"} 1",
            "ferry_broker_group_rebalances_total 1",
            "ferry_broker_fsync_duration_seconds_count 1",
            "ferry_broker_fsync_failures_total 1",
            "ferry_broker_partitions_fenced 1",
            "ferry_broker_storage_write_failures_total{store=\"log\",outcome=\"rolled_back\"} 1",
            "ferry_broker_recovery_truncated_bytes_total{store=\"log\",reason=\"torn_tail\"} 40",
            "ferry_broker_sasl_authentications_total{mechanism=\"SCRAM-SHA-512\",result=\"success\"} 1",
            "ferry_broker_sasl_authentications_total{mechanism=\"PLAIN\",result=\"failure\"} 1",
            "ferry_broker_tls_handshake_failures_total 1",
            "ferry_broker_connections_open 1",
            "ferry_broker_connections_refused_total{reason=\"max_connections\"} 1",
            "ferry_broker_connections_timed_out_total{reason=\"idle\"} 1",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
    }
}
