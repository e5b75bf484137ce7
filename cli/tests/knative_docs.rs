//! Every manifest of Knative's own docs and repositories (`../shared/knative-docs` beside the
//! repository, as CI checks it out) against the outcome recorded in `knative_docs/expected.tsv`:
//! accepted, or refused / unsupported with the first problem's path and message, and the Knative
//! source that justifies each refusal. A change in any outcome fails the test.
//!
//! After a deliberate change, rewrite the outcome columns (the justification column is kept) with
//! `FERRY_BLESS=1 cargo nextest run -p ferry --test knative_docs`, and review the diff.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferry::validate;

const EXPECTED: &str = "tests/knative_docs/expected.tsv";
const HEADER: &str = "file\toutcome\tfirst problem\tjustification (Knative source)";

/// The documents: `../shared/knative-docs` relative to the repository root.
fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/knative-docs")
}

/// Every `.yaml` file under `dir`, as paths relative to it, sorted.
fn documents(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readable folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                let rel = path.strip_prefix(dir).expect("under dir");
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// `(outcome, first problem)` of one file, as `ferry validate` reports it.
fn outcome(path: &Path) -> (&'static str, String) {
    let o = validate::run(&[path.to_path_buf()]);
    let prefix = format!("{}, document 1: ", path.display());
    let strip = |s: &str| s.replace(&prefix, "").replace('\t', " ");
    if let Some(e) = o.load_errors.first() {
        return ("refused", strip(e));
    }
    let r = o.resources.first().expect("one document per file");
    if let Some(e) = r.errors.first() {
        ("refused", strip(e))
    } else if let Some(u) = r.unsupported.first() {
        ("unsupported", strip(u))
    } else {
        (
            "accepted",
            r.warnings.first().map(|w| strip(w)).unwrap_or_default(),
        )
    }
}

/// `file → (outcome, first problem, justification)` from the recorded file.
fn expected(text: &str) -> BTreeMap<String, (String, String, String)> {
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut cols = line.splitn(4, '\t').map(str::to_owned);
            let mut next = || cols.next().unwrap_or_default();
            (next(), (next(), next(), next()))
        })
        .collect()
}

#[test]
fn every_knative_document_has_its_recorded_outcome() {
    let dir = docs_dir();
    assert!(
        dir.is_dir(),
        "{} is missing: this test needs Knative's documents beside the repository \
         (../shared/knative-docs from the repository root); check them out there",
        dir.display()
    );
    let expected_path = Path::new(env!("CARGO_MANIFEST_DIR")).join(EXPECTED);
    let recorded = expected(&std::fs::read_to_string(&expected_path).unwrap_or_default());
    let files = documents(&dir);
    assert!(files.len() >= 305, "only {} documents found", files.len());

    let mut actual = Vec::new();
    let mut mismatches = Vec::new();
    for file in &files {
        let (got, first) = outcome(&dir.join(file));
        let justification = recorded.get(file).map(|r| r.2.clone()).unwrap_or_default();
        match recorded.get(file) {
            None => mismatches.push(format!("{file}: not recorded (now {got}: {first})")),
            Some((want, want_first, _)) if want != got || *want_first != first => mismatches.push(
                format!("{file}:\n  recorded {want}: {want_first}\n  now      {got}: {first}"),
            ),
            Some(_) => {}
        }
        if got != "accepted" && justification.is_empty() {
            mismatches.push(format!(
                "{file}: {got} without a recorded Knative justification"
            ));
        }
        actual.push(format!("{file}\t{got}\t{first}\t{justification}"));
    }
    for file in recorded.keys().filter(|f| !files.contains(f)) {
        mismatches.push(format!(
            "{file}: recorded but no longer in {}",
            dir.display()
        ));
    }

    if std::env::var_os("FERRY_BLESS").is_some() {
        let text = format!("{HEADER}\n{}\n", actual.join("\n"));
        std::fs::write(&expected_path, text).expect("write expected.tsv");
        return;
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} Knative documents changed outcome:\n{}",
        mismatches.len(),
        files.len(),
        mismatches.join("\n")
    );
}

/// A `config-features` ConfigMap with every flag Knative has turned on.
fn every_flag_enabled(dir: &Path) -> PathBuf {
    use ferry_api::serving::features::*;
    let mut keys: Vec<&str> = POD_FIELD_FLAGS.iter().map(|(_, flag)| *flag).collect();
    keys.extend(VOLUME_SOURCE_FLAGS.iter().map(|(_, flag)| *flag));
    keys.extend([
        MULTI_CONTAINER,
        MULTI_CONTAINER_PROBING,
        FIELD_REF,
        ADD_CAPABILITIES,
        PERSISTENT_VOLUME_WRITE,
        MOUNT_PROPAGATION,
    ]);
    let data: String = keys.iter().map(|k| format!("  {k}: enabled\n")).collect();
    let path = dir.join("config-features.yaml");
    std::fs::write(
        &path,
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-features\n  namespace: knative-serving\ndata:\n{data}"),
    )
    .expect("write config-features");
    path
}

#[test]
fn documents_behind_a_disabled_flag_pass_with_it_enabled() {
    let dir = docs_dir();
    let expected_path = Path::new(env!("CARGO_MANIFEST_DIR")).join(EXPECTED);
    let recorded = expected(&std::fs::read_to_string(&expected_path).expect("expected.tsv"));
    let gated: Vec<&String> = recorded
        .iter()
        .filter(|(_, (_, first, _))| first.contains("in the config-features ConfigMap"))
        .map(|(file, _)| file)
        .collect();
    // Every flag documented in Knative's feature-flags page has at least one document here.
    assert!(
        gated.len() >= 20,
        "only {} flag-gated documents",
        gated.len()
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let features = every_flag_enabled(tmp.path());
    let mut still = Vec::new();
    for file in gated {
        let o = validate::run(&[dir.join(file), features.clone()]);
        let r = &o.resources[0];
        if !o.load_errors.is_empty() || !r.errors.is_empty() || !r.unsupported.is_empty() {
            still.push(format!(
                "{file}: {:?} {:?} {:?}",
                o.load_errors, r.errors, r.unsupported
            ));
        }
    }
    assert!(
        still.is_empty(),
        "refused with every flag enabled:\n{}",
        still.join("\n")
    );
}
