//! Produce: validate and append each partition's batches now, acknowledge once the flush
//! policy says they are durable.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use super::broker::{Broker, Ctx, Respond, now_ms};
use crate::error::Error;
use crate::security::acl::{op, resource};
use crate::storage::FlushPolicy;
use crate::topics::Partition;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const REQUEST_TIMED_OUT: i16 = 7;
const INVALID_REQUIRED_ACKS: i16 = 21;
const INVALID_REQUEST: i16 = 42;
const KAFKA_STORAGE_ERROR: i16 = 56;
const INVALID_RECORD: i16 = 87;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;

/// A partition whose append must become durable before the response.
struct Durable {
    topic: usize,
    partition: usize,
    log: Arc<Partition>,
    end: i64,
}

fn result(index: i32, error: i16, message: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error)
        .with_base_offset(-1)
        .with_error_message(message.map(StrBytes::from_string))
}

/// Why the whole request is refused before any append: the error code and message.
fn refusal(req: &ProduceRequest) -> Option<(i16, &'static str)> {
    if req.transactional_id.is_some() {
        Some((
            INVALID_REQUEST,
            "transactions are not supported by Ferry's embedded broker; unset transactional.id",
        ))
    } else if !matches!(req.acks, -1..=1) {
        Some((INVALID_REQUIRED_ACKS, "acks must be 0, 1 or -1 (all)"))
    } else {
        None
    }
}

/// Every partition of the request answered with `error` and `message`.
fn refuse_all(req: &ProduceRequest, error: i16, message: &str) -> Vec<TopicProduceResponse> {
    req.topic_data
        .iter()
        .map(|t| {
            TopicProduceResponse::default()
                .with_name(t.name.clone())
                .with_partition_responses(
                    t.partition_data
                        .iter()
                        .map(|p| result(p.index, error, Some(message.to_owned())))
                        .collect(),
                )
        })
        .collect()
}

impl Broker {
    pub(super) fn produce(self: &Arc<Self>, req: ProduceRequest, ctx: &Ctx) -> Respond {
        let policy = self.config.flush;
        let mut durable = Vec::new();
        let mut responses = match refusal(&req) {
            Some((error, message)) => refuse_all(&req, error, message),
            None => self.append_all(&req, ctx, &mut durable),
        };
        let broker = self.clone();
        let timeout =
            Duration::from_millis(u64::try_from(req.timeout_ms.max(1000)).unwrap_or(1000));
        let wait = async move {
            let failed = broker.await_durable(&durable, policy, timeout).await;
            for (d, error) in durable.iter().zip(failed) {
                if let Some(error) = error {
                    let part = &mut responses[d.topic].partition_responses[d.partition];
                    *part = result(part.index, error, None);
                }
            }
            responses
        };
        if req.acks == 0 {
            // No response; the durability work still has to happen for visibility.
            tokio::spawn(wait);
            return Box::pin(async { None });
        }
        Box::pin(async move {
            let responses = wait.await;
            Some(ResponseKind::from(
                ProduceResponse::default().with_responses(responses),
            ))
        })
    }

