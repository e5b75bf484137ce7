//! Knative Service URLs served by the ingress: a real `ferry-dispatcher` routes requests by
//! `Host` to revision servers on 127.0.0.1 — the split, tags, short names, the external entry,
//! activation of a revision at zero, streaming both ways, upgrades and the revision's timeouts.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferry_api::contract::{Activation, Contract, HttpRoute, RevisionTarget};
use support::{Dispatcher, eventually};

/// A revision's server: answers with its name and the `Host` it saw, echoes bodies as they
/// come, and misbehaves on request (slow to start, dripping bytes, upgrading).
struct Revision {
    addr: SocketAddr,
    /// Requests being answered now, and the most at once.
    busy: Arc<(AtomicU32, AtomicU32)>,
}

impl Revision {
    async fn start(name: &'static str) -> Revision {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let busy = Arc::new((AtomicU32::new(0), AtomicU32::new(0)));
        let app = Router::new()
            .fallback(answer)
            .with_state((name, busy.clone()));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Revision { addr, busy }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn most_at_once(&self) -> u32 {
        self.busy.1.load(Ordering::SeqCst)
    }
}

type Busy = Arc<(AtomicU32, AtomicU32)>;

async fn answer(
    State((name, busy)): State<(&'static str, Busy)>,
    mut request: Request,
) -> Response {
    let now = busy.0.fetch_add(1, Ordering::SeqCst) + 1;
    busy.1.fetch_max(now, Ordering::SeqCst);
    let query: BTreeMap<String, String> = request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let ms =
        |k: &str| Duration::from_millis(query.get(k).and_then(|v| v.parse().ok()).unwrap_or(0));
    let response = match request.uri().path() {
        "/echo" => Response::new(Body::new(request.into_body())),
        "/count" => {
            let body = axum::body::to_bytes(request.into_body(), usize::MAX)
                .await
                .unwrap();
            let sum: u64 = body.iter().map(|b| u64::from(*b)).sum();
            format!("{} {sum}", body.len()).into_response()
        }
        "/big" => {
            let mib: usize = query.get("mib").and_then(|v| v.parse().ok()).unwrap_or(1);
            let chunks = (0..mib * 16).map(|_| Ok::<_, std::io::Error>(vec![7u8; 64 << 10]));
            Body::from_stream(futures::stream::iter(chunks)).into_response()
        }
        "/slow" => {
            tokio::time::sleep(ms("ms")).await;
            name.into_response()
        }
        "/drip" => {
            let (pause, count) = (
                ms("ms"),
                query.get("n").and_then(|v| v.parse().ok()).unwrap_or(3),
            );
            let drops = futures::stream::unfold(0u32, move |i| async move {
                if i == count {
                    return None;
                }
                if i > 0 {
                    tokio::time::sleep(pause).await;
                }
                Some((Ok::<_, std::io::Error>(vec![b'.']), i + 1))
            });
            Body::from_stream(drops).into_response()
        }
        "/upgrade" => {
            let upgrade = hyper::upgrade::on(&mut request);
            tokio::spawn(async move {
                if let Ok(upgraded) = upgrade.await {
                    let mut io = hyper_util::rt::TokioIo::new(upgraded);
                    let (mut r, mut w) = tokio::io::split(&mut io);
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                }
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(header::CONNECTION, "upgrade")
                .header(header::UPGRADE, "echo")
                .body(Body::empty())
                .unwrap()
        }
        _ => {
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            format!("{name} {host}").into_response()
        }
    };
    busy.0.fetch_sub(1, Ordering::SeqCst);
    response
}

fn hosts(name: &str, ns: &str) -> Vec<String> {
    vec![
        name.to_owned(),
        format!("{name}.{ns}"),
        format!("{name}.{ns}.svc"),
        format!("{name}.{ns}.svc.cluster.local"),
    ]
}

fn target(revision: &str, url: &str, percent: u32) -> RevisionTarget {
    RevisionTarget {
        revision: revision.to_owned(),
        url: url.to_owned(),
        percent,
    }
}

fn route(ns: &str, name: &str, tag: Option<&str>, targets: Vec<RevisionTarget>) -> HttpRoute {
    let host = tag.map_or(name.to_owned(), |t| format!("{t}-{name}"));
    HttpRoute {
        route: format!("{ns}/{name}"),
        tag: tag.map(str::to_owned),
        hosts: hosts(&host, ns),
        external_hosts: if ns == "internal" {
            Vec::new()
        } else {
            vec![format!("{host}.{ns}.example.com")]
        },
        targets,
    }
}

fn with_routes(generation: u64, routes: Vec<HttpRoute>, activation: Vec<Activation>) -> Contract {
    Contract {
        routes,
        activation,
        ..support::contract(generation, Vec::new())
    }
}

async fn get(client: &reqwest::Client, base: &str, host: &str, path: &str) -> (u16, String) {
    let response = client
        .get(format!("{base}{path}"))
        .header(header::HOST, host)
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_go_by_host_to_the_split_tags_and_short_names() {
    let (a, b) = (Revision::start("a").await, Revision::start("b").await);
    let d = Dispatcher::start(
        &with_routes(
            1,
            vec![
                route(
                    "shop",
                    "cart",
                    None,
                    vec![
                        target("cart-1", &a.url(), 90),
                        target("cart-2", &b.url(), 10),
                    ],
                ),
                route(
                    "shop",
                    "cart",
                    Some("canary"),
                    vec![target("cart-2", &b.url(), 100)],
                ),
                route(
                    "internal",
                    "ledger",
                    None,
                    vec![target("ledger-1", &a.url(), 100)],
                ),
            ],
            Vec::new(),
        ),
        &["--traffic-seed", "7", "--external-listen", "127.0.0.1:0"],
    );
    let client = reqwest::Client::new();

    // The split: 1,000 requests, 10 % expected on b (binomial sd ≈ 9.5; bounds ±4 sd).
    let mut on_b = 0;
    for _ in 0..1000 {
        let (status, body) = get(&client, &d.http, "cart.shop.svc.cluster.local", "/").await;
        assert_eq!(status, 200, "{body}");
        if body.starts_with("b ") {
            on_b += 1;
        }
    }
    assert!(
        (62..=138).contains(&on_b),
        "{on_b} of 1000 on the 10 % revision"
    );

    // Every in-cluster name, any case, with a port; the revision sees the Host as sent.
    for host in [
        "cart",
        "cart.shop",
        "cart.shop.svc",
        "CART.Shop.svc.cluster.local:80",
    ] {
        let (status, body) = get(&client, &d.http, host, "/").await;
        assert_eq!(status, 200, "{host}: {body}");
        assert!(
            body.ends_with(host),
            "{host}: the Host header passes unchanged: {body}"
        );
    }
    // A tag's host reaches its revision alone.
    for _ in 0..20 {
        let (_, body) = get(&client, &d.http, "canary-cart.shop", "/").await;
        assert!(body.starts_with("b "), "{body}");
    }
    // A host that is no route is an event post, answered by the event ingress.
    let (status, body) = get(&client, &d.http, "nobody.shop", "/shop/cart").await;
    assert_eq!(status, 404);
    assert!(body.contains("no Broker or KafkaChannel"), "{body}");

    // The external entry: external hosts only; not cluster-local routes, not events.
    let external = format!("http://{}", d.process.as_ref().unwrap().addr("external"));
    let (status, body) = get(&client, &external, "canary-cart.shop.example.com", "/").await;
    assert_eq!((status, body.starts_with("b ")), (200, true), "{body}");
    let (status, body) = get(&client, &external, "cart.shop.svc.cluster.local", "/").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("from outside the cluster"), "{body}");
    let (status, _) = get(&client, &external, "ledger.internal.example.com", "/").await;
    assert_eq!(status, 404, "a cluster-local route has no external host");
    let (status, body) = get(&client, &d.http, "ledger.internal", "/").await;
    assert_eq!(
        (status, body.starts_with("a ")),
        (200, true),
        "served inside: {body}"
    );

    // A short name two namespaces use is refused with their full names.
    d.write_contract(&with_routes(
        2,
        vec![
            route("shop", "cart", None, vec![target("cart-1", &a.url(), 100)]),
            route(
                "outlet",
                "cart",
                None,
                vec![target("cart-9", &b.url(), 100)],
            ),
        ],
        Vec::new(),
    ));
    d.wait_for_generation(2);
    let (status, body) = get(&client, &d.http, "cart", "/").await;
    assert_eq!(status, 404);
    assert!(
        body.contains("cart.shop") && body.contains("cart.outlet"),
        "{body}"
    );
    let (_, body) = get(&client, &d.http, "cart.outlet", "/").await;
    assert!(body.starts_with("b "), "{body}");

    let counted =
        d.metric("ferry_dispatcher_route_requests_total{route=\"shop/cart\",code_class=\"2xx\"}");
    assert!(
        counted >= 1000.0,
        "requests are counted per route: {counted}"
    );
}

/// `Activation` of the revision at `url` with `endpoints`, one request at a time.
fn gate(url: &str, endpoints: Vec<String>, limits: (u64, u64, u64)) -> Activation {
    Activation {
        url: url.to_owned(),
        revision: "shop/cart-1".to_owned(),
        endpoints,
        container_concurrency: 1,
        timeout_ms: limits.0,
        response_start_timeout_ms: limits.1,
        idle_timeout_ms: limits.2,
    }
}

const REVISION_URL: &str = "http://cart-1.shop.svc.cluster.local";

fn activated(generation: u64, endpoints: Vec<String>, limits: (u64, u64, u64)) -> Contract {
    with_routes(
        generation,
        vec![route(
            "shop",
            "cart",
            None,
            vec![target("cart-1", REVISION_URL, 100)],
        )],
        vec![gate(REVISION_URL, endpoints, limits)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_at_zero_is_held_as_demand_until_a_replica_is_ready() {
    let a = Revision::start("a").await;
    let d = Dispatcher::start(&activated(1, Vec::new(), (60_000, 0, 0)), &[]);
    let client = reqwest::Client::new();
    let held = tokio::spawn({
        let (client, base) = (client.clone(), d.http.clone());
        async move { get(&client, &base, "cart.shop", "/").await }
    });
    // Held at zero: the autoscaler's stats show it waiting.
    let stats = eventually(
        "the held request in the stats",
        Duration::from_secs(10),
        || {
            let stats = d.admin_get(ferry_api::reports::STATS_PATH);
            stats.contains("\"waiting\":1").then_some(stats)
        },
    );
    assert!(stats.contains("shop/cart-1"), "{stats}");
    assert!(!held.is_finished(), "no replica yet: the request waits");
    d.write_contract(&activated(2, vec![a.url()], (60_000, 0, 0)));
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .expect("answered once the replica is ready")
        .unwrap();
    assert_eq!((status, body.starts_with("a ")), (200, true), "{body}");

    // containerConcurrency 1: concurrent requests reach the replica one at a time.
    let slow: Vec<_> = (0..4)
        .map(|_| {
            let (client, base) = (client.clone(), d.http.clone());
            tokio::spawn(async move { get(&client, &base, "cart.shop", "/slow?ms=150").await })
        })
        .collect();
    for s in slow {
        assert_eq!(s.await.unwrap().0, 200);
    }
    assert_eq!(
        a.most_at_once(),
        1,
        "never more than containerConcurrency in flight"
    );
    let stats = d.admin_get(ferry_api::reports::STATS_PATH);
    assert!(stats.contains("\"requests\":"), "{stats}");
}

/// Sends a raw HTTP/1.1 request head on a new connection to `addr`.
fn connect(addr: SocketAddr, head: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream
}

/// Reads until `needle` has arrived; returns everything read.
fn read_until(stream: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(needle.len()).any(|w| w == needle) {
        let n = stream
            .read(&mut buf)
            .expect("bytes before the read timeout");
        assert!(
            n > 0,
            "closed before {:?}; got {:?}",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_both_ways_and_upgrades_pass() {
    let a = Revision::start("a").await;
    let d = Dispatcher::start(&activated(1, vec![a.url()], (0, 0, 0)), &[]);
    let addr: SocketAddr = d.http.trim_start_matches("http://").parse().unwrap();

    // The echo's answer to the first chunk arrives while the request is still open: nothing
    // waits for the whole body in either direction.
    let mut stream = tokio::task::spawn_blocking(move || {
        let mut s = connect(
            addr,
            "POST /echo HTTP/1.1\r\nHost: cart.shop\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        s.write_all(b"5\r\nfirst\r\n").unwrap();
        let head = read_until(&mut s, b"first");
        assert!(
            head.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        s.write_all(b"6\r\nsecond\r\n0\r\n\r\n").unwrap();
        read_until(&mut s, b"second");
        s
    })
    .await
    .unwrap();
    let _ = stream.flush();

    // Large bodies, both ways, beyond any buffer: 48 MiB up, 64 MiB down.
    let client = reqwest::Client::new();
    let up = vec![3u8; 48 << 20];
    let answer = client
        .post(format!("{}/count", d.http))
        .header(header::HOST, "cart.shop")
        .body(up)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(answer, format!("{} {}", 48u64 << 20, 3 * (48u64 << 20)));
    let down = client
        .get(format!("{}/big?mib=64", d.http))
        .header(header::HOST, "cart.shop")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(down.len(), 64 << 20);

    // An upgrade: 101 from the revision, then bytes both ways on the same connection.
    tokio::task::spawn_blocking(move || {
        let mut s = connect(
            addr,
            "GET /upgrade HTTP/1.1\r\nHost: cart.shop\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
        );
        let head = read_until(&mut s, b"\r\n\r\n");
        assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
        s.write_all(b"ping").unwrap();
        read_until(&mut s, b"ping");
        s.write_all(b"pong").unwrap();
        read_until(&mut s, b"pong");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_revisions_timeouts_apply() {
    let a = Revision::start("a").await;
    let client = reqwest::Client::new();

    // responseStartTimeoutSeconds 0.3 s: an answer that starts after 3 s is a 504.
    let d = Dispatcher::start(&activated(1, vec![a.url()], (10_000, 300, 0)), &[]);
    let started = std::time::Instant::now();
    let (status, body) = get(&client, &d.http, "cart.shop", "/slow?ms=3000").await;
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("responseStartTimeoutSeconds"), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "cut before the revision answered"
    );
    let (status, _) = get(&client, &d.http, "cart.shop", "/slow?ms=10").await;
    assert_eq!(status, 200, "a prompt answer passes");

    // idleTimeoutSeconds 0.3 s: bytes 1 s apart are cut after the first.
    d.write_contract(&activated(2, vec![a.url()], (10_000, 0, 300)));
    d.wait_for_generation(2);
    let response = client
        .get(format!("{}/drip?ms=1000&n=3", d.http))
        .header(header::HOST, "cart.shop")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err(), "the idle answer is cut");
    // Bytes 100 ms apart are not idle.
    let (status, body) = get(&client, &d.http, "cart.shop", "/drip?ms=100&n=4").await;
    assert_eq!((status, body.as_str()), (200, "...."));

    // timeoutSeconds 0.6 s: a steady answer longer than that is cut too.
    d.write_contract(&activated(3, vec![a.url()], (600, 0, 0)));
    d.wait_for_generation(3);
    let response = client
        .get(format!("{}/drip?ms=100&n=30", d.http))
        .header(header::HOST, "cart.shop")
        .send()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    assert!(
        response.bytes().await.is_err(),
        "cut at the request's deadline"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knative_serving_tag_picks_the_tag_only_when_tag_header_routing_is_on() {
    let (a, b) = (Revision::start("a").await, Revision::start("b").await);
    let routes = || {
        vec![
            route("shop", "cart", None, vec![target("cart-1", &a.url(), 100)]),
            route(
                "shop",
                "cart",
                Some("canary"),
                vec![target("cart-2", &b.url(), 100)],
            ),
        ]
    };
    let d = Dispatcher::start(&with_routes(1, routes(), Vec::new()), &[]);
    let client = reqwest::Client::new();
    let tagged = |tag: &'static str| {
        let (client, base) = (client.clone(), d.http.clone());
        async move {
            client
                .get(format!("{base}/"))
                .header(header::HOST, "cart.shop")
                .header("Knative-Serving-Tag", tag)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    // Off (Knative's default): the header is an ordinary header.
    assert!(tagged("canary").await.starts_with("a "));
    d.write_contract(&Contract {
        tag_header_routing: true,
        ..with_routes(2, routes(), Vec::new())
    });
    d.wait_for_generation(2);
    assert!(
        tagged("canary").await.starts_with("b "),
        "the tag's revision"
    );
    assert!(
        tagged("nope").await.starts_with("a "),
        "an unknown tag: the split"
    );
    let (_, body) = get(&client, &d.http, "cart.shop", "/").await;
    assert!(body.starts_with("a "), "no header: the split");
}
