use std::collections::BTreeMap;
use std::fs;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::cart::{ADDED, CREATED, Cart, REMOVED, Record, fold, parse};
use crate::{AppState, serve};

fn rec(id: &str, kind: &str, item: Option<&str>) -> Record {
    Record {
        id: id.into(),
        kind: kind.into(),
        item: item.map(Into::into),
        by: None,
    }
}

fn items(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|&(k, v)| (k.to_owned(), v)).collect()
}

#[test]
fn fold_add_add_remove() {
    let log = [
        rec("1", CREATED, None),
        rec("2", ADDED, Some("A")),
        rec("3", ADDED, Some("B")),
        rec("4", ADDED, Some("A")),
        rec("5", REMOVED, Some("A")),
    ];
    let cart = fold(&log);
    assert_eq!(
        cart,
        Cart {
            created: true,
            items: items(&[("A", 1), ("B", 1)]),
            events: 5,
            revisions: BTreeMap::new(),
        }
    );
    let cart = fold(&[log.as_slice(), &[rec("6", REMOVED, Some("A"))]].concat());
    assert_eq!(
        cart.items,
        items(&[("B", 1)]),
        "an item at 0 leaves the map"
    );
}

#[test]
fn fold_ignores_repeated_event_ids() {
    let log = [
        rec("1", CREATED, None),
        rec("2", ADDED, Some("A")),
        rec("2", ADDED, Some("A")),
        rec("1", CREATED, None),
    ];
    assert_eq!(
        fold(&log),
        Cart {
            created: true,
            items: items(&[("A", 1)]),
            events: 2,
            revisions: BTreeMap::new(),
        }
    );
}

#[test]
fn fold_ignores_removing_an_absent_item() {
    let log = [
        rec("1", REMOVED, Some("A")),
        rec("2", ADDED, Some("B")),
        rec("3", REMOVED, Some("B")),
        rec("4", REMOVED, Some("B")),
    ];
    assert_eq!(
        fold(&log),
        Cart {
            created: false,
            items: BTreeMap::new(),
            events: 4,
            revisions: BTreeMap::new(),
        }
    );
}

fn binary(id: Option<&str>, kind: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("ce-specversion", HeaderValue::from_static("1.0"));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if let Some(id) = id {
        headers.insert("ce-id", HeaderValue::from_str(id).unwrap());
    }
    if let Some(kind) = kind {
        headers.insert("ce-type", HeaderValue::from_str(kind).unwrap());
    }
    headers
}

#[test]
fn parses_binary_and_structured_events() {
    let (cart, record) = parse(
        &binary(Some("e1"), Some(ADDED)),
        br#"{"cart":"c-1","item":"A"}"#,
    )
    .unwrap();
    assert_eq!(
        (cart.as_str(), record),
        ("c-1", rec("e1", ADDED, Some("A")))
    );

    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/cloudevents+json; charset=utf-8"),
    );
    let body = json!({"specversion": "1.0", "id": "e2", "type": CREATED, "source": "/s", "data": {"cart": "c_2"}});
    let (cart, record) = parse(&headers, body.to_string().as_bytes()).unwrap();
    assert_eq!((cart.as_str(), record), ("c_2", rec("e2", CREATED, None)));
}

