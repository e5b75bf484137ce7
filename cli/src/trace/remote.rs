//! `ferry trace --dispatcher URL`: the journal through a dispatcher's admin endpoint
//! ([`ferry_dispatcher::journal::endpoint`]) instead of the log, with the same output and exit
//! codes. The dispatcher reads the journal where it runs, so this needs only its admin port:
//! in Kubernetes, `kubectl port-forward` to it.

use std::time::Duration;

use ferry_dispatcher::journal::Entry;
use ferry_dispatcher::journal::endpoint::{EVENT_CAUGHT_UP, EVENT_ENTRY, EVENT_ERROR, KEEP_ALIVE};
use ferry_dispatcher::journal::trace::READ_DEADLINE;
use reqwest::Url;

use super::Trace;
use crate::{Error, Result};

/// How long connecting to the dispatcher may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the dispatcher at `url` for the event's entries and prints them as `ferry trace`
/// does; with `--follow`, prints each new entry until interrupted or the dispatcher ends the
/// stream.
///
/// # Errors
/// `url` is not an http(s) URL; the dispatcher cannot be reached or refuses the request (its
/// message says why); the follow stream fails; the journal has nothing on the event
/// ([`Error::NotJournaled`]).
pub fn trace_and_print(trace: &Trace, url: &str) -> Result<()> {
    let endpoint = event_url(url, trace)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(async {
        if trace.follow {
            follow(trace, url, endpoint).await
        } else {
            let entries = entries(trace, url, endpoint).await?;
            trace.print_found(&entries)?;
            trace.found(&entries, format!("at the dispatcher {url}"))
        }
    })
}

/// `<url>/journal/events/<id>?source=&since=&wait=[&follow=true]`, the id percent-encoded.
///
/// # Errors
/// [`Error::NotADispatcherUrl`].
fn event_url(url: &str, trace: &Trace) -> Result<Url> {
    let not_a_url = |reason: String| Error::NotADispatcherUrl {
        url: url.to_owned(),
        reason,
    };
    let mut endpoint = Url::parse(url).map_err(|e| not_a_url(e.to_string()))?;
    if !matches!(endpoint.scheme(), "http" | "https") {
        return Err(not_a_url(format!("the scheme is {}", endpoint.scheme())));
    }
    endpoint
        .path_segments_mut()
        .map_err(|()| not_a_url("it cannot have a path".into()))?
        .pop_if_empty()
        .extend(["journal", "events", &trace.event_id]);
    {
        let mut query = endpoint.query_pairs_mut();
        if let Some(source) = &trace.source {
            query.append_pair("source", source);
        }
        query
            .append_pair("since", &trace.since.to_string())
            .append_pair("wait", &format!("{}ms", trace.wait.as_millis()));
        if trace.follow {
            query.append_pair("follow", "true");
        }
    }
    Ok(endpoint)
}

/// Sends the request; a non-200 answer is [`Error::DispatcherRefused`] with its message.
async fn get(client: &reqwest::Client, url: &str, endpoint: Url) -> Result<reqwest::Response> {
    let unreachable = |source| Error::DispatcherUnreachable {
        url: url.to_owned(),
        source,
    };
    let response = client.get(endpoint).send().await.map_err(unreachable)?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    let message = match text.trim() {
        "" if status == reqwest::StatusCode::NOT_FOUND => {
            "no journal endpoint here; pass a dispatcher's admin address (its --admin-listen), of a dispatcher as new as this ferry".to_owned()
        }
        "" => status.canonical_reason().unwrap_or("no message").to_owned(),
        message => message.to_owned(),
    };
    Err(Error::DispatcherRefused {
        url: url.to_owned(),
        status: status.as_u16(),
        message,
    })
}

/// The entries the journal holds (the dispatcher waits up to `--wait` when it has none).
async fn entries(trace: &Trace, url: &str, endpoint: Url) -> Result<Vec<Entry>> {
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(trace.wait + READ_DEADLINE + CONNECT_TIMEOUT)
        .build()
        .map_err(Error::HttpClient)?;
    let response = get(&client, url, endpoint).await?;
    let stream_failed = |message: String| Error::DispatcherStream {
        url: url.to_owned(),
        message,
    };
    let body = response
        .bytes()
        .await
        .map_err(|e| stream_failed(e.to_string()))?;
    serde_json::from_slice(&body)
        .map_err(|e| stream_failed(format!("the answer is not a list of journal entries: {e}")))
}

