//! DeleteRecords: moving partitions' log start offsets forward (the decision and the effect
//! are the partition's, [`crate::topics::Partition::delete_records`]). On a single replica the
//! low watermark answered is the new log start at once; the request's timeout (how long to
//! wait for followers) has nothing to wait for.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::broker::{Broker, Ctx};
use crate::security::acl::{op, resource};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const KAFKA_STORAGE_ERROR: i16 = 56;

impl Broker {
    pub(super) fn delete_records(
        &self,
        req: &DeleteRecordsRequest,
        ctx: &Ctx,
    ) -> DeleteRecordsResponse {
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let deletable = ctx.may(self, op::DELETE, resource::TOPIC, t.name.as_str());
                let topic = self.topics.get(t.name.as_str()).filter(|_| deletable);
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let out = DeleteRecordsPartitionResult::default()
                            .with_partition_index(p.partition_index)
                            .with_low_watermark(-1);
                        let Some(log) = topic.as_ref().and_then(|t| t.partition(p.partition_index))
                        else {
                            let code = if deletable {
                                UNKNOWN_TOPIC_OR_PARTITION
                            } else {
                                TOPIC_AUTHORIZATION_FAILED
                            };
                            return out.with_error_code(code);
                        };
                        match log.delete_records(p.offset) {
                            Ok(low_watermark) => {
                                tracing::info!(
                                    topic = log.topic(),
                                    partition = log.index(),
                                    requested = p.offset,
                                    low_watermark,
                                    peer = %ctx.peer,
                                    "deleted records"
                                );
                                out.with_low_watermark(low_watermark)
                            }
                            Err(e) => {
                                let code = e.kafka_code();
                                if code == KAFKA_STORAGE_ERROR {
                                    tracing::error!(topic = log.topic(), partition = log.index(), error = %e, "delete records failed");
                                } else {
                                    tracing::debug!(topic = log.topic(), partition = log.index(), error = %e, peer = %ctx.peer, "delete records refused");
                                }
                                out.with_error_code(code)
                            }
                        }
                    })
                    .collect();
                DeleteRecordsTopicResult::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        DeleteRecordsResponse::default().with_topics(topics)
    }
}
