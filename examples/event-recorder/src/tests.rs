use axum::http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::{Recorder, base64, parse, percent_decode, serve};

#[test]
fn encodes_base64_and_decodes_percent_escapes() {
    let cases = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
    ];
    for (raw, want) in cases {
        assert_eq!(base64(raw.as_bytes()), want);
    }
    assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    assert_eq!(
        percent_decode(b"a%20b%22%25c%e2%82%ac%2"),
        "a b\"%c\u{20ac}%2"
    );
}

#[test]
fn parses_binary_data_by_content_type() {
    let mut headers = HeaderMap::new();
    headers.insert("ce-specversion", HeaderValue::from_static("1.0"));
    headers.insert("content-type", HeaderValue::from_static("text/plain"));
    assert_eq!(parse(&headers, b"{\"a\":1}").unwrap()["data"], "{\"a\":1}");
    assert_eq!(
        parse(&headers, &[0xff, 0x00]).unwrap()["data_base64"],
        "/wA="
    );
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/vnd.x+json; charset=utf-8"),
    );
    assert_eq!(
        parse(&headers, b"{\"a\":1}").unwrap()["data"],
        json!({"a": 1})
    );
    assert_eq!(parse(&headers, b"{oops").unwrap()["data"], "{oops");
    assert!(parse(&headers, b"").unwrap().get("data").is_none());
}

#[test]
fn rejects_requests_that_are_not_cloudevents() {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    assert!(
        parse(&headers, b"{}")
            .unwrap_err()
            .starts_with("not a CloudEvent")
    );
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/cloudevents+json"),
    );
    assert_eq!(
        parse(&headers, b"{\"id\":\"1\"}").unwrap_err(),
        "structured event has no specversion"
    );
    assert!(
        parse(&headers, b"[]")
            .unwrap_err()
            .starts_with("structured event is not a JSON object")
    );
}

#[tokio::test]
async fn records_binary_and_structured_events() {
    let dir = tempfile::tempdir().unwrap();
    let events_file = dir.path().join("events.jsonl");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move { drop(stopped.await) };
    let server = tokio::spawn(serve(
        listener,
        Recorder::new(Some(events_file.clone()), None, None, false),
        shutdown,
    ));
    let client = reqwest::Client::new();

    let dead_letter = client
        .post(format!("{base}/"))
        .header("ce-specversion", "1.0")
        .header("ce-id", "e4")
        .header("ce-type", "com.example.cart.item.added")
        .header("ce-source", "/cart%20service")
        .header("ce-partitionkey", "c1")
        .header("ce-knativeerrordest", "http://127.0.0.1:8080/")
        .header("ce-knativeerrorcode", "400")
        .header("ce-knativeerrordata", "ZGF0YS5pdGVtIGlzIG1pc3Npbmc=")
        .header("content-type", "application/json")
        .body(r#"{"cart":"c1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(dead_letter.status(), StatusCode::OK);
    assert_eq!(dead_letter.text().await.unwrap(), "");

    let structured = json!({
        "specversion": "1.0", "id": "e5", "type": "com.example.cart.created", "source": "/cart",
        "datacontenttype": "application/json", "data": {"cart": "c2"},
        "knativeerrordest": "http://127.0.0.1:8080/", "knativeerrorcode": "500",
    });
    let response = client
        .post(format!("{base}/dead-letters"))
        .header(
            "content-type",
            "application/cloudevents+json; charset=utf-8",
        )
        .body(structured.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let not_an_event = client
        .post(format!("{base}/"))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(not_an_event.status(), StatusCode::BAD_REQUEST);
    assert!(
        not_an_event
            .text()
            .await
            .unwrap()
            .starts_with("not a CloudEvent")
    );

    let binary = json!({
        "specversion": "1.0", "id": "e4", "type": "com.example.cart.item.added",
        "source": "/cart service", "partitionkey": "c1",
        "knativeerrordest": "http://127.0.0.1:8080/", "knativeerrorcode": "400",
        "knativeerrordata": "ZGF0YS5pdGVtIGlzIG1pc3Npbmc=",
        "datacontenttype": "application/json", "data": {"cart": "c1"},
    });
    let response = client.get(format!("{base}/events")).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    let events: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(events, json!([binary, structured]));
    let lines: Vec<Value> = std::fs::read_to_string(&events_file)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines, [binary, structured]);
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn replies_with_the_same_data_when_asked_to() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move { drop(stopped.await) };
    let recorder = Recorder::new(None, Some("com.example.order.checked".into()), None, false);
    let server = tokio::spawn(serve(listener, recorder, shutdown));
    let response = reqwest::Client::new()
        .post(format!("{base}/"))
        .header("ce-specversion", "1.0")
        .header("ce-id", "o1")
        .header("ce-source", "/shop")
        .header("ce-type", "com.example.order.placed")
        .header("content-type", "application/json")
        .body(r#"{"order":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let h = response.headers();
    assert_eq!(h["ce-id"], "o1-reply");
    assert_eq!(h["ce-type"], "com.example.order.checked");
    assert_eq!(h["ce-specversion"], "1.0");
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(response.text().await.unwrap(), r#"{"order":1}"#);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn records_other_posts_raw_when_asked_to_and_refuses_them_otherwise() {
    for raw in [false, true] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move { drop(stopped.await) };
        let server = tokio::spawn(serve(
            listener,
            Recorder::new(None, None, None, raw),
            shutdown,
        ));
        let client = reqwest::Client::new();
        let response = client
            .post(format!("{base}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(vec![0x0a, 0x00, 0xff])
            .send()
            .await
            .unwrap();
        let listed = client
            .get(format!("{base}/events"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let events: serde_json::Value = serde_json::from_slice(&listed).unwrap();
        if raw {
            assert_eq!(response.status(), 200);
            assert_eq!(
                response.bytes().await.unwrap().len(),
                0,
                "an empty OTLP response"
            );
            assert_eq!(
                events,
                serde_json::json!([{"path": "/v1/traces", "content_type": "application/x-protobuf", "body_base64": "CgD/"}])
            );
        } else {
            assert_eq!(response.status(), 400);
            assert_eq!(events, serde_json::json!([]));
        }
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn reports_how_many_events_it_held_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move { drop(stopped.await) };
    let recorder = Recorder::new(
        None,
        None,
        Some(std::time::Duration::from_millis(200)),
        false,
    );
    let server = tokio::spawn(serve(listener, recorder, shutdown));
    let client = reqwest::Client::new();
    let post = |id: &'static str| {
        client
            .post(format!("{base}/"))
            .header("ce-specversion", "1.0")
            .header("ce-id", id)
            .header("ce-source", "/t")
            .header("ce-type", "t")
            .send()
    };
    let (a, b, c) = tokio::join!(post("1"), post("2"), post("3"));
    for r in [a, b, c] {
        assert_eq!(r.unwrap().status(), 200);
    }
    let stats: Value = serde_json::from_str(
        &client
            .get(format!("{base}/stats"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(stats, json!({"received": 3, "max_in_flight": 3}));
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
