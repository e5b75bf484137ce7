//! What `ferry dev` keeps of each Service across restarts, as the API server keeps it in a
//! cluster: its Configuration's generation — bumped when the template changes, as the API
//! server bumps `metadata.generation` on a spec change — and the Revisions stamped from it by
//! the operator's own rule ([`ferry_control::serving::revision_for`]: an immutable revision
//! per generation, `<configuration>-00001`, `-00002`, … or `spec.template.metadata.name`).
//! Kept in the data directory so names and the traffic that names them survive restarts.

use std::collections::BTreeMap;
use std::path::Path;

use ferry_api::serving::{
    Configuration, Container, KnativeService, Revision, RevisionSpec, RevisionTemplateSpec,
};
use ferry_control::serving::{configuration_for, revision_for};
use serde::{Deserialize, Serialize};

use super::process::ProcessSpec;
use super::replica::{ContainerSpec, ReplicaSpec};

/// One Service's Configuration: its generation, the template of that generation, and the
/// revisions stamped so far, oldest first.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Stamped {
    generation: i64,
    template: Option<RevisionTemplateSpec>,
    revisions: Vec<Revision>,
}

/// Configurations by `namespace/name`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revisions {
    configurations: BTreeMap<String, Stamped>,
}

impl Revisions {
    /// Reads the registry; a missing file is an empty registry.
    ///
    /// # Errors
    /// The file exists but cannot be read or parsed (named, with what to do).
    pub fn load(path: &Path) -> Result<Self, String> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                format!(
                    "{} is not a revision registry of this ferry dev ({e}); delete it to start the revision count again (the log keeps its events)",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("cannot read {} ({e})", path.display())),
        }
    }

    /// Writes the registry atomically (without the revisions' status, which is observed
    /// afresh).
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut bare = Revisions {
            configurations: self.configurations.clone(),
        };
        for stamped in bare.configurations.values_mut() {
            for r in &mut stamped.revisions {
                r.status = None;
            }
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&bare)?)?;
        std::fs::rename(tmp, path)
    }

    /// The Service's Configuration ([`configuration_for`]) at its current generation, which
    /// grows by one whenever the template differs from the last one seen.
    pub fn configuration(&mut self, svc: &KnativeService) -> Configuration {
        let mut cfg = configuration_for(svc);
        let ns = cfg.metadata.namespace.clone().unwrap_or_default();
        let name = cfg.metadata.name.clone().unwrap_or_default();
        let stamped = self
            .configurations
            .entry(format!("{ns}/{name}"))
            .or_default();
        if stamped.template.as_ref() != Some(&svc.spec.template) {
            stamped.generation += 1;
            stamped.template = Some(svc.spec.template.clone());
        }
        cfg.metadata.generation = Some(stamped.generation);
        cfg.metadata.uid = Some(format!("local-configuration-{ns}-{name}"));
        cfg
    }

    /// Stamps the configuration's revision for its current generation unless it exists.
    /// Returns the name of a revision created now.
    ///
    /// # Errors
    /// [`revision_for`]'s: `spec.template.metadata.name` names a revision that exists with
    /// another template.
    pub fn stamp(&mut self, cfg: &Configuration) -> Result<Option<String>, String> {
        let ns = cfg.metadata.namespace.clone().unwrap_or_default();
        let existing = self.in_namespace(&ns);
        let Some(revision) = revision_for(cfg, &existing)? else {
            return Ok(None);
        };
        let name = revision.metadata.name.clone().unwrap_or_default();
        let key = format!("{ns}/{}", cfg.metadata.name.as_deref().unwrap_or_default());
        self.configurations
            .entry(key)
            .or_default()
            .revisions
            .push(revision);
        Ok(Some(name))
    }

    /// The configuration's revisions, oldest first.
    pub fn of(&self, namespace: &str, configuration: &str) -> &[Revision] {
        self.configurations
            .get(&format!("{namespace}/{configuration}"))
            .map_or(&[], |s| s.revisions.as_slice())
    }

    /// Every revision of `namespace`.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Revision> {
        self.configurations
            .iter()
            .filter(|(k, _)| k.split_once('/').is_some_and(|(ns, _)| ns == namespace))
            .flat_map(|(_, s)| s.revisions.iter().cloned())
            .collect()
    }

    /// A revision by namespace and name.
    pub fn get(&self, namespace: &str, name: &str) -> Option<&Revision> {
        self.configurations
            .iter()
            .filter(|(k, _)| k.split_once('/').is_some_and(|(ns, _)| ns == namespace))
            .flat_map(|(_, s)| &s.revisions)
            .find(|r| r.metadata.name.as_deref() == Some(name))
    }
}

