//! AlterConfigs and IncrementalAlterConfigs: topic configs (those the broker acts on,
//! [`crate::topics::config::SUPPORTED`], and the inert ones), validated as in CreateTopics,
//! persisted in `topic.json`; dynamic broker configs for broker `0` and the cluster default,
//! and group configs ([`crate::config::dynamic`]), persisted in `configs.json`. Every change
//! applies at once.

use std::collections::BTreeMap;

use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, alter_configs_response, incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;

use super::broker::{Broker, Ctx};
use crate::config::dynamic::BrokerScope;
use crate::error::Error;
use crate::security::acl::{CLUSTER_NAME, op, resource};

/// What a request naming another broker gets.
pub(super) const ONLY_BROKER: &str = "the only broker is 0 (\"\" names the cluster default)";

/// The broker resource `name` names: `0`, or `""` for the cluster default.
pub(super) fn broker_scope(name: &str) -> Option<BrokerScope> {
    match name {
        "0" => Some(BrokerScope::Node),
        "" => Some(BrokerScope::Cluster),
        _ => None,
    }
}

const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const GROUP: i8 = 32;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;

/// IncrementalAlterConfigs operations.
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// Kafka's list configs among those Ferry takes, with their defaults: APPEND and SUBTRACT
/// start from the value set, else from the default.
const LISTS: &[(&str, &str)] = &[
    ("cleanup.policy", "delete"),
    ("log.cleanup.policy", "delete"),
];

/// The outcome for one resource: `(error_code, message)`.
type Outcome = (i16, Option<String>);

/// The configs after applying `ops` (name, operation, value) to `current`.
///
/// # Errors
/// `INVALID_CONFIG` for APPEND/SUBTRACT on a config that is not a list, or a SET without a
/// value; `INVALID_REQUEST` for an unknown operation.
fn apply_incremental(
    mut current: BTreeMap<String, String>,
    ops: &[(String, i8, Option<String>)],
) -> Result<BTreeMap<String, String>, Outcome> {
    for (name, op, value) in ops {
        match (*op, value) {
            (SET, Some(v)) => {
                current.insert(name.clone(), v.clone());
            }
            (SET, None) => {
                return Err((INVALID_CONFIG, Some(format!("`{name}`: SET needs a value"))));
            }
            (DELETE, _) => {
                current.remove(name);
            }
            (APPEND | SUBTRACT, _) => {
                let Some((_, default)) = LISTS.iter().find(|(n, _)| n == name) else {
                    return Err((
                        INVALID_CONFIG,
                        Some(format!(
                            "`{name}` is not a list config; APPEND and SUBTRACT do not apply"
                        )),
                    ));
                };
                let was = current.get(name).map_or(*default, String::as_str);
                let mut items: Vec<String> = was
                    .split(',')
                    .map(str::trim)
                    .filter(|i| !i.is_empty())
                    .map(str::to_owned)
                    .collect();
                for item in value.as_deref().unwrap_or("").split(',').map(str::trim) {
                    if *op == APPEND && !item.is_empty() && !items.iter().any(|i| i == item) {
                        items.push(item.to_owned());
                    } else if *op == SUBTRACT {
                        items.retain(|i| i != item);
                    }
                }
                current.insert(name.clone(), items.join(","));
            }
            (other, _) => {
                return Err((
                    INVALID_REQUEST,
                    Some(format!("unknown config operation {other}")),
                ));
            }
        }
    }
    Ok(current)
}

impl Broker {
    /// Applies `change` to the configs of resource `name` (a topic's overrides, broker `0`'s
    /// or the cluster default's dynamic configs, a group's configs); the resource's outcome.
    /// Why `ctx`'s principal may not perform `operation` (`DESCRIBE_CONFIGS` or
    /// `ALTER_CONFIGS`) on the configs of resource `name` of config resource type
    /// `resource_type`, if it may not: a topic's are the topic's, a broker's the cluster's, a
    /// group's the group's, as in Kafka.
    pub(super) fn config_refusal(
        &self,
        ctx: &Ctx,
        resource_type: i8,
        name: &str,
        operation: i8,
    ) -> Option<(i16, String)> {
        let (acl_type, acl_name, code, what) = match resource_type {
            TOPIC => (resource::TOPIC, name, TOPIC_AUTHORIZATION_FAILED, "topic"),
            BROKER => (
                resource::CLUSTER,
                CLUSTER_NAME,
                CLUSTER_AUTHORIZATION_FAILED,
                "broker",
            ),
            GROUP => (resource::GROUP, name, GROUP_AUTHORIZATION_FAILED, "group"),
            _ => return None,
        };
        let verb = if operation == op::ALTER_CONFIGS {
            "alter"
        } else {
            "describe"
        };
        (!ctx.may(self, operation, acl_type, acl_name)).then(|| {
            (
                code,
                format!(
                    "{} may not {verb} the configs of {what} `{name}`",
                    ctx.principal
                ),
            )
        })
    }

