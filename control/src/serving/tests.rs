use std::collections::BTreeMap;

use ConditionStatus::{False, True, Unknown};
use ferry_api::duck::{ConditionStatus, READY, Status};
use ferry_api::serving::{
    CONFIGURATION_GENERATION_LABEL, CONFIGURATION_LABEL, Configuration, ConfigurationStatus,
    KnativeService, Revision, RevisionStatus, RevisionTemplateSpec, Route, RouteStatus,
    SERVICE_LABEL, ServiceSpec, TrafficTarget, revision_conditions, route_conditions,
    service_conditions,
};
use ferry_api::validation::UNSUPPORTED_FIELD_REASON;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::api::core::v1::{ContainerPort, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde_json::json;

use super::labels::*;
use super::owned::*;
use super::workload::*;
use super::*;

const NS: &str = "default";

fn at(secs: i64) -> Time {
    Time(Timestamp::from_second(secs).expect("valid timestamp"))
}

fn meta(name: &str, uid: &str, generation: i64) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(NS.into()),
        uid: Some(uid.into()),
        generation: Some(generation),
        ..ObjectMeta::default()
    }
}

fn template(image: &str) -> RevisionTemplateSpec {
    serde_json::from_value(json!({"spec": {"containers": [{"image": image}]}})).expect("template")
}

/// A target at `revision` (or the latest revision when `None`).
fn target(revision: Option<&str>, percent: i64, tag: Option<&str>) -> TrafficTarget {
    TrafficTarget {
        revision_name: revision.map(Into::into),
        latest_revision: revision.is_none().then_some(true),
        percent: Some(percent),
        tag: tag.map(Into::into),
        ..TrafficTarget::default()
    }
}

fn service(traffic: Vec<TrafficTarget>) -> KnativeService {
    KnativeService {
        metadata: meta("cart", "svc-uid", 1),
        spec: ServiceSpec {
            template: template("cart:v1"),
            traffic,
        },
        status: None,
    }
}

/// Configuration `cart` of Service `cart` at `generation`, templated with `image`.
fn config(generation: i64, image: &str) -> Configuration {
    let mut cfg = configuration_for(&service(Vec::new()));
    cfg.metadata.uid = Some("cfg-uid".into());
    cfg.metadata.generation = Some(generation);
    cfg.spec.template = template(image);
    cfg
}

fn byo(generation: i64, image: &str) -> Configuration {
    let mut cfg = config(generation, image);
    cfg.spec.template.metadata.name = Some("cart-blue".into());
    cfg
}

fn status_with(conditions: &[(&str, ConditionStatus)]) -> Status {
    Status {
        observed_generation: Some(1),
        conditions: conditions
            .iter()
            .map(|(t, s)| {
                let message = if *s == False { "boom" } else { "" };
                condition(t, *s, "", message)
            })
            .collect(),
        ..Status::default()
    }
}

/// The revision `cfg` stamps, with `Ready` observed as `ready` (no status when `None`).
fn stamped(cfg: &Configuration, ready: Option<ConditionStatus>) -> Revision {
    let mut rev = revision_for(cfg, &[])
        .expect("stamps")
        .expect("a new revision");
    rev.metadata.uid = Some(format!("{}-uid", rev.name_any()));
    rev.metadata.generation = Some(1);
    rev.status = ready.map(|r| RevisionStatus {
        status: status_with(&[(READY, r)]),
        ..RevisionStatus::default()
    });
    rev
}

fn cond(status: &Status, type_: &str) -> (ConditionStatus, Option<String>) {
    let c = status
        .condition(type_)
        .unwrap_or_else(|| panic!("{type_} is set"));
    (c.status, c.reason.clone())
}

fn want(status: ConditionStatus, reason: &str) -> (ConditionStatus, Option<String>) {
    (status, (!reason.is_empty()).then(|| reason.to_owned()))
}

fn message(status: &Status, type_: &str) -> String {
    status
        .condition(type_)
        .and_then(|c| c.message.clone())
        .unwrap_or_default()
}

