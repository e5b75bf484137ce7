//! Loading Knative-shaped YAML from files and directories, as `kubectl apply -f` does.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use ferry_api::resource::{ParseError, Resource};
use ferry_api::sources::SecretData;
use serde::Deserialize;
use serde_json::Value;

/// Namespace given to resources whose manifest names none (kubectl's default).
pub const DEFAULT_NAMESPACE: &str = "default";

/// One resource read from a file, with where it came from.
#[derive(Debug)]
pub struct Manifest {
    /// The file it was read from.
    pub file: PathBuf,
    /// 1-based position of its document in the file.
    pub document: usize,
    /// The parsed resource (namespace defaulted).
    pub resource: Resource,
}

/// A `v1` Secret or ConfigMap from the manifests: `ferry dev` reads a KafkaSource's `spec.net`
/// material from Secrets and a Broker's `spec.config` from ConfigMaps, as the operator reads
/// them from the cluster.
#[derive(Debug)]
pub struct SecretManifest {
    /// `Secret` or `ConfigMap`.
    pub kind: &'static str,
    /// The file it was read from.
    pub file: PathBuf,
    /// 1-based position of its document in the file.
    pub document: usize,
    /// Namespace (defaulted).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// A Secret's `data` (decoded) with `stringData` on top, as the API server merges them;
    /// a ConfigMap's `data`.
    pub data: SecretData,
}

impl SecretManifest {
    /// Its data as text (a ConfigMap's settings; bytes that are not UTF-8 are replaced).
    pub fn text_data(&self) -> std::collections::BTreeMap<String, String> {
        self.data
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect()
    }
}

/// A document that could not be read or parsed, located by file and document.
#[derive(Debug)]
pub struct LoadError {
    /// The file.
    pub file: PathBuf,
    /// 1-based document number, when the problem is inside one document.
    pub document: Option<usize>,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.document {
            Some(d) => write!(f, "{}, document {d}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// The YAML files named by `paths`: files as given, directories' `*.yaml`/`*.yml` files
/// (not recursive, sorted).
pub fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| LoadError {
            file: path.clone(),
            document: None,
            message: format!("cannot read it ({e}); check the path given to -f"),
        })?;
        if !meta.is_dir() {
            out.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path).map_err(|e| LoadError {
            file: path.clone(),
            document: None,
            message: format!("cannot list the directory ({e})"),
        })?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        found.sort();
        if found.is_empty() {
            return Err(LoadError {
                file: path.clone(),
                document: None,
                message: "holds no .yaml or .yml files; point -f at your manifests".to_owned(),
            });
        }
        out.extend(found);
    }
    Ok(out)
}

/// Reads every document of every file, returning the resources and, separately, every
/// document that failed to parse (so one run reports all problems).
pub fn load(paths: &[PathBuf]) -> (Vec<Manifest>, Vec<LoadError>) {
    let (manifests, _, errors) = load_with_secrets(paths);
    (manifests, errors)
}

/// [`load`], also returning the `v1` Secrets and ConfigMaps among the documents.
pub fn load_with_secrets(
    paths: &[PathBuf],
) -> (Vec<Manifest>, Vec<SecretManifest>, Vec<LoadError>) {
    let mut manifests = Vec::new();
    let mut secrets = Vec::new();
    let mut errors = Vec::new();
    let files = match files(paths) {
        Ok(f) => f,
        Err(e) => return (manifests, secrets, vec![e]),
    };
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                errors.push(LoadError {
                    file,
                    document: None,
                    message: format!("cannot read it ({e})"),
                });
                continue;
            }
        };
        load_text(&file, &text, &mut manifests, &mut secrets, &mut errors);
    }
    check_duplicates(&manifests, &mut errors);
    check_duplicate_secrets(&secrets, &mut errors);
    (manifests, secrets, errors)
}

