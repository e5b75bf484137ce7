//! Round-trip and rejection tests over the manifests in `tests/fixtures/`.
//!
//! `valid/`: every manifest parses into its typed kind, validates, serializes back without losing
//! a field, and passes the CRD's CEL rules. `invalid/`: every manifest fails with each message
//! named in its `# expect:` lines (at parse time or validation time), and the CRD's CEL rules
//! reject it with each message in its `# cel:` lines.

use std::path::{Path, PathBuf};

use ferry_api::crds;
use ferry_api::resource::Resource;
use serde_json::Value;

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

fn load(path: &Path) -> (String, Value) {
    let text = std::fs::read_to_string(path).expect("fixture readable");
    let value: Value =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (text, value)
}

/// Parses, validates and serializes back a manifest of any kind.
fn check_kind(value: &Value) -> Result<Value, String> {
    let resource = Resource::from_value(value.clone()).map_err(|e| e.to_string())?;
    resource.validate().map_err(|e| e.to_string())?;
    Ok(resource.to_value())
}

/// Runs the CEL rules of the kind's CRD against the object.
fn cel_errors(value: &Value) -> Vec<String> {
    let kind = value["kind"].as_str().expect("kind");
    let crd = crds::all()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"));
    let schema = serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("schema"),
    )
    .expect("schema serializes");
    match kube::core::cel::Validator::new().validate(&schema, value, None) {
        Ok(()) => Vec::new(),
        Err(errs) => errs.into_vec().into_iter().map(|e| e.message).collect(),
    }
}

/// `true` when every field of `original` is present with the same value in `roundtrip`
/// (which may add defaults).
fn is_subset(original: &Value, roundtrip: &Value) -> bool {
    match (original, roundtrip) {
        (Value::Object(a), Value::Object(b)) => a
            .iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| is_subset(v, w))),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(v, w)| is_subset(v, w))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

#[test]
fn valid_fixtures_round_trip() {
    for path in fixtures("valid") {
        let (_, original) = load(&path);
        let back = check_kind(&original).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            is_subset(&original, &back),
            "{}: fields lost in round trip\noriginal: {original:#}\nback: {back:#}",
            path.display()
        );
        let cel = cel_errors(&original);
        assert!(
            cel.is_empty(),
            "{}: CEL rejected a valid object: {cel:?}",
            path.display()
        );
    }
}

#[test]
fn invalid_fixtures_fail_with_their_messages() {
    for path in fixtures("invalid") {
        let (text, value) = load(&path);
        let expects: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        let cels: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# cel: "))
            .collect();
        assert!(
            !expects.is_empty(),
            "{}: no `# expect:` line",
            path.display()
        );
        let err = check_kind(&value).expect_err(&format!("{} should be rejected", path.display()));
        for want in expects {
            assert!(
                err.contains(want),
                "{}: want {want:?} in:\n{err}",
                path.display()
            );
        }
        let got = cel_errors(&value);
        for want in cels {
            assert!(
                got.iter().any(|m| m.contains(want)),
                "{}: CEL should say {want:?}, said {got:?}",
                path.display()
            );
        }
    }
}

#[test]
fn immutable_fields_are_enforced_by_cel_on_update() {
    let (_, old) =
        load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid/trigger.yaml"));
    let mut new = old.clone();
    new["spec"]["broker"] = Value::from("other");
    let crd = crds::all()
        .into_iter()
        .find(|c| c.spec.names.kind == "Trigger")
        .expect("trigger crd");
    let schema = serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref()),
    )
    .expect("schema");
    let err = kube::core::cel::Validator::new()
        .validate(&schema, &new, Some(&old))
        .expect_err("broker changed");
    assert!(
        err.to_string().contains("spec.broker is immutable"),
        "{err}"
    );
    kube::core::cel::Validator::new()
        .validate(&schema, &old, Some(&old))
        .expect("unchanged trigger passes");
}
