//! The real pipeline: `tracing` spans through tracing-opentelemetry and the SDK, collected
//! as `SpanData` and translated (both directly and after opentelemetry-proto's OTLP
//! conversion). Proves what a Rust service actually emits becomes the right documents.

use std::error::Error;
use std::fmt;
use std::sync::{Arc, Mutex};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use opentelemetry_proto::tonic::trace::v1::Span as ProtoSpan;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt;
use xray_translate::{Translator, TranslatorConfig};

#[derive(Debug, Clone, Default)]
struct Collect(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collect {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

#[derive(Debug)]
struct CallFailed(std::io::Error);

impl fmt::Display for CallFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GetItem failed")
    }
}

impl Error for CallFailed {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.0)
    }
}

fn run_service() -> (Vec<SpanData>, Resource) {
    let exporter = Collect::default();
    let resource = Resource::builder_empty()
        .with_service_name("checkout")
        .build();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .with_resource(resource.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("checkout")));
    tracing::subscriber::with_default(subscriber, || {
        let root = tracing::info_span!(
            "GET /cart/{id}",
            http.request.method = "GET",
            url.path = "/cart/7",
            annotation.tier = "gold",
        );
        let _entered = root.enter();
        let call = tracing::info_span!(
            "DynamoDB.GetItem",
            otel.kind = "client",
            rpc.system = "aws-api",
            rpc.service = "DynamoDB",
            rpc.method = "GetItem",
            aws.region = "eu-west-1",
        );
        call.in_scope(|| {
            let error = CallFailed(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connection timed out",
            ));
            tracing::error!(error = &error as &dyn Error, "call failed");
        });
    });
    provider.force_flush().unwrap();
    let spans = exporter.0.lock().unwrap().clone();
    (spans, resource)
}

fn otlp_resource(resource: &Resource) -> ProtoResource {
    ProtoResource {
        attributes: resource
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.to_string(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(v.as_str().into_owned())),
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn a_tracing_service_gives_a_segment_and_an_aws_subsegment() {
    let (spans, resource) = run_service();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let translator = Translator::new(TranslatorConfig::default());
    let docs: Vec<Value> = spans
        .iter()
        .map(|span| {
            let doc = translator.translate_sdk(span, &resource);
            let json = doc.to_json();
            xray_testkit::assert_schema_valid(&json);
            let otlp = ProtoSpan::from(span.clone());
            let scope = InstrumentationScope {
                name: span.instrumentation_scope.name().to_owned(),
                ..Default::default()
            };
            assert_eq!(
                json,
                translator
                    .translate_otlp(&otlp, Some(&otlp_resource(&resource)), Some(&scope))
                    .to_json(),
                "the OTLP form gives another document"
            );
            serde_json::from_str(&json).unwrap()
        })
        .collect();
    let call = docs
        .iter()
        .find(|d| d["type"] == "subsegment")
        .expect("subsegment");
    let root = docs
        .iter()
        .find(|d| d.get("type").is_none())
        .expect("segment");

    // tracing's default root span (Internal) is a segment named after the service.
    assert_eq!(root["name"], "checkout");
    assert!(root.get("parent_id").is_none());
    assert_eq!(root["annotations"], json!({"tier": "gold"}));
    assert_eq!(
        root["http"]["request"],
        json!({"method": "GET", "url": "/cart/7"})
    );
    assert_eq!(root["metadata"]["otel"]["span_name"], "GET /cart/{id}");

    // The AWS call: namespace aws, named after the service, under the root.
    assert_eq!(call["name"], "DynamoDB");
    assert_eq!(call["namespace"], "aws");
    assert_eq!(call["parent_id"], root["id"]);
    assert_eq!(call["trace_id"], root["trace_id"]);
    assert_eq!(
        call["aws"],
        json!({"operation": "GetItem", "region": "eu-west-1"})
    );
    // The error event: a fault, the error and its source chain as the cause, remote.
    assert_eq!(call["fault"], true);
    let exceptions = &call["cause"]["exceptions"];
    assert_eq!(exceptions[0]["message"], "GetItem failed");
    assert_eq!(exceptions[0]["remote"], true);
    assert_eq!(exceptions[1]["message"], "connection timed out");
    assert_eq!(exceptions[0]["cause"], exceptions[1]["id"]);
    // The event itself is kept too, under its own name.
    assert_eq!(call["metadata"]["otel"]["events"][0]["name"], "call failed");
}

/// A Rust `tracing` error event carries no stack trace, only its location: with
/// tracing-opentelemetry's location on, that location is the exception's one frame.
#[test]
fn a_tracing_error_events_location_is_its_stack_frame() {
    let exporter = Collect::default();
    let resource = Resource::builder_empty().with_service_name("pay").build();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .with_resource(resource.clone())
        .build();
    let subscriber = tracing_subscriber::registry().with(
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("pay"))
            .with_location(true),
    );
    let mut line = 0;
    tracing::subscriber::with_default(subscriber, || {
        let _root = tracing::info_span!("charge").entered();
        let error = std::io::Error::other("card declined");
        line = line!() + 1;
        tracing::error!(error = &error as &dyn Error, "charge failed");
    });
    provider.force_flush().unwrap();
    let spans = exporter.0.lock().unwrap().clone();
    assert_eq!(spans.len(), 1);
    let translator = Translator::default();
    let json = translator.translate_sdk(&spans[0], &resource).to_json();
    xray_testkit::assert_schema_valid(&json);
    let otlp = ProtoSpan::from(spans[0].clone());
    let scope = InstrumentationScope {
        name: "pay".into(),
        ..Default::default()
    };
    assert_eq!(
        json,
        translator
            .translate_otlp(&otlp, Some(&otlp_resource(&resource)), Some(&scope))
            .to_json()
    );
    let doc: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["fault"], true);
    assert_eq!(doc["cause"]["exceptions"][0]["message"], "card declined");
    assert_eq!(
        doc["cause"]["exceptions"][0]["stack"],
        json!([{"path": file!(), "line": line, "label": module_path!()}]),
        "{json}"
    );
}