#[test]
fn owner_reference_makes_the_owner_the_controller() {
    assert_eq!(
        owner_reference(&service(Vec::new())),
        OwnerReference {
            api_version: "serving.knative.dev/v1".into(),
            kind: "Service".into(),
            name: "cart".into(),
            uid: "svc-uid".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    );
    let rev = stamped(&config(1, "v1"), None);
    assert!(controlled_by(&rev.metadata, &config(1, "v1")));
    assert!(!controlled_by(&rev.metadata, &service(Vec::new())));
}

#[test]
fn a_service_owns_a_configuration_with_its_template_and_labels() {
    let mut svc = service(Vec::new());
    svc.metadata.labels = Some(BTreeMap::from([("team".into(), "shop".into())]));
    svc.metadata.annotations = Some(BTreeMap::from([
        (LAST_APPLIED_ANNOTATION.into(), "{}".into()),
        ("serving.knative.dev/rollout-duration".into(), "60s".into()),
        ("note".into(), "kept".into()),
    ]));
    let cfg = configuration_for(&svc);
    assert_eq!(cfg.metadata.name.as_deref(), Some("cart"));
    assert_eq!(cfg.metadata.namespace.as_deref(), Some(NS));
    assert_eq!(
        cfg.metadata.labels,
        Some(BTreeMap::from([
            ("team".into(), "shop".into()),
            (SERVICE_LABEL.into(), "cart".into()),
            (SERVICE_UID_LABEL.into(), "svc-uid".into()),
        ]))
    );
    assert_eq!(
        cfg.metadata.annotations,
        Some(BTreeMap::from([("note".into(), "kept".into())]))
    );
    assert_eq!(
        cfg.metadata.owner_references,
        Some(vec![owner_reference(&svc)])
    );
    assert_eq!(cfg.spec.template, svc.spec.template);
}

#[test]
fn a_service_owns_a_route_whose_latest_targets_name_its_configuration() {
    let with_config = |mut t: TrafficTarget| {
        t.configuration_name = Some("cart".into());
        t
    };
    let cases = [
        (
            "empty traffic is 100% to the latest revision",
            vec![],
            vec![with_config(TrafficTarget::latest_100())],
        ),
        (
            "90/10 with tags",
            vec![
                target(Some("cart-00001"), 90, Some("stable")),
                target(None, 10, Some("canary")),
            ],
            vec![
                target(Some("cart-00001"), 90, Some("stable")),
                with_config(target(None, 10, Some("canary"))),
            ],
        ),
    ];
    for (name, traffic, expected) in cases {
        let route = route_for(&service(traffic));
        assert_eq!(route.spec.traffic, expected, "{name}");
        assert_eq!(route.metadata.name.as_deref(), Some("cart"), "{name}");
        assert_eq!(
            route.metadata.labels,
            Some(BTreeMap::from([(SERVICE_LABEL.into(), "cart".into())])),
            "{name}"
        );
        assert_eq!(
            route
                .metadata
                .owner_references
                .as_ref()
                .map(|o| o[0].kind.as_str()),
            Some("Service"),
            "{name}"
        );
    }
}

#[test]
fn a_configuration_stamps_one_immutable_revision_per_generation() {
    let mut foreign = stamped(&byo(3, "v2"), None);
    foreign.metadata.owner_references = Some(vec![OwnerReference {
        uid: "other-cfg-uid".into(),
        ..owner_reference(&config(1, "v1"))
    }]);
    let mut squatter = stamped(&config(1, "v1"), None);
    squatter.metadata.name = Some("cart-00002".into());
    struct Case {
        name: &'static str,
        cfg: Configuration,
        existing: Vec<Revision>,
        want: Result<Option<&'static str>, &'static str>,
    }
    let cases = [
        Case {
            name: "first revision",
            cfg: config(1, "v1"),
            existing: vec![],
            want: Ok(Some("cart-00001")),
        },
        Case {
            name: "a template change makes -00002",
            cfg: config(2, "v2"),
            existing: vec![stamped(&config(1, "v1"), Some(True))],
            want: Ok(Some("cart-00002")),
        },
        Case {
            name: "an unchanged generation makes none",
            cfg: config(2, "v2"),
            existing: vec![
                stamped(&config(1, "v1"), Some(True)),
                stamped(&config(2, "v2"), None),
            ],
            want: Ok(None),
        },
        Case {
            name: "a BYO name is used",
            cfg: byo(3, "v2"),
            existing: vec![stamped(&config(2, "v2"), Some(True))],
            want: Ok(Some("cart-blue")),
        },
        Case {
            name: "a BYO revision of this generation exists",
            cfg: byo(3, "v2"),
            existing: vec![stamped(&byo(3, "v2"), None)],
            want: Ok(None),
        },
        Case {
            name: "a BYO name reused with the same template",
            cfg: byo(4, "v2"),
            existing: vec![stamped(&byo(3, "v2"), None)],
            want: Ok(None),
        },
        Case {
            name: "a BYO name reused with a different template",
            cfg: byo(4, "v3"),
            existing: vec![stamped(&byo(3, "v2"), Some(True))],
            want: Err(
                "spec.template.metadata.name: revision \"cart-blue\" already exists with a different template; revisions are immutable, so give the changed template a new name",
            ),
        },
        Case {
            name: "a BYO name of another configuration",
            cfg: byo(3, "v2"),
            existing: vec![foreign],
            want: Err("belongs to another configuration; choose another name"),
        },
        Case {
            name: "the generated name is taken",
            cfg: config(2, "v2"),
            existing: vec![squatter],
            want: Err("revision \"cart-00002\" exists but was not stamped from generation 2"),
        },
    ];
    for c in cases {
        let got = revision_for(&c.cfg, &c.existing);
        match (got, c.want) {
            (Ok(rev), Ok(want)) => {
                assert_eq!(rev.map(|r| r.name_any()).as_deref(), want, "{}", c.name)
            }
            (Err(e), Err(want)) => assert!(e.contains(want), "{}: {e}", c.name),
            (got, want) => panic!("{}: got {got:?}, want {want:?}", c.name),
        }
    }
}

#[test]
fn a_revision_carries_knatives_labels_and_the_template() {
    let mut cfg = config(3, "v1");
    cfg.metadata.annotations = Some(BTreeMap::from([(
        UPDATER_ANNOTATION.into(),
        "alice".into(),
    )]));
    cfg.spec.template = serde_json::from_value(json!({
        "metadata": {"labels": {"tier": "web"},
                     "annotations": {"autoscaling.knative.dev/min-scale": "1"}},
        "spec": {"containers": [{"image": "cart:v1"}], "timeoutSeconds": 30}
    }))
    .expect("template");
    let rev = revision_for(&cfg, &[]).expect("stamps").expect("new");
    assert_eq!(rev.metadata.name.as_deref(), Some("cart-00003"));
    assert_eq!(rev.metadata.namespace.as_deref(), Some(NS));
    let labels = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(
        rev.metadata.labels,
        Some(labels(&[
            ("tier", "web"),
            (CONFIGURATION_LABEL, "cart"),
            (CONFIGURATION_GENERATION_LABEL, "3"),
            (CONFIGURATION_UID_LABEL, "cfg-uid"),
            (SERVICE_LABEL, "cart"),
            (SERVICE_UID_LABEL, "svc-uid"),
        ]))
    );
    assert_eq!(
        rev.metadata.annotations,
        Some(labels(&[
            ("autoscaling.knative.dev/min-scale", "1"),
            (CREATOR_ANNOTATION, "alice"),
        ]))
    );
    assert_eq!(
        rev.metadata.owner_references,
        Some(vec![owner_reference(&cfg)])
    );
    assert_eq!(rev.spec, cfg.spec.template.spec);
}

#[test]
fn configuration_status_tracks_latest_created_and_ready() {
    let mut never_back = config(4, "v4");
    never_back.status = Some(ConfigurationStatus {
        fields: ferry_api::serving::ConfigurationStatusFields {
            latest_ready_revision_name: Some("cart-00003".into()),
            latest_created_revision_name: Some("cart-00003".into()),
        },
        ..ConfigurationStatus::default()
    });
    let unsupported: RevisionTemplateSpec = serde_json::from_value(json!({
        "metadata": {"annotations": {"autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev"}},
        "spec": {"containers": [{"image": "cart:v1"}]}
    }))
    .expect("template");
    let mut with_unsupported = config(1, "v1");
    with_unsupported.spec.template = unsupported.clone();
    let mut unsupported_cfg_rev = config(1, "v1");
    unsupported_cfg_rev.spec.template = unsupported;
    struct Case {
        name: &'static str,
        cfg: Configuration,
        revisions: Vec<Revision>,
        created: Option<&'static str>,
        ready_name: Option<&'static str>,
        ready: (ConditionStatus, Option<String>),
        message: &'static str,
    }
    let cases = [
        Case {
            name: "no revision yet",
            cfg: config(1, "v1"),
            revisions: vec![],
            created: None,
            ready_name: None,
            ready: want(Unknown, ""),
            message: "Revision \"cart-00001\" has not been created yet.",
        },
        Case {
            name: "first revision deploying",
            cfg: config(1, "v1"),
            revisions: vec![stamped(&config(1, "v1"), None)],
            created: Some("cart-00001"),
            ready_name: None,
            ready: want(Unknown, ""),
            message: "",
        },
        Case {
            name: "first revision ready",
            cfg: config(1, "v1"),
            revisions: vec![stamped(&config(1, "v1"), Some(True))],
            created: Some("cart-00001"),
            ready_name: Some("cart-00001"),
            ready: want(True, ""),
            message: "",
        },
        Case {
            name: "latest ready skips a failed newest revision",
            cfg: config(2, "v2"),
            revisions: vec![
                stamped(&config(1, "v1"), Some(True)),
                stamped(&config(2, "v2"), Some(False)),
            ],
            created: Some("cart-00002"),
            ready_name: Some("cart-00001"),
            ready: want(False, reasons::REVISION_FAILED),
            message: "Revision \"cart-00002\" failed with message: boom.",
        },
        Case {
            name: "the old revision serves while the new one deploys",
            cfg: config(2, "v2"),
            revisions: vec![
                stamped(&config(1, "v1"), Some(True)),
                stamped(&config(2, "v2"), Some(Unknown)),
            ],
            created: Some("cart-00002"),
            ready_name: Some("cart-00001"),
            ready: want(Unknown, ""),
            message: "",
        },
        Case {
            name: "latest ready never goes back past the reported one",
            cfg: never_back,
            revisions: vec![
                stamped(&config(2, "v2"), Some(True)),
                stamped(&config(3, "v3"), Some(False)),
                stamped(&config(4, "v4"), Some(False)),
            ],
            created: Some("cart-00004"),
            ready_name: Some("cart-00003"),
            ready: want(False, reasons::REVISION_FAILED),
            message: "Revision \"cart-00004\" failed with message: boom.",
        },
        Case {
            name: "a BYO name taken by another template",
            cfg: byo(4, "v3"),
            revisions: vec![stamped(&byo(3, "v2"), Some(True))],
            created: None,
            ready_name: None,
            ready: want(False, reasons::REVISION_FAILED),
            message: "Revision creation failed with message: spec.template.metadata.name: revision \"cart-blue\" already exists with a different template",
        },
        Case {
            name: "an unsupported field",
            cfg: with_unsupported,
            revisions: vec![stamped(&unsupported_cfg_rev, Some(True))],
            created: Some("cart-00001"),
            ready_name: Some("cart-00001"),
            ready: want(False, UNSUPPORTED_FIELD_REASON),
            message: "spec.template.metadata.annotations[\"autoscaling.knative.dev/class\"]: is not supported by Ferry",
        },
    ];
    for c in cases {
        let st = configuration_status(&c.cfg, &c.revisions, &at(10));
        assert_eq!(
            st.fields.latest_created_revision_name.as_deref(),
            c.created,
            "{}",
            c.name
        );
        assert_eq!(
            st.fields.latest_ready_revision_name.as_deref(),
            c.ready_name,
            "{}",
            c.name
        );
        assert_eq!(cond(&st.status, READY), c.ready, "{}", c.name);
        let got = message(&st.status, READY);
        assert!(got.starts_with(c.message), "{}: {got}", c.name);
        assert_eq!(
            st.status.observed_generation, c.cfg.metadata.generation,
            "{}",
            c.name
        );
    }
}

#[test]
fn configuration_ready_keeps_its_transition_time_while_unchanged() {
    let revisions = vec![stamped(&config(1, "v1"), Some(True))];
    let mut cfg = config(1, "v1");
    cfg.status = Some(configuration_status(&cfg, &revisions, &at(10)));
    let again = configuration_status(&cfg, &revisions, &at(20));
    let ready = again.status.condition(READY).expect("ready");
    assert_eq!(ready.last_transition_time, Some(at(10)));

    let mut cfg2 = cfg.clone();
    cfg2.metadata.generation = Some(2);
    cfg2.spec.template = template("v2");
    let mut revisions2 = revisions.clone();
    revisions2.push(stamped(&cfg2, Some(False)));
    let failed = configuration_status(&cfg2, &revisions2, &at(30));
    let ready = failed.status.condition(READY).expect("ready");
    assert_eq!(
        (ready.status, ready.last_transition_time.clone()),
        (False, Some(at(30)))
    );
}

fn rich_revision() -> Revision {
    let mut cfg = config(1, "v1");
    cfg.spec.template = serde_json::from_value(json!({
        "metadata": {"annotations": {"autoscaling.knative.dev/min-scale": "1", "team": "x"}},
        "spec": {
            "serviceAccountName": "cart-sa",
            "imagePullSecrets": [{"name": "regcred"}],
            "timeoutSeconds": 120,
            "nodeSelector": {"disk": "ssd"},
            "volumes": [{"name": "cache", "emptyDir": {}}],
            "containers": [{
                "image": "cart:v1",
                "command": ["serve"],
                "env": [{"name": "MODE", "value": "prod"}],
                "ports": [{"containerPort": 9000, "name": "http1"}],
                "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
                "startupProbe": {"httpGet": {"path": "/healthz", "port": 0}}
            }]
        }
    }))
    .expect("template");
    stamped(&cfg, None)
}

#[test]
fn a_revision_runs_on_a_deployment_shaped_like_knatives() {
    let rev = rich_revision();
    let d = deployment_for(&rev, 3).expect("deployment");
    assert_eq!(d.metadata.name.as_deref(), Some("cart-00001-deployment"));
    assert_eq!(
        d.metadata.owner_references,
        Some(vec![owner_reference(&rev)])
    );
    let labels = d.metadata.labels.clone().expect("labels");
    for (k, v) in [
        (REVISION_LABEL, "cart-00001"),
        (REVISION_UID_LABEL, "cart-00001-uid"),
        (CONFIGURATION_LABEL, "cart"),
        (SERVICE_LABEL, "cart"),
        (APP_LABEL, "cart-00001"),
    ] {
        assert_eq!(labels.get(k).map(String::as_str), Some(v), "label {k}");
    }
    assert_eq!(
        d.metadata.annotations,
        Some(BTreeMap::from([("team".into(), "x".into())])),
        "autoscaling annotations stay on the revision"
    );
    let spec = d.spec.expect("spec");
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.selector.match_labels, Some(revision_selector(&rev)));
    assert_eq!(spec.progress_deadline_seconds, Some(600));
    let template_meta = spec.template.metadata.expect("pod metadata");
    assert_eq!(template_meta.labels, Some(labels));
    assert_eq!(
        template_meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(DEFAULT_CONTAINER_ANNOTATION))
            .map(String::as_str),
        Some("user-container")
    );
    let pod = spec.template.spec.expect("pod");
    assert_eq!(pod.service_account_name.as_deref(), Some("cart-sa"));
    assert_eq!(
        pod.image_pull_secrets.as_ref().map(|s| s[0].name.as_str()),
        Some("regcred")
    );
    assert_eq!(pod.termination_grace_period_seconds, Some(120));
    assert_eq!(
        pod.node_selector,
        Some(BTreeMap::from([("disk".into(), "ssd".into())])),
        "PodSpec fields pass through"
    );
    assert_eq!(
        pod.volumes.as_ref().map(|v| v[0].name.as_str()),
        Some("cache")
    );
    let [c] = pod.containers.as_slice() else {
        panic!("one container")
    };
    assert_eq!(c.name, "user-container");
    assert_eq!(c.image.as_deref(), Some("cart:v1"));
    assert_eq!(c.command, Some(vec!["serve".to_owned()]));
    assert_eq!(
        c.volume_mounts.as_ref().map(|m| m[0].mount_path.as_str()),
        Some("/cache")
    );
    let env: Vec<(&str, &str)> = c
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        env,
        [
            ("MODE", "prod"),
            ("PORT", "9000"),
            ("K_REVISION", "cart-00001"),
            ("K_CONFIGURATION", "cart"),
            ("K_SERVICE", "cart"),
        ]
    );
    assert_eq!(
        c.ports,
        Some(vec![ContainerPort {
            name: Some("user-port".into()),
            container_port: 9000,
            ..ContainerPort::default()
        }])
    );
    let startup = c.startup_probe.as_ref().and_then(|p| p.http_get.as_ref());
    assert_eq!(
        startup.map(|h| h.port.clone()),
        Some(IntOrString::Int(9000))
    );
    let readiness = c
        .readiness_probe
        .as_ref()
        .and_then(|p| p.tcp_socket.as_ref());
    assert_eq!(
        readiness.map(|t| t.port.clone()),
        Some(IntOrString::Int(9000))
    );
}

