//! Entry points of the coverage-guided fuzz targets in `fuzz/` (cargo-fuzz), kept in the crate
//! so that `tests/fuzz_corpus.rs` replays their corpora and every input that once failed
//! through the same code on a stable `cargo test`. Not part of the dispatcher's API.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::binding;

/// Feeds one input to the ingress's CloudEvents parsing ([`binding::from_ingress`]: binary,
/// structured and batched mode). The input is an HTTP head and body: `name: value` lines
/// (names or values HTTP cannot carry are skipped), an empty line, then the body. Every event
/// accepted must survive what egress does with it: sent on in structured and in binary mode,
/// it parses again.
///
/// # Panics
/// When an accepted event does not parse again: a bug.
pub fn ingress(data: &[u8]) {
    let (headers, body) = request(data);
    let Ok(events) = binding::from_ingress(&headers, body) else {
        return;
    };
    for event in events {
        for structured in [true, false] {
            let (headers, body) = binding::to_http(&event, structured);
            if let Err(e) = binding::from_http(&headers, body) {
                panic!("{event} does not parse again (structured: {structured}): {e}");
            }
        }
    }
}

/// Splits an input into headers and body at its first empty line.
fn request(data: &[u8]) -> (HeaderMap, &[u8]) {
    let mut headers = HeaderMap::new();
    let mut rest = data;
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..end];
        rest = &rest[end + 1..];
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii();
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    (headers, rest)
}
