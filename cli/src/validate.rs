//! `ferry validate`: check manifests the way the operator and `ferry dev` will, without running
//! anything.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use crate::manifest::{self, Manifest};

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
    }
}

/// Writes the outcome as a table followed by one line per problem.
pub fn print_table(outcome: &Outcome, out: &mut impl Write) -> std::io::Result<()> {
    let rows: Vec<[String; 4]> = outcome
        .resources
        .iter()
        .map(|r| {
            let status = match (r.errors.len(), r.unsupported.len()) {
                (0, 0) => "valid".to_owned(),
                (0, u) => format!("{u} unsupported"),
                (e, _) => format!("{e} invalid"),
            };
            [r.kind.clone(), r.namespace.clone(), r.name.clone(), status]
        })
        .collect();
    let header = ["KIND", "NAMESPACE", "NAME", "STATUS"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 4]| {
        format!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        )
    };
    if !rows.is_empty() {
        writeln!(out, "{}", line(header))?;
        for row in &rows {
            writeln!(out, "{}", line([&row[0], &row[1], &row[2], &row[3]]))?;
        }
    }
    for r in &outcome.resources {
        for e in &r.errors {
            writeln!(
                out,
                "error: {}, document {} ({} {}): {e}",
                r.file, r.document, r.kind, r.name
            )?;
        }
        for u in &r.unsupported {
            writeln!(
                out,
                "unsupported: {}, document {} ({} {}): {u}",
                r.file, r.document, r.kind, r.name
            )?;
        }
    }
    for e in &outcome.load_errors {
        writeln!(out, "error: {e}")?;
    }
    Ok(())
}
