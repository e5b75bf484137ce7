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
fn the_cart_example_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/cart");
    let out = ferry(&["validate", "-f", dir.to_str().expect("utf-8 path")]);
    let t = text(&out);
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
    std::fs::write(
        dir.path().join("svc.yml"),
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: s}\n\
         spec:\n  template:\n    spec:\n      hostNetwork: true\n      containers: [{image: x}]\n",
    )
    .expect("write");
    let out = ferry(&[
        "validate",
        "-f",
        dir.path().to_str().expect("utf-8"),
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json output");
    assert_eq!(v["resources"][0]["namespace"], "default");
    let unsupported = v["resources"][0]["unsupported"][0]
        .as_str()
        .expect("one entry");
    assert!(
        unsupported.starts_with("spec.template.spec.hostNetwork: is not supported by Ferry"),
        "{unsupported}"
    );
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
