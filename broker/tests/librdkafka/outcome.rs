//! What one run of librdkafka's `test-runner` for one test number came to: its summary table
//! read back, and one pure `decide` from that table and how the process ended.

use std::collections::BTreeMap;
use std::fmt;

/// One row of `test-runner`'s summary: a test entry (a number may have several, e.g.
/// `0031_get_offsets` and `0031_get_offsets_mock`), its state and the reason it printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    /// `PASSED`, `FAILED`, `SKIPPED`, `RUNNING` or `DNS` (did not start).
    pub state: String,
    /// The failure or skip reason, empty when none was printed.
    pub reason: String,
}

/// How the `test-runner` process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this code (`None`: killed by a signal it did not ask for).
    Code(Option<i32>),
    /// Still running at the per-test timeout, and killed.
    TimedOut { secs: u64 },
}

/// The result for one test number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every entry that ran passed (entries the runner skipped are named in the detail).
    Passed { detail: String },
    /// `test-runner` skipped every entry itself (broker version, scenario, missing tooling).
    Skipped { reason: String },
    /// An entry failed, or the runner crashed or timed out.
    Failed { reason: String },
    /// Listed in `not_applicable.tsv`: not run, or failed as listed.
    NotApplicable { reason: String },
}

impl Outcome {
    /// Whether this result fails the suite.
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failed { .. })
    }

    /// The result column: `pass`, `fail`, `skipped` or `n/a`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Passed { .. } => "pass",
            Outcome::Skipped { .. } => "skipped",
            Outcome::Failed { .. } => "fail",
            Outcome::NotApplicable { .. } => "n/a",
        }
    }

    /// The reason column.
    pub fn detail(&self) -> &str {
        match self {
            Outcome::Passed { detail } => detail,
            Outcome::Skipped { reason }
            | Outcome::Failed { reason }
            | Outcome::NotApplicable { reason } => reason,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.label())?;
        if !self.detail().is_empty() {
            write!(f, ": {}", self.detail())?;
        }
        Ok(())
    }
}

/// Removes terminal colour codes (`ESC [ ... m`), which `test-runner` always prints.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The summary rows in `test-runner`'s output (after the `SUMMARY` heading), `<MAIN>` left
/// out. Rows look like `| 0001_multiobj | PASSED | 1.234s | reason`.
pub fn summary(output: &str) -> Vec<Entry> {
    let text = strip_ansi(output);
    let Some(start) = text.rfind(" SUMMARY\n") else {
        return Vec::new();
    };
    text[start..]
        .lines()
        .filter(|line| line.starts_with('|'))
        .filter_map(|line| {
            let mut cells = line.splitn(5, '|').skip(1).map(str::trim);
            let name = cells.next()?;
            let state = cells.next()?;
            let _duration = cells.next()?;
            let reason = cells.next().unwrap_or_default();
            (name != "<MAIN>" && !name.is_empty()).then(|| Entry {
                name: name.to_owned(),
                state: state.to_owned(),
                reason: reason.to_owned(),
            })
        })
        .collect()
}

/// The entries of test `number` in `test-runner`'s JSON report (`TEST_REPORT`), which it
/// writes and closes even when it aborts afterwards; states only, no reasons.
pub fn report(json: &str, number: &str) -> Vec<Entry> {
    let Ok(report) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    let prefix = format!("{number}_");
    report["tests"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(name, _)| name.starts_with(&prefix))
        .map(|(name, test)| Entry {
            name: name.clone(),
            state: test["state"].as_str().unwrap_or("DNS").to_owned(),
            reason: String::new(),
        })
        .collect()
}

/// The entries of a run: the summary rows when `test-runner` printed them (its stdout is
/// lost when it aborts at the end of a failed run), else the JSON report's states with the
/// reasons of the failures it reported as they happened.
pub fn entries(output: &str, json: &str, number: &str) -> Vec<Entry> {
    let rows = summary(output);
    if !rows.is_empty() {
        return rows;
    }
    let failed = failures(output);
    let mut rows = report(json, number);
    for row in &mut rows {
        if let Some(failure) = failed.iter().find(|f| f.name == row.name) {
            *row = failure.clone();
        }
    }
    if rows.is_empty() { failed } else { rows }
}