#[test]
fn the_user_port_defaults_to_8080() {
    let cases = [
        ("no port", json!([{"image": "x"}]), 8080, "8080"),
        (
            "declared port",
            json!([{"image": "x", "ports": [{"containerPort": 3000}]}]),
            3000,
            "3000",
        ),
    ];
    for (name, containers, port, env) in cases {
        let mut cfg = config(1, "v1");
        cfg.spec.template =
            serde_json::from_value(json!({"spec": {"containers": containers}})).expect("template");
        let rev = stamped(&cfg, None);
        assert_eq!(user_port(&rev), port, "{name}");
        let d = deployment_for(&rev, 1).expect("deployment");
        let pod = d.spec.and_then(|s| s.template.spec).expect("pod");
        let got = pod.containers[0]
            .env
            .iter()
            .flatten()
            .find(|e| e.name == "PORT")
            .and_then(|e| e.value.clone());
        assert_eq!(got.as_deref(), Some(env), "{name}");
        let svc = service_for(&rev);
        let ports = svc.spec.and_then(|s| s.ports).expect("ports");
        assert_eq!(
            (ports[0].port, ports[0].target_port.clone()),
            (80, Some(IntOrString::Int(port))),
            "{name}"
        );
    }
    // Two containers and neither names the port: no serving container (validation says so
    // first; the Deployment is never built for such a revision).
    let mut two = stamped(&config(1, "v1"), None);
    two.spec.containers.push(two.spec.containers[0].clone());
    let err = deployment_for(&two, 1).expect_err("two containers");
    assert!(
        err.starts_with("spec.containers: no container names the serving port"),
        "{err}"
    );
}

