//! Knative Serving's `config-features` ConfigMap: which optional parts of a revision's PodSpec
//! are allowed.
//!
//! Knative's webhook refuses a field behind a flag that is `disabled` ("must not set the
//! field(s)"); `enabled` and `allowed` let it through. The keys, defaults and the field each flag
//! gates follow Knative Serving (`pkg/apis/config/features.go` and the CRD schema overrides that
//! list every flag-gated PodSpec field). Ferry reads the ConfigMap from the manifests under
//! `ferry dev` and `ferry validate`, and from the cluster (`--features-configmap`) in the
//! operator.

use std::collections::BTreeMap;

/// Name of Knative's ConfigMap.
pub const CONFIG_FEATURES: &str = "config-features";

/// A flag's value (Knative: case-insensitive `enabled`, `allowed`, `disabled`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    /// Turns the behaviour on.
    Enabled,
    /// Lets the field through validation without turning anything on.
    Allowed,
    /// Refuses the field.
    Disabled,
}

impl Flag {
    fn parse(raw: &str) -> Option<Flag> {
        [
            ("enabled", Flag::Enabled),
            ("allowed", Flag::Allowed),
            ("disabled", Flag::Disabled),
        ]
        .into_iter()
        .find_map(|(name, flag)| raw.trim().eq_ignore_ascii_case(name).then_some(flag))
    }
}

/// `multi-container`: more than one container per revision.
pub const MULTI_CONTAINER: &str = "multi-container";
/// `tag-header-based-routing`: a request carrying `Knative-Serving-Tag: <tag>` to a Route's own
/// host goes to that tag's revision.
pub const TAG_HEADER_ROUTING: &str = "tag-header-based-routing";
/// `multi-container-probing`: probes on sidecars.
pub const MULTI_CONTAINER_PROBING: &str = "multi-container-probing";
/// `kubernetes.podspec-fieldref`: `env[].valueFrom.fieldRef` / `resourceFieldRef`.
pub const FIELD_REF: &str = "kubernetes.podspec-fieldref";
/// `kubernetes.containerspec-addcapabilities`: `securityContext.capabilities.add`.
pub const ADD_CAPABILITIES: &str = "kubernetes.containerspec-addcapabilities";
/// `kubernetes.podspec-persistent-volume-claim`: PVC volumes.
pub const PERSISTENT_VOLUME_CLAIM: &str = "kubernetes.podspec-persistent-volume-claim";
/// `kubernetes.podspec-persistent-volume-write`: PVC volumes mounted writable.
pub const PERSISTENT_VOLUME_WRITE: &str = "kubernetes.podspec-persistent-volume-write";
/// `kubernetes.podspec-volumes-mount-propagation`: `volumeMounts[].mountPropagation`.
pub const MOUNT_PROPAGATION: &str = "kubernetes.podspec-volumes-mount-propagation";

/// PodSpec fields behind a flag, with their flag (Knative's `featureFlagFields` of the
/// revision spec).
pub const POD_FIELD_FLAGS: &[(&str, &str)] = &[
    ("affinity", "kubernetes.podspec-affinity"),
    ("dnsConfig", "kubernetes.podspec-dnsconfig"),
    ("dnsPolicy", "kubernetes.podspec-dnspolicy"),
    ("hostAliases", "kubernetes.podspec-hostaliases"),
    ("hostIPC", "kubernetes.podspec-hostipc"),
    ("hostNetwork", "kubernetes.podspec-hostnetwork"),
    ("hostPID", "kubernetes.podspec-hostpid"),
    ("initContainers", "kubernetes.podspec-init-containers"),
    ("nodeSelector", "kubernetes.podspec-nodeselector"),
    ("priorityClassName", "kubernetes.podspec-priorityclassname"),
    ("runtimeClassName", "kubernetes.podspec-runtimeclassname"),
    ("schedulerName", "kubernetes.podspec-schedulername"),
    ("securityContext", "kubernetes.podspec-securitycontext"),
    (
        "shareProcessNamespace",
        "kubernetes.podspec-shareprocessnamespace",
    ),
    ("tolerations", "kubernetes.podspec-tolerations"),
    (
        "topologySpreadConstraints",
        "kubernetes.podspec-topologyspreadconstraints",
    ),
];

/// PodSpec fields a revision may always set (besides the typed ones: containers, service
/// account, pull secrets).
pub const ALLOWED_POD_FIELDS: &[&str] = &["automountServiceAccountToken", "enableServiceLinks"];

