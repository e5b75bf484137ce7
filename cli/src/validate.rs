//! `ferry validate`: check manifests the way the operator and `ferry dev` will, without running
//! anything.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use ferry_api::observability::{CONFIG_OBSERVABILITY, CONFIG_TRACING, Tracing};
use ferry_api::serving::domain::{CONFIG_DOMAIN, Domains};
use ferry_api::serving::features::{CONFIG_FEATURES, Features};
use ferry_api::validation::Context;

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
    /// Worth a look in Knative's settings ConfigMaps (a `config-features` value Knative
    /// ignores, a `config-tracing` that `config-observability` overrides).
    pub notes: Vec<String>,
}

/// Exit code of `ferry validate` when some manifest is invalid (Knative refuses it too) or
/// cannot be read.
pub const EXIT_INVALID: u8 = 1;
/// Exit code of `ferry validate` when every manifest is valid Knative but some set fields
/// Ferry does not support (clap uses 2 for bad arguments).
pub const EXIT_UNSUPPORTED: u8 = 3;

impl Outcome {
    /// `true` when every manifest parsed, validated, and uses only supported fields.
    pub fn ok(&self) -> bool {
        self.exit_code() == 0
    }

    /// 0 when every manifest is valid and supported; [`EXIT_INVALID`] when any is invalid or
    /// unreadable; [`EXIT_UNSUPPORTED`] when all are valid but some use what Ferry lacks.
    pub fn exit_code(&self) -> u8 {
        if !self.load_errors.is_empty() || self.resources.iter().any(|r| !r.errors.is_empty()) {
            EXIT_INVALID
        } else if self.resources.iter().any(|r| !r.unsupported.is_empty()) {
            EXIT_UNSUPPORTED
        } else {
            0
        }
    }
}

/// Runs `ferry validate`: prints the outcome; exits with [`Outcome::exit_code`].
pub fn command(validate: &Validate) -> ExitCode {
    let outcome = run(&validate.files);
    let printed = match validate.output {
        Output::Table => print_table(&outcome, &mut std::io::stdout().lock()),
        Output::Json => crate::print_json(&outcome),
    };
    match printed {
        Err(e) => e.report("validate"),
        Ok(()) => ExitCode::from(outcome.exit_code()),
    }
}

/// Loads and checks every manifest under `paths`, with Knative's settings ConfigMaps among them
/// (if any): `config-features` decides which flag-gated revision fields are allowed, as
/// Knative's webhook reads it from the cluster, and `config-domain`, `config-observability` and
/// `config-tracing` must be readable.
pub fn run(paths: &[PathBuf]) -> Outcome {
    let (manifests, config_maps, load_errors) = manifest::load_with_secrets(paths);
    let mut load_errors: Vec<String> = load_errors.iter().map(ToString::to_string).collect();
    let mut cx = Context::default();
    let mut notes = Vec::new();
    if let Some(data) = settings(&config_maps, CONFIG_FEATURES, &mut load_errors) {
        let (parsed, ignored) = Features::from_data(&data.text_data());
        cx.features = parsed;
        notes.extend(ignored.into_iter().map(|(key, value)| {
            format!(
                "{CONFIG_FEATURES} `{key}`: `{value}` is not enabled, allowed or disabled; the default is kept (Knative ignores it too)"
            )
        }));
    }
    if let Some(data) = settings(&config_maps, CONFIG_DOMAIN, &mut load_errors)
        && let Err(e) = Domains::from_data(&data.text_data())
    {
        load_errors.push(e);
    }
    let mut tracing_of = |name| {
        let found = settings(&config_maps, name, &mut load_errors)?;
        match Tracing::from_data(&found.text_data()) {
            Ok(tracing) => tracing,
            Err(e) => {
                load_errors.push(format!(
                    "{}, document {}: ConfigMap {}/{name}: {e}",
                    found.file.display(),
                    found.document,
                    found.namespace
                ));
                None
            }
        }
    };
    // Both checked; `ferry dev` follows config-observability when it sets tracing.
    if let (Some(_), Some(_)) = (tracing_of(CONFIG_OBSERVABILITY), tracing_of(CONFIG_TRACING)) {
        notes.push(format!(
            "{CONFIG_TRACING} is ignored: {CONFIG_OBSERVABILITY} sets tracing too and wins (Knative 1.18 and later read only {CONFIG_OBSERVABILITY}); remove {CONFIG_TRACING}"
        ));
    }
    Outcome {
        resources: manifests.iter().map(|m| report(m, &cx)).collect(),
        load_errors,
        notes,
    }
}

/// The one ConfigMap called `name` among `config_maps` (a second one is an error).
fn settings<'m>(
    config_maps: &'m [manifest::SecretManifest],
    name: &str,
    errors: &mut Vec<String>,
) -> Option<&'m manifest::SecretManifest> {
    let found: Vec<_> = config_maps
        .iter()
        .filter(|c| c.kind == "ConfigMap" && c.name == name)
        .collect();
    if let [_, second, ..] = found.as_slice() {
        errors.push(format!(
            "{}, document {}: a second {name} ConfigMap; keep one",
            second.file.display(),
            second.document
        ));
    }
    found.first().copied()
}

fn report(m: &Manifest, cx: &Context) -> Report {
    let r = &m.resource;
    Report {
        file: m.file.display().to_string(),
        document: m.document,
        kind: r.kind().to_owned(),
        namespace: r.namespace().unwrap_or("").to_owned(),
        name: r.name().to_owned(),
        errors: r
            .validate_in(cx)
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
                "unsupported by Ferry: {}, document {} ({} {}): {u}",
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
    lines.extend(outcome.notes.iter().map(|n| format!("warning: {n}")));
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
                (0, u) => format!("valid Knative, {u} unsupported by Ferry"),
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
