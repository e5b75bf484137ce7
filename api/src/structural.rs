//! A manifest checked against its CRD's structural schema, as the API server checks it with
//! strict field validation (`kubectl apply`'s default): unknown fields, wrong types and missing
//! required fields, every one reported with its path, before the typed parse.
//!
//! The schemas are the ones `crdgen` writes to `crds/` ([`crate::crds::all`]), so the local
//! check and the cluster cannot disagree. Nulls are expected to be pruned already
//! ([`crate::resource::prune_nulls`]); subtrees marked `x-kubernetes-preserve-unknown-fields`
//! keep unknown fields, which the kinds then report as unsupported.

use std::sync::OnceLock;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;

use crate::validation::{FieldErrors, Path};

/// The fields of `metadata` (Kubernetes `ObjectMeta`) the API server accepts.
const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

fn crds() -> &'static [CustomResourceDefinition] {
    static CRDS: OnceLock<Vec<CustomResourceDefinition>> = OnceLock::new();
    CRDS.get_or_init(crate::crds::all)
}

/// The `openAPIV3Schema` Ferry serves for `group/version` `kind`, if it serves it.
pub fn schema_for(api_version: &str, kind: &str) -> Option<&'static JSONSchemaProps> {
    let (group, version) = api_version.split_once('/')?;
    crds()
        .iter()
        .filter(|crd| crd.spec.group == group && crd.spec.names.kind == kind)
        .flat_map(|crd| &crd.spec.versions)
        .find(|v| v.name == version && v.served)
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
}

/// Checks a whole object (`apiVersion`, `kind`, `metadata` and the schema's fields) against
/// `schema`, pushing every problem into `errs`.
pub fn check_object(schema: &JSONSchemaProps, object: &Value, errs: &mut FieldErrors) {
    let Some(map) = object.as_object() else {
        errs.push(
            &Path::root(""),
            "is not a mapping",
            "write apiVersion, kind, metadata and spec",
        );
        return;
    };
    let properties = schema.properties.as_ref();
    for (key, value) in map {
        let path = Path::root(key);
        match key.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => check_metadata(value, &path, errs),
            _ => match properties.and_then(|p| p.get(key)) {
                Some(field) => check(field, value, &path, errs),
                None => unknown(&path, errs),
            },
        }
    }
    for required in schema.required.iter().flatten() {
        if !map.contains_key(required) {
            missing(&Path::root(required), errs);
        }
    }
}

fn check_metadata(value: &Value, path: &Path, errs: &mut FieldErrors) {
    let Some(map) = value.as_object() else {
        wrong_type(value, "object", path, errs);
        return;
    };
    for key in map.keys() {
        if !OBJECT_META_FIELDS.contains(&key.as_str()) {
            unknown(&path.field(key), errs);
        }
    }
    for field in ["labels", "annotations"] {
        if let Some(entries) = map.get(field) {
            let at = path.field(field);
            match entries.as_object() {
                Some(entries) => {
                    for (k, v) in entries {
                        if !v.is_string() {
                            wrong_type(v, "string", &at.key(k), errs);
                        }
                    }
                }
                None => wrong_type(entries, "object", &at, errs),
            }
        }
    }
}

/// Checks `value` at `path` against `schema`.
pub fn check(schema: &JSONSchemaProps, value: &Value, path: &Path, errs: &mut FieldErrors) {
    check_in(schema, value, path, false, errs);
}

/// `loose`: below a `x-kubernetes-preserve-unknown-fields` node (a container, a pod spec), where
/// Knative's own validation decides what is required (a probe's `httpGet.port` defaults to the
/// container's port, although Kubernetes' schema requires it).
fn check_in(
    schema: &JSONSchemaProps,
    value: &Value,
    path: &Path,
    loose: bool,
    errs: &mut FieldErrors,
) {
    if schema.x_kubernetes_int_or_string == Some(true) {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            wrong_type(value, "integer or string", path, errs);
        }
        return;
    }
    if value.is_null() {
        if schema.nullable != Some(true) {
            wrong_type(
                value,
                schema.type_.as_deref().unwrap_or("a value"),
                path,
                errs,
            );
        }
        return;
    }
    if let Some(allowed) = &schema.enum_
        && !allowed.iter().any(|a| a.0 == *value)
    {
        let list: Vec<String> = allowed.iter().map(|a| a.0.to_string()).collect();
        errs.push(
            path,
            format!("{value} is not one of {}", list.join(", ")),
            "use one of the listed values",
        );
        return;
    }
    match schema.type_.as_deref() {
        Some("object") => check_map(schema, value, path, loose, errs),
        Some("array") => match value.as_array() {
            Some(items) => {
                if let Some(JSONSchemaPropsOrArray::Schema(item)) = &schema.items {
                    for (i, v) in items.iter().enumerate() {
                        check_in(item, v, &path.index(i), loose, errs);
                    }
                }
            }
            None => wrong_type(value, "array", path, errs),
        },
        Some("string") if !value.is_string() => wrong_type(value, "string", path, errs),
        Some("integer") if !(value.is_i64() || value.is_u64()) => {
            wrong_type(value, "integer", path, errs)
        }
        Some("number") if !value.is_number() => wrong_type(value, "number", path, errs),
        Some("boolean") if !value.is_boolean() => wrong_type(value, "boolean", path, errs),
        _ => {}
    }
}

