//! Field-path errors for validation: every error names the field and says how to fix it.
//!
//! Validation functions take a [`Path`] to the value they check and push into a shared
//! [`FieldErrors`], so one pass reports every problem in a manifest instead of the first one.

use std::fmt;

/// A JSON-path-like location in a resource, e.g. `spec.filters[0].exact`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path(String);

impl Path {
    /// A path starting at `root` (e.g. `spec`).
    pub fn root(root: &str) -> Self {
        Path(root.to_owned())
    }

    /// The path of a named child field.
    pub fn field(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Path(name.to_owned())
        } else {
            Path(format!("{}.{name}", self.0))
        }
    }

    /// The path of a list element.
    pub fn index(&self, i: usize) -> Self {
        Path(format!("{}[{i}]", self.0))
    }

    /// The path of a map entry.
    pub fn key(&self, key: &str) -> Self {
        Path(format!("{}[{key:?}]", self.0))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One invalid field: where, what is wrong, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the offending field, e.g. `spec.delivery.retry`.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}; {}", self.path, self.message, self.fix)
    }
}

/// All the errors found in one resource, in the order they were found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    /// Records an error at `path`.
    pub fn push(&mut self, path: &Path, message: impl Into<String>, fix: impl Into<String>) {
        self.0.push(FieldError {
            path: path.to_string(),
            message: message.into(),
            fix: fix.into(),
        });
    }

    /// `true` when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The recorded errors.
    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    /// `Ok(())` when empty, the errors otherwise.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldErrors {}

/// What validation depends on besides the manifest: the cluster's settings that make a field
/// allowed or not (Knative's webhook reads them from its ConfigMaps).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// Knative Serving's `config-features` flags.
    pub features: crate::serving::features::Features,
}

/// A resource (or part of one) that can check itself.
pub trait Validate {
    /// Pushes every problem found under `path` into `errs`, with the settings in `cx`.
    fn validate_at(&self, cx: &Context, path: &Path, errs: &mut FieldErrors);

    /// Validates from the resource root with the default settings and returns all errors at
    /// once.
    ///
    /// # Errors
    /// Every invalid field, each with its path and a fix.
    fn validate(&self) -> Result<(), FieldErrors> {
        self.validate_in(&Context::default())
    }

    /// Validates from the resource root with the settings in `cx`.
    ///
    /// # Errors
    /// Every invalid field, each with its path and a fix.
    fn validate_in(&self, cx: &Context) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::default();
        self.validate_at(cx, &Path::root(""), &mut errs);
        errs.into_result()
    }
}

/// Fields Ferry accepts in a manifest (because Knative has them) but does not act on.
///
/// DESIGN.md: a field Ferry does not support is never silently ignored; the operator turns
/// each entry into `Ready=False` with reason [`UNSUPPORTED_FIELD_REASON`], and `ferry dev`
/// refuses to start.
pub trait Unsupported {
    /// The paths of fields that are set but not supported, with a reason each.
    fn unsupported_fields(&self) -> Vec<FieldError>;
}

/// Condition reason used when a resource sets a field Ferry does not support.
pub const UNSUPPORTED_FIELD_REASON: &str = "UnsupportedField";

/// Reads an enum-valued annotation or label `key` from `map`: the default when absent, the
/// parsed value when valid, and `Err(raw)` when present but not parseable (the caller reports it).
pub(crate) fn metadata_choice<'a, T: Default>(
    map: Option<&'a std::collections::BTreeMap<String, String>>,
    key: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, &'a str> {
    match map.and_then(|m| m.get(key)) {
        None => Ok(T::default()),
        Some(raw) => parse(raw).ok_or(raw.as_str()),
    }
}

/// Records an "unsupported" entry for a field that is set.
pub(crate) fn unsupported(out: &mut Vec<FieldError>, path: &Path, why: &str) {
    out.push(FieldError {
        path: path.to_string(),
        message: "is not supported by Ferry".to_owned(),
        fix: why.to_owned(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_messages() {
        let p = Path::root("spec")
            .field("filters")
            .index(2)
            .field("exact")
            .key("type");
        assert_eq!(p.as_str(), "spec.filters[2].exact[\"type\"]");
        assert_eq!(Path::root("").field("spec").as_str(), "spec");
        let mut errs = FieldErrors::default();
        assert!(errs.clone().into_result().is_ok());
        errs.push(
            &Path::root("spec").field("retry"),
            "must be ≥ 0 (got -1)",
            "set 0 or more",
        );
        errs.push(
            &Path::root("spec").field("broker"),
            "is empty",
            "name a Broker",
        );
        assert_eq!(
            errs.to_string(),
            "spec.retry: must be ≥ 0 (got -1); set 0 or more\nspec.broker: is empty; name a Broker"
        );
        assert_eq!(errs.errors().len(), 2);
    }
}
