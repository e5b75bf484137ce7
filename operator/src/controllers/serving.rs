//! Controllers of the serving kinds: Service → Configuration + Route; Configuration → one
//! immutable Revision per template change; Revision → Deployment + Service; Route → resolved
//! traffic. What to write comes from the pure functions of [`crate::serving`].

use std::sync::Arc;

use ferry_api::autoscaler::RevisionScaling;
use ferry_api::duck::{Condition, ConditionStatus, READY, Status};
use ferry_api::serving::autoscaling::AutoscalingAnnotations;
use ferry_api::serving::{Configuration, KnativeService, Revision, Route};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use tokio::sync::watch;

use super::context::{Context, Named, apply_status, configured, error_policy, instrumented, named};
use super::reflectors::Reflectors;
use super::wake::ServingReceivers;
use crate::MANAGER;
use crate::error::{Error, Result};
use crate::serving;

/// The four serving controllers, ready to be driven.
pub(super) fn controllers(
    ctx: &Arc<Context>,
    kinds: &Reflectors,
    queues: ServingReceivers,
    stop: &watch::Receiver<bool>,
) -> Vec<Named> {
    let services = configured(kinds.services.controller(), ctx, stop)
        .reconcile_on(queues.services)
        .owns_shared_stream(kinds.configurations.subscribe())
        .owns_shared_stream(kinds.routes.subscribe())
        .run(reconcile_service, error_policy, ctx.clone());
    let configurations = configured(kinds.configurations.controller(), ctx, stop)
        .reconcile_on(queues.configurations)
        .owns_shared_stream(kinds.revisions.subscribe())
        .run(reconcile_configuration, error_policy, ctx.clone());
    let revisions = configured(kinds.revisions.controller(), ctx, stop)
        .reconcile_on(queues.revisions)
        .owns_shared_stream(kinds.deployments.subscribe())
        .run(reconcile_revision, error_policy, ctx.clone());
    let (by_config, by_revision) = (kinds.routes.store.clone(), kinds.routes.store.clone());
    let routes = configured(kinds.routes.controller(), ctx, stop)
        .reconcile_on(queues.routes)
        .watches_shared_stream(
            kinds.configurations.subscribe(),
            move |c: Arc<Configuration>| routes_in(&by_config, c.namespace().as_deref()),
        )
        .watches_shared_stream(kinds.revisions.subscribe(), move |r: Arc<Revision>| {
            routes_in(&by_revision, r.namespace().as_deref())
        })
        .run(reconcile_route, error_policy, ctx.clone());
    vec![
        named::<KnativeService, _, _, _>(services),
        named::<Configuration, _, _, _>(configurations),
        named::<Revision, _, _, _>(revisions),
        named::<Route, _, _, _>(routes),
    ]
}

/// Every Route in a namespace (traffic may name any Configuration or Revision in it).
fn routes_in(store: &Store<Route>, namespace: Option<&str>) -> Vec<ObjectRef<Route>> {
    store
        .state()
        .into_iter()
        .filter(|r| r.namespace().as_deref() == namespace)
        .map(|r| ObjectRef::from_obj(&*r))
        .collect()
}

fn in_namespace<K: Resource<DynamicType = ()> + Clone>(
    store: &Store<K>,
    namespace: &str,
) -> Vec<K> {
    store
        .state()
        .into_iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(namespace))
        .map(|o| (*o).clone())
        .collect()
}

/// Server-side applies an owned object with the operator's field manager.
async fn apply_owned<K>(ctx: &Context, namespace: &str, obj: &K) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Serialize,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let mut value = serde_json::to_value(obj).map_err(|source| Error::Encode {
        what: format!(
            "{} {}",
            K::kind(&()),
            obj.meta().name.as_deref().unwrap_or_default()
        ),
        source,
    })?;
    value["apiVersion"] = K::api_version(&()).into();
    value["kind"] = K::kind(&()).into();
    if let Some(o) = value.as_object_mut() {
        o.remove("status");
    }
    api.patch(
        obj.meta().name.as_deref().unwrap_or_default(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&value),
    )
    .await?;
    Ok(())
}