#[test]
fn a_revision_is_addressed_by_its_cluster_ip_service() {
    let rev = rich_revision();
    let svc = service_for(&rev);
    assert_eq!(svc.metadata.name.as_deref(), Some("cart-00001"));
    assert_eq!(
        svc.metadata.owner_references,
        Some(vec![owner_reference(&rev)])
    );
    let spec = svc.spec.expect("spec");
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(
        spec.selector,
        Some(BTreeMap::from([(
            REVISION_LABEL.into(),
            "cart-00001".into()
        )]))
    );
    let port = &spec.ports.expect("ports")[0];
    assert_eq!(port.name.as_deref(), Some("http"));
    assert_eq!(port.target_port, Some(IntOrString::Int(9000)));
    assert_eq!(
        revision_url(NS, "cart-00001", DEFAULT_CLUSTER_DOMAIN),
        "http://cart-00001.default.svc.cluster.local"
    );
}

/// The revision's Deployment with `spec.replicas` and observed ready replicas and
/// conditions `(type, status, reason)`.
fn deployment(
    rev: &Revision,
    replicas: i32,
    ready: i32,
    conditions: &[(&str, &str, &str)],
) -> Deployment {
    let mut d = deployment_for(rev, replicas).expect("deployment");
    d.status = Some(DeploymentStatus {
        ready_replicas: Some(ready),
        available_replicas: Some(ready),
        conditions: Some(
            conditions
                .iter()
                .map(
                    |(t, s, r)| k8s_openapi::api::apps::v1::DeploymentCondition {
                        type_: (*t).into(),
                        status: (*s).into(),
                        reason: Some((*r).into()),
                        message: Some(format!("{r} happened")),
                        ..Default::default()
                    },
                )
                .collect(),
        ),
        ..DeploymentStatus::default()
    });
    d
}

