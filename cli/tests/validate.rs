//! `ferry validate` as a user runs it: the real binary, real files, exit codes and messages.

use std::path::Path;
use std::process::{Command, Output};

fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .output()
        .expect("ferry runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_cart_example_is_valid_locally_and_for_a_cluster() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/cart");
    let local = [dir.to_str().expect("utf-8 path").to_owned()];
    // In a cluster: the shared Broker and Triggers, and the Services running the example image.
    let cluster = ["broker.yaml", "triggers.yaml", "kubernetes/services.yaml"]
        .map(|f| dir.join(f).to_str().expect("utf-8 path").to_owned());
    for files in [&local[..], &cluster[..]] {
        let mut args = vec!["validate"];
        for f in files {
            args.extend(["-f", f.as_str()]);
        }
        check_cart(&ferry(&args));
    }
}

fn check_cart(out: &std::process::Output) {
    let t = text(out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    for row in [
        "Broker",
        "cart-created",
        "cart-items",
        "cart-projection",
        "dead-letters",
    ] {
        assert!(t.contains(row), "{row} missing from:\n{t}");
    }
    assert!(!t.contains("error:"), "{t}");
}

#[test]
fn invalid_manifest_exits_1_naming_file_document_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: b}\n---\n\
         apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: t}\n\
         spec:\n  broker: b\n  delivery: {retry: -1}\n  subscriber: {uri: /x}\n",
    )
    .expect("write");
    let out = ferry(&["validate", "-f", file.to_str().expect("utf-8")]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(
            "bad.yaml, document 2 (Trigger t): spec.delivery.retry: must be 0 or more (got -1)"
        ),
        "{t}"
    );
    assert!(
        t.contains("spec.subscriber.uri: `/x` is not an absolute URL"),
        "{t}"
    );
}

