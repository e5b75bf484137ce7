//! CreateTopics, DeleteTopics and CreatePartitions.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::broker::{Broker, Ctx};
use crate::error::Error;
use crate::security::acl::{CLUSTER_NAME, op, resource};

const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_REQUEST: i16 = 42;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

impl Broker {
    pub(super) fn create_topics(
        &self,
        req: CreateTopicsRequest,
        ctx: &Ctx,
    ) -> CreateTopicsResponse {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for t in &req.topics {
            *seen.entry(t.name.as_str()).or_default() += 1;
        }
        // CREATE on the cluster covers every topic; otherwise each needs its own.
        let cluster_create = ctx.may(self, op::CREATE, resource::CLUSTER, CLUSTER_NAME);
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let name = t.name.as_str();
                let out = CreatableTopicResult::default().with_name(t.name.clone());
                let fail = |code: i16, message: String| {
                    tracing::debug!(peer = %ctx.peer, topic = name, message, "create topic refused");
                    out.clone()
                        .with_error_code(code)
                        .with_error_message(Some(s(message)))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1)
                };
                if seen.get(name).copied().unwrap_or(0) > 1 {
                    return fail(INVALID_REQUEST, format!("topic `{name}` appears more than once in the request"));
                }
                if !cluster_create && !ctx.may(self, op::CREATE, resource::TOPIC, name) {
                    return fail(
                        TOPIC_AUTHORIZATION_FAILED,
                        format!("{} may not create topic {name}", ctx.principal),
                    );
                }
                let mut partitions = t.num_partitions;
                let mut replication = t.replication_factor;
                if !t.assignments.is_empty() {
                    if partitions != -1 || replication != -1 {
                        return fail(INVALID_REQUEST, "give either replica assignments or num_partitions/replication_factor, not both".into());
                    }
                    if t.assignments.iter().any(|a| a.broker_ids.iter().any(|b| b.0 != 0) || a.broker_ids.len() != 1) {
                        return fail(INVALID_REPLICA_ASSIGNMENT, Error::InvalidAssignment.to_string());
                    }
                    partitions = i32::try_from(t.assignments.len()).unwrap_or(i32::MAX);
                    replication = 1;
                }
                let configs: BTreeMap<String, String> = t
                    .configs
                    .iter()
                    .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string())))
                    .collect();
                match self.topics.create(name, partitions, replication, configs, req.validate_only) {
                    Ok(created) => {
                        let (count, config, id) = match &created {
                            Some(t) => (t.partition_count(), t.config(), t.id()),
                            None => (
                                if partitions == -1 { self.topics.defaults().partitions } else { partitions },
                                self.topics.defaults().config,
                                uuid::Uuid::nil(),
                            ),
                        };
                        let mut out = out.with_num_partitions(count).with_replication_factor(1).with_topic_id(id);
                        if ctx.version >= 5 {
                            out = out.with_configs(Some(
                                config
                                    .entries()
                                    .into_iter()
                                    .map(|(n, v)| {
                                        CreatableTopicConfigs::default()
                                            .with_name(s(n))
                                            .with_value(Some(s(v)))
                                            .with_config_source(5)
                                    })
                                    .collect(),
                            ));
                        }
                        if created.is_some() {
                            tracing::info!(topic = name, partitions = count, peer = %ctx.peer, "created topic");
                        }
                        out
                    }
                    Err(e) => fail(e.kafka_code(), e.to_string()),
                }
            })
            .collect();
        CreateTopicsResponse::default().with_topics(topics)
    }

    pub(super) fn delete_topics(
        &self,
        req: DeleteTopicsRequest,
        ctx: &Ctx,
    ) -> DeleteTopicsResponse {
        let wanted: Vec<(Option<String>, uuid::Uuid)> = if ctx.version >= 6 {
            req.topics
                .iter()
                .map(|t| (t.name.as_ref().map(|n| n.to_string()), t.topic_id))
                .collect()
        } else {
            req.topic_names
                .iter()
                .map(|n| (Some(n.to_string()), uuid::Uuid::nil()))
                .collect()
        };
        let responses = wanted
            .into_iter()
            .map(|(name, id)| {
                let name = name.or_else(|| self.topics.by_id(id).map(|t| t.name().to_owned()));
                let out = DeletableTopicResult::default()
                    .with_name(name.clone().map(|n| TopicName(s(n))))
                    .with_topic_id(id);
                let Some(name) = name else {
                    return out.with_error_code(100).with_error_message(Some(s(format!(
                        "no topic has id {id}"
                    ))));
                };
                if !ctx.may(self, op::DELETE, resource::TOPIC, &name) {
                    return out
                        .with_error_code(TOPIC_AUTHORIZATION_FAILED)
                        .with_error_message(Some(s(format!(
                            "{} may not delete topic {name}",
                            ctx.principal
                        ))));
                }
                match self.topics.delete(&name) {
                    Ok(id) => {
                        if let Err(e) = self.groups.topic_deleted(&name) {
                            tracing::error!(topic = %name, error = %e, "forgetting committed offsets failed");
                        }
                        tracing::info!(topic = %name, peer = %ctx.peer, "deleted topic");
                        out.with_topic_id(id)
                    }
                    Err(e) => out
                        .with_error_code(e.kafka_code())
                        .with_error_message(Some(s(e.to_string()))),
                }
            })
            .collect();
        DeleteTopicsResponse::default().with_responses(responses)
    }

    pub(super) fn create_partitions(
        &self,
        req: CreatePartitionsRequest,
        ctx: &Ctx,
    ) -> CreatePartitionsResponse {
        let results = req
            .topics
            .iter()
            .map(|t| {
                let out = CreatePartitionsTopicResult::default().with_name(t.name.clone());
                if !ctx.may(self, op::ALTER, resource::TOPIC, t.name.as_str()) {
                    return out
                        .with_error_code(TOPIC_AUTHORIZATION_FAILED)
                        .with_error_message(Some(s(format!(
                            "{} may not alter topic {}",
                            ctx.principal,
                            t.name.as_str()
                        ))));
                }
                let bad_assignment = t
                    .assignments
                    .as_ref()
                    .is_some_and(|a| a.iter().any(|a| a.broker_ids.iter().any(|b| b.0 != 0)));
                let result = if bad_assignment {
                    Err(Error::InvalidAssignment)
                } else {
                    self.topics
                        .add_partitions(t.name.as_str(), t.count, req.validate_only)
                };
                match result {
                    Ok(()) => out,
                    Err(e) => out
                        .with_error_code(if bad_assignment {
                            INVALID_REPLICA_ASSIGNMENT
                        } else {
                            e.kafka_code()
                        })
                        .with_error_message(Some(s(e.to_string()))),
                }
            })
            .collect();
        CreatePartitionsResponse::default().with_results(results)
    }
}
