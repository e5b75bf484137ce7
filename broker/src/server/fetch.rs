//! Fetch and ListOffsets. Fetch long-polls: when less than `min_bytes` is visible it waits
//! for new data (a watch channel bumped whenever a high watermark moves) until `max_wait_ms`,
//! without polling.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
};

use super::broker::{Broker, Ctx};
use crate::error::Error;
use crate::security::acl::{op, resource};

const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const INVALID_REQUEST: i16 = 42;
const KAFKA_STORAGE_ERROR: i16 = 56;

/// ListOffsets' special timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
/// KIP-734 (ListOffsets v7+): the record with the largest timestamp.
const MAX_TIMESTAMP: i64 = -3;

impl Broker {
    pub(super) async fn fetch(self: Arc<Self>, req: FetchRequest, ctx: Ctx) -> FetchResponse {
        // Checked once: the ACLs a long poll started under hold for all of it.
        let readable: Vec<bool> = req
            .topics
            .iter()
            .map(|t| ctx.may(&self, op::READ, resource::TOPIC, t.topic.as_str()))
            .collect();
        let mut rx = self.data_version.subscribe();
        let wait = Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0));
        let deadline = tokio::time::Instant::now() + wait.min(Duration::from_secs(60));
        let mut shutdown = self.shutdown.clone();
        loop {
            rx.borrow_and_update();
            let (response, bytes, errors) = self.fetch_once(&req, &readable);
            let enough = bytes >= usize::try_from(req.min_bytes).unwrap_or(0).max(1);
            if enough || errors || self.stopping() || tokio::time::Instant::now() >= deadline {
                self.count_fetched(&response);
                return response;
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return response },
                _ = tokio::time::sleep_until(deadline) => {}
                // Gone without a shutdown signal (the broker was dropped): stop waiting.
                stopped = shutdown.changed() => if stopped.is_err() { return response },
            }
        }
    }

    fn count_fetched(&self, response: &FetchResponse) {
        for t in &response.responses {
            for p in &t.partitions {
                if let Some(r) = p.records.as_ref().filter(|r| !r.is_empty()) {
                    let count = crate::storage::count(r).records;
                    self.metrics
                        .fetched(t.topic.as_str(), count, r.len() as u64);
                }
            }
        }
    }

    /// One pass over the requested partitions: the response, bytes returned, and whether
    /// any partition answered with an error (which ends a long poll, as in Kafka).
    fn fetch_once(&self, req: &FetchRequest, readable: &[bool]) -> (FetchResponse, usize, bool) {
        let mut total = 0usize;
        let mut errors = false;
        // The broker's fetch.max.bytes bounds whatever the request asks (Fetch v4+ always
        // carries a total).
        let max_total = usize::try_from(req.max_bytes)
            .unwrap_or(0)
            .min(self.config.fetch_max_bytes);
        let mut responses = Vec::with_capacity(req.topics.len());
        for (t, &readable) in req.topics.iter().zip(readable) {
            let topic = self.topics.get(t.topic.as_str()).filter(|_| readable);
            let mut parts = Vec::with_capacity(t.partitions.len());
            for p in &t.partitions {
                let mut out = PartitionData::default()
                    .with_partition_index(p.partition)
                    .with_high_watermark(-1)
                    .with_last_stable_offset(-1)
                    .with_log_start_offset(-1)
                    .with_aborted_transactions(Some(Vec::new()))
                    .with_records(Some(Bytes::new()));
                let Some(log) = topic.as_ref().and_then(|t| t.partition(p.partition)) else {
                    errors = true;
                    let code = if readable {
                        UNKNOWN_TOPIC_OR_PARTITION
                    } else {
                        TOPIC_AUTHORIZATION_FAILED
                    };
                    parts.push(out.with_error_code(code));
                    continue;
                };
                // KIP-74: only the first batch of the first partition with data may exceed
                // the limits (so a consumer always progresses); everything else fits them.
                let room = max_total.saturating_sub(total);
                let limit = usize::try_from(p.partition_max_bytes)
                    .unwrap_or(0)
                    .min(room);
                let first = total == 0;
                let read = if limit == 0 && !first {
                    Ok(crate::topics::ReadOutcome {
                        high_watermark: log.high_watermark(),
                        log_start_offset: log.log_start_offset(),
                        ..Default::default()
                    })
                } else {
                    log.read(p.fetch_offset, limit.max(1)).map(|mut r| {
                        if !first && r.records.len() > limit {
                            // The storage returned one oversized batch; it waits for a fetch
                            // where this partition comes first.
                            r.records.clear();
                            r.count = 0;
                        }
                        r
                    })
                };
                match read {
                    Ok(r) => {
                        total += r.records.len();
                        out = out
                            .with_high_watermark(r.high_watermark)
                            .with_last_stable_offset(r.high_watermark)
                            .with_log_start_offset(r.log_start_offset)
                            .with_records(Some(Bytes::from(r.records)));
                    }
                    Err(Error::OffsetOutOfRange { .. }) => {
                        errors = true;
                        out = out
                            .with_error_code(OFFSET_OUT_OF_RANGE)
                            .with_high_watermark(log.high_watermark())
                            .with_last_stable_offset(log.high_watermark())
                            .with_log_start_offset(log.log_start_offset());
                    }
                    Err(e) => {
                        errors = true;
                        tracing::error!(topic = log.topic(), partition = log.index(), error = %e, "read failed");
                        out = out.with_error_code(KAFKA_STORAGE_ERROR);
                    }
                }
                parts.push(out);
            }
            responses.push(
                FetchableTopicResponse::default()
                    .with_topic(t.topic.clone())
                    .with_topic_id(topic.as_ref().map(|t| t.id()).unwrap_or_default())
                    .with_partitions(parts),
            );
        }
        (
            FetchResponse::default().with_responses(responses),
            total,
            errors,
        )
    }

    pub(super) fn list_offsets(&self, req: ListOffsetsRequest, ctx: &Ctx) -> ListOffsetsResponse {
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let described = ctx.may(self, op::DESCRIBE, resource::TOPIC, t.name.as_str());
                let topic = self.topics.get(t.name.as_str()).filter(|_| described);
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let mut out = ListOffsetsPartitionResponse::default()
                            .with_partition_index(p.partition_index)
                            .with_timestamp(-1)
                            .with_offset(-1);
                        if ctx.version >= 4 {
                            out = out.with_leader_epoch(0);
                        }
                        let Some(log) = topic.as_ref().and_then(|t| t.partition(p.partition_index))
                        else {
                            let code = if described {
                                UNKNOWN_TOPIC_OR_PARTITION
                            } else {
                                TOPIC_AUTHORIZATION_FAILED
                            };
                            return out.with_error_code(code);
                        };
                        let found = match (p.timestamp, ctx.version) {
                            (EARLIEST, _) => return out.with_offset(log.log_start_offset()),
                            (LATEST, _) => return out.with_offset(log.high_watermark()),
                            (MAX_TIMESTAMP, 7..) => log.max_timestamp_offset(),
                            (ts, _) if ts >= 0 => log.offset_for_timestamp(ts),
                            _ => return out.with_error_code(INVALID_REQUEST),
                        };
                        match found {
                            Ok(Some((offset, ts))) => out.with_offset(offset).with_timestamp(ts),
                            Ok(None) => out,
                            Err(e) => {
                                tracing::error!(error = %e, "timestamp lookup failed");
                                out.with_error_code(KAFKA_STORAGE_ERROR)
                            }
                        }
                    })
                    .collect();
                ListOffsetsTopicResponse::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        ListOffsetsResponse::default().with_topics(topics)
    }
}