/// Volume sources a revision may always use.
pub const ALLOWED_VOLUME_SOURCES: &[&str] = &["secret", "configMap", "projected"];

/// Volume sources behind a flag, with their flag.
pub const VOLUME_SOURCE_FLAGS: &[(&str, &str)] = &[
    ("emptyDir", "kubernetes.podspec-volumes-emptydir"),
    ("persistentVolumeClaim", PERSISTENT_VOLUME_CLAIM),
    ("hostPath", "kubernetes.podspec-volumes-hostpath"),
    ("csi", "kubernetes.podspec-volumes-csi"),
];

/// Container fields Knative allows (Knative's schema overrides for `containers`).
pub const ALLOWED_CONTAINER_FIELDS: &[&str] = &[
    "args",
    "command",
    "env",
    "envFrom",
    "image",
    "imagePullPolicy",
    "livenessProbe",
    "name",
    "ports",
    "readinessProbe",
    "resources",
    "securityContext",
    "startupProbe",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "volumeMounts",
    "workingDir",
];

/// Flags that are on unless the ConfigMap says otherwise (Knative's `defaultFeaturesConfig`);
/// every other flag defaults to `disabled`, except `kubernetes.podspec-dryrun` (`allowed`).
const DEFAULT_ON: &[&str] = &[MULTI_CONTAINER, "kubernetes.podspec-volumes-emptydir"];

/// The flags in force: Knative's defaults overlaid with a `config-features` ConfigMap's data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Features {
    set: BTreeMap<String, Flag>,
}

impl Features {
    /// Reads a `config-features` ConfigMap's data over Knative's defaults. A value other than
    /// enabled/allowed/disabled leaves the default in force, as Knative does; it is returned
    /// as a warning (`key`, value) so the caller can point it out.
    pub fn from_data(data: &BTreeMap<String, String>) -> (Features, Vec<(String, String)>) {
        let mut features = Features::default();
        let mut ignored = Vec::new();
        for (key, raw) in data {
            match Flag::parse(raw) {
                Some(flag) => {
                    features.set.insert(key.clone(), flag);
                }
                None => ignored.push((key.clone(), raw.clone())),
            }
        }
        (features, ignored)
    }

    /// The flag's value in force.
    pub fn flag(&self, key: &str) -> Flag {
        self.set
            .get(key)
            .copied()
            .unwrap_or(if DEFAULT_ON.contains(&key) {
                Flag::Enabled
            } else if key == "kubernetes.podspec-dryrun" {
                Flag::Allowed
            } else {
                Flag::Disabled
            })
    }

    /// Whether a field behind `key` may be set (`enabled` or `allowed`).
    pub fn allows(&self, key: &str) -> bool {
        self.flag(key) != Flag::Disabled
    }

    /// Whether the behaviour behind `key` is on (`enabled` only).
    pub fn enabled(&self, key: &str) -> bool {
        self.flag(key) == Flag::Enabled
    }
}

/// The fix for a field behind a disabled flag.
pub fn enable_fix(flag: &str) -> String {
    format!("remove it, or set `{flag}: enabled` in the {CONFIG_FEATURES} ConfigMap")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_knative_and_the_config_map_overrides_them() {
        let d = Features::default();
        assert!(d.enabled(MULTI_CONTAINER));
        assert!(d.allows("kubernetes.podspec-volumes-emptydir"));
        assert!(!d.allows("kubernetes.podspec-affinity"));
        assert!(d.allows("kubernetes.podspec-dryrun") && !d.enabled("kubernetes.podspec-dryrun"));
        let data = BTreeMap::from([
            (
                "kubernetes.podspec-affinity".to_owned(),
                "Enabled".to_owned(),
            ),
            (
                "kubernetes.podspec-nodeselector".to_owned(),
                "allowed".to_owned(),
            ),
            (MULTI_CONTAINER.to_owned(), "disabled".to_owned()),
            (
                "kubernetes.podspec-tolerations".to_owned(),
                "yes".to_owned(),
            ),
        ]);
        let (f, ignored) = Features::from_data(&data);
        assert!(f.enabled("kubernetes.podspec-affinity"));
        assert!(f.allows("kubernetes.podspec-nodeselector"));
        assert!(!f.allows(MULTI_CONTAINER));
        assert!(!f.allows("kubernetes.podspec-tolerations"));
        assert_eq!(
            ignored,
            [(
                "kubernetes.podspec-tolerations".to_owned(),
                "yes".to_owned()
            )]
        );
    }
}
