//! Log set-up: `tracing` events to stderr, filtered by `RUST_LOG` (default `info`), with
//! terminal colours only when stderr is a terminal, so logs collected from pods and files are
//! plain text. `FERRY_LOG_FORMAT=json` writes one JSON object per line instead (for log
//! pipelines that parse fields).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The variable that picks the format: `text` (the default) or `json`.
pub const FORMAT_VAR: &str = "FERRY_LOG_FORMAT";

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Human-readable lines; coloured on a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

impl Format {
    /// Reads [`FORMAT_VAR`]'s value (`None`: unset).
    ///
    /// # Errors
    /// A value that is not `text` or `json`, with what to write instead.
    pub fn parse(value: Option<&str>) -> Result<Format, String> {
        match value.map(str::trim) {
            None | Some("") => Ok(Format::Text),
            Some(v) if v.eq_ignore_ascii_case("text") => Ok(Format::Text),
            Some(v) if v.eq_ignore_ascii_case("json") => Ok(Format::Json),
            Some(v) => Err(format!(
                "{FORMAT_VAR}={v:?} is not a log format; use text or json"
            )),
        }
    }
}

/// Installs the process's `tracing` subscriber. Call once, first thing in `main`.
///
/// `default_filter` applies when `RUST_LOG` is unset or unreadable (e.g. `"info"`). A bad
/// [`FORMAT_VAR`] keeps text and says so in the first log line.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let (format, problem) = match Format::parse(std::env::var(FORMAT_VAR).ok().as_deref()) {
        Ok(f) => (f, None),
        Err(e) => (Format::Text, Some(e)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // `try_init`: a second call (tests that start several components) keeps the first.
    let _ = match format {
        Format::Json => builder.json().try_init(),
        Format::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    if let Some(problem) = problem {
        tracing::warn!("{problem}; writing text");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_a_bad_one_says_what_to_write() {
        assert_eq!(Format::parse(None), Ok(Format::Text));
        assert_eq!(Format::parse(Some("JSON")), Ok(Format::Json));
        assert_eq!(Format::parse(Some(" text ")), Ok(Format::Text));
        let e = Format::parse(Some("logfmt")).unwrap_err();
        assert!(e.contains("use text or json"), "{e}");
    }
}
