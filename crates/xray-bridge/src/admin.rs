//! `/metrics` (Prometheus text: every receiver's counters and the exporter's) and
//! `/healthz` (`ok`, or `degraded: WHY` while a spool replays a backlog; 200 either way,
//! since the bridge still takes data).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::counters::Registry;
use crate::export::Sink;

struct AdminState {
    registry: Registry,
    sink: Arc<dyn Sink>,
}

/// The router: `GET /metrics` and `GET /healthz`.
pub fn router(registry: Registry, sink: Arc<dyn Sink>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(health))
        .with_state(Arc::new(AdminState { registry, sink }))
}

/// The full metrics text.
pub fn render(registry: &Registry, sink: &dyn Sink) -> String {
    let mut out = String::with_capacity(8192);
    registry.render(&mut out);
    sink.render_metrics(&mut out);
    out
}

async fn health(State(state): State<Arc<AdminState>>) -> String {
    match state.sink.degraded() {
        None => "ok\n".to_owned(),
        Some(why) => format!("degraded: {why}\n"),
    }
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    let mut response = render(&state.registry, state.sink.as_ref()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
