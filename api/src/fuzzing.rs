//! Entry points of the coverage-guided fuzz targets in `fuzz/` (cargo-fuzz), kept in the crate
//! so that `tests/fuzz_corpus.rs` replays their corpora and every input that once failed
//! through the same code on a stable `cargo test`. Not part of the API.

use std::collections::BTreeMap;

use crate::cesql::{self, Value};
use crate::contract::Contract;

/// Feeds one input to CESQL: parsed (as UTF-8), checked and evaluated against a few events;
/// its canonical form ([`cesql::Expression`]'s `Display`) must parse back to the same
/// expression, unless its added parentheses nest too deeply.
///
/// # Panics
/// When the canonical form does not parse back: a bug.
pub fn cesql(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expression) = cesql::parse(text) else {
        return;
    };
    let _ = expression.check();
    for event in events() {
        let _ = expression.evaluate(&event);
    }
    let canonical = expression.to_string();
    match cesql::parse(&canonical) {
        Ok(again) => assert_eq!(again, expression, "{canonical} parsed differently"),
        // Its added parentheses may nest deeper than the limit: documented.
        Err(e) if e.message.contains("nested deeper than") => {}
        Err(e) => panic!("the canonical form {canonical} of {text:?} does not parse: {e}"),
    }
}

/// An empty event and one with attributes of every type.
fn events() -> [BTreeMap<String, Value>; 2] {
    let text = |s: &str| Value::String(s.to_owned());
    let full = [
        ("specversion", text("1.0")),
        ("id", text("42")),
        ("source", text("/orders")),
        ("type", text("order.created")),
        ("subject", text("a%b_c")),
        ("time", text("2026-01-01T00:00:00Z")),
        ("count", Value::Integer(-7)),
        ("big", Value::Integer(i32::MIN)),
        ("flag", Value::Boolean(true)),
        ("number", text("123")),
        ("truth", text("true")),
    ];
    [
        BTreeMap::new(),
        full.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    ]
}

/// Feeds one input to the dispatcher's contract reading ([`Contract::from_bytes`]: gzip or
/// JSON, then validation). A contract accepted must keep its ingress part valid and read back
/// equal from the gzip form the operator writes.
///
/// # Panics
/// When either fails: a bug.
pub fn contract(data: &[u8]) {
    let Ok(contract) = Contract::from_bytes(data) else {
        return;
    };
    if let Err(e) = contract.for_ingress().validate() {
        panic!("the ingress part of a valid contract is invalid: {e}");
    }
    match Contract::from_bytes(&contract.to_gzip()) {
        Ok(again) => assert_eq!(again, contract, "the contract read back differs"),
        Err(e) => panic!("a valid contract does not read back: {e}"),
    }
}
