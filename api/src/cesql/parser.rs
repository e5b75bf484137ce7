//! The CESQL syntax tree, its parser (recursive descent, one function per precedence level)
//! and its canonical text form.

use std::fmt;

use super::lexer::{Keyword, Tok, Token};
use super::{ParseError, Value};

/// Deepest nesting the parser accepts (parentheses, operators, calls, and each further operator
/// of a chain such as `a + b + c`); deeper input is rejected instead of risking the stack.
pub const MAX_DEPTH: usize = 64;

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// `AND`
    And,
    /// `OR`
    Or,
    /// `XOR`
    Xor,
    /// `=`
    Eq,
    /// `!=` or `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
}

impl BinaryOp {
    fn symbol(self) -> &'static str {
        match self {
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
            BinaryOp::Xor => "XOR",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
        }
    }
}

/// A parsed CESQL expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expression {
    /// A literal value.
    Literal(Value),
    /// An event attribute, by its lowercase name.
    Attribute(String),
    /// `NOT x`
    Not(Box<Expression>),
    /// `-x`
    Negate(Box<Expression>),
    /// `x op y`
    Binary(BinaryOp, Box<Expression>, Box<Expression>),
    /// `x [NOT] LIKE 'pattern'`
    Like {
        /// The value matched.
        value: Box<Expression>,
        /// The pattern (`%` any run, `_` one character, `\` escapes).
        pattern: String,
        /// `NOT LIKE`.
        negated: bool,
    },
    /// `EXISTS attribute`
    Exists(String),
    /// `x [NOT] IN (a, b, ...)`
    In {
        /// The value looked up.
        value: Box<Expression>,
        /// The set (never empty).
        set: Vec<Expression>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `NAME(args)`, name upper-cased.
    Call(String, Vec<Expression>),
}

impl Expression {
    /// Its operands, left to right.
    pub(super) fn operands(&self) -> Vec<&Expression> {
        match self {
            Expression::Literal(_) | Expression::Attribute(_) | Expression::Exists(_) => vec![],
            Expression::Not(x) | Expression::Negate(x) => vec![x],
            Expression::Like { value, .. } => vec![value],
            Expression::Binary(_, l, r) => vec![l, r],
            Expression::In { value, set, .. } => std::iter::once(&**value).chain(set).collect(),
            Expression::Call(_, args) => args.iter().collect(),
        }
    }
}

pub(super) struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    next: usize,
    depth: usize,
}

type Parsed = Result<Expression, ParseError>;

impl<'a> Parser<'a> {
    pub(super) fn new(text: &'a str, tokens: Vec<Token>) -> Self {
        Parser {
            text,
            tokens,
            next: 0,
            depth: 0,
        }
    }

    pub(super) fn parse(mut self) -> Parsed {
        if self.tokens.is_empty() {
            return Err(ParseError {
                position: 0,
                message: "the expression is empty".into(),
            });
        }
        let expr = self.expression()?;
        if let Some(t) = self.tokens.get(self.next) {
            return Err(self.error_at(
                t.position,
                format!(
                    "unexpected {} after a complete expression",
                    describe(&t.kind)
                ),
            ));
        }
        Ok(expr)
    }

    fn error_at(&self, position: usize, message: String) -> ParseError {
        ParseError { position, message }
    }

    fn error_here(&self, expected: &str) -> ParseError {
        match self.tokens.get(self.next) {
            Some(t) => self.error_at(
                t.position,
                format!("expected {expected}, found {}", describe(&t.kind)),
            ),
            None => self.error_at(
                self.text.len(),
                format!("expected {expected}, found the end of the expression"),
            ),
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.next).map(|t| &t.kind)
    }

    fn peek_at(&self, offset: usize) -> Option<&Tok> {
        self.tokens.get(self.next + offset).map(|t| &t.kind)
    }