#[test]
fn json_output_and_unsupported_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Valid Knative (the HPA class scales on CPU), but Ferry runs only the KPA: exit 3.
    std::fs::write(
        dir.path().join("svc.yml"),
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: s}\n\
         spec:\n  template:\n    metadata:\n      annotations:\n        \
         autoscaling.knative.dev/class: hpa.autoscaling.knative.dev\n        \
         autoscaling.knative.dev/metric: cpu\n    spec:\n      containers: [{image: x}]\n",
    )
    .expect("write");
    let out = ferry(&[
        "validate",
        "-f",
        dir.path().to_str().expect("utf-8"),
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json output");
    assert_eq!(v["resources"][0]["namespace"], "default");
    assert_eq!(v["resources"][0]["errors"], serde_json::json!([]));
    let unsupported = v["resources"][0]["unsupported"][0]
        .as_str()
        .expect("one entry");
    assert!(
        unsupported.starts_with(
            "spec.template.metadata.annotations[\"autoscaling.knative.dev/class\"]: is not supported by Ferry"
        ),
        "{unsupported}"
    );
    let out = ferry(&["validate", "-f", dir.path().to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out).contains("valid Knative, 1 unsupported by Ferry"),
        "{}",
        text(&out)
    );
}

#[test]
fn config_features_in_the_manifests_decide_flag_gated_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svc = dir.path().join("svc.yaml");
    std::fs::write(
        &svc,
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: s}\n\
         spec:\n  template:\n    spec:\n      hostNetwork: true\n      nodeSelector: {disk: ssd}\n\
         \x20     restartPolicy: Never\n      containers: [{image: x}]\n",
    )
    .expect("write");
    // Knative's defaults: both flags off, and restartPolicy is never allowed.
    let out = ferry(&["validate", "-f", svc.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    for line in [
        "spec.template.spec.hostNetwork: must not set the field(s); remove it, or set `kubernetes.podspec-hostnetwork: enabled` in the config-features ConfigMap",
        "spec.template.spec.nodeSelector: must not set the field(s); remove it, or set `kubernetes.podspec-nodeselector: enabled` in the config-features ConfigMap",
        "spec.template.spec.restartPolicy: must not set the field(s); Knative does not allow this PodSpec field in a revision",
    ] {
        assert!(t.contains(line), "{line}\nnot in\n{t}");
    }
    // With the flags on, only restartPolicy remains.
    let features = dir.path().join("features.yaml");
    std::fs::write(
        &features,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config-features, namespace: knative-serving}\n\
         data:\n  kubernetes.podspec-hostnetwork: enabled\n  kubernetes.podspec-nodeselector: Allowed\n  \
         kubernetes.podspec-tolerations: maybe\n",
    )
    .expect("write");
    let out = ferry(&["validate", "-f", dir.path().to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(
        !t.contains("hostNetwork") && !t.contains("nodeSelector"),
        "{t}"
    );
    assert!(t.contains("restartPolicy: must not set"), "{t}");
    assert!(
        t.contains("config-features `kubernetes.podspec-tolerations`: `maybe` is not enabled, allowed or disabled"),
        "{t}"
    );
    std::fs::write(
        &svc,
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: s}\n\
         spec:\n  template:\n    spec:\n      hostNetwork: true\n      containers: [{image: x}]\n",
    )
    .expect("write");
    let out = ferry(&["validate", "-f", dir.path().to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The note about an ignored value is shown when the ConfigMap is the only document too.
    let out = ferry(&["validate", "-f", features.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("warning: config-features `kubernetes.podspec-tolerations`"),
        "{}",
        text(&out)
    );
}

#[test]
fn config_domain_in_the_manifests_must_be_readable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let domain = dir.path().join("domain.yaml");
    let write = |data: &str| {
        std::fs::write(
            &domain,
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: config-domain, namespace: knative-serving}}\ndata:\n{data}"
            ),
        )
        .expect("write")
    };
    write("  example.com: \"\"\n  example.org: |\n    selector:\n      app: public\n");
    let out = ferry(&["validate", "-f", domain.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    write("  example.org: |\n    selektor:\n      app: public\n");
    let out = ferry(&["validate", "-f", domain.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("error: config-domain example.org:"),
        "{}",
        text(&out)
    );
}

#[test]
fn tracing_config_maps_are_checked_naming_the_config_map_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |file: &str, name: &str, data: &str| {
        let path = dir.path().join(file);
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: knative-eventing}}\ndata:\n{data}"
            ),
        )
        .expect("write");
        path.to_str().expect("utf-8").to_owned()
    };
    let validate = |files: &[&str]| {
        let mut args = vec!["validate"];
        for f in files {
            args.extend(["-f", f]);
        }
        ferry(&args)
    };
    let good = "  tracing-protocol: http/protobuf\n  tracing-endpoint: http://collector:4318/v1/traces\n  tracing-sampling-rate: \"0.1\"\n";
    let observability = write("observability.yaml", "config-observability", good);
    let out = validate(&[&observability]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("error"), "{}", text(&out));

    for (name, data, wants) in [
        (
            "config-observability",
            "  tracing-protocol: thrift\n",
            &[
                "tracing-protocol: \"thrift\" is not a tracing protocol; use grpc, http/protobuf or none",
            ][..],
        ),
        (
            "config-observability",
            "  tracing-protocol: grpc\n  tracing-sampling-rate: \"2\"\n",
            &[
                "tracing-sampling-rate: \"2\" is not a number between 0 and 1",
                "needs tracing-endpoint",
            ],
        ),
        (
            "config-tracing",
            "  backend: zipkin\n  zipkin-endpoint: http://zipkin:9411/api/v2/spans\n",
            &["backend: zipkin is not exported", "set tracing-protocol"],
        ),
    ] {
        let bad = write("bad.yaml", name, data);
        let out = validate(&[&bad]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let at = format!("error: {bad}, document 1: ConfigMap knative-eventing/{name}: ");
        assert!(text(&out).contains(&at), "{at} in {}", text(&out));
        for want in wants {
            assert!(text(&out).contains(want), "{want} in {}", text(&out));
        }
    }

    // Both set tracing: config-observability wins, and the note says to drop config-tracing.
    let legacy = write("tracing.yaml", "config-tracing", "  backend: none\n");
    let out = validate(&[&observability, &legacy]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out)
            .contains("warning: config-tracing is ignored: config-observability sets tracing too"),
        "{}",
        text(&out)
    );
    // Knative's own maps hold only `_example` (no tracing key): nothing to say.
    let example = write(
        "example.yaml",
        "config-tracing",
        "  _example: |\n    backend: zipkin\n",
    );
    let out = validate(&[&observability, &example]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("warning"), "{}", text(&out));
}

