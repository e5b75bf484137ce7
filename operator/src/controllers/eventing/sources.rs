//! KafkaSources: the Secrets of their `spec.net` read into the publisher, the topics they read
//! looked up on their own cluster.

use std::sync::Arc;

use ferry_api::resource::Resource as AnyResource;
use ferry_api::sources::KafkaSource;
use ferry_control::contract_inputs::{object_ref, secret_value};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::observe::{destination_address, wait_for_publisher};
use crate::controllers::context::{Context, apply_status, instrumented};
use crate::error::Result;
use crate::status::{self, Observed, Topic};

pub(in crate::controllers) async fn reconcile_source(
    source: Arc<KafkaSource>,
    ctx: Arc<Context>,
) -> Result<Action> {
    instrumented(source.clone(), ctx.clone(), async move {
        let ns = source.namespace().unwrap_or_default();
        // spec.net's Secrets, read before the publisher compiles the source; nothing watches them, so
        // a source that uses any is reconciled again: every 10 s while one is missing, every
        // minute after (rotations).
        let secrets = read_net_secrets(&ctx, &ns, &source).await;
        let (data_plane, egress) = ctx
            .publisher
            .observe(&object_ref(&*source), source.metadata.generation);
        if let Some(action) = wait_for_publisher(
            &ctx,
            AnyResource::KafkaSource((*source).clone()),
            &data_plane,
        ) {
            return Ok(action);
        }
        // The topics are looked up on the source's own cluster with its spec.net; when its
        // Secrets cannot be read, the compile error says so and there is nothing to ask with.
        let net = source
            .spec
            .net
            .resolve(&|r| secret_value(&ctx.publisher.secrets(), &ns, r));
        let topics = match net {
            Err(_) => Topic::Pending,
            Ok(auth) => match ctx
                .topics
                .exist_on(
                    &source.spec.bootstrap_servers.join(","),
                    &auth.client_settings(),
                    &source.spec.topics,
                )
                .await
            {
                Ok(()) => Topic::Ready(source.spec.topics.join(",")),
                Err(crate::topics::LookupError::Missing(e)) => Topic::Failed(e),
                Err(crate::topics::LookupError::Unreachable(e)) => Topic::Unreachable(e),
            },
        };
        let obs = Observed {
            subscriber_uri: destination_address(&ctx, &ns, Some(&source.spec.sink)),
            data_plane,
            egress,
            ..Default::default()
        };
        let status = status::source_status(&source, &obs, &topics, &ctx.now());
        apply_status(&ctx, &*source, source.status.as_ref(), &status).await?;
        Ok(match topics {
            // Topics a source reads may be created later by someone else.
            Topic::Failed(_) | Topic::Unreachable(_) => {
                Action::requeue(std::time::Duration::from_secs(10))
            }
            _ if secrets == SecretsRead::Failed => {
                Action::requeue(std::time::Duration::from_secs(10))
            }
            _ if secrets == SecretsRead::Read => Action::requeue(SECRET_REREAD),
            _ => Action::await_change(),
        })
    })
    .await
}

/// How often the Secrets of a KafkaSource's `spec.net` are read again.
const SECRET_REREAD: std::time::Duration = std::time::Duration::from_secs(60);

/// What [`read_net_secrets`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SecretsRead {
    /// `spec.net` references no Secret.
    None,
    /// Every referenced Secret was read.
    Read,
    /// One is missing or unreadable: looked for again in 10 s, as a missing topic is.
    Failed,
}

/// Reads every Secret `source.spec.net` references (only `get`, by name: the operator neither
/// lists nor watches Secrets) into the publisher. The values go into the contract only; they are
/// never logged.
async fn read_net_secrets(ctx: &Context, ns: &str, source: &KafkaSource) -> SecretsRead {
    use k8s_openapi::api::core::v1::Secret;
    let names: std::collections::BTreeSet<&str> = source
        .spec
        .net
        .secret_refs()
        .into_iter()
        .map(|r| r.name.as_str())
        .collect();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let mut read = if names.is_empty() {
        SecretsRead::None
    } else {
        SecretsRead::Read
    };
    for name in &names {
        let value = match api.get_opt(name).await {
            Ok(Some(secret)) => Ok(secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect()),
            Ok(None) => Err(format!(
                "Secret {ns}/{name} not found; create it or fix spec.net"
            )),
            Err(e) => Err(format!("cannot read Secret {ns}/{name}: {e}")),
        };
        if value.is_err() {
            read = SecretsRead::Failed;
        }
        ctx.publisher.set_secret(ns, name, value);
    }
    read
}
