//! `ferry send`: one CloudEvent to an ingress, in binary mode, and the answer printed.

use std::process::ExitCode;
use std::time::Duration;

use cloudevents::{AttributesReader, Event, EventBuilder, EventBuilderV10};
use ferry_dispatcher::binding;

use crate::{Error, Result};

/// How long the ingress may take to answer.
const TIMEOUT: Duration = Duration::from_secs(30);

/// What `ferry send` was asked to send (its flags).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct SendRequest {
    /// `<namespace>/<name>` of a Broker or KafkaChannel, or a full URL.
    pub target: String,
    /// The CloudEvents `type`.
    #[arg(long = "type")]
    pub ty: String,
    /// The CloudEvents `source`.
    #[arg(long)]
    pub source: String,
    /// The CloudEvents `id` (a random UUID by default).
    #[arg(long)]
    pub id: Option<String>,
    /// JSON data, or @path to send a file's bytes.
    #[arg(long)]
    pub data: Option<String>,
    /// An extension attribute name=value (repeatable).
    #[arg(long = "ext")]
    pub extensions: Vec<String>,
    /// Ingress base URL for `<namespace>/<name>` targets.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "FERRY_INGRESS")]
    pub ingress: String,
}

/// Runs `ferry send`: prints the answer's status and body (and the event's id when accepted);
/// exit 0 on a 2xx, 1 on any other status, 2 for bad arguments, 3 when the ingress cannot be
/// reached.
pub fn command(request: &SendRequest) -> ExitCode {
    match send_and_print(request) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => e.report("send"),
    }
}

/// Sends and prints the answer; `true` when the ingress accepted the event.
fn send_and_print(request: &SendRequest) -> Result<bool> {
    let url = target_url(&request.target, &request.ingress)?;
    let event = build_event(request)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let (status, body) = runtime.block_on(send(&url, &event))?;
    let accepted = (200..300).contains(&status);
    let answer = if accepted {
        // The id too: it is what `ferry trace` takes.
        format!("{status} id={} {}\n", event.id(), body.trim_end())
    } else {
        format!("{status} {}\n", body.trim_end())
    };
    crate::print(&answer)?;
    Ok(accepted)
}

/// The URL to post to.
///
/// # Errors
/// [`Error::NotATarget`]: neither a URL nor `<namespace>/<name>`.
pub fn target_url(target: &str, ingress: &str) -> Result<String> {
    if target.starts_with("http://") || target.starts_with("https://") {
        return Ok(target.to_owned());
    }
    match target.split('/').collect::<Vec<_>>().as_slice() {
        [ns, name] if !ns.is_empty() && !name.is_empty() => {
            Ok(format!("{}/{ns}/{name}", ingress.trim_end_matches('/')))
        }
        _ => Err(Error::NotATarget {
            target: target.to_owned(),
        }),
    }
}

/// Builds the event.
///
/// # Errors
/// An unreadable `@file`, `--data` that is not JSON, or a malformed or invalid `--ext`.
pub fn build_event(req: &SendRequest) -> Result<Event> {
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
            return Err(Error::ExtensionNotNameValue { ext: ext.clone() });
        };
        if !binding::valid_attribute_name(name) {
            return Err(Error::ExtensionName {
                name: name.to_owned(),
            });
        }
        builder = builder.extension(name, value);
    }
    if let Some(data) = &req.data {
        let bytes = match data.strip_prefix('@') {
            Some(path) => std::fs::read(path).map_err(|source| Error::DataFile {
                path: path.to_owned(),
                source,
            })?,
            None => {
                serde_json::from_str::<serde_json::Value>(data).map_err(Error::DataNotJson)?;
                data.clone().into_bytes()
            }
        };
        builder = match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(json) => builder.data("application/json", json),
            Err(_) => builder.data("application/octet-stream", bytes),
        };
    }
    builder.build().map_err(Error::NotACloudEvent)
}

/// Posts the event; returns the HTTP status and body.
///
/// # Errors
/// [`Error::IngressUnreachable`]: no answer within 30 s.
pub async fn send(url: &str, event: &Event) -> Result<(u16, String)> {
    let (headers, body) = binding::to_http(event, false);
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .map_err(Error::HttpClient)?;
    let response = client
        .post(url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|source| Error::IngressUnreachable {
            url: url.to_owned(),
            source,
        })?;
    let status = response.status().as_u16();
    Ok((status, response.text().await.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
                .to_string()
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
            build_event(&r).unwrap_err().to_string()
        };
        assert!(bad(|r| r.data = Some("{nope".into())).starts_with("--data is not valid JSON"));
        assert!(
            bad(|r| r.data = Some("@/nonexistent/file".into())).contains("cannot read the file")
        );
        assert!(bad(|r| r.extensions = vec!["noequals".into()]).contains("is not name=value"));
        assert!(bad(|r| r.extensions = vec!["Bad_Name=x".into()]).contains("lowercase letters"));
    }
}
