//! Evaluation: total operators and functions, implicit casts, and error collection.

use std::fmt;

use super::parser::{BinaryOp, Expression};
use super::{AttributeSource, Value};

/// An error raised while evaluating (the expression still yields a value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvalError {
    /// Division or remainder by zero, or an overflow.
    Math(String),
    /// A value could not be cast to the type an operator or function needs.
    Cast(String),
    /// The event does not carry this attribute.
    MissingAttribute(String),
    /// No function of this name takes this many arguments.
    MissingFunction(String),
    /// A function got an argument outside its domain.
    FunctionEvaluation(String),
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::Math(m) => write!(f, "math error: {m}"),
            EvalError::Cast(m) => write!(f, "cast error: {m}"),
            EvalError::MissingAttribute(a) => write!(f, "missing attribute `{a}`"),
            EvalError::MissingFunction(m) => write!(f, "missing function: {m}"),
            EvalError::FunctionEvaluation(m) => write!(f, "function error: {m}"),
        }
    }
}

/// The result of evaluating an expression: always a value, plus any errors raised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation {
    /// The value (the zero value of its type where an error prevented computing it).
    pub value: Value,
    /// Errors in the order they were raised.
    pub errors: Vec<EvalError>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Type {
    Boolean,
    Integer,
    String,
}

fn zero(t: Type) -> Value {
    match t {
        Type::Boolean => Value::Boolean(false),
        Type::Integer => Value::Integer(0),
        Type::String => Value::String(String::new()),
    }
}

fn type_of(v: &Value) -> Type {
    match v {
        Value::Boolean(_) => Type::Boolean,
        Value::Integer(_) => Type::Integer,
        Value::String(_) => Type::String,
    }
}

/// Casts per the spec's table; on failure records a CastError and returns the zero value.
fn cast(v: Value, to: Type, errors: &mut Vec<EvalError>) -> Value {
    match (v, to) {
        (v @ Value::Boolean(_), Type::Boolean)
        | (v @ Value::Integer(_), Type::Integer)
        | (v @ Value::String(_), Type::String) => v,
        (Value::Integer(i), Type::String) => Value::String(i.to_string()),
        // The spec's table allows Integer -> Boolean, but its TCK (and the Go implementation
        // Knative uses) reject it as an implicit cast: `NOT 10` is a CastError. BOOL(10)
        // converts explicitly (see `call`).
        (Value::Integer(i), Type::Boolean) => {
            errors.push(EvalError::Cast(format!(
                "{i} is not a boolean (use BOOL({i}))"
            )));
            Value::Boolean(false)
        }
        (Value::Boolean(b), Type::Integer) => Value::Integer(i32::from(b)),
        (Value::Boolean(b), Type::String) => Value::String(if b { "true" } else { "false" }.into()),
        (Value::String(s), Type::Integer) => match s.parse::<i32>() {
            Ok(i) => Value::Integer(i),
            Err(_) => {
                errors.push(EvalError::Cast(format!("'{s}' is not a 32-bit integer")));
                Value::Integer(0)
            }
        },
        (Value::String(s), Type::Boolean) => match s.to_lowercase().as_str() {
            "true" => Value::Boolean(true),
            "false" => Value::Boolean(false),
            _ => {
                errors.push(EvalError::Cast(format!("'{s}' is not a boolean")));
                Value::Boolean(false)
            }
        },
    }
}

fn int(v: Value, errors: &mut Vec<EvalError>) -> i32 {
    match cast(v, Type::Integer, errors) {
        Value::Integer(i) => i,
        _ => 0,
    }
}

fn boolean(v: Value, errors: &mut Vec<EvalError>) -> bool {
    matches!(cast(v, Type::Boolean, errors), Value::Boolean(true))
}

