//! CloudEvents SQL (CESQL) v1: the expression language of Trigger `filters[].cesql`.
//!
//! [`parse`] turns text into an [`Expression`]; [`Expression::evaluate`] runs it against an
//! event's attributes ([`AttributeSource`]). Both follow the CESQL v1 specification:
//!
//! - Keywords and function names are case-insensitive; string comparisons are case-sensitive.
//! - Precedence, high to low: function calls; `NOT` and unary `-`; `LIKE`; `EXISTS`; `IN`;
//!   `* / %`; `+ -`; comparisons; `AND`/`OR`/`XOR` (one level, right-associative, as in the
//!   reference grammar). Parenthesize mixed logic.
//! - Evaluation is total: every operator and function returns a value of its type, plus errors
//!   when something went wrong (a cast that failed, division by zero, a missing attribute — the
//!   subexpression then yields its type's zero value). `AND`/`OR` short-circuit.
//! - A filter matches only when the value is `TRUE` and no error was raised
//!   ([`Expression::matches`]): the spec's "fail fast" mode for filtering.
//!
//! Unknown functions and wrong arities are not parse errors in the spec (they evaluate to
//! `false` with a MissingFunctionError); [`Expression::check`] reports them up front so that
//! validation can reject a filter that could never match.

mod eval;
mod lexer;
mod parser;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use thiserror::Error;

pub use eval::{EvalError, Evaluation};
pub use parser::{BinaryOp, Expression, MAX_DEPTH};

/// A CESQL value: the language's three primitive types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `TRUE` / `FALSE`.
    Boolean(bool),
    /// A signed 32-bit integer.
    Integer(i32),
    /// A Unicode string.
    String(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Boolean(b) => write!(f, "{}", if *b { "true" } else { "false" }),
            Value::Integer(i) => write!(f, "{i}"),
            Value::String(s) => f.write_str(s),
        }
    }
}

/// Where the evaluator reads event attributes from (context attributes and extensions, by
/// their lowercase names).
pub trait AttributeSource {
    /// The attribute's value, or `None` when the event does not carry it.
    fn attribute(&self, name: &str) -> Option<Value>;
}

impl AttributeSource for HashMap<String, Value> {
    fn attribute(&self, name: &str) -> Option<Value> {
        self.get(name).cloned()
    }
}

impl AttributeSource for BTreeMap<String, Value> {
    fn attribute(&self, name: &str) -> Option<Value> {
        self.get(name).cloned()
    }
}

/// An expression that is not valid CESQL.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("cesql: {message} at position {position}")]
pub struct ParseError {
    /// Byte offset in the expression where the problem was found.
    pub position: usize,
    /// What was expected or found.
    pub message: String,
}

/// Parses a CESQL expression.
///
/// # Errors
/// Empty input, unknown characters, unterminated strings, integers out of the 32-bit range,
/// a `LIKE` pattern that is not a string literal, an empty `IN` set, unbalanced parentheses,
/// trailing input, or nesting deeper than [`MAX_DEPTH`].
pub fn parse(expression: &str) -> Result<Expression, ParseError> {
    let tokens = lexer::tokenize(expression)?;
    parser::Parser::new(expression, tokens).parse()
}

#[cfg(test)]
mod tests;
