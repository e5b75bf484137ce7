//! Splits CESQL text into tokens. Keywords are recognised case-insensitively.

use std::iter::Peekable;
use std::str::CharIndices;

use super::ParseError;

/// A token and the byte offset where it starts.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Token {
    pub kind: Tok,
    pub position: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    /// A run of ASCII letters, digits and `_` that is not all digits and not a keyword.
    Word(String),
    /// A run of digits (sign handled by the parser).
    Digits(String),
    /// A quoted string, unescaped.
    Str(String),
    Keyword(Keyword),
    LParen,
    RParen,
    Comma,
    Star,
    Slash,
    Percent,
    Plus,
    Minus,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Keyword {
    And,
    Or,
    Xor,
    Not,
    Like,
    In,
    Exists,
    True,
    False,
}

fn keyword(word: &str) -> Option<Keyword> {
    Some(match word.to_ascii_uppercase().as_str() {
        "AND" => Keyword::And,
        "OR" => Keyword::Or,
        "XOR" => Keyword::Xor,
        "NOT" => Keyword::Not,
        "LIKE" => Keyword::Like,
        "IN" => Keyword::In,
        "EXISTS" => Keyword::Exists,
        "TRUE" => Keyword::True,
        "FALSE" => Keyword::False,
        _ => return None,
    })
}

pub(super) fn tokenize(text: &str) -> Result<Vec<Token>, ParseError> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(position, c)) = chars.peek() {
        let kind = match c {
            c if c.is_whitespace() => {
                chars.next();
                continue;
            }
            '\'' | '"' => string(&mut chars, position, c)?,
            c if c.is_ascii_alphanumeric() || c == '_' => word(&mut chars),
            c => operator(&mut chars, position, c)?,
        };
        out.push(Token { kind, position });
    }
    Ok(out)
}

/// The rest of the text, with each character's byte offset.
type Chars<'a> = Peekable<CharIndices<'a>>;

/// Consumes the next character if it is `want`.
fn next_is(chars: &mut Chars<'_>, want: char) -> bool {
    chars.next_if(|&(_, c)| c == want).is_some()
}

/// A punctuation or comparison token starting with `c` (the next character) at `position`.
fn operator(chars: &mut Chars<'_>, position: usize, c: char) -> Result<Tok, ParseError> {
    chars.next();
    // The guards consume the second character of `!=`, `<=`, `<>` and `>=`, in this order.
    Ok(match c {
        '(' => Tok::LParen,
        ')' => Tok::RParen,
        ',' => Tok::Comma,
        '*' => Tok::Star,
        '/' => Tok::Slash,
        '%' => Tok::Percent,
        '+' => Tok::Plus,
        '-' => Tok::Minus,
        '=' => Tok::Eq,
        '!' if next_is(chars, '=') => Tok::NotEq,
        '!' => {
            return Err(ParseError {
                position,
                message: "expected `=` after `!`".into(),
            });
        }
        '<' if next_is(chars, '=') => Tok::LtEq,
        '<' if next_is(chars, '>') => Tok::NotEq,
        '<' => Tok::Lt,
        '>' if next_is(chars, '=') => Tok::GtEq,
        '>' => Tok::Gt,
        other => {
            return Err(ParseError {
                position,
                message: format!("unexpected character `{other}`"),
            });
        }
    })
}

/// A string quoted with `quote` (the next character) at `position`, unescaped.
fn string(chars: &mut Chars<'_>, position: usize, quote: char) -> Result<Tok, ParseError> {
    chars.next();
    let mut value = String::new();
    while let Some((_, ch)) = chars.next() {
        if ch == '\\' {
            // `\<quote>` and `\\` are escapes; any other backslash is kept, so that LIKE
            // patterns can escape `%` and `_` (`'a\%'`).
            match chars.next() {
                Some((_, e)) if e == quote || e == '\\' => value.push(e),
                Some((_, e)) => {
                    value.push('\\');
                    value.push(e);
                }
                None => break,
            }
        } else if ch == quote {
            // A doubled quote stands for one quote character.
            if !next_is(chars, quote) {
                return Ok(Tok::Str(value));
            }
            value.push(quote);
        } else {
            value.push(ch);
        }
    }
    Err(ParseError {
        position,
        message: format!("unterminated string starting with {quote}"),
    })
}

/// A run of ASCII letters, digits and `_`: digits, a keyword or a word.
fn word(chars: &mut Chars<'_>) -> Tok {
    let mut word = String::new();
    while let Some((_, ch)) = chars.next_if(|&(_, ch)| ch.is_ascii_alphanumeric() || ch == '_') {
        word.push(ch);
    }
    if word.bytes().all(|b| b.is_ascii_digit()) {
        Tok::Digits(word)
    } else if let Some(k) = keyword(&word) {
        Tok::Keyword(k)
    } else {
        Tok::Word(word)
    }
}