fn string(v: Value, errors: &mut Vec<EvalError>) -> String {
    match cast(v, Type::String, errors) {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

impl Expression {
    /// Evaluates against an event's attributes (complete evaluation: every error is collected,
    /// except in operands skipped by `AND`/`OR` short-circuiting).
    pub fn evaluate(&self, event: &dyn AttributeSource) -> Evaluation {
        let mut errors = Vec::new();
        // A bare missing attribute has no known return type: the spec says assume Boolean.
        let value = self
            .eval(event, &mut errors)
            .unwrap_or(Value::Boolean(false));
        Evaluation { value, errors }
    }

    /// `true` when the expression evaluates to `TRUE` without any error (filtering semantics).
    pub fn matches(&self, event: &dyn AttributeSource) -> bool {
        let e = self.evaluate(event);
        e.errors.is_empty() && e.value == Value::Boolean(true)
    }

    /// Problems that make the expression unable to ever evaluate cleanly: calls to unknown
    /// functions or with the wrong number of arguments.
    pub fn check(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let Expression::Call(name, args) = e
                && let Err(EvalError::MissingFunction(msg)) = signature(name, args.len())
            {
                out.push(msg);
            }
        });
        out
    }

    fn walk(&self, visit: &mut dyn FnMut(&Expression)) {
        visit(self);
        for operand in self.operands() {
            operand.walk(visit);
        }
    }

    /// `None` when a missing attribute leaves the return type to the enclosing operator.
    fn eval(&self, event: &dyn AttributeSource, errors: &mut Vec<EvalError>) -> Option<Value> {
        match self {
            Expression::Literal(v) => Some(v.clone()),
            Expression::Attribute(name) => {
                let v = event.attribute(name);
                if v.is_none() {
                    errors.push(EvalError::MissingAttribute(name.clone()));
                }
                v
            }
            Expression::Exists(name) => Some(Value::Boolean(event.attribute(name).is_some())),
            Expression::Not(x) => Some(match operand(x, event, errors) {
                Some(v) => Value::Boolean(!boolean(v, errors)),
                None => Value::Boolean(false),
            }),
            Expression::Negate(x) => Some(match operand(x, event, errors) {
                Some(v) => {
                    let i = int(v, errors);
                    Value::Integer(i.checked_neg().unwrap_or_else(|| {
                        errors.push(EvalError::Math(format!("-({i}) overflows")));
                        i
                    }))
                }
                None => Value::Integer(0),
            }),
            Expression::Like {
                value,
                pattern,
                negated,
            } => Some(match operand(value, event, errors) {
                Some(v) => Value::Boolean(like(&string(v, errors), pattern) != *negated),
                None => Value::Boolean(false),
            }),
            Expression::In {
                value,
                set,
                negated,
            } => {
                let Some(v) = operand(value, event, errors) else {
                    return Some(Value::Boolean(false));
                };
                let target = type_of(&v);
                let mut found = false;
                for item in set {
                    if let Some(item) = operand(item, event, errors)
                        && cast(item, target, errors) == v
                    {
                        found = true;
                    }
                }
                Some(Value::Boolean(found != *negated))
            }
            Expression::Binary(op, l, r) => Some(binary(*op, l, r, event, errors)),
            Expression::Call(name, args) => Some(call(name, args, event, errors)),
        }
    }
}

/// Evaluates an operand; `None` when it raised any error, so the enclosing operator yields the
/// zero value of its own type (the TCK's rule: `1 != 1 / 0` is `false` plus a MathError).
fn operand(
    e: &Expression,
    event: &dyn AttributeSource,
    errors: &mut Vec<EvalError>,
) -> Option<Value> {
    let before = errors.len();
    let v = e.eval(event, errors)?;
    (errors.len() == before).then_some(v)
}