    fn alter_resource(
        &self,
        resource_type: i8,
        name: &str,
        validate_only: bool,
        ctx: &Ctx,
        change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, Outcome>,
    ) -> Outcome {
        if let Some(refused) = self.config_refusal(ctx, resource_type, name, op::ALTER_CONFIGS) {
            return (refused.0, Some(refused.1));
        }
        let done = |result: crate::error::Result<()>, what: &str| match result {
            Ok(()) => {
                if !validate_only {
                    tracing::info!(resource = what, name, peer = %ctx.peer, "altered configs");
                }
                (0, None)
            }
            Err(e) => (e.kafka_code(), Some(e.to_string())),
        };
        match resource_type {
            TOPIC => {
                let Some(topic) = self.topics.get(name) else {
                    let e = Error::TopicNotFound(name.to_owned());
                    return (e.kafka_code(), Some(e.to_string()));
                };
                match change(topic.overrides_map()) {
                    Ok(o) => done(self.topics.alter_config(name, o, validate_only), "topic"),
                    Err(outcome) => outcome,
                }
            }
            BROKER => {
                let Some(scope) = broker_scope(name) else {
                    return (INVALID_REQUEST, Some(ONLY_BROKER.into()));
                };
                match change(&self.dynamic.broker(scope)) {
                    Ok(set) => done(
                        self.dynamic
                            .set_broker(scope, set, validate_only, |defaults| {
                                self.topics.set_default_config(defaults)
                            }),
                        "broker",
                    ),
                    Err(outcome) => outcome,
                }
            }
            GROUP => match change(&self.dynamic.group(name)) {
                Ok(set) => done(self.dynamic.set_group(name, set, validate_only), "group"),
                Err(outcome) => outcome,
            },
            other => (
                INVALID_REQUEST,
                Some(format!(
                    "config resource type {other} cannot be altered; use topics (2), brokers (4) or groups (32)"
                )),
            ),
        }
    }

    pub(super) fn alter_configs(
        &self,
        req: &AlterConfigsRequest,
        ctx: &Ctx,
    ) -> AlterConfigsResponse {
        let responses = req
            .resources
            .iter()
            .map(|r| {
                // AlterConfigs replaces the whole set of overrides.
                let set: BTreeMap<String, String> = r
                    .configs
                    .iter()
                    .filter_map(|c| {
                        c.value
                            .as_ref()
                            .map(|v| (c.name.to_string(), v.to_string()))
                    })
                    .collect();
                let (code, message) = self.alter_resource(
                    r.resource_type,
                    r.resource_name.as_str(),
                    req.validate_only,
                    ctx,
                    |_| Ok(set),
                );
                alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_error_code(code)
                    .with_error_message(message.map(StrBytes::from_string))
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone())
            })
            .collect();
        AlterConfigsResponse::default().with_responses(responses)
    }

    pub(super) fn incremental_alter_configs(
        &self,
        req: &IncrementalAlterConfigsRequest,
        ctx: &Ctx,
    ) -> IncrementalAlterConfigsResponse {
        let responses = req
            .resources
            .iter()
            .map(|r| {
                let ops: Vec<(String, i8, Option<String>)> = r
                    .configs
                    .iter()
                    .map(|c| {
                        (
                            c.name.to_string(),
                            c.config_operation,
                            c.value.as_ref().map(|v| v.to_string()),
                        )
                    })
                    .collect();
                let (code, message) = self.alter_resource(
                    r.resource_type,
                    r.resource_name.as_str(),
                    req.validate_only,
                    ctx,
                    |current| apply_incremental(current.clone(), &ops),
                );
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_error_code(code)
                    .with_error_message(message.map(StrBytes::from_string))
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone())
            })
            .collect();
        IncrementalAlterConfigsResponse::default().with_responses(responses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::config::tests::map;

    fn op(name: &str, op: i8, value: Option<&str>) -> (String, i8, Option<String>) {
        (name.to_owned(), op, value.map(str::to_owned))
    }

    #[test]
    fn incremental_operations() {
        let current = map(&[("retention.ms", "1000"), ("segment.bytes", "4096")]);
        let cases = [
            (
                "set adds and replaces",
                vec![
                    op("retention.ms", SET, Some("5")),
                    op("max.message.bytes", SET, Some("9")),
                ],
                Ok(map(&[
                    ("retention.ms", "5"),
                    ("segment.bytes", "4096"),
                    ("max.message.bytes", "9"),
                ])),
            ),
            (
                "delete returns to the default",
                vec![
                    op("segment.bytes", DELETE, None),
                    op("absent", DELETE, None),
                ],
                Ok(map(&[("retention.ms", "1000")])),
            ),
            (
                "set needs a value",
                vec![op("retention.ms", SET, None)],
                Err(INVALID_CONFIG),
            ),
            (
                "no list config",
                vec![op("retention.ms", APPEND, Some("5"))],
                Err(INVALID_CONFIG),
            ),
            (
                "append to a list starts from its default and adds what is missing",
                vec![
                    op("cleanup.policy", APPEND, Some("compact")),
                    op("cleanup.policy", APPEND, Some("delete")),
                ],
                Ok(map(&[
                    ("cleanup.policy", "delete,compact"),
                    ("retention.ms", "1000"),
                    ("segment.bytes", "4096"),
                ])),
            ),
            (
                "subtract removes from a list",
                vec![
                    op("cleanup.policy", SET, Some("compact,delete")),
                    op("cleanup.policy", SUBTRACT, Some("compact")),
                ],
                Ok(map(&[
                    ("cleanup.policy", "delete"),
                    ("retention.ms", "1000"),
                    ("segment.bytes", "4096"),
                ])),
            ),
            (
                "unknown operation",
                vec![op("retention.ms", 9, Some("1"))],
                Err(INVALID_REQUEST),
            ),
        ];
        for (name, ops, expected) in cases {
            let got = apply_incremental(current.clone(), &ops).map_err(|(code, _)| code);
            assert_eq!(got, expected, "{name}");
        }
    }
}
