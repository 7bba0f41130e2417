//! The Lambda example's flush path: `XrayLambdaLayer::with_flush` calling the provider's
//! `force_flush`, as `examples/lambda.rs` wires it. Each invocation's documents are
//! written before the invocation returns, even through a slow transport (Lambda may
//! freeze the process as soon as the response is out).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lambda_runtime::{Context, LambdaEvent, service_fn};
use serde_json::{Value, json};
use tower_layer::Layer;
use tower_service::Service;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_xray::XrayExporter;
use xray_propagation::lambda::XrayLambdaLayer;

/// The example's handler.
async fn handler(event: LambdaEvent<Value>) -> Result<Value, lambda_runtime::Error> {
    let name = event
        .payload
        .get("name")
        .and_then(Value::as_str)
        .ok_or("the event has no `name`")?;
    let span = tracing::info_span!("greet", annotation.name = name);
    let _entered = span.enter();
    Ok(json!({ "greeting": format!("hello {name}") }))
}

/// A transport that takes 200 ms per write: without a flush that waits for it, the
/// documents are not written when the invocation returns.
#[derive(Clone, Default)]
struct SlowLines(Arc<Mutex<Vec<u8>>>);

impl Write for SlowLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::thread::sleep(Duration::from_millis(200));
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SlowLines {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn context(root: &str) -> Context {
    let mut ctx = Context::default();
    ctx.request_id = format!("req-{root}");
    ctx.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:hello".into();
    ctx.xray_trace_id = Some(format!(
        "Root={root};Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:0"
    ));
    ctx
}

#[tokio::test]
async fn each_invocation_is_flushed_before_it_returns() {
    let out = SlowLines::default();
    let layer = tracing_xray::builder()
        .with_service_name("hello")
        .with_resource_detection(false)
        .with_exporter(XrayExporter::builder().with_writer(out.clone()))
        .build()
        .unwrap();
    let _guard = layer.flush_guard();
    let provider = layer.provider().cloned();
    tracing_subscriber::registry().with(layer).init();
    let mut service = XrayLambdaLayer::new()
        .with_flush(move || {
            if let Some(p) = &provider {
                let _ = p.force_flush();
            }
        })
        .layer(service_fn(handler));
    for i in 0..3u32 {
        let root = format!("1-5759e988-{:024x}", 0xbd86_0000u64 + u64::from(i));
        let answer = service
            .call(LambdaEvent::new(json!({"name": "x"}), context(&root)))
            .await
            .unwrap();
        assert_eq!(answer["greeting"], "hello x");
        // Read at once: whatever the invocation sent is written by now.
        let written = out.text();
        let docs: Vec<Value> = written
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|d| d["trace_id"] == root.as_str())
            .collect();
        let segments = xray_testkit::all_segments(&docs);
        assert!(
            segments.iter().any(|s| s["name"] == "greet"),
            "invocation {i}: the handler's span is not written when the invocation returns: {written}"
        );
    }
}