fn check_map(
    schema: &JSONSchemaProps,
    value: &Value,
    path: &Path,
    loose: bool,
    errs: &mut FieldErrors,
) {
    let Some(map) = value.as_object() else {
        wrong_type(value, "object", path, errs);
        return;
    };
    let preserve = schema.x_kubernetes_preserve_unknown_fields == Some(true);
    let loose = loose || preserve;
    for (key, v) in map {
        if let Some(field) = schema.properties.as_ref().and_then(|p| p.get(key)) {
            check_in(field, v, &path.field(key), loose, errs);
            continue;
        }
        match &schema.additional_properties {
            Some(JSONSchemaPropsOrBool::Schema(values)) => {
                check_in(values, v, &path.key(key), loose, errs)
            }
            Some(JSONSchemaPropsOrBool::Bool(true)) => {}
            // Kept as written (`x-kubernetes-preserve-unknown-fields`), or a free-form object.
            _ if preserve || schema.properties.is_none() => {}
            _ => unknown(&path.field(key), errs),
        }
    }
    // A preserve-unknown-fields node keeps its own required fields (a pod spec's `containers`).
    let required = schema.required.iter().flatten();
    for required in required.filter(|_| !loose || preserve) {
        if !map.contains_key(required) {
            missing(&path.field(required), errs);
        }
    }
}

fn unknown(path: &Path, errs: &mut FieldErrors) {
    errs.push(
        path,
        "unknown field",
        "remove it or check its spelling and indentation (the API server refuses unknown fields)",
    );
}

fn missing(path: &Path, errs: &mut FieldErrors) {
    errs.push(path, "is required", "set it");
}

fn wrong_type(value: &Value, want: &str, path: &Path, errs: &mut FieldErrors) {
    let got = match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    };
    errs.push(
        path,
        format!("is {got}, expected {want}"),
        format!("write a value of type {want}"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(api_version: &str, kind: &str, object: Value) -> Vec<String> {
        let schema = schema_for(api_version, kind).expect("served");
        let mut errs = FieldErrors::default();
        check_object(schema, &object, &mut errs);
        errs.errors()
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect()
    }

    #[test]
    fn every_problem_is_named_by_its_path() {
        let got = problems(
            "eventing.knative.dev/v1",
            "Trigger",
            json!({
                "apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
                "metadata": {"name": "t", "nmae": "x", "labels": {"a": 1}},
                "bogus": 1,
                "spec": {
                    "broker": "default",
                    "bogusField": true,
                    "filter": {"attributes": {"type": 3}},
                    "subscriber": {"uri": ["not", "a", "string"]}
                }
            }),
        );
        assert_eq!(
            got,
            [
                "bogus: unknown field",
                "metadata.nmae: unknown field",
                "metadata.labels[\"a\"]: is a number, expected string",
                "spec.bogusField: unknown field",
                "spec.filter.attributes[\"type\"]: is a number, expected string",
                "spec.subscriber.uri: is a list, expected string",
            ]
        );
    }

    #[test]
    fn missing_required_fields_are_named() {
        let got = problems(
            "serving.knative.dev/v1",
            "Service",
            json!({
                "apiVersion": "serving.knative.dev/v1", "kind": "Service",
                "metadata": {"name": "s"},
                "spec": {"template": {"metadata": {"annotations": {"a": "b"}}}}
            }),
        );
        assert_eq!(got, ["spec.template.spec: is required"]);
    }

    #[test]
    fn valid_objects_pass_and_both_kafka_source_versions_are_served() {
        for version in ["v1", "v1beta1"] {
            let got = problems(
                &format!("sources.knative.dev/{version}"),
                "KafkaSource",
                json!({
                    "apiVersion": "x", "kind": "KafkaSource", "metadata": {"name": "k"},
                    "spec": {"bootstrapServers": ["b:9092"], "topics": ["t"], "sink": {"uri": "http://x"}}
                }),
            );
            assert!(got.is_empty(), "{version}: {got:?}");
        }
        let got = problems(
            "sources.knative.dev/v1",
            "KafkaSource",
            json!({
                "apiVersion": "x", "kind": "KafkaSource", "metadata": {"name": "k"},
                "spec": {"bootstrapServers": ["b:9092"], "topics": ["t"], "sink": {"uri": "http://x"},
                         "initialOffset": "oldest"}
            }),
        );
        assert_eq!(
            got,
            ["spec.initialOffset: \"oldest\" is not one of \"earliest\", \"latest\""]
        );
        assert!(schema_for("sources.knative.dev/v1alpha1", "KafkaSource").is_none());
    }
}
