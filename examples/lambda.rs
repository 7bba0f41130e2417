//! A Lambda function traced with tracing-xray, as the X-Ray SDKs do it: each invocation's
//! spans are subsegments of Lambda's own function segment (the parent in the runtime API's
//! `Lambda-Runtime-Trace-Id`), sent as standalone subsegment documents and flushed before
//! Lambda may freeze the process. No segment of our own is sent, so the map shows one node
//! per function, and nothing outside an invocation (the runtime's own spans) leaves the
//! process. The invocation subsegment is named after `AWS_LAMBDA_FUNCTION_NAME` and carries
//! the `ColdStart` annotation. Build for Lambda with `cargo lambda build --example lambda`
//! and turn on active tracing: Lambda then sets `AWS_XRAY_DAEMON_ADDRESS` itself.
//!
//! The event `{"name": "x"}` answers `{"greeting": "hello x"}`; a missing name is an error
//! (a fault on the subsegment). `examples/tests/lambda.rs` runs this against a stub Runtime
//! API on loopback.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};
use tower_layer::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use xray_propagation::lambda::XrayLambdaLayer;

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let name = event
        .payload
        .get("name")
        .and_then(Value::as_str)
        .ok_or("the event has no `name`")?;
    let span = tracing::info_span!("greet", annotation.name = name);
    let _entered = span.enter();
    Ok(json!({ "greeting": format!("hello {name}") }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run().await
}

/// The function: tracing-xray's layer, the invocation layer with the flush hook, the
/// handler.
pub(crate) async fn run() -> Result<(), Error> {
    let layer = tracing_xray::layer()?;
    let _guard = layer.flush_guard();
    let provider = layer.provider().cloned();
    tracing_subscriber::registry().with(layer).init();
    let service = XrayLambdaLayer::new()
        .with_flush(move || {
            if let Some(p) = &provider {
                let _ = p.force_flush();
            }
        })
        .layer(service_fn(handler));
    lambda_runtime::run(service).await
}
