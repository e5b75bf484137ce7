//! The PodSpec rules of a Knative revision: which containers, PodSpec fields, volume sources
//! and container fields a revision may set, with the `config-features` flags that gate some of
//! them (Knative Serving's `ValidatePodSpec`, `validateContainers` and its field masks).
//!
//! A field Knative refuses is an error of the manifest (Knative's webhook would refuse it too),
//! named with the flag that allows it where there is one.

use std::collections::BTreeSet;

use serde_json::Value;

use super::Container;
use super::features::{
    ADD_CAPABILITIES, ALLOWED_CONTAINER_FIELDS, ALLOWED_POD_FIELDS, ALLOWED_VOLUME_SOURCES,
    FIELD_REF, Features, MOUNT_PROPAGATION, MULTI_CONTAINER, MULTI_CONTAINER_PROBING,
    PERSISTENT_VOLUME_CLAIM, PERSISTENT_VOLUME_WRITE, POD_FIELD_FLAGS, VOLUME_SOURCE_FLAGS,
    enable_fix,
};
use crate::validation::{FieldErrors, Path};

/// Knative's message for a field its webhook drops.
const DISALLOWED: &str = "must not set the field(s)";

/// Checks the containers: how many (the `multi-container` flag), exactly one serving port
/// across them, unique names, each runnable, and each container's fields.
pub(super) fn validate_containers(
    containers: &[Container],
    features: &Features,
    path: &Path,
    errs: &mut FieldErrors,
) {
    let at = path.field("containers");
    if containers.is_empty() {
        errs.push(&at, "is empty", "add the application container");
        return;
    }
    if containers.len() > 1 && !features.allows(MULTI_CONTAINER) {
        errs.push(
            &at,
            format!(
                "multi-container is off, but found {} containers",
                containers.len()
            ),
            enable_fix(MULTI_CONTAINER),
        );
    }
    let ports: usize = containers.iter().map(|c| c.ports.len()).sum();
    if ports > 1 {
        errs.push(
            &at,
            "more than one container port is set",
            "only a single port is allowed across all containers: keep the serving container's",
        );
    } else if ports == 0 && containers.len() > 1 {
        errs.push(
            &at,
            "no container names a port",
            "give the container that serves requests `ports: [{containerPort: <port>}]`; the others run beside it",
        );
    }
    let mut names = BTreeSet::new();
    for (i, c) in containers.iter().enumerate() {
        let at = at.index(i);
        if let Some(name) = &c.name
            && !names.insert(name.as_str())
        {
            errs.push(
                &at.field("name"),
                format!("duplicate container name {name:?}"),
                "give every container its own name",
            );
        }
        let sidecar = containers.len() > 1 && c.ports.is_empty();
        validate_container(c, sidecar, features, &at, errs);
    }
}

fn validate_container(
    c: &Container,
    sidecar: bool,
    features: &Features,
    at: &Path,
    errs: &mut FieldErrors,
) {
    if c.image.as_deref().unwrap_or("").is_empty() && c.command.is_empty() {
        errs.push(
            at,
            "has neither image nor command",
            "set image (Kubernetes) and command (local mode runs it)",
        );
    }
    if let Some(p) = c.ports.first()
        && !(1..=65535).contains(&p.container_port)
    {
        errs.push(
            &at.field("ports").index(0).field("containerPort"),
            format!("{} is not a port", p.container_port),
            "use 1-65535",
        );
    }
    for key in c.other.keys() {
        if !ALLOWED_CONTAINER_FIELDS.contains(&key.as_str()) {
            errs.push(
                &at.field(key),
                DISALLOWED,
                "Knative does not allow this container field in a revision; remove it",
            );
        }
    }
    if sidecar && !features.enabled(MULTI_CONTAINER_PROBING) {
        for (name, set) in [
            ("livenessProbe", c.liveness_probe.is_some()),
            ("readinessProbe", c.readiness_probe.is_some()),
        ] {
            if set {
                errs.push(
                    &at.field(name),
                    format!("{DISALLOWED}: probes on a container without the serving port"),
                    enable_fix(MULTI_CONTAINER_PROBING),
                );
            }
        }
    }
    for (i, var) in c.env.iter().enumerate() {
        let from = var.value_from.as_ref();
        let by_field =
            from.is_some_and(|f| f.field_ref.is_some() || f.resource_field_ref.is_some());
        if by_field && !features.allows(FIELD_REF) {
            errs.push(
                &at.field("env").index(i).field("valueFrom"),
                format!("{DISALLOWED}: fieldRef / resourceFieldRef"),
                enable_fix(FIELD_REF),
            );
        }
    }
    if let Some(sc) = &c.security_context {
        let adds = sc
            .capabilities
            .as_ref()
            .is_some_and(|caps| caps.add.as_ref().is_some_and(|a| !a.is_empty()));
        if adds && !features.allows(ADD_CAPABILITIES) {
            errs.push(
                &at.field("securityContext")
                    .field("capabilities")
                    .field("add"),
                DISALLOWED,
                enable_fix(ADD_CAPABILITIES),
            );
        }
        if sc.privileged == Some(true) {
            errs.push(
                &at.field("securityContext").field("privileged"),
                "may only be set to false in a Knative revision",
                "remove it or set it to false",
            );
        }
    }
    for (i, m) in c.volume_mounts.iter().enumerate() {
        if m.mount_propagation.is_some() && !features.allows(MOUNT_PROPAGATION) {
            errs.push(
                &at.field("volumeMounts").index(i).field("mountPropagation"),
                DISALLOWED,
                enable_fix(MOUNT_PROPAGATION),
            );
        }
    }
}