pub(super) async fn reconcile_service(
    svc: Arc<KnativeService>,
    ctx: Arc<Context>,
) -> Result<Action> {
    instrumented(svc.clone(), ctx.clone(), async move {
        let ns = svc.namespace().unwrap_or_default();
        if svc.metadata.deletion_timestamp.is_some() {
            // Owner references delete the Configuration and Route with it.
            return Ok(Action::await_change());
        }
        let problem = crate::status::spec_problem_in(
            &ferry_api::resource::Resource::Service((*svc).clone()),
            &ctx.validation(),
        );
        if problem.is_none() {
            apply_owned(&ctx, &ns, &serving::configuration_for(&svc)).await?;
            apply_owned(&ctx, &ns, &serving::route_for(&svc)).await?;
        }
        let name = svc.name_any();
        let cfg = ctx
            .stores
            .configurations
            .get(&ObjectRef::new(&name).within(&ns));
        let route = ctx.stores.routes.get(&ObjectRef::new(&name).within(&ns));
        let mut status =
            serving::service_status(&svc, cfg.as_deref(), route.as_deref(), &ctx.now());
        mark_problem(&mut status.status, problem, &ctx.now());
        apply_status(&ctx, &*svc, svc.status.as_ref(), &status).await?;
        Ok(Action::await_change())
    })
    .await
}

