//! ApiVersions, Metadata, DescribeCluster, FindCoordinator, DescribeConfigs and
//! InitProducerId.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiVersionsResponse, BrokerId, DescribeClusterRequest, DescribeClusterResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, InitProducerIdRequest, InitProducerIdResponse, MetadataRequest,
    MetadataResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::authorized::{NOT_REQUESTED, Resource, authorized_operations};
use super::broker::{Broker, Ctx};
use super::{transactions, versions};
use crate::config::dynamic::BrokerScope;
use crate::error::Error;
use crate::security::acl::{CLUSTER_NAME, op, resource};
use crate::topics::{Topic, valid_topic_name};

const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const INVALID_REQUEST: i16 = 42;
const UNSUPPORTED_ENDPOINT_TYPE: i16 = 115;
/// DescribeCluster's endpoint type for brokers (2 asks for controllers).
const BROKER_ENDPOINTS: i8 = 1;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// The ApiVersions answer (`error` is UNSUPPORTED_VERSION for a too-new request).
pub(super) fn api_versions(error: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error)
        .with_api_keys(
            versions::SUPPORTED
                .iter()
                .map(|(k, lo, hi)| {
                    ApiVersion::default()
                        .with_api_key(*k as i16)
                        .with_min_version(*lo)
                        .with_max_version(*hi)
                })
                .collect(),
        )
}

