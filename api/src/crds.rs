//! The CustomResourceDefinitions Ferry installs, generated from the types.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSON, JSONSchemaProps,
};
use kube::CustomResourceExt;

use crate::eventing::{Broker, Trigger};
use crate::messaging::{KafkaChannel, Subscription};
use crate::serving::{Configuration, KnativeService, Revision, Route};
use crate::sources::KafkaSource;

/// Every CRD Ferry serves, in a stable order.
///
/// Where a kind's spec has no required field (Broker, KafkaChannel, Route), `spec` itself is
/// optional and defaults to `{}`, as in Knative's CRDs: `kind: Broker` with only a name is a
/// valid manifest.
pub fn all() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        Broker::crd(),
        Trigger::crd(),
        Subscription::crd(),
        KafkaChannel::crd(),
        KafkaSource::crd(),
        KnativeService::crd(),
        Configuration::crd(),
        Revision::crd(),
        Route::crd(),
    ];
    for crd in &mut crds {
        serve_kafka_source_v1(crd);
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                make_empty_spec_optional(schema);
            }
        }
    }
    crds
}

/// Adds `v1` to the KafkaSource CRD beside `v1beta1` with the same schema, as
/// eventing-kafka-broker serves it: equal schemas need no conversion webhook (`conversion:
/// None` rewrites only `apiVersion`), and `v1beta1` keeps `storage: true` so stored objects
/// need no migration. The operator watches `v1beta1`; objects applied as `v1` reach it converted.
fn serve_kafka_source_v1(crd: &mut CustomResourceDefinition) {
    if crd.spec.names.kind != "KafkaSource" {
        return;
    }
    let Some(stored) = crd.spec.versions.iter().find(|v| v.storage).cloned() else {
        return;
    };
    for name in crate::sources::KAFKA_SOURCE_VERSIONS {
        if !crd.spec.versions.iter().any(|v| v.name == *name) {
            let mut version = stored.clone();
            version.name = (*name).to_owned();
            version.storage = false;
            crd.spec.versions.insert(0, version);
        }
    }
}

fn make_empty_spec_optional(root: &mut JSONSchemaProps) {
    let Some(spec) = root.properties.as_mut().and_then(|p| p.get_mut("spec")) else {
        return;
    };
    if spec.required.as_ref().is_some_and(|r| !r.is_empty()) {
        return;
    }
    spec.default = Some(JSON(serde_json::json!({})));
    if let Some(required) = root.required.as_mut() {
        required.retain(|r| r != "spec");
        if required.is_empty() {
            root.required = None;
        }
    }
}

/// The file a CRD is written to in `crds/`: `<plural>.<group>.yaml`, which is also its name.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Walks a schema and reports what breaks Kubernetes' structural-schema rules.
    fn structural_problems(node: &Value, path: &str, out: &mut Vec<String>) {
        let Some(obj) = node.as_object() else { return };
        for banned in [
            "$ref",
            "anyOf",
            "oneOf",
            "allOf",
            "not",
            "definitions",
            "$defs",
        ] {
            if obj.contains_key(banned) {
                out.push(format!("{path}: has {banned}"));
            }
        }
        let preserves = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
        if !obj.contains_key("type") && !preserves && !int_or_string {
            out.push(format!("{path}: no type"));
        }
        if obj.contains_key("properties")
            && obj
                .get("additionalProperties")
                .is_some_and(|a| a != &Value::Bool(false))
        {
            out.push(format!("{path}: both properties and additionalProperties"));
        }
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                structural_problems(v, &format!("{path}.{k}"), out);
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(child) = obj.get(key) {
                structural_problems(child, &format!("{path}[{key}]"), out);
            }
        }
    }

    #[test]
    fn schemas_are_structural() {
        for crd in all() {
            let schema = serde_json::to_value(&crd.spec.versions[0].schema).expect("serializes");
            let mut problems = Vec::new();
            structural_problems(&schema["openAPIV3Schema"], "", &mut problems);
            assert!(problems.is_empty(), "{}: {problems:#?}", file_name(&crd));
        }
    }

    #[test]
    fn names_match_knative() {
        let expect = [
            (
                "brokers.eventing.knative.dev",
                &[][..],
                &["all", "knative", "eventing"][..],
            ),
            (
                "triggers.eventing.knative.dev",
                &[],
                &["all", "knative", "eventing"],
            ),
            (
                "subscriptions.messaging.knative.dev",
                &["sub"],
                &["all", "knative", "messaging"],
            ),
            (
                "kafkachannels.messaging.knative.dev",
                &["kc"],
                &["all", "knative", "messaging", "channel"],
            ),
            (
                "kafkasources.sources.knative.dev",
                &[],
                &["all", "knative", "eventing", "sources"],
            ),
            (
                "services.serving.knative.dev",
                &["kservice", "ksvc"],
                &["all", "knative", "serving"],
            ),
            (
                "configurations.serving.knative.dev",
                &["config", "cfg"],
                &["all", "knative", "serving"],
            ),
            (
                "revisions.serving.knative.dev",
                &["rev"],
                &["all", "knative", "serving"],
            ),
            (
                "routes.serving.knative.dev",
                &["rt"],
                &["all", "knative", "serving"],
            ),
        ];
        let crds = all();
        assert_eq!(crds.len(), expect.len());
        for (crd, (name, short, categories)) in crds.iter().zip(expect) {
            assert_eq!(crd.metadata.name.as_deref(), Some(name));
            assert_eq!(
                crd.spec.names.short_names.clone().unwrap_or_default(),
                short,
                "{name}"
            );
            assert_eq!(
                crd.spec.names.categories.clone().unwrap_or_default(),
                categories,
                "{name}"
            );
            let version = &crd.spec.versions[0];
            assert!(
                version
                    .subresources
                    .as_ref()
                    .is_some_and(|s| s.status.is_some()),
                "{name}: status subresource"
            );
            let columns: Vec<_> = version
                .additional_printer_columns
                .iter()
                .flatten()
                .map(|c| c.name.as_str())
                .collect();
            for col in ["Ready", "Reason", "Age"] {
                assert!(
                    columns.contains(&col),
                    "{name}: printer column {col} missing from {columns:?}"
                );
            }
        }
    }

    #[test]
    fn kafka_source_is_served_at_v1_and_v1beta1_with_one_schema() {
        let crd = all()
            .into_iter()
            .find(|c| c.spec.names.kind == "KafkaSource")
            .expect("KafkaSource CRD");
        let versions: Vec<_> = crd
            .spec
            .versions
            .iter()
            .map(|v| (v.name.as_str(), v.served, v.storage))
            .collect();
        assert_eq!(versions, [("v1", true, false), ("v1beta1", true, true)]);
        assert_eq!(crd.spec.versions[0].schema, crd.spec.versions[1].schema);
        assert!(
            crd.spec.conversion.is_none(),
            "equal schemas need no webhook"
        );
    }

    #[test]
    fn optional_spec_defaults_to_empty_object() {
        for crd in all() {
            let schema = crd.spec.versions[0]
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .expect("schema");
            let spec = &schema.properties.as_ref().expect("properties")["spec"];
            let spec_required = schema.required.iter().flatten().any(|r| r == "spec");
            let has_required_fields = spec.required.as_ref().is_some_and(|r| !r.is_empty());
            assert_eq!(spec_required, has_required_fields, "{}", file_name(&crd));
            assert_eq!(
                spec.default.is_some(),
                !has_required_fields,
                "{}",
                file_name(&crd)
            );
        }
    }
}
