//! [`super::run`] against a fake API server that answers every list with what the test holds,
//! 404s every named read and write it does not hold, and keeps watches open: the controllers
//! start, report ready once every store is listed, and drain when told to stop — a reconcile in
//! flight finishes, nothing new starts, and what outlives the deadline is aborted.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tower_test::mock::{self, Handle, SendResponse};

use crate::args::Args;
use crate::http::Metrics;
use crate::topics::Topics;

/// How long any step may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A Ferry Broker without a finalizer: its controller's first request adds one.
fn broker() -> Value {
    json!({
        "apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
        "metadata": {"name": "orders", "namespace": "ns", "uid": "u1", "generation": 1,
                     "resourceVersion": "1",
                     "annotations": {"eventing.knative.dev/broker.class": "Ferry"}},
        "spec": {},
    })
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::from(serde_json::to_vec(body).expect("JSON")));
    *response.status_mut() = status;
    response
}

/// Plays the API server until the client is gone: lists of brokers hold `brokers`, every other
/// list is empty, watches never answer, a PATCH of a Broker goes to `held` for the test to
/// answer, everything else is 404.
async fn serve(
    mut handle: Handle<Request<Body>, Response<Body>>,
    brokers: Vec<Value>,
    held: mpsc::Sender<SendResponse<Response<Body>>>,
) {
    let mut watches = Vec::new();
    while let Some((request, send)) = handle.next_request().await {
        let (method, uri) = (request.method().clone(), request.uri().clone());
        let (path, query) = (uri.path(), uri.query().unwrap_or_default());
        let collection = path.rsplit('/').next().unwrap_or_default();
        let listed = [
            "brokers",
            "triggers",
            "kafkachannels",
            "subscriptions",
            "kafkasources",
            "services",
            "configurations",
            "revisions",
            "routes",
            "deployments",
            "endpointslices",
        ];
        if query.contains("watch=true") {
            watches.push(send);
        } else if method == Method::GET && listed.contains(&collection) {
            let items = if collection == "brokers" {
                brokers.clone()
            } else {
                vec![]
            };
            let list = json!({"apiVersion": "v1", "kind": "List",
                              "metadata": {"resourceVersion": "1"}, "items": items});
            send.send_response(json_response(StatusCode::OK, &list));
        } else if method == Method::PATCH && path.contains("/brokers/") {
            let _ = held.send(send).await;
        } else {
            let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                "reason": "NotFound", "code": 404});
            send.send_response(json_response(StatusCode::NOT_FOUND, &status));
        }
    }
}

/// The operator's controllers over a fake API server holding `brokers`: the run, a receiver of
/// held Broker patches, the stop trigger (with the drain deadline) and the readiness signal.
struct Running {
    run: JoinHandle<()>,
    held: mpsc::Receiver<SendResponse<Response<Body>>>,
    stop: oneshot::Sender<Duration>,
    ready: oneshot::Receiver<()>,
}

fn start(brokers: Vec<Value>) -> Running {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let (held_tx, held) = mpsc::channel(4);
    tokio::spawn(serve(handle, brokers, held_tx));
    let client = Client::new(service, "default");
    let mut args = Args::defaults();
    args.dispatcher_admin_urls = vec!["http://127.0.0.1:9".into()];
    let topics = Arc::new(Topics::new("127.0.0.1:9").expect("a Kafka admin client"));
    let (ready_tx, ready) = oneshot::channel();
    let (stop, stopped) = oneshot::channel::<Duration>();
    let run = tokio::spawn(super::run(
        client,
        args,
        Arc::new(Metrics::new()),
        topics,
        move || {
            let _ = ready_tx.send(());
        },
        async move { stopped.await.unwrap_or(Duration::ZERO) },
    ));
    Running {
        run,
        held,
        stop,
        ready,
    }
}

#[tokio::test]
async fn the_controllers_report_ready_and_stop_when_told() {
    let running = start(vec![]);
    tokio::time::timeout(TIMEOUT, running.ready)
        .await
        .expect("ready once every store is listed")
        .expect("ready is called");
    running.stop.send(Duration::from_secs(5)).expect("running");
    tokio::time::timeout(Duration::from_secs(3), running.run)
        .await
        .expect("nothing in flight: stopped well before the deadline")
        .expect("no panic");
}

#[tokio::test]
async fn a_reconcile_in_flight_finishes_before_the_controllers_stop() {
    let mut running = start(vec![broker()]);
    let patch = tokio::time::timeout(TIMEOUT, running.held.recv())
        .await
        .expect("the Broker controller adds its finalizer")
        .expect("the server runs");
    running.stop.send(Duration::from_secs(10)).expect("running");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!running.run.is_finished(), "draining: waits for the patch");
    let mut finalized = broker();
    finalized["metadata"]["finalizers"] = json!(["ferry.dev/topic"]);
    patch.send_response(json_response(StatusCode::OK, &finalized));
    tokio::time::timeout(Duration::from_secs(3), running.run)
        .await
        .expect("stops once the reconcile finished")
        .expect("no panic");
}

#[tokio::test]
async fn what_outlives_the_drain_deadline_is_aborted() {
    let mut running = start(vec![broker()]);
    let _never_answered = tokio::time::timeout(TIMEOUT, running.held.recv())
        .await
        .expect("the Broker controller adds its finalizer")
        .expect("the server runs");
    running
        .stop
        .send(Duration::from_millis(200))
        .expect("running");
    tokio::time::timeout(Duration::from_secs(3), running.run)
        .await
        .expect("stops at the deadline")
        .expect("no panic");
}