fn pod(status: serde_json::Value) -> Pod {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod", "status": status}))
        .expect("pod")
}

#[test]
fn revision_status_follows_the_deployment_and_the_autoscaler() {
    let fresh = stamped(&config(1, "v1"), None);
    let mut served = fresh.clone();
    served.status = Some(RevisionStatus {
        status: status_with(&[
            (READY, True),
            (revision_conditions::RESOURCES_AVAILABLE, True),
            (revision_conditions::CONTAINER_HEALTHY, True),
            (revision_conditions::ACTIVE, True),
        ]),
        ..RevisionStatus::default()
    });
    let progressing = ("Progressing", "True", "NewReplicaSetAvailable");
    let deadline = ("Progressing", "False", "ProgressDeadlineExceeded");
    let mut foreign = deployment(&fresh, 1, 1, &[progressing]);
    foreign.metadata.owner_references = None;
    let crashed = pod(json!({"containerStatuses": [{
        "name": "user-container", "image": "cart:v1", "imageID": "", "ready": false,
        "restartCount": 3,
        "lastState": {"terminated": {"exitCode": 1, "message": "panic: no db"}}
    }]}));
    let pulling = pod(json!({"containerStatuses": [{
        "name": "user-container", "image": "cart:v1", "imageID": "", "ready": false,
        "restartCount": 0,
        "state": {"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}}
    }]}));
    let unschedulable = pod(json!({"conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/3 nodes are available"
    }]}));
    struct Case<'a> {
        name: &'static str,
        rev: &'a Revision,
        deployment: Option<Deployment>,
        pods: Vec<Pod>,
        desired: Option<i32>,
        ready: (ConditionStatus, Option<String>),
        active: (ConditionStatus, Option<String>),
        replicas: (Option<i32>, Option<i32>),
    }
    let cases = [
        Case {
            name: "no deployment yet",
            rev: &fresh,
            deployment: None,
            pods: vec![],
            desired: None,
            ready: want(Unknown, reasons::DEPLOYING),
            active: want(Unknown, reasons::DEPLOYING),
            replicas: (None, None),
        },
        Case {
            name: "deployment starting",
            rev: &fresh,
            deployment: Some(deployment(
                &fresh,
                1,
                0,
                &[("Progressing", "True", "ReplicaSetUpdated")],
            )),
            pods: vec![],
            desired: Some(1),
            ready: want(Unknown, reasons::DEPLOYING),
            active: want(Unknown, reasons::QUEUED),
            replicas: (Some(0), Some(1)),
        },
        Case {
            name: "first replica ready",
            rev: &fresh,
            deployment: Some(deployment(&fresh, 1, 1, &[progressing])),
            pods: vec![],
            desired: Some(1),
            ready: want(True, ""),
            active: want(True, ""),
            replicas: (Some(1), Some(1)),
        },
        Case {
            name: "scaled to zero after being ready stays Ready",
            rev: &served,
            deployment: Some(deployment(&served, 0, 0, &[progressing])),
            pods: vec![],
            desired: Some(0),
            ready: want(True, ""),
            active: want(False, reasons::NO_TRAFFIC),
            replicas: (Some(0), Some(0)),
        },
        Case {
            name: "scaling up from zero",
            rev: &served,
            deployment: Some(deployment(&served, 1, 0, &[progressing])),
            pods: vec![],
            desired: Some(1),
            ready: want(True, ""),
            active: want(Unknown, reasons::QUEUED),
            replicas: (Some(0), Some(1)),
        },
        Case {
            name: "initial-scale 0 is ready at zero",
            rev: &fresh,
            deployment: Some(deployment(&fresh, 0, 0, &[progressing])),
            pods: vec![],
            desired: None,
            ready: want(True, ""),
            active: want(False, reasons::NO_TRAFFIC),
            replicas: (Some(0), Some(0)),
        },
        Case {
            name: "progress deadline exceeded",
            rev: &fresh,
            deployment: Some(deployment(&fresh, 1, 0, &[deadline])),
            pods: vec![],
            desired: Some(1),
            ready: want(False, reasons::PROGRESS_DEADLINE_EXCEEDED),
            active: want(Unknown, reasons::QUEUED),
            replicas: (Some(0), Some(1)),
        },
        Case {
            name: "the replica set cannot create pods",
            rev: &served,
            deployment: Some(deployment(
                &served,
                1,
                0,
                &[progressing, ("ReplicaFailure", "True", "FailedCreate")],
            )),
            pods: vec![],
            desired: Some(1),
            ready: want(False, "FailedCreate"),
            active: want(Unknown, reasons::QUEUED),
            replicas: (Some(0), Some(1)),
        },
        Case {
            name: "a crashing container",
            rev: &fresh,
            deployment: Some(deployment(&fresh, 1, 0, &[progressing])),
            pods: vec![crashed],
            desired: Some(1),
            ready: want(False, "ExitCode1"),
            active: want(Unknown, reasons::QUEUED),
            replicas: (Some(0), Some(1)),
        },
        Case {
            name: "an image that never pulls",
            rev: &fresh,
            deployment: Some(deployment(&fresh, 1, 0, &[deadline])),
            pods: vec![pulling],
            desired: Some(1),
            ready: want(False, "ImagePullBackOff"),
            active: want(Unknown, reasons::QUEUED),
            replicas: (Some(0), Some(1)),
        },
        Case {
            name: "an unschedulable pod",
            rev: &fresh,
            deployment: Some(deployment(&fresh, 1, 0, &[progressing])),
            pods: vec![unschedulable],
            desired: Some(1),
            ready: want(False, "Unschedulable"),
            active: want(Unknown, reasons::QUEUED),
            replicas: (Some(0), Some(1)),
        },
        Case {
            name: "a deployment owned by someone else",
            rev: &fresh,
            deployment: Some(foreign),
            pods: vec![],
            desired: Some(1),
            ready: want(False, reasons::NOT_OWNED),
            active: (Unknown, None),
            replicas: (None, None),
        },
    ];
    for c in cases {
        let seen = RevisionObservation {
            deployment: c.deployment.as_ref(),
            pods: &c.pods,
            desired_replicas: c.desired,
        };
        let st = revision_status(c.rev, &seen, &at(10));
        assert_eq!(
            cond(&st.status, READY),
            c.ready,
            "{}: {:?}",
            c.name,
            st.status
        );
        let active = st
            .status
            .condition(revision_conditions::ACTIVE)
            .map_or((Unknown, None), |a| (a.status, a.reason.clone()));
        // A foreign deployment says nothing about activity: the prior (absent) one stays.
        if c.name != "a deployment owned by someone else" {
            assert_eq!(active, c.active, "{}", c.name);
            assert_eq!(
                (st.actual_replicas, st.desired_replicas),
                c.replicas,
                "{}",
                c.name
            );
        }
    }
}

