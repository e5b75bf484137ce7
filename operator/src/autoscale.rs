//! The autoscaler loop in Kubernetes: every tick it reads `config-autoscaler`, collects each
//! dispatcher's `/autoscaler/stats` (in-flight concurrency, completed requests and demand per
//! revision, as Knative's autoscaler scrapes queue-proxies), lets the shared decision
//! ([`ferry_control::scaling::Scalers`], which `ferry dev` runs too) decide each revision's
//! scale, and sets the revision Deployment's replicas. The Revision controller applies the same
//! number (read from the [`ScaleBoard`]), so the two never fight.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_api::autoscaler::Settings;
use ferry_api::reports::{RevisionStats, STATS_PATH, sum_stats};
use ferry_control::scaling::{ScaleInput, Scalers};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, ResourceExt};

use tokio::sync::watch;

use crate::dispatchers::Admins;
use crate::serving::deployment_name;
use crate::tasks::unless_stopped;
use crate::world::Stores;

/// What the autoscaler loop decided, for the Revision controller: each revision's replicas and
/// the cluster's settings.
#[derive(Default)]
pub struct ScaleBoard {
    /// Replicas decided, by `namespace/revision`.
    decided: Mutex<HashMap<String, i32>>,
    /// Cluster autoscaler settings (`config-autoscaler`).
    settings: Mutex<Settings>,
}

impl ScaleBoard {
    /// The replicas the autoscaler decided for `namespace/revision`, if it has.
    pub fn scale(&self, revision: &str) -> Option<i32> {
        lock(&self.decided).get(revision).copied()
    }

    /// Records the autoscaler's decision for `namespace/revision`.
    pub fn set_scale(&self, revision: &str, replicas: i32) {
        lock(&self.decided).insert(revision.to_owned(), replicas);
    }

    /// The cluster's autoscaler settings.
    pub fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    /// Replaces the cluster's autoscaler settings.
    pub fn set_settings(&self, settings: Settings) {
        *lock(&self.settings) = settings;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where the loop reads and writes.
pub struct ScaleLoop {
    /// The API client (Deployments, `config-autoscaler`).
    pub client: Client,
    /// Revisions and Deployments.
    pub stores: Stores,
    /// Where decisions are published.
    pub board: Arc<ScaleBoard>,
    /// Namespace and name of `config-autoscaler`.
    pub config_map: (String, String),
    /// The dispatchers' admin endpoints.
    pub admins: Admins,
    /// Client for the dispatchers' stats (with a timeout).
    pub http: reqwest::Client,
}

async fn collect(admins: &Admins, http: &reqwest::Client) -> BTreeMap<String, RevisionStats> {
    let urls = admins.urls().await.unwrap_or_default();
    let mut reports = Vec::with_capacity(urls.len());
    for url in urls {
        let url = format!("{}{STATS_PATH}", url.trim_end_matches('/'));
        match http.get(&url).send().await {
            Ok(r) if r.status().is_success() => {
                match r.text().await.map_err(|e| e.to_string()).and_then(|t| {
                    serde_json::from_str::<Vec<RevisionStats>>(&t).map_err(|e| e.to_string())
                }) {
                    Ok(stats) => reports.push(stats),
                    Err(e) => tracing::warn!(%url, error = %e, "unreadable autoscaler stats"),
                }
            }
            Ok(r) => tracing::warn!(%url, status = %r.status(), "autoscaler stats refused"),
            Err(e) => tracing::warn!(%url, error = %e, "cannot read autoscaler stats"),
        }
    }
    sum_stats(reports.into_iter().flatten())
}

async fn settings(l: &ScaleLoop) -> Settings {
    let (ns, name) = &l.config_map;
    let api: Api<ConfigMap> = Api::namespaced(l.client.clone(), ns);
    match api.get_opt(name).await {
        Ok(Some(cm)) => match Settings::from_config_map(&cm.data.unwrap_or_default()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(configmap = %name, error = %e, "invalid autoscaler settings; keeping the previous ones");
                l.board.settings()
            }
        },
        Ok(None) => Settings::default(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the autoscaler settings; keeping the previous ones");
            l.board.settings()
        }
    }
}

/// Runs the loop until `stop` turns `true`. It stops only while it waits (for the settings,
/// the dispatchers' stats or the next tick), so a Deployment patch in progress completes.
pub async fn run(l: ScaleLoop, mut stop: watch::Receiver<bool>) {
    let started = Instant::now();
    let mut scalers = Scalers::default();
    loop {
        let Some(settings) = unless_stopped(&mut stop, settings(&l)).await else {
            return;
        };
        l.board.set_settings(settings.clone());
        let Some(stats) = unless_stopped(&mut stop, collect(&l.admins, &l.http)).await else {
            return;
        };
        let now_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let revisions = l.stores.revisions.state();
        let mut deployments = BTreeMap::new();
        for rev in &revisions {
            let ns = rev.namespace().unwrap_or_default();
            let key = ObjectRef::new(&deployment_name(&rev.name_any())).within(&ns);
            if let Some(d) = l.stores.deployments.get(&key) {
                deployments.insert(format!("{ns}/{}", rev.name_any()), d);
            }
        }
        let inputs: Vec<ScaleInput<'_>> = revisions
            .iter()
            .filter_map(|rev| {
                let (key, deployment) = deployments.get_key_value(&format!(
                    "{}/{}",
                    rev.namespace().unwrap_or_default(),
                    rev.name_any()
                ))?;
                Some(ScaleInput {
                    revision: key,
                    annotations: rev.annotations(),
                    container_concurrency: rev.spec.container_concurrency,
                    ready: ready_replicas(deployment),
                })
            })
            .collect();
        for (revision, decision) in scalers.tick(now_ms, &settings, &inputs, &stats) {
            let desired = i32::try_from(decision.desired).unwrap_or(i32::MAX);
            l.board.set_scale(&revision, desired);
            if let Some(deployment) = deployments.get(&revision) {
                scale(&l.client, deployment, &revision, desired, &decision.reason).await;
            }
        }
        scalers.retain(&deployments.keys().cloned().collect::<BTreeSet<_>>());
        let tick = tokio::time::sleep(settings.tick_interval.max(Duration::from_millis(100)));
        if unless_stopped(&mut stop, tick).await.is_none() {
            return;
        }
    }
}

fn ready_replicas(deployment: &Deployment) -> u32 {
    deployment
        .status
        .as_ref()
        .and_then(|st| st.ready_replicas)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

/// Sets a Deployment's replicas when they differ from `desired`.
async fn scale(
    client: &Client,
    deployment: &Deployment,
    revision: &str,
    desired: i32,
    reason: &ferry_api::autoscaler::Reason,
) {
    let current = deployment.spec.as_ref().and_then(|sp| sp.replicas);
    if current == Some(desired) {
        return;
    }
    let ns = deployment.namespace().unwrap_or_default();
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let patch = serde_json::json!({"spec": {"replicas": desired}});
    match api
        .patch(
            &deployment.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => tracing::info!(%revision, from = ?current, to = desired, ?reason, "scaled"),
        Err(e) => tracing::warn!(%revision, error = %e, "cannot scale"),
    }
}
