//! `ferry send`: one CloudEvent to an ingress, in binary mode, and the answer printed.

use cloudevents::{Event, EventBuilder, EventBuilderV10};
use ferry_dispatcher::binding;

/// What `ferry send` was asked to send.
#[derive(Clone, Debug, Default)]
pub struct SendRequest {
    /// `http(s)://…` or `<namespace>/<broker-or-channel>`.
    pub target: String,
    /// Base URL of the ingress for `<namespace>/<name>` targets.
    pub ingress: String,
    /// `type` attribute.
    pub ty: String,
    /// `source` attribute.
    pub source: String,
    /// `id` attribute; a random UUID when unset.
    pub id: Option<String>,
    /// `--data`: JSON text, or `@path` to read a file.
    pub data: Option<String>,
    /// `--ext k=v` extensions.
    pub extensions: Vec<String>,
}

/// A bad `ferry send` argument: what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SendError(pub String);

/// The URL to post to.
///
/// # Errors
/// A target that is neither a URL nor `<namespace>/<name>`.
pub fn target_url(target: &str, ingress: &str) -> Result<String, SendError> {
    if target.starts_with("http://") || target.starts_with("https://") {
        return Ok(target.to_owned());
    }
    match target.split('/').collect::<Vec<_>>().as_slice() {
        [ns, name] if !ns.is_empty() && !name.is_empty() => {
            Ok(format!("{}/{ns}/{name}", ingress.trim_end_matches('/')))
        }
        _ => Err(SendError(format!(
            "target {target:?} is neither a URL nor <namespace>/<name>; use e.g. default/orders or http://127.0.0.1:8080/default/orders"
        ))),
    }
}

/// Builds the event.
///
/// # Errors
/// An unreadable `@file`, `--data` that is not JSON, or a malformed or invalid `--ext`.
pub fn build_event(req: &SendRequest) -> Result<Event, SendError> {
    let id = req
        .id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut builder = EventBuilderV10::new()
        .id(id)
        .ty(req.ty.clone())
        .source(req.source.clone());
    for ext in &req.extensions {
        let Some((name, value)) = ext.split_once('=') else {
            return Err(SendError(format!(
                "--ext {ext:?} is not name=value; write e.g. --ext region=eu"
            )));
        };
        if !binding::valid_attribute_name(name) {
            return Err(SendError(format!(
                "--ext {name:?}: extension names use only lowercase letters a-z and digits 0-9"
            )));
        }
        builder = builder.extension(name, value);
    }
    if let Some(data) = &req.data {
        let bytes = match data.strip_prefix('@') {
            Some(path) => std::fs::read(path)
                .map_err(|e| SendError(format!("--data @{path}: cannot read the file: {e}")))?,
            None => {
                serde_json::from_str::<serde_json::Value>(data).map_err(|e| {
                    SendError(format!(
                        "--data is not valid JSON ({e}); pass JSON, or @file for other content"
                    ))
                })?;
                data.clone().into_bytes()
            }
        };
        builder = match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(json) => builder.data("application/json", json),
            Err(_) => builder.data("application/octet-stream", bytes),
        };
    }
    builder.build().map_err(|e| {
        SendError(format!(
            "not a valid CloudEvent: {e}; check --type and --source"
        ))
    })
}

/// Posts the event; returns the HTTP status and body.
///
/// # Errors
/// The ingress could not be reached within 30 s.
pub async fn send(url: &str, event: &Event) -> Result<(u16, String), SendError> {
    let (headers, body) = binding::to_http(event, false);
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| SendError(e.to_string()))?;
    let response = client
        .post(url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            SendError(format!(
                "cannot reach {url}: {e}; is `ferry dev` or the dispatcher running?"
            ))
        })?;
    let status = response.status().as_u16();
    Ok((status, response.text().await.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudevents::AttributesReader;

    fn req() -> SendRequest {
        SendRequest {
            ty: "cart.created".into(),
            source: "/cli".into(),
            ..SendRequest::default()
        }
    }

    #[test]
    fn targets() {
        assert_eq!(
            target_url("default/orders", "http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080/default/orders"
        );
        assert_eq!(target_url("http://x/y", "unused").unwrap(), "http://x/y");
        assert!(
            target_url("orders", "http://h")
                .unwrap_err()
                .0
                .contains("neither a URL nor <namespace>/<name>")
        );
    }

    #[test]
    fn events_and_bad_arguments() {
        let mut r = req();
        r.id = Some("c-1".into());
        r.data = Some(r#"{"cart":"c-1"}"#.into());
        r.extensions = vec!["partitionkey=c-1".into()];
        let e = build_event(&r).unwrap();
        assert_eq!(e.id(), "c-1");
        assert_eq!(e.datacontenttype(), Some("application/json"));
        assert_eq!(
            binding::attribute(&e, "partitionkey").as_deref(),
            Some("c-1")
        );
        assert!(
            !build_event(&req()).unwrap().id().is_empty(),
            "a random id when none is given"
        );

        let bad = |f: fn(&mut SendRequest)| {
            let mut r = req();
            f(&mut r);
            build_event(&r).unwrap_err().0
        };
        assert!(bad(|r| r.data = Some("{nope".into())).starts_with("--data is not valid JSON"));
        assert!(
            bad(|r| r.data = Some("@/nonexistent/file".into())).contains("cannot read the file")
        );
        assert!(bad(|r| r.extensions = vec!["noequals".into()]).contains("is not name=value"));
        assert!(bad(|r| r.extensions = vec!["Bad_Name=x".into()]).contains("lowercase letters"));
    }
}
