//! Following the cluster's Knative settings ConfigMaps in the operator's namespace, each read
//! every 5 s; when one changes, the kinds it affects are reconciled again. A missing ConfigMap
//! means Knative's defaults; an invalid one is reported (once per distinct error) and the last
//! good settings stay.
//!
//! - `config-br-defaults` (`--br-defaults-configmap`): a Broker without a class may have become
//!   Ferry's or stopped being, and a Broker's default config and delivery feed its topic and its
//!   Triggers: every Broker and Trigger is woken.
//! - `config-features` (`--features-configmap`): which flag-gated PodSpec fields a revision may
//!   set: every Service, Configuration and Revision is woken.
//! - `config-domain` (`--domain-configmap`): the domain of each Route's URL: every Route is
//!   woken.
//! - `config-observability` (`--observability-configmap`): where spans go. It reaches the
//!   dispatchers in the contract and the operator's own tracing at once; nothing is woken.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferry_api::eventing::{BrokerDefaults, DEFAULTS_KEY};
use ferry_api::observability::Tracing;
use ferry_api::serving::domain::Domains;
use ferry_api::serving::features::Features;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use tokio::sync::watch;

use super::context::Context;
use super::wake::{Queue, Queues};
use crate::tasks::unless_stopped;

/// How often each ConfigMap is read.
const EVERY: Duration = Duration::from_secs(5);

/// One followed ConfigMap: how to read its data into settings, where to keep them (`true` when
/// they changed), and what to wake then.
struct Followed<T> {
    name: String,
    parse: fn(&BTreeMap<String, String>) -> Result<T, String>,
    apply: Box<dyn Fn(T) -> bool + Send + Sync>,
    wake: Box<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>,
    what: &'static str,
}

/// Follows `config-br-defaults`, `config-features`, `config-domain` and `config-observability`
/// until `stop` turns `true`.
pub(super) async fn follow(ctx: Arc<Context>, queues: Queues, stop: watch::Receiver<bool>) {
    let (c, q) = (ctx.clone(), queues.clone());
    let defaults = Followed {
        name: ctx.args.br_defaults_configmap.clone(),
        parse: |data| {
            BrokerDefaults::parse(data.get(DEFAULTS_KEY).map_or("", String::as_str))
                .map_err(|e| format!("{e} (fix the ConfigMap's {DEFAULTS_KEY})"))
        },
        apply: {
            let c = ctx.clone();
            Box::new(move |d| c.publisher.set_broker_defaults(d))
        },
        wake: Box::new(move || {
            let (c, q) = (c.clone(), q.clone());
            Box::pin(async move {
                wake_all(&c.stores.brokers, &q.brokers).await;
                wake_all(&c.stores.triggers, &q.triggers).await;
            })
        }),
        what: "broker defaults changed; reconciling every Broker and Trigger",
    };
    let (c, q) = (ctx.clone(), queues.clone());
    let features = Followed {
        name: ctx.args.features_configmap.clone(),
        parse: |data| {
            let (features, ignored) = Features::from_data(data);
            for (key, value) in ignored {
                tracing::warn!(%key, %value, "config-features value is not enabled, allowed or disabled; Knative's default stays");
            }
            Ok(features)
        },
        apply: {
            let c = ctx.clone();
            Box::new(move |f| c.set_features(f))
        },
        wake: Box::new(move || {
            let (c, q) = (c.clone(), q.clone());
            Box::pin(async move {
                wake_all(&c.stores.services, &q.services).await;
                wake_all(&c.stores.configurations, &q.configurations).await;
                wake_all(&c.stores.revisions, &q.revisions).await;
            })
        }),
        what: "config-features changed; reconciling every Service, Configuration and Revision",
    };
    let (c, q) = (ctx.clone(), queues.clone());
    let domains = Followed {
        name: ctx.args.domain_configmap.clone(),
        parse: Domains::from_data,
        apply: {
            let c = ctx.clone();
            Box::new(move |d| c.set_domains(d))
        },
        wake: Box::new(move || {
            let (c, q) = (c.clone(), q.clone());
            Box::pin(async move { wake_all(&c.stores.routes, &q.routes).await })
        }),
        what: "config-domain changed; reconciling every Route",
    };
    let observability = Followed {
        name: ctx.args.observability_configmap.clone(),
        parse: Tracing::from_data,
        apply: {
            let c = ctx.clone();
            Box::new(move |t: Option<Tracing>| {
                c.telemetry.apply(t.as_ref());
                c.publisher.set_tracing(t)
            })
        },
        wake: Box::new(|| Box::pin(async {})),
        what: "config-observability changed; the next contract carries the tracing settings",
    };
    tokio::join!(
        follow_one(&ctx, defaults, stop.clone()),
        follow_one(&ctx, features, stop.clone()),
        follow_one(&ctx, domains, stop.clone()),
        follow_one(&ctx, observability, stop),
    );
}

async fn follow_one<T>(ctx: &Context, f: Followed<T>, mut stop: watch::Receiver<bool>) {
    let api: Api<ConfigMap> =
        Api::namespaced(ctx.client.clone(), &ctx.args.leader_election_namespace);
    let mut tick = tokio::time::interval(EVERY);
    let mut reported: Option<String> = None;
    while unless_stopped(&mut stop, tick.tick()).await.is_some() {
        let parsed = match api.get_opt(&f.name).await {
            Ok(cm) => (f.parse)(&cm.and_then(|c| c.data).unwrap_or_default()),
            Err(e) => Err(format!("cannot read it: {e}")),
        };
        match parsed {
            Ok(settings) => {
                reported = None;
                if (f.apply)(settings) {
                    tracing::info!(configmap = %f.name, "{}", f.what);
                    if unless_stopped(&mut stop, (f.wake)()).await.is_none() {
                        return;
                    }
                }
            }
            Err(e) if reported.as_ref() != Some(&e) => {
                tracing::warn!(configmap = %f.name, error = %e, "settings not applied; keeping the previous ones");
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