#[test]
fn multi_container_services_follow_knatives_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svc = dir.path().join("svc.yaml");
    let write = |containers: &str| {
        std::fs::write(
            &svc,
            format!(
                "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {{name: s}}\n\
                 spec:\n  template:\n    spec:\n      containers: {containers}\n"
            ),
        )
        .expect("write");
    };
    let run = || ferry(&["validate", "-f", svc.to_str().expect("utf-8")]);
    write("[{name: app, image: a, ports: [{containerPort: 8881}]}, {name: side, image: b}]");
    assert_eq!(run().status.code(), Some(0), "{}", text(&run()));
    for (containers, problem) in [
        (
            "[{name: app, image: a}, {name: side, image: b}]",
            "spec.template.spec.containers: no container names a port",
        ),
        (
            "[{name: a, image: a, ports: [{containerPort: 1}]}, {name: b, image: b, ports: [{containerPort: 2}]}]",
            "spec.template.spec.containers: more than one container port is set",
        ),
        (
            "[{name: a, image: a, ports: [{containerPort: 1}]}, {name: a, image: b}]",
            "spec.template.spec.containers[1].name: duplicate container name \"a\"",
        ),
        (
            "[{name: a, image: a, ports: [{containerPort: 1}]}, {name: b, image: b, readinessProbe: {tcpSocket: {port: 9}}}]",
            "spec.template.spec.containers[1].readinessProbe: must not set the field(s): probes on a container without the serving port; remove it, or set `multi-container-probing: enabled`",
        ),
    ] {
        write(containers);
        let out = run();
        assert_eq!(out.status.code(), Some(1), "{containers}: {}", text(&out));
        assert!(
            text(&out).contains(problem),
            "{problem}\nnot in\n{}",
            text(&out)
        );
    }
}

#[test]
fn unknown_kind_missing_file_and_bad_args() {
    let dir = tempfile::tempdir().expect("tempdir");
    // v1 Secrets and ConfigMaps are read (spec.net, spec.config); other core kinds are not.
    let file = dir.path().join("pod.yaml");
    std::fs::write(&file, "apiVersion: v1\nkind: Pod\nmetadata: {name: c}\n").expect("write");
    let out = ferry(&["validate", "-f", file.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("pod.yaml, document 1: v1/Pod is not a kind Ferry serves"),
        "{}",
        text(&out)
    );

    let out = ferry(&["validate", "-f", "/no/such/file.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("/no/such/file.yaml: cannot read it"),
        "{}",
        text(&out)
    );

    let out = ferry(&["validate"]);
    assert_eq!(out.status.code(), Some(2), "missing -f is a usage error");
    let out = ferry(&["validate", "-f", "x", "-o", "xml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("invalid value 'xml'"), "{}", text(&out));
}

#[test]
fn knative_fidelity_v1_kafka_source_camel_case_annotations_null_spec_and_strict_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ok = dir.path().join("ok.yaml");
    std::fs::write(
        &ok,
        "apiVersion: sources.knative.dev/v1\nkind: KafkaSource\nmetadata: {name: k}\n\
         spec:\n  bootstrapServers: [b:9092]\n  topics: [t]\n  sink: {uri: http://x}\n---\n\
         apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: b}\nspec:\n  # nothing\n\
         status: {annotations: null}\n---\n\
         apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: s}\n\
         spec:\n  template:\n    metadata:\n      annotations:\n\
         \x20       autoscaling.knative.dev/minScale: \"1\"\n\
         \x20       autoscaling.knative.dev/targetBurstCapacity: \"-1\"\n\
         \x20       autoscaling.knative.dev/min-scael: \"1\"\n\
         \x20   spec:\n      containers: [{image: x}]\n",
    )
    .expect("write");
    let out = ferry(&["validate", "-f", ok.to_str().expect("utf-8")]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("warning: ")
            && t.contains(
                "spec.template.metadata.annotations[\"autoscaling.knative.dev/min-scael\"]: \
             `autoscaling.knative.dev/min-scael` is not an autoscaling annotation Knative reads"
            ),
        "{t}"
    );

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: s}\n\
         spec:\n  bogusField: 1\n  template:\n    metadata: {}\n",
    )
    .expect("write");
    let out = ferry(&["validate", "-f", bad.to_str().expect("utf-8")]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("bad.yaml, document 1: Service s: spec.bogusField: unknown field"),
        "{t}"
    );
    assert!(
        t.contains("bad.yaml, document 1: Service s: spec.template.spec: is required"),
        "{t}"
    );
}
