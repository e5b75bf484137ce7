//! Splits CESQL text into tokens. Keywords are recognised case-insensitively.

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
    while let Some(&(pos, c)) = chars.peek() {
        let single = |kind| Token {
            kind,
            position: pos,
        };
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | ',' | '*' | '/' | '%' | '+' | '-' | '=' => {
                chars.next();
                out.push(single(match c {
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    ',' => Tok::Comma,
                    '*' => Tok::Star,
                    '/' => Tok::Slash,
                    '%' => Tok::Percent,
                    '+' => Tok::Plus,
                    '-' => Tok::Minus,
                    _ => Tok::Eq,
                }));
            }
            '!' => {
                chars.next();
                if chars.next_if(|&(_, c)| c == '=').is_none() {
                    return Err(ParseError {
                        position: pos,
                        message: "expected `=` after `!`".into(),
                    });
                }
                out.push(single(Tok::NotEq));
            }
            '<' => {
                chars.next();
                let kind = if chars.next_if(|&(_, c)| c == '=').is_some() {
                    Tok::LtEq
                } else if chars.next_if(|&(_, c)| c == '>').is_some() {
                    Tok::NotEq
                } else {
                    Tok::Lt
                };
                out.push(single(kind));
            }
            '>' => {
                chars.next();
                let kind = if chars.next_if(|&(_, c)| c == '=').is_some() {
                    Tok::GtEq
                } else {
                    Tok::Gt
                };
                out.push(single(kind));
            }
            '\'' | '"' => {
                chars.next();
                let mut value = String::new();
                let mut closed = false;
                while let Some((_, ch)) = chars.next() {
                    if ch == '\\' {
                        // `\<quote>` and `\\` are escapes; any other backslash is kept, so that
                        // LIKE patterns can escape `%` and `_` (`'a\%'`).
                        match chars.next() {
                            Some((_, e)) if e == c || e == '\\' => value.push(e),
                            Some((_, e)) => {
                                value.push('\\');
                                value.push(e);
                            }
                            None => break,
                        }
                    } else if ch == c {
                        // A doubled quote stands for one quote character.
                        if chars.next_if(|&(_, n)| n == c).is_some() {
                            value.push(c);
                        } else {
                            closed = true;
                            break;
                        }
                    } else {
                        value.push(ch);
                    }
                }
                if !closed {
                    return Err(ParseError {
                        position: pos,
                        message: format!("unterminated string starting with {c}"),
                    });
                }
                out.push(single(Tok::Str(value)));
            }
            c if c.is_ascii_alphanumeric() || c == '_' => {
                let mut word = String::new();
                while let Some((_, ch)) =
                    chars.next_if(|&(_, ch)| ch.is_ascii_alphanumeric() || ch == '_')
                {
                    word.push(ch);
                }
                let kind = if word.bytes().all(|b| b.is_ascii_digit()) {
                    Tok::Digits(word)
                } else if let Some(k) = keyword(&word) {
                    Tok::Keyword(k)
                } else {
                    Tok::Word(word)
                };
                out.push(single(kind));
            }
            other => {
                return Err(ParseError {
                    position: pos,
                    message: format!("unexpected character `{other}`"),
                });
            }
        }
    }
    Ok(out)
}
