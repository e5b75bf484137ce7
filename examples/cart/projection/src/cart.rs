//! Cart events: parsing a CloudEvent into a stored [`Record`], and folding a cart's records.

use std::collections::{BTreeMap, HashSet};

use axum::http::{HeaderMap, header};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(crate) const CREATED: &str = "com.example.cart.created";
pub(crate) const ADDED: &str = "com.example.cart.item.added";
pub(crate) const REMOVED: &str = "com.example.cart.item.removed";

/// One accepted event, as stored (one JSON line) in its cart's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) id: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) item: Option<String>,
    /// The revision that applied it (`K_REVISION`), to show a traffic split at work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) by: Option<String>,
}

/// A cart folded from its log.
#[derive(Debug, Default, PartialEq, Serialize)]
pub(crate) struct Cart {
    pub(crate) created: bool,
    pub(crate) items: BTreeMap<String, u64>,
    /// Distinct events applied.
    pub(crate) events: usize,
    /// Distinct events applied, by the revision that received them.
    pub(crate) revisions: BTreeMap<String, u64>,
}

/// Folds a cart's records in order, applying each event id once.
pub(crate) fn fold(records: &[Record]) -> Cart {
    let mut cart = Cart::default();
    let mut seen = HashSet::new();
    for record in records.iter().filter(|r| seen.insert(r.id.as_str())) {
        cart.events += 1;
        if let Some(by) = &record.by {
            *cart.revisions.entry(by.clone()).or_default() += 1;
        }
        match (record.kind.as_str(), &record.item) {
            (CREATED, _) => cart.created = true,
            (ADDED, Some(item)) => *cart.items.entry(item.clone()).or_default() += 1,
            (REMOVED, Some(item)) => {
                if let Some(count) = cart.items.get_mut(item) {
                    *count -= 1;
                    if *count == 0 {
                        cart.items.remove(item);
                    }
                }
            }
            _ => {}
        }
    }
    cart
}

pub(crate) fn valid_cart_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Parses a cart CloudEvent (binary or structured mode) into its cart id and the record to
/// store, or a one-line reason it is rejected.
pub(crate) fn parse(headers: &HeaderMap, body: &[u8]) -> Result<(String, Record), String> {
    let structured = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/cloudevents+json")
        });
    let (id, kind, data) = if structured {
        let mut event: serde_json::Map<String, Value> = serde_json::from_slice(body)
            .map_err(|e| format!("structured event is not a JSON object: {e}"))?;
        let attr = |name: &str| match event.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(format!("missing {name}")),
        };
        let (id, kind) = (attr("id")?, attr("type")?);
        if event.contains_key("data_base64") {
            return Err("data_base64 is not supported: send JSON data".into());
        }
        let data = event.remove("data").ok_or("missing data")?;
        (id, kind, data)
    } else {
        let attr = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or(format!("missing {name} header"))
        };
        let (id, kind) = (attr("ce-id")?, attr("ce-type")?);
        let data = serde_json::from_slice(body).map_err(|e| format!("data is not JSON: {e}"))?;
        (id, kind, data)
    };
    let needs_item = match kind.as_str() {
        CREATED => false,
        ADDED | REMOVED => true,
        other => return Err(format!("unknown event type {other:?}")),
    };
    if !data.is_object() {
        return Err("data is not a JSON object".into());
    }
    let field = |name: &str| match data.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        None | Some(Value::Null | Value::String(_)) => {
            Err(format!("data.{name} is missing or empty"))
        }
        Some(_) => Err(format!("data.{name} is not a string")),
    };
    let cart = field("cart")?;
    if !valid_cart_id(&cart) {
        return Err(format!(
            "invalid cart id {cart:?}: want [A-Za-z0-9_-]{{1,64}}"
        ));
    }
    let item = if needs_item {
        Some(field("item")?)
    } else {
        None
    };
    Ok((
        cart,
        Record {
            id,
            kind,
            item,
            by: None,
        },
    ))
}
