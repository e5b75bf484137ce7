//! `ferry validate`: check manifests the way the operator and `ferry dev` will, without running
//! anything.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use crate::manifest::{self, Manifest};
use crate::{Output, Result};

/// `ferry validate`'s flags.
#[derive(clap::Args, Clone, Debug)]
pub struct Validate {
    /// A manifest file, or a directory of *.yaml / *.yml files (repeatable).
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// The result for one resource.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Source file.
    pub file: String,
    /// 1-based document in the file.
    pub document: usize,
    /// Kind.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Invalid fields, each with a fix.
    pub errors: Vec<String>,
    /// Fields that are set but that Ferry does not support.
    pub unsupported: Vec<String>,
    /// Worth a look but not invalid (an autoscaling annotation Knative does not read).
    pub warnings: Vec<String>,
}

/// What `ferry validate` found: per-resource reports and documents that did not parse.
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// One entry per parsed resource.
    pub resources: Vec<Report>,
    /// Documents that did not parse (file, document and reason).
    pub load_errors: Vec<String>,
}

impl Outcome {
    /// `true` when every manifest parsed, validated, and uses only supported fields.
    pub fn ok(&self) -> bool {
        self.load_errors.is_empty()
            && self
                .resources
                .iter()
                .all(|r| r.errors.is_empty() && r.unsupported.is_empty())
    }
}

/// Runs `ferry validate`: prints the outcome; exit 0 when every manifest is valid and
/// supported, 1 otherwise.
pub fn command(validate: &Validate) -> ExitCode {
    let outcome = run(&validate.files);
    let printed = match validate.output {
        Output::Table => print_table(&outcome, &mut std::io::stdout().lock()),
        Output::Json => crate::print_json(&outcome),
    };
    match printed {
        Err(e) => e.report("validate"),
        Ok(()) if outcome.ok() => ExitCode::SUCCESS,
        Ok(()) => ExitCode::from(1),
    }
}

/// Loads and checks every manifest under `paths`.
pub fn run(paths: &[PathBuf]) -> Outcome {
    let (manifests, load_errors) = manifest::load(paths);
    Outcome {
        resources: manifests.iter().map(report).collect(),
        load_errors: load_errors.iter().map(ToString::to_string).collect(),
    }
}

fn report(m: &Manifest) -> Report {
    let r = &m.resource;
    Report {
        file: m.file.display().to_string(),
        document: m.document,
        kind: r.kind().to_owned(),
        namespace: r.namespace().unwrap_or("").to_owned(),
        name: r.name().to_owned(),
        errors: r
            .validate()
            .err()
            .map(|e| e.errors().iter().map(ToString::to_string).collect())
            .unwrap_or_default(),
        unsupported: r
            .unsupported_fields()
            .iter()
            .map(ToString::to_string)
            .collect(),
        warnings: r.warnings().iter().map(ToString::to_string).collect(),
    }
}

/// Every problem of the outcome (and every warning), one line each, naming file, document and
/// object.
pub fn problems(outcome: &Outcome) -> Vec<String> {
    let mut lines = Vec::new();
    for r in &outcome.resources {
        for e in &r.errors {
            lines.push(format!(
                "error: {}, document {} ({} {}): {e}",
                r.file, r.document, r.kind, r.name
            ));
        }
        for u in &r.unsupported {
            lines.push(format!(
                "unsupported: {}, document {} ({} {}): {u}",
                r.file, r.document, r.kind, r.name
            ));
        }
        for w in &r.warnings {
            lines.push(format!(
                "warning: {}, document {} ({} {}): {w}",
                r.file, r.document, r.kind, r.name
            ));
        }
    }
    lines.extend(outcome.load_errors.iter().map(|e| format!("error: {e}")));
    lines
}

/// Writes the outcome as a table followed by one line per problem.
///
/// # Errors
/// [`crate::Error::Output`]: `out` cannot be written.
pub fn print_table(outcome: &Outcome, out: &mut impl Write) -> Result<()> {
    let rows: Vec<Vec<String>> = outcome
        .resources
        .iter()
        .map(|r| {
            let status = match (r.errors.len(), r.unsupported.len()) {
                (0, 0) => "valid".to_owned(),
                (0, u) => format!("{u} unsupported"),
                (e, _) => format!("{e} invalid"),
            };
            vec![r.kind.clone(), r.namespace.clone(), r.name.clone(), status]
        })
        .collect();
    if !rows.is_empty() {
        write!(
            out,
            "{}",
            crate::table(&["KIND", "NAMESPACE", "NAME", "STATUS"], &rows)
        )?;
    }
    for line in problems(outcome) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}
