//! The autoscaler loop in Kubernetes: every tick it reads `config-autoscaler`, collects each
//! dispatcher's `/autoscaler/stats` (in-flight concurrency, completed requests and demand per
//! revision, as Knative's autoscaler scrapes queue-proxies), runs the pure KPA
//! ([`ferry_api::autoscaler::Autoscaler`]) per revision, and sets the revision Deployment's
//! replicas. The Revision controller applies the same number, so the two never fight.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_api::autoscaler::{Autoscaler, RevisionScaling, Sample, Settings};
use ferry_api::serving::autoscaling::AutoscalingAnnotations;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde::Deserialize;

use crate::controllers::Context;
use crate::dispatchers::Admins;
use crate::serving::deployment_name;

/// One revision's numbers from one dispatcher.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Stats {
    /// `namespace/name`.
    pub revision: String,
    /// Average deliveries in flight or held since the previous read.
    #[serde(default)]
    pub concurrency: f64,
    /// Deliveries completed since the previous read.
    #[serde(default)]
    pub requests: u64,
    /// Deliveries waiting for a replica now.
    #[serde(default)]
    pub waiting: u32,
}

/// Adds up the dispatchers' reports per revision.
pub fn sum(reports: Vec<Vec<Stats>>) -> BTreeMap<String, Stats> {
    let mut out: BTreeMap<String, Stats> = BTreeMap::new();
    for s in reports.into_iter().flatten() {
        let e = out.entry(s.revision.clone()).or_insert_with(|| Stats {
            revision: s.revision.clone(),
            ..Default::default()
        });
        e.concurrency += s.concurrency;
        e.requests += s.requests;
        e.waiting += s.waiting;
    }
    out
}

async fn collect(admins: &Admins, http: &reqwest::Client) -> BTreeMap<String, Stats> {
    let urls = admins.urls().await.unwrap_or_default();
    let mut reports = Vec::with_capacity(urls.len());
    for url in urls {
        let url = format!("{}/autoscaler/stats", url.trim_end_matches('/'));
        match http.get(&url).send().await {
            Ok(r) if r.status().is_success() => match r
                .text()
                .await
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str::<Vec<Stats>>(&t).map_err(|e| e.to_string()))
            {
                Ok(stats) => reports.push(stats),
                Err(e) => tracing::warn!(%url, error = %e, "unreadable autoscaler stats"),
            },
            Ok(r) => tracing::warn!(%url, status = %r.status(), "autoscaler stats refused"),
            Err(e) => tracing::warn!(%url, error = %e, "cannot read autoscaler stats"),
        }
    }
    sum(reports)
}

async fn settings(ctx: &Context) -> Settings {
    let api: Api<ConfigMap> =
        Api::namespaced(ctx.client.clone(), &ctx.args.leader_election_namespace);
    match api.get_opt(&ctx.args.autoscaler_configmap).await {
        Ok(Some(cm)) => match Settings::from_config_map(&cm.data.unwrap_or_default()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(configmap = %ctx.args.autoscaler_configmap, error = %e, "invalid autoscaler settings; keeping the previous ones");
                ctx.autoscaler_settings()
            }
        },
        Ok(None) => Settings::default(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the autoscaler settings; keeping the previous ones");
            ctx.autoscaler_settings()
        }
    }
}

/// Runs the loop until dropped.
pub async fn run(ctx: Arc<Context>, admins: Admins, http: reqwest::Client) {
    let started = Instant::now();
    let mut autoscalers: HashMap<String, (RevisionScaling, Autoscaler)> = HashMap::new();
    loop {
        let s = settings(&ctx).await;
        ctx.set_autoscaler_settings(s.clone());
        let stats = collect(&admins, &http).await;
        let now_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut live = Vec::new();
        for rev in ctx.stores.revisions.state() {
            let ns = rev.namespace().unwrap_or_default();
            let key = format!("{ns}/{}", rev.name_any());
            let Some(deployment) = ctx
                .stores
                .deployments
                .get(&ObjectRef::new(&deployment_name(&rev.name_any())).within(&ns))
            else {
                continue;
            };
            live.push(key.clone());
            let mut ignored = ferry_api::validation::FieldErrors::default();
            let annotations = AutoscalingAnnotations::parse(
                rev.annotations(),
                &ferry_api::validation::Path::root("metadata"),
                &mut ignored,
            );
            let scaling =
                RevisionScaling::resolve(&s, &annotations, rev.spec.container_concurrency);
            let (known, autoscaler) = autoscalers
                .entry(key.clone())
                .or_insert_with(|| (scaling.clone(), Autoscaler::new(scaling.clone())));
            if *known != scaling {
                *known = scaling.clone();
                *autoscaler = Autoscaler::new(scaling);
            }
            let ready = deployment
                .status
                .as_ref()
                .and_then(|st| st.ready_replicas)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0);
            if let Some(st) = stats.get(&key) {
                autoscaler.record(
                    now_ms,
                    Sample {
                        concurrency: st.concurrency,
                        requests: st.requests as f64,
                        ready_replicas: ready,
                    },
                );
                if st.waiting > 0 {
                    autoscaler.record_demand(now_ms);
                }
            }
            let decision = autoscaler.decide(now_ms, ready);
            let desired = i32::try_from(decision.desired).unwrap_or(i32::MAX);
            ctx.set_scale(&key, desired);
            let current = deployment.spec.as_ref().and_then(|sp| sp.replicas);
            if current != Some(desired) {
                let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
                let patch = serde_json::json!({"spec": {"replicas": desired}});
                match api
                    .patch(
                        &deployment.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await
                {
                    Ok(_) => {
                        tracing::info!(revision = %key, from = ?current, to = desired, reason = ?decision.reason, "scaled")
                    }
                    Err(e) => tracing::warn!(revision = %key, error = %e, "cannot scale"),
                }
            }
        }
        autoscalers.retain(|k, _| live.contains(k));
        tokio::time::sleep(s.tick_interval.max(Duration::from_millis(100))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_add_up_per_revision() {
        let a = Stats {
            revision: "ns/r".into(),
            concurrency: 1.5,
            requests: 10,
            waiting: 0,
        };
        let b = Stats {
            revision: "ns/r".into(),
            concurrency: 2.0,
            requests: 5,
            waiting: 3,
        };
        let other = Stats {
            revision: "ns/q".into(),
            concurrency: 0.5,
            requests: 1,
            waiting: 0,
        };
        let got = sum(vec![vec![a], vec![b, other.clone()]]);
        assert_eq!(got.len(), 2);
        assert_eq!(got["ns/r"].concurrency, 3.5);
        assert_eq!(got["ns/r"].requests, 15);
        assert_eq!(got["ns/r"].waiting, 3);
        assert_eq!(got["ns/q"], other);
        let parsed: Vec<Stats> = serde_json::from_str(
            r#"[{"revision":"ns/r","ready":1,"concurrency":0.25,"requests":4,"waiting":1,"inFlight":0}]"#,
        )
        .expect("the dispatcher's format parses");
        assert_eq!(parsed[0].waiting, 1);
    }
}