/// Checks the PodSpec fields beyond the typed ones: allowed, behind a flag, or never allowed.
pub(super) fn validate_pod_fields(
    pod: &std::collections::BTreeMap<String, Value>,
    features: &Features,
    path: &Path,
    errs: &mut FieldErrors,
) {
    for (key, value) in pod {
        let at = path.field(key);
        if key == "volumes" {
            validate_volumes(value, features, &at, errs);
        } else if key == "automountServiceAccountToken" && value == &Value::Bool(true) {
            errs.push(
                &at,
                "may only be set to false in a Knative revision",
                "remove it or set it to false",
            );
        } else if ALLOWED_POD_FIELDS.contains(&key.as_str()) {
        } else if let Some((_, flag)) = POD_FIELD_FLAGS.iter().find(|(f, _)| f == key) {
            if !features.allows(flag) {
                errs.push(&at, DISALLOWED, enable_fix(flag));
            }
        } else {
            errs.push(
                &at,
                DISALLOWED,
                "Knative does not allow this PodSpec field in a revision; remove it",
            );
        }
    }
}

fn validate_volumes(volumes: &Value, features: &Features, path: &Path, errs: &mut FieldErrors) {
    let Some(list) = volumes.as_array() else {
        errs.push(path, "is not a list", "write volumes as a list");
        return;
    };
    for (i, volume) in list.iter().enumerate() {
        let at = path.index(i);
        let Some(fields) = volume.as_object() else {
            errs.push(&at, "is not an object", "write each volume as a mapping");
            continue;
        };
        for (source, value) in fields.iter().filter(|(k, _)| k.as_str() != "name") {
            let at = at.field(source);
            if ALLOWED_VOLUME_SOURCES.contains(&source.as_str()) {
                continue;
            }
            match VOLUME_SOURCE_FLAGS.iter().find(|(s, _)| s == source) {
                Some((_, flag)) if !features.allows(flag) => {
                    errs.push(&at, DISALLOWED, enable_fix(flag));
                }
                Some(_) => {}
                None => errs.push(
                    &at,
                    DISALLOWED,
                    "Knative does not allow this volume source in a revision; use secret, configMap, projected or emptyDir",
                ),
            }
            if source == "persistentVolumeClaim" {
                validate_claim(value, features, &at, errs);
            }
        }
    }
}

/// Knative's `validatePersistentVolumeClaims`: claims need the claim flag enabled, and
/// writable ones the write flag too.
fn validate_claim(claim: &Value, features: &Features, at: &Path, errs: &mut FieldErrors) {
    let name = claim.get("claimName").and_then(Value::as_str).unwrap_or("");
    if features.allows(PERSISTENT_VOLUME_CLAIM) && !features.enabled(PERSISTENT_VOLUME_CLAIM) {
        errs.push(
            at,
            format!("persistent volume claim support is not enabled, but found claim {name:?}"),
            enable_fix(PERSISTENT_VOLUME_CLAIM),
        );
    }
    let read_only = claim.get("readOnly").and_then(Value::as_bool) == Some(true);
    if !read_only && !features.enabled(PERSISTENT_VOLUME_WRITE) {
        errs.push(
            at,
            format!(
                "persistent volume write support is disabled, but claim {name:?} is not read-only"
            ),
            format!(
                "set `readOnly: true`, or {}",
                enable_fix(PERSISTENT_VOLUME_WRITE)
            ),
        );
    }
}
