//! The application request of the in-app overhead measurements (`benches/in_app.rs` and
//! the `profile_request` example): a header extracted, one server span, three child spans,
//! a header injected for the downstream call.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_xray::Propagator;

/// The incoming `X-Amzn-Trace-Id`: a sampled trace with a parent.
pub const HEADER: &str =
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

/// The incoming headers, `X-Amzn-Trace-Id` only.
pub fn incoming() -> HashMap<String, String> {
    HashMap::from([("x-amzn-trace-id".to_owned(), HEADER.to_owned())])
}

/// The request: extract, one server span, three children, inject; returns the outgoing
/// headers.
pub fn request(
    propagator: &Propagator,
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
