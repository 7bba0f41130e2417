//! Cost of translating a typical server span and a typical AWS SDK client span, from both
//! sources. (Issue 10 runs these side by side with opentelemetry-aws's translator.)

use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use opentelemetry_proto::tonic::trace::v1::Span as ProtoSpan;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use xray_translate::Translator;

fn span(kind: SpanKind, name: &'static str, parent: u64, attributes: Vec<KeyValue>) -> SpanData {
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(0x6553f100_bd862e3fe1be46a994272793),
            SpanId::from(0x53995c3f42cd8ad8),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::from(parent),
        parent_span_is_remote: kind == SpanKind::Server,
        span_kind: kind,
        name: name.into(),
        start_time: UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_000),
        end_time: UNIX_EPOCH + Duration::from_nanos(1_700_000_000_223_456_000),
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: Default::default(),
    }
}

fn tracing_fields() -> Vec<KeyValue> {
    vec![
        KeyValue::new("code.filepath", "src/handlers/cart.rs"),
        KeyValue::new("code.namespace", "checkout::handlers::cart"),
        KeyValue::new("code.lineno", 42),
        KeyValue::new("thread.id", 7),
        KeyValue::new("thread.name", "tokio-runtime-worker"),
        KeyValue::new("busy_ns", 81_234),
        KeyValue::new("idle_ns", 1_234_567),
    ]
}

fn server_span() -> SpanData {
    let mut attrs = vec![
        KeyValue::new("http.request.method", "GET"),
        KeyValue::new("url.scheme", "https"),
        KeyValue::new("server.address", "shop.example.com"),
        KeyValue::new("url.path", "/cart/42"),
        KeyValue::new("http.route", "/cart/{id}"),
        KeyValue::new("http.response.status_code", 200),
        KeyValue::new("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)"),
        KeyValue::new("client.address", "203.0.113.9"),
        KeyValue::new("network.peer.address", "10.0.0.12"),
    ];
    attrs.extend(tracing_fields());
    span(
        SpanKind::Server,
        "GET /cart/{id}",
        0x0102030405060708,
        attrs,
    )
}

fn aws_span() -> SpanData {
    let mut attrs = vec![
        KeyValue::new("rpc.system", "aws-api"),
        KeyValue::new("rpc.service", "DynamoDB"),
        KeyValue::new("rpc.method", "GetItem"),
        KeyValue::new("aws.region", "eu-west-1"),
        KeyValue::new(
            "aws.request_id",
            "V7A1PQ3H6B0KQ2VQ4LUN2OJ4VNVV4KQNSO5AEMVJF66Q9ASUAAJG",
        ),
        KeyValue::new(
            "aws.dynamodb.table_names",
            Value::Array(Array::String(vec![StringValue::from("carts")])),
        ),
        KeyValue::new("http.response.status_code", 200),
    ];
    attrs.extend(tracing_fields());
    span(
        SpanKind::Client,
        "DynamoDB.GetItem",
        0x1112131415161718,
        attrs,
    )
}

fn resource() -> Resource {
    Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service.name", "checkout"),
            KeyValue::new("service.version", "1.4.2"),
            KeyValue::new("telemetry.sdk.name", "opentelemetry"),
            KeyValue::new("telemetry.sdk.language", "rust"),
            KeyValue::new("telemetry.sdk.version", "0.33.0"),
            KeyValue::new("cloud.provider", "aws"),
            KeyValue::new("cloud.platform", "aws_ecs"),
            KeyValue::new("cloud.region", "eu-west-1"),
            KeyValue::new("aws.ecs.launchtype", "fargate"),
            KeyValue::new(
                "aws.ecs.task.arn",
                "arn:aws:ecs:eu-west-1:123456789012:task/c/abc",
            ),
            KeyValue::new("container.id", "abc123"),
        ])
        .build()
}

fn otlp_resource(resource: &Resource) -> ProtoResource {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue as Kv, any_value};
    ProtoResource {
        attributes: resource
            .iter()
            .map(|(k, v)| Kv {
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

fn bench(c: &mut Criterion) {
    let translator = Translator::default();
    let resource = resource();
    let proto_resource = otlp_resource(&resource);
    for (name, span) in [
        ("server span", server_span()),
        ("aws client span", aws_span()),
    ] {
        c.bench_function(&format!("sdk {name}"), |b| {
            b.iter(|| black_box(translator.translate_sdk(black_box(&span), &resource)))
        });
        let otlp = ProtoSpan::from(span.clone());
        c.bench_function(&format!("otlp {name}"), |b| {
            b.iter(|| {
                black_box(translator.translate_otlp(black_box(&otlp), Some(&proto_resource), None))
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
