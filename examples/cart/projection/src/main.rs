//! The cart example's projection: a revision process that folds cart events into carts.
//!
//! Ferry's local mode runs it the way Knative runs a container. It receives CloudEvents on
//! `POST /` (binary or structured content mode) of the types `com.example.cart.created`,
//! `com.example.cart.item.added` and `com.example.cart.item.removed`, appends each accepted event
//! as one JSON line to `<CART_STATE_DIR>/<cart>.jsonl`, and serves the folded cart at
//! `GET /carts/<id>`. The fold ignores repeated event ids, so redeliveries and replays are
//! harmless. `DELETE /carts` wipes the state so the log can be replayed from scratch.
//!
//! Environment: `PORT` (default 8080), `LISTEN_HOST` (default `127.0.0.1`), `K_REVISION`
//! (optional, echoed in the `x-revision` header) and `CART_STATE_DIR` (default
//! `.ferry/cart-state`, shared by all revisions).

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Router, middleware};
use revision_process::{Listen, env, shutdown_signal};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::cart::{fold, parse, valid_cart_id};
use crate::store::{append, read_cart, wipe};

mod cart;
mod store;
#[cfg(test)]
mod tests;

/// State shared by the handlers of one process.
struct AppState {
    dir: PathBuf,
    revision: Option<String>,
    handled: AtomicU64,
}

impl AppState {
    fn new(dir: PathBuf, revision: Option<String>) -> Arc<Self> {
        Arc::new(Self {
            dir,
            revision,
            handled: AtomicU64::new(0),
        })
    }
}

type App = State<Arc<AppState>>;

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn internal_error(e: io::Error) -> Response {
    eprintln!("cart-projection: error: {e}");
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
}

/// Runs blocking file work (which may wait on a lock) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

async fn receive(State(app): App, headers: HeaderMap, body: Bytes) -> Response {
    let (cart, mut record) = match parse(&headers, &body) {
        Ok(parsed) => parsed,
        Err(reason) => return (StatusCode::BAD_REQUEST, reason).into_response(),
    };
    record.by = app.revision.clone();
    let dir = app.dir.clone();
    match blocking(move || append(&dir, &cart, &record)).await {
        Ok(()) => {
            app.handled.fetch_add(1, Ordering::Relaxed);
            StatusCode::OK.into_response()
        }
        Err(e) => internal_error(e),
    }
}

async fn get_cart(State(app): App, UrlPath(id): UrlPath<String>) -> Response {
    if !valid_cart_id(&id) {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": format!("invalid cart id {id:?}")}),
        );
    }
    let (dir, cart) = (app.dir.clone(), id.clone());
    match blocking(move || read_cart(&dir, &cart)).await {
        Ok(Some(records)) => {
            let cart = fold(&records);
            let body = json!({"cart": id, "created": cart.created, "items": cart.items, "events": cart.events, "revisions": cart.revisions});
            json_response(StatusCode::OK, &body)
        }
        Ok(None) => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": format!("no events for cart {id}")}),
        ),
        Err(e) => internal_error(e),
    }
}

async fn wipe_carts(State(app): App) -> Response {
    let dir = app.dir.clone();
    match blocking(move || wipe(&dir)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => internal_error(e),
    }
}

async fn stats(State(app): App) -> Response {
    let handled = app.handled.load(Ordering::Relaxed);
    json_response(
        StatusCode::OK,
        &json!({"revision": app.revision, "handled": handled}),
    )
}

async fn stamp_revision(State(app): App, mut response: Response) -> Response {
    if let Some(value) = app
        .revision
        .as_deref()
        .and_then(|r| HeaderValue::from_str(r).ok())
    {
        response.headers_mut().insert("x-revision", value);
    }
    response
}

fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", post(receive))
        .route("/carts", delete(wipe_carts))
        .route("/carts/{id}", get(get_cart))
        .route("/stats", get(stats))
        .route("/healthz", get(|| async { "ok" }))
        .layer(middleware::map_response_with_state(
            state.clone(),
            stamp_revision,
        ))
        .with_state(state)
}

/// Serves the projection on `listener` until `shutdown` completes, then drains in-flight requests.
async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn run() -> io::Result<()> {
    let listen = Listen::from_env()?;
    let dir = PathBuf::from(env("CART_STATE_DIR").unwrap_or_else(|| ".ferry/cart-state".into()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    let listener = listen.bind("cart-projection").await?;
    serve(
        listener,
        AppState::new(dir, listen.revision),
        shutdown_signal(),
    )
    .await
}

#[tokio::main]
async fn main() -> ExitCode {
    revision_process::exit("cart-projection", run().await)
}
