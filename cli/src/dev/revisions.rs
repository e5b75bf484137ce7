//! The revisions `ferry dev` has created, as Knative's Configuration reconciler creates them:
//! an immutable revision per template change, named `<configuration>-00001`, `-00002`, … (or
//! `spec.template.metadata.name`). Kept in the data directory so names and the traffic that
//! names them survive restarts.

use std::collections::BTreeMap;
use std::path::Path;

use ferry_api::serving::{RevisionTemplateSpec, revision_name};
use serde::{Deserialize, Serialize};

use super::runtime::ProcessSpec;

/// One revision: its name and the template it was cut from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredRevision {
    /// Revision name.
    pub name: String,
    /// The template, frozen.
    pub template: RevisionTemplateSpec,
}

/// Revisions per configuration (`namespace/name`), oldest first.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Revisions {
    configurations: BTreeMap<String, Vec<StoredRevision>>,
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
                    "{} is not a revision registry ({e}); delete it to start the revision count again",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("cannot read {} ({e})", path.display())),
        }
    }

    /// Writes the registry atomically.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(tmp, path)
    }

    /// The revision for `template` of configuration `namespace/configuration`: the latest one
    /// when the template is unchanged, otherwise a new one. Returns its name and whether it
    /// was created now.
    ///
    /// # Errors
    /// `spec.template.metadata.name` names a revision that exists with a different template
    /// (revisions are immutable, as in Knative).
    pub fn observe(
        &mut self,
        namespace: &str,
        configuration: &str,
        template: &RevisionTemplateSpec,
    ) -> Result<(String, bool), String> {
        let list = self
            .configurations
            .entry(format!("{namespace}/{configuration}"))
            .or_default();
        if let Some(latest) = list.last()
            && latest.template == *template
        {
            return Ok((latest.name.clone(), false));
        }
        let name = match &template.metadata.name {
            Some(name) => {
                if list.iter().any(|r| &r.name == name) {
                    return Err(format!(
                        "spec.template.metadata.name: revision {name:?} already exists with a different template; revisions are immutable, so give the changed template a new name (or remove the name to get {configuration}-NNNNN names)"
                    ));
                }
                name.clone()
            }
            None => revision_name(configuration, list.len() as u64 + 1),
        };
        list.push(StoredRevision {
            name: name.clone(),
            template: template.clone(),
        });
        Ok((name, true))
    }

    /// The configuration's revisions, oldest first.
    pub fn of(&self, namespace: &str, configuration: &str) -> &[StoredRevision] {
        self.configurations
            .get(&format!("{namespace}/{configuration}"))
            .map_or(&[], Vec::as_slice)
    }
}

/// How a revision runs locally: its only container's `command` + `args`, `env` and
/// `workingDir`.
///
/// # Errors
/// What the template lacks or uses that a local process cannot honour, as `field: problem;
/// fix` relative to `spec.template`.
pub fn process_spec(template: &RevisionTemplateSpec) -> Result<ProcessSpec, String> {
    let containers = &template.spec.containers;
    let [container] = containers.as_slice() else {
        return Err(format!(
            "spec.template.spec.containers: has {} containers; ferry dev runs exactly one per revision",
            containers.len()
        ));
    };
    if container.command.is_empty() {
        return Err("spec.template.spec.containers[0].command: is not set; ferry dev runs a revision as a local process, so give the command that starts it (e.g. [\"cargo\", \"run\", \"-p\", \"my-service\"]); the image is only used in a cluster".to_owned());
    }
    if !container.env_from.is_empty() {
        return Err("spec.template.spec.containers[0].envFrom: ConfigMaps and Secrets do not exist locally; list the variables under env".to_owned());
    }
    let mut env = BTreeMap::new();
    for (i, var) in container.env.iter().enumerate() {
        if var.value_from.is_some() {
            return Err(format!(
                "spec.template.spec.containers[0].env[{i}].valueFrom: ({}) cannot be resolved locally; give a value",
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

    fn template(command: &str) -> RevisionTemplateSpec {
        serde_json::from_value(serde_json::json!({
            "spec": {"containers": [{"image": "x", "command": [command], "args": ["a"],
                      "env": [{"name": "MODE", "value": "v1"}]}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_changed_template_is_a_new_revision_and_an_unchanged_one_is_not() {
        let mut r = Revisions::default();
        assert_eq!(
            r.observe("default", "cart", &template("one")).unwrap(),
            ("cart-00001".into(), true)
        );
        assert_eq!(
            r.observe("default", "cart", &template("one")).unwrap(),
            ("cart-00001".into(), false)
        );
        assert_eq!(
            r.observe("default", "cart", &template("two")).unwrap(),
            ("cart-00002".into(), true)
        );
        // The old revision keeps its template: revisions are immutable.
        assert_eq!(r.of("default", "cart")[0].template, template("one"));
        assert_eq!(r.of("other", "cart"), &[]);
    }

    #[test]
    fn named_revisions_cannot_be_reused_for_another_template() {
        let mut r = Revisions::default();
        let mut t = template("one");
        t.metadata.name = Some("cart-blue".into());
        assert_eq!(
            r.observe("default", "cart", &t).unwrap(),
            ("cart-blue".into(), true)
        );
        let mut changed = template("two");
        changed.metadata.name = Some("cart-blue".into());
        let err = r.observe("default", "cart", &changed).unwrap_err();
        assert!(err.contains("already exists"), "{err}");
    }

    #[test]
    fn registry_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revisions.json");
        let mut r = Revisions::load(&path).unwrap();
        r.observe("default", "cart", &template("one")).unwrap();
        r.save(&path).unwrap();
        let again = Revisions::load(&path).unwrap();
        assert_eq!(again.of("default", "cart").len(), 1);
        std::fs::write(&path, "{not json").unwrap();
        assert!(Revisions::load(&path).unwrap_err().contains("delete it"));
    }

    #[test]
    fn process_spec_takes_command_args_and_env_and_refuses_what_cannot_run_locally() {
        let spec = process_spec(&template("serve")).unwrap();
        assert_eq!(spec.argv, ["serve", "a"]);
        assert_eq!(spec.env["MODE"], "v1");

        let no_command: RevisionTemplateSpec =
            serde_json::from_value(serde_json::json!({"spec": {"containers": [{"image": "x"}]}}))
                .unwrap();
        assert!(
            process_spec(&no_command)
                .unwrap_err()
                .starts_with("spec.template.spec.containers[0].command")
        );
        let secret: RevisionTemplateSpec = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [{"image": "x", "command": ["a"],
              "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]}
        }))
        .unwrap();
        assert!(
            process_spec(&secret)
                .unwrap_err()
                .contains("env[0].valueFrom")
        );
    }
}
