//! Knative conditions (`knative.dev/pkg/apis.Condition`) and the common status block.
//!
//! Knative's condition differs from `metav1.Condition`: it has a `severity`, no per-condition
//! `observedGeneration` (that lives once in the status), and `reason`/`message` are optional.
//! Ferry writes exactly this shape so Knative tooling (`kn`, dashboards) reads it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A condition type such as `Ready` or `BrokerReady`.
pub type ConditionType = String;

/// `True`, `False` or `Unknown`, as in Kubernetes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not yet known (the default while reconciling).
    #[default]
    Unknown,
}

/// How to read a `False` condition: errors make the resource not ready, warnings and infos don't.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Severity {
    /// The default (written as an absent field by Knative).
    #[default]
    Error,
    /// A problem that does not stop the resource from working.
    Warning,
    /// Informational only.
    Info,
}

impl Severity {
    fn is_error(&self) -> bool {
        *self == Severity::Error
    }
}

/// One observation of a resource's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition type, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: ConditionType,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// Severity of a `False` status; absent means `Error`.
    #[serde(default, skip_serializing_if = "Severity::is_error")]
    pub severity: Severity,
    /// When the status last changed (kept as-is while the status stays the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// One-word CamelCase reason for the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Condition {
    /// A condition of `type_` with the given status, reason and message (no time yet).
    pub fn new(
        type_: &str,
        status: ConditionStatus,
        reason: Option<&str>,
        message: Option<&str>,
    ) -> Self {
        Condition {
            type_: type_.to_owned(),
            status,
            severity: Severity::Error,
            last_transition_time: None,
            reason: reason.map(str::to_owned),
            message: message.map(str::to_owned),
        }
    }

    /// `true` when the status is `True`.
    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }
}

/// The status fields every Knative kind carries (Knative `duckv1.Status`), inlined.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The `metadata.generation` the controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Current observations, at most one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Extra state the controller reports.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Status {
    /// The condition of `type_`, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Sets a condition, keeping its `lastTransitionTime` when the status is unchanged and
    /// stamping `now` when it changes (Knative's `ConditionManager` rule). Conditions stay
    /// sorted by type so that repeated writes produce identical objects.
    pub fn set_condition(&mut self, mut condition: Condition, now: &Time) {
        match self
            .conditions
            .iter_mut()
            .find(|c| c.type_ == condition.type_)
        {
            Some(existing) => {
                condition.last_transition_time = if existing.status == condition.status {
                    existing.last_transition_time.clone()
                } else {
                    Some(now.clone())
                };
                *existing = condition;
            }
            None => {
                condition.last_transition_time = Some(now.clone());
                self.conditions.push(condition);
            }
        }
        self.conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    }

    /// `true` when the `Ready` condition is `True`.
    pub fn is_ready(&self) -> bool {
        self.condition(READY).is_some_and(Condition::is_true)
    }
}

/// The condition every kind reports: the resource as a whole works.
pub const READY: &str = "Ready";

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("valid timestamp"))
    }

    #[test]
    fn transition_time_kept_while_status_unchanged() {
        let mut status = Status::default();
        status.set_condition(
            Condition::new(READY, ConditionStatus::Unknown, Some("Reconciling"), None),
            &at(10),
        );
        status.set_condition(
            Condition::new(READY, ConditionStatus::Unknown, Some("Still"), None),
            &at(20),
        );
        let ready = status.condition(READY).expect("ready set");
        assert_eq!(ready.last_transition_time, Some(at(10)));
        assert_eq!(ready.reason.as_deref(), Some("Still"));
        status.set_condition(
            Condition::new(READY, ConditionStatus::True, None, None),
            &at(30),
        );
        assert_eq!(
            status
                .condition(READY)
                .and_then(|c| c.last_transition_time.clone()),
            Some(at(30))
        );
        assert!(status.is_ready());
        status.set_condition(
            Condition::new("Addressable", ConditionStatus::True, None, None),
            &at(40),
        );
        let types: Vec<_> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Addressable", "Ready"]);
    }

    #[test]
    fn knative_wire_shape() {
        let c: Condition = serde_json::from_str(
            r#"{"type":"Ready","status":"False","severity":"Warning","reason":"NotFound","lastTransitionTime":"2024-01-02T03:04:05Z"}"#,
        )
        .expect("parses");
        assert_eq!(c.severity, Severity::Warning);
        let back = serde_json::to_value(&c).expect("serializes");
        assert_eq!(back["lastTransitionTime"], "2024-01-02T03:04:05Z");
        let plain = serde_json::to_value(Condition::new(READY, ConditionStatus::True, None, None))
            .expect("serializes");
        assert_eq!(
            plain,
            serde_json::json!({"type": "Ready", "status": "True"})
        );
    }
}
