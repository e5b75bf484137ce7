//! Following Knative's `config-br-defaults` (`--br-defaults-configmap`, in the operator's
//! namespace): read every 5 s. When the defaults change, every Broker and Trigger is reconciled
//! again: a Broker without a class may have become Ferry's or stopped being, and a Broker's
//! default config and delivery feed its topic and its Triggers. A missing ConfigMap means no
//! defaults; an invalid one is reported (once per distinct error) and the last good defaults
//! stay.

use std::sync::Arc;
use std::time::Duration;

use ferry_api::eventing::{Broker, BrokerDefaults, DEFAULTS_KEY, Trigger};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use tokio::sync::watch;

use super::context::Context;
use super::wake::Queue;
use crate::tasks::unless_stopped;

/// How often the ConfigMap is read.
const EVERY: Duration = Duration::from_secs(5);

/// Reads the defaults until `stop` turns `true`; a change wakes `brokers` and `triggers`.
pub(super) async fn follow(
    ctx: Arc<Context>,
    brokers: Queue<Broker>,
    triggers: Queue<Trigger>,
    mut stop: watch::Receiver<bool>,
) {
    let name = ctx.args.br_defaults_configmap.clone();
    let api: Api<ConfigMap> =
        Api::namespaced(ctx.client.clone(), &ctx.args.leader_election_namespace);
    let mut tick = tokio::time::interval(EVERY);
    let mut reported: Option<String> = None;
    while unless_stopped(&mut stop, tick.tick()).await.is_some() {
        let parsed = match api.get_opt(&name).await {
            Ok(cm) => BrokerDefaults::parse(
                cm.and_then(|c| c.data)
                    .and_then(|d| d.get(DEFAULTS_KEY).cloned())
                    .unwrap_or_default()
                    .as_str(),
            )
            .map_err(|e| e.to_string()),
            Err(e) => Err(format!("cannot read it: {e}")),
        };
        match parsed {
            Ok(defaults) => {
                reported = None;
                if ctx.publisher.set_broker_defaults(defaults) {
                    tracing::info!(configmap = %name, "broker defaults changed; reconciling every Broker and Trigger");
                    let woken = async {
                        wake_all(&ctx.stores.brokers, &brokers).await;
                        wake_all(&ctx.stores.triggers, &triggers).await;
                    };
                    if unless_stopped(&mut stop, woken).await.is_none() {
                        return;
                    }
                }
            }
            Err(e) if reported.as_ref() != Some(&e) => {
                tracing::warn!(configmap = %name, error = %e, "broker defaults not applied; keeping the previous ones (fix the ConfigMap's default-br-config)");
                reported = Some(e);
            }
            Err(_) => {}
        }
    }
}

/// Queues every object of `store`.
async fn wake_all<K: Resource<DynamicType = ()> + Clone + 'static>(
    store: &Store<K>,
    queue: &Queue<K>,
) {
    for o in store.state() {
        queue
            .send(
                o.meta().namespace.as_deref().unwrap_or_default(),
                &o.name_any(),
            )
            .await;
    }
}
