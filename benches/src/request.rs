//! The application request of the in-app overhead measurements (`benches/in_app.rs` and
//! the `profile_request` example): a header extracted, one server span, three child spans,
//! a header injected for the downstream call.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The random part of the incoming trace id.
pub const TRACE_RANDOM: &str = "bd862e3fe1be46a994272793";

/// The epoch seconds of the trace ids: now (opentelemetry-aws 0.21 drops spans whose trace
/// id is older than X-Ray's 30 days, so a fixed old id would leave its side nothing to do).
fn epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Incoming headers of a trace of its own: `n` becomes the random part of the root id (so
/// a listener can tell requests apart by trace id).
pub fn incoming_numbered(n: u64) -> (String, HashMap<String, String>) {
    let root = format!("1-{:08x}-{n:024x}", epoch());
    let header = format!("Root={root};Parent=53995c3f42cd8ad8;Sampled=1");
    (
        root,
        HashMap::from([("x-amzn-trace-id".to_owned(), header)]),
    )
}

/// The incoming headers, `X-Amzn-Trace-Id` only: a sampled trace (random part
/// [`TRACE_RANDOM`]) with a parent.
pub fn incoming() -> HashMap<String, String> {
    let header = format!(
        "Root=1-{:08x}-{TRACE_RANDOM};Parent=53995c3f42cd8ad8;Sampled=1",
        epoch()
    );
    HashMap::from([("x-amzn-trace-id".to_owned(), header)])
}

/// The request: extract, one server span, three children, inject; returns the outgoing
/// headers.
pub fn request<P: TextMapPropagator + ?Sized>(
    propagator: &P,
    incoming: &HashMap<String, String>,
) -> HashMap<String, String> {
    let parent = propagator.extract(incoming);
    let server = tracing::info_span!(
        "GET /cart",
        otel.kind = "server",
        http.request.method = "GET",
        url.path = "/cart/42",
        http.response.status_code = 200
    );
    let _ = server.set_parent(parent);
    let _server = server.enter();
    let mut outgoing = HashMap::new();
    for step in ["load cart", "price items", "render"] {
        let child = tracing::info_span!("step", step, items = 3);
        let _child = child.enter();
        if step == "price items" {
            propagator.inject_context(&child.context(), &mut outgoing);
        }
    }
    outgoing
}