fn binary(
    op: BinaryOp,
    l: &Expression,
    r: &Expression,
    event: &dyn AttributeSource,
    errors: &mut Vec<EvalError>,
) -> Value {
    use BinaryOp::*;
    match op {
        And | Or => {
            let Some(left) = operand(l, event, errors) else {
                return Value::Boolean(false);
            };
            let left = boolean(left, errors);
            if (op == And && !left) || (op == Or && left) {
                return Value::Boolean(left);
            }
            match operand(r, event, errors) {
                Some(right) => Value::Boolean(boolean(right, errors)),
                None => Value::Boolean(false),
            }
        }
        Xor => match (operand(l, event, errors), operand(r, event, errors)) {
            (Some(a), Some(b)) => Value::Boolean(boolean(a, errors) ^ boolean(b, errors)),
            _ => Value::Boolean(false),
        },
        Eq | NotEq => match (operand(l, event, errors), operand(r, event, errors)) {
            (Some(a), Some(b)) => {
                // `=` is overloaded for every type: the right operand's type picks the overload.
                let before = errors.len();
                let a = cast(a, type_of(&b), errors);
                if errors.len() > before {
                    return Value::Boolean(false);
                }
                Value::Boolean((a == b) == (op == Eq))
            }
            _ => Value::Boolean(false),
        },
        Lt | LtEq | Gt | GtEq => match (operand(l, event, errors), operand(r, event, errors)) {
            (Some(a), Some(b)) => {
                let (a, b) = (int(a, errors), int(b, errors));
                Value::Boolean(match op {
                    Lt => a < b,
                    LtEq => a <= b,
                    Gt => a > b,
                    _ => a >= b,
                })
            }
            _ => Value::Boolean(false),
        },
        Add | Sub | Mul | Div | Mod => match (operand(l, event, errors), operand(r, event, errors))
        {
            (Some(a), Some(b)) => {
                let (a, b) = (int(a, errors), int(b, errors));
                let result = match op {
                    Add => a.checked_add(b),
                    Sub => a.checked_sub(b),
                    Mul => a.checked_mul(b),
                    Div if b == 0 => {
                        errors.push(EvalError::Math("division by zero".into()));
                        return Value::Integer(0);
                    }
                    Mod if b == 0 => {
                        errors.push(EvalError::Math("remainder of division by zero".into()));
                        return Value::Integer(0);
                    }
                    Div => a.checked_div(b),
                    _ => a.checked_rem(b),
                };
                Value::Integer(result.unwrap_or_else(|| {
                    errors.push(EvalError::Math(format!(
                        "{a} {} {b} overflows a 32-bit integer",
                        symbol(op)
                    )));
                    0
                }))
            }
            _ => Value::Integer(0),
        },
    }
}

fn symbol(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "+",
        BinaryOp::Sub => "-",
        BinaryOp::Mul => "*",
        BinaryOp::Div => "/",
        _ => "%",
    }
}

/// The built-in functions: parameter types (the last repeats when variadic) and return type.
///
/// # Errors
/// [`EvalError::MissingFunction`]: no function `name`, or it does not take `arity` arguments.
fn signature(name: &str, arity: usize) -> Result<(&'static [Type], bool, Type), EvalError> {
    use Type::*;
    let (params, variadic, ret): (&'static [Type], bool, Type) = match name {
        "ABS" => (&[Integer], false, Integer),
        "LENGTH" => (&[String], false, Integer),
        "CONCAT" => (&[String], true, String),
        "CONCAT_WS" => (&[String, String], true, String),
        "LOWER" | "UPPER" | "TRIM" => (&[String], false, String),
        "LEFT" | "RIGHT" => (&[String, Integer], false, String),
        "SUBSTRING" if arity == 3 => (&[String, Integer, Integer], false, String),
        "SUBSTRING" => (&[String, Integer], false, String),
        "INT" => (&[Integer], false, Integer),
        "BOOL" => (&[Boolean], false, Boolean),
        "STRING" => (&[String], false, String),
        _ => {
            return Err(EvalError::MissingFunction(format!(
                "there is no function {name}"
            )));
        }
    };
    let ok = if variadic {
        arity + 1 >= params.len()
    } else {
        arity == params.len()
    };
    if ok {
        Ok((params, variadic, ret))
    } else {
        Err(EvalError::MissingFunction(format!(
            "{name} does not take {arity} argument(s)"
        )))
    }
}

fn call(
    name: &str,
    args: &[Expression],
    event: &dyn AttributeSource,
    errors: &mut Vec<EvalError>,
) -> Value {
    let (params, variadic, ret) = match signature(name, args.len()) {
        Ok(s) => s,
        Err(e) => {
            errors.push(e);
            return Value::Boolean(false);
        }
    };
    let mut values = Vec::with_capacity(args.len());
    for (i, arg) in args.iter().enumerate() {
        let ty = if variadic && i >= params.len() {
            params[params.len() - 1]
        } else {
            params[i]
        };
        match operand(arg, event, errors) {
            Some(Value::Integer(i)) if name == "BOOL" => values.push(Value::Boolean(i != 0)),
            Some(v) => values.push(cast(v, ty, errors)),
            None => return zero(ret),
        }
    }
    apply(name, values, errors)
}