#[test]
fn rejects_invalid_events_with_a_reason() {
    let item = br#"{"cart":"c1","item":"A"}"#;
    let cases: [(HeaderMap, &[u8], &str); 10] = [
        (binary(None, Some(ADDED)), item, "missing ce-id header"),
        (binary(Some("e"), None), item, "missing ce-type header"),
        (
            binary(Some("e"), Some("com.example.cart.paid")),
            item,
            "unknown event type \"com.example.cart.paid\"",
        ),
        (
            binary(Some("e"), Some(ADDED)),
            b"not json",
            "data is not JSON",
        ),
        (
            binary(Some("e"), Some(ADDED)),
            b"[1]",
            "data is not a JSON object",
        ),
        (
            binary(Some("e"), Some(CREATED)),
            b"{}",
            "data.cart is missing or empty",
        ),
        (
            binary(Some("e"), Some(CREATED)),
            br#"{"cart":7}"#,
            "data.cart is not a string",
        ),
        (
            binary(Some("e"), Some(ADDED)),
            br#"{"cart":"c1","item":""}"#,
            "data.item is missing or empty",
        ),
        (
            binary(Some("e"), Some(REMOVED)),
            br#"{"cart":"c1"}"#,
            "data.item is missing or empty",
        ),
        (
            binary(Some("e"), Some(CREATED)),
            br#"{"cart":"../etc"}"#,
            "invalid cart id \"../etc\"",
        ),
    ];
    for (headers, body, want) in cases {
        let reason = parse(&headers, body).unwrap_err();
        assert!(
            reason.starts_with(want),
            "{reason:?} should start with {want:?}"
        );
        assert!(!reason.contains('\n'), "{reason:?} is one line");
    }
    let long = format!(r#"{{"cart":"{}"}}"#, "x".repeat(65));
    assert!(
        parse(&binary(Some("e"), Some(CREATED)), long.as_bytes())
            .unwrap_err()
            .starts_with("invalid cart id")
    );
    let mut structured = HeaderMap::new();
    structured.insert(
        "content-type",
        HeaderValue::from_static("application/cloudevents+json"),
    );
    let no_id = json!({"specversion": "1.0", "type": CREATED, "data": {"cart": "c1"}}).to_string();
    assert_eq!(
        parse(&structured, no_id.as_bytes()).unwrap_err(),
        "missing id"
    );
}

async fn send(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    kind: &str,
    data: Value,
) -> reqwest::Response {
    client
        .post(format!("{base}/"))
        .header("ce-specversion", "1.0")
        .header("ce-id", id)
        .header("ce-type", kind)
        .header("ce-source", "/test")
        .header("ce-partitionkey", "c1")
        .header("content-type", "application/json")
        .body(data.to_string())
        .send()
        .await
        .unwrap()
}

async fn get_json(client: &reqwest::Client, url: &str) -> (StatusCode, Value) {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.headers()["x-revision"], "cart-projection-00001");
    let status = response.status();
    (
        status,
        serde_json::from_str(&response.text().await.unwrap()).unwrap(),
    )
}

#[tokio::test]
async fn serves_the_cart_walkthrough() {
    let state_dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState::new(
        state_dir.path().join("carts"),
        Some("cart-projection-00001".into()),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, state, async move { drop(stopped.await) }));
    let client = reqwest::Client::new();

    let steps = [
        ("e1", CREATED, json!({"cart": "c1"})),
        ("e2", ADDED, json!({"cart": "c1", "item": "A"})),
        ("e3", ADDED, json!({"cart": "c1", "item": "B"})),
        ("e4", REMOVED, json!({"cart": "c1", "item": "A"})),
        ("e3", ADDED, json!({"cart": "c1", "item": "B"})), // redelivered
    ];
    for (id, kind, data) in steps {
        let response = send(&client, &base, id, kind, data).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.unwrap(), "");
    }
    let want = json!({"cart": "c1", "created": true, "items": {"B": 1}, "events": 4, "revisions": {"cart-projection-00001": 4}});
    assert_eq!(
        get_json(&client, &format!("{base}/carts/c1")).await,
        (StatusCode::OK, want)
    );
    let log = fs::read_to_string(state_dir.path().join("carts/c1.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 5);
    assert_eq!(
        log.lines().next().unwrap(),
        r#"{"id":"e1","type":"com.example.cart.created","by":"cart-projection-00001"}"#
    );

    let bad = send(&client, &base, "e5", ADDED, json!({"cart": "c1"})).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(bad.text().await.unwrap(), "data.item is missing or empty");
    let stats = json!({"revision": "cart-projection-00001", "handled": 5});
    assert_eq!(
        get_json(&client, &format!("{base}/stats")).await,
        (StatusCode::OK, stats)
    );
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");

    let wiped = client.delete(format!("{base}/carts")).send().await.unwrap();
    assert_eq!(wiped.status(), StatusCode::NO_CONTENT);
    let gone = json!({"error": "no events for cart c1"});
    assert_eq!(
        get_json(&client, &format!("{base}/carts/c1")).await,
        (StatusCode::NOT_FOUND, gone)
    );

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[test]
fn concurrent_appends_never_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let dir = dir.path().to_owned();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let item = "x".repeat(500 + w * 100);
                    let record = rec(&format!("{w}-{i}"), ADDED, Some(&item));
                    crate::store::append(&dir, "c1", &record).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let records = crate::store::read_cart(dir.path(), "c1").unwrap().unwrap();
    assert_eq!(fold(&records).events, 1600);
}