#[test]
fn revision_failure_messages_name_the_cause() {
    let rev = stamped(&config(1, "v1"), None);
    let d = deployment(&rev, 1, 0, &[("Progressing", "True", "ReplicaSetUpdated")]);
    let crashed = pod(json!({"containerStatuses": [{
        "name": "user-container", "image": "cart:v1", "imageID": "", "ready": false,
        "restartCount": 3, "lastState": {"terminated": {"exitCode": 1, "message": "panic: no db"}}
    }]}));
    let pods = [crashed];
    let seen = RevisionObservation {
        deployment: Some(&d),
        pods: &pods,
        desired_replicas: Some(1),
    };
    let st = revision_status(&rev, &seen, &at(10));
    assert_eq!(
        message(&st.status, READY),
        "Container failed with: panic: no db"
    );
    let foreign = Deployment {
        metadata: ObjectMeta {
            owner_references: None,
            ..d.metadata.clone()
        },
        ..d.clone()
    };
    let st = revision_status(
        &rev,
        &RevisionObservation {
            deployment: Some(&foreign),
            ..RevisionObservation::default()
        },
        &at(10),
    );
    assert_eq!(
        message(&st.status, READY),
        "There is an existing Deployment \"cart-00001-deployment\" that we do not own."
    );
}

#[test]
fn scaling_to_zero_keeps_readys_transition_time() {
    let mut rev = stamped(&config(1, "v1"), None);
    let up = deployment(
        &rev,
        1,
        1,
        &[("Progressing", "True", "NewReplicaSetAvailable")],
    );
    let seen = RevisionObservation {
        deployment: Some(&up),
        desired_replicas: Some(1),
        ..RevisionObservation::default()
    };
    rev.status = Some(revision_status(&rev, &seen, &at(10)));
    let zero = deployment(
        &rev,
        0,
        0,
        &[("Progressing", "True", "NewReplicaSetAvailable")],
    );
    let seen = RevisionObservation {
        deployment: Some(&zero),
        desired_replicas: Some(0),
        ..RevisionObservation::default()
    };
    let st = revision_status(&rev, &seen, &at(20));
    let ready = st.status.condition(READY).expect("ready");
    assert_eq!(
        (ready.status, ready.last_transition_time.clone()),
        (True, Some(at(10)))
    );
    let active = st
        .status
        .condition(revision_conditions::ACTIVE)
        .expect("active");
    assert_eq!(
        (active.status, active.last_transition_time.clone()),
        (False, Some(at(20)))
    );
}

/// Configuration `cart` whose latest ready revision is `latest` (`Ready` as given).
fn ready_config(latest: Option<&str>, ready: ConditionStatus) -> Configuration {
    let mut cfg = config(2, "v2");
    cfg.status = Some(ConfigurationStatus {
        status: status_with(&[(READY, ready)]),
        fields: ferry_api::serving::ConfigurationStatusFields {
            latest_ready_revision_name: latest.map(Into::into),
            latest_created_revision_name: Some("cart-00002".into()),
        },
    });
    cfg
}

fn route(traffic: Vec<TrafficTarget>) -> Route {
    let mut route = route_for(&service(traffic));
    route.metadata.uid = Some("route-uid".into());
    route.metadata.generation = Some(1);
    route
}

fn world() -> (Vec<Configuration>, Vec<Revision>) {
    let mut other = stamped(&config(1, "v1"), Some(True));
    other.metadata.name = Some("other-00001".into());
    other
        .metadata
        .labels
        .as_mut()
        .expect("labels")
        .insert(SERVICE_LABEL.into(), "other".into());
    (
        vec![ready_config(Some("cart-00002"), True)],
        vec![
            stamped(&config(1, "v1"), Some(True)),
            stamped(&config(2, "v2"), Some(True)),
            stamped(&config(3, "v3"), None),
            other,
        ],
    )
}