    /// Appends every partition's batches in request order: the responses as if already
    /// durable, and in `durable` the appends that must become durable before they are sent.
    fn append_all(
        &self,
        req: &ProduceRequest,
        ctx: &Ctx,
        durable: &mut Vec<Durable>,
    ) -> Vec<TopicProduceResponse> {
        let now = now_ms();
        let mut responses = Vec::with_capacity(req.topic_data.len());
        for (ti, t) in req.topic_data.iter().enumerate() {
            if !ctx.may(self, op::WRITE, resource::TOPIC, t.name.as_str()) {
                let message = format!(
                    "{} may not write to topic {}",
                    ctx.principal,
                    t.name.as_str()
                );
                responses.push(
                    TopicProduceResponse::default()
                        .with_name(t.name.clone())
                        .with_partition_responses(
                            t.partition_data
                                .iter()
                                .map(|p| {
                                    result(
                                        p.index,
                                        TOPIC_AUTHORIZATION_FAILED,
                                        Some(message.clone()),
                                    )
                                })
                                .collect(),
                        ),
                );
                continue;
            }
            let topic = self.topics.get(t.name.as_str());
            let mut parts = Vec::with_capacity(t.partition_data.len());
            for (pi, p) in t.partition_data.iter().enumerate() {
                let Some(log) = topic.as_ref().and_then(|t| t.partition(p.index)) else {
                    parts.push(result(p.index, UNKNOWN_TOPIC_OR_PARTITION, None));
                    continue;
                };
                let Some(records) = &p.records else {
                    parts.push(result(
                        p.index,
                        INVALID_RECORD,
                        Some("the partition carries no records".into()),
                    ));
                    continue;
                };
                let (response, end) = self.append(&log, p.index, records, now, ctx);
                if let Some(end) = end.filter(|_| self.config.flush != FlushPolicy::Os) {
                    durable.push(Durable {
                        topic: ti,
                        partition: pi,
                        log,
                        end,
                    });
                }
                parts.push(response);
            }
            responses.push(
                TopicProduceResponse::default()
                    .with_name(t.name.clone())
                    .with_partition_responses(parts),
            );
        }
        responses
    }

    /// Appends one partition's batches: the response, and the end offset that must become
    /// durable when something new was written.
    fn append(
        &self,
        log: &Partition,
        index: i32,
        records: &[u8],
        now: i64,
        ctx: &Ctx,
    ) -> (PartitionProduceResponse, Option<i64>) {
        let mut bytes = records.to_vec();
        // A client's batches are checked record by record before anything is written.
        let appended = crate::storage::check_produced(&bytes)
            .and_then(|()| log.append(&mut bytes, now, self.config.flush, &self.metrics));
        match appended {
            Ok(done) => {
                if !done.duplicate {
                    self.metrics
                        .appended(log.topic(), done.records, bytes.len() as u64);
                }
                let log_start_offset = if ctx.version >= 5 {
                    log.log_start_offset()
                } else {
                    -1
                };
                let response = PartitionProduceResponse::default()
                    .with_index(index)
                    .with_base_offset(done.base_offset)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(log_start_offset);
                (response, (!done.duplicate).then_some(done.end_offset))
            }
            Err(e) => {
                let code = e.kafka_code();
                if code == KAFKA_STORAGE_ERROR {
                    tracing::error!(topic = log.topic(), partition = index, error = %e, "append failed");
                } else {
                    tracing::debug!(peer = %ctx.peer, topic = log.topic(), partition = index, error = %e, "append refused");
                }
                let mut response = result(index, code, Some(e.to_string()));
                // KIP-467: the records that made the batch fail, so that clients fail those
                // with the error and the others of the batch as collateral.
                if let Error::KeylessRecords { indexes, .. } = &e {
                    response.record_errors = indexes
                        .iter()
                        .map(|&i| {
                            BatchIndexAndErrorMessage::default()
                                .with_batch_index(i)
                                .with_batch_index_error_message(Some(StrBytes::from_string(
                                    e.to_string(),
                                )))
                        })
                        .collect();
                }
                (response, None)
            }
        }
    }

    /// Waits until every appended partition is durable; per partition, the error to answer
    /// with instead of success.
    async fn await_durable(
        &self,
        durable: &[Durable],
        policy: FlushPolicy,
        timeout: Duration,
    ) -> Vec<Option<i16>> {
        if policy == FlushPolicy::Os {
            return vec![None; durable.len()];
        }
        // Under `always` a sync starts now unless one runs (group commit); under
        // `interval` the flusher's next one covers the append.
        if policy == FlushPolicy::Always {
            for d in durable {
                d.log.request_sync(d.end, &self.metrics);
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::with_capacity(durable.len());
        for d in durable {
            out.push(
                match tokio::time::timeout_at(deadline, d.log.wait_durable(d.end)).await {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "produce not acknowledged");
                        Some(KAFKA_STORAGE_ERROR)
                    }
                    Err(_) => Some(REQUEST_TIMED_OUT),
                },
            );
        }
        out
    }
}
