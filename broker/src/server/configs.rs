//! AlterConfigs and IncrementalAlterConfigs for topics: the topic configs the broker acts on
//! ([`crate::topics::config::SUPPORTED`]), validated as in CreateTopics, persisted in
//! `topic.json` and applied at once. Broker configs are flags; altering them is refused.

use std::collections::BTreeMap;

use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, alter_configs_response, incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;

use super::broker::{Broker, Ctx};
use crate::error::Error;

const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const TOPIC: i8 = 2;

/// IncrementalAlterConfigs operations.
const SET: i8 = 0;
const DELETE: i8 = 1;

/// The outcome for one resource: `(error_code, message)`.
type Outcome = (i16, Option<String>);

/// The overrides after applying `ops` (name, operation, value) to `current`.
///
/// # Errors
/// `INVALID_CONFIG` for APPEND/SUBTRACT (no supported topic config is a list) or a SET
/// without a value; `INVALID_REQUEST` for an unknown operation.
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
            (2 | 3, _) => {
                return Err((
                    INVALID_CONFIG,
                    Some(format!(
                        "`{name}` is not a list config; APPEND and SUBTRACT do not apply"
                    )),
                ));
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
    /// Applies `change` to the overrides of topic `name`; the resource's outcome.
    fn alter_topic(
        &self,
        resource_type: i8,
        name: &str,
        validate_only: bool,
        ctx: &Ctx,
        change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, Outcome>,
    ) -> Outcome {
        if resource_type != TOPIC {
            return (
                INVALID_REQUEST,
                Some("only topic configs can be altered; broker settings are flags".into()),
            );
        }
        let Some(topic) = self.topics.get(name) else {
            let e = Error::TopicNotFound(name.to_owned());
            return (e.kafka_code(), Some(e.to_string()));
        };
        let overrides = match change(topic.overrides_map()) {
            Ok(o) => o,
            Err(outcome) => return outcome,
        };
        match self.topics.alter_config(name, overrides, validate_only) {
            Ok(()) => {
                if !validate_only {
                    tracing::info!(topic = name, peer = %ctx.peer, "altered topic config");
                }
                (0, None)
            }
            Err(e) => (e.kafka_code(), Some(e.to_string())),
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
                let (code, message) = self.alter_topic(
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
                let (code, message) = self.alter_topic(
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

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

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
                "no list configs",
                vec![op("cleanup.policy", 2, Some("delete"))],
                Err(INVALID_CONFIG),
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