impl Broker {
    fn describe_topic(&self, topic: &Topic) -> MetadataResponseTopic {
        let partitions = topic
            .partitions()
            .iter()
            .map(|p| {
                MetadataResponsePartition::default()
                    .with_partition_index(p.index())
                    .with_leader_id(BrokerId(0))
                    .with_leader_epoch(0)
                    .with_replica_nodes(vec![BrokerId(0)])
                    .with_isr_nodes(vec![BrokerId(0)])
            })
            .collect();
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(s(topic.name()))))
            .with_topic_id(topic.id())
            .with_partitions(partitions)
    }

    pub(super) fn metadata(&self, req: MetadataRequest, ctx: &Ctx) -> MetadataResponse {
        let auto_create =
            self.config.auto_create_topics && (ctx.version < 4 || req.allow_auto_topic_creation);
        let all = match &req.topics {
            None => true,
            Some(t) => t.is_empty() && ctx.version == 0,
        };
        let described = |name: &str| ctx.may(self, op::DESCRIBE, resource::TOPIC, name);
        let topics: Vec<MetadataResponseTopic> = if all {
            // Only the topics the caller may describe, as Kafka lists them.
            self.topics
                .list()
                .iter()
                .filter(|t| described(t.name()))
                .map(|t| self.describe_topic(t))
                .collect()
        } else {
            req.topics
                .iter()
                .flatten()
                .map(|wanted| {
                    let found = match &wanted.name {
                        Some(name) => self.topics.get(name.as_str()),
                        None => self.topics.by_id(wanted.topic_id),
                    };
                    let unauthorized = MetadataResponseTopic::default()
                        .with_name(wanted.name.clone())
                        .with_topic_id(wanted.topic_id)
                        .with_error_code(TOPIC_AUTHORIZATION_FAILED);
                    if let Some(t) = found {
                        if !described(t.name()) {
                            return unauthorized;
                        }
                        return self.describe_topic(&t);
                    }
                    let missing = MetadataResponseTopic::default()
                        .with_name(wanted.name.clone())
                        .with_topic_id(wanted.topic_id);
                    let Some(name) = wanted.name.as_ref().map(|n| n.as_str().to_owned()) else {
                        return missing.with_error_code(3);
                    };
                    if !described(&name) {
                        return unauthorized;
                    }
                    if !valid_topic_name(&name) {
                        return missing.with_error_code(17);
                    }
                    if !auto_create {
                        return missing.with_error_code(3);
                    }
                    // Auto-creation needs CREATE on the cluster or the topic, as in Kafka.
                    if !ctx.may(self, op::CREATE, resource::CLUSTER, CLUSTER_NAME)
                        && !ctx.may(self, op::CREATE, resource::TOPIC, &name)
                    {
                        return unauthorized;
                    }
                    match self.topics.create(&name, -1, -1, BTreeMap::new(), false) {
                        Ok(Some(t)) => {
                            tracing::info!(topic = %name, peer = %ctx.peer, "auto-created topic");
                            self.describe_topic(&t)
                        }
                        Ok(None) => missing.with_error_code(3),
                        Err(Error::TopicExists(_)) => self
                            .topics
                            .get(&name)
                            .map_or(missing.clone().with_error_code(3), |t| {
                                self.describe_topic(&t)
                            }),
                        Err(e) => missing.with_error_code(e.kafka_code()),
                    }
                })
                .collect()
        };
        // KIP-430: v8+ carries topics' operations; v8-10 the cluster's (v11 moved them to
        // DescribeCluster).
        let topic_operations = |name: &str| {
            authorized_operations(
                self,
                ctx,
                Resource::Topic,
                name,
                ctx.version >= 8 && req.include_topic_authorized_operations,
            )
        };
        let cluster_operations = authorized_operations(
            self,
            ctx,
            Resource::Cluster,
            CLUSTER_NAME,
            (8..=10).contains(&ctx.version) && req.include_cluster_authorized_operations,
        );
        MetadataResponse::default()
            .with_brokers(vec![
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(0))
                    .with_host(s(self.advertised.0.clone()))
                    .with_port(self.advertised.1),
            ])
            .with_cluster_id(Some(s(self.cluster_id.clone())))
            .with_controller_id(BrokerId(0))
            .with_cluster_authorized_operations(cluster_operations)
            .with_topics(
                topics
                    .into_iter()
                    .map(|t| {
                        // Every topic answered, unknown or refused ones too, as in Kafka.
                        let ops = match &t.name {
                            Some(name) => topic_operations(name.as_str()),
                            None => NOT_REQUESTED,
                        };
                        t.with_topic_authorized_operations(ops)
                    })
                    .collect(),
            )
    }

    /// DescribeCluster: the one broker, the cluster id, and (when asked) the operations
    /// allowed on the cluster. Controller endpoints are not served, as on any Kafka broker.
    pub(super) fn describe_cluster(
        &self,
        req: &DescribeClusterRequest,
        ctx: &Ctx,
    ) -> DescribeClusterResponse {
        let out = DescribeClusterResponse::default()
            .with_endpoint_type(req.endpoint_type)
            .with_cluster_id(s(self.cluster_id.clone()))
            .with_controller_id(BrokerId(0));
        if ctx.version >= 1 && req.endpoint_type != BROKER_ENDPOINTS {
            return out
                .with_controller_id(BrokerId(-1))
                .with_error_code(UNSUPPORTED_ENDPOINT_TYPE)
                .with_error_message(Some(s(format!(
                    "endpoint type {} is not served; ask for brokers (1)",
                    req.endpoint_type
                ))));
        }
        out.with_brokers(vec![
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(0))
                .with_host(s(self.advertised.0.clone()))
                .with_port(self.advertised.1),
        ])
        .with_cluster_authorized_operations(authorized_operations(
            self,
            ctx,
            Resource::Cluster,
            CLUSTER_NAME,
            req.include_cluster_authorized_operations,
        ))
    }

    pub(super) fn find_coordinator(
        &self,
        req: FindCoordinatorRequest,
        ctx: &Ctx,
    ) -> FindCoordinatorResponse {
        let (host, port) = (s(self.advertised.0.clone()), self.advertised.1);
        let answer = |key_type: i8, key: &str| -> (i16, Option<StrBytes>) {
            if key_type == 0 && !ctx.may(self, op::DESCRIBE, resource::GROUP, key) {
                (
                    GROUP_AUTHORIZATION_FAILED,
                    Some(s(format!("{} may not describe group {key}", ctx.principal))),
                )
            } else if key_type == 0 {
                (0, None)
            } else {
                (
                    transactions::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                    Some(s(transactions::NOT_SUPPORTED)),
                )
            }
        };
        if ctx.version >= 4 {
            let coordinators = req
                .coordinator_keys
                .iter()
                .map(|key| {
                    let (error, message) = answer(req.key_type, key.as_str());
                    let c = Coordinator::default()
                        .with_key(key.clone())
                        .with_error_code(error)
                        .with_error_message(message);
                    if error == 0 {
                        c.with_node_id(BrokerId(0))
                            .with_host(host.clone())
                            .with_port(port)
                    } else {
                        c.with_node_id(BrokerId(-1)).with_port(-1)
                    }
                })
                .collect();
            return FindCoordinatorResponse::default().with_coordinators(coordinators);
        }
        let (error, message) = answer(req.key_type, req.key.as_str());
        let r = FindCoordinatorResponse::default().with_error_code(error);
        let r = if ctx.version >= 1 {
            r.with_error_message(message)
        } else {
            r
        };
        if error == 0 {
            r.with_node_id(BrokerId(0)).with_host(host).with_port(port)
        } else {
            r.with_node_id(BrokerId(-1)).with_port(-1)
        }
    }

    /// Broker configs set by flags that cannot change at run time (the dynamic ones are in
    /// [`crate::config::dynamic`]).
    fn static_broker_configs(&self) -> Vec<(&'static str, String)> {
        let c = &self.config;
        vec![
            (
                "auto.create.topics.enable",
                c.auto_create_topics.to_string(),
            ),
            ("broker.id", "0".into()),
            ("num.partitions", c.default_partitions.to_string()),
            ("socket.request.max.bytes", c.max_request_bytes.to_string()),
            ("default.replication.factor", "1".into()),
            ("min.insync.replicas", "1".into()),
        ]
    }

    pub(super) fn describe_configs(
        &self,
        req: DescribeConfigsRequest,
        ctx: &Ctx,
    ) -> DescribeConfigsResponse {
        let results = req
            .resources
            .iter()
            .map(|r| {
                let out = DescribeConfigsResult::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone());
                if let Some((code, message)) = self.config_refusal(
                    ctx,
                    r.resource_type,
                    r.resource_name.as_str(),
                    op::DESCRIBE_CONFIGS,
                ) {
                    return out.with_error_code(code).with_error_message(Some(s(message)));
                }
                let wanted = |name: &str| {
                    r.configuration_keys
                        .as_ref()
                        .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
                };
                // (name, value, source, read-only)
                let entries: Vec<(&'static str, String, i8, bool)> = match r.resource_type {
                    // TOPIC
                    2 => match self.topics.get(r.resource_name.as_str()) {
                        Some(t) => {
                            let inert = crate::topics::config::INERT.iter().map(|(n, default, _)| {
                                let set = t.overrides_map().get(*n);
                                (*n, set.map_or_else(|| (*default).to_owned(), Clone::clone))
                            });
                            t.config()
                                .entries()
                                .into_iter()
                                .chain(inert)
                                // 1 = DYNAMIC_TOPIC_CONFIG, 5 = DEFAULT_CONFIG
                                .map(|(n, v)| (n, v, if t.overrides(n) { 1 } else { 5 }, false))
                                .collect()
                        }
                        None => {
                            return out.with_error_code(3).with_error_message(Some(s(format!(
                                "topic `{}` does not exist",
                                r.resource_name.as_str()
                            ))));
                        }
                    },
                    // BROKER: 0, or "" for the cluster default
                    4 => match super::configs::broker_scope(r.resource_name.as_str()) {
                        Some(scope) => {
                            let flags = match scope {
                                BrokerScope::Node => self.static_broker_configs(),
                                BrokerScope::Cluster => Vec::new(),
                            };
                            flags
                                .into_iter()
                                // 4 = STATIC_BROKER_CONFIG
                                .map(|(n, v)| (n, v, 4, true))
                                .chain(
                                    self.dynamic
                                        .describe_broker(scope)
                                        .into_iter()
                                        .map(|(n, v, source)| (n, v, source as i8, false)),
                                )
                                .collect()
                        }
                        None => {
                            return out.with_error_code(INVALID_REQUEST).with_error_message(Some(
                                s(super::configs::ONLY_BROKER),
                            ));
                        }
                    },
                    // GROUP (KIP-848): for any group id, existing or not, as in Kafka
                    32 => self
                        .dynamic
                        .describe_group(r.resource_name.as_str())
                        .into_iter()
                        .map(|(n, v, source)| (n, v, source as i8, false))
                        .collect(),
                    other => {
                        return out.with_error_code(INVALID_REQUEST).with_error_message(Some(s(
                            format!("config resource type {other} is not supported; use topics (2), brokers (4) or groups (32)"),
                        )));
                    }
                };
                out.with_configs(
                    entries
                        .into_iter()
                        .filter(|(n, _, _, _)| wanted(n))
                        .map(|(n, v, source, read_only)| {
                            DescribeConfigsResourceResult::default()
                                .with_name(s(n))
                                .with_value(Some(s(v)))
                                .with_config_source(source)
                                .with_read_only(read_only)
                        })
                        .collect(),
                )
            })
            .collect();
        DescribeConfigsResponse::default().with_results(results)
    }

    pub(super) fn init_producer_id(
        self: Arc<Self>,
        req: InitProducerIdRequest,
        ctx: &Ctx,
    ) -> InitProducerIdResponse {
        let out = InitProducerIdResponse::default()
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        match req.transactional_id.as_ref().map(|t| t.as_str()) {
            None => {}
            // As Kafka's transaction coordinator answers an empty transactional id.
            Some("") => return out.with_error_code(INVALID_REQUEST),
            // No transaction coordinator: transactional producers cannot start.
            Some(_) => {
                return out.with_error_code(transactions::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
            }
        }
        // An idempotent producer needs IDEMPOTENT_WRITE on the cluster, or WRITE on some
        // topic, as in Kafka.
        let host = Some(ctx.peer.ip());
        if !ctx.may(&self, op::IDEMPOTENT_WRITE, resource::CLUSTER, CLUSTER_NAME)
            && !self
                .acls
                .authorize_any(&ctx.principal, host, op::WRITE, resource::TOPIC)
        {
            return out.with_error_code(CLUSTER_AUTHORIZATION_FAILED);
        }
        let (current, epoch) = (req.producer_id.0, req.producer_epoch);
        if current >= 0 && (0..i16::MAX - 1).contains(&epoch) {
            // KIP-360: an idempotent producer bumps its epoch to reset its sequences.
            return out
                .with_producer_id(ProducerId(current))
                .with_producer_epoch(epoch + 1);
        }
        match self.next_producer_id() {
            Ok(id) => out.with_producer_id(ProducerId(id)).with_producer_epoch(0),
            Err(e) => {
                tracing::error!(error = %e, "cannot record the producer-id block");
                out.with_error_code(COORDINATOR_NOT_AVAILABLE)
            }
        }
    }
}