pub(super) async fn reconcile_configuration(
    cfg: Arc<Configuration>,
    ctx: Arc<Context>,
) -> Result<Action> {
    instrumented(cfg.clone(), ctx.clone(), async move {
        let ns = cfg.namespace().unwrap_or_default();
        if cfg.metadata.deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        let mut revisions = in_namespace(&ctx.stores.revisions, &ns);
        // A revision name taken by another template is reported by `configuration_status`
        // (Knative's RevisionFailed), which runs the same check.
        if let Ok(Some(revision)) = serving::revision_for(&cfg, &revisions) {
            let api: Api<Revision> = Api::namespaced(ctx.client.clone(), &ns);
            match api.create(&PostParams::default(), &revision).await {
                Ok(created) => {
                    revisions.push(created);
                    ctx.event(
                        &*cfg,
                        false,
                        "Created",
                        format!("Created Revision {}", revision.name_any()),
                    )
                    .await;
                }
                // The store had not seen it yet.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        let status = serving::configuration_status(&cfg, &revisions, &ctx.now());
        apply_status(&ctx, &*cfg, cfg.status.as_ref(), &status).await?;
        Ok(Action::await_change())
    })
    .await
}

/// Replicas a revision's Deployment should have: what the autoscaler decided, else what the
/// Deployment has (the autoscaler owns it once it exists), else the initial scale.
fn desired_replicas(ctx: &Context, rev: &Revision, deployment: Option<&Deployment>) -> i32 {
    let key = format!("{}/{}", rev.namespace().unwrap_or_default(), rev.name_any());
    if let Some(n) = ctx.scale.scale(&key) {
        return n;
    }
    if let Some(n) = deployment
        .and_then(|d| d.spec.as_ref())
        .and_then(|s| s.replicas)
    {
        return n;
    }
    let mut ignored = ferry_api::validation::FieldErrors::default();
    let annotations = AutoscalingAnnotations::parse(
        rev.annotations(),
        &ferry_api::validation::Path::root("metadata"),
        &mut ignored,
    );
    let scaling = RevisionScaling::resolve(
        &ctx.scale.settings(),
        &annotations,
        rev.spec.container_concurrency,
    );
    i32::try_from(scaling.initial_scale.max(scaling.min_scale)).unwrap_or(i32::MAX)
}

pub(super) async fn reconcile_revision(rev: Arc<Revision>, ctx: Arc<Context>) -> Result<Action> {
    instrumented(rev.clone(), ctx.clone(), async move {
        let ns = rev.namespace().unwrap_or_default();
        if rev.metadata.deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        let name = rev.name_any();
        let deployment = ctx
            .stores
            .deployments
            .get(&ObjectRef::new(&serving::deployment_name(&name)).within(&ns));
        let replicas = desired_replicas(&ctx, &rev, deployment.as_deref());
        let problem = crate::status::spec_problem_in(
            &ferry_api::resource::Resource::Revision((*rev).clone()),
            &ctx.validation(),
        );
        let mut build_error = None;
        let invalid = problem.is_some();
        if !invalid {
            match serving::deployment_for(&rev, replicas) {
                Ok(d) => apply_owned(&ctx, &ns, &d).await?,
                Err(e) => build_error = Some(e),
            }
            apply_owned::<Service>(&ctx, &ns, &serving::service_for(&rev)).await?;
        }
        let available = deployment
            .as_ref()
            .and_then(|d| d.status.as_ref())
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        let pods: Vec<Pod> = if available == 0 && replicas > 0 && deployment.is_some() {
            let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
            api.list(&ListParams::default().labels(&format!("{}={name}", serving::REVISION_LABEL)))
                .await
                .map(|l| l.items)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let seen = serving::RevisionObservation {
            deployment: deployment.as_deref(),
            pods: &pods,
            desired_replicas: Some(replicas),
        };
        let mut status = serving::revision_status(&rev, &seen, &ctx.now());
        let build_problem = build_error.map(|message| ("InvalidSpec", message));
        mark_problem(&mut status.status, problem.or(build_problem), &ctx.now());
        apply_status(&ctx, &*rev, rev.status.as_ref(), &status).await?;
        Ok(Action::await_change())
    })
    .await
}

/// `Ready=False` with the spec's problem (Knative's webhook would have refused the object;
/// here the status says why nothing runs).
fn mark_problem(status: &mut Status, problem: Option<(&str, String)>, now: &Time) {
    if let Some((reason, message)) = problem {
        status.set_condition(
            Condition::new(READY, ConditionStatus::False, Some(reason), Some(&message)),
            now,
        );
    }
}

pub(super) async fn reconcile_route(route: Arc<Route>, ctx: Arc<Context>) -> Result<Action> {
    instrumented(route.clone(), ctx.clone(), async move {
        let ns = route.namespace().unwrap_or_default();
        if route.metadata.deletion_timestamp.is_some() {
            // Owner references delete its placeholder Services with it.
            return Ok(Action::await_change());
        }
        let cfgs = in_namespace(&ctx.stores.configurations, &ns);
        let revisions = in_namespace(&ctx.stores.revisions, &ns);
        let mut status = serving::route_status(
            &route,
            &cfgs,
            &revisions,
            &ctx.route_domain(route.labels()),
            &ctx.args.cluster_domain,
            &ctx.now(),
        );
        let mut with_status = (*route).clone();
        with_status.status = Some(status.clone());
        if let Some(problem) = placeholder_services(&ctx, &with_status).await? {
            status.status.set_condition(
                Condition::new(
                    ferry_api::serving::route_conditions::INGRESS_READY,
                    ConditionStatus::False,
                    Some(serving::reasons::NOT_OWNED),
                    Some(&problem),
                ),
                &ctx.now(),
            );
            status.status.set_condition(
                Condition::new(
                    READY,
                    ConditionStatus::False,
                    Some(serving::reasons::NOT_OWNED),
                    Some(&problem),
                ),
                &ctx.now(),
            );
        }
        apply_status(&ctx, &*route, route.status.as_ref(), &status).await?;
        Ok(Action::await_change())
    })
    .await
}

/// Applies the Route's placeholder Services (`<route>`, `<tag>-<route>`: ExternalNames to the
/// ingress) and deletes those of tags it no longer has. A Service of that name that the Route
/// does not own is left alone and named in the answer (Knative's `NotOwned`).
async fn placeholder_services(ctx: &Context, route: &Route) -> Result<Option<String>> {
    let ns = route.namespace().unwrap_or_default();
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
    let entry = entry_host(&ctx.args.ingress_url);
    let wanted = serving::route_services(route, &entry);
    let mut problem = None;
    for svc in &wanted {
        let name = svc.name_any();
        match api.get_opt(&name).await? {
            Some(existing) if !serving::controlled_by(&existing.metadata, route) => {
                problem = Some(format!(
                    "There is an existing placeholder Service {name:?} that we do not own."
                ));
            }
            _ => apply_owned(ctx, &ns, svc).await?,
        }
    }
    let owned = api
        .list(&ListParams::default().labels(&format!(
            "{}={}",
            serving::ROUTE_LABEL,
            route.name_any()
        )))
        .await?;
    for stale in owned.items.iter().filter(|s| {
        serving::controlled_by(&s.metadata, route)
            && !wanted.iter().any(|w| w.metadata.name == s.metadata.name)
    }) {
        match api.delete(&stale.name_any(), &Default::default()).await {
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(problem)
}

/// The host of `--ingress-url`: what placeholder Services resolve to.
fn entry_host(ingress_url: &str) -> String {
    let rest = ingress_url
        .split_once("://")
        .map_or(ingress_url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(authority, |(host, _)| host)
        .to_owned()
}