/// Reads the follow stream: the entries the journal held, printed as one batch when the
/// dispatcher says it caught up, then each new one as it comes.
async fn follow(trace: &Trace, url: &str, endpoint: Url) -> Result<()> {
    // No overall timeout: the stream lasts until interrupted. The dispatcher sends a
    // keep-alive at least every KEEP_ALIVE, so a read this long without a byte means it is gone.
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(trace.wait + READ_DEADLINE + 3 * KEEP_ALIVE)
        .build()
        .map_err(Error::HttpClient)?;
    let mut response = get(&client, url, endpoint).await?;
    let stream_failed = |message: String| Error::DispatcherStream {
        url: url.to_owned(),
        message,
    };
    let mut events = EventStream::default();
    let mut held: Option<Vec<Entry>> = Some(Vec::new());
    loop {
        let chunk = response
            .chunk()
            .await
            .map_err(|e| stream_failed(e.to_string()))?;
        let Some(chunk) = chunk else {
            return Err(stream_failed(
                "the dispatcher ended the stream (it is shutting down or restarting); run ferry trace again".into(),
            ));
        };
        for (name, data) in events.push(&chunk) {
            match name.as_str() {
                EVENT_ENTRY => {
                    let entry: Entry = serde_json::from_str(&data).map_err(|e| {
                        stream_failed(format!("an entry that does not parse ({e}): {data}"))
                    })?;
                    match &mut held {
                        Some(held) => held.push(entry),
                        None => trace.print_new(&entry)?,
                    }
                }
                EVENT_CAUGHT_UP => {
                    if let Some(held) = held.take() {
                        trace.print_found(&held)?;
                    }
                }
                EVENT_ERROR => return Err(stream_failed(data)),
                _ => {}
            }
        }
    }
}

/// A server-sent-event stream's parser: bytes in, `(event name, data)` out per event; comments
/// (keep-alives) and fields other than `event` and `data` are skipped.
#[derive(Default)]
struct EventStream {
    /// Bytes of a line not yet ended.
    line: Vec<u8>,
    name: String,
    data: Vec<String>,
}

impl EventStream {
    /// The events `bytes` complete.
    fn push(&mut self, bytes: &[u8]) -> Vec<(String, String)> {
        let mut events = Vec::new();
        for &b in bytes {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            let line = String::from_utf8_lossy(&self.line).into_owned();
            self.line.clear();
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                if !self.data.is_empty() || !self.name.is_empty() {
                    let name = std::mem::take(&mut self.name);
                    let name = if name.is_empty() {
                        "message".into()
                    } else {
                        name
                    };
                    events.push((name, std::mem::take(&mut self.data).join("\n")));
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.name = value.to_owned(),
                "data" => self.data.push(value.to_owned()),
                _ => {}
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        trace: Trace,
    }

    fn trace(args: &[&str]) -> Trace {
        Command::parse_from(["ferry-trace"].iter().chain(args)).trace
    }

    #[test]
    fn the_url_carries_the_flags_and_an_encoded_id() {
        let t = trace(&[
            "order/17 a",
            "--source",
            "/shop",
            "--since",
            "42",
            "--wait",
            "1.5s",
        ]);
        let url = event_url("http://127.0.0.1:9090", &t).unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9090/journal/events/order%2F17%20a?source=%2Fshop&since=42&wait=1500ms"
        );
        let t = trace(&["e", "-f"]);
        let url = event_url("https://ferry.example.com/admin/", &t).unwrap();
        assert_eq!(
            url.as_str(),
            "https://ferry.example.com/admin/journal/events/e?since=earliest&wait=2000ms&follow=true"
        );
        for bad in ["127.0.0.1:9090", "ftp://x/", "not a url"] {
            let err = event_url(bad, &t).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}: {err}");
            assert!(err.to_string().contains("--dispatcher"), "{err}");
        }
    }

    #[test]
    fn server_sent_events_split_anywhere_parse_whole() {
        let stream = "event: entry\ndata: {\"a\":1}\n\n: keep-alive\n\nevent: caught-up\r\ndata: 1\r\n\r\nevent: error\ndata: two\ndata: lines\n\n";
        let whole = EventStream::default().push(stream.as_bytes());
        assert_eq!(
            whole,
            [
                ("entry".to_owned(), "{\"a\":1}".to_owned()),
                ("caught-up".to_owned(), "1".to_owned()),
                ("error".to_owned(), "two\nlines".to_owned()),
            ]
        );
        let mut parser = EventStream::default();
        let mut split = Vec::new();
        for b in stream.as_bytes() {
            split.extend(parser.push(std::slice::from_ref(b)));
        }
        assert_eq!(split, whole);
    }
}