/// How a revision's replicas run locally: each container as a process from its `command` +
/// `args`, `env` and `workingDir`; the container that lists a port
/// ([`RevisionSpec::serving_container`]) serves, the others run beside it as sidecars.
///
/// # Errors
/// What the template lacks or uses that local processes cannot honour, as `field: problem;
/// fix` relative to `spec.template` (Knative's own rules are checked before, by validation).
pub fn replica_spec(spec: &RevisionSpec) -> Result<ReplicaSpec, String> {
    if spec.pod.contains_key("initContainers") {
        return Err("spec.template.spec.initContainers: ferry dev does not run init containers; do their setup in the container's command instead (e.g. [\"sh\", \"-c\", \"setup && exec my-service\"])".to_owned());
    }
    let no_serving = || match spec.containers.len() {
        0 => "spec.template.spec.containers: is empty; add the container that serves".to_owned(),
        n => format!(
            "spec.template.spec.containers: none of the {n} containers lists ports, so none serves; list the serving port (ports: [{{containerPort: 8080}}]) on the container requests go to"
        ),
    };
    let (serving, _) = spec.serving_container().ok_or_else(no_serving)?;
    let mut sidecars = Vec::new();
    let mut serving_container = None;
    for (i, c) in spec.containers.iter().enumerate() {
        let container = ContainerSpec {
            name: spec.container_name(i),
            process: container_process(i, c)?,
        };
        if i == serving {
            serving_container = Some(container);
        } else {
            sidecars.push(container);
        }
    }
    Ok(ReplicaSpec {
        serving: serving_container.ok_or_else(no_serving)?,
        sidecars,
    })
}

