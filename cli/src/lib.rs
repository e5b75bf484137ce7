//! The `ferry` command line.
//!
//! The manifest loader ([`manifest`]), `ferry validate` ([`validate`]), `ferry dev` ([`dev`]:
//! local mode — the embedded broker, the dispatcher and the revision runtime in one process),
//! `ferry send` ([`send`]), `ferry tail` ([`tail`]), `ferry trace` ([`trace`]) and `ferry replay`
//! ([`replay`]).

#![forbid(unsafe_code)]

pub mod dev;
pub mod manifest;
pub mod replay;
pub mod send;
pub mod tail;
pub mod trace;
pub mod validate;

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