fn load_text(
    file: &Path,
    text: &str,
    manifests: &mut Vec<Manifest>,
    secrets: &mut Vec<SecretManifest>,
    errors: &mut Vec<LoadError>,
) {
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let document = i + 1;
        let err = |message: String| LoadError {
            file: file.to_owned(),
            document: Some(document),
            message,
        };
        let value = match Value::deserialize(doc) {
            Ok(Value::Null) => continue,
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                errors.push(err(
                    "is not a mapping; a manifest has apiVersion, kind, metadata and spec"
                        .to_owned(),
                ));
                continue;
            }
            Err(e) => {
                errors.push(err(format!("is not valid YAML: {e}")));
                // The YAML stream is broken from here on; later documents cannot be located.
                return;
            }
        };
        let core_kind = (value.get("apiVersion").and_then(Value::as_str) == Some("v1"))
            .then(|| value.get("kind").and_then(Value::as_str))
            .flatten();
        let read = match core_kind {
            Some("Secret") => Some(("Secret", secret(value.clone()))),
            Some("ConfigMap") => Some(("ConfigMap", config_map(value.clone()))),
            _ => None,
        };
        if let Some((kind, read)) = read {
            match read {
                Ok((namespace, name, data)) => secrets.push(SecretManifest {
                    kind,
                    file: file.to_owned(),
                    document,
                    namespace,
                    name,
                    data,
                }),
                Err(e) => errors.push(err(e)),
            }
            continue;
        }
        match Resource::from_value(value) {
            Ok(mut resource) => {
                resource.default_namespace(DEFAULT_NAMESPACE);
                manifests.push(Manifest {
                    file: file.to_owned(),
                    document,
                    resource,
                });
            }
            // One line per field, so every problem of the document is reported with its path.
            Err(ParseError::Fields {
                kind,
                name,
                errors: fields,
            }) => errors.extend(
                fields
                    .errors()
                    .iter()
                    .map(|f| err(format!("{kind} {name}: {f}"))),
            ),
            Err(e) => errors.push(err(e.to_string())),
        }
    }
}

/// A Secret's namespace, name and data (`stringData` over `data`).
fn secret(value: Value) -> Result<(String, String, SecretData), String> {
    let secret: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(value).map_err(|e| {
            format!(
                "v1/Secret is malformed: {e}; data values are base64, stringData values plain text"
            )
        })?;
    let name = secret
        .metadata
        .name
        .filter(|n| !n.is_empty())
        .ok_or("v1/Secret has no metadata.name; name it")?;
    let namespace = secret
        .metadata
        .namespace
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
    let mut data: SecretData = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    for (k, v) in secret.string_data.unwrap_or_default() {
        data.insert(k, v.into_bytes());
    }
    Ok((namespace, name, data))
}

/// A ConfigMap's namespace, name and `data`.
fn config_map(value: Value) -> Result<(String, String, SecretData), String> {
    let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(value)
        .map_err(|e| format!("v1/ConfigMap is malformed: {e}; data values are strings"))?;
    let name = cm
        .metadata
        .name
        .filter(|n| !n.is_empty())
        .ok_or("v1/ConfigMap has no metadata.name; name it")?;
    let namespace = cm
        .metadata
        .namespace
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
    let data = cm
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    Ok((namespace, name, data))
}

fn check_duplicate_secrets(secrets: &[SecretManifest], errors: &mut Vec<LoadError>) {
    let mut seen: BTreeMap<(&str, &str, &str), &SecretManifest> = BTreeMap::new();
    for s in secrets {
        if let Some(first) = seen.insert((s.kind, &s.namespace, &s.name), s) {
            errors.push(LoadError {
                file: s.file.clone(),
                document: Some(s.document),
                message: format!(
                    "{} {}/{} is defined twice (first in {}, document {}); rename or remove one",
                    s.kind,
                    s.namespace,
                    s.name,
                    first.file.display(),
                    first.document
                ),
            });
        }
    }
}