/// Container `i`'s process: `command` + `args`, `env` and `workingDir`.
fn container_process(i: usize, container: &Container) -> Result<ProcessSpec, String> {
    let at = format!("spec.template.spec.containers[{i}]");
    if container.command.is_empty() {
        return Err(format!(
            "{at}.command: is not set; ferry dev runs each container as a local process, so give the command that starts it (e.g. [\"cargo\", \"run\", \"-p\", \"my-service\"]); the image is only used in a cluster"
        ));
    }
    if !container.env_from.is_empty() {
        return Err(format!(
            "{at}.envFrom: ConfigMaps and Secrets do not exist locally; list the variables under env"
        ));
    }
    let mut env = BTreeMap::new();
    for (j, var) in container.env.iter().enumerate() {
        if var.value_from.is_some() {
            return Err(format!(
                "{at}.env[{j}].valueFrom: ({}) cannot be resolved locally; give a value",
                var.name
            ));
        }
        env.insert(var.name.clone(), var.value.clone().unwrap_or_default());
    }
    Ok(ProcessSpec {
        argv: container
            .command
            .iter()
            .chain(&container.args)
            .cloned()
            .collect(),
        env,
        working_dir: container.working_dir.as_ref().map(Into::into),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(command: &str, byo_name: Option<&str>) -> KnativeService {
        let mut template = serde_json::json!({
            "spec": {"containers": [{"image": "x", "command": [command], "args": ["a"],
                      "env": [{"name": "MODE", "value": "v1"}]}]}
        });
        if let Some(name) = byo_name {
            template["metadata"] = serde_json::json!({"name": name});
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": "cart", "namespace": "default", "uid": "local-service-default-cart"},
            "spec": {"template": template}
        }))
        .unwrap()
    }

    fn stamp(r: &mut Revisions, svc: &KnativeService) -> Result<Option<String>, String> {
        let cfg = r.configuration(svc);
        r.stamp(&cfg)
    }

    #[test]
    fn a_changed_template_is_a_new_revision_and_an_unchanged_one_is_not() {
        let mut r = Revisions::default();
        assert_eq!(
            stamp(&mut r, &service("one", None)),
            Ok(Some("cart-00001".into()))
        );
        assert_eq!(stamp(&mut r, &service("one", None)), Ok(None));
        assert_eq!(
            stamp(&mut r, &service("two", None)),
            Ok(Some("cart-00002".into()))
        );
        // The old revision keeps its template: revisions are immutable.
        let first = &r.of("default", "cart")[0];
        assert_eq!(first.spec, service("one", None).spec.template.spec);
        assert!(r.of("other", "cart").is_empty());
        assert!(r.get("default", "cart-00002").is_some());
    }

    #[test]
    fn named_revisions_cannot_be_reused_for_another_template() {
        let mut r = Revisions::default();
        assert_eq!(
            stamp(&mut r, &service("one", Some("cart-blue"))),
            Ok(Some("cart-blue".into()))
        );
        let err = stamp(&mut r, &service("two", Some("cart-blue"))).unwrap_err();
        assert!(err.contains("already exists"), "{err}");
    }

    #[test]
    fn registry_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revisions.json");
        let mut r = Revisions::load(&path).unwrap();
        stamp(&mut r, &service("one", None)).unwrap();
        r.save(&path).unwrap();
        let mut again = Revisions::load(&path).unwrap();
        assert_eq!(again.of("default", "cart").len(), 1);
        // The generation survives: the same template stamps nothing new.
        assert_eq!(stamp(&mut again, &service("one", None)), Ok(None));
        std::fs::write(&path, "{not json").unwrap();
        assert!(Revisions::load(&path).unwrap_err().contains("delete it"));
    }

    fn revision_spec(json: serde_json::Value) -> RevisionSpec {
        serde_json::from_value::<RevisionTemplateSpec>(json)
            .unwrap()
            .spec
    }

    #[test]
    fn replica_spec_takes_command_args_and_env_and_refuses_what_cannot_run_locally() {
        let spec = replica_spec(&service("serve", None).spec.template.spec).unwrap();
        assert_eq!(spec.serving.name, "user-container");
        assert_eq!(spec.serving.process.argv, ["serve", "a"]);
        assert_eq!(spec.serving.process.env["MODE"], "v1");
        assert!(spec.sidecars.is_empty());

        let no_command =
            revision_spec(serde_json::json!({"spec": {"containers": [{"image": "x"}]}}));
        assert!(
            replica_spec(&no_command)
                .unwrap_err()
                .starts_with("spec.template.spec.containers[0].command")
        );
        let secret = revision_spec(serde_json::json!({
            "spec": {"containers": [{"image": "x", "command": ["a"],
              "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]}
        }));
        assert!(
            replica_spec(&secret)
                .unwrap_err()
                .contains("env[0].valueFrom")
        );
        let init = revision_spec(serde_json::json!({
            "spec": {"containers": [{"image": "x", "command": ["a"]}],
                     "initContainers": [{"name": "setup", "image": "y"}]}
        }));
        let err = replica_spec(&init).unwrap_err();
        assert!(
            err.starts_with(
                "spec.template.spec.initContainers: ferry dev does not run init containers"
            ),
            "{err}"
        );
        assert!(err.contains("in the container's command"), "{err}");
        let empty = revision_spec(serde_json::json!({"spec": {"containers": []}}));
        assert!(replica_spec(&empty).unwrap_err().contains("is empty"));
    }

    #[test]
    fn the_container_with_a_port_serves_and_the_others_are_named_sidecars() {
        let spec = replica_spec(&revision_spec(serde_json::json!({"spec": {"containers": [
            {"image": "l", "command": ["logger"], "env": [{"name": "PORT", "value": "9999"}]},
            {"name": "app", "image": "a", "command": ["serve"], "args": ["--fast"],
             "ports": [{"containerPort": 8080}]},
            {"image": "p", "command": ["proxy"], "workingDir": "/tmp"}
        ]}})))
        .unwrap();
        assert_eq!(spec.serving.name, "app");
        assert_eq!(spec.serving.process.argv, ["serve", "--fast"]);
        let sidecars: Vec<(&str, &str)> = spec
            .sidecars
            .iter()
            .map(|c| (c.name.as_str(), c.process.argv[0].as_str()))
            .collect();
        assert_eq!(
            sidecars,
            [
                ("user-container-0", "logger"),
                ("user-container-2", "proxy")
            ]
        );
        // A sidecar keeps the PORT its own env gives it; its working directory is its own.
        assert_eq!(spec.sidecars[0].process.env["PORT"], "9999");
        assert_eq!(
            spec.sidecars[1].process.working_dir.as_deref(),
            Some(std::path::Path::new("/tmp"))
        );
    }

    #[test]
    fn a_sidecar_that_cannot_run_locally_is_named_by_its_index() {
        let sidecar = |fields: serde_json::Value| {
            let mut sidecar = serde_json::json!({"image": "l"});
            sidecar
                .as_object_mut()
                .unwrap()
                .extend(fields.as_object().unwrap().clone());
            revision_spec(serde_json::json!({"spec": {"containers": [
                {"image": "a", "command": ["serve"], "ports": [{"containerPort": 8080}]},
                sidecar
            ]}}))
        };
        let cases = [
            (
                serde_json::json!({}),
                "spec.template.spec.containers[1].command: is not set",
            ),
            (
                serde_json::json!({"command": ["l"], "envFrom": [{"configMapRef": {"name": "c"}}]}),
                "spec.template.spec.containers[1].envFrom:",
            ),
            (
                serde_json::json!({"command": ["l"], "env": [{"name": "A", "value": "1"},
                    {"name": "K", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}),
                "spec.template.spec.containers[1].env[1].valueFrom: (K)",
            ),
        ];
        for (fields, want) in cases {
            let err = replica_spec(&sidecar(fields)).unwrap_err();
            assert!(err.starts_with(want), "want {want:?}: {err}");
        }
        // Invalid for Knative (validation refuses it first), but never a panic here.
        let portless = revision_spec(serde_json::json!({"spec": {"containers": [
            {"image": "a", "command": ["a"]}, {"image": "b", "command": ["b"]}
        ]}}));
        assert!(
            replica_spec(&portless)
                .unwrap_err()
                .contains("none of the 2 containers lists ports")
        );
    }
}