/// The failures `test-runner` reported as they happened — a line `### Test "NAME (subtest)"
/// failed at ...: ###` and the message on the next — for runs that ended (often aborted)
/// before printing the summary. The first per entry; `<MAIN>` only when nothing else failed.
pub fn failures(output: &str) -> Vec<Entry> {
    let text = strip_ansi(output);
    let lines: Vec<&str> = text.lines().collect();
    let mut found: Vec<Entry> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.strip_prefix("### Test \"") else {
            continue;
        };
        let Some((quoted, _)) = rest.split_once('"') else {
            continue;
        };
        let (name, subtest) = quoted.split_once(" (").unwrap_or((quoted, ""));
        let subtest = subtest.trim_end_matches(')');
        let message = lines.get(i + 1).map_or("", |m| m.trim());
        let reason = if subtest.is_empty() {
            message.to_owned()
        } else {
            format!("{subtest}: {message}")
        };
        if !found.iter().any(|e| e.name == name) {
            found.push(Entry {
                name: name.to_owned(),
                state: "FAILED".to_owned(),
                reason,
            });
        }
    }
    if found.iter().any(|e| e.name != "<MAIN>") {
        found.retain(|e| e.name != "<MAIN>");
    }
    found
}

/// A test listed in `not_applicable.tsv`: why it cannot apply, and the failure text that
/// shows it ran into that (`None`: the number is not run at all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub reason: String,
    pub expect: Option<String>,
}

/// Decides the result for test `number` from its summary rows (over every scenario it ran
/// in), how the process ended, its last lines (for crashes) and the not-applicable list: a
/// failure of a listed number or entry whose text contains the listed `expect` is reported
/// as not applicable; any other failure fails.
pub fn decide(
    number: &str,
    entries: &[Entry],
    exit: Exit,
    tail: &str,
    listed: &BTreeMap<String, Listed>,
) -> Outcome {
    if let Exit::TimedOut { secs } = exit {
        return Outcome::Failed {
            reason: format!("timed out after {secs} s (killed); last output: {tail}"),
        };
    }
    let mut excused = Vec::new();
    for entry in entries
        .iter()
        .filter(|e| e.state == "FAILED" || e.state == "RUNNING")
    {
        let why = if entry.reason.is_empty() {
            format!("{} {}", entry.name, entry.state)
        } else {
            format!("{}: {}", entry.name, entry.reason)
        };
        match listed.get(&entry.name).or_else(|| listed.get(number)) {
            Some(Listed {
                reason,
                expect: Some(expect),
            }) if why.contains(expect.as_str()) => {
                excused.push(format!("{reason} (failed as expected: {why})"));
            }
            _ => return Outcome::Failed { reason: why },
        }
    }
    if entries.is_empty() || (excused.is_empty() && exit != Exit::Code(Some(0))) {
        return Outcome::Failed {
            reason: format!(
                "test-runner ended with {exit:?} and no failed test; last output: {tail}"
            ),
        };
    }
    let mut notes: Vec<String> = entries
        .iter()
        .filter(|e| e.state == "SKIPPED" || e.state == "DNS")
        .map(|e| {
            if e.reason.is_empty() {
                format!("{} {}", e.name, e.state.to_lowercase())
            } else {
                format!("{} {}: {}", e.name, e.state.to_lowercase(), e.reason)
            }
        })
        .collect();
    let passed: Vec<&str> = entries
        .iter()
        .filter(|e| e.state == "PASSED")
        .map(|e| e.name.as_str())
        .collect();
    if !excused.is_empty() {
        if !passed.is_empty() {
            notes.push(format!("passed: {}", passed.join(", ")));
        }
        excused.extend(notes);
        Outcome::NotApplicable {
            reason: excused.join("; "),
        }
    } else if passed.is_empty() {
        Outcome::Skipped {
            reason: notes.join("; "),
        }
    } else {
        Outcome::Passed {
            detail: notes.join("; "),
        }
    }
}