fn check_duplicates(manifests: &[Manifest], errors: &mut Vec<LoadError>) {
    let mut seen: BTreeMap<(&str, &str, &str), &Manifest> = BTreeMap::new();
    for m in manifests {
        let key = (
            m.resource.kind(),
            m.resource.namespace().unwrap_or(""),
            m.resource.name(),
        );
        if let Some(first) = seen.get(&key) {
            errors.push(LoadError {
                file: m.file.clone(),
                document: Some(m.document),
                message: format!(
                    "{} {}/{} is defined twice (first in {}, document {}); rename or remove one",
                    key.0,
                    key.1,
                    key.2,
                    first.file.display(),
                    first.document
                ),
            });
        } else {
            seen.insert(key, m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> (Vec<Manifest>, Vec<LoadError>) {
        let (m, _, e) = load_all_str(text);
        (m, e)
    }

    fn load_all_str(text: &str) -> (Vec<Manifest>, Vec<SecretManifest>, Vec<LoadError>) {
        let mut m = Vec::new();
        let mut s = Vec::new();
        let mut e = Vec::new();
        load_text(Path::new("x.yaml"), text, &mut m, &mut s, &mut e);
        check_duplicates(&m, &mut e);
        check_duplicate_secrets(&s, &mut e);
        (m, s, e)
    }

    #[test]
    fn secrets_are_read_with_string_data_over_data() {
        let (m, s, e) = load_all_str(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\n\
             data: {user: bGVkZ2Vy, password: b2xk}\nstringData: {password: hunter2}\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: shop}\n",
        );
        assert!(e.is_empty() && m.is_empty(), "{e:?}");
        assert_eq!(
            (s[0].namespace.as_str(), s[0].name.as_str()),
            ("default", "creds")
        );
        assert_eq!(s[0].data["user"], b"ledger");
        assert_eq!(s[0].data["password"], b"hunter2");
        assert_eq!((s[1].namespace.as_str(), s[1].data.len()), ("shop", 0));

        let (_, _, e) = load_all_str(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\ndata: {k: '%%%'}\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata: {namespace: x}\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata: {name: b}\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata: {name: b}\n",
        );
        let text: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(
            text[0].starts_with("x.yaml, document 1: v1/Secret is malformed"),
            "{text:?}"
        );
        assert!(text[0].contains("base64"), "{text:?}");
        assert_eq!(
            text[1],
            "x.yaml, document 2: v1/Secret has no metadata.name; name it"
        );
        assert!(
            text[2].contains("Secret default/b is defined twice (first in x.yaml, document 3)"),
            "{text:?}"
        );
    }

    #[test]
    fn multi_document_with_default_namespace() {
        let (m, e) = load_str(
            "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: default}\n---\n---\n\
             apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: other, namespace: shop}\n",
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].resource.namespace(), Some("default"));
        assert_eq!(m[1].resource.namespace(), Some("shop"));
        assert_eq!(m[1].document, 3);
    }

    #[test]
    fn errors_name_file_and_document() {
        let (_, e) = load_str("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n---\n- a list\n");
        let text: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert!(
            text[0].starts_with("x.yaml, document 1: v1/Pod is not a kind Ferry serves"),
            "{text:?}"
        );
        assert!(
            text[1].starts_with("x.yaml, document 2: is not a mapping"),
            "{text:?}"
        );
        let (_, e) = load_str("kind: [unclosed\n");
        assert!(e[0].to_string().contains("is not valid YAML"), "{}", e[0]);
    }

    #[test]
    fn every_unknown_field_is_reported_with_its_path() {
        let (m, e) = load_str(
            "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: t}\n\
             spec:\n  broker: default\n  bogusField: 1\n  subscriber:\n    uri: http://x\n    extra: 2\n",
        );
        assert!(m.is_empty());
        let text: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(
            text[0].starts_with("x.yaml, document 1: Trigger t: spec.bogusField: unknown field"),
            "{text:?}"
        );
        assert!(
            text[1]
                .starts_with("x.yaml, document 1: Trigger t: spec.subscriber.extra: unknown field"),
            "{text:?}"
        );
    }

    #[test]
    fn null_spec_and_status_are_pruned() {
        let (m, e) = load_str(
            "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: b}\nspec:\n  # only a comment\n\
             status:\n  annotations: null\n",
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn duplicates_are_reported() {
        let doc = "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: b}\n";
        let (_, e) = load_str(&format!("{doc}---\n{doc}"));
        assert_eq!(e.len(), 1);
        assert!(
            e[0].to_string()
                .contains("Broker default/b is defined twice (first in x.yaml, document 1)"),
            "{}",
            e[0]
        );
    }
}
