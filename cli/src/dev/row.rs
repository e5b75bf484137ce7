//! One line of `ferry dev`'s table and of `status.json`.

use std::collections::BTreeMap;

use serde::Serialize;

/// One line of the table and of `status.json`.
#[derive(Debug, Serialize)]
pub struct Row {
    pub(super) kind: String,
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) url: Option<String>,
    pub(super) detail: String,
    /// A revision's ready replicas.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) endpoints: Vec<String>,
    /// A Service's tag URLs.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) tags: BTreeMap<String, String>,
}

impl Row {
    /// A row; `state` is the detail, `Ok` when ready.
    pub fn new(
        kind: &str,
        ns: &str,
        name: &str,
        url: Option<String>,
        state: Result<String, String>,
    ) -> Row {
        Row {
            kind: kind.to_owned(),
            namespace: ns.to_owned(),
            name: name.to_owned(),
            ready: state.is_ok(),
            url,
            detail: state.unwrap_or_else(|e| e),
            endpoints: Vec::new(),
            tags: BTreeMap::new(),
        }
    }
}