    fn eat(&mut self, kind: &Tok) -> bool {
        if self.peek() == Some(kind) {
            self.next += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, kind: &Tok, what: &str) -> Result<(), ParseError> {
        if self.eat(kind) {
            Ok(())
        } else {
            Err(self.error_here(what))
        }
    }

    /// One level deeper: a recursion, or one more operator of a left-associative chain (which
    /// deepens the tree without recursing).
    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let pos = self
                .tokens
                .get(self.next)
                .map_or(self.text.len(), |t| t.position);
            return Err(self.error_at(
                pos,
                format!("the expression is nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    /// Lowest level: `AND`, `OR`, `XOR`, right-associative.
    fn expression(&mut self) -> Parsed {
        self.enter()?;
        let left = self.comparison()?;
        let op = match self.peek() {
            Some(Tok::Keyword(Keyword::And)) => BinaryOp::And,
            Some(Tok::Keyword(Keyword::Or)) => BinaryOp::Or,
            Some(Tok::Keyword(Keyword::Xor)) => BinaryOp::Xor,
            _ => {
                self.depth -= 1;
                return Ok(left);
            }
        };
        self.next += 1;
        let right = self.expression().map_err(|e| self.after_operator(e, op))?;
        self.depth -= 1;
        Ok(Expression::Binary(op, Box::new(left), Box::new(right)))
    }

    fn after_operator(&self, e: ParseError, op: BinaryOp) -> ParseError {
        if e.message.contains("found the end of the expression") {
            ParseError {
                position: e.position,
                message: format!("expected an expression after {}", op.symbol()),
            }
        } else {
            e
        }
    }

    fn comparison(&mut self) -> Parsed {
        let mut left = self.additive()?;
        let chain = self.depth;
        loop {
            let op = match self.peek() {
                Some(Tok::Eq) => BinaryOp::Eq,
                Some(Tok::NotEq) => BinaryOp::NotEq,
                Some(Tok::Lt) => BinaryOp::Lt,
                Some(Tok::LtEq) => BinaryOp::LtEq,
                Some(Tok::Gt) => BinaryOp::Gt,
                Some(Tok::GtEq) => BinaryOp::GtEq,
                _ => {
                    self.depth = chain;
                    return Ok(left);
                }
            };
            self.enter()?;
            self.next += 1;
            let right = self.additive().map_err(|e| self.after_operator(e, op))?;
            left = Expression::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn additive(&mut self) -> Parsed {
        let mut left = self.multiplicative()?;
        let chain = self.depth;
        loop {
            let op = match self.peek() {
                Some(Tok::Plus) => BinaryOp::Add,
                Some(Tok::Minus) => BinaryOp::Sub,
                _ => {
                    self.depth = chain;
                    return Ok(left);
                }
            };
            self.enter()?;
            self.next += 1;
            let right = self
                .multiplicative()
                .map_err(|e| self.after_operator(e, op))?;
            left = Expression::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn multiplicative(&mut self) -> Parsed {
        let mut left = self.membership()?;
        let chain = self.depth;
        loop {
            let op = match self.peek() {
                Some(Tok::Star) => BinaryOp::Mul,
                Some(Tok::Slash) => BinaryOp::Div,
                Some(Tok::Percent) => BinaryOp::Mod,
                _ => {
                    self.depth = chain;
                    return Ok(left);
                }
            };
            self.enter()?;
            self.next += 1;
            let right = self.membership().map_err(|e| self.after_operator(e, op))?;
            left = Expression::Binary(op, Box::new(left), Box::new(right));
        }
    }

    /// `x [NOT] IN (set)`.
    fn membership(&mut self) -> Parsed {
        let mut value = self.like()?;
        let chain = self.depth;
        loop {
            let negated = match (self.peek(), self.peek_at(1)) {
                (Some(Tok::Keyword(Keyword::In)), _) => false,
                (Some(Tok::Keyword(Keyword::Not)), Some(Tok::Keyword(Keyword::In))) => true,
                _ => {
                    self.depth = chain;
                    return Ok(value);
                }
            };
            self.enter()?;
            self.next += if negated { 2 } else { 1 };
            self.expect(&Tok::LParen, "`(` to open the IN set")?;
            let mut set = vec![self.expression()?];
            while self.eat(&Tok::Comma) {
                set.push(self.expression()?);
            }
            self.expect(&Tok::RParen, "`,` or `)` in the IN set")?;
            value = Expression::In {
                value: Box::new(value),
                set,
                negated,
            };
        }
    }

    /// `x [NOT] LIKE 'pattern'`.
    fn like(&mut self) -> Parsed {
        let mut value = self.unary()?;
        let chain = self.depth;
        loop {
            let negated = match (self.peek(), self.peek_at(1)) {
                (Some(Tok::Keyword(Keyword::Like)), _) => false,
                (Some(Tok::Keyword(Keyword::Not)), Some(Tok::Keyword(Keyword::Like))) => true,
                _ => {
                    self.depth = chain;
                    return Ok(value);
                }
            };
            self.enter()?;
            self.next += if negated { 2 } else { 1 };
            let Some(Tok::Str(pattern)) = self.peek().cloned() else {
                return Err(self.error_here("a string literal as the LIKE pattern"));
            };
            self.next += 1;
            value = Expression::Like {
                value: Box::new(value),
                pattern,
                negated,
            };
        }
    }

    fn unary(&mut self) -> Parsed {
        match self.peek() {
            Some(Tok::Keyword(Keyword::Not)) => {
                self.next += 1;
                self.enter()?;
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(Expression::Not(Box::new(inner)))
            }
            Some(Tok::Minus) => {
                self.next += 1;
                if let Some(Tok::Digits(d)) = self.peek().cloned() {
                    let position = self.tokens[self.next].position;
                    self.next += 1;
                    return self.integer(&format!("-{d}"), position);
                }
                self.enter()?;
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(Expression::Negate(Box::new(inner)))
            }
            Some(Tok::Plus) => match self.peek_at(1).cloned() {
                Some(Tok::Digits(d)) => {
                    let position = self.tokens[self.next + 1].position;
                    self.next += 2;
                    self.integer(&d, position)
                }
                _ => Err(self.error_here("an expression")),
            },
            _ => self.primary(),
        }
    }

    fn integer(&self, text: &str, position: usize) -> Parsed {
        text.parse::<i32>()
            .map(|i| Expression::Literal(Value::Integer(i)))
            .map_err(|_| {
                self.error_at(
                    position,
                    format!("integer {text} is outside the 32-bit range"),
                )
            })
    }

    fn primary(&mut self) -> Parsed {
        let Some(token) = self.tokens.get(self.next).cloned() else {
            return Err(self.error_here("an expression"));
        };
        match token.kind {
            Tok::Keyword(Keyword::Exists) => {
                self.next += 1;
                match self.peek().cloned() {
                    Some(Tok::Word(w)) if is_identifier(&w) => {
                        self.next += 1;
                        Ok(Expression::Exists(w.to_ascii_lowercase()))
                    }
                    Some(Tok::Digits(d)) => {
                        self.next += 1;
                        Ok(Expression::Exists(d))
                    }
                    _ => Err(self.error_here("an attribute name after EXISTS")),
                }
            }
            Tok::Keyword(Keyword::True) => {
                self.next += 1;
                Ok(Expression::Literal(Value::Boolean(true)))
            }
            Tok::Keyword(Keyword::False) => {
                self.next += 1;
                Ok(Expression::Literal(Value::Boolean(false)))
            }
            Tok::Str(s) => {
                self.next += 1;
                Ok(Expression::Literal(Value::String(s)))
            }
            Tok::Digits(d) => {
                self.next += 1;
                self.integer(&d, token.position)
            }
            Tok::LParen => {
                self.next += 1;
                let inner = self.expression()?;
                self.expect(&Tok::RParen, "`)`")?;
                Ok(inner)
            }
            Tok::Word(w) if self.peek_at(1) == Some(&Tok::LParen) => {
                if !is_function_name(&w) {
                    return Err(
                        self.error_at(token.position, format!("`{w}` is not a function name"))
                    );
                }
                self.next += 2;
                self.enter()?;
                let mut args = Vec::new();
                if !self.eat(&Tok::RParen) {
                    args.push(self.expression()?);
                    while self.eat(&Tok::Comma) {
                        args.push(self.expression()?);
                    }
                    self.expect(&Tok::RParen, "`,` or `)` in the argument list")?;
                }
                self.depth -= 1;
                Ok(Expression::Call(w.to_ascii_uppercase(), args))
            }
            Tok::Word(w) => {
                if !is_identifier(&w) {
                    return Err(self.error_at(
                        token.position,
                        format!("`{w}` is not an attribute name (use a-z and 0-9)"),
                    ));
                }
                self.next += 1;
                Ok(Expression::Attribute(w.to_ascii_lowercase()))
            }
            other => Err(self.error_at(
                token.position,
                format!("expected an expression, found {}", describe(&other)),
            )),
        }
    }
}

fn is_identifier(w: &str) -> bool {
    !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn is_function_name(w: &str) -> bool {
    w.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && w.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_')
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Word(w) => format!("`{w}`"),
        Tok::Digits(d) => format!("`{d}`"),
        Tok::Str(_) => "a string".into(),
        Tok::Keyword(k) => format!("{k:?}").to_ascii_uppercase(),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Star => "`*`".into(),
        Tok::Slash => "`/`".into(),
        Tok::Percent => "`%`".into(),
        Tok::Plus => "`+`".into(),
        Tok::Minus => "`-`".into(),
        Tok::Eq => "`=`".into(),
        Tok::NotEq => "`!=`".into(),
        Tok::Lt => "`<`".into(),
        Tok::LtEq => "`<=`".into(),
        Tok::Gt => "`>`".into(),
        Tok::GtEq => "`>=`".into(),
    }
}

fn quote(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// The canonical form: fully parenthesized, keywords upper-case, strings single-quoted. It
/// parses back to an equal expression, unless its added parentheses nest deeper than
/// [`MAX_DEPTH`].
impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expression::Literal(Value::Boolean(b)) => {
                f.write_str(if *b { "TRUE" } else { "FALSE" })
            }
            Expression::Literal(Value::Integer(i)) => write!(f, "{i}"),
            Expression::Literal(Value::String(s)) => f.write_str(&quote(s)),
            Expression::Attribute(a) => f.write_str(a),
            Expression::Not(x) => write!(f, "(NOT {x})"),
            Expression::Negate(x) => write!(f, "(-({x}))"),
            Expression::Binary(op, l, r) => write!(f, "({l} {} {r})", op.symbol()),
            Expression::Like {
                value,
                pattern,
                negated,
            } => {
                write!(
                    f,
                    "({value} {}LIKE {})",
                    if *negated { "NOT " } else { "" },
                    quote(pattern)
                )
            }
            Expression::Exists(a) => write!(f, "(EXISTS {a})"),
            Expression::In {
                value,
                set,
                negated,
            } => {
                write!(f, "({value} {}IN (", if *negated { "NOT " } else { "" })?;
                for (i, e) in set.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{e}")?;
                }
                f.write_str("))")
            }
            Expression::Call(name, args) => {
                write!(f, "{name}(")?;
                for (i, e) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{e}")?;
                }
                f.write_str(")")
            }
        }
    }
}
