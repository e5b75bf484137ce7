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