/// Merges the rows of two scenario runs of one number: an entry that ran in either counts,
/// one that both skipped stays skipped.
pub fn merge(mut first: Vec<Entry>, second: Vec<Entry>) -> Vec<Entry> {
    for entry in second {
        match first.iter_mut().find(|e| e.name == entry.name) {
            Some(existing) if existing.state == "SKIPPED" => *existing = entry,
            Some(_) => {}
            None => first.push(entry),
        }
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\u{1b}[36m[0001_multiobj / 1.2s] stuff\u{1b}[0m\n\
        TEST 20261206 (bare, scenario default) SUMMARY\n\
        #==================================================================#\n\
        |\u{1b}[32m <MAIN>                                   |     PASSED |   9.000s \u{1b}[0m|\n\
        |\u{1b}[32m 0031_get_offsets                         |     PASSED |   2.500s \u{1b}[0m|\n\
        |\u{1b}[36m 0031_get_offsets_mock                    |    SKIPPED |   0.000s \u{1b}[0m|\u{1b}[36m no mock\u{1b}[0m\n\
        |\u{1b}[31m 0081_admin                               |     FAILED |   5.000s \u{1b}[0m|\u{1b}[31m 0081-admin.c:42: Expected offset 1, got 0\u{1b}[0m\n\
        #==================================================================#\n";

    fn entry(name: &str, state: &str, reason: &str) -> Entry {
        Entry {
            name: name.into(),
            state: state.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn reads_the_summary_rows_without_colours_or_main() {
        assert_eq!(
            summary(OUTPUT),
            [
                entry("0031_get_offsets", "PASSED", ""),
                entry("0031_get_offsets_mock", "SKIPPED", "no mock"),
                entry(
                    "0081_admin",
                    "FAILED",
                    "0081-admin.c:42: Expected offset 1, got 0"
                ),
            ]
        );
        assert!(summary("crashed before any summary").is_empty());
    }

    #[test]
    fn reads_failures_from_a_run_that_aborted_before_its_summary() {
        let output = "[0011_produce_batch / 3.6s] TEST FAILURE\n\
            ### Test \"0011_produce_batch (test_record_fail:629)\" failed at 0011.c:718: ###\n\
            Test assertion failed: \"invalid_record_fail_cnt == 10\": \n\
            ### Test \"<MAIN>\" failed at test.c:1946:test_wait_exit(): ###\n\
            3 thread(s) still active in librdkafka\n\
            test-runner: test.c:7702: test_fail0: Assertion `0' failed.\n";
        assert_eq!(
            failures(output),
            [entry(
                "0011_produce_batch",
                "FAILED",
                "test_record_fail:629: Test assertion failed: \"invalid_record_fail_cnt == 10\":"
            )]
        );
    }

    #[test]
    fn takes_states_from_the_json_report_and_reasons_from_the_failure_lines() {
        let json = r#"{ "id": "x", "tests": {"<MAIN>": {"name": "<MAIN>", "state": "PASSED"},
            "0001_multiobj": {"name": "0001_multiobj", "state": "SKIPPED"},
            "0045_a": {"name": "0045_a", "state": "PASSED", "report": [ ] },
            "0045_b": {"name": "0045_b", "state": "FAILED", "report": [ {"x": 1} ] }},
            "tests_run": 2 }"#;
        let output = "### Test \"0045_b\" failed at test.c:5257: ###\nKAFKA_PATH must be set\n";
        assert_eq!(
            entries(output, json, "0045"),
            [
                entry("0045_a", "PASSED", ""),
                entry("0045_b", "FAILED", "KAFKA_PATH must be set")
            ]
        );
        assert_eq!(entries(OUTPUT, json, "0031").len(), 3, "the summary wins");
    }

    #[test]
    fn decides_each_result() {
        let ok = Exit::Code(Some(0));
        let one = Exit::Code(Some(1));
        let passed = entry("0001_a", "PASSED", "");
        let skipped = entry("0001_b", "SKIPPED", "needs KAFKA_PATH");
        let failed = entry("0001_c", "FAILED", "boom");
        let txn = entry(
            "0001_txn",
            "FAILED",
            "init_transactions(): TRANSACTIONAL_ID",
        );
        let txn_local = entry("0001_txn_local", "FAILED", "TRANSACTIONAL_ID");
        let listed = BTreeMap::from([(
            "0001_txn".to_owned(),
            Listed {
                reason: "needs transactions".into(),
                expect: Some("TRANSACTIONAL_ID".into()),
            },
        )]);
        let cases: [(&str, Vec<Entry>, Exit, &str); 9] = [
            ("all passed", vec![passed.clone()], ok, "pass"),
            (
                "pass with a skip",
                vec![passed.clone(), skipped.clone()],
                ok,
                "pass",
            ),
            ("only skipped", vec![skipped.clone()], ok, "skipped"),
            (
                "one failed",
                vec![passed.clone(), failed.clone()],
                one,
                "fail",
            ),
            ("crash", vec![], Exit::Code(None), "fail"),
            (
                "timeout",
                vec![passed.clone()],
                Exit::TimedOut { secs: 5 },
                "fail",
            ),
            (
                "listed failure",
                vec![passed.clone(), txn.clone()],
                one,
                "n/a",
            ),
            (
                "listed and unlisted",
                vec![txn.clone(), failed],
                one,
                "fail",
            ),
            (
                "another entry's name prefix",
                vec![txn_local, txn],
                one,
                "fail",
            ),
        ];
        for (name, entries, exit, want) in cases {
            assert_eq!(
                decide("0001", &entries, exit, "", &listed).label(),
                want,
                "{name}"
            );
        }
        assert_eq!(
            decide("0001", &[skipped], ok, "", &listed).detail(),
            "0001_b skipped: needs KAFKA_PATH"
        );
    }

    #[test]
    fn a_scenario_run_replaces_a_skip_only() {
        let merged = merge(
            vec![
                entry("0045_a", "PASSED", ""),
                entry("0045_b", "SKIPPED", ""),
            ],
            vec![
                entry("0045_a", "SKIPPED", ""),
                entry("0045_b", "FAILED", "x"),
            ],
        );
        assert_eq!(
            merged,
            [
                entry("0045_a", "PASSED", ""),
                entry("0045_b", "FAILED", "x")
            ]
        );
    }
}