fn apply(name: &str, args: Vec<Value>, errors: &mut Vec<EvalError>) -> Value {
    let s = |i: usize| match args.get(i) {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let n = |i: usize| match args.get(i) {
        Some(Value::Integer(n)) => *n,
        _ => 0,
    };
    let chars: Vec<char> = s(0).chars().collect();
    let len = i64::try_from(chars.len()).unwrap_or(i64::MAX);
    let slice = |from: usize, to: usize| {
        chars[from.min(chars.len())..to.min(chars.len())]
            .iter()
            .collect::<String>()
    };
    match name {
        "ABS" => Value::Integer(n(0).checked_abs().unwrap_or_else(|| {
            errors.push(EvalError::Math("ABS(-2147483648) overflows".into()));
            i32::MAX
        })),
        "LENGTH" => Value::Integer(i32::try_from(chars.len()).unwrap_or(i32::MAX)),
        "CONCAT" => Value::String((0..args.len()).map(s).collect()),
        "CONCAT_WS" => Value::String((1..args.len()).map(s).collect::<Vec<_>>().join(&s(0))),
        "LOWER" => Value::String(s(0).to_lowercase()),
        "UPPER" => Value::String(s(0).to_uppercase()),
        "TRIM" => Value::String(s(0).trim().to_owned()),
        "LEFT" | "RIGHT" => {
            let count = n(1);
            if count < 0 {
                errors.push(EvalError::FunctionEvaluation(format!(
                    "{name} needs a length ≥ 0, got {count}"
                )));
                return Value::String(s(0));
            }
            let count = usize::try_from(count)
                .unwrap_or(usize::MAX)
                .min(chars.len());
            Value::String(if name == "LEFT" {
                slice(0, count)
            } else {
                slice(chars.len() - count, chars.len())
            })
        }
        "SUBSTRING" => {
            let pos = i64::from(n(1));
            if pos > len || pos < -len {
                errors.push(EvalError::FunctionEvaluation(format!(
                    "SUBSTRING position {pos} is outside a string of length {len}"
                )));
                return Value::String(String::new());
            }
            if pos == 0 {
                return Value::String(String::new());
            }
            let start = if pos > 0 { pos - 1 } else { len + pos };
            let end = if args.len() == 3 {
                let count = i64::from(n(2));
                if count < 0 {
                    errors.push(EvalError::FunctionEvaluation(format!(
                        "SUBSTRING length {count} is negative"
                    )));
                    return Value::String(String::new());
                }
                (start + count).min(len)
            } else {
                len
            };
            let index = |i: i64| usize::try_from(i).unwrap_or(0);
            Value::String(slice(index(start), index(end)))
        }
        // The casting functions: arguments were already cast to their parameter type.
        _ => args.into_iter().next().unwrap_or(Value::Boolean(false)),
    }
}

/// `LIKE` matching: `%` matches any run, `_` one character, `\%` and `\_` match literally, and
/// any other backslash is itself.
fn like(value: &str, pattern: &str) -> bool {
    enum P {
        Any,
        One,
        Lit(char),
    }
    let mut parts = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        parts.push(match c {
            '%' => P::Any,
            '_' => P::One,
            '\\' => match chars.clone().next() {
                Some(e @ ('%' | '_')) => {
                    chars.next();
                    P::Lit(e)
                }
                _ => P::Lit('\\'),
            },
            c => P::Lit(c),
        });
    }
    let text: Vec<char> = value.chars().collect();
    // Greedy matching with one backtrack point per `%` (linear in practice, O(n·m) worst case).
    let (mut t, mut p) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match parts.get(p) {
            Some(P::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(P::One) => {
                t += 1;
                p += 1;
            }
            Some(P::Lit(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    parts[p..].iter().all(|x| matches!(x, P::Any))
}
