//! What `ferry dev` shows: one row per object, READY and a detail, printed as a table when it
//! changes and written to `<data-dir>/status.json` for scripts and tests.
//!
//! Eventing objects' rows come from `conditions.rs` (their Knative `Ready` condition, as the
//! operator computes it); Services and revisions show what runs locally.

use std::io::Write;
use std::path::Path;

use ferry_api::duck::Status;
use kube::ResourceExt;
use serde::Serialize;

use super::conditions::{World, eventing_rows};
use super::row::Row;
use super::runtime::RevisionState;
use super::serving::{LiveRevision, not_ready, service_key};

/// Every row: eventing objects, then Services with their revisions.
pub fn rows(w: &World<'_>) -> Vec<Row> {
    let mut rows = eventing_rows(w);
    service_rows(w, &mut rows);
    rows
}

/// Services (traffic and tags) and their revisions (replicas, the autoscaler's wish).
fn service_rows(w: &World<'_>, rows: &mut Vec<Row>) {
    let processes = w.serving.runtime.states();
    for service in &w.desired.services {
        let key = service_key(service);
        let ns = service.namespace().unwrap_or_default();
        let state = w.serving.services.get(&key).cloned().unwrap_or_default();
        let url = w.serving.proxies.get(&key).map(|p| p.url.clone());
        let detail = match (state.ready, &state.reason) {
            (true, _) => Ok(state
                .traffic
                .iter()
                .map(|(r, p)| format!("{r} {p}%"))
                .chain(
                    state
                        .tags
                        .iter()
                        .map(|(tag, (r, url))| format!("tag {tag} → {r} at {url}")),
                )
                .collect::<Vec<_>>()
                .join(", ")),
            (false, reason) => Err(reason.clone().unwrap_or_else(|| "starting".into())),
        };
        let mut row = Row::new("Service", &ns, &service.name_any(), url, detail);
        row.tags = state
            .tags
            .iter()
            .map(|(tag, (_, url))| (tag.clone(), url.clone()))
            .collect();
        rows.push(row);
        for stored in w.serving.registry.of(&ns, &service.name_any()) {
            let name = stored.name_any();
            let Some(live) = w.serving.live.get(&name) else {
                continue;
            };
            let state = processes.get(&name).cloned().unwrap_or_default();
            let status = w.serving.revisions.get(&name).map(|s| &s.status);
            rows.push(revision_row(&ns, &name, live, &state, status));
        }
    }
}

/// A revision: Ready once a replica has answered (also when scaled to zero since); the
/// detail says how many replicas run, what the autoscaler wants and why.
fn revision_row(
    ns: &str,
    name: &str,
    live: &LiveRevision,
    state: &RevisionState,
    status: Option<&Status>,
) -> Row {
    let endpoints = state.endpoints();
    let pids: Vec<String> = state
        .replicas
        .iter()
        .flat_map(|p| p.pids.iter().map(u32::to_string))
        .collect();
    let restarts: u32 = state.replicas.iter().map(|p| p.restarts).sum();
    let mut detail = format!(
        "{}/{} replicas ready",
        endpoints.len(),
        state.replicas.len()
    );
    if let Some(d) = &live.decision {
        detail.push_str(&format!(
            ", autoscaler wants {} ({:?})",
            d.desired, d.reason
        ));
    }
    if !pids.is_empty() {
        detail.push_str(&format!(", pid {}", pids.join(" ")));
    }
    if restarts > 0 {
        detail.push_str(&format!(", {restarts} restarts"));
    }
    let result = match status {
        Some(s) if s.is_ready() => Ok(detail),
        _ => {
            let why = state
                .replicas
                .iter()
                .find_map(|p| p.reason.clone())
                .or_else(|| status.and_then(not_ready))
                .unwrap_or_else(|| "starting".into());
            Err(format!("{why}; {detail}"))
        }
    };
    let mut row = Row::new("Revision", ns, name, Some(live.proxy.url.clone()), result);
    row.endpoints = endpoints;
    row
}

/// `status.json`: what the table shows, for scripts and tests.
#[derive(Serialize)]
struct StatusFile<'a> {
    ingress: &'a str,
    kafka: &'a str,
    generation: u64,
    applied: Option<u64>,
    resources: &'a [Row],
}

/// Prints the table when it changed and rewrites `status.json`.
pub struct Report {
    /// Colour in the table.
    pub color: bool,
    printed: String,
}

impl Report {
    /// A report that prints in colour when `color`.
    pub fn new(color: bool) -> Report {
        Report {
            color,
            printed: String::new(),
        }
    }

    /// Writes `rows` to `path` (atomically) and prints them when they changed.
    pub fn show(&mut self, w: &World<'_>, kafka: &str, path: &Path) {
        let rows = rows(w);
        let status = StatusFile {
            ingress: w.ingress_base,
            kafka,
            generation: w.contract.generation,
            applied: w.applied,
            resources: &rows,
        };
        if let Ok(json) = serde_json::to_vec_pretty(&status) {
            let tmp = path.with_extension("tmp");
            if std::fs::write(&tmp, json).is_ok() {
                let _ = std::fs::rename(&tmp, path);
            }
        }
        let text = crate::table(
            &["KIND", "NAME", "READY", "URL", "DETAIL"],
            &rows
                .iter()
                .map(|r| {
                    vec![
                        r.kind.clone(),
                        format!("{}/{}", r.namespace, r.name),
                        paint(r.ready, self.color),
                        r.url.clone().unwrap_or_else(|| "-".into()),
                        r.detail.clone(),
                    ]
                })
                .collect::<Vec<_>>(),
        );
        if text != self.printed {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "\n{text}");
            let _ = out.flush();
            self.printed = text;
        }
    }
}

fn paint(ready: bool, color: bool) -> String {
    match (ready, color) {
        (true, true) => "\x1b[32mTrue\x1b[0m".into(),
        (false, true) => "\x1b[31mFalse\x1b[0m".into(),
        (true, false) => "True".into(),
        (false, false) => "False".into(),
    }
}
