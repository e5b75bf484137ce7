//! The `ferry` command line.
//!
//! The manifest loader ([`manifest`]), `ferry validate` ([`validate`]), `ferry dev` ([`dev`]:
//! local mode — the embedded broker, the dispatcher and the revision runtime in one process),
//! `ferry send` ([`send`]), `ferry tail` ([`tail`]), `ferry trace` ([`trace`]) and `ferry replay`
//! ([`replay`]); the last three read the log through the dispatcher's
//! [`log_reader`](ferry_dispatcher::log_reader), and `ferry trace --dispatcher` asks a
//! dispatcher's journal endpoint instead. Each command's module but `dev`
//! holds its flags and a `command` function that runs it, prints, and returns its exit code;
//! the binary parses and dispatches. Failures are one [`Error`].

#![forbid(unsafe_code)]

use std::io::Write;

pub mod dev;
pub mod error;
pub mod manifest;
pub mod replay;
pub mod send;
pub mod tail;
pub mod trace;
pub mod validate;

pub use error::{Error, Result};

/// How a command prints its result (`-o`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A table and one line per problem.
    Table,
    /// A JSON document for scripts.
    Json,
}

/// Writes `text` to stdout as it is.
///
/// # Errors
/// [`Error::Output`]: stdout is closed.
pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    Ok(out.flush()?)
}

/// Writes `value` to stdout as indented JSON and a newline.
///
/// # Errors
/// [`Error::Output`]: stdout is closed.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::from)?;
    print(&(text + "\n"))
}

/// Formats rows under a header as aligned columns (two spaces apart), one line each.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| visible_len(h)).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(visible_len(cell));
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 < widths.len() {
                out.push_str(cell);
                out.push_str(&" ".repeat(widths[i] - visible_len(cell) + 2));
            } else {
                out.push_str(cell);
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// Characters a terminal shows: ANSI colour sequences (`ESC [ … m`) take no room.
fn visible_len(text: &str) -> usize {
    let mut len = 0;
    let mut in_escape = false;
    for c in text.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (false, _) => len += 1,
            (true, 'm') => in_escape = false,
            (true, _) => {}
        }
    }
    len
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_aligns_columns_ignoring_colour() {
        let rows = vec![
            vec![
                "Broker".to_owned(),
                "\x1b[32mTrue\x1b[0m".to_owned(),
                "x".to_owned(),
            ],
            vec!["Trigger".to_owned(), "False".to_owned(), "y".to_owned()],
        ];
        let text = super::table(&["KIND", "READY", "URL"], &rows);
        let plain: Vec<String> = text
            .lines()
            .map(|l| l.replace("\x1b[32m", "").replace("\x1b[0m", ""))
            .collect();
        assert_eq!(
            plain,
            [
                "KIND     READY  URL",
                "Broker   True   x",
                "Trigger  False  y"
            ]
        );
    }
}
