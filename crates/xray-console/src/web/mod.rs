//! The web console: one embedded page and the JSON API behind it (see the crate docs).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::str::FromStr;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use xray_model::TraceId;

use crate::filter::Filter;
use crate::store::{Store, StoreError};

/// The console's default address: `127.0.0.1:2020` (loopback only).
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 2020));

const PAGE: &str = include_str!("page.html");
const DEFAULT_LIMIT: usize = 500;
const MAX_LIMIT: usize = 10_000;
const MAP_TRACES: usize = 2_000;

/// The page and the API as an axum router (to mount it elsewhere).
pub fn router(store: Store) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/traces", get(traces))
        .route("/api/traces/{id}", get(trace))
        .route("/api/servicemap", get(service_map))
        .route("/api/status", get(status))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such page or API path".into()) })
        .with_state(store)
}

/// Serves the console on `listener` until `shutdown` completes.
///
/// # Errors
///
/// The I/O error that ends the server.
pub async fn serve(
    listener: TcpListener,
    store: Store,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(listener, router(store))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A running console; [`Console::shutdown`] stops it.
#[derive(Debug)]
pub struct Console {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
    expiry: JoinHandle<()>,
}

/// How often a running console applies the store's age limit (writes apply it too).
const EXPIRY_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

impl Console {
    /// Binds `addr` and serves the console on the current Tokio runtime. An address beyond
    /// loopback is allowed (the caller asked for it) and logged as a warning: anyone who
    /// reaches it can read the traces.
    ///
    /// # Errors
    ///
    /// The I/O error when `addr` cannot be bound.
    pub async fn bind(addr: SocketAddr, store: Store) -> io::Result<Console> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("local console cannot listen on {addr}: {e}"),
            )
        })?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "the local console listens beyond loopback: anyone who reaches it can read the traces");
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let expiring = store.clone();
        let expiry = tokio::spawn(async move {
            let mut tick = tokio::time::interval(EXPIRY_EVERY);
            loop {
                tick.tick().await;
                let store = expiring.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || store.evict()).await {
                    tracing::warn!(error = %e, "local console: cannot expire old traces");
                }
            }
        });
        let task = tokio::spawn(serve(listener, store, async move {
            let _ = stopped.await;
        }));
        Ok(Console {
            addr,
            stop: Some(stop),
            task,
            expiry,
        })
    }

    /// The address it listens on (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets open requests finish, and waits for the server to end.
    ///
    /// # Errors
    ///
    /// The I/O error the server ended with, or one saying its task panicked.
    pub async fn shutdown(mut self) -> io::Result<()> {
        self.expiry.abort();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task)
            .await
            .map_err(|e| io::Error::other(format!("local console task: {e}")))?
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.expiry.abort();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn error(status: StatusCode, message: String) -> Response {
    json_response(status, json!({ "error": message }))
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response()
}

/// Runs a store call off the async threads; store errors answer 500.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "local console: store error");
            Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
        }
        Err(e) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("store task failed: {e}"),
        )),
    }
}

fn limit(query: &HashMap<String, String>, default: usize) -> Result<usize, String> {
    match query.get("limit") {
        None => Ok(default),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(format!(
                "limit must be a whole number from 1 to {MAX_LIMIT}, not `{text}`"
            )),
        },
    }
}

async fn page() -> Response {
    ([(header::CACHE_CONTROL, "no-cache")], Html(PAGE)).into_response()
}

async fn traces(
    State(store): State<Store>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let limit = match limit(&query, DEFAULT_LIMIT) {
        Ok(n) => n,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let text = query
        .get("filter")
        .map(|f| f.trim().to_owned())
        .filter(|f| !f.is_empty());
    let filter = match text.as_deref().map(Filter::parse).transpose() {
        Ok(f) => f,
        Err(e) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("bad filter: {e}"), "position": e.position}),
            );
        }
    };
    match blocking(move || store.traces(filter.as_ref(), limit)).await {
        Ok(list) => json_response(
            StatusCode::OK,
            json!({
                "traces": list.traces,
                "count": list.count,
                "matched": list.matched,
                "total": list.total,
                "filter": text,
            }),
        ),
        Err(r) => r,
    }
}

async fn trace(State(store): State<Store>, Path(id): Path<String>) -> Response {
    let Ok(trace_id) = TraceId::from_str(id.trim()) else {
        let shown: String = id.chars().take(80).collect();
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "`{shown}` is not a trace id (expected 1-XXXXXXXX-XXXXXXXXXXXXXXXXXXXXXXXX in hex)"
            ),
        );
    };
    let trace_id = trace_id.to_string();
    let key = trace_id.clone();
    match blocking(move || store.trace_documents(&key)).await {
        Ok(docs) if docs.is_empty() => error(
            StatusCode::NOT_FOUND,
            format!("no trace {trace_id} in the local store"),
        ),
        Ok(docs) => {
            // The documents exactly as received (each was checked to be JSON when stored).
            let mut body = format!("{{\"id\":{},\"documents\":[", Value::String(trace_id));
            for (i, doc) in docs.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(doc);
            }
            body.push_str("]}");
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                body,
            )
                .into_response()
        }
        Err(r) => r,
    }
}

async fn service_map(
    State(store): State<Store>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let limit = match limit(&query, MAP_TRACES) {
        Ok(n) => n,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    match blocking(move || store.service_map(limit)).await {
        Ok(map) => json_response(StatusCode::OK, json!(map)),
        Err(r) => r,
    }
}

async fn status(State(store): State<Store>) -> Response {
    match blocking(move || store.stats()).await {
        Ok(stats) => json_response(StatusCode::OK, json!(stats)),
        Err(r) => r,
    }
}