#[test]
fn route_status_resolves_traffic_or_says_which_target_is_missing() {
    let (cfgs, revisions) = world();
    let status_target = |rev: &str, percent: i64, tag: Option<&str>, latest: bool| TrafficTarget {
        revision_name: Some(rev.into()),
        percent: Some(percent),
        latest_revision: Some(latest),
        url: tag.map(|t| format!("http://{t}-cart.default.example.com")),
        tag: tag.map(Into::into),
        configuration_name: None,
    };
    struct Case {
        name: &'static str,
        traffic: Vec<TrafficTarget>,
        cfgs: Vec<Configuration>,
        assigned: (ConditionStatus, Option<String>),
        message: &'static str,
        resolved: Vec<TrafficTarget>,
    }
    let cases = [
        Case {
            name: "traffic 90/10 with tags",
            traffic: vec![
                target(Some("cart-00001"), 90, Some("stable")),
                target(None, 10, Some("canary")),
            ],
            cfgs: cfgs.clone(),
            assigned: want(True, ""),
            message: "",
            resolved: vec![
                status_target("cart-00001", 90, Some("stable"), false),
                status_target("cart-00002", 10, Some("canary"), true),
            ],
        },
        Case {
            name: "default traffic follows the latest ready revision",
            traffic: vec![],
            cfgs: cfgs.clone(),
            assigned: want(True, ""),
            message: "",
            resolved: vec![status_target("cart-00002", 100, None, true)],
        },
        Case {
            name: "a missing revision",
            traffic: vec![target(Some("cart-00009"), 100, None)],
            cfgs: cfgs.clone(),
            assigned: want(False, reasons::REVISION_MISSING),
            message: "Revision \"cart-00009\" referenced in traffic not found.",
            resolved: vec![],
        },
        Case {
            name: "a revision not ready yet",
            traffic: vec![target(Some("cart-00003"), 100, None)],
            cfgs: cfgs.clone(),
            assigned: want(Unknown, reasons::REVISION_MISSING),
            message: "Revision \"cart-00003\" is not yet ready.",
            resolved: vec![],
        },
        Case {
            name: "a failure outranks a pending target",
            traffic: vec![
                target(Some("cart-00003"), 50, None),
                target(Some("cart-00009"), 50, None),
            ],
            cfgs: cfgs.clone(),
            assigned: want(False, reasons::REVISION_MISSING),
            message: "Revision \"cart-00009\" referenced in traffic not found.",
            resolved: vec![],
        },
        Case {
            name: "a configuration waiting for its first revision",
            traffic: vec![],
            cfgs: vec![ready_config(None, Unknown)],
            assigned: want(Unknown, reasons::REVISION_MISSING),
            message: "Configuration \"cart\" is waiting for a Revision to become ready.",
            resolved: vec![],
        },
        Case {
            name: "a configuration whose revisions failed",
            traffic: vec![],
            cfgs: vec![ready_config(None, False)],
            assigned: want(False, reasons::REVISION_MISSING),
            message: "Configuration \"cart\" does not have any ready Revision.",
            resolved: vec![],
        },
        Case {
            name: "a missing configuration",
            traffic: vec![],
            cfgs: vec![],
            assigned: want(False, reasons::CONFIGURATION_MISSING),
            message: "Configuration \"cart\" referenced in traffic not found.",
            resolved: vec![],
        },
        Case {
            name: "a revision of another service",
            traffic: vec![target(Some("other-00001"), 100, None)],
            cfgs: cfgs.clone(),
            assigned: want(False, reasons::REVISION_NOT_OWNED),
            message: "Revision \"other-00001\" belongs to Service \"other\", not Service \"cart\".",
            resolved: vec![],
        },
    ];
    for c in cases {
        let r = route(c.traffic);
        let st = route_status(
            &r,
            &c.cfgs,
            &revisions,
            "example.com",
            "cluster.local",
            &at(10),
        );
        let all = route_conditions::ALL_TRAFFIC_ASSIGNED;
        assert_eq!(cond(&st.status, all), c.assigned, "{}", c.name);
        assert_eq!(message(&st.status, all), c.message, "{}", c.name);
        assert_eq!(cond(&st.status, READY).0, c.assigned.0, "{}", c.name);
        assert_eq!(st.fields.traffic, c.resolved, "{}", c.name);
        assert_eq!(
            st.fields.url.as_deref(),
            Some("http://cart.default.example.com"),
            "{}",
            c.name
        );
        let address = st.fields.address.and_then(|a| a.url);
        let want_address =
            (c.assigned.0 == True).then(|| "http://cart.default.svc.cluster.local".to_owned());
        assert_eq!(address, want_address, "{}", c.name);
    }
}

#[test]
fn route_conditions_knative_reports_when_traffic_is_assigned() {
    let (cfgs, revisions) = world();
    let st = route_status(
        &route(vec![]),
        &cfgs,
        &revisions,
        "example.com",
        "cluster.local",
        &at(10),
    );
    for (t, expected) in [
        (route_conditions::ALL_TRAFFIC_ASSIGNED, want(True, "")),
        (route_conditions::INGRESS_READY, want(True, "")),
        (
            route_conditions::CERTIFICATE_PROVISIONED,
            want(True, reasons::TLS_NOT_ENABLED),
        ),
        (READY, want(True, "")),
    ] {
        assert_eq!(cond(&st.status, t), expected, "{t}");
    }
    assert_eq!(st.status.observed_generation, Some(1));
}

/// The Service's Configuration and Route, reconciled, ready, serving `cart-00001`.
fn owned() -> (KnativeService, Configuration, Route) {
    let svc = service(vec![]);
    let mut cfg = configuration_for(&svc);
    cfg.metadata.generation = Some(1);
    cfg.status = Some(ConfigurationStatus {
        status: status_with(&[(READY, True)]),
        fields: ferry_api::serving::ConfigurationStatusFields {
            latest_ready_revision_name: Some("cart-00001".into()),
            latest_created_revision_name: Some("cart-00001".into()),
        },
    });
    let mut route = route_for(&svc);
    route.metadata.generation = Some(1);
    route.status = Some(RouteStatus {
        status: status_with(&[(READY, True)]),
        fields: ferry_api::serving::RouteStatusFields {
            url: Some("http://cart.default.svc.cluster.local".into()),
            address: None,
            traffic: vec![TrafficTarget {
                revision_name: Some("cart-00001".into()),
                latest_revision: Some(true),
                percent: Some(100),
                ..TrafficTarget::default()
            }],
        },
    });
    (svc, cfg, route)
}

