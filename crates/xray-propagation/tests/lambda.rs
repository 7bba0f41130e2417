//! Lambda: each invocation continues Lambda's trace (its function segment is the parent),
//! the decision follows Lambda's, and the flush hook runs after the span closed and
//! before the response is returned.

mod support;

use std::sync::{Arc, Mutex};

use lambda_runtime::{Context, LambdaEvent, service_fn};
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry_sdk::trace::Sampler;
use serde_json::{Value, json};
use support::{Telemetry, attr};
use tower_layer::Layer;
use tower_service::Service;
use xray_propagation::lambda::XrayLambdaLayer;

const HEADER: &str =
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:0";

async fn handler(event: LambdaEvent<Value>) -> Result<Value, lambda_runtime::Error> {
    let _work = tracing::info_span!("work").entered();
    if event.payload["fail"] == true {
        return Err("asked to fail".into());
    }
    Ok(json!({"ok": true}))
}

fn context(trace: Option<&str>) -> Context {
    let mut ctx = Context::default();
    ctx.request_id = "8476a536-e9f4-11e8-9739-2dfe598c3fcd".into();
    ctx.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:hello".into();
    ctx.xray_trace_id = trace.map(str::to_owned);
    ctx
}

/// Per flush: how many spans the exporter held at that moment.
type Flushes = Arc<Mutex<Vec<usize>>>;

fn layer(telemetry: &Telemetry) -> (XrayLambdaLayer, Flushes) {
    let flushes = Flushes::default();
    let exporter = telemetry.exporter.clone();
    let seen = flushes.clone();
    let layer = XrayLambdaLayer::new().with_flush(move || {
        let n = exporter.get_finished_spans().map_or(0, |s| s.len());
        seen.lock().unwrap().push(n);
    });
    (layer, flushes)
}

#[tokio::test]
async fn invocation_spans_are_children_of_lambdas_function_segment() {
    // ParentBased(AlwaysOff): only Lambda's Sampled=1 can make these spans sampled.
    let telemetry = Telemetry::new(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)));
    let (layer, flushes) = layer(&telemetry);
    let mut service = layer.layer(service_fn(handler));

    let out = service
        .call(LambdaEvent::new(json!({}), context(Some(HEADER))))
        .await
        .unwrap();
    assert_eq!(out, json!({"ok": true}));

    let spans = telemetry.spans();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let invocation = spans.iter().find(|s| s.name != "work").unwrap();
    let work = spans.iter().find(|s| s.name == "work").unwrap();
    assert_eq!(
        invocation.span_context.trace_id(),
        TraceId::from_hex("5759e988bd862e3fe1be46a994272793").unwrap()
    );
    assert_eq!(
        invocation.parent_span_id,
        SpanId::from_hex("53995c3f42cd8ad8").unwrap()
    );
    assert!(invocation.parent_span_is_remote);
    assert!(invocation.span_context.is_sampled());
    assert_eq!(invocation.span_kind, SpanKind::Internal);
    assert_eq!(
        attr(invocation, "faas.invocation_id").as_deref(),
        Some("8476a536-e9f4-11e8-9739-2dfe598c3fcd")
    );
    assert_eq!(
        attr(invocation, "cloud.resource_id").as_deref(),
        Some("arn:aws:lambda:us-east-1:123456789012:function:hello")
    );
    assert_eq!(work.parent_span_id, invocation.span_context.span_id());
    assert_eq!(
        work.span_context.trace_id(),
        invocation.span_context.trace_id()
    );
    // Lineage rides along for outgoing calls made in the invocation.
    assert_eq!(
        xray_propagation::hop_state(&invocation.span_context)
            .unwrap()
            .fields,
        vec![("Lineage".to_owned(), "a87bd80c:0".to_owned())]
    );
    // One flush, after both spans had ended.
    assert_eq!(*flushes.lock().unwrap(), vec![2]);
}

#[tokio::test]
async fn failed_invocation_is_marked_and_still_flushed() {
    let telemetry = Telemetry::new(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
    let (layer, flushes) = layer(&telemetry);
    let mut service = layer.layer(service_fn(handler));
    let err = service
        .call(LambdaEvent::new(
            json!({"fail": true}),
            context(Some(HEADER)),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "asked to fail");
    let spans = telemetry.spans();
    let invocation = spans.iter().find(|s| s.name != "work").unwrap();
    assert!(matches!(invocation.status, Status::Error { .. }));
    assert_eq!(*flushes.lock().unwrap(), vec![2]);
}

#[tokio::test]
async fn unsampled_lambda_trace_stays_unsampled() {
    let telemetry = Telemetry::new(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
    let (layer, flushes) = layer(&telemetry);
    let mut service = layer.layer(service_fn(handler));
    let header = HEADER.replace("Sampled=1", "Sampled=0");
    service
        .call(LambdaEvent::new(json!({}), context(Some(&header))))
        .await
        .unwrap();
    assert!(telemetry.spans().is_empty(), "nothing recorded");
    assert_eq!(*flushes.lock().unwrap(), vec![0]);
}
