//! What `ferry dev`'s runtime shows of each revision, observed into the Revision's status by
//! the operator's own rule ([`revision_status`]): the runtime plays the Deployment controller,
//! so a revision is Ready once a replica answered (and stays Ready at zero), or at once when it
//! is meant to start at zero (`initial-scale: 0`), and a replica's container (serving or
//! sidecar) that cannot start or exits makes it `Ready=False` with why.

use ferry_api::serving::Revision;
use ferry_control::serving::{RevisionObservation, owner_reference, revision_status};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus,
};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::runtime::RevisionState;
use super::serving::{Serving, now};

impl Serving {
    /// Each live revision's status from what its processes do, as the operator derives it
    /// from a Deployment and its pods.
    pub(super) fn observe_revisions(&mut self) {
        let states = self.runtime.states();
        let now = now();
        for (name, live) in &self.live {
            let Some(mut rev) = self.registry.get(&live.namespace, name).cloned() else {
                continue;
            };
            rev.status = self.revisions.get(name).cloned();
            let desired = live
                .decision
                .as_ref()
                .map(|d| i32::try_from(d.desired).unwrap_or(i32::MAX));
            let (deployment, pods) = observation(&rev, states.get(name), desired);
            let seen = RevisionObservation {
                deployment: Some(&deployment),
                pods: &pods,
                desired_replicas: desired,
            };
            let status = revision_status(&rev, &seen, &now);
            self.revisions.insert(name.clone(), status);
        }
    }
}

/// What the runtime shows of a revision, in the shape the operator observes a revision's
/// Deployment and pods in: replicas wanted and ready, and a failing replica's exit as a
/// terminated container.
fn observation(
    rev: &Revision,
    state: Option<&RevisionState>,
    desired: Option<i32>,
) -> (Deployment, Vec<Pod>) {
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let ready = state.map_or(0, |s| count(s.endpoints().len()));
    let replicas = state.map_or(0, |s| count(s.replicas.len()));
    let deployment = Deployment {
        metadata: ObjectMeta {
            name: rev.metadata.name.clone(),
            namespace: rev.metadata.namespace.clone(),
            owner_references: Some(vec![owner_reference(rev)]),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: desired.or(Some(replicas)),
            ..DeploymentSpec::default()
        }),
        status: Some(DeploymentStatus {
            ready_replicas: Some(ready),
            available_replicas: Some(ready),
            replicas: Some(replicas),
            conditions: Some(vec![DeploymentCondition {
                type_: "Progressing".into(),
                status: "True".into(),
                ..DeploymentCondition::default()
            }]),
            ..DeploymentStatus::default()
        }),
    };
    let failing = state.and_then(|s| s.replicas.iter().find_map(|p| p.failure.clone()));
    let pods = failing
        .map(|message| Pod {
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    last_state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: 1,
                            message: Some(message),
                            ..ContainerStateTerminated::default()
                        }),
                        ..ContainerState::default()
                    }),
                    ..ContainerStatus::default()
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        })
        .into_iter()
        .collect();
    (deployment, pods)
}
