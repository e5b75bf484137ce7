//! OffsetDelete: forgetting some of a group's committed offsets (the decision is the
//! coordinator's, [`crate::groups::ConsumerGroupCoordinator::delete_offsets`]).

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::broker::{Broker, Ctx};
use crate::security::acl::{op, resource};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;

impl Broker {
    pub(super) fn offset_delete(
        &self,
        req: &OffsetDeleteRequest,
        ctx: &Ctx,
    ) -> OffsetDeleteResponse {
        let group = req.group_id.as_str();
        if !ctx.may(self, op::DELETE, resource::GROUP, group) {
            return OffsetDeleteResponse::default().with_error_code(GROUP_AUTHORIZATION_FAILED);
        }
        let readable = |topic: &str| ctx.may(self, op::READ, resource::TOPIC, topic);
        // Partitions that do not exist (or whose topic the caller may not read) are answered
        // here; the rest go to the coordinator.
        let exists = |topic: &str, partition: i32| {
            readable(topic)
                && self
                    .topics
                    .get(topic)
                    .is_some_and(|t| t.partition(partition).is_some())
        };
        let known: Vec<(String, i32)> = req
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.name.as_str(), p.partition_index))
            })
            .filter(|(t, p)| exists(t, *p))
            .map(|(t, p)| (t.to_owned(), p))
            .collect();
        let codes = match self.groups.delete_offsets(group, &known) {
            Ok(codes) => codes,
            Err(code) => return OffsetDeleteResponse::default().with_error_code(code),
        };
        tracing::info!(group, partitions = known.len(), peer = %ctx.peer, "offset delete");
        let mut answered = known.iter().zip(codes);
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let code = if exists(t.name.as_str(), p.partition_index) {
                            answered.next().map_or(0, |(_, c)| c)
                        } else if !readable(t.name.as_str()) {
                            TOPIC_AUTHORIZATION_FAILED
                        } else {
                            UNKNOWN_TOPIC_OR_PARTITION
                        };
                        OffsetDeleteResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code)
                    })
                    .collect();
                OffsetDeleteResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        OffsetDeleteResponse::default().with_topics(topics)
    }
}