#[test]
fn service_status_mirrors_its_configuration_and_route() {
    let (svc, cfg, route) = owned();
    let behind = Configuration {
        metadata: ObjectMeta {
            generation: Some(2),
            ..cfg.metadata.clone()
        },
        ..cfg.clone()
    };
    let mut failed = cfg.clone();
    if let Some(s) = failed.status.as_mut() {
        s.status.conditions = vec![condition(READY, False, reasons::REVISION_FAILED, "boom")];
    }
    let mut moved_on = cfg.clone();
    if let Some(s) = moved_on.status.as_mut() {
        s.fields.latest_ready_revision_name = Some("cart-00002".into());
    }
    let foreign = Configuration {
        metadata: ObjectMeta {
            owner_references: None,
            ..cfg.metadata.clone()
        },
        ..cfg.clone()
    };
    struct Case {
        name: &'static str,
        cfg: Option<Configuration>,
        route: Option<Route>,
        configurations: (ConditionStatus, Option<String>),
        routes: (ConditionStatus, Option<String>),
        ready: (ConditionStatus, Option<String>),
    }
    let cases = [
        Case {
            name: "everything ready",
            cfg: Some(cfg.clone()),
            route: Some(route.clone()),
            configurations: want(True, ""),
            routes: want(True, ""),
            ready: want(True, ""),
        },
        Case {
            name: "Unknown while the route is missing",
            cfg: Some(cfg.clone()),
            route: None,
            configurations: want(True, ""),
            routes: want(Unknown, reasons::OUT_OF_DATE),
            ready: want(Unknown, reasons::OUT_OF_DATE),
        },
        Case {
            name: "Unknown while the configuration is behind its generation",
            cfg: Some(behind),
            route: Some(route.clone()),
            configurations: want(Unknown, reasons::OUT_OF_DATE),
            routes: want(True, ""),
            ready: want(Unknown, reasons::OUT_OF_DATE),
        },
        Case {
            name: "a failed configuration fails the service",
            cfg: Some(failed),
            route: Some(route.clone()),
            configurations: want(False, reasons::REVISION_FAILED),
            routes: want(True, ""),
            ready: want(False, reasons::REVISION_FAILED),
        },
        Case {
            name: "traffic not yet on the new latest ready revision",
            cfg: Some(moved_on),
            route: Some(route.clone()),
            configurations: want(True, ""),
            routes: want(Unknown, reasons::TRAFFIC_NOT_MIGRATED),
            ready: want(Unknown, reasons::TRAFFIC_NOT_MIGRATED),
        },
        Case {
            name: "a configuration of someone else",
            cfg: Some(foreign),
            route: Some(route.clone()),
            configurations: want(False, reasons::NOT_OWNED),
            routes: want(Unknown, ""),
            ready: want(False, reasons::NOT_OWNED),
        },
        Case {
            name: "nothing created yet",
            cfg: None,
            route: None,
            configurations: want(Unknown, reasons::OUT_OF_DATE),
            routes: want(Unknown, reasons::OUT_OF_DATE),
            ready: want(Unknown, reasons::OUT_OF_DATE),
        },
    ];
    for c in cases {
        let st = service_status(&svc, c.cfg.as_ref(), c.route.as_ref(), &at(10));
        let get = |t: &str| {
            st.status
                .condition(t)
                .map_or((Unknown, None), |x| (x.status, x.reason.clone()))
        };
        assert_eq!(
            get(service_conditions::CONFIGURATIONS_READY),
            c.configurations,
            "{}",
            c.name
        );
        assert_eq!(
            get(service_conditions::ROUTES_READY),
            c.routes,
            "{}",
            c.name
        );
        assert_eq!(get(READY), c.ready, "{}", c.name);
        assert_eq!(st.status.observed_generation, Some(1), "{}", c.name);
    }
    let st = service_status(&svc, Some(&cfg), Some(&route), &at(10));
    assert_eq!(
        st.configuration.latest_ready_revision_name.as_deref(),
        Some("cart-00001")
    );
    assert_eq!(
        st.configuration.latest_created_revision_name.as_deref(),
        Some("cart-00001")
    );
    assert_eq!(
        st.route.url.as_deref(),
        Some("http://cart.default.svc.cluster.local")
    );
    assert_eq!(st.route.traffic.len(), 1);
}

#[test]
fn a_multi_container_revision_runs_its_sidecars_beside_the_serving_container() {
    let mut cfg = config(1, "v1");
    cfg.spec.template = serde_json::from_value(json!({
        "spec": {"containers": [
            {"image": "logger:v1", "env": [{"name": "LEVEL", "value": "info"}]},
            {"name": "app", "image": "cart:v1", "ports": [{"containerPort": 8881}]},
            {"name": "proxy", "image": "proxy:v1"}
        ]}
    }))
    .expect("template");
    let rev = stamped(&cfg, None);
    assert_eq!(user_port(&rev), 8881);
    let d = deployment_for(&rev, 1).expect("deployment");
    let spec = d.spec.expect("spec");
    let default = spec
        .template
        .metadata
        .and_then(|m| m.annotations)
        .and_then(|a| a.get(DEFAULT_CONTAINER_ANNOTATION).cloned());
    assert_eq!(default.as_deref(), Some("app"));
    let pod = spec.template.spec.expect("pod");
    let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["app", "user-container-0", "proxy"],
        "serving container first"
    );
    let env = |c: &k8s_openapi::api::core::v1::Container, k: &str| {
        c.env
            .as_ref()
            .and_then(|e| e.iter().find(|v| v.name == k))
            .and_then(|v| v.value.clone())
    };
    let (app, logger) = (&pod.containers[0], &pod.containers[1]);
    assert_eq!(env(app, "PORT").as_deref(), Some("8881"));
    assert!(app.readiness_probe.is_some(), "the serving port is probed");
    assert_eq!(
        env(logger, "PORT"),
        None,
        "only the serving container gets PORT"
    );
    assert_eq!(env(logger, "LEVEL").as_deref(), Some("info"));
    assert_eq!(env(logger, "K_REVISION").as_deref(), Some("cart-00001"));
    assert!(logger.ports.is_none() && logger.readiness_probe.is_none());
}

#[test]
fn unsupported_fields_make_a_service_not_ready() {
    let (mut svc, cfg, route) = owned();
    svc.spec.template = serde_json::from_value(json!({
        "metadata": {"annotations": {"autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev"}},
        "spec": {"containers": [{"image": "cart:v1"}]}
    }))
    .expect("template");
    let st = service_status(&svc, Some(&cfg), Some(&route), &at(10));
    assert_eq!(
        cond(&st.status, READY),
        want(False, UNSUPPORTED_FIELD_REASON)
    );
    assert!(
        message(&st.status, READY)
            .starts_with("spec.template.metadata.annotations[\"autoscaling.knative.dev/class\"]: is not supported by Ferry"),
        "{}",
        message(&st.status, READY)
    );
}
